/*
 * What a host shipping on the C ABI relies on beyond the error paths:
 * - the `release` contract: a userdata shared by several providers (or by
 *   storage and handler callbacks) is released once, after the last user,
 *   whichever is freed first (run under ASan: a second release would be a
 *   double free, an early one a use after free);
 * - cancellation: an operation cancelled during discovery or during the
 *   person's step completes once, with MCP_OAUTH_RESULT_CANCELLED, and so
 *   does every operation of a provider freed while they run; the hot path
 *   (`try_get_headers`) never waits behind a person;
 * - the transport callback: a host transport over libcurl, answering from
 *   its own thread, carries a whole flow against the real peers; a token
 *   request held by the host is cancelled at the host when the provider is
 *   freed; a failing transport, one that never answers (the deadline fires
 *   and the host is told), one that refuses, one that answers too much;
 *   the struct's version checks;
 * - errors a host keeps (a clone outliving its completion, error_uri, the
 *   host callback's own code, setters saying why);
 * - deferred answers to the person's step (a whole flow answered from
 *   another thread, with the state and redirect URI; failed with the host's
 *   code; never answered; cancelled, then dismissed at the host);
 * - a token store shared by two providers (as by two processes), with
 *   versions, compare-and-set and the lease: a rotating refresh token is
 *   spent once;
 * - per-provider log callbacks, and the provider's id on the process-wide
 *   callback's messages;
 * - fork (the child gets FORKED at once, never hangs) and
 *   `mcp_oauth_shutdown` (refused from a library thread, BUSY while a
 *   blocking call runs, then the library's threads stop; usable again).
 *
 * Environment (tests/c/run.sh sets it): MCP_URL, PRM_URL (the real peers),
 * BROWSER (follows the authorization server's redirects).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "check.h"

static const char *const URL = "https://mcp.example.com/mcp";
static const char *METADATA = "{\"redirect_uris\": [\"http://127.0.0.1:33419/callback\"], \"client_name\": \"c abi tests\"}";

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------ a heap-allocated store */

/* Freed by its release callback: any use after release, or a second
 * release, is caught by AddressSanitizer (and valgrind). */
struct heap_store {
    atomic_int get_calls;
    char tokens[128];
};

static atomic_int heap_releases;

static int heap_get_tokens(void *userdata, mcp_oauth_answer *answer)
{
    struct heap_store *s = userdata;
    atomic_fetch_add(&s->get_calls, 1);
    if (s->tokens[0])
        return mcp_oauth_answer_set(answer, s->tokens) == MCP_OAUTH_RESULT_OK ? 0 : 1;
    return 0;
}

static int heap_set_tokens(void *userdata, const char *json)
{
    struct heap_store *s = userdata;
    snprintf(s->tokens, sizeof s->tokens, "%s", json);
    return 0;
}

static int heap_get_client_info(void *userdata, mcp_oauth_answer *answer)
{
    (void)userdata;
    (void)answer;
    return 0;
}

static int heap_set_client_info(void *userdata, const char *json)
{
    (void)userdata;
    (void)json;
    return 0;
}

static void heap_release(void *userdata)
{
    struct heap_store *s = userdata;
    memset(s, 0xAB, sizeof *s);
    free(s);
    atomic_fetch_add(&heap_releases, 1);
}

static struct heap_store *heap_store_new(void)
{
    struct heap_store *s = calloc(1, sizeof *s);
    snprintf(s->tokens, sizeof s->tokens, "{\"access_token\": \"shared\", \"token_type\": \"Bearer\"}");
    return s;
}

static int failing_get_tokens(void *userdata, mcp_oauth_answer *answer)
{
    (void)userdata;
    (void)answer;
    return -42;
}

static mcp_oauth_storage_callbacks heap_callbacks(struct heap_store *s)
{
    mcp_oauth_storage_callbacks cb = {
        .version = MCP_OAUTH_STORAGE_CALLBACKS_VERSION,
        .userdata = s,
        .get_tokens = heap_get_tokens,
        .set_tokens = heap_set_tokens,
        .get_client_info = heap_get_client_info,
        .set_client_info = heap_set_client_info,
        .release = heap_release,
    };
    return cb;
}

static mcp_oauth_config_builder *builder_with(const mcp_oauth_storage_callbacks *cb)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, URL);
    mcp_oauth_config_builder_set_client_metadata_json(b, METADATA);
    CHECK(mcp_oauth_config_builder_set_storage_callbacks(b, cb, NULL) == MCP_OAUTH_RESULT_OK, "set_storage_callbacks");
    return b;
}

static mcp_oauth_provider *build(mcp_oauth_config_builder *b)
{
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && p, "build (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return p;
}

/* The provider reads the shared store: its header is the stored token. */
static void check_reads_store_at(mcp_oauth_provider *p, const char *url, const char *what)
{
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", url, &h, &err);
    const char *auth = mcp_oauth_headers_authorization(h);
    CHECK(rc == MCP_OAUTH_RESULT_OK && auth && !strcmp(auth, "Bearer shared"), "%s reads the shared store (%s)", what,
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(err);
}

static void check_reads_store(mcp_oauth_provider *p, const char *what)
{
    check_reads_store_at(p, URL, what);
}

static void test_release_shared_userdata(void)
{
    for (int order = 0; order < 2; order++) {
        atomic_store(&heap_releases, 0);
        struct heap_store *s = heap_store_new();
        mcp_oauth_storage_callbacks cb = heap_callbacks(s);
        mcp_oauth_provider *a = build(builder_with(&cb));
        mcp_oauth_provider *b = build(builder_with(&cb));
        mcp_oauth_provider *first = order == 0 ? a : b, *second = order == 0 ? b : a;
        const char *name = order == 0 ? "first built, freed first" : "last built, freed first";
        check_reads_store(first, name);
        mcp_oauth_provider_free(first);
        CHECK(atomic_load(&heap_releases) == 0, "%s: not released while the other provider uses it", name);
        /* The other provider loads the store only now: after the free. */
        check_reads_store(second, "the other provider");
        mcp_oauth_provider_free(second);
        CHECK(atomic_load(&heap_releases) == 1, "%s: released once, after the last provider (%d)", name,
              atomic_load(&heap_releases));
    }

    /* A builder freed unbuilt and a provider sharing the userdata. */
    atomic_store(&heap_releases, 0);
    struct heap_store *s = heap_store_new();
    mcp_oauth_storage_callbacks cb = heap_callbacks(s);
    mcp_oauth_config_builder *unbuilt = builder_with(&cb);
    mcp_oauth_provider *p = build(builder_with(&cb));
    mcp_oauth_config_builder_free(unbuilt);
    CHECK(atomic_load(&heap_releases) == 0, "a freed builder does not release a userdata a provider still uses");
    check_reads_store(p, "the provider");
    /* Replacing the storage on a builder gives up its hold. */
    mcp_oauth_config_builder *replaced = builder_with(&cb);
    CHECK(mcp_oauth_config_builder_set_storage_memory(replaced) == MCP_OAUTH_RESULT_OK, "storage replaced");
    CHECK(atomic_load(&heap_releases) == 0, "replacing one hold does not release the userdata");
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&heap_releases) == 1, "released once the provider is freed");
    mcp_oauth_config_builder_free(replaced);
    CHECK(atomic_load(&heap_releases) == 1, "and not again");
}

/* Storage and handler callbacks sharing one userdata and one release. */
static int shared_redirect(void *userdata, const char *url)
{
    (void)userdata;
    (void)url;
    return 1;
}

static int shared_callback(void *userdata, mcp_oauth_answer *answer)
{
    (void)userdata;
    (void)answer;
    return 1;
}

static void test_release_storage_and_handler_share(void)
{
    atomic_store(&heap_releases, 0);
    struct heap_store *s = heap_store_new();
    mcp_oauth_storage_callbacks cb = heap_callbacks(s);
    mcp_oauth_config_builder *b = builder_with(&cb);
    mcp_oauth_handler_callbacks hcb = {
        .version = MCP_OAUTH_HANDLER_CALLBACKS_VERSION,
        .userdata = s, .redirect = shared_redirect, .callback = shared_callback, .release = heap_release};
    CHECK(mcp_oauth_config_builder_set_handler_callbacks(b, &hcb, NULL) == MCP_OAUTH_RESULT_OK, "set_handler_callbacks");
    mcp_oauth_provider *p = build(b);
    check_reads_store(p, "storage and handler sharing a userdata");
    mcp_oauth_provider_free(p);
    sleep_ms(50);
    CHECK(atomic_load(&heap_releases) == 1, "one release for storage and handler (%d)", atomic_load(&heap_releases));
}


/* ------------------------------------------------------------ completions */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    mcp_oauth_result result;
    char kind[64];
    char display[512];
    char auth[256];
    mcp_oauth_error *kept; /* a clone of the last completion's error */
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void waiter_destroy(struct waiter *w)
{
    mcp_oauth_error_free(w->kept);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void waiter_record(struct waiter *w, mcp_oauth_result result, const mcp_oauth_headers *headers,
                          const mcp_oauth_error *error)
{
    const char *auth = mcp_oauth_headers_authorization(headers);
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->result = result;
    snprintf(w->kind, sizeof w->kind, "%s", error ? mcp_oauth_error_kind(error) : "");
    snprintf(w->display, sizeof w->display, "%s", error ? mcp_oauth_error_display(error) : "");
    snprintf(w->auth, sizeof w->auth, "%s", auth ? auth : "");
    mcp_oauth_error_free(w->kept);
    w->kept = mcp_oauth_error_clone(error); /* outlives the completion */
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_plain(void *userdata, mcp_oauth_result result, const char *value, const mcp_oauth_error *error)
{
    (void)value;
    waiter_record(userdata, result, NULL, error);
}

static void on_headers(void *userdata, mcp_oauth_result result, const mcp_oauth_headers *headers,
                       const mcp_oauth_error *error)
{
    waiter_record(userdata, result, headers, error);
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

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000L + (now.tv_nsec - since->tv_nsec) / 1000000L;
}

/* --------------------------------------------- a person who never returns */

/* Handler callbacks whose `callback` blocks until the test lets it go, the
 * way a person who never finishes logging in keeps a handler waiting. */
struct person {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool waiting; /* inside `callback` */
    bool let_go;
    atomic_int redirects;
    atomic_int releases;
    int redirect_rc; /* what `redirect` returns */
};

static int person_redirect(void *userdata, const char *url)
{
    struct person *p = userdata;
    (void)url;
    atomic_fetch_add(&p->redirects, 1);
    return p->redirect_rc;
}

static int person_callback(void *userdata, mcp_oauth_answer *answer)
{
    struct person *p = userdata;
    (void)answer;
    pthread_mutex_lock(&p->mu);
    p->waiting = true;
    pthread_cond_broadcast(&p->cv);
    while (!p->let_go)
        pthread_cond_wait(&p->cv, &p->mu);
    p->waiting = false;
    pthread_mutex_unlock(&p->mu);
    return 1; /* the person gave up */
}

static void person_release(void *userdata)
{
    struct person *p = userdata;
    atomic_fetch_add(&p->releases, 1);
}

static void person_init(struct person *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

static bool person_wait_inside(struct person *p, long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000 + 1;
    pthread_mutex_lock(&p->mu);
    while (!p->waiting) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) != 0)
            break;
    }
    bool inside = p->waiting;
    pthread_mutex_unlock(&p->mu);
    return inside;
}

