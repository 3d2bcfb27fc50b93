/*
 * The Redis store through the C API: the setters' errors (NULL, bad UTF-8, a
 * key of the wrong length, no key without the explicit opt-out, Redis
 * settings with another storage), then, against a real redis-server and the
 * peers, the full flow with the Redis store and a second provider that loads
 * the tokens from Redis without any flow; a wrong password is a storage error
 * that does not show the password.
 *
 * Environment (tests/c/run.sh sets it): MCP_URL, PRM_URL, BROWSER, REDIS_URL
 * (redis://127.0.0.1:PORT of a server the script started), REDIS_PREFIX.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>

#include "check.h"

static const char *mcp_url, *prm_url, *redis_url, *redis_prefix;
static const uint8_t key_k1[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static mcp_oauth_config_builder *base_builder(void)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    CHECK(mcp_oauth_config_builder_set_server_url(b, mcp_url) == MCP_OAUTH_RESULT_OK, "set_server_url");
    CHECK(mcp_oauth_config_builder_set_client_metadata_json(
              b, "{\"client_name\": \"c redis test\", \"redirect_uris\": [\"http://127.0.0.1:0/callback\"], "
                 "\"grant_types\": [\"authorization_code\", \"refresh_token\"]}") == MCP_OAUTH_RESULT_OK,
          "set_client_metadata_json");
    CHECK(mcp_oauth_config_builder_set_loopback_handler(b, NULL, 30000) == MCP_OAUTH_RESULT_OK, "set_loopback_handler");
    return b;
}

static mcp_oauth_provider *redis_provider(const char *url)
{
    mcp_oauth_config_builder *b = base_builder();
    mcp_oauth_error *err = NULL;
    CHECK(mcp_oauth_config_builder_set_storage_redis(b, url, &err) == MCP_OAUTH_RESULT_OK, "set_storage_redis");
    mcp_oauth_error_free(err);
    CHECK(mcp_oauth_config_builder_set_redis_key_prefix(b, redis_prefix) == MCP_OAUTH_RESULT_OK,
          "set_redis_key_prefix");
    err = NULL;
    CHECK(mcp_oauth_config_builder_add_redis_encryption_key(b, "k1", key_k1, sizeof key_k1, &err) ==
              MCP_OAUTH_RESULT_OK,
          "add_redis_encryption_key");
    mcp_oauth_error_free(err);
    mcp_oauth_provider *p = NULL;
    err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && p, "build with the Redis store (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return p;
}

static void setter_errors(void)
{
    mcp_oauth_error *err = NULL;
    CHECK_FAILURE("set_storage_redis(NULL builder)", mcp_oauth_config_builder_set_storage_redis(NULL, redis_url, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    mcp_oauth_config_builder *b = base_builder();
    err = NULL;
    CHECK_FAILURE("set_storage_redis(NULL urls)", mcp_oauth_config_builder_set_storage_redis(b, NULL, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("set_storage_redis(invalid UTF-8)", mcp_oauth_config_builder_set_storage_redis(b, "redis://\x80", &err),
                  MCP_OAUTH_RESULT_INVALID_UTF8, err);
    err = NULL;
    CHECK_FAILURE("set_storage_redis(\"\")", mcp_oauth_config_builder_set_storage_redis(b, " ", &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    CHECK(mcp_oauth_config_builder_set_redis_key_prefix(b, NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "set_redis_key_prefix(NULL)");
    CHECK(mcp_oauth_config_builder_set_redis_allow_unencrypted_values(NULL, true) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "set_redis_allow_unencrypted_values(NULL builder)");
    err = NULL;
    CHECK_FAILURE("add_redis_encryption_key(NULL key)",
                  mcp_oauth_config_builder_add_redis_encryption_key(b, "k", NULL, 32, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    err = NULL;
    CHECK_FAILURE("add_redis_encryption_key(NULL id)",
                  mcp_oauth_config_builder_add_redis_encryption_key(b, NULL, key_k1, 32, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    /* A 16-byte key: refused, and the message shows no key byte. */
    err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_add_redis_encryption_key(b, "short", key_k1, 16, &err);
    const char *msg = err ? mcp_oauth_error_message(err) : "";
    CHECK(rc == MCP_OAUTH_RESULT_INVALID_CONFIGURATION && strstr(msg, "32"), "a 16-byte key is refused: %s", msg);
    mcp_oauth_error_free(err);
    err = NULL;
    CHECK_FAILURE("add_redis_encryption_key(bad id)",
                  mcp_oauth_config_builder_add_redis_encryption_key(b, "a:b", key_k1, 32, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);

    /* No key and no opt-out: build refuses, naming the opt-out. */
    err = NULL;
    CHECK(mcp_oauth_config_builder_set_storage_redis(b, redis_url, &err) == MCP_OAUTH_RESULT_OK, "set_storage_redis");
    mcp_oauth_provider *p = NULL;
    err = NULL;
    rc = mcp_oauth_config_builder_build(b, &p, &err);
    msg = err ? mcp_oauth_error_message(err) : "";
    CHECK(rc == MCP_OAUTH_RESULT_INVALID_CONFIGURATION && !p && strstr(msg, "allow_unencrypted_values"),
          "no key, no opt-out: refused (%s)", msg);
    mcp_oauth_error_free(err);

    /* The explicit opt-out builds. */
    b = base_builder();
    CHECK(mcp_oauth_config_builder_set_storage_redis(b, redis_url, NULL) == MCP_OAUTH_RESULT_OK, "set_storage_redis");
    CHECK(mcp_oauth_config_builder_set_redis_allow_unencrypted_values(b, true) == MCP_OAUTH_RESULT_OK,
          "set_redis_allow_unencrypted_values(true)");
    p = NULL;
    CHECK(mcp_oauth_config_builder_build(b, &p, NULL) == MCP_OAUTH_RESULT_OK && p, "unencrypted by explicit opt-out");
    mcp_oauth_provider_free(p);

    /* Redis settings with another storage: refused rather than ignored. */
    b = base_builder();
    CHECK(mcp_oauth_config_builder_add_redis_encryption_key(b, "k1", key_k1, 32, NULL) == MCP_OAUTH_RESULT_OK,
          "add_redis_encryption_key");
    p = NULL;
    err = NULL;
    rc = mcp_oauth_config_builder_build(b, &p, &err);
    msg = err ? mcp_oauth_error_message(err) : "";
    CHECK(rc == MCP_OAUTH_RESULT_INVALID_CONFIGURATION && strstr(msg, "set_storage_redis"),
          "a key without the Redis storage is refused (%s)", msg);
    mcp_oauth_error_free(err);
}

