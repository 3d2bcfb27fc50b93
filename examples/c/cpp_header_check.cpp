// Compiles include/mcp_oauth.hpp with -std=c++17 -Wall -Wextra -Werror and
// exercises it without network: a provider built from the C++ helpers, an
// error thrown as mcp_oauth::error with its fields, a storage derived from
// mcp_oauth::storage, lambda completions, and a cancelled operation.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "mcp_oauth.hpp"

// A host store derived from mcp_oauth::storage: a map in memory, whose
// get_tokens can be slowed down to let an operation be cancelled.
class map_store : public mcp_oauth::storage {
public:
    map_store(std::string tokens, int delay_ms, std::atomic<bool> *deleted) : tokens_(std::move(tokens)), delay_ms_(delay_ms), deleted_(deleted) {}
    ~map_store() override
    {
        mcp_oauth::wipe(tokens_);
        *deleted_ = true;
    }
    std::optional<std::string> get_tokens() override
    {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
        if (tokens_.empty())
            return std::nullopt;
        return tokens_;
    }
    void set_tokens(const std::string &json) override { tokens_ = json; }
    std::optional<std::string> get_client_info() override { return std::nullopt; }
    void set_client_info(const std::string &) override {}

private:
    std::string tokens_;
    int delay_ms_;
    std::atomic<bool> *deleted_;
};

// The library releases a store after its last user, which may be a library
// thread finishing an operation just after the provider is freed: wait for it.
static bool released_within(const std::atomic<bool> &deleted, int ms)
{
    for (int i = 0; i < ms / 10 && !deleted.load(); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return deleted.load();
}

struct done_flag {
    std::mutex mu;
    std::condition_variable cv;
    int calls = 0;
    mcp_oauth_result rc = MCP_OAUTH_RESULT_OK;
    std::string auth, kind;

    void wait()
    {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return calls > 0; });
    }
};

static mcp_oauth::provider_ptr store_provider(int delay_ms, std::atomic<bool> *deleted)
{
    auto b = mcp_oauth::make_builder();
    mcp_oauth::check(mcp_oauth_config_builder_set_server_url(b.get(), "https://mcp.example.com/mcp"));
    mcp_oauth::check(mcp_oauth_config_builder_set_client_metadata_json(
        b.get(), R"({"redirect_uris": ["http://127.0.0.1:9/callback"]})"));
    mcp_oauth::set_storage(b, std::make_unique<map_store>(R"({"access_token": "cpp", "token_type": "Bearer"})",
                                                          delay_ms, deleted));
    return mcp_oauth::build(std::move(b));
}

int main()
{
    auto builder = mcp_oauth::make_builder();
    mcp_oauth::check(mcp_oauth_config_builder_set_server_url(builder.get(), "https://mcp.example.com/mcp"));
    mcp_oauth::check(mcp_oauth_config_builder_set_client_metadata_json(
        builder.get(), R"({"redirect_uris": ["http://127.0.0.1:9/callback"]})"));
    auto provider = mcp_oauth::build(std::move(builder));
    std::printf("C++ wrapper: provider built (libmcp_oauth %s)\n", mcp_oauth_version());

    // Header mode without a token: no headers, and a 200 needs no retry.
    auto headers = mcp_oauth::get_headers(provider, "POST", "https://mcp.example.com/mcp");
    auto again = mcp_oauth::handle_response(provider, "POST", "https://mcp.example.com/mcp", headers, 200,
                                            {{"Content-Type", "application/json"}});
    if (headers || again) {
        std::printf("FAIL: headers without a token\n");
        return 1;
    }

    // A versioned struct's _INIT macro in C++: the version set, the rest empty.
    mcp_oauth_transport_callbacks transport = MCP_OAUTH_TRANSPORT_CALLBACKS_INIT;
    if (transport.version != MCP_OAUTH_TRANSPORT_CALLBACKS_VERSION || transport.send || transport.userdata) {
        std::printf("FAIL: MCP_OAUTH_TRANSPORT_CALLBACKS_INIT\n");
        return 1;
    }

    try {
        auto b = mcp_oauth::make_builder(); // no server URL: build must fail
        mcp_oauth::build(std::move(b));
        std::printf("FAIL: build without a server URL succeeded\n");
        return 1;
    } catch (const mcp_oauth::error &e) {
        if (e.code() != MCP_OAUTH_RESULT_INVALID_CONFIGURATION || e.kind() != "invalid_configuration" ||
            e.step() != "configuration" || e.message().empty() || !e.get()) {
            std::printf("FAIL: unexpected error %s (%s)\n", e.kind().c_str(), e.what());
            return 1;
        }
        mcp_oauth::error copy = e; // an exception copy keeps the detail
        std::printf("C++ wrapper: expected error: %s (step %s)\n", copy.what(), copy.step().c_str());
    }

    // A storage adapter and a lambda completion.
    std::atomic<bool> deleted{false};
    {
        auto p = store_provider(0, &deleted);
        done_flag done;
        auto op = mcp_oauth::get_headers_async(p, "POST", "https://mcp.example.com/mcp",
                                               [&](mcp_oauth_result rc, const mcp_oauth_headers *h, const mcp_oauth::error *) {
                                                   std::lock_guard<std::mutex> lock(done.mu);
                                                   done.calls++;
                                                   done.rc = rc;
                                                   const char *a = mcp_oauth_headers_authorization(h);
                                                   done.auth = a ? a : "";
                                                   done.cv.notify_all();
                                               });
        done.wait();
        std::lock_guard<std::mutex> lock(done.mu);
        if (done.calls != 1 || done.rc != MCP_OAUTH_RESULT_OK || done.auth != "Bearer cpp") {
            std::printf("FAIL: get_headers_async through the C++ storage: %d calls, %s\n", done.calls, done.auth.c_str());
            return 1;
        }
        auto hot = mcp_oauth::try_get_headers(p, "POST", "https://mcp.example.com/mcp");
        if (!hot || std::strcmp(mcp_oauth_headers_authorization(hot.get()), "Bearer cpp") != 0) {
            std::printf("FAIL: try_get_headers\n");
            return 1;
        }
        std::printf("C++ wrapper: a lambda completion got the token from a C++ store\n");
    }
    if (!released_within(deleted, 5000)) {
        std::printf("FAIL: the C++ store was not deleted with its provider\n");
        return 1;
    }

    // A cancelled operation: the lambda gets CANCELLED, with an error object.
    deleted = false;
    {
        auto p = store_provider(300, &deleted);
        done_flag done;
        auto op = mcp_oauth::get_headers_async(p, "POST", "https://mcp.example.com/mcp",
                                               [&](mcp_oauth_result rc, const mcp_oauth_headers *, const mcp_oauth::error *e) {
                                                   std::lock_guard<std::mutex> lock(done.mu);
                                                   done.calls++;
                                                   done.rc = rc;
                                                   done.kind = e ? e->kind() : "";
                                                   done.cv.notify_all();
                                               });
        mcp_oauth::cancel(op);
        done.wait();
        std::lock_guard<std::mutex> lock(done.mu);
        if (done.calls != 1 || done.rc != MCP_OAUTH_RESULT_CANCELLED || done.kind != "cancelled") {
            std::printf("FAIL: cancel: %d calls, %s\n", done.calls, done.kind.c_str());
            return 1;
        }
        std::printf("C++ wrapper: a cancelled operation completed with %s\n", done.kind.c_str());
    }
    // The slow get_tokens returns, then the store goes.
    if (!released_within(deleted, 5000)) {
        std::printf("FAIL: the C++ store was not deleted after the cancelled operation\n");
        return 1;
    }
    return 0;
}