static void person_let_go(struct person *p)
{
    pthread_mutex_lock(&p->mu);
    p->let_go = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void person_destroy(struct person *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

static mcp_oauth_provider *provider_with_person(const char *server_url, struct person *person,
                                                const mcp_oauth_storage_callbacks *storage)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, server_url);
    mcp_oauth_config_builder_set_client_metadata_json(b, METADATA);
    mcp_oauth_handler_callbacks h = {
        .version = MCP_OAUTH_HANDLER_CALLBACKS_VERSION,
        .userdata = person, .redirect = person_redirect, .callback = person_callback, .release = person_release};
    CHECK(mcp_oauth_config_builder_set_handler_callbacks(b, &h, NULL) == MCP_OAUTH_RESULT_OK, "set_handler_callbacks");
    if (storage)
        CHECK(mcp_oauth_config_builder_set_storage_callbacks(b, storage, NULL) == MCP_OAUTH_RESULT_OK,
              "set_storage_callbacks");
    return build(b);
}

/* A TCP port that takes connections (the kernel's backlog) and never
 * answers: discovery waits there until its deadline. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &alen) != 0)
        return -1;
    *port = ntohs(addr.sin_port);
    return fd;
}

static void test_cancel_during_discovery(void)
{
    int port = 0;
    int listener = silent_listener(&port);
    CHECK(listener >= 0, "a silent server listens");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/mcp", port);
    struct person person;
    person_init(&person);
    mcp_oauth_provider *p = provider_with_person(url, &person, NULL);

    struct waiter w;
    waiter_init(&w);
    mcp_oauth_operation *op = NULL;
    CHECK(mcp_oauth_provider_authorize_start(p, on_plain, &w, &op) == MCP_OAUTH_RESULT_OK && op,
          "authorize_start gives an operation");
    sleep_ms(200);
    CHECK(wait_calls(&w, 1, 0) == 0, "discovery is waiting on the silent server");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel");
    int calls = wait_calls(&w, 1, 5000);
    long took = elapsed_ms(&t0);
    CHECK(calls == 1, "the completion comes at once after cancel (%ld ms)", took);
    CHECK(w.result == MCP_OAUTH_RESULT_CANCELLED && !strcmp(w.kind, "cancelled"), "with CANCELLED (%s, %s)",
          mcp_oauth_result_name(w.result), w.display);
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancelling again is harmless");
    mcp_oauth_operation_free(op);
    sleep_ms(100);
    CHECK(w.calls == 1, "exactly one completion");
    CHECK(atomic_load(&person.redirects) == 0, "the person was never sent anywhere");

    /* Freeing the provider cancels what it has in flight. */
    waiter_destroy(&w);
    waiter_init(&w);
    CHECK(mcp_oauth_provider_authorize_async(p, on_plain, &w) == MCP_OAUTH_RESULT_OK, "authorize_async starts");
    struct waiter wh;
    waiter_init(&wh);
    CHECK(mcp_oauth_provider_handle_response_async(p, "POST", url, NULL, 401, NULL, NULL, 0, on_headers, &wh) ==
              MCP_OAUTH_RESULT_OK,
          "handle_response_async (401) starts");
    sleep_ms(200);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mcp_oauth_provider_free(p);
    calls = wait_calls(&w, 1, 5000) + wait_calls(&wh, 1, 5000);
    took = elapsed_ms(&t0);
    CHECK(calls == 2, "both complete soon after the provider is freed (%ld ms)", took);
    CHECK(w.result == MCP_OAUTH_RESULT_CANCELLED && wh.result == MCP_OAUTH_RESULT_CANCELLED,
          "with CANCELLED (%s: %s; %s: %s)", mcp_oauth_result_name(w.result), w.display,
          mcp_oauth_result_name(wh.result), wh.display);
    sleep_ms(200);
    CHECK(w.calls == 1 && wh.calls == 1, "each exactly once");
    CHECK(atomic_load(&person.releases) == 1, "the handler is released once (%d)", atomic_load(&person.releases));
    waiter_destroy(&w);
    waiter_destroy(&wh);
    person_destroy(&person);
    close(listener);
}

