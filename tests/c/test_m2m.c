/*
 * The machine-to-machine setters through the C API: DPoP keys, a key held by
 * the host (the signing callback, answered from another thread, failing,
 * never answering, answering garbage), workload identity and enterprise
 * settings refused when incomplete, and each callback struct's userdata
 * released exactly once.
 *
 * Needs the peers: MCP_URL (tests/c/run.sh sets it). The token endpoint is
 * never reached: every signing failure stops the grant before it.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "check.h"

static const char *mcp_url;

/* A test key (P-256, PKCS#8), made for the tests only. */
static const char *const EC_KEY =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgTCK0wpUEFs30a7Zt\n"
    "xnGgJ0/lNorH76SQfU+VYX/xJJWhRANCAAQkEYK8aKaEjNbV/j9A94A/wBRn5HUy\n"
    "ywcOwZuGgU2tZZZLOotEH7VxenUe6UUsg2DLst1a9NQVaw0y3gz960+C\n"
    "-----END PRIVATE KEY-----\n";

enum answer { ANSWER_FAIL_FROM_THREAD, ANSWER_NEVER, ANSWER_GARBAGE };

struct host_key {
    enum answer answer;
    atomic_int signs;
    atomic_int releases;
    mcp_oauth_signature *pending; /* kept unanswered by ANSWER_NEVER */
};

static void *fail_later(void *arg)
{
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    mcp_oauth_signature_fail(arg, "the HSM is unreachable");
    return NULL;
}

static void host_sign(void *userdata, const uint8_t *input, size_t length, mcp_oauth_signature *signature)
{
    struct host_key *k = userdata;
    atomic_fetch_add(&k->signs, 1);
    (void)input;
    (void)length;
    switch (k->answer) {
    case ANSWER_FAIL_FROM_THREAD: {
        pthread_t t;
        pthread_create(&t, NULL, fail_later, signature);
        pthread_detach(t);
        break;
    }
    case ANSWER_NEVER:
        k->pending = signature;
        break;
    case ANSWER_GARBAGE: {
        static const uint8_t garbage[3] = {1, 2, 3};
        mcp_oauth_signature_complete(signature, garbage, sizeof garbage);
        break;
    }
    }
}

static void host_release(void *userdata)
{
    struct host_key *k = userdata;
    atomic_fetch_add(&k->releases, 1);
}

/* A client credentials provider for MCP_URL whose assertions the host signs. */
static mcp_oauth_provider *provider_with(struct host_key *k, unsigned version, mcp_oauth_result *set_rc)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, mcp_url);
    mcp_oauth_config_builder_set_static_client(b, "svc", NULL, "private_key_jwt", NULL);
    mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
    mcp_oauth_config_builder_set_timeout_ms(b, 5000, NULL);
    mcp_oauth_signer_callbacks cb = {
        .version = version,
        .userdata = k,
        .algorithm = "ES256",
        .timeout_ms = 300,
        .sign = host_sign,
        .release = host_release,
    };
    *set_rc = mcp_oauth_config_builder_set_private_key_jwt_signer(b, &cb);
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    if (rc != MCP_OAUTH_RESULT_OK)
        printf("# build: %s\n", err ? mcp_oauth_error_display(err) : mcp_oauth_result_name(rc));
    mcp_oauth_error_free(err);
    return p;
}

static void expect_signing_failure(enum answer answer, const char *said)
{
    struct host_key k = {.answer = answer};
    mcp_oauth_result set_rc;
    mcp_oauth_provider *p = provider_with(&k, MCP_OAUTH_SIGNER_CALLBACKS_VERSION, &set_rc);
    CHECK(set_rc == MCP_OAUTH_RESULT_OK && p, "signer %d: set and built", (int)answer);
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", mcp_url, &h, &err);
    const char *step = err ? mcp_oauth_error_step(err) : NULL;
    const char *msg = err ? mcp_oauth_error_message(err) : "";
    CHECK(rc == MCP_OAUTH_RESULT_HANDLER && h == NULL, "signer %d: get_headers fails with HANDLER (%s)", (int)answer,
          mcp_oauth_result_name(rc));
    CHECK(step && !strcmp(step, "signing") && strstr(msg, said), "signer %d: step signing, message \"%s\"",
          (int)answer, msg);
    CHECK(atomic_load(&k.signs) == 1, "signer %d: asked once (%d)", (int)answer, atomic_load(&k.signs));
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
    if (k.pending) /* answering late is accepted and ignored */
        CHECK(mcp_oauth_signature_fail(k.pending, NULL) == MCP_OAUTH_RESULT_OK, "a late answer is accepted");
    CHECK(atomic_load(&k.releases) == 1, "signer %d: userdata released once (%d)", (int)answer,
          atomic_load(&k.releases));
}

