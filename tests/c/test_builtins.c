/*
 * The built-ins for terminals and desktops through the C API: the device
 * authorization grant with the host's `show` callback (approved by
 * tests/browser/approve_device.py on oidc-provider's own pages, cancelled,
 * failed by the host), log-out with revocation (the completion's JSON), and
 * the keychain store: with a Secret Service (MCP_OAUTH_KEYRING_TESTS set, as
 * under scripts/with-keyring.sh) the tokens a first provider stored are what
 * a second one uses; without one, the error says so.
 *
 * Needs the peers: MCP_URL and ISSUER (tests/c/run.sh sets them), and
 * APPROVE_DEVICE, the approver script.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "check.h"

static const char *mcp_url;
static const char *issuer;
static const char *approver;

/* What `show` saw, and what the completion got. */
struct device {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int shows;
    int show_rc;
    char user_code[64];
    char verification_uri[512];
    bool has_complete;
    uint64_t expires_in, interval;
    int completions;
    mcp_oauth_result result;
    char value[1024];
    atomic_int releases;
};

static void device_init(struct device *d, int show_rc)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->show_rc = show_rc;
}

static void device_destroy(struct device *d)
{
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

static int show(void *userdata, const mcp_oauth_device_authorization *a)
{
    struct device *d = userdata;
    pthread_mutex_lock(&d->mu);
    d->shows++;
    snprintf(d->user_code, sizeof d->user_code, "%s", a->user_code);
    snprintf(d->verification_uri, sizeof d->verification_uri, "%s", a->verification_uri);
    d->has_complete = a->verification_uri_complete != NULL;
    d->expires_in = a->expires_in_seconds;
    d->interval = a->interval_seconds;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return d->show_rc;
}

static void release(void *userdata)
{
    struct device *d = userdata;
    atomic_fetch_add(&d->releases, 1);
}

static void completion(void *userdata, mcp_oauth_result result, const char *value, const mcp_oauth_error *error)
{
    struct device *d = userdata;
    (void)error;
    pthread_mutex_lock(&d->mu);
    d->completions++;
    d->result = result;
    snprintf(d->value, sizeof d->value, "%s", value ? value : "");
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Wait (at most `seconds`) until `*counter` reaches `n`. */
static bool wait_for(struct device *d, int *counter, int n, int seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&d->mu);
    while (*counter < n)
        if (pthread_cond_timedwait(&d->cv, &d->mu, &deadline) != 0)
            break;
    bool ok = *counter >= n;
    pthread_mutex_unlock(&d->mu);
    return ok;
}

/* Wait (at most 10 s) until the userdata was released: after the provider
 * is freed, a flow that was still running lets go of it when its task ends. */
static int released(struct device *d)
{
    for (int i = 0; i < 1000 && atomic_load(&d->releases) == 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&d->releases);
}

static mcp_oauth_provider *device_provider(struct device *d, const char *keyring_service)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, mcp_url);
    mcp_oauth_config_builder_set_client_metadata_json(b, "{\"redirect_uris\": [], \"client_name\": \"C device flow test\"}");
    mcp_oauth_config_builder_set_timeout_ms(b, 10000, NULL);
    if (keyring_service)
        CHECK(mcp_oauth_config_builder_set_storage_keyring(b, keyring_service) == MCP_OAUTH_RESULT_OK,
              "set_storage_keyring(\"%s\")", keyring_service);
    mcp_oauth_device_code_callbacks cb = MCP_OAUTH_DEVICE_CODE_CALLBACKS_INIT;
    cb.userdata = d;
    cb.show = show;
    cb.release = release;
    CHECK(mcp_oauth_config_builder_set_device_code(b, &cb) == MCP_OAUTH_RESULT_OK, "set_device_code");
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK, "build a device flow provider (%s)",
          err ? mcp_oauth_error_display(err) : mcp_oauth_result_name(rc));
    mcp_oauth_error_free(err);
    return p;
}

static bool authorization_header(mcp_oauth_provider *p, char *out, size_t n)
{
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", mcp_url, &h, &err);
    if (rc != MCP_OAUTH_RESULT_OK)
        printf("# get_headers: %s\n", err ? mcp_oauth_error_display(err) : mcp_oauth_result_name(rc));
    mcp_oauth_error_free(err);
    bool ok = rc == MCP_OAUTH_RESULT_OK && h && mcp_oauth_headers_authorization(h);
    if (ok)
        snprintf(out, n, "%s", mcp_oauth_headers_authorization(h));
    mcp_oauth_headers_free(h);
    return ok;
}

