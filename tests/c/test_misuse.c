/*
 * A C host misusing the library, under the sanitizers (tests/c/run.sh runs
 * it with ASan+UBSan, and under valgrind):
 * - NULL in every pointer argument of every function of the header, invalid
 *   UTF-8 and the empty string in every string argument: the cases are
 *   generated from include/mcp_oauth.h by gen_null_cases.py at build time
 *   (a new function is covered without anything written here);
 * - zero lengths and zero counts in every API taking a buffer;
 * - a blocking function called from inside every kind of callback: storage,
 *   token store, transport send and cancel, handler redirect and callback,
 *   deferred authorization, signer, JWT, device code, process-wide and
 *   per-provider log, completion (MCP_OAUTH_RESULT_WOULD_DEADLOCK, and no
 *   deadlock: a watchdog fails the test instead of hanging);
 * - operations cancelled in every state (just started, during discovery,
 *   while the person is away, during the token request, after completion,
 *   twice, from their own completion), and handles freed without cancelling;
 * - a provider freed while operations from other threads are in flight (the
 *   documented pattern: they complete once with CANCELLED), and from a
 *   completion of its own;
 * - 16 threads hammering one provider (headers, 401 and 403 responses,
 *   operations started and cancelled).
 *
 * Self-contained: an authorization server is played by the test's own
 * transport callbacks (no network), so every stage can be held at will.
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define SERVER "http://127.0.0.1:9/mcp"
#define ISSUER "http://127.0.0.1:9"
#define REDIRECT_URI "http://127.0.0.1:9/callback"
#define METADATA                                                                                                       \
    "{\"redirect_uris\": [\"" REDIRECT_URI "\"], \"client_name\": \"c misuse tests\", \"grant_types\": "                \
    "[\"authorization_code\", \"refresh_token\", \"urn:ietf:params:oauth:grant-type:device_code\"]}"
#define FX_BAD_UTF8 "bad \xff\xfe utf-8 \xc3"
#define STORED "{\"access_token\": \"abc\", \"token_type\": \"Bearer\", \"expires_at\": 4102444800}"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ watchdog */

static const char *volatile watchdog_what = "start";

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "not ok - watchdog: no progress in time (a deadlock?) in: ";
    ssize_t w = write(1, msg, sizeof msg - 1);
    w += write(1, watchdog_what, strlen(watchdog_what));
    w += write(1, "\n", 1);
    (void)w;
    _exit(3);
}

static void section(const char *what)
{
    watchdog_what = what;
    alarm(60);
    printf("# %s\n", what);
    fflush(stdout);
}

/* ------------------------------------------------------------ waiting */

struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
};
#define COUNTER_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}

static void counter_add(struct counter *c)
{
    pthread_mutex_lock(&c->mu);
    c->n++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int counter_wait(struct counter *c, int n, long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (c->n < n) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) != 0)
            break;
    }
    int got = c->n;
    pthread_mutex_unlock(&c->mu);
    return got;
}

static int counter_get(struct counter *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ------------------------------------------------------------ a host store */

struct store {
    pthread_mutex_t mu;
    char *tokens;
    char *client;
    atomic_int releases;
    void (*hook)(mcp_oauth_answer *answer); /* run inside get_tokens */
};

static void store_init(struct store *s, const char *tokens)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->tokens = tokens ? strdup(tokens) : NULL;
}

static void store_destroy(struct store *s)
{
    free(s->tokens);
    free(s->client);
    pthread_mutex_destroy(&s->mu);
}

static int store_answer(struct store *s, char **slot, mcp_oauth_answer *answer)
{
    pthread_mutex_lock(&s->mu);
    int rc = *slot ? (mcp_oauth_answer_set(answer, *slot) == MCP_OAUTH_RESULT_OK ? 0 : 1) : 0;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void store_put(struct store *s, char **slot, const char *json)
{
    pthread_mutex_lock(&s->mu);
    free(*slot);
    *slot = strdup(json);
    pthread_mutex_unlock(&s->mu);
}

static int store_get_tokens(void *u, mcp_oauth_answer *answer)
{
    struct store *s = u;
    if (s->hook)
        s->hook(answer);
    return store_answer(s, &s->tokens, answer);
}
static int store_set_tokens(void *u, const char *json)
{
    store_put(u, &((struct store *)u)->tokens, json);
    return 0;
}
static int store_get_client(void *u, mcp_oauth_answer *answer)
{
    struct store *s = u;
    return store_answer(s, &s->client, answer);
}
static int store_set_client(void *u, const char *json)
{
    store_put(u, &((struct store *)u)->client, json);
    return 0;
}
static void store_release(void *u)
{
    atomic_fetch_add(&((struct store *)u)->releases, 1);
}

static mcp_oauth_storage_callbacks store_callbacks(struct store *s)
{
    mcp_oauth_storage_callbacks cb = MCP_OAUTH_STORAGE_CALLBACKS_INIT;
    cb.userdata = s;
    cb.get_tokens = store_get_tokens;
    cb.set_tokens = store_set_tokens;
    cb.get_client_info = store_get_client;
    cb.set_client_info = store_set_client;
    cb.release = store_release;
    return cb;
}

/* ------------------------------------------------ an authorization server */

/* The host transport plays the MCP server's discovery and an authorization
 * server, answering from inside `send`, unless the stage of the request is
 * the one to hold: then the request waits (a slow server) until the
 * library cancels it or the test lets it go. */
enum stage { ST_NONE, ST_PRM, ST_META, ST_REGISTER, ST_TOKEN, ST_DEVICE, ST_REVOKE, ST_OTHER };

#define MAX_HELD 64
struct fas {
    pthread_mutex_t mu;
    enum stage hold;
    bool fail_all;
    mcp_oauth_http_request *held[MAX_HELD];
    int nheld;
    atomic_int sends, cancels, releases, tokens_issued;
    struct counter held_count;
    void (*send_hook)(mcp_oauth_http_request **request); /* may take the request */
    void (*cancel_hook)(void);
};

static void fas_init(struct fas *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->held_count.mu, NULL);
    pthread_cond_init(&f->held_count.cv, NULL);
}

static enum stage stage_of(const char *url)
{
    if (strstr(url, "oauth-protected-resource"))
        return ST_PRM;
    if (strstr(url, "oauth-authorization-server") || strstr(url, "openid-configuration"))
        return ST_META;
    if (strstr(url, "/register"))
        return ST_REGISTER;
    if (strstr(url, "/token"))
        return ST_TOKEN;
    if (strstr(url, "/device"))
        return ST_DEVICE;
    if (strstr(url, "/revoke"))
        return ST_REVOKE;
    return ST_OTHER;
}

static void respond_json(mcp_oauth_http_request *r, uint16_t status, const char *body)
{
    const char *names[] = {"content-type", "cache-control"};
    const char *values[] = {"application/json", "no-store"};
    mcp_oauth_http_request_respond(r, status, names, values, 2, (const uint8_t *)body, strlen(body));
}

static void fas_answer(struct fas *f, mcp_oauth_http_request *r)
{
    const char *url = mcp_oauth_http_request_url(r);
    char body[4096];
    switch (stage_of(url)) {
    case ST_PRM:
        respond_json(r, 200,
                     "{\"resource\": \"" SERVER "\", \"authorization_servers\": [\"" ISSUER "\"], "
                     "\"scopes_supported\": [\"mcp\"]}");
        break;
    case ST_META:
        respond_json(r, 200,
                     "{\"issuer\": \"" ISSUER "\", \"authorization_endpoint\": \"" ISSUER "/authorize\", "
                     "\"token_endpoint\": \"" ISSUER "/token\", \"registration_endpoint\": \"" ISSUER "/register\", "
                     "\"device_authorization_endpoint\": \"" ISSUER "/device\", "
                     "\"revocation_endpoint\": \"" ISSUER "/revoke\", "
                     "\"code_challenge_methods_supported\": [\"S256\"], \"response_types_supported\": [\"code\"], "
                     "\"grant_types_supported\": [\"authorization_code\", \"refresh_token\", \"client_credentials\", "
                     "\"urn:ietf:params:oauth:grant-type:device_code\", "
                     "\"urn:ietf:params:oauth:grant-type:jwt-bearer\"], "
                     "\"token_endpoint_auth_methods_supported\": [\"none\", \"client_secret_basic\", "
                     "\"client_secret_post\", \"private_key_jwt\"], "
                     "\"token_endpoint_auth_signing_alg_values_supported\": [\"ES256\"]}");
        break;
    case ST_REGISTER: {
        size_t len = 0;
        const uint8_t *req = mcp_oauth_http_request_body(r, &len);
        /* The registered metadata, as sent, with a client_id. */
        const char *rest = "}";
        size_t rest_len = 1;
        if (req && len > 1 && req[0] == '{') {
            rest = (const char *)req + 1;
            rest_len = len - 1;
        }
        bool empty = rest_len >= 1 && rest[0] == '}';
        int n = snprintf(body, sizeof body, "{\"client_id\": \"cid-1\"%s%.*s", empty ? "" : ", ", (int)rest_len, rest);
        (void)n;
        respond_json(r, 201, body);
        break;
    }
    case ST_TOKEN: {
        int n = atomic_fetch_add(&f->tokens_issued, 1) + 1;
        snprintf(body, sizeof body,
                 "{\"access_token\": \"at-%d\", \"token_type\": \"Bearer\", \"expires_in\": 3600, "
                 "\"refresh_token\": \"rt-%d\"}",
                 n, n);
        respond_json(r, 200, body);
        break;
    }
    case ST_DEVICE:
        respond_json(r, 200,
                     "{\"device_code\": \"dc-1\", \"user_code\": \"ABCD-EFGH\", \"verification_uri\": "
                     "\"https://as.example.com/device\", \"expires_in\": 600, \"interval\": 1}");
        break;
    case ST_REVOKE:
        respond_json(r, 200, "{}");
        break;
    default: {
        const char *names[] = {"www-authenticate"};
        const char *values[] = {"Bearer resource_metadata=\"" ISSUER "/.well-known/oauth-protected-resource/mcp\""};
        mcp_oauth_http_request_respond(r, 401, names, values, 1, NULL, 0);
    }
    }
}

