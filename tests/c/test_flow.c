/*
 * The full flow against the real peers through the C API: the built-in
 * loopback receiver (with $BROWSER following the authorization server's
 * redirects), the file store, header mode (401 -> flow -> retry header),
 * tokens reloaded from the file by a second provider, an asynchronous
 * authorize, and a step-up on 403 insufficient_scope.
 *
 * Environment (tests/c/run.sh sets it): MCP_URL, PRM_URL, TOKEN_DIR, BROWSER.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdbool.h>

#include "check.h"

static const char *mcp_url, *prm_url, *token_dir;

static mcp_oauth_provider *make_provider(void)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    CHECK(mcp_oauth_config_builder_set_server_url(b, mcp_url) == MCP_OAUTH_RESULT_OK, "set_server_url");
    CHECK(mcp_oauth_config_builder_set_client_metadata_json(
              b, "{\"client_name\": \"c flow test\", \"redirect_uris\": [\"http://127.0.0.1:0/callback\"], "
                 "\"grant_types\": [\"authorization_code\", \"refresh_token\"]}") == MCP_OAUTH_RESULT_OK,
          "set_client_metadata_json");
    CHECK(mcp_oauth_config_builder_set_loopback_handler(b, NULL, 30000) == MCP_OAUTH_RESULT_OK, "set_loopback_handler");
    CHECK(mcp_oauth_config_builder_set_storage_file(b, token_dir) == MCP_OAUTH_RESULT_OK, "set_storage_file");
    CHECK(mcp_oauth_config_builder_set_timeout_ms(b, 10000, NULL) == MCP_OAUTH_RESULT_OK, "set_timeout_ms");
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && p, "build (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return p;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    mcp_oauth_result result;
};

static void on_done(void *userdata, mcp_oauth_result result, const char *value, const mcp_oauth_error *error)
{
    struct waiter *w = userdata;
    if (error)
        printf("# completion error: %s\n", mcp_oauth_error_display(error));
    (void)value;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->result = result;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int main(void)
{
    mcp_url = need_env("MCP_URL");
    prm_url = need_env("PRM_URL");
    token_dir = need_env("TOKEN_DIR");
    need_env("BROWSER");

    mcp_oauth_provider *p = make_provider();
    if (!p)
        return check_finish();
    const char *uri = mcp_oauth_provider_redirect_uri(p);
    CHECK(uri && !strncmp(uri, "http://127.0.0.1:", 17) && !strstr(uri, ":0/"), "loopback bound at %s",
          uri ? uri : "(null)");

    /* No token yet: OK, no headers. */
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", mcp_url, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h == NULL, "no token before the flow");
    mcp_oauth_error_free(err);

    /* The server's 401 runs the flow: the response's headers as the HTTP
     * stack gives them, WWW-Authenticate among others. */
    char challenge[1024];
    snprintf(challenge, sizeof challenge,
             "Bearer error=\"invalid_token\", error_description=\"Authentication required\", resource_metadata=\"%s\"",
             prm_url);
    const char *names[] = {"content-type", "www-authenticate", "x-powered-by"};
    const char *values[] = {"application/json", challenge, "Express"};
    bool retry = false;
    mcp_oauth_headers *first = NULL;
    err = NULL;
    rc = mcp_oauth_provider_handle_response(p, "POST", mcp_url, NULL, 401, names, values, 3, &retry, &first, &err);
    const char *first_auth = mcp_oauth_headers_authorization(first);
    CHECK(rc == MCP_OAUTH_RESULT_OK && retry && first_auth && !strncmp(first_auth, "Bearer ", 7) &&
              mcp_oauth_headers_count(first) == 1,
          "401 runs the flow and says retry, with the new headers (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);

    err = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", mcp_url, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h && first_auth && !strcmp(mcp_oauth_headers_authorization(h), first_auth),
          "get_headers returns the new token");
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(err);

    mcp_oauth_headers *again = NULL;
    retry = true;
    rc = mcp_oauth_provider_handle_response(p, "POST", mcp_url, first_auth, 200, NULL, NULL, 0, &retry, &again, NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK && !retry && again == NULL, "200: no retry");

    /* A second provider on the same file store needs no flow. */
    mcp_oauth_provider *p2 = make_provider();
    h = NULL;
    rc = mcp_oauth_provider_get_headers(p2, "POST", mcp_url, &h, NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h && first_auth && !strcmp(mcp_oauth_headers_authorization(h), first_auth),
          "a second provider loads the token from the file");
    mcp_oauth_headers_free(h);

    /* authorize_async: the whole flow again, without blocking this thread. */
    struct waiter w = {.calls = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rc = mcp_oauth_provider_authorize_async(p2, on_done, &w);
    CHECK(rc == MCP_OAUTH_RESULT_OK, "authorize_async starts");
    pthread_mutex_lock(&w.mu);
    while (w.calls == 0)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    CHECK(w.calls == 1 && w.result == MCP_OAUTH_RESULT_OK, "authorize_async completes OK");
    h = NULL;
    rc = mcp_oauth_provider_get_headers(p2, "POST", mcp_url, &h, NULL);
    const char *now_auth = mcp_oauth_headers_authorization(h);
    CHECK(rc == MCP_OAUTH_RESULT_OK && now_auth && first_auth && strcmp(now_auth, first_auth) != 0,
          "authorize replaced the token");

    /* 403 insufficient_scope: step-up to more scopes. */
    char stepup[1024];
    snprintf(stepup, sizeof stepup,
             "Bearer error=\"insufficient_scope\", scope=\"mcp:read mcp:admin\", resource_metadata=\"%s\"", prm_url);
    const char *stepup_names[] = {"WWW-Authenticate"};
    const char *stepup_values[] = {stepup};
    mcp_oauth_headers *stepped = NULL;
    retry = false;
    err = NULL;
    rc = mcp_oauth_provider_handle_response(p2, "POST", mcp_url, now_auth, 403, stepup_names, stepup_values, 1, &retry,
                                            &stepped, &err);
    const char *stepped_auth = mcp_oauth_headers_authorization(stepped);
    CHECK(rc == MCP_OAUTH_RESULT_OK && retry && stepped_auth && now_auth && strcmp(stepped_auth, now_auth) != 0,
          "403 insufficient_scope steps up (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    mcp_oauth_headers_free(stepped);
    mcp_oauth_headers_free(h);

    /* A 403 without insufficient_scope is for the application. */
    const char *plain403_names[] = {"WWW-Authenticate"};
    const char *plain403[] = {"Bearer error=\"invalid_request\""};
    retry = true;
    again = NULL;
    rc = mcp_oauth_provider_handle_response(p2, "POST", mcp_url, NULL, 403, plain403_names, plain403, 1, &retry, &again,
                                            NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK && !retry && !again, "other 403: no retry");

    mcp_oauth_headers_free(first);
    mcp_oauth_provider_free(p2);
    mcp_oauth_provider_free(p);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return check_finish();
}