static void test_setters(void)
{
    struct device d;
    device_init(&d, 0);
    mcp_oauth_device_code_callbacks cb = MCP_OAUTH_DEVICE_CODE_CALLBACKS_INIT;
    cb.userdata = &d;
    cb.release = release;
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    CHECK(mcp_oauth_config_builder_set_device_code(NULL, &cb) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "set_device_code(NULL builder)");
    CHECK(mcp_oauth_config_builder_set_device_code(b, NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "set_device_code(NULL callbacks)");
    CHECK(mcp_oauth_config_builder_set_device_code(b, &cb) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "set_device_code without show");
    cb.show = show;
    cb.version = 0;
    CHECK(mcp_oauth_config_builder_set_device_code(b, &cb) == MCP_OAUTH_RESULT_INVALID_ARGUMENT,
          "set_device_code with version 0");
    cb.version = MCP_OAUTH_DEVICE_CODE_CALLBACKS_VERSION + 1;
    CHECK(mcp_oauth_config_builder_set_device_code(b, &cb) == MCP_OAUTH_RESULT_INVALID_ARGUMENT,
          "set_device_code with a version from the future");
    CHECK(atomic_load(&d.releases) == 0, "refused callbacks are not released");
    CHECK(mcp_oauth_config_builder_set_storage_keyring(NULL, NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "set_storage_keyring(NULL builder)");
    CHECK(mcp_oauth_config_builder_set_storage_keyring(b, "\xff\xfe") == MCP_OAUTH_RESULT_INVALID_UTF8,
          "set_storage_keyring: bad UTF-8");
    CHECK(mcp_oauth_config_builder_set_storage_keyring(b, NULL) == MCP_OAUTH_RESULT_OK,
          "set_storage_keyring(NULL service): the default");
    mcp_oauth_config_builder_free(b);
    CHECK(mcp_oauth_provider_logout(NULL, NULL, NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER, "logout(NULL)");
    CHECK(mcp_oauth_provider_logout_start(NULL, completion, &d, NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "logout_start(NULL provider)");
    device_destroy(&d);
}

/* Start the flow, wait for the code, let the approver play the person. */
static void log_in(mcp_oauth_provider *p, struct device *d, bool deny)
{
    CHECK(mcp_oauth_provider_authorize_start(p, completion, d, NULL) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(wait_for(d, &d->shows, 1, 30), "the code is shown");
    char expected[512];
    snprintf(expected, sizeof expected, "%s/device", issuer);
    CHECK(!strcmp(d->verification_uri, expected), "verification_uri %s", d->verification_uri);
    CHECK(strlen(d->user_code) > 0 && d->has_complete && d->interval == 5 && d->expires_in == 600,
          "user code, complete URI, interval 5 s, expires in 600 s");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' '%s' %s >/dev/null", approver, d->verification_uri, d->user_code,
             deny ? "--deny" : "");
    CHECK(system(cmd) == 0, "the person %s on oidc-provider's pages", deny ? "denies" : "approves");
    CHECK(wait_for(d, &d->completions, 1, 60), "the flow completes");
}

static void test_device_flow_and_logout(const char *keyring_service)
{
    struct device d;
    device_init(&d, 0);
    mcp_oauth_provider *p = device_provider(&d, keyring_service);
    log_in(p, &d, false);
    CHECK(d.result == MCP_OAUTH_RESULT_OK, "approved: %s", mcp_oauth_result_name(d.result));
    char header[4096];
    CHECK(authorization_header(p, header, sizeof header) && !strncmp(header, "Bearer ", 7),
          "get_headers gives the device flow's token");

    if (keyring_service) {
        /* A second provider (another run of the host) finds the tokens in the keychain. */
        struct device d2;
        device_init(&d2, 0);
        mcp_oauth_provider *p2 = device_provider(&d2, keyring_service);
        char header2[4096];
        CHECK(authorization_header(p2, header2, sizeof header2) && !strcmp(header, header2),
              "a second provider reads the same token from the keychain");
        CHECK(d2.shows == 0, "and asks no one");
        mcp_oauth_provider_free(p2);
        device_destroy(&d2);
    }

    /* Log out: the completion's value says what happened. */
    d.completions = 0;
    CHECK(mcp_oauth_provider_logout_start(p, completion, &d, NULL) == MCP_OAUTH_RESULT_OK, "logout_start");
    CHECK(wait_for(&d, &d.completions, 1, 30) && d.result == MCP_OAUTH_RESULT_OK, "logout completes (%s)",
          mcp_oauth_result_name(d.result));
    CHECK(strstr(d.value, "\"refresh_token_revoked\":true") && strstr(d.value, "\"removed\":true") &&
              strstr(d.value, "/token/revocation"),
          "logout outcome: %s", d.value);
    bool revoked = true;
    mcp_oauth_error *err = NULL;
    CHECK(mcp_oauth_provider_logout(p, &revoked, &err) == MCP_OAUTH_RESULT_OK && !revoked,
          "a second logout has nothing to revoke");
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
    CHECK(released(&d) == 1, "device code userdata released once (%d)", atomic_load(&d.releases));
    device_destroy(&d);
}

static void test_denied_cancelled_and_failed(void)
{
    struct device d;
    device_init(&d, 0);
    mcp_oauth_provider *p = device_provider(&d, NULL);
    log_in(p, &d, true);
    CHECK(d.result == MCP_OAUTH_RESULT_TOKEN, "denied: %s", mcp_oauth_result_name(d.result));
    mcp_oauth_provider_free(p);
    device_destroy(&d);

    /* Cancelled while polling. */
    device_init(&d, 0);
    p = device_provider(&d, NULL);
    mcp_oauth_operation *op = NULL;
    CHECK(mcp_oauth_provider_authorize_start(p, completion, &d, &op) == MCP_OAUTH_RESULT_OK && op,
          "authorize_start with a handle");
    CHECK(wait_for(&d, &d.shows, 1, 30), "the code is shown");
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel");
    CHECK(wait_for(&d, &d.completions, 1, 10) && d.result == MCP_OAUTH_RESULT_CANCELLED, "cancelled: %s",
          mcp_oauth_result_name(d.result));
    mcp_oauth_operation_free(op);
    mcp_oauth_provider_free(p);
    CHECK(released(&d) == 1, "released once after the cancel");
    device_destroy(&d);

    /* The host's show fails: the flow ends with its code. */
    device_init(&d, 7);
    p = device_provider(&d, NULL);
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_authorize(p, &err);
    int64_t code = 0;
    CHECK(rc == MCP_OAUTH_RESULT_HANDLER && err && mcp_oauth_error_callback_code(err, &code) && code == 7,
          "show returning 7 fails the flow with HANDLER and code 7 (%s)", mcp_oauth_result_name(rc));
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
    device_destroy(&d);
}

static void test_keyring_without_secret_service(void)
{
    /* Nothing listens on this bus: the keychain is unavailable. */
    setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/mcp-oauth-test-bus", 1);
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, mcp_url);
    mcp_oauth_config_builder_set_storage_keyring(b, "mcp-oauth-client-c-test");
    mcp_oauth_config_builder_set_static_client(b, "svc", "secret", NULL, NULL);
    mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
    mcp_oauth_provider *p = NULL;
    CHECK(mcp_oauth_config_builder_build(b, &p, NULL) == MCP_OAUTH_RESULT_OK, "a keychain provider builds");
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", mcp_url, &h, &err);
    const char *msg = err ? mcp_oauth_error_message(err) : "";
    CHECK(rc == MCP_OAUTH_RESULT_STORAGE && strstr(msg, "Secret Service"),
          "without a Secret Service: STORAGE, \"%s\"", msg);
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
}

int main(void)
{
    mcp_url = need_env("MCP_URL");
    issuer = need_env("ISSUER");
    approver = need_env("APPROVE_DEVICE");
    test_setters();
    if (getenv("MCP_OAUTH_KEYRING_TESTS")) {
        char service[64];
        snprintf(service, sizeof service, "mcp-oauth-client-c-test-%ld", (long)time(NULL));
        test_device_flow_and_logout(service);
    } else {
        test_device_flow_and_logout(NULL);
        test_denied_cancelled_and_failed();
        test_keyring_without_secret_service();
    }
    return check_finish();
}