static int fas_send(void *userdata, mcp_oauth_http_request *request)
{
    struct fas *f = userdata;
    atomic_fetch_add(&f->sends, 1);
    if (f->send_hook) {
        f->send_hook(&request);
        if (!request)
            return 0;
    }
    pthread_mutex_lock(&f->mu);
    if (f->fail_all) {
        pthread_mutex_unlock(&f->mu);
        mcp_oauth_http_request_fail(request, MCP_OAUTH_NETWORK_FAILURE_CONNECT, "offline");
        return 0;
    }
    if (f->hold != ST_NONE && stage_of(mcp_oauth_http_request_url(request)) == f->hold && f->nheld < MAX_HELD) {
        f->held[f->nheld++] = request;
        pthread_mutex_unlock(&f->mu);
        counter_add(&f->held_count);
        return 0;
    }
    pthread_mutex_unlock(&f->mu);
    fas_answer(f, request);
    return 0;
}

static void fas_cancel(void *userdata, mcp_oauth_http_request *request)
{
    struct fas *f = userdata;
    atomic_fetch_add(&f->cancels, 1);
    if (f->cancel_hook)
        f->cancel_hook();
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->nheld; i++) {
        if (f->held[i] == request) {
            f->held[i] = f->held[--f->nheld];
            pthread_mutex_unlock(&f->mu);
            mcp_oauth_http_request_fail(request, MCP_OAUTH_NETWORK_FAILURE_OTHER, "cancelled");
            return;
        }
    }
    pthread_mutex_unlock(&f->mu);
}

static void fas_release(void *userdata)
{
    atomic_fetch_add(&((struct fas *)userdata)->releases, 1);
}

/* Answer every held request (normally), and stop holding. */
static void fas_let_go(struct fas *f)
{
    mcp_oauth_http_request *held[MAX_HELD];
    pthread_mutex_lock(&f->mu);
    int n = f->nheld;
    memcpy(held, f->held, sizeof held);
    f->nheld = 0;
    f->hold = ST_NONE;
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < n; i++)
        fas_answer(f, held[i]);
}

static void fas_destroy(struct fas *f)
{
    fas_let_go(f);
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->held_count.mu);
    pthread_cond_destroy(&f->held_count.cv);
}

static mcp_oauth_transport_callbacks fas_callbacks(struct fas *f)
{
    mcp_oauth_transport_callbacks cb = MCP_OAUTH_TRANSPORT_CALLBACKS_INIT;
    cb.userdata = f;
    cb.send = fas_send;
    cb.cancel = fas_cancel;
    cb.release = fas_release;
    return cb;
}

/* ------------------------------------------------ the person (deferred) */

/* `begin` answers at once with a code for the state it was given, or holds
 * the authorization (a person who is away) until cancelled or let go. */
struct person {
    pthread_mutex_t mu;
    bool hold;
    mcp_oauth_authorization *held[MAX_HELD]; /* every one is answered in the end */
    int nheld;
    atomic_int begins, cancels, releases;
    struct counter held_count;
    void (*begin_hook)(mcp_oauth_authorization **auth); /* may take it */
};

static void person_init(struct person *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->held_count.mu, NULL);
    pthread_cond_init(&p->held_count.cv, NULL);
}

static void person_answer(mcp_oauth_authorization *auth)
{
    char back[1024];
    const char *state = mcp_oauth_authorization_state(auth);
    snprintf(back, sizeof back, "%s?code=code-1&state=%s&iss=%s", mcp_oauth_authorization_redirect_uri(auth),
             state ? state : "", ISSUER);
    mcp_oauth_authorization_complete(auth, back);
}

static int person_begin(void *userdata, mcp_oauth_authorization *auth)
{
    struct person *p = userdata;
    atomic_fetch_add(&p->begins, 1);
    if (p->begin_hook) {
        p->begin_hook(&auth);
        if (!auth)
            return 0;
    }
    pthread_mutex_lock(&p->mu);
    if (p->hold) {
        if (p->nheld < MAX_HELD) {
            p->held[p->nheld++] = auth;
        } else {
            pthread_mutex_unlock(&p->mu);
            mcp_oauth_authorization_fail(auth, 8, "too many people away");
            return 0;
        }
        pthread_mutex_unlock(&p->mu);
        counter_add(&p->held_count);
        return 0;
    }
    pthread_mutex_unlock(&p->mu);
    person_answer(auth);
    return 0;
}

static void person_cancel(void *userdata, mcp_oauth_authorization *auth)
{
    struct person *p = userdata;
    atomic_fetch_add(&p->cancels, 1);
    (void)auth; /* answered by the test, after the cancel, to show it is ignored */
}

static void person_release(void *userdata)
{
    atomic_fetch_add(&((struct person *)userdata)->releases, 1);
}

/* Take every held authorization (to answer it). */
static int person_take_held(struct person *p, mcp_oauth_authorization **out)
{
    pthread_mutex_lock(&p->mu);
    int n = p->nheld;
    memcpy(out, p->held, sizeof p->held);
    p->nheld = 0;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void person_destroy(struct person *p)
{
    mcp_oauth_authorization *held[MAX_HELD];
    int n = person_take_held(p, held);
    for (int i = 0; i < n; i++)
        mcp_oauth_authorization_fail(held[i], 9, "the test is over");
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->held_count.mu);
    pthread_cond_destroy(&p->held_count.cv);
}

static mcp_oauth_authorization_callbacks person_callbacks(struct person *p)
{
    mcp_oauth_authorization_callbacks cb = MCP_OAUTH_AUTHORIZATION_CALLBACKS_INIT;
    cb.userdata = p;
    cb.begin = person_begin;
    cb.cancel = person_cancel;
    cb.release = person_release;
    return cb;
}

/* ------------------------------------------------------------ providers */

static mcp_oauth_provider *build(mcp_oauth_config_builder *b, const char *what)
{
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && p, "build %s (%s)", what, err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return p;
}

/* An authorization-code provider against the played server; any of the
 * host parts may be NULL. */
static mcp_oauth_config_builder *flow_builder(struct fas *f, struct person *person, struct store *s)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, SERVER);
    mcp_oauth_config_builder_set_client_metadata_json(b, METADATA);
    mcp_oauth_config_builder_set_timeout_ms(b, 20000, NULL);
    if (f) {
        mcp_oauth_transport_callbacks t = fas_callbacks(f);
        CHECK(mcp_oauth_config_builder_set_transport_callbacks(b, &t, NULL) == MCP_OAUTH_RESULT_OK, "set_transport");
    }
    if (person) {
        mcp_oauth_authorization_callbacks a = person_callbacks(person);
        CHECK(mcp_oauth_config_builder_set_authorization_callbacks(b, &a, NULL) == MCP_OAUTH_RESULT_OK,
              "set_authorization_callbacks");
    }
    if (s) {
        mcp_oauth_storage_callbacks cb = store_callbacks(s);
        CHECK(mcp_oauth_config_builder_set_storage_callbacks(b, &cb, NULL) == MCP_OAUTH_RESULT_OK, "set_storage");
    }
    return b;
}

/* ------------------------------------------------------------ completions */

struct done {
    struct counter c;
    atomic_int ok, cancelled, other;
    mcp_oauth_result last;
    void (*hook)(struct done *d, mcp_oauth_result result);
    mcp_oauth_operation *op;      /* for a completion that cancels/frees its own operation */
    mcp_oauth_provider *free_me;  /* for a completion that frees the provider */
};

static void done_init(struct done *d)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->c.mu, NULL);
    pthread_cond_init(&d->c.cv, NULL);
}

static void done_destroy(struct done *d)
{
    pthread_mutex_destroy(&d->c.mu);
    pthread_cond_destroy(&d->c.cv);
}

static void done_record(struct done *d, mcp_oauth_result result, const mcp_oauth_error *error)
{
    if (result == MCP_OAUTH_RESULT_OK)
        atomic_fetch_add(&d->ok, 1);
    else if (result == MCP_OAUTH_RESULT_CANCELLED && error && !strcmp(mcp_oauth_error_kind(error), "cancelled"))
        atomic_fetch_add(&d->cancelled, 1);
    else
        atomic_fetch_add(&d->other, 1);
    if (d->hook)
        d->hook(d, result);
    pthread_mutex_lock(&d->c.mu);
    d->last = result;
    d->c.n++;
    pthread_cond_broadcast(&d->c.cv);
    pthread_mutex_unlock(&d->c.mu);
}

static void on_plain(void *u, mcp_oauth_result result, const char *value, const mcp_oauth_error *error)
{
    (void)value;
    done_record(u, result, error);
}

static void on_headers(void *u, mcp_oauth_result result, const mcp_oauth_headers *headers,
                       const mcp_oauth_error *error)
{
    (void)headers;
    done_record(u, result, error);
}

/* ======================================================= generated cases */

