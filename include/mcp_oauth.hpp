/*
 * mcp_oauth.hpp: thin C++17 helpers over mcp_oauth.h. Header-only, nothing
 * more than ownership and errors:
 *   - unique_ptr aliases with the right deleters for every handle;
 *   - mcp_oauth::error, an exception carrying the C error object's fields;
 *   - mcp_oauth::check(rc, err), which throws it;
 *   - wrappers for header mode, whose outputs are owned headers objects.
 * Everything else is the C API, used directly on `.get()`.
 *
 * Before 1.0 there is no ABI stability: rebuild against each release.
 */
#ifndef MCP_OAUTH_HPP
#define MCP_OAUTH_HPP

#include <cstdint>
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

using builder_ptr = std::unique_ptr<mcp_oauth_config_builder, builder_deleter>;
using provider_ptr = std::unique_ptr<mcp_oauth_provider, provider_deleter>;
using error_ptr = std::unique_ptr<mcp_oauth_error, error_deleter>;
using headers_ptr = std::unique_ptr<mcp_oauth_headers, headers_deleter>;

/* A failed call: the result code and a copy of the error object's fields. */
class error : public std::runtime_error {
public:
    error(mcp_oauth_result code, const mcp_oauth_error *detail)
        : std::runtime_error(describe(code, detail)), code_(code)
    {
        if (detail) {
            kind_ = str(mcp_oauth_error_kind(detail));
            step_ = str(mcp_oauth_error_step(detail));
            http_status_ = mcp_oauth_error_http_status(detail);
            oauth_error_ = str(mcp_oauth_error_oauth_error(detail));
            uint64_t ms = 0;
            if (mcp_oauth_error_retry_after_ms(detail, &ms))
                retry_after_ms_ = ms;
        } else {
            kind_ = str(mcp_oauth_result_name(static_cast<uint32_t>(code)));
        }
    }

    mcp_oauth_result code() const noexcept { return code_; }
    const std::string &kind() const noexcept { return kind_; }
    const std::string &step() const noexcept { return step_; }
    uint16_t http_status() const noexcept { return http_status_; }
    const std::string &oauth_error() const noexcept { return oauth_error_; }
    /* The server's Retry-After, in milliseconds, when it sent one. */
    std::optional<uint64_t> retry_after_ms() const noexcept { return retry_after_ms_; }

private:
    static std::string str(const char *s) { return s ? std::string(s) : std::string(); }
    static std::string describe(mcp_oauth_result code, const mcp_oauth_error *detail)
    {
        if (detail && mcp_oauth_error_display(detail))
            return mcp_oauth_error_display(detail);
        return str(mcp_oauth_result_name(static_cast<uint32_t>(code)));
    }

    mcp_oauth_result code_;
    std::string kind_, step_, oauth_error_;
    uint16_t http_status_ = 0;
    std::optional<uint64_t> retry_after_ms_;
};

/* Throw mcp_oauth::error unless `rc` is OK; takes ownership of `err`. */
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
    check(mcp_oauth_config_builder_build(builder.release(), &p, &err), err);
    return provider_ptr(p);
}

/* The headers for a request (walk them with mcp_oauth_headers_count/_name/
 * _value on .get()), or an empty pointer when no token is held yet. */
inline headers_ptr get_headers(const provider_ptr &p, const std::string &method, const std::string &url)
{
    mcp_oauth_headers *h = nullptr;
    mcp_oauth_error *err = nullptr;
    check(mcp_oauth_provider_get_headers(p.get(), method.c_str(), url.c_str(), &h, &err), err);
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
    check(mcp_oauth_provider_handle_response(p.get(), method.c_str(), url.c_str(),
                                             mcp_oauth_headers_authorization(sent.get()), status, names.data(),
                                             values.data(), names.size(), &retry, &again, &err),
          err);
    return headers_ptr(again);
}

inline void authorize(const provider_ptr &p)
{
    mcp_oauth_error *err = nullptr;
    check(mcp_oauth_provider_authorize(p.get(), &err), err);
}

} // namespace mcp_oauth

#endif /* MCP_OAUTH_HPP */
