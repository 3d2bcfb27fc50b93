/*
 * Every error path a C host can provoke, through the C API: NULL arguments,
 * invalid UTF-8, invalid configuration, storage callbacks that fail or answer
 * bad JSON, handler callbacks that fail, use from 8 threads at once, freeing a
 * provider while an asynchronous operation is in flight (it is cancelled), and blocking calls
 * from inside library callbacks (MCP_OAUTH_RESULT_WOULD_DEADLOCK), the setters
 * refusing bad input, and, against an in-process mock authorization server,
 * a token endpoint that is down (MCP_OAUTH_RESULT_SERVER with Retry-After),
 * the extra token parameter, the resource parameter and the issuer pin.
 *
 * Needs the peers for the handler tests: MCP_URL (tests/c/run.sh sets it).
 */
#define _GNU_SOURCE /* strcasestr */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static const char *mcp_url;
static const char *const URL = "https://mcp.example.com/mcp";

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ a host store */

struct store {
    const char *tokens;      /* what get_tokens answers (NULL: none) */
    int get_tokens_rc;       /* what get_tokens returns */
    long delay_ms;           /* get_tokens sleeps first */
    atomic_int get_calls;
    atomic_int releases;
    /* Blocking calls made from inside get_tokens, and what they returned. */
    mcp_oauth_provider *reenter;
    atomic_int reenter_get_rc;
    atomic_int reenter_authorize_rc;
    atomic_int reenter_kind_ok;
};

static int store_get_tokens(void *userdata, mcp_oauth_answer *answer)
{
    struct store *s = userdata;
    atomic_fetch_add(&s->get_calls, 1);
    if (s->delay_ms)
        sleep_ms(s->delay_ms);
    if (s->reenter) {
        mcp_oauth_headers *h = NULL;
        mcp_oauth_error *err = NULL;
        mcp_oauth_result rc = mcp_oauth_provider_get_headers(s->reenter, "POST", URL, &h, &err);
        atomic_store(&s->reenter_get_rc, (int)rc);
        atomic_store(&s->reenter_kind_ok, err && !strcmp(mcp_oauth_error_kind(err), "would_deadlock") &&
                                              *mcp_oauth_error_message(err));
        mcp_oauth_error_free(err);
        mcp_oauth_headers_free(h);
        atomic_store(&s->reenter_authorize_rc, (int)mcp_oauth_provider_authorize(s->reenter, NULL));
    }
    if (s->get_tokens_rc != 0)
        return s->get_tokens_rc;
    if (s->tokens)
        return mcp_oauth_answer_set(answer, s->tokens) == MCP_OAUTH_RESULT_OK ? 0 : 1;
    return 0;
}

static int store_set_tokens(void *userdata, const char *json)
{
    (void)userdata;
    (void)json;
    return 0;
}

static int store_get_client_info(void *userdata, mcp_oauth_answer *answer)
{
    (void)userdata;
    (void)answer;
    return 0;
}

static int store_set_client_info(void *userdata, const char *json)
{
    (void)userdata;
    (void)json;
    return 0;
}

static void store_release(void *userdata)
{
    struct store *s = userdata;
    atomic_fetch_add(&s->releases, 1);
}

static mcp_oauth_storage_callbacks store_callbacks(struct store *s)
{
    mcp_oauth_storage_callbacks cb = {
        .version = MCP_OAUTH_STORAGE_CALLBACKS_VERSION,
        .userdata = s,
        .get_tokens = store_get_tokens,
        .set_tokens = store_set_tokens,
        .get_client_info = store_get_client_info,
        .set_client_info = store_set_client_info,
        .release = store_release,
    };
    return cb;
}

static const char *METADATA = "{\"redirect_uris\": [\"http://127.0.0.1:33419/callback\"], \"client_name\": \"c tests\"}";

static mcp_oauth_provider *provider_with_store(const char *server_url, struct store *s)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, server_url);
    mcp_oauth_config_builder_set_client_metadata_json(b, METADATA);
    mcp_oauth_storage_callbacks cb = store_callbacks(s);
    CHECK(mcp_oauth_config_builder_set_storage_callbacks(b, &cb, NULL) == MCP_OAUTH_RESULT_OK, "set_storage_callbacks");
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && p, "build a provider with host storage (%s)",
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return p;
}

/* ------------------------------------------------------------ tests */

static void test_version_and_names(void)
{
    CHECK(!strcmp(mcp_oauth_version(), MCP_OAUTH_VERSION), "library version %s matches the header", mcp_oauth_version());
    CHECK(!strcmp(mcp_oauth_result_name(MCP_OAUTH_RESULT_OK), "ok"), "result_name(OK)");
    CHECK(!strcmp(mcp_oauth_result_name(MCP_OAUTH_RESULT_WOULD_DEADLOCK), "would_deadlock"), "result_name(WOULD_DEADLOCK)");
    CHECK(!strcmp(mcp_oauth_result_name(9999), "unknown"), "result_name(9999) is unknown");
}

