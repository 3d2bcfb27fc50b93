/*
 * What a host shipping on the C ABI relies on beyond the error paths:
 * - the `release` contract: a userdata shared by several providers (or by
 *   storage and handler callbacks) is released once, after the last user,
 *   whichever is freed first (run under ASan: a second release would be a
 *   double free, an early one a use after free);
 * - cancellation: an operation cancelled during discovery or during the
 *   person's step completes once, with MCP_OAUTH_RESULT_CANCELLED, and so
 *   does every operation of a provider freed while they run; the hot path
 *   (`try_get_headers`) never waits behind a person.
 *
 * Environment (tests/c/run.sh sets it): MCP_URL, the real peers' MCP server.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

static mcp_oauth_storage_callbacks heap_callbacks(struct heap_store *s)
{
    mcp_oauth_storage_callbacks cb = {
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
    CHECK(mcp_oauth_config_builder_set_storage_callbacks(b, cb) == MCP_OAUTH_RESULT_OK, "set_storage_callbacks");
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
        .userdata = s, .redirect = shared_redirect, .callback = shared_callback, .release = heap_release};
    CHECK(mcp_oauth_config_builder_set_handler_callbacks(b, &hcb) == MCP_OAUTH_RESULT_OK, "set_handler_callbacks");
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
};

static int person_redirect(void *userdata, const char *url)
{
    struct person *p = userdata;
    (void)url;
    atomic_fetch_add(&p->redirects, 1);
    return 0;
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
        .userdata = person, .redirect = person_redirect, .callback = person_callback, .release = person_release};
    CHECK(mcp_oauth_config_builder_set_handler_callbacks(b, &h) == MCP_OAUTH_RESULT_OK, "set_handler_callbacks");
    if (storage)
        CHECK(mcp_oauth_config_builder_set_storage_callbacks(b, storage) == MCP_OAUTH_RESULT_OK,
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
          "with CANCELLED (%s, %s)", mcp_oauth_result_name(w.result), mcp_oauth_result_name(wh.result));
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
          "freeing the provider during the person's step cancels (%s)", mcp_oauth_result_name(w2.result));
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

int main(void)
{
    test_release_shared_userdata();
    test_release_storage_and_handler_share();
    CHECK(!strcmp(mcp_oauth_result_name(MCP_OAUTH_RESULT_CANCELLED), "cancelled") && MCP_OAUTH_RESULT_CANCELLED == 14,
          "result_name(CANCELLED) is cancelled, number 14 (appended)");
    test_cancel_after_completion();
    test_cancel_during_discovery();
    test_cancel_during_the_persons_step(need_env("MCP_URL"));
    return check_finish();
}
