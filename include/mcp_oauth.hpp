/*
 * mcp_oauth.hpp: thin C++17 helpers over mcp_oauth.h. Header-only, nothing
 * more than ownership, errors and adapters:
 *   - unique_ptr aliases with the right deleters for every handle;
 *   - mcp_oauth::error, an exception carrying the C error object (kind,
 *     message, step, URL, HTTP status, the OAuth fields, the network
 *     failure, the host callback's code, Retry-After);
 *   - mcp_oauth::check(rc, err), which throws it;
 *   - wrappers for header mode, whose outputs are owned headers objects;
 *   - lambdas as completions of the asynchronous calls, with an operation
 *     handle to cancel them;
 *   - mcp_oauth::storage, a class to derive a host store from.
 * Everything else is the C API, used directly on `.get()`. No exception
 * ever crosses into the library: a throwing lambda or storage method is
 * caught at the boundary (a storage method's exception becomes a failure
 * of the call; a completion's is dropped).
 *
 * Strings the wrapper copies that may hold a token (the storage's JSON) are
 * overwritten before they are freed (mcp_oauth::wipe).
 *
 * Before 1.0 there is no ABI stability: rebuild against each release.
 */
#ifndef MCP_OAUTH_HPP
#define MCP_OAUTH_HPP

#if !defined(__cplusplus) || (__cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L))
#error "mcp_oauth.hpp needs C++17 or later (-std=c++17, or /std:c++17 with /Zc:__cplusplus); from C or older C++, include mcp_oauth.h"
#endif

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mcp_oauth.h"

namespace mcp_oauth {

struct builder_deleter {
    void operator()(mcp_oauth_config_builder *b) const noexcept { mcp_oauth_config_builder_free(b); }
};
struct provider_deleter {
    void operator()(mcp_oauth_provider *p) const noexcept { mcp_oauth_provider_free(p); }
};
struct error_deleter {
    void operator()(mcp_oauth_error *e) const noexcept { mcp_oauth_error_free(e); }
};
struct headers_deleter {
    void operator()(mcp_oauth_headers *h) const noexcept { mcp_oauth_headers_free(h); }
};

struct operation_deleter {
    void operator()(mcp_oauth_operation *o) const noexcept { mcp_oauth_operation_free(o); }
};

using builder_ptr = std::unique_ptr<mcp_oauth_config_builder, builder_deleter>;
using provider_ptr = std::unique_ptr<mcp_oauth_provider, provider_deleter>;
using error_ptr = std::unique_ptr<mcp_oauth_error, error_deleter>;
using headers_ptr = std::unique_ptr<mcp_oauth_headers, headers_deleter>;
/* An asynchronous operation; destroying it does not cancel it (call cancel()). */
using operation_ptr = std::unique_ptr<mcp_oauth_operation, operation_deleter>;

/* Overwrite a string that held a secret (a token's JSON) before it is freed. */
inline void wipe(std::string &s) noexcept
{
    volatile char *p = s.empty() ? nullptr : &s[0];
    for (std::size_t i = 0; i < s.size(); i++)
        p[i] = 0;
    s.clear();
}

/* A failed call: the result code and the error object (a copy, shared by
 * copies of the exception), with accessors for every field. */
class error : public std::runtime_error {
public:
    /* `detail` is borrowed: the exception keeps its own copy. */
    error(mcp_oauth_result code, const mcp_oauth_error *detail)
        : std::runtime_error(describe(code, detail)), code_(code),
          detail_(detail ? mcp_oauth_error_clone(detail) : nullptr, error_deleter())
    {
    }

