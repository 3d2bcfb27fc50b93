/*
 * mcp_oauth.hpp: thin C++17 helpers over mcp_oauth.h. Header-only, nothing
 * more than ownership and errors:
 *   - unique_ptr aliases with the right deleters for every handle;
 *   - mcp_oauth::error, an exception carrying the C error object's fields;
 *   - mcp_oauth::check(rc, err), which throws it;
 *   - a few wrappers for the calls whose outputs are owned strings.
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
struct string_deleter {
    void operator()(char *s) const noexcept { mcp_oauth_string_free(s); }
};

using builder_ptr = std::unique_ptr<mcp_oauth_config_builder, builder_deleter>;
using provider_ptr = std::unique_ptr<mcp_oauth_provider, provider_deleter>;
using error_ptr = std::unique_ptr<mcp_oauth_error, error_deleter>;
using string_ptr = std::unique_ptr<char, string_deleter>;

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
        } else {
            kind_ = str(mcp_oauth_result_name(static_cast<uint32_t>(code)));
        }
    }

    mcp_oauth_result code() const noexcept { return code_; }
    const std::string &kind() const noexcept { return kind_; }
    const std::string &step() const noexcept { return step_; }
    uint16_t http_status() const noexcept { return http_status_; }
    const std::string &oauth_error() const noexcept { return oauth_error_; }

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

/* The Authorization header value, or nothing when no token is held yet. */
inline std::optional<std::string> get_authorization(const provider_ptr &p)
{
    char *h = nullptr;
    mcp_oauth_error *err = nullptr;
    check(mcp_oauth_provider_get_authorization(p.get(), &h, &err), err);
    string_ptr owned(h);
    return owned ? std::optional<std::string>(owned.get()) : std::nullopt;
}

/* The header to retry with, or nothing when the request should not be retried. */
inline std::optional<std::string> handle_response(const provider_ptr &p, uint16_t status,
                                                  const std::vector<std::string> &www_authenticate,
                                                  const std::optional<std::string> &sent)
{
    std::vector<const char *> values;
    values.reserve(www_authenticate.size());
    for (const auto &v : www_authenticate)
        values.push_back(v.c_str());
    bool retry = false;
    char *h = nullptr;
    mcp_oauth_error *err = nullptr;
    check(mcp_oauth_provider_handle_response(p.get(), status, values.data(), values.size(),
                                             sent ? sent->c_str() : nullptr, &retry, &h, &err),
          err);
    string_ptr owned(h);
    return retry && owned ? std::optional<std::string>(owned.get()) : std::nullopt;
}

inline void authorize(const provider_ptr &p)
{
    mcp_oauth_error *err = nullptr;
    check(mcp_oauth_provider_authorize(p.get(), &err), err);
}

} // namespace mcp_oauth

#endif /* MCP_OAUTH_HPP */
