/*
 * Benchmark of libmcp_oauth through its C ABI (no network):
 *   - the first provider creation in the process, which starts the library's
 *     runtime (with the loopback receiver bound), and a second one;
 *   - the first header-mode call (loads the token from host storage);
 *   - nanoseconds per header-mode mcp_oauth_provider_get_headers with a
 *     valid token of about 1 KB (including reading the Authorization value
 *     and mcp_oauth_headers_free of the result), from 1 thread, from as many
 *     threads as online CPUs, and from 8 threads: aggregate (wall time over
 *     all calls) and per thread;
 *   - the floor, the same loops without the library: read the current header
 *     through an atomic pointer (no shared write) and copy it into a new
 *     allocation, then free it.
 * Each figure is the best of several rounds, the loops interleaved so that
 * the machine's noise hits all alike. Lines starting with "RESULT" are for
 * bench/run.py: "RESULT name value".
 *
 *   cargo build --release -p mcp-oauth-client-ffi && make -C tests/c bench && tests/c/build-bench/bench [calls] [rounds]
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcp_oauth.h"

static const char *const URL = "https://mcp.example.com/mcp";
#define TOKEN_LEN 1000

static char tokens_json[TOKEN_LEN + 200];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int get_tokens(void *userdata, mcp_oauth_answer *answer)
{
    (void)userdata;
    return mcp_oauth_answer_set(answer, tokens_json) == MCP_OAUTH_RESULT_OK ? 0 : 1;
}
static int set_json(void *userdata, const char *json)
{
    (void)userdata;
    (void)json;
    return 0;
}
static int get_none(void *userdata, mcp_oauth_answer *answer)
{
    (void)userdata;
    (void)answer;
    return 0;
}

static mcp_oauth_provider *make(int loopback)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, URL);
    mcp_oauth_storage_callbacks cb = {
        .version = MCP_OAUTH_STORAGE_CALLBACKS_VERSION,
        .get_tokens = get_tokens, .set_tokens = set_json, .get_client_info = get_none, .set_client_info = set_json};
    mcp_oauth_config_builder_set_storage_callbacks(b, &cb, NULL);
    if (loopback)
        mcp_oauth_config_builder_set_loopback_handler(b, NULL, 0);
    else
        mcp_oauth_config_builder_set_client_metadata_json(b, "{\"redirect_uris\": [\"http://127.0.0.1:9/cb\"]}");
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    if (mcp_oauth_config_builder_build(b, &p, &err) != MCP_OAUTH_RESULT_OK) {
        fprintf(stderr, "build failed: %s\n", mcp_oauth_error_display(err));
        exit(1);
    }
    return p;
}

static long calls_per_thread;
static mcp_oauth_provider *shared;

static void *loop_ours(void *arg)
{
    (void)arg;
    for (long i = 0; i < calls_per_thread; i++) {
        mcp_oauth_headers *h = NULL;
        if (mcp_oauth_provider_get_headers(shared, "POST", URL, &h, NULL) != MCP_OAUTH_RESULT_OK || !h ||
            !mcp_oauth_headers_authorization(h))
            abort();
        mcp_oauth_headers_free(h);
    }
    return NULL;
}

/* The floor: what any library must do at least. */
struct held {
    size_t len;
    char value[];
};
static _Atomic(struct held *) current;

static void *loop_floor(void *arg)
{
    (void)arg;
    for (long i = 0; i < calls_per_thread; i++) {
        struct held *h = atomic_load_explicit(&current, memory_order_acquire);
        char *copy = malloc(h->len + 1);
        if (!copy)
            abort();
        memcpy(copy, h->value, h->len + 1);
        __asm__ volatile("" : : "r"(copy) : "memory");
        free(copy);
    }
    return NULL;
}

/* Wall nanoseconds for n threads each making calls_per_thread calls. */
static double run_threads(void *(*fn)(void *), int n)
{
    pthread_t t[64];
    double t0 = now_ns();
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, fn, NULL);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    return now_ns() - t0;
}

static double min(double a, double b) { return a < b ? a : b; }

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 2000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    if (cpus > 32)
        cpus = 32;

    char token[TOKEN_LEN + 1];
    memcpy(token, "eyJ", 3);
    memset(token + 3, 'a', TOKEN_LEN - 3);
    token[TOKEN_LEN] = 0;
    snprintf(tokens_json, sizeof tokens_json,
             "{\"access_token\": \"%s\", \"token_type\": \"Bearer\", \"expires_in\": 3600, \"expires_at\": 4102444800}",
             token);
    struct held *h0 = malloc(sizeof *h0 + TOKEN_LEN + 8);
    h0->len = (size_t)snprintf(h0->value, TOKEN_LEN + 8, "Bearer %s", token);
    atomic_store(&current, h0);

    printf("libmcp_oauth %s benchmark (%d online CPUs, %d-byte Authorization value)\n", mcp_oauth_version(), cpus,
           (int)h0->len);

    double t0 = now_ns();
    mcp_oauth_provider *first = make(1);
    double first_ns = now_ns() - t0;
    t0 = now_ns();
    mcp_oauth_provider *second = make(1);
    double second_ns = now_ns() - t0;
    printf("first provider creation (starts the runtime, binds the loopback): %8.3f ms\n", first_ns / 1e6);
    printf("second provider creation (binds the loopback):                    %8.3f ms\n", second_ns / 1e6);
    printf("RESULT first_provider_ms %.3f\nRESULT second_provider_ms %.3f\n", first_ns / 1e6, second_ns / 1e6);
    mcp_oauth_provider_free(first);
    mcp_oauth_provider_free(second);

    shared = make(0);
    t0 = now_ns();
    mcp_oauth_headers *h = NULL;
    mcp_oauth_provider_get_headers(shared, "POST", URL, &h, NULL);
    double first_call = now_ns() - t0;
    printf("first get_headers (loads the token from host storage):           %8.3f ms\n", first_call / 1e6);
    printf("RESULT first_get_headers_ms %.3f\n", first_call / 1e6);
    mcp_oauth_headers_free(h);

    calls_per_thread = total / 10; /* warm-up */
    run_threads(loop_ours, 1);
    run_threads(loop_floor, 1);

    int counts[3] = {1, cpus, 8};
    const char *names[3] = {"1", "cores", "8"};
    double ours[3], floor_[3];
    for (int k = 0; k < 3; k++)
        ours[k] = floor_[k] = 1e300;
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 3; k++) {
            calls_per_thread = total / counts[k];
            double done = (double)(calls_per_thread * counts[k]);
            /* alternate which goes first */
            if (r % 2) {
                floor_[k] = min(floor_[k], run_threads(loop_floor, counts[k]) / done);
                ours[k] = min(ours[k], run_threads(loop_ours, counts[k]) / done);
            } else {
                ours[k] = min(ours[k], run_threads(loop_ours, counts[k]) / done);
                floor_[k] = min(floor_[k], run_threads(loop_floor, counts[k]) / done);
            }
        }
    }
    printf("get_headers with a valid token, aggregate ns per call (best of %d rounds, %ld calls each):\n", rounds,
           total);
    for (int k = 0; k < 3; k++) {
        printf("  %2d thread(s): ours %7.1f ns/call  floor %7.1f ns/call\n", counts[k], ours[k], floor_[k]);
        printf("RESULT ours_ns_%s %.2f\nRESULT floor_ns_%s %.2f\n", names[k], ours[k], names[k], floor_[k]);
    }
    printf("RESULT cpus %d\n", cpus);
    mcp_oauth_provider_free(shared);
    free(h0);
    return 0;
}
