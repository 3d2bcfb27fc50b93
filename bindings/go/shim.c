// The C side of the cgo bridge: small functions with the exact signatures
// the library calls, forwarding to the Go functions exported in
// callbacks.go. Every userdata is a cgo.Handle's number, never a Go pointer.
#include <string.h>
#include "shim.h"
#include "_cgo_export.h"

static int shim_send(void *ud, struct mcp_oauth_http_request *request) {
    return goTransportSend((uintptr_t)ud, request);
}
static void shim_cancel(void *ud, struct mcp_oauth_http_request *request) {
    goTransportCancel((uintptr_t)ud, request);
}
static void shim_release(void *ud) { goRelease((uintptr_t)ud); }
static void shim_log(void *ud, mcp_oauth_log_level level, const char *target, const char *message) {
    goLog((uintptr_t)ud, (uint32_t)level, (char *)target, (char *)message);
}

mcp_oauth_result mcpgo_set_log(mcp_oauth_config_builder *b, uintptr_t handle, uint32_t max_level,
                               mcp_oauth_error **err) {
    mcp_oauth_log_options o = MCP_OAUTH_LOG_OPTIONS_INIT;
    o.userdata = (void *)handle;
    o.callback = shim_log;
    o.max_level = max_level;
    o.release = shim_release;
    return mcp_oauth_config_builder_set_log_options(b, &o, err);
}

mcp_oauth_result mcpgo_set_transport(mcp_oauth_config_builder *b, uintptr_t handle, mcp_oauth_error **err) {
    mcp_oauth_transport_callbacks cb = MCP_OAUTH_TRANSPORT_CALLBACKS_INIT;
    cb.userdata = (void *)handle;
    cb.send = shim_send;
    cb.cancel = shim_cancel;
    cb.release = shim_release;
    return mcp_oauth_config_builder_set_transport_callbacks(b, &cb, err);
}

static int shim_get_tokens(void *ud, struct mcp_oauth_answer *answer) {
    return goStorageGet((uintptr_t)ud, 0, answer);
}
static int shim_set_tokens(void *ud, const char *json) { return goStorageSet((uintptr_t)ud, 0, (char *)json); }
static int shim_get_client(void *ud, struct mcp_oauth_answer *answer) {
    return goStorageGet((uintptr_t)ud, 1, answer);
}
static int shim_set_client(void *ud, const char *json) { return goStorageSet((uintptr_t)ud, 1, (char *)json); }

mcp_oauth_result mcpgo_set_storage(mcp_oauth_config_builder *b, uintptr_t handle, mcp_oauth_error **err) {
    mcp_oauth_storage_callbacks cb = MCP_OAUTH_STORAGE_CALLBACKS_INIT;
    cb.userdata = (void *)handle;
    cb.get_tokens = shim_get_tokens;
    cb.set_tokens = shim_set_tokens;
    cb.get_client_info = shim_get_client;
    cb.set_client_info = shim_set_client;
    cb.release = shim_release;
    return mcp_oauth_config_builder_set_storage_callbacks(b, &cb, err);
}

static int shim_begin(void *ud, struct mcp_oauth_authorization *authorization) {
    return goAuthorizationBegin((uintptr_t)ud, authorization);
}
static void shim_auth_cancel(void *ud, struct mcp_oauth_authorization *authorization) {
    goAuthorizationCancel((uintptr_t)ud, authorization);
}

mcp_oauth_result mcpgo_set_authorization(mcp_oauth_config_builder *b, uintptr_t handle, mcp_oauth_error **err) {
    mcp_oauth_authorization_callbacks cb = MCP_OAUTH_AUTHORIZATION_CALLBACKS_INIT;
    cb.userdata = (void *)handle;
    cb.begin = shim_begin;
    cb.cancel = shim_auth_cancel;
    cb.release = shim_release;
    return mcp_oauth_config_builder_set_authorization_callbacks(b, &cb, err);
}

