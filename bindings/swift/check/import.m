// Compiled by check.sh with clang -fmodules -fsyntax-only: the module map
// imports the header as the module CMcpOAuth, as Swift's importer does, and
// what the Swift wrapper calls is visible through it.
@import CMcpOAuth;

static void uses_the_module(void)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    uint32_t code = mcp_oauth_swift_code(mcp_oauth_config_builder_set_storage_memory(b));
    (void)code;
    mcp_oauth_config_builder_free(b);
    mcp_oauth_headers_completion h = 0;
    mcp_oauth_completion c = 0;
    (void)h;
    (void)c;
    (void)mcp_oauth_operation_cancel;
    (void)mcp_oauth_provider_get_headers_start;
    (void)mcp_oauth_provider_handle_response_start;
    (void)mcp_oauth_provider_authorize_start;
    (void)mcp_oauth_error_retry_after_ms;
    (void)MCP_OAUTH_RESULT_CANCELLED;
}

int main(void)
{
    uses_the_module();
    return 0;
}