static void test_cancel_during_the_persons_step(const char *mcp_url)
{
    atomic_store(&heap_releases, 0);
    struct heap_store *s = heap_store_new();
    mcp_oauth_storage_callbacks cb = heap_callbacks(s);
    struct person person;
    person_init(&person);
    mcp_oauth_provider *p = provider_with_person(mcp_url, &person, &cb);
    check_reads_store_at(p, mcp_url, "a provider about to log in again");

    struct waiter w;
    waiter_init(&w);
    mcp_oauth_operation *op = NULL;
    CHECK(mcp_oauth_provider_authorize_start(p, on_plain, &w, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(person_wait_inside(&person, 10000), "discovery against the peers done, the person is being waited for");
    CHECK(atomic_load(&person.redirects) == 1, "the person was sent to the authorization server");

    /* The hot path never waits behind the person, even from here. */
    mcp_oauth_headers *h = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mcp_oauth_result rc = mcp_oauth_provider_try_get_headers(p, "POST", mcp_url, &h, NULL);
    const char *auth = mcp_oauth_headers_authorization(h);
    CHECK(rc == MCP_OAUTH_RESULT_OK && auth && !strcmp(auth, "Bearer shared") && elapsed_ms(&t0) < 1000,
          "try_get_headers answers with the held token while a person logs in (%ld ms)", elapsed_ms(&t0));
    mcp_oauth_headers_free(h);
    h = NULL;
    rc = mcp_oauth_provider_try_get_headers(p, "POST", "https://elsewhere.example/mcp", &h, NULL);
    CHECK(rc == MCP_OAUTH_RESULT_OK && h == NULL, "try_get_headers: nothing for another origin");

    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel during the person's step");
    int calls = wait_calls(&w, 1, 5000);
    long took = elapsed_ms(&t0);
    CHECK(calls == 1 && w.result == MCP_OAUTH_RESULT_CANCELLED,
          "completes with CANCELLED while the person is still away (%s, %ld ms)", mcp_oauth_result_name(w.result),
          took);
    mcp_oauth_operation_free(op);

    /* A second log-in started, then the provider freed: cancelled too; the
     * handler is released only once its running callback returns. */
    struct waiter w2;
    waiter_init(&w2);
    CHECK(mcp_oauth_provider_authorize_async(p, on_plain, &w2) == MCP_OAUTH_RESULT_OK, "another authorize_async");
    sleep_ms(100);
    mcp_oauth_provider_free(p);
    calls = wait_calls(&w2, 1, 5000);
    CHECK(calls == 1 && w2.result == MCP_OAUTH_RESULT_CANCELLED,
          "freeing the provider during the person's step cancels (%s: %s)", mcp_oauth_result_name(w2.result), w2.display);
    sleep_ms(100);
    CHECK(atomic_load(&person.releases) == 0, "the handler is not released while its callback runs");
    CHECK(atomic_load(&heap_releases) == 1, "the storage, no longer in use, is released");
    person_let_go(&person);
    for (int i = 0; i < 50 && atomic_load(&person.releases) == 0; i++)
        sleep_ms(20);
    CHECK(atomic_load(&person.releases) == 1, "the handler is released once its callback returned");
    sleep_ms(100);
    CHECK(w.calls == 1 && w2.calls == 1, "each completion exactly once");
    waiter_destroy(&w);
    waiter_destroy(&w2);
    person_destroy(&person);
}

static void test_cancel_after_completion(void)
{
    atomic_store(&heap_releases, 0);
    struct heap_store *s = heap_store_new();
    mcp_oauth_storage_callbacks cb = heap_callbacks(s);
    mcp_oauth_provider *p = build(builder_with(&cb));
    mcp_oauth_headers *h = NULL;
    CHECK(mcp_oauth_provider_try_get_headers(p, "POST", URL, &h, NULL) == MCP_OAUTH_RESULT_OK && h == NULL,
          "try_get_headers before anything is loaded: none (it never loads)");
    CHECK(atomic_load(&s->get_calls) == 0, "and it did not touch the store");
    struct waiter w;
    waiter_init(&w);
    mcp_oauth_operation *op = NULL;
    CHECK(mcp_oauth_provider_get_headers_start(p, "POST", URL, on_headers, &w, &op) == MCP_OAUTH_RESULT_OK,
          "get_headers_start");
    int calls = wait_calls(&w, 1, 5000);
    CHECK(calls == 1 && w.result == MCP_OAUTH_RESULT_OK && !strcmp(w.auth, "Bearer shared"),
          "completes with the stored token");
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel after the completion");
    sleep_ms(100);
    CHECK(w.calls == 1 && w.result == MCP_OAUTH_RESULT_OK, "changes nothing");
    mcp_oauth_operation_free(op);
    mcp_oauth_operation_free(NULL);
    CHECK(mcp_oauth_operation_cancel(NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER, "cancel(NULL)");
    CHECK(mcp_oauth_provider_try_get_headers(NULL, "POST", URL, &h, NULL) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "try_get_headers(NULL provider)");
    CHECK(mcp_oauth_provider_get_headers_start(p, "POST", URL, NULL, &w, &op) == MCP_OAUTH_RESULT_NULL_PARAMETER,
          "get_headers_start without a completion");
    h = NULL;
    CHECK(mcp_oauth_provider_try_get_headers(p, "POST", URL, &h, NULL) == MCP_OAUTH_RESULT_OK && h &&
              !strcmp(mcp_oauth_headers_authorization(h), "Bearer shared"),
          "try_get_headers once the token is held");
    mcp_oauth_headers_free(h);
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&heap_releases) == 1, "released");
    waiter_destroy(&w);
}

/* ------------------------------------------ a host transport over libcurl */

/* The host's HTTP stack: `send` queues the request, a worker thread sends
 * it with libcurl and answers it, from that other thread. Modes make it
 * hold token requests, fail everything, never answer, refuse, or answer
 * with an oversized body. */
enum courier_mode {
    COURIER_NORMAL,
    COURIER_HOLD_TOKEN,
    COURIER_FAIL,
    COURIER_SILENT,
    COURIER_REFUSE,
    COURIER_HUGE,
    COURIER_SCRIPT, /* plays an authorization server that refuses the grant, with every OAuth error field */
    COURIER_ROTATE, /* plays an authorization server with single-use (rotating) refresh tokens */
};

static atomic_int refresh_requests, refresh_reuses;

#define COURIER_MAX 64

struct courier {
    enum courier_mode mode;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mcp_oauth_http_request *queue[COURIER_MAX];
    int queued;
    mcp_oauth_http_request *held[COURIER_MAX];
    int nheld;
    char seen[COURIER_MAX][160]; /* "METHOD url" of each request, in order */
    int nseen;
    int answered;
    int answered_elsewhere; /* answered on a thread other than send's */
    atomic_int cancels;
    atomic_int releases;
    bool stop;
    pthread_t worker;
};

static pthread_t send_threads[COURIER_MAX];

static int courier_send(void *userdata, mcp_oauth_http_request *req)
{
    struct courier *c = userdata;
    if (c->mode == COURIER_REFUSE)
        return 7;
    pthread_mutex_lock(&c->mu);
    if (c->nseen < COURIER_MAX) {
        snprintf(c->seen[c->nseen], sizeof c->seen[0], "%s %s", mcp_oauth_http_request_method(req),
                 mcp_oauth_http_request_url(req));
        send_threads[c->nseen] = pthread_self();
        c->nseen++;
    }
    const char *url = mcp_oauth_http_request_url(req);
    size_t n = strlen(url);
    bool is_token = n >= 6 && !strcmp(url + n - 6, "/token");
    if (c->mode == COURIER_SILENT || (c->mode == COURIER_HOLD_TOKEN && is_token)) {
        c->held[c->nheld++] = req;
    } else {
        c->queue[c->queued++] = req;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void courier_cancel(void *userdata, mcp_oauth_http_request *req)
{
    struct courier *c = userdata;
    /* The request stays valid here: read it, as a host would to find its
     * transfer. */
    CHECK(mcp_oauth_http_request_url(req) != NULL, "cancel: the request is readable");
    atomic_fetch_add(&c->cancels, 1);
}

static void courier_release(void *userdata)
{
    struct courier *c = userdata;
    atomic_fetch_add(&c->releases, 1);
}

struct response {
    char *names[32];
    char *values[32];
    int count;
    char *body;
    size_t len, cap, limit;
    bool too_large;
};

static size_t on_header(char *buf, size_t size, size_t n, void *userdata)
{
    struct response *r = userdata;
    size_t len = size * n;
    const char *colon = memchr(buf, ':', len);
    if (!strncmp(buf, "HTTP/", 5)) { /* a new response (after 100-continue): start again */
        for (int i = 0; i < r->count; i++) {
            free(r->names[i]);
            free(r->values[i]);
        }
        r->count = 0;
    } else if (colon && r->count < 32) {
        size_t klen = (size_t)(colon - buf);
        const char *v = colon + 1;
        while (v < buf + len && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(buf + len - v);
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
            vlen--;
        r->names[r->count] = strndup(buf, klen);
        r->values[r->count] = strndup(v, vlen);
        r->count++;
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *userdata)
{
    struct response *r = userdata;
    size_t len = size * n;
    if (r->len + len > r->limit) {
        r->too_large = true;
        return 0; /* stop reading: the library would refuse it anyway */
    }
    if (r->len + len > r->cap) {
        r->cap = (r->len + len) * 2;
        r->body = realloc(r->body, r->cap);
    }
    memcpy(r->body + r->len, buf, len);
    r->len += len;
    return len;
}

static void courier_perform(mcp_oauth_http_request *req)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    for (size_t i = 0; i < mcp_oauth_http_request_header_count(req); i++) {
        char line[2048];
        snprintf(line, sizeof line, "%s: %s", mcp_oauth_http_request_header_name(req, i),
                 mcp_oauth_http_request_header_value(req, i));
        headers = curl_slist_append(headers, line);
    }
    struct response r = {.limit = mcp_oauth_http_request_max_response_bytes(req)};
    curl_easy_setopt(curl, CURLOPT_URL, mcp_oauth_http_request_url(req));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)mcp_oauth_http_request_timeout_ms(req));
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    size_t body_len = 0;
    const uint8_t *body = mcp_oauth_http_request_body(req, &body_len);
    if (!strcmp(mcp_oauth_http_request_method(req), "POST")) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (r.too_large)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_TOO_LARGE, "the response is too large");
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_TIMEOUT, curl_easy_strerror(rc));
    else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_CONNECT, curl_easy_strerror(rc));
    else if (rc != CURLE_OK)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_OTHER, curl_easy_strerror(rc));
    else
        mcp_oauth_http_request_respond(req, (uint16_t)status, (const char *const *)r.names,
                                       (const char *const *)r.values, (size_t)r.count, (const uint8_t *)r.body,
                                       r.len);
    for (int i = 0; i < r.count; i++) {
        free(r.names[i]);
        free(r.values[i]);
    }
    free(r.body);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

static void courier_script(mcp_oauth_http_request *req)
{
    const char *url = mcp_oauth_http_request_url(req);
    const char *names[] = {"Content-Type"};
    const char *values[] = {"application/json"};
    const char *body;
    uint16_t status = 200;
    if (strstr(url, "/.well-known/oauth-protected-resource")) {
        body = "{\"resource\": \"https://mcp.example.com/mcp\", \"authorization_servers\": [\"https://as.example.com\"]}";
    } else if (strstr(url, "/.well-known/oauth-authorization-server")) {
        body = "{\"issuer\": \"https://as.example.com\", \"authorization_endpoint\": \"https://as.example.com/authorize\", "
               "\"token_endpoint\": \"https://as.example.com/token\", \"response_types_supported\": [\"code\"], "
               "\"grant_types_supported\": [\"client_credentials\"], \"code_challenge_methods_supported\": [\"S256\"], "
               "\"token_endpoint_auth_methods_supported\": [\"client_secret_post\"]}";
    } else if (strstr(url, "/token")) {
        status = 400;
        body = "{\"error\": \"invalid_client\", \"error_description\": \"unknown client\", "
               "\"error_uri\": \"https://as.example.com/errors/invalid_client\"}";
    } else {
        status = 404;
        body = "{}";
    }
    mcp_oauth_http_request_respond(req, status, names, values, 1, (const uint8_t *)body, strlen(body));
}

/* Refresh tokens rt-N are single-use: rt-1 gives at-2/rt-2 once; a second
 * use is a reuse (Auth0 would revoke the family). */
static void courier_rotate(mcp_oauth_http_request *req)
{
    const char *url = mcp_oauth_http_request_url(req);
    const char *names[] = {"Content-Type"};
    const char *values[] = {"application/json"};
    const char *body = "{}";
    uint16_t status = 200;
    static atomic_int spent;
    if (strstr(url, "/.well-known/oauth-protected-resource")) {
        body = "{\"resource\": \"https://mcp.example.com/mcp\", \"authorization_servers\": [\"https://as.example.com\"]}";
    } else if (strstr(url, "/.well-known/oauth-authorization-server")) {
        body = "{\"issuer\": \"https://as.example.com\", \"authorization_endpoint\": \"https://as.example.com/authorize\", "
               "\"token_endpoint\": \"https://as.example.com/token\", \"response_types_supported\": [\"code\"], "
               "\"grant_types_supported\": [\"authorization_code\", \"refresh_token\"], "
               "\"code_challenge_methods_supported\": [\"S256\"], \"token_endpoint_auth_methods_supported\": [\"none\"]}";
    } else if (strstr(url, "/token")) {
        size_t len = 0;
        const uint8_t *form = mcp_oauth_http_request_body(req, &len);
        char text[2048];
        snprintf(text, sizeof text, "%.*s", (int)len, form ? (const char *)form : "");
        if (strstr(text, "grant_type=refresh_token") && strstr(text, "refresh_token=rt-1")) {
            atomic_fetch_add(&refresh_requests, 1);
            if (atomic_fetch_add(&spent, 1) == 0) {
                body = "{\"access_token\": \"at-2\", \"token_type\": \"Bearer\", \"expires_in\": 3600, "
                       "\"refresh_token\": \"rt-2\"}";
            } else {
                atomic_fetch_add(&refresh_reuses, 1);
                status = 400;
                body = "{\"error\": \"invalid_grant\", \"error_description\": \"refresh token reused\"}";
            }
        } else {
            status = 400;
            body = "{\"error\": \"invalid_grant\"}";
        }
    } else {
        status = 404;
    }
    mcp_oauth_http_request_respond(req, status, names, values, 1, (const uint8_t *)body, strlen(body));
}