struct fixture {
    mcp_oauth_provider *provider; /* a stored token; a transport that fails everything */
    mcp_oauth_headers *headers;
    mcp_oauth_error *error;
    mcp_oauth_operation *operation; /* finished */
    mcp_oauth_config_builder *builder;
    const char *url;
    char directory[64];
    char jwt_file[80];
    const char *names[1], *values[1], *bad_utf8_array[1], *empty_array[1];
    uint8_t bytes[64], key[32];
    mcp_oauth_storage_callbacks storage_callbacks;
    mcp_oauth_handler_callbacks handler_callbacks;
    mcp_oauth_transport_callbacks transport_callbacks;
    mcp_oauth_token_store token_store;
    mcp_oauth_authorization_callbacks authorization_callbacks;
    mcp_oauth_log_options log_options;
    mcp_oauth_device_code_callbacks device_code_callbacks;
    mcp_oauth_signer_callbacks signer_callbacks;
    mcp_oauth_jwt_callbacks jwt_callbacks;
    /* Handles that exist only inside a callback. */
    mcp_oauth_answer *answer;
    mcp_oauth_http_request *request;
    mcp_oauth_authorization *authorization;
    mcp_oauth_signature *signature;
    struct done async_done; /* completions of the operations the cases start */
    atomic_int async_started;
    atomic_int counts[4]; /* null, utf8, empty cases run; contexts run */
};

struct gen_case {
    void (*run)(struct fixture *fx);
    const char *label;
    const char *kind;
    const char *context;
    int consumes;
    const char *reason;
};

static struct fixture *the_fx;

static const char FX_P256_KEY[] = /* a throwaway test key */
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQ86Z6UHX4TWeyJlf\n"
    "Mt436B8PWkF9z8fY5PDrplCycvShRANCAATuH1GTgLbcmNfuEMzpTSFHVtwKuCYd\n"
    "q60FeX2dtwFad9eAODTGKBY/FXq+dC8SjkINsmByD2ddOgFP2eDVWDfr\n"
    "-----END PRIVATE KEY-----\n";

static mcp_oauth_config_builder *fx_builder(void)
{
    the_fx->builder = mcp_oauth_config_builder_new();
    return the_fx->builder;
}

static void fx_builder_done(struct fixture *fx)
{
    mcp_oauth_config_builder_free(fx->builder);
    fx->builder = NULL;
}

static void fx_completion(void *u, mcp_oauth_result result, const char *value, const mcp_oauth_error *error)
{
    (void)u;
    (void)value;
    done_record(&the_fx->async_done, result, error);
}

static void fx_headers_completion(void *u, mcp_oauth_result result, const mcp_oauth_headers *headers,
                                  const mcp_oauth_error *error)
{
    (void)u;
    (void)headers;
    done_record(&the_fx->async_done, result, error);
}

static void fx_log_callback(void *u, mcp_oauth_log_level level, const char *target, const char *message)
{
    (void)u;
    (void)level;
    (void)target;
    (void)message;
}

static void fx_check(struct fixture *fx, const char *label, const char *kind, const char *expect, const char *pname,
                     int has_err, long got, mcp_oauth_error *err)
{
    (void)fx;
    if (!strcmp(expect, "NULL_PARAMETER") || !strcmp(expect, "INVALID_UTF8")) {
        long want = !strcmp(expect, "NULL_PARAMETER") ? MCP_OAUTH_RESULT_NULL_PARAMETER : MCP_OAUTH_RESULT_INVALID_UTF8;
        CHECK(got == want, "%s: %s (got %s)", label, expect, mcp_oauth_result_name((uint32_t)got));
        if (has_err) {
            char needle[80];
            snprintf(needle, sizeof needle, "`%s`", pname);
            const char *msg = err ? mcp_oauth_error_message(err) : NULL;
            CHECK(err && mcp_oauth_error_code(err) == want && msg && strstr(msg, needle),
                  "%s: the error object names `%s` (%s)", label, pname, msg ? msg : "no error object");
        }
    } else if (!strcmp(expect, "OK")) {
        CHECK(got == MCP_OAUTH_RESULT_OK, "%s: OK, NULL is allowed here (got %s)", label,
              mcp_oauth_result_name((uint32_t)got));
    } else if (!strcmp(expect, "OK_OR_FAILURE") || !strcmp(expect, "NOT_PANIC")) {
        CHECK(got != MCP_OAUTH_RESULT_PANIC && got != MCP_OAUTH_RESULT_NULL_PARAMETER,
              "%s: %s, no crash, no panic", label, mcp_oauth_result_name((uint32_t)got));
    } else if (!strcmp(expect, "NULL") || !strcmp(expect, "ZERO") || !strcmp(expect, "FALSE")) {
        CHECK(got == 0, "%s: %s", label, expect);
    } else {
        CHECK(1, "%s: no crash (%s)", label, kind);
    }
}

static void fx_cleanup(struct fixture *fx, mcp_oauth_provider *p, mcp_oauth_headers *h, mcp_oauth_error *e,
                       mcp_oauth_operation *op)
{
    (void)fx;
    mcp_oauth_provider_free(p);
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(e);
    mcp_oauth_operation_free(op);
}

#include "null_cases.h"

/* Callbacks of the fixture's structs: never called with success in mind. */
static int nop_get(void *u, mcp_oauth_answer *a)
{
    (void)u;
    (void)a;
    return 0;
}
static int nop_set(void *u, const char *j)
{
    (void)u;
    (void)j;
    return 0;
}
static int nop_redirect(void *u, const char *url)
{
    (void)u;
    (void)url;
    return 1;
}
static int nop_send(void *u, mcp_oauth_http_request *r)
{
    (void)u;
    (void)r;
    return 1; /* refused: never answered */
}
static int nop_load(void *u, const char *key, mcp_oauth_answer *a, uint64_t *v)
{
    (void)u;
    (void)key;
    (void)a;
    *v = 0;
    return 0;
}
static int nop_cas(void *u, const char *key, uint64_t expected, const char *json, bool *stored, uint64_t *v)
{
    (void)u;
    (void)key;
    (void)expected;
    (void)json;
    *stored = false;
    *v = 0;
    return 0;
}
static int nop_get_client(void *u, const char *key, const char *issuer, mcp_oauth_answer *a)
{
    (void)u;
    (void)key;
    (void)issuer;
    (void)a;
    return 0;
}
static int nop_set_client(void *u, const char *key, const char *json)
{
    (void)u;
    (void)key;
    (void)json;
    return 0;
}
static int nop_begin(void *u, mcp_oauth_authorization *a)
{
    (void)u;
    (void)a;
    return 1;
}
static int nop_show(void *u, const mcp_oauth_device_authorization *a)
{
    (void)u;
    (void)a;
    return 1;
}
static void nop_sign(void *u, const uint8_t *in, size_t len, mcp_oauth_signature *sig)
{
    (void)u;
    (void)in;
    (void)len;
    mcp_oauth_signature_fail(sig, "no key here");
}

/* The case to run inside the next callback of its context. */
static const struct gen_case *pending;

static void run_pending_in(const char *context)
{
    const struct gen_case *c = pending;
    if (!c || strcmp(c->context, context))
        return;
    pending = NULL;
    c->run(the_fx);
}

static void answer_hook(mcp_oauth_answer *answer)
{
    the_fx->answer = answer;
    run_pending_in("answer");
    the_fx->answer = NULL;
}

static void request_hook(mcp_oauth_http_request **request)
{
    const struct gen_case *c = pending;
    if (!c || strcmp(c->context, "request"))
        return;
    the_fx->request = *request;
    run_pending_in("request");
    if (!c->consumes)
        mcp_oauth_http_request_fail(*request, MCP_OAUTH_NETWORK_FAILURE_OTHER, "the case is over");
    the_fx->request = NULL;
    *request = NULL;
}

static void begin_hook(mcp_oauth_authorization **auth)
{
    const struct gen_case *c = pending;
    if (!c || strcmp(c->context, "authorization"))
        return;
    the_fx->authorization = *auth;
    run_pending_in("authorization");
    if (!c->consumes)
        mcp_oauth_authorization_fail(*auth, 1, "the case is over");
    the_fx->authorization = NULL;
    *auth = NULL;
}

static void case_sign(void *u, const uint8_t *in, size_t len, mcp_oauth_signature *sig)
{
    (void)u;
    (void)in;
    (void)len;
    const struct gen_case *c = pending;
    if (!c || strcmp(c->context, "signature")) {
        mcp_oauth_signature_fail(sig, "no case");
        return;
    }
    the_fx->signature = sig;
    run_pending_in("signature");
    if (!c->consumes)
        mcp_oauth_signature_fail(sig, "the case is over");
    the_fx->signature = NULL;
}

/* Run a case that needs a handle only a callback has, inside that callback. */
static void run_in_context(const struct gen_case *c)
{
    pending = c;
    mcp_oauth_error *err = NULL;
    if (!strcmp(c->context, "answer")) {
        struct store s;
        store_init(&s, NULL);
        s.hook = answer_hook;
        mcp_oauth_config_builder *b = flow_builder(NULL, NULL, &s);
        mcp_oauth_provider *p = build(b, "a provider for a case inside get_tokens");
        mcp_oauth_headers *h = NULL;
        mcp_oauth_provider_get_headers(p, "POST", SERVER, &h, &err);
        mcp_oauth_headers_free(h);
        mcp_oauth_provider_free(p);
        store_destroy(&s);
    } else if (!strcmp(c->context, "request") || !strcmp(c->context, "authorization")) {
        struct fas f;
        struct person person;
        fas_init(&f);
        person_init(&person);
        f.send_hook = request_hook;
        person.begin_hook = begin_hook;
        mcp_oauth_provider *p = build(flow_builder(&f, &person, NULL), "a provider for a case inside a callback");
        mcp_oauth_provider_authorize(p, &err);
        mcp_oauth_provider_free(p);
        fas_destroy(&f);
        person_destroy(&person);
    } else if (!strcmp(c->context, "signature")) {
        struct fas f;
        fas_init(&f);
        mcp_oauth_config_builder *b = flow_builder(&f, NULL, NULL);
        mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
        mcp_oauth_config_builder_set_static_client(b, "cid-1", NULL, "private_key_jwt", ISSUER);
        mcp_oauth_signer_callbacks sc = MCP_OAUTH_SIGNER_CALLBACKS_INIT;
        sc.algorithm = "ES256";
        sc.sign = case_sign;
        sc.timeout_ms = 5000;
        CHECK(mcp_oauth_config_builder_set_private_key_jwt_signer(b, &sc) == MCP_OAUTH_RESULT_OK, "signer set");
        mcp_oauth_provider *p = build(b, "a provider for a case inside sign");
        mcp_oauth_provider_authorize(p, &err);
        mcp_oauth_provider_free(p);
        fas_destroy(&f);
    }
    mcp_oauth_error_free(err);
    CHECK(pending == NULL, "%s: ran inside a %s callback", c->label, c->context);
    pending = NULL;
}

