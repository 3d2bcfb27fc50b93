// Compiles include/mcp_oauth.hpp with -std=c++17 -Wall -Wextra -Werror and
// exercises it without network: a provider built from the C++ helpers, and
// an error thrown as mcp_oauth::error.
#include <cstdio>
#include <cstring>

#include "mcp_oauth.hpp"

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
        if (e.code() != MCP_OAUTH_RESULT_INVALID_CONFIGURATION || e.kind() != "invalid_configuration") {
            std::printf("FAIL: unexpected error %s (%s)\n", e.kind().c_str(), e.what());
            return 1;
        }
        std::printf("C++ wrapper: expected error: %s\n", e.what());
    }
    return 0;
}
