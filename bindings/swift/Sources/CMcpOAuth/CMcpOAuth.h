/* The C ABI of mcp-oauth-client, for Swift: the module map's one header. */
#include "../../../../include/mcp_oauth.h"

/* `mcp_oauth_result` is a `uint32_t` before C23 and an enum from C23 on; Swift
 * sees one or the other depending on the language mode the importer uses.
 * The wrapper reads codes through this, whatever the mode. */
static inline uint32_t mcp_oauth_swift_code(mcp_oauth_result result)
{
    return (uint32_t)result;
}