    mcp_oauth_result code() const noexcept { return code_; }
    /* "network", "token", ... (the result code's name). */
    std::string kind() const { return detail_ ? str(mcp_oauth_error_kind(detail_.get())) : str(mcp_oauth_result_name(code_)); }
    /* What went wrong, without the step, status and OAuth fields (what() has everything). */
    std::string message() const { return detail_ ? str(mcp_oauth_error_message(detail_.get())) : std::string(what()); }
    std::string step() const { return field(mcp_oauth_error_step); }
    std::string url() const { return field(mcp_oauth_error_url); }
    uint16_t http_status() const noexcept { return detail_ ? mcp_oauth_error_http_status(detail_.get()) : 0; }
    std::string oauth_error() const { return field(mcp_oauth_error_oauth_error); }
    std::string oauth_error_description() const { return field(mcp_oauth_error_oauth_error_description); }
    std::string oauth_error_uri() const { return field(mcp_oauth_error_oauth_error_uri); }
    /* For kind "network": timeout, connect, too large, other. */
    mcp_oauth_network_failure network_failure() const noexcept
    {
        return detail_ ? mcp_oauth_error_network_failure(detail_.get()) : MCP_OAUTH_NETWORK_FAILURE_NONE;
    }
    /* What the host's own callback returned, when one failed. */
    std::optional<int64_t> callback_code() const noexcept
    {
        int64_t code = 0;
        if (detail_ && mcp_oauth_error_callback_code(detail_.get(), &code))
            return code;
        return std::nullopt;
    }
    /* The server's Retry-After, in milliseconds, when it sent one. */
    std::optional<uint64_t> retry_after_ms() const noexcept
    {
        uint64_t ms = 0;
        if (detail_ && mcp_oauth_error_retry_after_ms(detail_.get(), &ms))
            return ms;
        return std::nullopt;
    }
    /* The C error object (NULL for a failure without one), borrowed. */
    const mcp_oauth_error *get() const noexcept { return detail_.get(); }

private:
    static std::string str(const char *s) { return s ? std::string(s) : std::string(); }
    std::string field(const char *(*get)(const mcp_oauth_error *)) const
    {
        return detail_ ? str(get(detail_.get())) : std::string();
    }
    static std::string describe(mcp_oauth_result code, const mcp_oauth_error *detail)
    {
        if (detail && mcp_oauth_error_display(detail))
            return mcp_oauth_error_display(detail);
        return str(mcp_oauth_result_name(static_cast<uint32_t>(code)));
    }

    mcp_oauth_result code_;
    std::shared_ptr<mcp_oauth_error> detail_;
};

/* Throw mcp_oauth::error unless `rc` is OK; takes ownership of `err`. Call
 * it with the result of a call made before (`rc = call(..., &err);
 * check(rc, err);`): within one expression, `err` may be read before the
 * call writes it. */
inline void check(mcp_oauth_result rc, mcp_oauth_error *err = nullptr)
{
    error_ptr owned(err);
    if (rc != MCP_OAUTH_RESULT_OK)
        throw error(rc, owned.get());
}

inline builder_ptr make_builder() { return builder_ptr(mcp_oauth_config_builder_new()); }

/* Consumes the builder. */
inline provider_ptr build(builder_ptr builder)
{
    mcp_oauth_provider *p = nullptr;
    mcp_oauth_error *err = nullptr;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(builder.release(), &p, &err);
    check(rc, err);
    return provider_ptr(p);
}

/* The headers for a request (walk them with mcp_oauth_headers_count/_name/
 * _value on .get()), or an empty pointer when no token is held yet. */
inline headers_ptr get_headers(const provider_ptr &p, const std::string &method, const std::string &url)
{
    mcp_oauth_headers *h = nullptr;
    mcp_oauth_error *err = nullptr;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p.get(), method.c_str(), url.c_str(), &h, &err);
    check(rc, err);
    return headers_ptr(h);
}

/* The headers to retry with, or an empty pointer when the request should not
 * be retried. `response_headers` holds every (name, value) of the response;
 * `sent` is what get_headers gave for the request (may be empty). */
inline headers_ptr handle_response(const provider_ptr &p, const std::string &method, const std::string &url,
                                   const headers_ptr &sent, uint16_t status,
                                   const std::vector<std::pair<std::string, std::string>> &response_headers)
{
    std::vector<const char *> names, values;
    names.reserve(response_headers.size());
    values.reserve(response_headers.size());
    for (const auto &h : response_headers) {
        names.push_back(h.first.c_str());
        values.push_back(h.second.c_str());
    }
    bool retry = false;
    mcp_oauth_headers *again = nullptr;
    mcp_oauth_error *err = nullptr;
    mcp_oauth_result rc = mcp_oauth_provider_handle_response(p.get(), method.c_str(), url.c_str(),
                                                              mcp_oauth_headers_authorization(sent.get()), status,
                                                              names.data(), values.data(), names.size(), &retry,
                                                              &again, &err);
    check(rc, err);
    return headers_ptr(again);
}