int main(void)
{
    mcp_url = need_env("MCP_URL");
    prm_url = need_env("PRM_URL");
    redis_url = need_env("REDIS_URL");
    redis_prefix = need_env("REDIS_PREFIX");
    need_env("BROWSER");

    setter_errors();

    /* The flow with the Redis store. */
    mcp_oauth_provider *p = redis_provider(redis_url);
    if (!p)
        return check_finish();
    char challenge[1024];
    snprintf(challenge, sizeof challenge,
             "Bearer error=\"invalid_token\", error_description=\"Authentication required\", resource_metadata=\"%s\"",
             prm_url);
    const char *names[] = {"www-authenticate"};
    const char *values[] = {challenge};
    bool retry = false;
    mcp_oauth_headers *first = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc =
        mcp_oauth_provider_handle_response(p, "POST", mcp_url, NULL, 401, names, values, 1, &retry, &first, &err);
    const char *first_auth = mcp_oauth_headers_authorization(first);
    CHECK(rc == MCP_OAUTH_RESULT_OK && retry && first_auth, "401 runs the flow with the Redis store (%s)",
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);

    /* Another provider (another process of the fleet) on the same Redis: the
     * tokens come from Redis, no flow. */
    mcp_oauth_provider *p2 = redis_provider(redis_url);
    mcp_oauth_headers *h = NULL;
    err = NULL;
    rc = mcp_oauth_provider_get_headers(p2, "POST", mcp_url, &h, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h && first_auth && !strcmp(mcp_oauth_headers_authorization(h), first_auth),
          "a second provider loads the token from Redis (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(err);

    /* A wrong password: a storage error naming the store, password redacted. */
    char bad_url[512];
    const char *hostport = strstr(redis_url, "://");
    snprintf(bad_url, sizeof bad_url, "redis://fleet:not-the-password@%s", hostport ? hostport + 3 : redis_url);
    mcp_oauth_provider *p3 = redis_provider(bad_url);
    h = NULL;
    err = NULL;
    rc = mcp_oauth_provider_get_headers(p3, "POST", mcp_url, &h, &err);
    const char *msg = err ? mcp_oauth_error_display(err) : "";
    CHECK(rc == MCP_OAUTH_RESULT_STORAGE && !h && strstr(msg, "fleet:***@") && !strstr(msg, "not-the-password"),
          "a wrong password is a storage error without the password: %s", msg);
    mcp_oauth_error_free(err);

    mcp_oauth_headers_free(first);
    mcp_oauth_provider_free(p3);
    mcp_oauth_provider_free(p2);
    mcp_oauth_provider_free(p);
    return check_finish();
}
