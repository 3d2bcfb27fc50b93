/* The C ABI of mcp-oauth-client, for Swift: the module map's one header. */
#include "../../../../include/mcp_oauth.h"