inline void authorize(const provider_ptr &p)
{
    mcp_oauth_error *err = nullptr;
    mcp_oauth_result rc = mcp_oauth_provider_authorize(p.get(), &err);
    check(rc, err);
}

/* The hot path, which never waits: the headers when a valid token is held,
 * or an empty pointer (then call get_headers or get_headers_async). */
inline headers_ptr try_get_headers(const provider_ptr &p, const std::string &method, const std::string &url)
{
    mcp_oauth_headers *h = nullptr;
    mcp_oauth_error *err = nullptr;
    mcp_oauth_result rc = mcp_oauth_provider_try_get_headers(p.get(), method.c_str(), url.c_str(), &h, &err);
    check(rc, err);
    return headers_ptr(h);
}

/* ------------------------------------------------ asynchronous operations */

/* Called once when an asynchronous operation ends, on a library thread:
 * the result, the headers (borrowed for the call; NULL when none) and, on
 * failure, the error (an mcp_oauth::error, with its own copy of the detail:
 * it may be kept). */
using headers_completion = std::function<void(mcp_oauth_result, const mcp_oauth_headers *, const error *)>;
using completion = std::function<void(mcp_oauth_result, const error *)>;

namespace detail {
template <typename F> struct boxed {
    F f;
};

inline void call_headers(void *userdata, mcp_oauth_result rc, const mcp_oauth_headers *h,
                         const mcp_oauth_error *e) noexcept
{
    std::unique_ptr<boxed<headers_completion>> box(static_cast<boxed<headers_completion> *>(userdata));
    try {
        if (rc == MCP_OAUTH_RESULT_OK) {
            box->f(rc, h, nullptr);
        } else {
            error failure(rc, e);
            box->f(rc, nullptr, &failure);
        }
    } catch (...) {
        /* A completion must not unwind into the library. */
    }
}

inline void call_plain(void *userdata, mcp_oauth_result rc, const char *, const mcp_oauth_error *e) noexcept
{
    std::unique_ptr<boxed<completion>> box(static_cast<boxed<completion> *>(userdata));
    try {
        if (rc == MCP_OAUTH_RESULT_OK) {
            box->f(rc, nullptr);
        } else {
            error failure(rc, e);
            box->f(rc, &failure);
        }
    } catch (...) {
    }
}

/* Start with a boxed lambda; the box is the library's once started. */
template <typename F, typename Start> operation_ptr start(F f, Start start_fn)
{
    auto box = std::make_unique<boxed<F>>(boxed<F>{std::move(f)});
    mcp_oauth_operation *op = nullptr;
    mcp_oauth_result rc = start_fn(static_cast<void *>(box.get()), &op);
    check(rc);
    box.release(); /* freed by the completion, called exactly once */
    return operation_ptr(op);
}
} // namespace detail

/* mcp_oauth_provider_get_headers_start with a lambda; cancel with cancel(). */
inline operation_ptr get_headers_async(const provider_ptr &p, const std::string &method, const std::string &url,
                                       headers_completion done)
{
    return detail::start(std::move(done), [&](void *box, mcp_oauth_operation **op) {
        return mcp_oauth_provider_get_headers_start(p.get(), method.c_str(), url.c_str(), detail::call_headers, box,
                                                    op);
    });
}

/* mcp_oauth_provider_authorize_start with a lambda. */
inline operation_ptr authorize_async(const provider_ptr &p, completion done)
{
    return detail::start(std::move(done), [&](void *box, mcp_oauth_operation **op) {
        return mcp_oauth_provider_authorize_start(p.get(), detail::call_plain, box, op);
    });
}