static void *courier_loop(void *arg)
{
    struct courier *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->queued && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->queued && c->stop)
            break;
        mcp_oauth_http_request *req = c->queue[0];
        memmove(c->queue, c->queue + 1, sizeof c->queue[0] * (size_t)--c->queued);
        enum courier_mode mode = c->mode;
        pthread_mutex_unlock(&c->mu);
        if (mode == COURIER_FAIL) {
            mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_CONNECT, "connection refused (test)");
        } else if (mode == COURIER_SCRIPT) {
            courier_script(req);
        } else if (mode == COURIER_ROTATE) {
            courier_rotate(req);
        } else if (mode == COURIER_HUGE) {
            size_t len = mcp_oauth_http_request_max_response_bytes(req) + 1;
            uint8_t *big = calloc(1, len);
            const char *names[] = {"Content-Type"};
            const char *values[] = {"application/json"};
            mcp_oauth_http_request_respond(req, 200, names, values, 1, big, len);
            free(big);
        } else {
            courier_perform(req);
        }
        pthread_mutex_lock(&c->mu);
        c->answered++;
        c->answered_elsewhere++; /* this thread is never one of send's */
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void courier_start(struct courier *c, enum courier_mode mode)
{
    memset(c, 0, sizeof *c);
    c->mode = mode;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_create(&c->worker, NULL, courier_loop, c);
}

/* Answer what is held (a host must answer every request, cancelled or not),
 * stop the worker. */
static void courier_stop(struct courier *c)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->nheld; i++)
        mcp_oauth_http_request_fail(c->held[i], MCP_OAUTH_NETWORK_FAILURE_OTHER, "the test host is closing");
    c->nheld = 0;
    c->stop = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->worker, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static int courier_wait_held(struct courier *c, int n, long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000 + 1;
    pthread_mutex_lock(&c->mu);
    while (c->nheld < n) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) != 0)
            break;
    }
    int held = c->nheld;
    pthread_mutex_unlock(&c->mu);
    return held;
}

static bool courier_saw(struct courier *c, const char *method, const char *needle)
{
    pthread_mutex_lock(&c->mu);
    bool found = false;
    for (int i = 0; i < c->nseen && !found; i++)
        found = !strncmp(c->seen[i], method, strlen(method)) && strstr(c->seen[i], needle);
    pthread_mutex_unlock(&c->mu);
    return found;
}

static mcp_oauth_config_builder *builder_with_courier(const char *server_url, struct courier *c, bool loopback)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, server_url);
    mcp_oauth_config_builder_set_client_metadata_json(
        b, "{\"client_name\": \"c transport test\", \"redirect_uris\": [\"http://127.0.0.1:0/callback\"], "
           "\"grant_types\": [\"authorization_code\", \"refresh_token\"]}");
    if (loopback)
        mcp_oauth_config_builder_set_loopback_handler(b, NULL, 30000);
    mcp_oauth_transport_callbacks t = MCP_OAUTH_TRANSPORT_CALLBACKS_INIT;
    t.userdata = c;
    t.send = courier_send;
    t.cancel = courier_cancel;
    t.release = courier_release;
    mcp_oauth_error *err = NULL;
    CHECK(mcp_oauth_config_builder_set_transport_callbacks(b, &t, &err) == MCP_OAUTH_RESULT_OK,
          "set_transport_callbacks (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return b;
}

/* What a user observes: the MCP server accepts the token. */
static long mcp_status_with(const char *mcp_url, const char *authorization)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *h = NULL;
    char line[4096];
    snprintf(line, sizeof line, "Authorization: %s", authorization);
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json, text/event-stream");
    struct response sink = {.limit = 1 << 20};
    curl_easy_setopt(curl, CURLOPT_URL, mcp_url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
                     "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"initialize\", \"params\": {\"protocolVersion\": "
                     "\"2025-06-18\", \"capabilities\": {}, \"clientInfo\": {\"name\": \"c\", \"version\": \"1\"}}}");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    free(sink.body);
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
    return status;
}

static void test_transport_whole_flow(const char *mcp_url, const char *prm_url)
{
    struct courier c;
    courier_start(&c, COURIER_NORMAL);
    mcp_oauth_provider *p = build(builder_with_courier(mcp_url, &c, true));
    char challenge[1024];
    snprintf(challenge, sizeof challenge, "Bearer error=\"invalid_token\", resource_metadata=\"%s\"", prm_url);
    const char *names[] = {"www-authenticate"};
    const char *values[] = {challenge};
    bool retry = false;
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_handle_response(p, "POST", mcp_url, NULL, 401, names, values, 1, &retry, &h,
                                                             &err);
    const char *auth = mcp_oauth_headers_authorization(h);
    CHECK(rc == MCP_OAUTH_RESULT_OK && retry && auth, "the whole flow through the host's transport (%s)",
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    CHECK(auth && mcp_status_with(mcp_url, auth) == 200, "the MCP server accepts the token it got");
    CHECK(courier_saw(&c, "GET", "/.well-known/oauth-protected-resource"), "the transport carried the PRM request");
    CHECK(courier_saw(&c, "GET", "/.well-known/"), "and the authorization server metadata");
    CHECK(courier_saw(&c, "POST", "/reg"), "and the registration");
    CHECK(courier_saw(&c, "POST", "/token"), "and the token request");
    pthread_mutex_lock(&c.mu);
    int seen = c.nseen, answered = c.answered, elsewhere = c.answered_elsewhere;
    pthread_mutex_unlock(&c.mu);
    CHECK(seen >= 4 && answered == seen && elsewhere == seen,
          "every request was answered, from the transport's own thread (%d sent, %d answered)", seen, answered);
    CHECK(atomic_load(&c.cancels) == 0, "nothing was cancelled");
    mcp_oauth_headers_free(h);
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&c.releases) == 1, "the transport is released once the provider is freed");
    courier_stop(&c);
}

