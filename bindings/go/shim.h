#ifndef MCPGO_SHIM_H
#define MCPGO_SHIM_H
#include <stdint.h>
#include <stdlib.h>
#include "mcp_oauth.h"

mcp_oauth_result mcpgo_set_transport(mcp_oauth_config_builder *b, uintptr_t handle, mcp_oauth_error **err);
mcp_oauth_result mcpgo_set_log(mcp_oauth_config_builder *b, uintptr_t handle, uint32_t max_level,
                               mcp_oauth_error **err);
mcp_oauth_result mcpgo_set_storage(mcp_oauth_config_builder *b, uintptr_t handle, mcp_oauth_error **err);
mcp_oauth_result mcpgo_set_authorization(mcp_oauth_config_builder *b, uintptr_t handle, mcp_oauth_error **err);
mcp_oauth_result mcpgo_get_headers_start(const mcp_oauth_provider *p, const char *method, const char *url,
                                         uintptr_t handle, mcp_oauth_operation **op);
mcp_oauth_result mcpgo_handle_response_start(const mcp_oauth_provider *p, const char *method, const char *url,
                                             const char *sent, uint16_t status, char **names, char **values,
                                             size_t count, uintptr_t handle, mcp_oauth_operation **op);
mcp_oauth_result mcpgo_authorize_start(const mcp_oauth_provider *p, uintptr_t handle, mcp_oauth_operation **op);
bool mcpgo_is_dpop_nonce_challenge(uint16_t status, char **names, char **values, size_t count);
mcp_oauth_result mcpgo_respond(mcp_oauth_http_request *request, uint16_t status, char **names, char **values,
                               size_t count, const void *body, size_t len);
void mcpgo_free_secret(char *s);
int64_t mcpgo_try_headers(const mcp_oauth_provider *p, const char *method, size_t mlen, const char *url, size_t ulen,
                          char *buf, size_t cap);
#endif