/* mcp_oauth_provider_handle_response_start with a lambda. */
inline operation_ptr handle_response_async(const provider_ptr &p, const std::string &method, const std::string &url,
                                           const headers_ptr &sent, uint16_t status,
                                           const std::vector<std::pair<std::string, std::string>> &response_headers,
                                           headers_completion done)
{
    std::vector<const char *> names, values;
    for (const auto &h : response_headers) {
        names.push_back(h.first.c_str());
        values.push_back(h.second.c_str());
    }
    return detail::start(std::move(done), [&](void *box, mcp_oauth_operation **op) {
        return mcp_oauth_provider_handle_response_start(p.get(), method.c_str(), url.c_str(),
                                                        mcp_oauth_headers_authorization(sent.get()), status,
                                                        names.data(), values.data(), names.size(),
                                                        detail::call_headers, box, op);
    });
}

/* Cancel an operation: its completion gets MCP_OAUTH_RESULT_CANCELLED
 * unless it already finished. */
inline void cancel(const operation_ptr &op) { check(mcp_oauth_operation_cancel(op.get())); }

/* ---------------------------------------------------------------- storage */

/* A host store to derive from (the four methods of the MCP SDKs), for a
 * store one process owns; see mcp_oauth_token_store for a shared one.
 * Methods run on library threads, one at a time per provider; an exception
 * fails the call (MCP_OAUTH_RESULT_STORAGE). The JSON holds secrets: the
 * wrapper wipes its copies; wipe yours. */
class storage {
public:
    virtual ~storage() = default;
    /* The stored tokens' JSON, or nullopt when none are stored. */
    virtual std::optional<std::string> get_tokens() = 0;
    virtual void set_tokens(const std::string &tokens_json) = 0;
    /* The stored client information's JSON, or nullopt. */
    virtual std::optional<std::string> get_client_info() = 0;
    virtual void set_client_info(const std::string &client_info_json) = 0;
};

namespace detail {
inline int answer_with(mcp_oauth_answer *answer, std::optional<std::string> json) noexcept
{
    int rc = 0;
    if (json) {
        rc = mcp_oauth_answer_set(answer, json->c_str()) == MCP_OAUTH_RESULT_OK ? 0 : 1;
        wipe(*json);
    }
    return rc;
}

inline int storage_get_tokens(void *u, mcp_oauth_answer *a) noexcept
{
    try {
        return answer_with(a, static_cast<storage *>(u)->get_tokens());
    } catch (...) {
        return -1;
    }
}

inline int storage_set_tokens(void *u, const char *json) noexcept
{
    try {
        std::string copy(json);
        static_cast<storage *>(u)->set_tokens(copy);
        wipe(copy);
        return 0;
    } catch (...) {
        return -1;
    }
}

inline int storage_get_client_info(void *u, mcp_oauth_answer *a) noexcept
{
    try {
        return answer_with(a, static_cast<storage *>(u)->get_client_info());
    } catch (...) {
        return -1;
    }
}

inline int storage_set_client_info(void *u, const char *json) noexcept
{
    try {
        std::string copy(json);
        static_cast<storage *>(u)->set_client_info(copy);
        wipe(copy);
        return 0;
    } catch (...) {
        return -1;
    }
}

inline void storage_release(void *u) noexcept { delete static_cast<storage *>(u); }
} // namespace detail

/* Keep the provider's tokens in `store`, which the library owns from now
 * on (deleted when the last provider using it is freed). */
inline void set_storage(const builder_ptr &b, std::unique_ptr<storage> store)
{
    mcp_oauth_storage_callbacks cb = MCP_OAUTH_STORAGE_CALLBACKS_INIT;
    cb.userdata = store.get();
    cb.get_tokens = detail::storage_get_tokens;
    cb.set_tokens = detail::storage_set_tokens;
    cb.get_client_info = detail::storage_get_client_info;
    cb.set_client_info = detail::storage_set_client_info;
    cb.release = detail::storage_release;
    mcp_oauth_error *err = nullptr;
    mcp_oauth_result rc = mcp_oauth_config_builder_set_storage_callbacks(b.get(), &cb, &err);
    check(rc, err);
    store.release(); /* the library's now */
}

} // namespace mcp_oauth

#endif /* MCP_OAUTH_HPP */