static void test_cancel_during_token_request(const char *mcp_url)
{
    struct courier c;
    courier_start(&c, COURIER_HOLD_TOKEN);
    mcp_oauth_provider *p = build(builder_with_courier(mcp_url, &c, true));
    struct waiter w;
    waiter_init(&w);
    mcp_oauth_operation *op = NULL;
    CHECK(mcp_oauth_provider_authorize_start(p, on_plain, &w, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    CHECK(courier_wait_held(&c, 1, 20000) == 1, "the token request is in flight (held by the host)");
    CHECK(mcp_oauth_operation_cancel(op) == MCP_OAUTH_RESULT_OK, "cancel during the token request");
    int calls = wait_calls(&w, 1, 5000);
    CHECK(calls == 1 && w.result == MCP_OAUTH_RESULT_CANCELLED, "completes once with CANCELLED (%s)",
          mcp_oauth_result_name(w.result));
    mcp_oauth_operation_free(op);
    CHECK(atomic_load(&c.cancels) == 0, "the token request itself goes on (its tokens would be stored)");
    mcp_oauth_provider_free(p);
    for (int i = 0; i < 100 && atomic_load(&c.cancels) == 0; i++)
        sleep_ms(20);
    CHECK(atomic_load(&c.cancels) == 1, "freeing the provider cancels the token request at the host (%d)",
          atomic_load(&c.cancels));
    courier_stop(&c); /* answers it: that frees it */
    sleep_ms(100);
    CHECK(w.calls == 1, "exactly one completion");
    CHECK(atomic_load(&c.releases) == 1, "the transport is released once");
    waiter_destroy(&w);
}

static mcp_oauth_result authorize_through(enum courier_mode mode, const char *mcp_url, uint64_t timeout_ms,
                                          mcp_oauth_error **err, struct courier *c)
{
    courier_start(c, mode);
    mcp_oauth_config_builder *b = builder_with_courier(mcp_url, c, false);
    if (timeout_ms)
        mcp_oauth_config_builder_set_timeout_ms(b, timeout_ms, NULL);
    mcp_oauth_provider *p = build(b);
    mcp_oauth_result rc = mcp_oauth_provider_authorize(p, err);
    mcp_oauth_provider_free(p);
    return rc;
}

static void test_transport_failures(const char *mcp_url)
{
    struct courier c;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = authorize_through(COURIER_FAIL, mcp_url, 0, &err, &c);
    CHECK(rc == MCP_OAUTH_RESULT_NETWORK && err && mcp_oauth_error_network_failure(err) == MCP_OAUTH_NETWORK_FAILURE_CONNECT &&
              strstr(mcp_oauth_error_message(err), "connection refused (test)"),
          "a failing transport: NETWORK, CONNECT, with the host's message (%s)", err ? mcp_oauth_error_display(err) : "none");
    mcp_oauth_error_free(err);
    courier_stop(&c);

    err = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = authorize_through(COURIER_SILENT, mcp_url, 300, &err, &c);
    CHECK(rc == MCP_OAUTH_RESULT_NETWORK && err && mcp_oauth_error_network_failure(err) == MCP_OAUTH_NETWORK_FAILURE_TIMEOUT,
          "a transport that never answers: the deadline fires, NETWORK, TIMEOUT (%s, %ld ms)",
          err ? mcp_oauth_error_display(err) : "none", elapsed_ms(&t0));
    mcp_oauth_error_free(err);
    CHECK(atomic_load(&c.cancels) >= 1 && atomic_load(&c.cancels) == c.nheld,
          "each request left unanswered was cancelled at the host (%d of %d)", atomic_load(&c.cancels), c.nheld);
    courier_stop(&c);

    err = NULL;
    rc = authorize_through(COURIER_REFUSE, mcp_url, 0, &err, &c);
    CHECK(rc == MCP_OAUTH_RESULT_NETWORK && err && strstr(mcp_oauth_error_message(err), "returned 7"),
          "a transport that refuses a request: NETWORK, with its code (%s)", err ? mcp_oauth_error_display(err) : "none");
    {
        int64_t code = 0;
        CHECK(err && mcp_oauth_error_callback_code(err, &code) && code == 7,
              "the refusing transport's own code is the error's callback code (%lld)", (long long)code);
    }
    mcp_oauth_error_free(err);
    courier_stop(&c);

    err = NULL;
    rc = authorize_through(COURIER_HUGE, mcp_url, 0, &err, &c);
    CHECK(rc == MCP_OAUTH_RESULT_NETWORK && err && mcp_oauth_error_network_failure(err) == MCP_OAUTH_NETWORK_FAILURE_TOO_LARGE,
          "an answer over the body cap: NETWORK, TOO_LARGE (%s)", err ? mcp_oauth_error_display(err) : "none");
    mcp_oauth_error_free(err);
    courier_stop(&c);
}

/* Errors a host can keep and act on. */
static void test_errors(const char *mcp_url)
{
    /* Every OAuth field of a refusal, from an authorization server played
     * by the host's transport (no network), through an async completion
     * whose error is kept (cloned) beyond the callback. */
    struct courier c;
    courier_start(&c, COURIER_SCRIPT);
    mcp_oauth_config_builder *b = builder_with_courier(URL, &c, false);
    mcp_oauth_error *err = NULL;
    CHECK(mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, &err) == MCP_OAUTH_RESULT_OK,
          "set_grant(CLIENT_CREDENTIALS)");
    CHECK(mcp_oauth_config_builder_set_static_client(b, "cid", "csecret", "client_secret_post", NULL) ==
              MCP_OAUTH_RESULT_OK,
          "set_static_client");
    mcp_oauth_provider *p = build(b);
    struct waiter w;
    waiter_init(&w);
    CHECK(mcp_oauth_provider_authorize_async(p, on_plain, &w) == MCP_OAUTH_RESULT_OK, "authorize_async");
    int calls = wait_calls(&w, 1, 10000);
    mcp_oauth_error *kept = w.kept;
    /* The core reads invalid_client for a configured client as a configuration to fix. */
    CHECK(calls == 1 && w.result == MCP_OAUTH_RESULT_INVALID_CONFIGURATION && kept, "the grant is refused (%s: %s)",
          mcp_oauth_result_name(w.result), w.display);
    if (kept) {
        const char *uri = mcp_oauth_error_oauth_error_uri(kept);
        const char *desc = mcp_oauth_error_oauth_error_description(kept);
        CHECK(mcp_oauth_error_code(kept) == MCP_OAUTH_RESULT_INVALID_CONFIGURATION && !strcmp(mcp_oauth_error_oauth_error(kept), "invalid_client") &&
                  desc && !strcmp(desc, "unknown client") && mcp_oauth_error_http_status(kept) == 400,
              "the kept copy has the code, OAuth error, description and status");
        CHECK(uri && !strcmp(uri, "https://as.example.com/errors/invalid_client"), "and the error_uri (%s)",
              uri ? uri : "(none)");
        mcp_oauth_error *copy = mcp_oauth_error_clone(kept);
        CHECK(copy && copy != kept && !strcmp(mcp_oauth_error_display(copy), mcp_oauth_error_display(kept)),
              "a clone of a clone is the same error");
        mcp_oauth_error_free(copy);
        int64_t code = 0;
        CHECK(!mcp_oauth_error_callback_code(kept, &code), "no host callback failed: no callback code");
    }
    CHECK(mcp_oauth_error_clone(NULL) == NULL && mcp_oauth_error_oauth_error_uri(NULL) == NULL, "clone(NULL), uri(NULL)");
    waiter_destroy(&w);
    mcp_oauth_provider_free(p);
    courier_stop(&c);

    /* A storage callback's own code survives. */
    struct heap_store *s = heap_store_new();
    s->tokens[0] = '\0';
    mcp_oauth_storage_callbacks cb = heap_callbacks(s);
    cb.get_tokens = failing_get_tokens;
    p = build(builder_with(&cb));
    mcp_oauth_headers *h = NULL;
    err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err);
    int64_t code = 0;
    CHECK(rc == MCP_OAUTH_RESULT_STORAGE && err && mcp_oauth_error_callback_code(err, &code) && code == -42,
          "a storage callback returning -42: STORAGE, and callback_code -42 (%lld)", (long long)code);
    CHECK(!mcp_oauth_error_callback_code(err, NULL), "callback_code with a NULL output: false");
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);

    /* A handler callback's own code survives (discovery against the peers). */
    struct person person;
    person_init(&person);
    person.redirect_rc = 17;
    p = provider_with_person(mcp_url, &person, NULL);
    err = NULL;
    rc = mcp_oauth_provider_authorize(p, &err);
    code = 0;
    CHECK(rc == MCP_OAUTH_RESULT_HANDLER && err && mcp_oauth_error_callback_code(err, &code) && code == 17,
          "a redirect callback returning 17: HANDLER, and callback_code 17 (%s)", err ? mcp_oauth_error_display(err) : "none");
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
    person_destroy(&person);

    /* A setter says why it failed. */
    b = mcp_oauth_config_builder_new();
    err = NULL;
    rc = mcp_oauth_config_builder_set_resource_parameter(b, MCP_OAUTH_RESOURCE_PARAMETER_SEND, "https://x", &err);
    CHECK(rc == MCP_OAUTH_RESULT_INVALID_ARGUMENT && err && strstr(mcp_oauth_error_message(err), "OVERRIDE"),
          "set_resource_parameter says why through err_out (%s)", err ? mcp_oauth_error_message(err) : "none");
    mcp_oauth_error_free(err);
    err = NULL;
    rc = mcp_oauth_config_builder_set_timeout_ms(b, 0, &err);
    CHECK(rc == MCP_OAUTH_RESULT_INVALID_ARGUMENT && err && mcp_oauth_error_code(err) == rc,
          "set_timeout_ms(0) says why (%s)", err ? mcp_oauth_error_message(err) : "none");
    mcp_oauth_error_free(err);
    mcp_oauth_config_builder_free(b);
}