static void test_generated_cases(void)
{
    section("generated: NULL, invalid UTF-8 and empty strings in every argument of every function");
    struct fixture *fx = calloc(1, sizeof *fx);
    the_fx = fx;
    done_init(&fx->async_done);
    fx->url = SERVER;
    snprintf(fx->directory, sizeof fx->directory, "misuse-tokens-%ld", (long)getpid());
    snprintf(fx->jwt_file, sizeof fx->jwt_file, "misuse-jwt-%ld", (long)getpid());
    fx->names[0] = "www-authenticate";
    fx->values[0] = "Bearer error=\"invalid_token\"";
    fx->bad_utf8_array[0] = FX_BAD_UTF8;
    fx->empty_array[0] = "";
    memset(fx->bytes, 7, sizeof fx->bytes);
    memset(fx->key, 9, sizeof fx->key);

    struct store s;
    store_init(&s, STORED);
    struct fas f;
    fas_init(&f);
    f.fail_all = true;
    fx->provider = build(flow_builder(&f, NULL, &s), "the fixture's provider");
    mcp_oauth_provider_get_headers(fx->provider, "POST", SERVER, &fx->headers, NULL);
    CHECK(fx->headers != NULL, "the fixture's headers");
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_timeout_ms(b, 0, &fx->error);
    mcp_oauth_config_builder_free(b);
    CHECK(fx->error != NULL, "the fixture's error");
    struct done d;
    done_init(&d);
    mcp_oauth_provider_get_headers_start(fx->provider, "POST", SERVER, on_headers, &d, &fx->operation);
    CHECK(counter_wait(&d.c, 1, 10000) == 1 && fx->operation, "the fixture's (finished) operation");

    fx->storage_callbacks = store_callbacks(&s);
    fx->storage_callbacks.release = NULL;
    fx->storage_callbacks.get_tokens = nop_get;
    fx->storage_callbacks.set_tokens = nop_set;
    fx->storage_callbacks.get_client_info = nop_get;
    fx->storage_callbacks.set_client_info = nop_set;
    fx->handler_callbacks = (mcp_oauth_handler_callbacks)MCP_OAUTH_HANDLER_CALLBACKS_INIT;
    fx->handler_callbacks.redirect = nop_redirect;
    fx->handler_callbacks.callback = nop_get;
    fx->transport_callbacks = (mcp_oauth_transport_callbacks)MCP_OAUTH_TRANSPORT_CALLBACKS_INIT;
    fx->transport_callbacks.send = nop_send;
    fx->token_store = (mcp_oauth_token_store)MCP_OAUTH_TOKEN_STORE_INIT;
    fx->token_store.load_tokens = nop_load;
    fx->token_store.compare_and_set_tokens = nop_cas;
    fx->token_store.get_client_info = nop_get_client;
    fx->token_store.set_client_info = nop_set_client;
    fx->authorization_callbacks = (mcp_oauth_authorization_callbacks)MCP_OAUTH_AUTHORIZATION_CALLBACKS_INIT;
    fx->authorization_callbacks.begin = nop_begin;
    fx->log_options = (mcp_oauth_log_options)MCP_OAUTH_LOG_OPTIONS_INIT;
    fx->log_options.callback = fx_log_callback;
    fx->device_code_callbacks = (mcp_oauth_device_code_callbacks)MCP_OAUTH_DEVICE_CODE_CALLBACKS_INIT;
    fx->device_code_callbacks.show = nop_show;
    fx->signer_callbacks = (mcp_oauth_signer_callbacks)MCP_OAUTH_SIGNER_CALLBACKS_INIT;
    fx->signer_callbacks.algorithm = "ES256";
    fx->signer_callbacks.sign = nop_sign;
    fx->jwt_callbacks = (mcp_oauth_jwt_callbacks)MCP_OAUTH_JWT_CALLBACKS_INIT;
    fx->jwt_callbacks.get = nop_get;

    int in_context = 0, async_before = 0;
    for (size_t i = 0; i < GEN_CASES; i++) {
        const struct gen_case *c = &gen_cases[i];
        async_before = counter_get(&fx->async_done.c);
        (void)async_before;
        if (c->context[0]) {
            run_in_context(c);
            in_context++;
        } else {
            c->run(fx);
        }
    }
    /* The operations the allowed-NULL cases started all complete. */
    sleep_ms(300);
    int started = counter_get(&fx->async_done.c);
    CHECK(atomic_load(&fx->async_done.other) + atomic_load(&fx->async_done.ok) +
                  atomic_load(&fx->async_done.cancelled) == started,
          "the %d operations the cases started completed, each once", started);
    printf("# generated from the header: %d functions, %d NULL cases, %d invalid UTF-8 cases, %d empty-string "
           "cases, %d run inside a callback\n",
           GEN_FUNCTIONS, GEN_NULL_CASES, GEN_UTF8_CASES, GEN_EMPTY_CASES, in_context);
    mcp_oauth_operation_free(fx->operation);
    mcp_oauth_headers_free(fx->headers);
    mcp_oauth_error_free(fx->error);
    mcp_oauth_provider_free(fx->provider);
    /* The provider's operations finish, then the host parts are released. */
    for (int i = 0; i < 100 && atomic_load(&s.releases) == 0; i++)
        sleep_ms(20);
    CHECK(atomic_load(&s.releases) == 1 && atomic_load(&f.releases) == 1, "the fixture's callbacks released once");
    unlink(fx->jwt_file);
    rmdir(fx->directory);
    fas_destroy(&f);
    store_destroy(&s);
    done_destroy(&d);
    done_destroy(&fx->async_done);
    free(fx);
    the_fx = NULL;
}

/* ======================================================= zero lengths */