static void test_signing_callbacks(void)
{
    expect_signing_failure(ANSWER_FAIL_FROM_THREAD, "the HSM is unreachable");
    expect_signing_failure(ANSWER_NEVER, "did not answer within 300 ms");
    expect_signing_failure(ANSWER_GARBAGE, "not an ES256 signature");

    struct host_key k = {.answer = ANSWER_GARBAGE};
    mcp_oauth_result set_rc;
    mcp_oauth_provider *p = provider_with(&k, 0, &set_rc);
    CHECK(set_rc == MCP_OAUTH_RESULT_INVALID_ARGUMENT, "a signer struct of version 0 is refused (%s)",
          mcp_oauth_result_name(set_rc));
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&k.releases) == 0, "refused callbacks are not released");

    CHECK(mcp_oauth_signature_complete(NULL, (const uint8_t *)"x", 1) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "signature_complete(NULL)");
    CHECK(mcp_oauth_signature_fail(NULL, "x") == MCP_OAUTH_RESULT_NULL_PARAMETER, "signature_fail(NULL)");
}

static void test_setters(void)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    CHECK(mcp_oauth_config_builder_set_dpop_key(b, "not a key", "ES256") == MCP_OAUTH_RESULT_INVALID_CONFIGURATION,
          "set_dpop_key: not PEM");
    CHECK(mcp_oauth_config_builder_set_dpop_key(b, EC_KEY, "RS256") == MCP_OAUTH_RESULT_INVALID_CONFIGURATION,
          "set_dpop_key: an EC key for RS256");
    CHECK(mcp_oauth_config_builder_set_dpop_key(b, EC_KEY, "ES256") == MCP_OAUTH_RESULT_OK, "set_dpop_key: ES256");
    CHECK(mcp_oauth_config_builder_set_private_key_jwt(b, EC_KEY, "PS256", NULL, NULL) ==
              MCP_OAUTH_RESULT_INVALID_CONFIGURATION,
          "set_private_key_jwt: an EC key for PS256");
    CHECK(mcp_oauth_config_builder_set_dpop(b, true) == MCP_OAUTH_RESULT_OK, "set_dpop(true)");
    CHECK(mcp_oauth_config_builder_set_workload_identity(b, NULL, NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "set_workload_identity: neither jwt nor file");
    CHECK(mcp_oauth_config_builder_set_workload_identity(b, "a.b.c", "/tmp/x") == MCP_OAUTH_RESULT_INVALID_ARGUMENT,
          "set_workload_identity: both jwt and file");
    CHECK(mcp_oauth_config_builder_set_dpop(NULL, true) == MCP_OAUTH_RESULT_NULL_PARAMETER, "set_dpop(NULL builder)");
    mcp_oauth_config_builder_free(b);

    /* The JWT-bearer grant needs the pre-registered client. */
    b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, mcp_url);
    CHECK(mcp_oauth_config_builder_set_workload_identity(b, "a.b.c", NULL) == MCP_OAUTH_RESULT_OK,
          "set_workload_identity");
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    CHECK_FAILURE("workload identity without a client_id", mcp_oauth_config_builder_build(b, &p, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    CHECK(p == NULL, "no provider");

    b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, mcp_url);
    mcp_oauth_config_builder_set_static_client(b, "c", "s", NULL, NULL);
    CHECK(mcp_oauth_config_builder_set_identity_assertion(b, "https://idp.example/token", NULL, NULL, NULL) ==
              MCP_OAUTH_RESULT_OK,
          "set_identity_assertion without an ID token");
    err = NULL;
    CHECK_FAILURE("enterprise authorization without an ID token", mcp_oauth_config_builder_build(b, &p, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
}

int main(void)
{
    mcp_url = need_env("MCP_URL");
    test_setters();
    test_signing_callbacks();
    return check_finish();
}