static void test_transport_struct_versions(void)
{
    mcp_oauth_transport_callbacks t = MCP_OAUTH_TRANSPORT_CALLBACKS_INIT;
    CHECK(t.version == MCP_OAUTH_TRANSPORT_CALLBACKS_VERSION && !t.userdata && !t.send && !t.cancel && !t.release,
          "MCP_OAUTH_TRANSPORT_CALLBACKS_INIT sets the version, the rest NULL");
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_error *err = NULL;
    CHECK_FAILURE("transport callbacks without send", mcp_oauth_config_builder_set_transport_callbacks(b, &t, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    t.send = courier_send;
    t.version = 0;
    err = NULL;
    CHECK_FAILURE("transport callbacks of version 0", mcp_oauth_config_builder_set_transport_callbacks(b, &t, &err),
                  MCP_OAUTH_RESULT_INVALID_ARGUMENT, err);
    t.version = MCP_OAUTH_TRANSPORT_CALLBACKS_VERSION + 1;
    err = NULL;
    CHECK_FAILURE("transport callbacks of a version newer than the library",
                  mcp_oauth_config_builder_set_transport_callbacks(b, &t, &err), MCP_OAUTH_RESULT_INVALID_ARGUMENT, err);
    CHECK_CODE("set_transport_callbacks(NULL callbacks)", mcp_oauth_config_builder_set_transport_callbacks(b, NULL, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("respond(NULL)", mcp_oauth_http_request_respond(NULL, 200, NULL, NULL, 0, NULL, 0),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("fail(NULL)", mcp_oauth_http_request_fail(NULL, MCP_OAUTH_NETWORK_FAILURE_OTHER, NULL),
               MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK(mcp_oauth_http_request_url(NULL) == NULL && mcp_oauth_http_request_header_count(NULL) == 0 &&
              mcp_oauth_error_network_failure(NULL) == MCP_OAUTH_NETWORK_FAILURE_NONE,
          "accessors of NULL");
    mcp_oauth_config_builder_free(b);
}

/* ------------------------------------------------------ per-provider logs */

struct log_sink {
    pthread_mutex_t mu;
    const char *mine, *theirs; /* a text only this provider's lines hold, and the other's */
    int lines, mine_lines, foreign_lines;
    atomic_int releases;
};

static void log_sink_line(void *userdata, mcp_oauth_log_level level, const char *target, const char *message)
{
    struct log_sink *s = userdata;
    (void)level;
    (void)target;
    pthread_mutex_lock(&s->mu);
    s->lines++;
    s->mine_lines += strstr(message, s->mine) != NULL;
    s->foreign_lines += strstr(message, s->theirs) != NULL;
    pthread_mutex_unlock(&s->mu);
}

static void log_sink_release(void *userdata)
{
    struct log_sink *s = userdata;
    atomic_fetch_add(&s->releases, 1);
}

struct global_log {
    pthread_mutex_t mu;
    char tag_a[32], tag_b[32];
    int a, b;
};

static void global_log_line(void *userdata, mcp_oauth_log_level level, const char *target, const char *message)
{
    struct global_log *g = userdata;
    (void)level;
    (void)target;
    pthread_mutex_lock(&g->mu);
    size_t n = strlen(message), la = strlen(g->tag_a), lb = strlen(g->tag_b);
    g->a += n >= la && !strcmp(message + n - la, g->tag_a);
    g->b += n >= lb && !strcmp(message + n - lb, g->tag_b);
    pthread_mutex_unlock(&g->mu);
}

static mcp_oauth_provider *logged_provider(const char *url, struct courier *c, struct log_sink *sink)
{
    mcp_oauth_config_builder *b = builder_with_courier(url, c, false);
    mcp_oauth_log_options o = MCP_OAUTH_LOG_OPTIONS_INIT;
    o.userdata = sink;
    o.callback = log_sink_line;
    o.max_level = MCP_OAUTH_LOG_LEVEL_DEBUG;
    o.release = log_sink_release;
    mcp_oauth_error *err = NULL;
    CHECK(mcp_oauth_config_builder_set_log_options(b, &o, &err) == MCP_OAUTH_RESULT_OK, "set_log_options (%s)",
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return build(b);
}

static void test_per_provider_logging(void)
{
    struct courier c;
    courier_start(&c, COURIER_SCRIPT);
    struct log_sink la = {.mine = "oauth-protected-resource/a", .theirs = "oauth-protected-resource/b"};
    struct log_sink lb = {.mine = "oauth-protected-resource/b", .theirs = "oauth-protected-resource/a"};
    pthread_mutex_init(&la.mu, NULL);
    pthread_mutex_init(&lb.mu, NULL);
    mcp_oauth_provider *a = logged_provider("https://mcp.example.com/a", &c, &la);
    mcp_oauth_provider *b = logged_provider("https://mcp.example.com/b", &c, &lb);
    uint64_t ida = mcp_oauth_provider_id(a), idb = mcp_oauth_provider_id(b);
    CHECK(ida && idb && ida != idb && mcp_oauth_provider_id(NULL) == 0, "providers have distinct ids (%llu, %llu)",
          (unsigned long long)ida, (unsigned long long)idb);
    struct global_log g = {.a = 0};
    pthread_mutex_init(&g.mu, NULL);
    snprintf(g.tag_a, sizeof g.tag_a, " provider=%llu", (unsigned long long)ida);
    snprintf(g.tag_b, sizeof g.tag_b, " provider=%llu", (unsigned long long)idb);
    CHECK(mcp_oauth_set_log_callback(global_log_line, &g, MCP_OAUTH_LOG_LEVEL_DEBUG) == MCP_OAUTH_RESULT_OK,
          "the process-wide callback is installed");

    /* Both run discovery at once, on the library's threads. */
    struct waiter wa, wb;
    waiter_init(&wa);
    waiter_init(&wb);
    mcp_oauth_provider_authorize_async(a, on_plain, &wa);
    mcp_oauth_provider_authorize_async(b, on_plain, &wb);
    wait_calls(&wa, 1, 10000);
    wait_calls(&wb, 1, 10000);
    mcp_oauth_set_log_callback(NULL, NULL, MCP_OAUTH_LOG_LEVEL_OFF);
    pthread_mutex_lock(&la.mu);
    pthread_mutex_lock(&lb.mu);
    CHECK(la.mine_lines > 0 && la.foreign_lines == 0, "provider a's callback gets a's messages only (%d of %d lines, %d of b's)",
          la.mine_lines, la.lines, la.foreign_lines);
    CHECK(lb.mine_lines > 0 && lb.foreign_lines == 0, "provider b's callback gets b's messages only (%d of %d lines, %d of a's)",
          lb.mine_lines, lb.lines, lb.foreign_lines);
    pthread_mutex_unlock(&lb.mu);
    pthread_mutex_unlock(&la.mu);
    pthread_mutex_lock(&g.mu);
    CHECK(g.a > 0 && g.b > 0, "the process-wide callback gets both, each ending with its provider's id (%d, %d)", g.a,
          g.b);
    pthread_mutex_unlock(&g.mu);

    mcp_oauth_provider_free(a);
    mcp_oauth_provider_free(b);
    sleep_ms(100);
    CHECK(atomic_load(&la.releases) == 1 && atomic_load(&lb.releases) == 1, "each log userdata released once");

    mcp_oauth_log_options bad = MCP_OAUTH_LOG_OPTIONS_INIT;
    mcp_oauth_config_builder *bb = mcp_oauth_config_builder_new();
    mcp_oauth_error *err = NULL;
    CHECK_FAILURE("log options without a callback", mcp_oauth_config_builder_set_log_options(bb, &bad, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    bad.callback = log_sink_line;
    bad.max_level = 9;
    err = NULL;
    CHECK_FAILURE("log options with an unknown level", mcp_oauth_config_builder_set_log_options(bb, &bad, &err),
                  MCP_OAUTH_RESULT_INVALID_ARGUMENT, err);
    mcp_oauth_config_builder_free(bb);
    waiter_destroy(&wa);
    waiter_destroy(&wb);
    pthread_mutex_destroy(&la.mu);
    pthread_mutex_destroy(&lb.mu);
    pthread_mutex_destroy(&g.mu);
    courier_stop(&c);
}

/* ------------------------------------------- a store shared by processes */

/* One entry, versioned, with compare-and-set and a lease, shared by two
 * providers as by two processes (each provider has its own memory). */
struct shared_store {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char tokens[1024];
    uint64_t version;
    bool leased;
    char key[256];
    int leases, conflicts;
    atomic_int releases;
};

static int ss_load(void *userdata, const char *key, mcp_oauth_answer *answer, uint64_t *version_out)
{
    struct shared_store *s = userdata;
    pthread_mutex_lock(&s->mu);
    snprintf(s->key, sizeof s->key, "%s", key);
    int rc = 0;
    if (s->tokens[0])
        rc = mcp_oauth_answer_set(answer, s->tokens) == MCP_OAUTH_RESULT_OK ? 0 : 1;
    *version_out = s->tokens[0] ? s->version : 0;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int ss_cas(void *userdata, const char *key, uint64_t expected, const char *json, bool *stored_out,
                  uint64_t *version_out)
{
    struct shared_store *s = userdata;
    (void)key;
    pthread_mutex_lock(&s->mu);
    uint64_t current = s->tokens[0] ? s->version : 0;
    if (current != expected) {
        s->conflicts++;
        *stored_out = false;
    } else {
        s->version++;
        snprintf(s->tokens, sizeof s->tokens, "%s", json ? json : "");
        *stored_out = true;
        *version_out = json ? s->version : 0;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int ss_get_client(void *userdata, const char *key, const char *issuer, mcp_oauth_answer *answer)
{
    (void)userdata;
    (void)key;
    (void)issuer;
    return mcp_oauth_answer_set(answer, "{\"client_id\": \"cid\", \"issuer\": \"https://as.example.com\", "
                                        "\"redirect_uris\": [\"http://127.0.0.1:9/cb\"], "
                                        "\"token_endpoint_auth_method\": \"none\"}") == MCP_OAUTH_RESULT_OK
               ? 0
               : 1;
}

static int ss_set_client(void *userdata, const char *key, const char *json)
{
    (void)userdata;
    (void)key;
    (void)json;
    return 0;
}

static int ss_acquire(void *userdata, const char *key, uint64_t ttl_ms, uint64_t wait_ms)
{
    struct shared_store *s = userdata;
    (void)key;
    (void)ttl_ms;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(wait_ms / 1000) + 1;
    pthread_mutex_lock(&s->mu);
    while (s->leased) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) != 0)
            break;
    }
    int rc = s->leased ? 3 : 0;
    if (!rc) {
        s->leased = true;
        s->leases++;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void ss_release_lease(void *userdata, const char *key)
{
    struct shared_store *s = userdata;
    (void)key;
    pthread_mutex_lock(&s->mu);
    s->leased = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void ss_release(void *userdata)
{
    struct shared_store *s = userdata;
    atomic_fetch_add(&s->releases, 1);
}

static mcp_oauth_provider *shared_store_provider(struct shared_store *s, struct courier *c)
{
    mcp_oauth_config_builder *b = builder_with_courier(URL, c, false);
    mcp_oauth_token_store t = MCP_OAUTH_TOKEN_STORE_INIT;
    t.userdata = s;
    t.load_tokens = ss_load;
    t.compare_and_set_tokens = ss_cas;
    t.get_client_info = ss_get_client;
    t.set_client_info = ss_set_client;
    t.acquire_lease = ss_acquire;
    t.release_lease = ss_release_lease;
    t.release = ss_release;
    mcp_oauth_error *err = NULL;
    CHECK(mcp_oauth_config_builder_set_token_store(b, &t, &err) == MCP_OAUTH_RESULT_OK, "set_token_store (%s)",
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return build(b);
}

struct fetch {
    mcp_oauth_provider *p;
    mcp_oauth_result rc;
    char auth[128];
    char error[512];
};

static void *fetch_headers(void *arg)
{
    struct fetch *f = arg;
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    f->rc = mcp_oauth_provider_get_headers(f->p, "POST", URL, &h, &err);
    const char *auth = mcp_oauth_headers_authorization(h);
    snprintf(f->auth, sizeof f->auth, "%s", auth ? auth : "");
    snprintf(f->error, sizeof f->error, "%s", err ? mcp_oauth_error_display(err) : "");
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(err);
    return NULL;
}

static void test_shared_token_store(void)
{
    struct courier c;
    courier_start(&c, COURIER_ROTATE);
    struct shared_store s = {.version = 7};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    /* Expired tokens with a single-use refresh token. */
    snprintf(s.tokens, sizeof s.tokens,
             "{\"access_token\": \"at-1\", \"token_type\": \"Bearer\", \"refresh_token\": \"rt-1\", \"expires_at\": 1}");
    mcp_oauth_provider *a = shared_store_provider(&s, &c);
    mcp_oauth_provider *b = shared_store_provider(&s, &c);
    struct fetch fa = {.p = a}, fb = {.p = b};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, fetch_headers, &fa);
    pthread_create(&tb, NULL, fetch_headers, &fb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(fa.rc == MCP_OAUTH_RESULT_OK && fb.rc == MCP_OAUTH_RESULT_OK, "both providers get headers (%s / %s)", fa.error,
          fb.error);
    CHECK(!strcmp(fa.auth, "Bearer at-2") && !strcmp(fb.auth, "Bearer at-2"), "both use the refreshed token (%s, %s)",
          fa.auth, fb.auth);
    CHECK(atomic_load(&refresh_requests) == 1 && atomic_load(&refresh_reuses) == 0,
          "the rotating refresh token was spent once, by one of them (%d requests, %d reuses)",
          atomic_load(&refresh_requests), atomic_load(&refresh_reuses));
    pthread_mutex_lock(&s.mu);
    CHECK(strstr(s.tokens, "rt-2") && s.version == 8, "the store holds the new tokens, one write later (version %llu)",
          (unsigned long long)s.version);
    CHECK(!strcmp(s.key, URL), "callbacks get the entry's key, the server URL (%s)", s.key);
    CHECK(s.leases >= 1 && !s.leased, "the refresh held the lease, and released it (%d)", s.leases);
    pthread_mutex_unlock(&s.mu);
    mcp_oauth_provider_free(a);
    mcp_oauth_provider_free(b);
    CHECK(atomic_load(&s.releases) == 1, "the store is released once, after both");
    courier_stop(&c);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);

    mcp_oauth_token_store t = MCP_OAUTH_TOKEN_STORE_INIT;
    t.load_tokens = ss_load;
    t.compare_and_set_tokens = ss_cas;
    t.get_client_info = ss_get_client;
    t.set_client_info = ss_set_client;
    t.acquire_lease = ss_acquire;
    mcp_oauth_config_builder *bb = mcp_oauth_config_builder_new();
    mcp_oauth_error *err = NULL;
    CHECK_FAILURE("a token store with acquire_lease and no release_lease",
                  mcp_oauth_config_builder_set_token_store(bb, &t, &err), MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    mcp_oauth_config_builder_free(bb);
}

/* ------------------------------------------------ deferred person's step */

/* The host's side of a deferred authorization: `begin` hands it to a
 * "browser" thread of the test's own and returns at once; that thread
 * follows the authorization server's redirects with libcurl until the
 * redirect URI and answers from there (or fails, or never answers). */
enum browser_mode { BROWSER_FOLLOW, BROWSER_FAIL, BROWSER_NEVER };

struct deferred {
    enum browser_mode mode;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mcp_oauth_authorization *auth; /* handed to the browser thread */
    mcp_oauth_authorization *never; /* held, never answered until the end */
    char url[2048], state[256], redirect_uri[256];
    bool state_in_url;
    bool stop;
    atomic_int begins, cancels, releases;
    pthread_t browser;
};

static int deferred_begin(void *userdata, mcp_oauth_authorization *auth)
{
    struct deferred *d = userdata;
    atomic_fetch_add(&d->begins, 1);
    pthread_mutex_lock(&d->mu);
    const char *state = mcp_oauth_authorization_state(auth);
    const char *redirect_uri = mcp_oauth_authorization_redirect_uri(auth);
    snprintf(d->url, sizeof d->url, "%s", mcp_oauth_authorization_url(auth));
    snprintf(d->state, sizeof d->state, "%s", state ? state : "");
    snprintf(d->redirect_uri, sizeof d->redirect_uri, "%s", redirect_uri ? redirect_uri : "");
    char needle[300];
    snprintf(needle, sizeof needle, "state=%s", d->state);
    d->state_in_url = state && *state && strstr(d->url, needle);
    if (d->mode == BROWSER_NEVER)
        d->never = auth;
    else
        d->auth = auth;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

static void deferred_cancel(void *userdata, mcp_oauth_authorization *auth)
{
    struct deferred *d = userdata;
    CHECK(mcp_oauth_authorization_url(auth) != NULL, "cancel: the authorization is readable");
    atomic_fetch_add(&d->cancels, 1);
}

static void deferred_release(void *userdata)
{
    struct deferred *d = userdata;
    atomic_fetch_add(&d->releases, 1);
}

/* Follow redirects until one goes to `redirect_uri`: that URL is the answer. */
static bool follow_to(const char *start, const char *redirect_uri, char *out, size_t cap)
{
    char url[4096];
    snprintf(url, sizeof url, "%s", start);
    for (int hop = 0; hop < 20; hop++) {
        if (!strncmp(url, redirect_uri, strlen(redirect_uri))) {
            snprintf(out, cap, "%s", url);
            return true;
        }
        CURL *curl = curl_easy_init();
        struct response sink = {.limit = 1 << 20};
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
        char *next = NULL;
        bool ok = curl_easy_perform(curl) == CURLE_OK && curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &next) == CURLE_OK &&
                  next;
        if (ok)
            snprintf(url, sizeof url, "%s", next);
        free(sink.body);
        curl_easy_cleanup(curl);
        if (!ok)
            return false;
    }
    return false;
}

static void *browser_loop(void *arg)
{
    struct deferred *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->auth && !d->stop)
            pthread_cond_wait(&d->cv, &d->mu);
        if (!d->auth)
            break;
        mcp_oauth_authorization *auth = d->auth;
        d->auth = NULL;
        char url[2048], redirect_uri[256];
        snprintf(url, sizeof url, "%s", d->url);
        snprintf(redirect_uri, sizeof redirect_uri, "%s", d->redirect_uri);
        enum browser_mode mode = d->mode;
        pthread_mutex_unlock(&d->mu);
        char back[4096];
        if (mode == BROWSER_FAIL)
            mcp_oauth_authorization_fail(auth, 5, "the person closed the window");
        else if (follow_to(url, redirect_uri, back, sizeof back))
            mcp_oauth_authorization_complete(auth, back);
        else
            mcp_oauth_authorization_fail(auth, 6, "the browser could not follow the redirects");
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void deferred_start(struct deferred *d, enum browser_mode mode)
{
    memset(d, 0, sizeof *d);
    d->mode = mode;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_create(&d->browser, NULL, browser_loop, d);
}

static void deferred_stop(struct deferred *d)
{
    pthread_mutex_lock(&d->mu);
    if (d->never)
        mcp_oauth_authorization_fail(d->never, 0, "the test host is closing");
    d->never = NULL;
    d->stop = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->browser, NULL);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

static mcp_oauth_provider *deferred_provider(const char *mcp_url, struct deferred *d, uint64_t person_timeout_ms)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, mcp_url);
    mcp_oauth_config_builder_set_client_metadata_json(
        b, "{\"client_name\": \"c deferred test\", \"redirect_uris\": [\"http://127.0.0.1:9/deferred-callback\"], "
           "\"grant_types\": [\"authorization_code\", \"refresh_token\"]}");
    if (person_timeout_ms)
        mcp_oauth_config_builder_set_authorization_timeout_ms(b, person_timeout_ms, NULL);
    mcp_oauth_authorization_callbacks cb = MCP_OAUTH_AUTHORIZATION_CALLBACKS_INIT;
    cb.userdata = d;
    cb.begin = deferred_begin;
    cb.cancel = deferred_cancel;
    cb.release = deferred_release;
    mcp_oauth_error *err = NULL;
    CHECK(mcp_oauth_config_builder_set_authorization_callbacks(b, &cb, &err) == MCP_OAUTH_RESULT_OK,
          "set_authorization_callbacks (%s)", err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    return build(b);
}

static void test_deferred_authorization(const char *mcp_url)
{
    /* The whole flow, the person's step answered later from another thread. */
    struct deferred d;
    deferred_start(&d, BROWSER_FOLLOW);
    mcp_oauth_provider *p = deferred_provider(mcp_url, &d, 0);
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_authorize(p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK, "a flow whose person's step is answered later, from another thread (%s)",
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_error_free(err);
    pthread_mutex_lock(&d.mu);
    CHECK(d.state_in_url, "begin gets the state, the one in the URL (%s)", d.state);
    CHECK(!strcmp(d.redirect_uri, "http://127.0.0.1:9/deferred-callback"), "and the redirect URI (%s)", d.redirect_uri);
    pthread_mutex_unlock(&d.mu);
    mcp_oauth_headers *h = NULL;
    rc = mcp_oauth_provider_try_get_headers(p, "POST", mcp_url, &h, NULL);
    const char *auth = mcp_oauth_headers_authorization(h);
    CHECK(rc == MCP_OAUTH_RESULT_OK && auth && mcp_status_with(mcp_url, auth) == 200, "the MCP server accepts its token");
    mcp_oauth_headers_free(h);
    mcp_oauth_provider_free(p);
    deferred_stop(&d);
    CHECK(atomic_load(&d.releases) == 1 && atomic_load(&d.cancels) == 0, "released once, nothing cancelled");

    /* The host fails it with its own code. */
    deferred_start(&d, BROWSER_FAIL);
    p = deferred_provider(mcp_url, &d, 0);
    err = NULL;
    rc = mcp_oauth_provider_authorize(p, &err);
    int64_t code = 0;
    CHECK(rc == MCP_OAUTH_RESULT_HANDLER && err && mcp_oauth_error_callback_code(err, &code) && code == 5 &&
              strstr(mcp_oauth_error_message(err), "closed the window"),
          "a failed authorization: HANDLER, the host's code and words (%s)", err ? mcp_oauth_error_display(err) : "none");
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
    deferred_stop(&d);

    /* Never answered: the authorization timeout fires and the host is told. */
    deferred_start(&d, BROWSER_NEVER);
    p = deferred_provider(mcp_url, &d, 300);
    err = NULL;
    rc = mcp_oauth_provider_authorize(p, &err);
    CHECK(rc != MCP_OAUTH_RESULT_OK && atomic_load(&d.cancels) == 1,
          "never answered: the authorization times out and the host's cancel is called once (%s, %d)",
          err ? mcp_oauth_error_display(err) : "ok", atomic_load(&d.cancels));
    mcp_oauth_error_free(err);
    mcp_oauth_provider_free(p);
    deferred_stop(&d);

    /* Cancelled: the operation completes once with CANCELLED and, as no
     * other operation waits for that log-in, the host is told to dismiss it
     * (close the browser sheet) without waiting for the timeout. */
    deferred_start(&d, BROWSER_NEVER);
    p = deferred_provider(mcp_url, &d, 0);
    struct waiter w;
    waiter_init(&w);
    mcp_oauth_operation *op = NULL;
    CHECK(mcp_oauth_provider_authorize_start(p, on_plain, &w, &op) == MCP_OAUTH_RESULT_OK, "authorize_start");
    for (int i = 0; i < 500 && atomic_load(&d.begins) == 0; i++)
        sleep_ms(20);
    CHECK(atomic_load(&d.begins) == 1, "the person's step began");
    mcp_oauth_operation_cancel(op);
    int calls = wait_calls(&w, 1, 5000);
    CHECK(calls == 1 && w.result == MCP_OAUTH_RESULT_CANCELLED, "cancelled while the person is away (%s)",
          mcp_oauth_result_name(w.result));
    mcp_oauth_operation_free(op);
    for (int i = 0; i < 250 && atomic_load(&d.cancels) == 0; i++)
        sleep_ms(20);
    CHECK(atomic_load(&d.cancels) == 1, "cancelling the only operation waiting dismisses the authorization at the host");
    pthread_mutex_lock(&d.mu); /* a host answers a dismissed authorization, to free it */
    if (d.never)
        mcp_oauth_authorization_fail(d.never, 0, "dismissed by the test host");
    d.never = NULL;
    pthread_mutex_unlock(&d.mu);
    /* The next log-in starts afresh: the person is asked again. */
    struct waiter w2;
    waiter_init(&w2);
    CHECK(mcp_oauth_provider_authorize_start(p, on_plain, &w2, &op) == MCP_OAUTH_RESULT_OK, "authorize_start again");
    for (int i = 0; i < 500 && atomic_load(&d.begins) < 2; i++)
        sleep_ms(20);
    CHECK(atomic_load(&d.begins) == 2, "a new log-in after the abandoned one asks the person again (%d)",
          atomic_load(&d.begins));
    mcp_oauth_operation_free(op);
    mcp_oauth_provider_free(p);
    calls = wait_calls(&w2, 1, 5000);
    CHECK(calls == 1 && w2.result == MCP_OAUTH_RESULT_CANCELLED, "freeing the provider cancels it (%s)",
          mcp_oauth_result_name(w2.result));
    for (int i = 0; i < 100 && atomic_load(&d.cancels) < 2; i++)
        sleep_ms(20);
    CHECK(atomic_load(&d.cancels) == 2, "and dismisses it at the host (%d)", atomic_load(&d.cancels));
    deferred_stop(&d);
    sleep_ms(50);
    CHECK(w.calls == 1 && w2.calls == 1 && atomic_load(&d.releases) == 1, "one completion each, one release");
    waiter_destroy(&w);
    waiter_destroy(&w2);

    mcp_oauth_authorization_callbacks cb = MCP_OAUTH_AUTHORIZATION_CALLBACKS_INIT;
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    err = NULL;
    CHECK_FAILURE("authorization callbacks without begin", mcp_oauth_config_builder_set_authorization_callbacks(b, &cb, &err),
                  MCP_OAUTH_RESULT_NULL_PARAMETER, err);
    CHECK_CODE("complete(NULL)", mcp_oauth_authorization_complete(NULL, "x"), MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK_CODE("fail(NULL)", mcp_oauth_authorization_fail(NULL, 1, NULL), MCP_OAUTH_RESULT_NULL_PARAMETER);
    CHECK(mcp_oauth_authorization_state(NULL) == NULL && mcp_oauth_authorization_url(NULL) == NULL, "accessors of NULL");
    mcp_oauth_config_builder_free(b);
}

/* ---------------------------------------------------------- fork, shutdown */

static void test_fork(void)
{
    /* The runtime runs (earlier tests used it); a provider with a token. */
    atomic_store(&heap_releases, 0);
    struct heap_store *s = heap_store_new();
    mcp_oauth_storage_callbacks cb = heap_callbacks(s);
    mcp_oauth_provider *p = build(builder_with(&cb));
    check_reads_store(p, "the parent's provider");
    fflush(stdout);
    int report[2];
    CHECK(pipe(report) == 0, "pipe");
    pid_t child = fork();
    if (child == 0) {
        /* The child: every call that needs the library's threads is refused
         * with FORKED, at once; nothing hangs. Exit status: the failed checks. */
        int bad = 0;
        mcp_oauth_provider_free(p); /* the parent's token cache first: forget it */
        mcp_oauth_provider *q = build(builder_with(&cb));
        mcp_oauth_headers *h = NULL;
        mcp_oauth_error *err = NULL;
        mcp_oauth_result rc = mcp_oauth_provider_get_headers(q, "POST", URL, &h, &err);
        bad += !(rc == MCP_OAUTH_RESULT_FORKED && err && !strcmp(mcp_oauth_error_kind(err), "forked"));
        mcp_oauth_error_free(err);
        struct waiter w;
        waiter_init(&w);
        bad += mcp_oauth_provider_get_headers_async(q, "POST", URL, on_headers, &w) != MCP_OAUTH_RESULT_FORKED;
        bad += mcp_oauth_provider_authorize(q, NULL) != MCP_OAUTH_RESULT_FORKED;
        mcp_oauth_provider_free(q);
        bad += mcp_oauth_shutdown(1000) != MCP_OAUTH_RESULT_OK;
        bad += w.calls != 0;
        fflush(stdout);
        /* The count goes through a pipe: the exit status is also a leak
         * checker's (the parent's threads' memory is unreachable here). */
        if (write(report[1], &bad, sizeof bad) != (ssize_t)sizeof bad)
            bad = 99;
        _exit(0); /* no atexit handlers: the parent's objects are the parent's */
    }
    close(report[1]);
    CHECK(child > 0, "fork");
    int status = -1;
    pid_t done = 0;
    for (int i = 0; i < 500 && done == 0; i++) {
        done = waitpid(child, &status, WNOHANG);
        if (done == 0)
            sleep_ms(20);
    }
    if (done == 0) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
    }
    int bad = -1;
    if (read(report[0], &bad, sizeof bad) != (ssize_t)sizeof bad)
        bad = -1;
    close(report[0]);
    CHECK(done == child && WIFEXITED(status), "the forked child does not hang");
    CHECK(bad == 0,
          "in the child, the library refuses with FORKED (calls, async calls, a new provider) and frees nothing "
          "(%d checks failed)",
          bad);
    check_reads_store(p, "the parent's provider, after the fork");
    mcp_oauth_provider_free(p);
    CHECK(atomic_load(&heap_releases) == 1, "the parent releases its store once");
}

static void *blocking_call(void *arg)
{
    mcp_oauth_provider *p = arg;
    mcp_oauth_headers *h = NULL;
    mcp_oauth_provider_get_headers(p, "POST", URL, &h, NULL);
    mcp_oauth_headers_free(h);
    return NULL;
}

static int slow_get_tokens(void *userdata, mcp_oauth_answer *answer)
{
    sleep_ms(600);
    return heap_get_tokens(userdata, answer);
}

static mcp_oauth_result shutdown_from_completion;

static void shutdown_in_completion(void *userdata, mcp_oauth_result result, const mcp_oauth_headers *headers,
                                   const mcp_oauth_error *error)
{
    shutdown_from_completion = mcp_oauth_shutdown(1000);
    waiter_record(userdata, result, headers, error);
}

static void test_shutdown(void)
{
    /* From a library thread: refused. */
    atomic_store(&heap_releases, 0);
    struct heap_store *s = heap_store_new();
    mcp_oauth_storage_callbacks cb = heap_callbacks(s);
    mcp_oauth_provider *p = build(builder_with(&cb));
    struct waiter w;
    waiter_init(&w);
    CHECK(mcp_oauth_provider_get_headers_async(p, "POST", URL, shutdown_in_completion, &w) == MCP_OAUTH_RESULT_OK,
          "get_headers_async");
    int calls = wait_calls(&w, 1, 5000);
    CHECK(calls == 1 && shutdown_from_completion == MCP_OAUTH_RESULT_WOULD_DEADLOCK,
          "shutdown from a completion: WOULD_DEADLOCK (%s)", mcp_oauth_result_name(shutdown_from_completion));
    waiter_destroy(&w);
    mcp_oauth_provider_free(p);

    /* Another thread inside a blocking call: BUSY, and nothing stopped. */
    s = heap_store_new();
    cb = heap_callbacks(s);
    cb.get_tokens = slow_get_tokens;
    p = build(builder_with(&cb));
    pthread_t t;
    pthread_create(&t, NULL, blocking_call, p);
    sleep_ms(150);
    CHECK(mcp_oauth_shutdown(100) == MCP_OAUTH_RESULT_BUSY, "shutdown while another thread waits in the library: BUSY");
    pthread_join(t, NULL);
    mcp_oauth_provider_free(p);
    sleep_ms(100);
    CHECK(atomic_load(&heap_releases) == 2, "both stores released (%d)", atomic_load(&heap_releases));

    /* Idle: the threads stop. */
    CHECK(mcp_oauth_shutdown(5000) == MCP_OAUTH_RESULT_OK, "shutdown when idle");
    CHECK(mcp_oauth_shutdown(0) == MCP_OAUTH_RESULT_OK, "shutdown again: nothing to stop");

    /* Used again afterwards: a new runtime. */
    s = heap_store_new();
    cb = heap_callbacks(s);
    p = build(builder_with(&cb));
    waiter_init(&w);
    CHECK(mcp_oauth_provider_get_headers_async(p, "POST", URL, on_headers, &w) == MCP_OAUTH_RESULT_OK,
          "an async call after shutdown starts");
    calls = wait_calls(&w, 1, 5000);
    CHECK(calls == 1 && w.result == MCP_OAUTH_RESULT_OK && !strcmp(w.auth, "Bearer shared"),
          "and completes on a new runtime");
    waiter_destroy(&w);
    mcp_oauth_provider_free(p);
    CHECK(mcp_oauth_shutdown(5000) == MCP_OAUTH_RESULT_OK, "the last shutdown, before exit");
}

int main(void)
{
    test_release_shared_userdata();
    test_release_storage_and_handler_share();
    CHECK(!strcmp(mcp_oauth_result_name(MCP_OAUTH_RESULT_CANCELLED), "cancelled") && MCP_OAUTH_RESULT_CANCELLED == 14,
          "result_name(CANCELLED) is cancelled, number 14 (appended)");
    test_cancel_after_completion();
    test_cancel_during_discovery();
    test_cancel_during_the_persons_step(need_env("MCP_URL"));
    need_env("BROWSER");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_transport_struct_versions();
    test_transport_whole_flow(need_env("MCP_URL"), need_env("PRM_URL"));
    test_cancel_during_token_request(need_env("MCP_URL"));
    test_transport_failures(need_env("MCP_URL"));
    test_errors(need_env("MCP_URL"));
    test_per_provider_logging();
    test_shared_token_store();
    test_deferred_authorization(need_env("MCP_URL"));
    test_fork();
    test_shutdown();
    curl_global_cleanup();
    return check_finish();
}