static void shim_headers_done(void *ud, mcp_oauth_result result, const struct mcp_oauth_headers *headers,
                              const struct mcp_oauth_error *error) {
    goHeadersDone((uintptr_t)ud, result, (struct mcp_oauth_headers *)headers, (struct mcp_oauth_error *)error);
}
static void shim_done(void *ud, mcp_oauth_result result, const char *value, const struct mcp_oauth_error *error) {
    (void)value;
    goHeadersDone((uintptr_t)ud, result, NULL, (struct mcp_oauth_error *)error);
}

mcp_oauth_result mcpgo_get_headers_start(const mcp_oauth_provider *p, const char *method, const char *url,
                                         uintptr_t handle, mcp_oauth_operation **op) {
    return mcp_oauth_provider_get_headers_start(p, method, url, shim_headers_done, (void *)handle, op);
}

mcp_oauth_result mcpgo_handle_response_start(const mcp_oauth_provider *p, const char *method, const char *url,
                                             const char *sent, uint16_t status, char **names, char **values,
                                             size_t count, uintptr_t handle, mcp_oauth_operation **op) {
    return mcp_oauth_provider_handle_response_start(p, method, url, sent, status, (const char *const *)names,
                                                    (const char *const *)values, count, shim_headers_done,
                                                    (void *)handle, op);
}

mcp_oauth_result mcpgo_authorize_start(const mcp_oauth_provider *p, uintptr_t handle, mcp_oauth_operation **op) {
    return mcp_oauth_provider_authorize_start(p, shim_done, (void *)handle, op);
}

bool mcpgo_is_dpop_nonce_challenge(uint16_t status, char **names, char **values, size_t count) {
    return mcp_oauth_is_dpop_nonce_challenge(status, (const char *const *)names, (const char *const *)values, count);
}

mcp_oauth_result mcpgo_respond(mcp_oauth_http_request *request, uint16_t status, char **names, char **values,
                               size_t count, const void *body, size_t len) {
    return mcp_oauth_http_request_respond(request, status, (const char *const *)names, (const char *const *)values,
                                          count, (const uint8_t *)body, len);
}

void mcpgo_free_secret(char *s) {
    if (s == NULL) return;
    volatile char *p = s;
    while (*p) *p++ = 0;
    free(s);
}

/* The hot path in one cgo call: the provider's headers for (method, url),
 * given as Go strings (pointer and length, not NUL-terminated), written into
 * buf as "name\0value\0" pairs. Returns the bytes written, 0 when there are
 * no headers to set now (no usable token, another origin, a refresh due), or
 * -(bytes needed) when buf is too small. */
int64_t mcpgo_try_headers(const mcp_oauth_provider *p, const char *method, size_t mlen, const char *url, size_t ulen,
                          char *buf, size_t cap) {
    char mstack[16], ustack[1024];
    char *m = mlen < sizeof mstack ? mstack : malloc(mlen + 1);
    char *u = ulen < sizeof ustack ? ustack : malloc(ulen + 1);
    int64_t n = 0;
    if (!m || !u)
        goto out;
    memcpy(m, method, mlen);
    m[mlen] = 0;
    memcpy(u, url, ulen);
    u[ulen] = 0;
    mcp_oauth_headers *h = NULL;
    if (mcp_oauth_provider_try_get_headers(p, m, u, &h, NULL) != MCP_OAUTH_RESULT_OK || !h)
        goto out;
    size_t count = mcp_oauth_headers_count(h), need = 0;
    for (size_t i = 0; i < count; i++)
        need += strlen(mcp_oauth_headers_name(h, i)) + strlen(mcp_oauth_headers_value(h, i)) + 2;
    if (need > cap) {
        n = -(int64_t)need;
    } else {
        char *at = buf;
        for (size_t i = 0; i < count; i++) {
            const char *parts[2] = {mcp_oauth_headers_name(h, i), mcp_oauth_headers_value(h, i)};
            for (int k = 0; k < 2; k++) {
                size_t len = strlen(parts[k]) + 1;
                memcpy(at, parts[k], len);
                at += len;
            }
        }
        n = (int64_t)need;
    }
    mcp_oauth_headers_free(h);
out:
    if (m && m != mstack)
        free(m);
    if (u && u != ustack)
        free(u);
    return n;
}