static void test_null_arguments(void)
{
    mcp_oauth_error *err = NULL;
    mcp_oauth_headers *h = NULL;
    bool retry = false;

    /* Frees of NULL are no-ops. */
    mcp_oauth_config_builder_free(NULL);
    mcp_oauth_provider_free(NULL);
    mcp_oauth_error_free(NULL);
    mcp_oauth_headers_free(NULL);
    CHECK(1, "every _free(NULL) is a no-op");

    CHECK_CODE("set_server_url(NULL builder)", mcp_oauth_config_builder_set_server_url(NULL, "https://x/mcp"),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    CHECK(b != NULL, "config_builder_new");
    CHECK_CODE("set_server_url(NULL url)", mcp_oauth_config_builder_set_server_url(b, NULL), MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("set_client_metadata_json(NULL)", mcp_oauth_config_builder_set_client_metadata_json(b, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("set_static_client(NULL id)", mcp_oauth_config_builder_set_static_client(b, NULL, "s", NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("set_storage_callbacks(NULL)", mcp_oauth_config_builder_set_storage_callbacks(b, NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("set_handler_callbacks(NULL)", mcp_oauth_config_builder_set_handler_callbacks(b, NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);

    /* A storage struct missing a required callback is refused and not taken. */
    struct store s = {0};
    mcp_oauth_storage_callbacks cb = store_callbacks(&s);
    cb.set_client_info = NULL;
    CHECK_CODE("set_storage_callbacks without set_client_info", mcp_oauth_config_builder_set_storage_callbacks(b, &cb, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    mcp_oauth_handler_callbacks hcb = MCP_OAUTH_HANDLER_CALLBACKS_INIT;
    CHECK_CODE("set_handler_callbacks without callbacks", mcp_oauth_config_builder_set_handler_callbacks(b, &hcb, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    mcp_oauth_handler_callbacks unversioned = {0};
    CHECK_CODE("set_handler_callbacks with version 0 (not initialized with its _INIT macro)",
               mcp_oauth_config_builder_set_handler_callbacks(b, &unversioned, NULL), MCP_OAUTH_RESULT_INVALID_ARGUMENT);

    /* build consumes the builder even when provider_out is NULL. */
    err = NULL;
    CHECK_FAILURE("build(provider_out NULL)", mcp_oauth_config_builder_build(b, NULL, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    CHECK(atomic_load(&s.releases) == 0, "refused storage callbacks are not released");
    err = NULL;
    mcp_oauth_provider *p = NULL;
    CHECK_FAILURE("build(NULL builder)", mcp_oauth_config_builder_build(NULL, &p, &err), MCP_OAUTH_RESULT_NULL_PARAMETER,
                  err);
    CHECK(p == NULL, "no output on failure");

    err = NULL;
    CHECK_FAILURE("get_headers(NULL provider)", mcp_oauth_provider_get_headers(NULL, "POST", URL, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    CHECK(h == NULL, "header_out untouched on failure");
    err = NULL;
    CHECK_FAILURE("handle_response(NULL provider)",
                  mcp_oauth_provider_handle_response(NULL, "POST", URL, NULL, 401, NULL, NULL, 0, &retry, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("authorize(NULL provider)", mcp_oauth_provider_authorize(NULL, &err), MCP_OAUTH_RESULT_NULL_PARAMETER,
                  err);
    CHECK_CODE("authorize_async(NULL provider)", mcp_oauth_provider_authorize_async(NULL, NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("answer_set(NULL)", mcp_oauth_answer_set(NULL, "x"), MCP_OAUTH_RESULT_NULL_PARAMETER);

    /* With a real provider: NULL outputs, NULL arrays, NULL completions. */
    struct store st = {.tokens = "{\"access_token\": \"abc\", \"token_type\": \"Bearer\"}"};
    p = provider_with_store("https://mcp.example.com/mcp", &st);
    err = NULL;
    CHECK_FAILURE("get_headers(NULL header_out)", mcp_oauth_provider_get_headers(p, "POST", URL, NULL, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    const char *names[] = {"WWW-Authenticate", "Content-Type"};
    const char *values[] = {"Bearer", NULL};
    CHECK_FAILURE("handle_response(NULL names, count 1)",
                  mcp_oauth_provider_handle_response(p, "POST", URL, NULL, 401, NULL, values, 1, &retry, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("handle_response(NULL values, count 1)",
                  mcp_oauth_provider_handle_response(p, "POST", URL, NULL, 401, names, NULL, 1, &retry, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("handle_response(NULL value inside)",
                  mcp_oauth_provider_handle_response(p, "POST", URL, NULL, 401, names, values, 2, &retry, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    const char *null_name[] = {NULL};
    err = NULL;
    CHECK_FAILURE("handle_response(NULL name inside)",
                  mcp_oauth_provider_handle_response(p, "POST", URL, NULL, 401, null_name, values, 1, &retry, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("handle_response(NULL retry_out)",
                  mcp_oauth_provider_handle_response(p, "POST", URL, NULL, 200, NULL, NULL, 0, NULL, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("handle_response(NULL headers_out)",
                  mcp_oauth_provider_handle_response(p, "POST", URL, NULL, 200, NULL, NULL, 0, &retry, NULL, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("handle_response(NULL method)",
                  mcp_oauth_provider_handle_response(p, NULL, URL, NULL, 200, NULL, NULL, 0, &retry, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("handle_response(NULL url)",
                  mcp_oauth_provider_handle_response(p, "POST", NULL, NULL, 200, NULL, NULL, 0, &retry, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("get_headers(NULL method)", mcp_oauth_provider_get_headers(p, NULL, URL, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("get_headers(NULL url)", mcp_oauth_provider_get_headers(p, "POST", NULL, &h, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    CHECK(h == NULL, "headers_out untouched on failure");

    /* A response without headers: count 0 with NULL arrays, or with arrays. */
    retry = true;
    err = NULL;
    mcp_oauth_result rc =
        mcp_oauth_provider_handle_response(p, "POST", URL, "Bearer abc", 200, NULL, NULL, 0, &retry, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && !retry && h == NULL, "handle_response(200, 0 headers, NULL arrays): no retry");
    retry = true;
    rc = mcp_oauth_provider_handle_response(p, "GET", URL, NULL, 404, names, values, 0, &retry, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && !retry && h == NULL, "handle_response(404, count 0 with arrays): no retry");
    mcp_oauth_error_free(err);

    /* Headers are given only for the MCP server's origin. */
    err = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h && mcp_oauth_headers_count(h) == 1 &&
              !strcmp(mcp_oauth_headers_name(h, 0), "authorization") &&
              !strcmp(mcp_oauth_headers_value(h, 0), "Bearer abc") &&
              mcp_oauth_headers_value(h, 0) == mcp_oauth_headers_authorization(h) &&
              mcp_oauth_headers_name(h, 1) == NULL && mcp_oauth_headers_value(h, 1) == NULL,
          "get_headers: one header, authorization: Bearer abc");
    mcp_oauth_headers_free(h);
    h = NULL;
    rc = mcp_oauth_provider_get_headers(p, "GET", "https://elsewhere.example.com/mcp", &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h == NULL, "get_headers for another origin: OK, no headers");
    mcp_oauth_error_free(err);
    CHECK(mcp_oauth_headers_count(NULL) == 0 && mcp_oauth_headers_name(NULL, 0) == NULL &&
              mcp_oauth_headers_value(NULL, 0) == NULL && mcp_oauth_headers_authorization(NULL) == NULL,
          "headers accessors accept NULL");
    CHECK_CODE("get_headers_async(NULL completion)", mcp_oauth_provider_get_headers_async(p, "POST", URL, NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("get_headers_async(NULL url)", mcp_oauth_provider_get_headers_async(p, "POST", NULL, NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK(mcp_oauth_provider_redirect_uri(p) == NULL, "redirect_uri is NULL without the loopback receiver");
    CHECK(mcp_oauth_provider_redirect_uri(NULL) == NULL, "redirect_uri(NULL) is NULL");

    /* Error accessors on NULL. */
    CHECK(mcp_oauth_error_kind(NULL) == NULL && mcp_oauth_error_message(NULL) == NULL &&
              mcp_oauth_error_step(NULL) == NULL && mcp_oauth_error_http_status(NULL) == 0 &&
              mcp_oauth_error_code(NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "error accessors accept NULL");
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&st.releases) == 1, "storage released once when the provider is freed");
}

static void test_invalid_utf8(void)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    CHECK_CODE("set_server_url(invalid UTF-8)", mcp_oauth_config_builder_set_server_url(b, "https://\xff\xfe/mcp"),
               MCP_OAUTH_RESULT_INVALID_UTF8);
    CHECK_CODE("set_scope(invalid UTF-8)", mcp_oauth_config_builder_set_scope(b, "mcp:\xc3"), MCP_OAUTH_RESULT_INVALID_UTF8);
    CHECK_CODE("set_storage_file(invalid UTF-8)", mcp_oauth_config_builder_set_storage_file(b, "/tmp/\x80"),
               MCP_OAUTH_RESULT_INVALID_UTF8);
    mcp_oauth_config_builder_free(b);

    struct store st = {.tokens = "{\"access_token\": \"abc\", \"token_type\": \"Bearer\"}"};
    mcp_oauth_provider *p = provider_with_store("https://mcp.example.com/mcp", &st);
    bool retry = true;
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    /* The server's bytes are read, not refused: a Latin-1 header (name or
     * value) does not fail the call. */
    const char *names[] = {"X-Powered-\xff", "WWW-Authenticate"};
    const char *values[] = {"caf\xe9", "Bearer error=\"forbidden\", realm=\"\xe9t\xe9\""};
    CHECK_CODE("handle_response(Latin-1 response headers)",
               mcp_oauth_provider_handle_response(p, "POST", URL, NULL, 403, names, values, 2, &retry, &h, &err),
               MCP_OAUTH_RESULT_OK);
    CHECK(!retry && h == NULL && err == NULL, "a 403 that is not about scope, with Latin-1 headers: no retry");
    err = NULL;
    CHECK_FAILURE("handle_response(invalid UTF-8 sent header)",
                  mcp_oauth_provider_handle_response(p, "POST", URL, "Bearer \xff", 401, NULL, NULL, 0, &retry, &h, &err),
                  MCP_OAUTH_RESULT_INVALID_UTF8, err);
    err = NULL;
    CHECK_FAILURE("handle_response(invalid UTF-8 method)",
                  mcp_oauth_provider_handle_response(p, "P\xc3", URL, NULL, 401, NULL, NULL, 0, &retry, &h, &err),
                  MCP_OAUTH_RESULT_INVALID_UTF8, err);
    err = NULL;
    CHECK_FAILURE("handle_response(invalid UTF-8 url)",
                  mcp_oauth_provider_handle_response(p, "POST", "https://mcp.example.com/\x80", NULL, 401, NULL, NULL, 0,
                                                     &retry, &h, &err),
                  MCP_OAUTH_RESULT_INVALID_UTF8, err);
    err = NULL;
    CHECK_FAILURE("get_headers(invalid UTF-8 method)", mcp_oauth_provider_get_headers(p, "\xff", URL, &h, &err),
                  MCP_OAUTH_RESULT_INVALID_UTF8, err);
    err = NULL;
    CHECK_FAILURE("get_headers(invalid UTF-8 url)",
                  mcp_oauth_provider_get_headers(p, "POST", "https://mcp.example.com/\xfe", &h, &err),
                  MCP_OAUTH_RESULT_INVALID_UTF8, err);
    CHECK(h == NULL, "no headers on failure");
    mcp_oauth_provider_free(p);
}

static mcp_oauth_result build_with(const char *server_url, const char *metadata, mcp_oauth_error **err)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    if (server_url)
        mcp_oauth_config_builder_set_server_url(b, server_url);
    if (metadata)
        mcp_oauth_config_builder_set_client_metadata_json(b, metadata);
    mcp_oauth_provider *p = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, err);
    mcp_oauth_provider_free(p);
    return rc;
}

static void test_invalid_configuration(void)
{
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = build_with(NULL, METADATA, &err);
    CHECK(err && mcp_oauth_error_step(err) && !strcmp(mcp_oauth_error_step(err), "configuration"),
          "configuration errors name the step");
    CHECK_FAILURE("build without server URL", rc, MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    err = NULL;
    CHECK_FAILURE("build with a non-http server URL", build_with("ftp://example.com/mcp", METADATA, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    err = NULL;
    CHECK_FAILURE("build with client metadata that is not JSON", build_with("https://x.example/mcp", "{not json", &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    err = NULL;
    CHECK_FAILURE("build with plain-http non-loopback redirect URI",
                  build_with("https://x.example/mcp", "{\"redirect_uris\": [\"http://evil.example/cb\"]}", &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);

    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    CHECK_CODE("set_grant(7)", mcp_oauth_config_builder_set_grant(b, 7, NULL), MCP_OAUTH_RESULT_INVALID_ARGUMENT);
    CHECK_CODE("set_timeout_ms(0)", mcp_oauth_config_builder_set_timeout_ms(b, 0, NULL), MCP_OAUTH_RESULT_INVALID_ARGUMENT);
    mcp_oauth_config_builder_set_server_url(b, "https://x.example/mcp");
    mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
    mcp_oauth_provider *p = NULL;
    err = NULL;
    CHECK_FAILURE("client credentials without a client ID", mcp_oauth_config_builder_build(b, &p, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);

    b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, "https://x.example/mcp");
    mcp_oauth_config_builder_set_loopback_handler(b, "http://example.com:0/callback", 0);
    err = NULL;
    CHECK_FAILURE("loopback receiver on a non-loopback host", mcp_oauth_config_builder_build(b, &p, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);

    /* The loopback receiver binds, and its URI becomes the redirect URI. */
    b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, "https://x.example/mcp");
    mcp_oauth_config_builder_set_loopback_handler(b, NULL, 1000);
    err = NULL;
    rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK, "build with the loopback receiver");
    mcp_oauth_error_free(err);
    const char *uri = mcp_oauth_provider_redirect_uri(p);
    CHECK(uri && !strncmp(uri, "http://127.0.0.1:", 17) && !strstr(uri, ":0/"), "bound redirect URI %s",
          uri ? uri : "(null)");
    mcp_oauth_provider_free(p);

    CHECK_CODE("set_log_callback(level 9)", mcp_oauth_set_log_callback(NULL, NULL, 9), MCP_OAUTH_RESULT_INVALID_ARGUMENT);

    /* private_key_jwt: the key is checked when it is set, and never echoed. */
    b = mcp_oauth_config_builder_new();
    CHECK_CODE("set_private_key_jwt(NULL key)", mcp_oauth_config_builder_set_private_key_jwt(b, NULL, "ES256", NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    mcp_oauth_error *key_err = NULL;
    mcp_oauth_result key_rc =
        mcp_oauth_config_builder_set_private_key_jwt(b, "-----BEGIN PRIVATE KEY-----\nSECRETJUNK\n", "ES256", NULL, &key_err);
    CHECK(key_rc == MCP_OAUTH_RESULT_INVALID_CONFIGURATION && key_err && *mcp_oauth_error_message(key_err) &&
              !strstr(mcp_oauth_error_display(key_err), "SECRETJUNK"),
          "set_private_key_jwt(not a key): INVALID_CONFIGURATION, and err_out says why without the key (%s)",
          key_err ? mcp_oauth_error_message(key_err) : "no error object");
    mcp_oauth_error_free(key_err);
    CHECK_CODE("set_private_key_jwt(HS256)", mcp_oauth_config_builder_set_private_key_jwt(b, "x", "HS256", NULL, NULL),
               MCP_OAUTH_RESULT_INVALID_CONFIGURATION);
    static const char p256_key[] = /* a throwaway test key */
        "-----BEGIN PRIVATE KEY-----\n"
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQ86Z6UHX4TWeyJlf\n"
        "Mt436B8PWkF9z8fY5PDrplCycvShRANCAATuH1GTgLbcmNfuEMzpTSFHVtwKuCYd\n"
        "q60FeX2dtwFad9eAODTGKBY/FXq+dC8SjkINsmByD2ddOgFP2eDVWDfr\n"
        "-----END PRIVATE KEY-----\n";
    CHECK_CODE("set_private_key_jwt(P-256 PKCS#8)", mcp_oauth_config_builder_set_private_key_jwt(b, p256_key, "ES256", "k1", NULL),
               MCP_OAUTH_RESULT_OK);
    mcp_oauth_config_builder_free(b);
}

static void test_storage_failures(void)
{
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;

    /* Bad JSON from get_tokens: a storage error that does not echo the JSON. */
    struct store bad = {.tokens = "{\"access_token\": \"SECRET-TOKEN\", "};
    mcp_oauth_provider *p = provider_with_store("https://mcp.example.com/mcp", &bad);
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err);
    CHECK(err && strstr(mcp_oauth_error_message(err), "does not parse") &&
              !strstr(mcp_oauth_error_display(err), "SECRET"),
          "bad JSON: message says so without the JSON (%s)", err ? mcp_oauth_error_display(err) : "");
    CHECK(err && mcp_oauth_error_step(err) && !strcmp(mcp_oauth_error_step(err), "storage"), "bad JSON: step storage");
    CHECK_FAILURE("get_headers with bad JSON from get_tokens", rc, MCP_OAUTH_RESULT_STORAGE, err);
    CHECK(h == NULL, "no header on failure");
    mcp_oauth_provider_free(p);

    /* JSON of the wrong shape. */
    struct store shape = {.tokens = "{\"token_type\": \"Bearer\"}"};
    p = provider_with_store("https://mcp.example.com/mcp", &shape);
    err = NULL;
    CHECK_FAILURE("get_headers with a token missing access_token", mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err),
                  MCP_OAUTH_RESULT_STORAGE, err);
    mcp_oauth_provider_free(p);

    /* get_tokens returns failure. */
    struct store failing = {.get_tokens_rc = -3};
    p = provider_with_store("https://mcp.example.com/mcp", &failing);
    err = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err);
    CHECK(err && strstr(mcp_oauth_error_message(err), "returned -3"), "failing callback: message has its return value");
    CHECK_FAILURE("get_headers with failing get_tokens", rc, MCP_OAUTH_RESULT_STORAGE, err);
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&failing.releases) == 1, "storage released once");

    /* Nothing stored: OK with no header. */
    struct store empty = {0};
    p = provider_with_store("https://mcp.example.com/mcp", &empty);
    err = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h == NULL, "empty store: OK and no header");
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);

    /* A stored token: its header. */
    struct store good = {.tokens = "{\"access_token\": \"abc\", \"token_type\": \"Bearer\"}"};
    p = provider_with_store("https://mcp.example.com/mcp", &good);
    err = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h && !strcmp(mcp_oauth_headers_authorization(h), "Bearer abc"), "stored token gives its header (%s)", h ? mcp_oauth_headers_authorization(h) : "NULL");
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
}

/* ------------------------------------------------------------ handlers (peers) */

struct handler {
    int redirect_rc;
    int callback_rc;
    const char *answer;  /* what callback answers (NULL: nothing) */
    bool deny;           /* answer an access_denied redirect with the right state and iss */
    char state[128];     /* the state of the last authorization URL */
    atomic_int redirects;
    atomic_int releases;
};

static const char *issuer;

static int handler_redirect(void *userdata, const char *url)
{
    struct handler *h = userdata;
    atomic_fetch_add(&h->redirects, 1);
    const char *st = strstr(url, "&state=");
    if (!st)
        st = strstr(url, "?state=");
    h->state[0] = '\0';
    if (st) {
        st += 7;
        size_t n = strcspn(st, "&");
        if (n < sizeof h->state) {
            memcpy(h->state, st, n);
            h->state[n] = '\0';
        }
    }
    return strncmp(url, "http", 4) == 0 ? h->redirect_rc : 99;
}

static void percent_encode(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static int handler_callback(void *userdata, mcp_oauth_answer *answer)
{
    struct handler *h = userdata;
    if (h->deny) {
        char iss[256], redirect[1024];
        percent_encode(issuer, iss, sizeof iss);
        snprintf(redirect, sizeof redirect,
                 "http://127.0.0.1:33419/callback?error=access_denied&error_description=no+thanks&state=%s&iss=%s",
                 h->state, iss);
        mcp_oauth_answer_set(answer, redirect);
    } else if (h->answer) {
        mcp_oauth_answer_set(answer, h->answer);
    }
    return h->callback_rc;
}

static void handler_release(void *userdata)
{
    struct handler *h = userdata;
    atomic_fetch_add(&h->releases, 1);
}

static atomic_int log_lines;

static void count_log(void *userdata, mcp_oauth_log_level level, const char *target, const char *message)
{
    (void)userdata;
    if (level >= MCP_OAUTH_LOG_LEVEL_ERROR && level <= MCP_OAUTH_LOG_LEVEL_INFO && target && message && *message)
        atomic_fetch_add(&log_lines, 1);
}

static mcp_oauth_result authorize_with_handler(struct handler *h, mcp_oauth_error **err)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, mcp_url);
    mcp_oauth_config_builder_set_client_metadata_json(b, METADATA);
    mcp_oauth_handler_callbacks cb = {
        .version = MCP_OAUTH_HANDLER_CALLBACKS_VERSION,
        .userdata = h, .redirect = handler_redirect, .callback = handler_callback, .release = handler_release};
    mcp_oauth_config_builder_set_handler_callbacks(b, &cb, NULL);
    mcp_oauth_provider *p = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, err);
    if (rc != MCP_OAUTH_RESULT_OK)
        return rc;
    rc = mcp_oauth_provider_authorize(p, err);
    mcp_oauth_provider_free(p);
    return rc;
}

static void test_handler_failures(void)
{
    mcp_oauth_set_log_callback(count_log, NULL, MCP_OAUTH_LOG_LEVEL_INFO);

    struct handler redirect_fails = {.redirect_rc = 5};
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = authorize_with_handler(&redirect_fails, &err);
    CHECK(err && mcp_oauth_error_step(err) && !strcmp(mcp_oauth_error_step(err), "authorization") &&
              strstr(mcp_oauth_error_message(err), "returned 5"),
          "failing redirect callback: step authorization, return value in message");
    CHECK_FAILURE("authorize with a failing redirect callback", rc, MCP_OAUTH_RESULT_HANDLER, err);
    CHECK(atomic_load(&redirect_fails.redirects) == 1 && atomic_load(&redirect_fails.releases) == 1,
          "redirect called once, handler released once");

    struct handler callback_fails = {.callback_rc = 7};
    err = NULL;
    rc = authorize_with_handler(&callback_fails, &err);
    CHECK(err && mcp_oauth_error_step(err) && !strcmp(mcp_oauth_error_step(err), "callback"),
          "failing callback callback: step callback");
    CHECK_FAILURE("authorize with a failing callback callback", rc, MCP_OAUTH_RESULT_HANDLER, err);

    struct handler no_answer = {0};
    err = NULL;
    CHECK_FAILURE("authorize with a callback that answers nothing", authorize_with_handler(&no_answer, &err),
                  MCP_OAUTH_RESULT_HANDLER, err);

    struct handler forged = {.answer = "http://127.0.0.1:33419/callback?code=stolen&state=forged"};
    err = NULL;
    CHECK_FAILURE("authorize with a callback answering a wrong state", authorize_with_handler(&forged, &err),
                  MCP_OAUTH_RESULT_FLOW, err);

    struct handler denied = {.deny = true};
    err = NULL;
    rc = authorize_with_handler(&denied, &err);
    CHECK(err && mcp_oauth_error_oauth_error(err) && !strcmp(mcp_oauth_error_oauth_error(err), "access_denied") &&
              mcp_oauth_error_oauth_error_description(err) &&
              !strcmp(mcp_oauth_error_oauth_error_description(err), "no thanks"),
          "an error redirect gives the OAuth error fields");
    CHECK(rc != MCP_OAUTH_RESULT_OK, "an error redirect fails (%s)", mcp_oauth_result_name(rc));
    mcp_oauth_error_free(err);

    CHECK(atomic_load(&log_lines) > 0, "the log callback received %d lines", atomic_load(&log_lines));
    mcp_oauth_set_log_callback(NULL, NULL, MCP_OAUTH_LOG_LEVEL_OFF);
}

/* ------------------------------------------------------------ threads */

#define THREADS 8
#define CALLS_PER_THREAD 20000

struct thread_arg {
    mcp_oauth_provider *p;
    int failures;
};

static void *hammer(void *arg)
{
    struct thread_arg *a = arg;
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        mcp_oauth_headers *h = NULL;
        mcp_oauth_result rc = mcp_oauth_provider_get_headers(a->p, "POST", URL, &h, NULL);
        if (rc != MCP_OAUTH_RESULT_OK || !h || strcmp(mcp_oauth_headers_authorization(h), "Bearer abc") != 0)
            a->failures++;
        mcp_oauth_headers_free(h);
        if (i % 1000 == 0) {
            bool retry = true;
            h = NULL;
            rc = mcp_oauth_provider_handle_response(a->p, "POST", URL, "Bearer abc", 200, NULL, NULL, 0, &retry, &h,
                                                    NULL);
            if (rc != MCP_OAUTH_RESULT_OK || retry || h)
                a->failures++;
        }
    }
    return NULL;
}

static void test_threads(void)
{
    /* The first call from 8 threads at once: loading from storage happens once. */
    struct store st = {.tokens = "{\"access_token\": \"abc\", \"token_type\": \"Bearer\"}", .delay_ms = 50};
    mcp_oauth_provider *p = provider_with_store("https://mcp.example.com/mcp", &st);
    pthread_t t[THREADS];
    struct thread_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct thread_arg){.p = p};
        pthread_create(&t[i], NULL, hammer, &args[i]);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failures += args[i].failures;
    }
    CHECK(failures == 0, "%d threads x %d header-mode calls: %d failures", THREADS, CALLS_PER_THREAD, failures);
    CHECK(atomic_load(&st.get_calls) == 1, "stored tokens loaded once (%d)", atomic_load(&st.get_calls));
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&st.releases) == 1, "storage released once after the threads");
}

/* ------------------------------------------------------------ async */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    mcp_oauth_result result;
    char value[256];
    char kind[64];
    /* A blocking call and an async call made from inside the completion. */
    mcp_oauth_provider *reenter;
    mcp_oauth_result reenter_blocking;
    mcp_oauth_result reenter_async;
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void waiter_destroy(struct waiter *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void on_done(void *userdata, mcp_oauth_result result, const mcp_oauth_headers *headers,
                    const mcp_oauth_error *error)
{
    const char *value = mcp_oauth_headers_authorization(headers);
    struct waiter *w = userdata;
    /* Take the provider to re-enter under the lock, so that only the first
     * completion re-enters even when the nested one finishes first. */
    pthread_mutex_lock(&w->mu);
    mcp_oauth_provider *reenter = w->reenter;
    w->reenter = NULL; /* the nested completion only counts */
    pthread_mutex_unlock(&w->mu);
    if (reenter) {
        mcp_oauth_headers *h = NULL;
        mcp_oauth_result blocking = mcp_oauth_provider_get_headers(reenter, "POST", URL, &h, NULL);
        mcp_oauth_headers_free(h);
        pthread_mutex_lock(&w->mu);
        w->reenter_blocking = blocking;
        pthread_mutex_unlock(&w->mu);
        mcp_oauth_result async = mcp_oauth_provider_get_headers_async(reenter, "POST", URL, on_done, w);
        pthread_mutex_lock(&w->mu);
        w->reenter_async = async;
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->result = result;
    snprintf(w->value, sizeof w->value, "%s", value ? value : "");
    snprintf(w->kind, sizeof w->kind, "%s", error ? mcp_oauth_error_kind(error) : "");
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int wait_calls(struct waiter *w, int calls, long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (w->calls < calls) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &deadline) != 0)
            break;
    }
    int got = w->calls;
    pthread_mutex_unlock(&w->mu);
    return got;
}

static void test_free_while_in_flight(void)
{
    struct store st = {.tokens = "{\"access_token\": \"slow\", \"token_type\": \"Bearer\"}", .delay_ms = 300};
    mcp_oauth_provider *p = provider_with_store("https://mcp.example.com/mcp", &st);
    struct waiter w;
    waiter_init(&w);
    CHECK(mcp_oauth_provider_get_headers_async(p, "POST", URL, on_done, &w) == MCP_OAUTH_RESULT_OK, "get_headers_async starts");
    mcp_oauth_provider_free(p); /* while get_tokens sleeps */
    CHECK(atomic_load(&st.releases) == 0, "storage not released while its callback runs");
    CHECK(wait_calls(&w, 1, 5000) == 1, "the completion fires after the provider was freed");
    CHECK(w.result == MCP_OAUTH_RESULT_CANCELLED && !strcmp(w.kind, "cancelled") && !w.value[0],
          "freeing the provider cancelled the operation (%s, %s)", mcp_oauth_result_name(w.result), w.value);
    sleep_ms(400);
    CHECK(w.calls == 1, "exactly once");
    CHECK(atomic_load(&st.releases) == 1, "storage released once, after its callback returned");
    waiter_destroy(&w);

    /* A failing operation, freed in flight: cancelled as well. */
    struct store failing = {.get_tokens_rc = 4, .delay_ms = 200};
    p = provider_with_store("https://mcp.example.com/mcp", &failing);
    waiter_init(&w);
    CHECK(mcp_oauth_provider_get_headers_async(p, "POST", URL, on_done, &w) == MCP_OAUTH_RESULT_OK, "a failing operation starts");
    mcp_oauth_provider_free(p);
    CHECK(wait_calls(&w, 1, 5000) == 1, "its completion fires after the free");
    CHECK(w.result == MCP_OAUTH_RESULT_CANCELLED && !strcmp(w.kind, "cancelled"), "with CANCELLED (%s)", w.kind);
    sleep_ms(300);
    CHECK(w.calls == 1, "exactly once");
    CHECK(atomic_load(&failing.releases) == 1, "storage released once");
    waiter_destroy(&w);
}

static void test_would_deadlock(void)
{
    /* A blocking call from inside a storage callback. */
    struct store st = {.tokens = "{\"access_token\": \"abc\", \"token_type\": \"Bearer\"}"};
    mcp_oauth_provider *p = provider_with_store("https://mcp.example.com/mcp", &st);
    st.reenter = p;
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h && !strcmp(mcp_oauth_headers_authorization(h), "Bearer abc"), "the outer call still succeeds");
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(err);
    CHECK_CODE("get_headers from a storage callback", (mcp_oauth_result)atomic_load(&st.reenter_get_rc),
               MCP_OAUTH_RESULT_WOULD_DEADLOCK);
    CHECK(atomic_load(&st.reenter_kind_ok), "its error object has kind would_deadlock and a message");
    CHECK_CODE("authorize from a storage callback", (mcp_oauth_result)atomic_load(&st.reenter_authorize_rc),
               MCP_OAUTH_RESULT_WOULD_DEADLOCK);

    /* A blocking call from a completion fails; an async one works. */
    struct waiter w;
    waiter_init(&w);
    w.reenter = p;
    CHECK(mcp_oauth_provider_get_headers_async(p, "POST", URL, on_done, &w) == MCP_OAUTH_RESULT_OK, "async starts");
    CHECK(wait_calls(&w, 2, 5000) == 2, "outer and nested completions both fire");
    CHECK_CODE("get_headers from a completion", w.reenter_blocking, MCP_OAUTH_RESULT_WOULD_DEADLOCK);
    CHECK_CODE("get_headers_async from a completion", w.reenter_async, MCP_OAUTH_RESULT_OK);
    CHECK(w.result == MCP_OAUTH_RESULT_OK && !strcmp(w.value, "Bearer abc"), "nested completion has the header");
    waiter_destroy(&w);

    /* handle_response_async: a 200 needs no retry (value NULL); bad input
     * is refused before anything starts. */
    waiter_init(&w);
    CHECK(mcp_oauth_provider_handle_response_async(p, "POST", URL, "Bearer abc", 200, NULL, NULL, 0, on_done, &w) ==
              MCP_OAUTH_RESULT_OK,
          "handle_response_async starts");
    CHECK(wait_calls(&w, 1, 5000) == 1 && w.result == MCP_OAUTH_RESULT_OK && w.value[0] == '\0',
          "handle_response_async(200): OK, no retry header");
    const char *bad[] = {"Bearer"};
    CHECK_CODE("handle_response_async(invalid UTF-8 sent header)",
               mcp_oauth_provider_handle_response_async(p, "POST", URL, "Bearer \xff", 401, NULL, NULL, 0, on_done, &w),
               MCP_OAUTH_RESULT_INVALID_UTF8);
    CHECK_CODE("handle_response_async(NULL method)",
               mcp_oauth_provider_handle_response_async(p, NULL, URL, NULL, 401, NULL, NULL, 0, on_done, &w),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("handle_response_async(NULL names, count 1)",
               mcp_oauth_provider_handle_response_async(p, "POST", URL, NULL, 401, NULL, bad, 1, on_done, &w),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("get_headers_async(invalid UTF-8 url)",
               mcp_oauth_provider_get_headers_async(p, "POST", "https://\xff/", on_done, &w),
               MCP_OAUTH_RESULT_INVALID_UTF8);
    sleep_ms(100);
    CHECK(w.calls == 1, "a refused async operation never calls its completion");
    waiter_destroy(&w);
    mcp_oauth_provider_free(p);
}

/* ------------------------------------------------------------ new settings */

static void test_new_setters(void)
{
    CHECK_CODE("set_authorization_timeout_ms(NULL builder)", mcp_oauth_config_builder_set_authorization_timeout_ms(NULL, 1, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("set_lease_wait_ms(NULL builder)", mcp_oauth_config_builder_set_lease_wait_ms(NULL, 1),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("set_resource_parameter(NULL builder)",
               mcp_oauth_config_builder_set_resource_parameter(NULL, MCP_OAUTH_RESOURCE_PARAMETER_OMIT, NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("add_authorization_param(NULL builder)", mcp_oauth_config_builder_add_authorization_param(NULL, "a", "b", NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("add_token_param(NULL builder)", mcp_oauth_config_builder_add_token_param(NULL, "a", "b", NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);

    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    CHECK_CODE("set_authorization_timeout_ms(0)", mcp_oauth_config_builder_set_authorization_timeout_ms(b, 0, NULL),
               MCP_OAUTH_RESULT_INVALID_ARGUMENT);
    CHECK_CODE("set_authorization_timeout_ms(60000)", mcp_oauth_config_builder_set_authorization_timeout_ms(b, 60000, NULL),
               MCP_OAUTH_RESULT_OK);
    CHECK_CODE("set_lease_wait_ms(0): do not wait", mcp_oauth_config_builder_set_lease_wait_ms(b, 0), MCP_OAUTH_RESULT_OK);

    CHECK_CODE("set_resource_parameter(OVERRIDE, NULL)",
               mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_OVERRIDE, NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("set_resource_parameter(OVERRIDE, \"\")",
               mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_OVERRIDE, "", NULL),
               MCP_OAUTH_RESULT_INVALID_ARGUMENT);
    CHECK_CODE("set_resource_parameter(OVERRIDE, invalid UTF-8)",
               mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_OVERRIDE, "https://\xff", NULL),
               MCP_OAUTH_RESULT_INVALID_UTF8);
    CHECK_CODE("set_resource_parameter(SEND, a value)",
               mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_SEND, "https://x", NULL),
               MCP_OAUTH_RESULT_INVALID_ARGUMENT);
    CHECK_CODE("set_resource_parameter(99)", mcp_oauth_config_builder_set_resource_parameter(b, 99, NULL, NULL),
               MCP_OAUTH_RESULT_INVALID_ARGUMENT);
    CHECK_CODE("set_resource_parameter(OMIT)",
               mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_OMIT, NULL, NULL),
               MCP_OAUTH_RESULT_OK);
    CHECK_CODE("set_resource_parameter(OVERRIDE, value)",
               mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_OVERRIDE, "https://api.x", NULL),
               MCP_OAUTH_RESULT_OK);

    CHECK_CODE("add_authorization_param(NULL name)", mcp_oauth_config_builder_add_authorization_param(b, NULL, "v", NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("add_authorization_param(NULL value)", mcp_oauth_config_builder_add_authorization_param(b, "n", NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("add_authorization_param(empty name)", mcp_oauth_config_builder_add_authorization_param(b, "", "v", NULL),
               MCP_OAUTH_RESULT_INVALID_ARGUMENT);
    CHECK_CODE("add_authorization_param(invalid UTF-8)", mcp_oauth_config_builder_add_authorization_param(b, "n", "\xc3(", NULL),
               MCP_OAUTH_RESULT_INVALID_UTF8);
    CHECK_CODE("add_token_param(NULL name)", mcp_oauth_config_builder_add_token_param(b, NULL, "v", NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("add_token_param(empty name)", mcp_oauth_config_builder_add_token_param(b, "", "v", NULL),
               MCP_OAUTH_RESULT_INVALID_ARGUMENT);
    CHECK_CODE("add_token_param(invalid UTF-8 name)", mcp_oauth_config_builder_add_token_param(b, "\x80", "v", NULL),
               MCP_OAUTH_RESULT_INVALID_UTF8);
    CHECK(mcp_oauth_config_builder_add_authorization_param(b, "audience", "a", NULL) == MCP_OAUTH_RESULT_OK &&
              mcp_oauth_config_builder_add_authorization_param(b, "prompt", "consent", NULL) == MCP_OAUTH_RESULT_OK &&
              mcp_oauth_config_builder_add_token_param(b, "audience", "a", NULL) == MCP_OAUTH_RESULT_OK &&
              mcp_oauth_config_builder_add_token_param(b, "x", "", NULL) == MCP_OAUTH_RESULT_OK,
          "extra parameters: several calls");
    CHECK_CODE("set_static_client(invalid UTF-8 issuer)",
               mcp_oauth_config_builder_set_static_client(b, "id", "secret", NULL, "https://\xfe"),
               MCP_OAUTH_RESULT_INVALID_UTF8);
    CHECK_CODE("set_static_client(issuer)",
               mcp_oauth_config_builder_set_static_client(b, "id", "secret", NULL, "https://auth.example.com"),
               MCP_OAUTH_RESULT_OK);
    mcp_oauth_config_builder_free(b);

    /* An issuer that is not a URL is refused by build. */
    b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, URL);
    mcp_oauth_config_builder_set_client_metadata_json(b, METADATA);
    mcp_oauth_config_builder_set_static_client(b, "id", "secret", NULL, "not a url");
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    CHECK_FAILURE("build with an issuer that is not a URL", mcp_oauth_config_builder_build(b, &p, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    CHECK(p == NULL, "no provider on failure");

    CHECK(!strcmp(mcp_oauth_result_name(MCP_OAUTH_RESULT_SERVER), "server") && MCP_OAUTH_RESULT_SERVER == 13,
          "result_name(SERVER) is server, number 13");
    uint64_t ms = 42;
    CHECK(!mcp_oauth_error_retry_after_ms(NULL, &ms) && ms == 42, "retry_after_ms(NULL error): false, nothing written");
}

/* ------------------------------------------------------------ a mock authorization server */

/* A tiny HTTP/1.1 server on 127.0.0.1 (one connection at a time, Connection:
 * close): the MCP server's protected resource metadata, the authorization
 * server's metadata, and a token endpoint that is down (503 with Retry-After,
 * an HTML page) or answers a token. It records the last token request's body. */
struct mock {
    int listener;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    bool token_down;
    int token_requests;
    char last_token_body[4096];
    atomic_bool stop;
};

static void mock_respond(int fd, const char *status, const char *extra, const char *type, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n", status,
                     type, strlen(body), extra);
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0)
        return;
}

static void mock_serve(struct mock *m, int fd)
{
    char req[8192];
    size_t len = 0;
    char *end = NULL;
    while (len < sizeof req - 1) {
        ssize_t r = read(fd, req + len, sizeof req - 1 - len);
        if (r <= 0)
            return;
        len += (size_t)r;
        req[len] = '\0';
        if ((end = strstr(req, "\r\n\r\n")))
            break;
    }
    if (!end)
        return;
    size_t content_length = 0;
    const char *cl = strcasestr(req, "\r\ncontent-length:");
    if (cl && cl < end)
        content_length = (size_t)strtoul(cl + 17, NULL, 10);
    size_t have = len - (size_t)(end + 4 - req);
    while (have < content_length && len < sizeof req - 1) {
        ssize_t r = read(fd, req + len, sizeof req - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        have += (size_t)r;
        req[len] = '\0';
    }
    char base[64], body[1024];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", m->port);
    if (!strncmp(req, "GET /.well-known/oauth-protected-resource", 41)) {
        snprintf(body, sizeof body, "{\"resource\": \"%s/mcp\", \"authorization_servers\": [\"%s\"]}", base, base);
        mock_respond(fd, "200 OK", "", "application/json", body);
    } else if (!strncmp(req, "GET /.well-known/oauth-authorization-server ", 44)) {
        snprintf(body, sizeof body,
                 "{\"issuer\": \"%s\", \"authorization_endpoint\": \"%s/authorize\", \"token_endpoint\": \"%s/token\", "
                 "\"response_types_supported\": [\"code\"], \"grant_types_supported\": [\"client_credentials\"], "
                 "\"code_challenge_methods_supported\": [\"S256\"], "
                 "\"token_endpoint_auth_methods_supported\": [\"client_secret_post\"]}",
                 base, base, base);
        mock_respond(fd, "200 OK", "", "application/json", body);
    } else if (!strncmp(req, "POST /token ", 12)) {
        pthread_mutex_lock(&m->mu);
        m->token_requests++;
        snprintf(m->last_token_body, sizeof m->last_token_body, "%s", end + 4);
        bool down = m->token_down;
        pthread_mutex_unlock(&m->mu);
        if (down)
            mock_respond(fd, "503 Service Unavailable", "Retry-After: 7\r\n", "text/html",
                         "<html><body>down for maintenance</body></html>");
        else
            mock_respond(fd, "200 OK", "Cache-Control: no-store\r\n", "application/json",
                         "{\"access_token\": \"mock-token\", \"token_type\": \"Bearer\", \"expires_in\": 3600}");
    } else {
        mock_respond(fd, "404 Not Found", "", "text/plain", "not found");
    }
}

static void *mock_loop(void *arg)
{
    struct mock *m = arg;
    while (!atomic_load(&m->stop)) {
        int fd = accept(m->listener, NULL, NULL);
        if (fd < 0)
            continue;
        if (!atomic_load(&m->stop))
            mock_serve(m, fd);
        close(fd);
    }
    return NULL;
}

static int mock_start(struct mock *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (m->listener < 0 || bind(m->listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(m->listener, 16) != 0 || getsockname(m->listener, (struct sockaddr *)&addr, &alen) != 0)
        return -1;
    m->port = ntohs(addr.sin_port);
    return pthread_create(&m->thread, NULL, mock_loop, m);
}

static void mock_stop(struct mock *m)
{
    atomic_store(&m->stop, true);
    /* Wake accept() with one last connection. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)m->port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0) {
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
            perror("mock_stop: connect");
        close(fd);
    }
    pthread_join(m->thread, NULL);
    close(m->listener);
    pthread_mutex_destroy(&m->mu);
}

/* A client-credentials provider for the mock; `configure` adds settings. */
static mcp_oauth_provider *mock_provider(const struct mock *m, const char *issuer_pin,
                                         void (*configure)(mcp_oauth_config_builder *))
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/mcp", m->port);
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, url);
    mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
    mcp_oauth_config_builder_set_static_client(b, "mock-client", "mock-secret", NULL, issuer_pin);
    mcp_oauth_config_builder_set_timeout_ms(b, 5000, NULL);
    if (configure)
        configure(b);
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && p, "build a client-credentials provider for the mock (%s)",
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return p;
}

static void configure_extras(mcp_oauth_config_builder *b)
{
    mcp_oauth_config_builder_add_token_param(b, "audience", "https://api.example.com", NULL);
    mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_OVERRIDE, "https://api.example.com/", NULL);
}

static void configure_omit(mcp_oauth_config_builder *b)
{
    mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_OMIT, NULL, NULL);
}

static void test_mock_server(void)
{
    struct mock m;
    if (mock_start(&m) != 0) {
        CHECK(0, "the mock authorization server starts");
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/mcp", m.port);

    /* The token endpoint is down: kind server, its status and Retry-After. */
    m.token_down = true;
    mcp_oauth_provider *p = mock_provider(&m, NULL, NULL);
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", url, &h, &err);
    uint64_t ms = 0;
    bool said = err && mcp_oauth_error_retry_after_ms(err, &ms);
    CHECK(said && ms == 7000, "503 Retry-After: 7 gives retry_after_ms 7000 (%llu)", (unsigned long long)ms);
    CHECK(err && mcp_oauth_error_http_status(err) == 503 && !strstr(mcp_oauth_error_display(err), "mock-secret"),
          "the error has HTTP 503 and no secret (%s)", err ? mcp_oauth_error_display(err) : "");
    CHECK(!mcp_oauth_error_retry_after_ms(err, NULL), "retry_after_ms with a NULL output: false");
    CHECK_FAILURE("get_headers with the token endpoint down", rc, MCP_OAUTH_RESULT_SERVER, err);
    CHECK(h == NULL, "no headers on failure");

    /* Back up: the same provider gets a token. */
    pthread_mutex_lock(&m.mu);
    m.token_down = false;
    pthread_mutex_unlock(&m.mu);
    err = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", url, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h && !strcmp(mcp_oauth_headers_authorization(h), "Bearer mock-token"),
          "after the outage: Bearer mock-token (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(err);
    pthread_mutex_lock(&m.mu);
    CHECK(strstr(m.last_token_body, "resource=http%3A%2F%2F127.0.0.1") != NULL,
          "by default the discovered resource is sent (%s)", m.last_token_body);
    pthread_mutex_unlock(&m.mu);
    mcp_oauth_provider_free(p);

    /* An extra token parameter and an overridden resource reach the token endpoint. */
    p = mock_provider(&m, NULL, configure_extras);
    h = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", url, &h, NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h, "a token with extra settings");
    mcp_oauth_headers_free(h);
    pthread_mutex_lock(&m.mu);
    CHECK(strstr(m.last_token_body, "audience=https%3A%2F%2Fapi.example.com") != NULL,
          "the extra token parameter is sent (%s)", m.last_token_body);
    CHECK(strstr(m.last_token_body, "resource=https%3A%2F%2Fapi.example.com%2F") != NULL &&
              !strstr(m.last_token_body, "127.0.0.1"),
          "the overridden resource is sent instead of the discovered one");
    pthread_mutex_unlock(&m.mu);
    mcp_oauth_provider_free(p);

    /* An omitted resource is not sent. */
    p = mock_provider(&m, NULL, configure_omit);
    h = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", url, &h, NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h, "a token without resource");
    mcp_oauth_headers_free(h);
    pthread_mutex_lock(&m.mu);
    CHECK(!strstr(m.last_token_body, "resource="), "no resource parameter (%s)", m.last_token_body);
    pthread_mutex_unlock(&m.mu);
    mcp_oauth_provider_free(p);

    /* Credentials pinned to another issuer never reach this one. */
    pthread_mutex_lock(&m.mu);
    int before = m.token_requests;
    pthread_mutex_unlock(&m.mu);
    p = mock_provider(&m, "https://auth.elsewhere.example.com", NULL);
    err = NULL;
    h = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", url, &h, &err);
    CHECK(err && mcp_oauth_error_message(err) && strstr(mcp_oauth_error_message(err), "pinned"),
          "a pinned issuer refuses another's metadata (%s)", err ? mcp_oauth_error_display(err) : "");
    CHECK_FAILURE("get_headers with credentials pinned to another issuer", rc, MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    pthread_mutex_lock(&m.mu);
    CHECK(m.token_requests == before, "no token request reached the other issuer");
    pthread_mutex_unlock(&m.mu);
    mcp_oauth_provider_free(p);

    /* Pinned to this issuer: works. */
    char issuer_url[64];
    snprintf(issuer_url, sizeof issuer_url, "http://127.0.0.1:%d", m.port);
    p = mock_provider(&m, issuer_url, NULL);
    h = NULL;
    rc = mcp_oauth_provider_get_headers(p, "POST", url, &h, NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h, "credentials pinned to this issuer get a token");
    mcp_oauth_headers_free(h);
    mcp_oauth_provider_free(p);

    mock_stop(&m);
}

int main(void)
{
    mcp_url = need_env("MCP_URL");
    issuer = need_env("ISSUER");
    test_version_and_names();
    test_null_arguments();
    test_invalid_utf8();
    test_invalid_configuration();
    test_storage_failures();
    test_handler_failures();
    test_threads();
    test_free_while_in_flight();
    test_would_deadlock();
    test_new_setters();
    test_mock_server();
    return check_finish();
}