static void test_zero_lengths(void)
{
    section("zero lengths and zero counts in every API taking a buffer or an array");
    mcp_oauth_error *err = NULL;
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    uint8_t key[32] = {1};
    err = NULL;
    CHECK_FAILURE("add_redis_encryption_key(key, 0 bytes)",
                  mcp_oauth_config_builder_add_redis_encryption_key(b, "k1", key, 0, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_add_redis_encryption_key(b, "k1", NULL, 0, &err);
    CHECK(rc == MCP_OAUTH_RESULT_NULL_PARAMETER || rc == MCP_OAUTH_RESULT_INVALID_CONFIGURATION,
          "add_redis_encryption_key(NULL, 0 bytes): %s", mcp_oauth_result_name(rc));
    mcp_oauth_error_free(err);
    err = NULL;
    CHECK_FAILURE("add_redis_encryption_key(empty key id)",
                  mcp_oauth_config_builder_add_redis_encryption_key(b, "", key, 32, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    err = NULL;
    CHECK_FAILURE("set_storage_redis(\"\")", mcp_oauth_config_builder_set_storage_redis(b, "", &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    err = NULL;
    CHECK_FAILURE("add_authorization_param(empty name)", mcp_oauth_config_builder_add_authorization_param(b, "", "v", &err),
                  MCP_OAUTH_RESULT_INVALID_ARGUMENT, err);
    err = NULL;
    CHECK_FAILURE("add_token_param(empty name)", mcp_oauth_config_builder_add_token_param(b, "", "v", &err),
                  MCP_OAUTH_RESULT_INVALID_ARGUMENT, err);
    err = NULL;
    CHECK_FAILURE("set_resource_parameter(OVERRIDE, \"\")",
                  mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_OVERRIDE, "", &err),
                  MCP_OAUTH_RESULT_INVALID_ARGUMENT, err);
    err = NULL;
    CHECK_FAILURE("set_timeout_ms(0)", mcp_oauth_config_builder_set_timeout_ms(b, 0, &err),
                  MCP_OAUTH_RESULT_INVALID_ARGUMENT, err);
    err = NULL;
    CHECK_FAILURE("set_authorization_timeout_ms(0)", mcp_oauth_config_builder_set_authorization_timeout_ms(b, 0, &err),
                  MCP_OAUTH_RESULT_INVALID_ARGUMENT, err);
    CHECK_CODE("set_lease_wait_ms(0) means do not wait", mcp_oauth_config_builder_set_lease_wait_ms(b, 0),
               MCP_OAUTH_RESULT_OK);
    mcp_oauth_config_builder_set_server_url(b, "");
    err = NULL;
    mcp_oauth_provider *p = NULL;
    CHECK_FAILURE("build with an empty server URL", mcp_oauth_config_builder_build(b, &p, &err),
                  MCP_OAUTH_RESULT_INVALID_CONFIGURATION, err);
    CHECK(p == NULL, "no provider");

    /* Header arrays of count 0 (NULL or not), and a 0 status. */
    CHECK(!mcp_oauth_is_dpop_nonce_challenge(401, NULL, NULL, 0), "is_dpop_nonce_challenge(count 0)");
    struct store s;
    store_init(&s, STORED);
    p = build(flow_builder(NULL, NULL, &s), "a provider with a stored token");
    bool retry = true;
    mcp_oauth_headers *h = NULL;
    const char *names[] = {"x"};
    rc = mcp_oauth_provider_handle_response(p, "POST", SERVER, NULL, 0, names, names, 0, &retry, &h, NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK && !retry && !h, "handle_response(status 0, count 0): no retry (%s)",
          mcp_oauth_result_name(rc));
    /* Indexes past the end. */
    CHECK(mcp_oauth_provider_get_headers(p, "POST", SERVER, &h, NULL) == MCP_OAUTH_RESULT_OK && h, "headers");
    CHECK(mcp_oauth_headers_name(h, mcp_oauth_headers_count(h)) == NULL &&
              mcp_oauth_headers_value(h, (size_t)-1) == NULL,
          "headers accessors past the end: NULL");
    mcp_oauth_headers_free(h);
    mcp_oauth_provider_free(p);
    store_destroy(&s);
    printf("# there is no out-buffer API to give a zero capacity to: strings come back borrowed\n");
}

/* Inside the host's transport: an empty response, and requests answered
 * with zero-length bodies and no headers. */
static void zero_send_hook(mcp_oauth_http_request **request)
{
    mcp_oauth_http_request *r = *request;
    size_t len = 99;
    const uint8_t *body = mcp_oauth_http_request_body(r, &len);
    CHECK(!body == (len == 0), "a request's body and length agree (%zu)", len);
    CHECK(mcp_oauth_http_request_header_name(r, mcp_oauth_http_request_header_count(r)) == NULL &&
              mcp_oauth_http_request_header_value(r, (size_t)-1) == NULL,
          "request header accessors past the end: NULL");
    mcp_oauth_result rc = mcp_oauth_http_request_respond(r, 200, NULL, NULL, 0, NULL, 0);
    CHECK(rc == MCP_OAUTH_RESULT_OK, "respond(200, no header, empty body): taken (%s)", mcp_oauth_result_name(rc));
    *request = NULL;
}

static void zero_sign(void *u, const uint8_t *in, size_t len, mcp_oauth_signature *sig)
{
    (void)u;
    CHECK(in && len > 0, "the signing input is not empty (%zu bytes)", len);
    static const uint8_t one = 0;
    mcp_oauth_result rc = mcp_oauth_signature_complete(sig, &one, 0);
    CHECK(rc == MCP_OAUTH_RESULT_INVALID_ARGUMENT, "signature_complete(0 bytes): INVALID_ARGUMENT, and taken (%s)",
          mcp_oauth_result_name(rc));
}

static int empty_answer_get(void *u, mcp_oauth_answer *answer)
{
    (void)u;
    CHECK(mcp_oauth_answer_set(answer, "") == MCP_OAUTH_RESULT_OK, "answer_set(\"\")");
    return 0;
}

static void test_zero_lengths_in_callbacks(void)
{
    section("zero lengths inside callbacks: empty response, empty signature, empty stored value");
    struct fas f;
    fas_init(&f);
    f.send_hook = zero_send_hook;
    struct person person;
    person_init(&person);
    mcp_oauth_provider *p = build(flow_builder(&f, &person, NULL), "a provider whose server sends empty answers");
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_authorize(p, &err);
    CHECK(rc != MCP_OAUTH_RESULT_OK && rc != MCP_OAUTH_RESULT_PANIC && err && *mcp_oauth_error_message(err),
          "an empty 200 to discovery: a clear error (%s)", err ? mcp_oauth_error_display(err) : "none");
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
    fas_destroy(&f);
    person_destroy(&person);

    fas_init(&f);
    mcp_oauth_config_builder *b = flow_builder(&f, NULL, NULL);
    mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
    mcp_oauth_config_builder_set_static_client(b, "cid-1", NULL, "private_key_jwt", ISSUER);
    mcp_oauth_signer_callbacks sc = MCP_OAUTH_SIGNER_CALLBACKS_INIT;
    sc.algorithm = "ES256";
    sc.sign = zero_sign;
    sc.timeout_ms = 5000;
    mcp_oauth_config_builder_set_private_key_jwt_signer(b, &sc);
    p = build(b, "a client-credentials provider with a host signer");
    err = NULL;
    CHECK_FAILURE("a flow whose signer answers 0 bytes", mcp_oauth_provider_authorize(p, &err),
                  MCP_OAUTH_RESULT_HANDLER, err);
    CHECK(atomic_load(&f.tokens_issued) == 0, "no token request went out without a signature");
    mcp_oauth_provider_free(p);
    fas_destroy(&f);

    struct store s;
    store_init(&s, NULL);
    mcp_oauth_storage_callbacks cb = store_callbacks(&s);
    cb.get_tokens = empty_answer_get;
    b = flow_builder(NULL, NULL, NULL);
    mcp_oauth_config_builder_set_storage_callbacks(b, &cb, NULL);
    p = build(b, "a provider whose store answers \"\"");
    mcp_oauth_headers *h = NULL;
    err = NULL;
    CHECK_FAILURE("get_headers with an empty stored value", mcp_oauth_provider_get_headers(p, "POST", SERVER, &h, &err),
                  MCP_OAUTH_RESULT_STORAGE, err);
    CHECK(h == NULL, "no headers");
    mcp_oauth_provider_free(p);
    store_destroy(&s);
}

/* ======================================================= re-entrancy */

enum probe_kind {
    PK_STORAGE, PK_TOKEN_STORE, PK_SEND, PK_CANCEL, PK_REDIRECT, PK_CALLBACK, PK_BEGIN, PK_SIGN, PK_JWT,
    PK_SHOW, PK_LOG, PK_PROVIDER_LOG, PK_COMPLETION, PK_COUNT
};
static const char *const probe_names[PK_COUNT] = {
    "storage get_tokens", "token store load_tokens", "transport send", "transport cancel", "handler redirect",
    "handler callback", "deferred authorization begin", "signer sign", "JWT get", "device code show",
    "process-wide log", "provider log", "completion"};
#define PROBE_CALLS 8
static const char *const probe_calls[PROBE_CALLS] = {
    "get_headers", "handle_response", "authorize", "logout", "shutdown", "build (loopback receiver)",
    "try_get_headers (allowed)", "set_log_callback (log callbacks only)"};

struct probe {
    atomic_int ran;      /* set when the probe starts */
    atomic_int finished; /* set (release) once rc and error_ok are written */
    int rc[PROBE_CALLS];
    bool error_ok;
};
static struct probe probes[PK_COUNT];
static mcp_oauth_provider *probe_provider; /* set while its callbacks may run */
static mcp_oauth_provider *probe_target;   /* what the probe calls: alive throughout */
static _Thread_local int in_probe;

static void probe_log(void *u, mcp_oauth_log_level level, const char *target, const char *message);

static void probe(enum probe_kind kind)
{
    if (in_probe || !probe_provider || atomic_exchange(&probes[kind].ran, 1))
        return;
    in_probe = 1;
    struct probe *pr = &probes[kind];
    mcp_oauth_provider *p = probe_target;
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    bool retry = false;
    pr->rc[0] = (int)mcp_oauth_provider_get_headers(p, "POST", SERVER, &h, &err);
    pr->error_ok = err && !strcmp(mcp_oauth_error_kind(err), "would_deadlock") && *mcp_oauth_error_message(err);
    mcp_oauth_error_free(err);
    mcp_oauth_headers_free(h);
    h = NULL;
    pr->rc[1] = (int)mcp_oauth_provider_handle_response(p, "POST", SERVER, NULL, 401, NULL, NULL, 0, &retry, &h, NULL);
    mcp_oauth_headers_free(h);
    h = NULL;
    pr->rc[2] = (int)mcp_oauth_provider_authorize(p, NULL);
    pr->rc[3] = (int)mcp_oauth_provider_logout(p, NULL, NULL);
    pr->rc[4] = (int)mcp_oauth_shutdown(1000);
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, SERVER);
    mcp_oauth_config_builder_set_loopback_handler(b, NULL, 1000);
    mcp_oauth_provider *other = NULL;
    pr->rc[5] = (int)mcp_oauth_config_builder_build(b, &other, NULL);
    mcp_oauth_provider_free(other);
    pr->rc[6] = (int)mcp_oauth_provider_try_get_headers(p, "POST", SERVER, &h, NULL);
    mcp_oauth_headers_free(h);
    /* The log callback's lock is held around it: replacing the callback
     * from there would wait for itself. */
    if (kind == PK_LOG || kind == PK_PROVIDER_LOG)
        pr->rc[7] = (int)mcp_oauth_set_log_callback(probe_log, NULL, MCP_OAUTH_LOG_LEVEL_TRACE);
    atomic_store(&pr->finished, 1);
    in_probe = 0;
}

static void check_probe(enum probe_kind kind)
{
    struct probe *pr = &probes[kind];
    for (int i = 0; i < 250 && atomic_load(&pr->ran) && !atomic_load(&pr->finished); i++)
        sleep_ms(20);
    CHECK(atomic_load(&pr->finished), "re-entrancy: the %s callback ran", probe_names[kind]);
    if (!atomic_load(&pr->finished))
        return;
    for (int i = 0; i < PROBE_CALLS; i++) {
        if (i == 7 && kind != PK_LOG && kind != PK_PROVIDER_LOG)
            continue; /* set_log_callback is only called from the log callbacks */
        mcp_oauth_result want = i == 6 ? MCP_OAUTH_RESULT_OK : MCP_OAUTH_RESULT_WOULD_DEADLOCK;
        CHECK(pr->rc[i] == (int)want, "re-entrancy: %s from inside %s: %s (want %s)", probe_calls[i],
              probe_names[kind], mcp_oauth_result_name((uint32_t)pr->rc[i]), mcp_oauth_result_name(want));
    }
    CHECK(pr->error_ok, "re-entrancy: inside %s, the error object says would_deadlock", probe_names[kind]);
}

static void probe_store_hook(mcp_oauth_answer *a)
{
    (void)a;
    probe(PK_STORAGE);
}
static void probe_send_hook(mcp_oauth_http_request **r)
{
    (void)r;
    probe(PK_SEND);
}
static void probe_cancel_hook(void)
{
    probe(PK_CANCEL);
}
static void probe_begin_hook(mcp_oauth_authorization **a)
{
    (void)a;
    probe(PK_BEGIN);
}
static void probe_log(void *u, mcp_oauth_log_level level, const char *target, const char *message)
{
    (void)level;
    (void)target;
    (void)message;
    probe(u ? PK_PROVIDER_LOG : PK_LOG);
}
static void probe_completion(void *u, mcp_oauth_result result, const mcp_oauth_headers *h, const mcp_oauth_error *e)
{
    probe(PK_COMPLETION);
    on_headers(u, result, h, e);
}

/* Handler callbacks: the redirect keeps the state, the callback answers. */
static char handler_state[256];
static int probe_redirect(void *u, const char *url)
{
    (void)u;
    probe(PK_REDIRECT);
    const char *st = strstr(url, "state=");
    snprintf(handler_state, sizeof handler_state, "%s", st ? st + 6 : "");
    char *amp = strchr(handler_state, '&');
    if (amp)
        *amp = '\0';
    return 0;
}
static int probe_callback(void *u, mcp_oauth_answer *answer)
{
    (void)u;
    probe(PK_CALLBACK);
    char back[512];
    snprintf(back, sizeof back, REDIRECT_URI "?code=code-1&state=%s&iss=%s", handler_state, ISSUER);
    return mcp_oauth_answer_set(answer, back) == MCP_OAUTH_RESULT_OK ? 0 : 1;
}

static void probe_sign(void *u, const uint8_t *in, size_t len, mcp_oauth_signature *sig)
{
    (void)u;
    (void)in;
    (void)len;
    probe(PK_SIGN);
    mcp_oauth_signature_fail(sig, "the probe has no key");
}
static int probe_jwt(void *u, mcp_oauth_answer *answer)
{
    (void)u;
    probe(PK_JWT);
    return mcp_oauth_answer_set(answer, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3In0.") == MCP_OAUTH_RESULT_OK ? 0 : 1;
}
static int probe_show(void *u, const mcp_oauth_device_authorization *a)
{
    (void)u;
    (void)a;
    probe(PK_SHOW);
    return 1; /* the flow ends here */
}

static int ts_load(void *u, const char *key, mcp_oauth_answer *answer, uint64_t *v)
{
    (void)key;
    (void)answer;
    (void)u;
    probe(PK_TOKEN_STORE);
    *v = 0;
    return 0;
}
static int ts_cas(void *u, const char *key, uint64_t expected, const char *json, bool *stored, uint64_t *v)
{
    (void)u;
    (void)key;
    (void)expected;
    (void)json;
    *stored = true;
    *v = 1;
    return 0;
}

static void run_with_probe_provider(mcp_oauth_config_builder *b, const char *what, int how)
{
    mcp_oauth_provider *p = build(b, what);
    probe_provider = p;
    mcp_oauth_error *err = NULL;
    if (how == 0) {
        mcp_oauth_provider_authorize(p, &err);
    } else if (how == 1) {
        mcp_oauth_headers *h = NULL;
        mcp_oauth_provider_get_headers(p, "POST", SERVER, &h, &err);
        mcp_oauth_headers_free(h);
    }
    mcp_oauth_error_free(err);
    probe_provider = NULL;
    mcp_oauth_provider_free(p);
}

static void test_reentrancy(void)
{
    section("a blocking function from inside every kind of callback");
    struct fas f;
    struct person person;
    struct store s;
    struct store target_store;
    store_init(&target_store, STORED);
    probe_target = build(flow_builder(NULL, NULL, &target_store), "the provider the callbacks call");

    /* Storage, and the process-wide log (on the caller's thread inside a
     * blocking call, or on a library thread). */
    store_init(&s, STORED);
    s.hook = probe_store_hook;
    CHECK(mcp_oauth_set_log_callback(probe_log, NULL, MCP_OAUTH_LOG_LEVEL_TRACE) == MCP_OAUTH_RESULT_OK,
          "set_log_callback");
    run_with_probe_provider(flow_builder(NULL, NULL, &s), "a provider with host storage", 1);
    store_destroy(&s);

    /* The transport, the deferred person's step, the provider's log. */
    fas_init(&f);
    person_init(&person);
    f.send_hook = probe_send_hook;
    person.begin_hook = probe_begin_hook;
    mcp_oauth_config_builder *b = flow_builder(&f, &person, NULL);
    mcp_oauth_log_options lo = MCP_OAUTH_LOG_OPTIONS_INIT;
    lo.userdata = &lo;
    lo.callback = probe_log;
    lo.max_level = MCP_OAUTH_LOG_LEVEL_TRACE;
    mcp_oauth_result rc = mcp_oauth_config_builder_set_log_options(b, &lo, NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK || rc == MCP_OAUTH_RESULT_INVALID_CONFIGURATION, "set_log_options");
    run_with_probe_provider(b, "a provider with a transport, a deferred person and a log", 0);
    mcp_oauth_set_log_callback(NULL, NULL, MCP_OAUTH_LOG_LEVEL_OFF);
    fas_destroy(&f);
    person_destroy(&person);

    /* Transport cancel: a held token request, the operation cancelled. */
    fas_init(&f);
    person_init(&person);
    f.hold = ST_TOKEN;
    f.cancel_hook = probe_cancel_hook;
    mcp_oauth_provider *p = build(flow_builder(&f, &person, NULL), "a provider whose token request is held");
    probe_provider = p;
    struct done d;
    done_init(&d);
    mcp_oauth_operation *op = NULL;
    CHECK(mcp_oauth_provider_authorize_start(p, on_plain, &d, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(counter_wait(&f.held_count, 1, 20000) == 1, "the token request is held");
    mcp_oauth_operation_cancel(op);
    CHECK(counter_wait(&d.c, 1, 20000) == 1, "cancelled");
    mcp_oauth_operation_free(op);
    mcp_oauth_provider_free(p); /* abandons the held request: the host is told */
    for (int i = 0; i < 250 && !atomic_load(&probes[PK_CANCEL].finished); i++)
        sleep_ms(20);
    probe_provider = NULL;
    fas_destroy(&f);
    person_destroy(&person);
    done_destroy(&d);

    /* Handler callbacks. */
    fas_init(&f);
    b = flow_builder(&f, NULL, NULL);
    mcp_oauth_handler_callbacks hc = MCP_OAUTH_HANDLER_CALLBACKS_INIT;
    hc.redirect = probe_redirect;
    hc.callback = probe_callback;
    CHECK(mcp_oauth_config_builder_set_handler_callbacks(b, &hc, NULL) == MCP_OAUTH_RESULT_OK, "handler callbacks");
    run_with_probe_provider(b, "a provider with handler callbacks", 0);
    fas_destroy(&f);

    /* The signer (private_key_jwt), the JWT callback (workload identity),
     * the device code. */
    fas_init(&f);
    b = flow_builder(&f, NULL, NULL);
    mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
    mcp_oauth_config_builder_set_static_client(b, "cid-1", NULL, "private_key_jwt", ISSUER);
    mcp_oauth_signer_callbacks sc = MCP_OAUTH_SIGNER_CALLBACKS_INIT;
    sc.algorithm = "ES256";
    sc.sign = probe_sign;
    sc.timeout_ms = 5000;
    mcp_oauth_config_builder_set_private_key_jwt_signer(b, &sc);
    run_with_probe_provider(b, "a provider with a host signer", 0);
    fas_destroy(&f);

    fas_init(&f);
    b = flow_builder(&f, NULL, NULL);
    mcp_oauth_config_builder_set_static_client(b, "cid-1", NULL, "none", ISSUER);
    mcp_oauth_jwt_callbacks jc = MCP_OAUTH_JWT_CALLBACKS_INIT;
    jc.get = probe_jwt;
    CHECK(mcp_oauth_config_builder_set_workload_identity_callbacks(b, &jc) == MCP_OAUTH_RESULT_OK, "workload JWT");
    run_with_probe_provider(b, "a workload-identity provider", 0);
    fas_destroy(&f);

    fas_init(&f);
    b = flow_builder(&f, NULL, NULL);
    mcp_oauth_device_code_callbacks dc = MCP_OAUTH_DEVICE_CODE_CALLBACKS_INIT;
    dc.show = probe_show;
    CHECK(mcp_oauth_config_builder_set_device_code(b, &dc) == MCP_OAUTH_RESULT_OK, "device code");
    run_with_probe_provider(b, "a device-flow provider", 0);
    fas_destroy(&f);

    /* A token store; a completion. */
    b = flow_builder(NULL, NULL, NULL);
    mcp_oauth_token_store ts = MCP_OAUTH_TOKEN_STORE_INIT;
    ts.load_tokens = ts_load;
    ts.compare_and_set_tokens = ts_cas;
    ts.get_client_info = nop_get_client;
    ts.set_client_info = nop_set_client;
    CHECK(mcp_oauth_config_builder_set_token_store(b, &ts, NULL) == MCP_OAUTH_RESULT_OK, "token store");
    run_with_probe_provider(b, "a provider with a token store", 1);

    store_init(&s, STORED);
    p = build(flow_builder(NULL, NULL, &s), "a provider for a completion");
    probe_provider = p;
    done_init(&d);
    CHECK(mcp_oauth_provider_get_headers_async(p, "POST", SERVER, probe_completion, &d) == MCP_OAUTH_RESULT_OK,
          "get_headers_async");
    CHECK(counter_wait(&d.c, 1, 20000) == 1, "completed");
    probe_provider = NULL;
    mcp_oauth_provider_free(p);
    store_destroy(&s);
    done_destroy(&d);

    for (int k = 0; k < PK_COUNT; k++)
        check_probe((enum probe_kind)k);
    mcp_oauth_provider_free(probe_target);
    probe_target = NULL;
    store_destroy(&target_store);
}

/* ======================================================= cancellation */

/* A provider against the played server, with a held stage. */
struct rig {
    struct fas f;
    struct person person;
    struct store s;
    mcp_oauth_provider *p;
};

static void rig_start(struct rig *r, enum stage hold, bool hold_person)
{
    fas_init(&r->f);
    person_init(&r->person);
    store_init(&r->s, NULL);
    r->f.hold = hold;
    r->person.hold = hold_person;
    r->p = build(flow_builder(&r->f, &r->person, &r->s), "a provider against the played server");
}

/* Free the provider (if not yet), answer what is held, and check that
 * every host part is released exactly once. */
static void rig_end(struct rig *r, const char *what)
{
    mcp_oauth_provider_free(r->p);
    r->p = NULL;
    fas_let_go(&r->f);
    mcp_oauth_authorization *held[MAX_HELD];
    int n = person_take_held(&r->person, held);
    for (int i = 0; i < n; i++) /* an answer after the cancel: ignored */
        person_answer(held[i]);
    for (int i = 0; i < 250; i++) {
        if (atomic_load(&r->f.releases) && atomic_load(&r->person.releases) && atomic_load(&r->s.releases))
            break;
        sleep_ms(20);
    }
    CHECK(atomic_load(&r->f.releases) == 1 && atomic_load(&r->person.releases) == 1 &&
              atomic_load(&r->s.releases) == 1,
          "%s: transport, person and store released once each (%d %d %d)", what, atomic_load(&r->f.releases),
          atomic_load(&r->person.releases), atomic_load(&r->s.releases));
    fas_destroy(&r->f);
    person_destroy(&r->person);
    store_destroy(&r->s);
}

static void expect_once(struct done *d, mcp_oauth_result want, const char *what)
{
    int n = counter_wait(&d->c, 1, 20000);
    sleep_ms(50);
    CHECK(n == 1 && counter_get(&d->c) == 1 && d->last == want, "%s: completes once with %s (%d calls, %s)", what,
          mcp_oauth_result_name(want), counter_get(&d->c), mcp_oauth_result_name(d->last));
}

static void cancel_own_op(struct done *d, mcp_oauth_result result)
{
    (void)result;
    CHECK(mcp_oauth_operation_cancel(d->op) == MCP_OAUTH_RESULT_OK, "cancel from the operation's own completion");
    mcp_oauth_operation_free(d->op);
    d->op = NULL;
}

static void test_cancel_states(void)
{
    section("operations cancelled in every state");
    struct rig r;
    struct done d;
    mcp_oauth_operation *op = NULL;

    /* Cancelled as soon as started: the race with a fast completion. */
    struct store s;
    store_init(&s, STORED);
    mcp_oauth_provider *p = build(flow_builder(NULL, NULL, &s), "a provider with a stored token");
    done_init(&d);
    enum { RACES = 300 };
    int started = 0;
    for (int i = 0; i < RACES; i++) {
        op = NULL;
        mcp_oauth_result rc = (i % 2) ? mcp_oauth_provider_get_headers_start(p, "POST", SERVER, on_headers, &d, &op)
                                      : mcp_oauth_provider_handle_response_start(p, "POST", SERVER, "Bearer abc", 200,
                                                                                 NULL, NULL, 0, on_headers, &d, &op);
        if (rc == MCP_OAUTH_RESULT_OK && op) {
            started++;
            mcp_oauth_operation_cancel(op);
            if (i % 3 == 0)
                mcp_oauth_operation_cancel(op);
            mcp_oauth_operation_free(op);
        }
    }
    counter_wait(&d.c, started, 20000);
    sleep_ms(100);
    CHECK(started == RACES && counter_get(&d.c) == RACES && atomic_load(&d.ok) + atomic_load(&d.cancelled) == RACES,
          "cancelled right after start, %d times: each completes once, OK or CANCELLED (%d OK, %d cancelled, %d other)",
          RACES, atomic_load(&d.ok), atomic_load(&d.cancelled), atomic_load(&d.other));
    done_destroy(&d);
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&s.releases) == 1, "released");
    store_destroy(&s);

    /* During discovery (a server that does not answer), cancelled twice. */
    rig_start(&r, ST_PRM, false);
    done_init(&d);
    CHECK(mcp_oauth_provider_authorize_start(r.p, on_plain, &d, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(counter_wait(&r.f.held_count, 1, 20000) >= 1, "discovery is waiting for the server");
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel during discovery");
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel twice");
    expect_once(&d, MCP_OAUTH_RESULT_CANCELLED, "cancelled during discovery");
    mcp_oauth_operation_free(op);
    mcp_oauth_provider_free(r.p);
    r.p = NULL;
    for (int i = 0; i < 250 && atomic_load(&r.f.cancels) == 0; i++)
        sleep_ms(20);
    CHECK(atomic_load(&r.f.cancels) >= 1 && r.f.nheld == 0, "the freed provider cancelled the held request at the host");
    rig_end(&r, "discovery");
    done_destroy(&d);

    /* While the person is away (deferred authorization). */
    rig_start(&r, ST_NONE, true);
    done_init(&d);
    CHECK(mcp_oauth_provider_authorize_start(r.p, on_plain, &d, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(counter_wait(&r.person.held_count, 1, 20000) == 1, "the person is away");
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel while the person is away");
    expect_once(&d, MCP_OAUTH_RESULT_CANCELLED, "cancelled while the person is away");
    mcp_oauth_operation_free(op);
    mcp_oauth_provider_free(r.p);
    r.p = NULL;
    for (int i = 0; i < 250 && atomic_load(&r.person.cancels) == 0; i++)
        sleep_ms(20);
    CHECK(atomic_load(&r.person.cancels) == 1, "the host was told to dismiss the person's step");
    rig_end(&r, "person");
    done_destroy(&d);

    /* During the token request. */
    rig_start(&r, ST_TOKEN, false);
    done_init(&d);
    CHECK(mcp_oauth_provider_authorize_start(r.p, on_plain, &d, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(counter_wait(&r.f.held_count, 1, 20000) == 1, "the token request is out");
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel during the token request");
    expect_once(&d, MCP_OAUTH_RESULT_CANCELLED, "cancelled during the token request");
    mcp_oauth_operation_free(op);
    rig_end(&r, "token request");
    done_destroy(&d);

    /* After completion: nothing changes. */
    rig_start(&r, ST_NONE, false);
    done_init(&d);
    CHECK(mcp_oauth_provider_authorize_start(r.p, on_plain, &d, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    expect_once(&d, MCP_OAUTH_RESULT_OK, "a whole flow against the played server");
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK && mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK,
          "cancel twice after completion");
    sleep_ms(50);
    CHECK(counter_get(&d.c) == 1 && d.last == MCP_OAUTH_RESULT_OK, "the completion keeps its result");
    mcp_oauth_operation_free(op);
    mcp_oauth_headers *h = NULL;
    CHECK(mcp_oauth_provider_try_get_headers(r.p, "POST", SERVER, &h, NULL) == MCP_OAUTH_RESULT_OK && h &&
              !strncmp(mcp_oauth_headers_authorization(h), "Bearer at-", 10),
          "the token of the flow is held");
    mcp_oauth_headers_free(h);
    rig_end(&r, "after completion");
    done_destroy(&d);

    /* The handle freed without cancelling: the operation runs on. */
    rig_start(&r, ST_TOKEN, false);
    done_init(&d);
    CHECK(mcp_oauth_provider_authorize_start(r.p, on_plain, &d, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(counter_wait(&r.f.held_count, 1, 20000) == 1, "the token request is out");
    mcp_oauth_operation_free(op);
    fas_let_go(&r.f);
    expect_once(&d, MCP_OAUTH_RESULT_OK, "an operation whose handle was freed");
    rig_end(&r, "handle freed");
    done_destroy(&d);

    /* Cancelled and freed from its own completion. */
    rig_start(&r, ST_PRM, false);
    done_init(&d);
    d.hook = cancel_own_op;
    CHECK(mcp_oauth_provider_authorize_start(r.p, on_plain, &d, &d.op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(counter_wait(&r.f.held_count, 1, 20000) >= 1, "discovery is waiting");
    fas_let_go(&r.f);
    expect_once(&d, MCP_OAUTH_RESULT_OK, "an operation cancelled from its own completion");
    rig_end(&r, "own completion");
    done_destroy(&d);

    /* The provider freed without cancelling, in each state. */
    const enum stage stages[] = {ST_PRM, ST_META, ST_REGISTER, ST_NONE, ST_TOKEN};
    const char *names[] = {"resource metadata", "authorization server metadata", "registration", "person",
                           "token request"};
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        rig_start(&r, stages[i], stages[i] == ST_NONE);
        done_init(&d);
        struct done d2;
        done_init(&d2);
        CHECK(mcp_oauth_provider_authorize_start(r.p, on_plain, &d, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
        CHECK(mcp_oauth_provider_handle_response_async(r.p, "POST", SERVER, NULL, 401, NULL, NULL, 0, on_headers,
                                                       &d2) == MCP_OAUTH_RESULT_OK,
              "handle_response_async(401)");
        struct counter *c = stages[i] == ST_NONE ? &r.person.held_count : &r.f.held_count;
        CHECK(counter_wait(c, 1, 20000) >= 1, "held at the %s", names[i]);
        mcp_oauth_provider_free(r.p);
        r.p = NULL;
        char what[128];
        snprintf(what, sizeof what, "provider freed during the %s", names[i]);
        expect_once(&d, MCP_OAUTH_RESULT_CANCELLED, what);
        expect_once(&d2, MCP_OAUTH_RESULT_CANCELLED, what);
        mcp_oauth_operation_free(op);
        rig_end(&r, what);
        done_destroy(&d);
        done_destroy(&d2);
    }
}

/* ================================================ freed while in use */

struct starter {
    mcp_oauth_provider *p;
    struct done *d;
    int started;
};

static void *start_ops(void *arg)
{
    struct starter *st = arg;
    for (int i = 0; i < 4; i++) {
        mcp_oauth_result rc;
        switch (i) {
        case 0:
            rc = mcp_oauth_provider_authorize_async(st->p, on_plain, st->d);
            break;
        case 1:
            rc = mcp_oauth_provider_handle_response_async(st->p, "POST", SERVER, NULL, 401, NULL, NULL, 0, on_headers,
                                                          st->d);
            break;
        case 2:
            rc = mcp_oauth_provider_get_headers_async(st->p, "POST", SERVER, on_headers, st->d);
            break;
        default:
            rc = mcp_oauth_provider_logout_start(st->p, on_plain, st->d, NULL);
        }
        if (rc == MCP_OAUTH_RESULT_OK)
            st->started++;
    }
    return NULL;
}

static void free_provider_hook(struct done *d, mcp_oauth_result result)
{
    (void)result;
    mcp_oauth_provider *p = d->free_me;
    d->free_me = NULL;
    mcp_oauth_provider_free(p); /* documented: a completion may free the provider */
}

static void test_free_while_in_use(void)
{
    section("a provider freed while other threads' operations are in flight");
    enum { STARTERS = 16 };
    for (int round = 0; round < 2; round++) {
        struct rig r;
        rig_start(&r, ST_TOKEN, false);
        struct done d;
        done_init(&d);
        pthread_t t[STARTERS];
        struct starter st[STARTERS];
        for (int i = 0; i < STARTERS; i++) {
            st[i] = (struct starter){.p = r.p, .d = &d};
            pthread_create(&t[i], NULL, start_ops, &st[i]);
        }
        int started = 0;
        for (int i = 0; i < STARTERS; i++) {
            pthread_join(t[i], NULL);
            started += st[i].started;
        }
        CHECK(started == STARTERS * 4, "%d operations started from %d threads", started, STARTERS);
        CHECK(counter_wait(&r.f.held_count, 1, 20000) >= 1, "the token request is out");
        struct done killer;
        done_init(&killer);
        if (round == 0) {
            mcp_oauth_provider_free(r.p); /* from the main thread */
        } else {
            killer.hook = free_provider_hook;
            killer.free_me = r.p;
            CHECK(mcp_oauth_provider_handle_response_async(r.p, "POST", SERVER, "Bearer x", 200, NULL, NULL, 0,
                                                           on_headers, &killer) == MCP_OAUTH_RESULT_OK,
                  "an operation whose completion frees the provider");
            CHECK(counter_wait(&killer.c, 1, 20000) == 1 && killer.free_me == NULL, "the completion freed it");
        }
        r.p = NULL;
        counter_wait(&d.c, started, 20000);
        sleep_ms(100);
        CHECK(counter_get(&d.c) == started && atomic_load(&d.other) == 0,
              "%s: every operation completes once, OK or CANCELLED (%d OK, %d cancelled, %d other)",
              round ? "freed from a completion" : "freed from the main thread", atomic_load(&d.ok),
              atomic_load(&d.cancelled), atomic_load(&d.other));
        CHECK(atomic_load(&d.cancelled) > 0, "the ones waiting for the token request were cancelled (%d)",
              atomic_load(&d.cancelled));
        rig_end(&r, round ? "freed from a completion" : "freed while in use");
        done_destroy(&d);
        done_destroy(&killer);
    }
}

/* ================================================ 16 threads hammering */

#define HAMMER_THREADS 16
#define HAMMER_ITERATIONS 200

struct hammer_arg {
    mcp_oauth_provider *p;
    struct done *d;
    int failures, started, retries, refused;
    char first_failure[512];
};

static void hammer_fail(struct hammer_arg *a, const char *what, mcp_oauth_result rc, const mcp_oauth_error *err)
{
    if (!a->failures++)
        snprintf(a->first_failure, sizeof a->first_failure, "%s: %s (%s)", what, mcp_oauth_result_name(rc),
                 err ? mcp_oauth_error_display(err) : "");
}

static void *hammer(void *arg)
{
    struct hammer_arg *a = arg;
    const char *names[] = {"WWW-Authenticate"};
    const char *invalid[] = {"Bearer error=\"invalid_token\""};
    const char *scope[] = {"Bearer error=\"insufficient_scope\", scope=\"mcp admin\""};
    for (int i = 0; i < HAMMER_ITERATIONS; i++) {
        mcp_oauth_headers *h = NULL;
        mcp_oauth_result rc = mcp_oauth_provider_get_headers(a->p, "POST", SERVER, &h, NULL);
        const char *auth = mcp_oauth_headers_authorization(h);
        if (rc != MCP_OAUTH_RESULT_OK || !auth || strncmp(auth, "Bearer ", 7)) {
            hammer_fail(a, "get_headers", rc, NULL);
            mcp_oauth_headers_free(h);
            continue;
        }
        if (i % 10 == 3 || i % 25 == 7) {
            bool retry = false;
            mcp_oauth_headers *again = NULL;
            mcp_oauth_error *err = NULL;
            rc = mcp_oauth_provider_handle_response(a->p, "POST", SERVER, auth, i % 10 == 3 ? 401 : 403, names,
                                                    i % 10 == 3 ? invalid : scope, 1, &retry, &again, &err);
            /* A 403 for scopes already granted is refused (the step-up is
             * bounded): FLOW, step step_up. */
            bool refused_step_up = i % 10 != 3 && rc == MCP_OAUTH_RESULT_FLOW && err &&
                                   mcp_oauth_error_step(err) && !strcmp(mcp_oauth_error_step(err), "step_up");
            a->refused += refused_step_up;
            if (!refused_step_up && (rc != MCP_OAUTH_RESULT_OK || (retry && !mcp_oauth_headers_authorization(again))))
                hammer_fail(a, i % 10 == 3 ? "handle_response(401)" : "handle_response(403)", rc, err);
            mcp_oauth_error_free(err);
            a->retries += retry;
            mcp_oauth_headers_free(again);
        }
        mcp_oauth_headers_free(h);
        if (i % 5 == 0) {
            mcp_oauth_operation *op = NULL;
            rc = (i % 10) ? mcp_oauth_provider_get_headers_start(a->p, "POST", SERVER, on_headers, a->d, &op)
                          : mcp_oauth_provider_authorize_start(a->p, on_plain, a->d, &op);
            if (rc == MCP_OAUTH_RESULT_OK) {
                a->started++;
                mcp_oauth_operation_cancel(op);
                mcp_oauth_operation_free(op);
            } else {
                hammer_fail(a, "_start", rc, NULL);
            }
        }
    }
    return NULL;
}

static void test_hammer(void)
{
    section("16 threads hammering one provider");
    struct fas f;
    fas_init(&f);
    struct store s;
    store_init(&s, STORED);
    mcp_oauth_config_builder *b = flow_builder(&f, NULL, &s);
    mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
    mcp_oauth_config_builder_set_static_client(b, "cid-1", "secret-1", "client_secret_basic", ISSUER);
    mcp_oauth_provider *p = build(b, "a client-credentials provider with a stored token");
    struct done d;
    done_init(&d);
    pthread_t t[HAMMER_THREADS];
    struct hammer_arg args[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++) {
        args[i] = (struct hammer_arg){.p = p, .d = &d};
        pthread_create(&t[i], NULL, hammer, &args[i]);
    }
    int failures = 0, started = 0, retries = 0, refused = 0;
    const char *first = "";
    for (int i = 0; i < HAMMER_THREADS; i++) {
        pthread_join(t[i], NULL);
        failures += args[i].failures;
        started += args[i].started;
        retries += args[i].retries;
        refused += args[i].refused;
        if (args[i].failures && !*first)
            first = args[i].first_failure;
    }
    CHECK(failures == 0, "%d threads x %d iterations (headers, 401s, 403s, operations started and cancelled): %d "
                         "failures %s",
          HAMMER_THREADS, HAMMER_ITERATIONS, failures, first);
    counter_wait(&d.c, started, 30000);
    sleep_ms(100);
    CHECK(counter_get(&d.c) == started && atomic_load(&d.other) == 0,
          "the %d operations started and cancelled completed once each (%d OK, %d cancelled, %d other)", started,
          atomic_load(&d.ok), atomic_load(&d.cancelled), atomic_load(&d.other));
    printf("# hammer: %d retries after 401/403, %d step-ups refused (scope already granted), %d tokens issued by the "
           "played server\n",
           retries, refused, atomic_load(&f.tokens_issued));
    CHECK(retries > 0, "401s and 403s were answered with a retry");
    mcp_oauth_provider_free(p);
    for (int i = 0; i < 250 && !(atomic_load(&s.releases) && atomic_load(&f.releases)); i++)
        sleep_ms(20);
    CHECK(atomic_load(&s.releases) == 1 && atomic_load(&f.releases) == 1, "released once each");
    fas_destroy(&f);
    store_destroy(&s);
    done_destroy(&d);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    test_generated_cases();
    test_zero_lengths();
    test_zero_lengths_in_callbacks();
    test_reentrancy();
    test_cancel_states();
    test_free_while_in_use();
    test_hammer();
    alarm(0);
    mcp_oauth_shutdown(5000);
    return check_finish();
}
