/*
 * Benchmark of libmcp_oauth through its C ABI (no network):
 *   - the first provider creation in the process, which starts the library's
 *     runtime (with the loopback receiver bound), and a second one;
 *   - the first header-mode call (loads the token from host storage);
 *   - nanoseconds per header-mode mcp_oauth_provider_get_headers with a
 *     valid token (including reading the Authorization value and
 *     mcp_oauth_headers_free of the result), from one thread and from 8
 *     threads at once.
 *
 *   cargo build --release -p mcp-oauth-client-ffi && make -C tests/c bench && tests/c/build-bench/bench [calls]
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcp_oauth.h"

static const char *const URL = "https://mcp.example.com/mcp";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int get_tokens(void *userdata, mcp_oauth_answer *answer)
{
    (void)userdata;
    return mcp_oauth_answer_set(answer, "{\"access_token\": \"eyJhbGciOiJFUzI1NiJ9.bench.token\", \"token_type\": "
                                        "\"Bearer\", \"expires_in\": 3600, \"expires_at\": 4102444800}") ==
                   MCP_OAUTH_RESULT_OK
               ? 0
               : 1;
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

static void *loop(void *arg)
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

static double run_threads(int n)
{
    pthread_t t[64];
    double t0 = now_ns();
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, loop, NULL);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    return now_ns() - t0;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 2000000;
    printf("libmcp_oauth %s benchmark\n", mcp_oauth_version());

    double t0 = now_ns();
    mcp_oauth_provider *first = make(1);
    double first_ns = now_ns() - t0;
    t0 = now_ns();
    mcp_oauth_provider *second = make(1);
    double second_ns = now_ns() - t0;
    printf("first provider creation (starts the runtime, binds the loopback): %8.3f ms\n", first_ns / 1e6);
    printf("second provider creation (binds the loopback):                    %8.3f ms\n", second_ns / 1e6);
    mcp_oauth_provider_free(first);
    mcp_oauth_provider_free(second);

    shared = make(0);
    t0 = now_ns();
    mcp_oauth_headers *h = NULL;
    mcp_oauth_provider_get_headers(shared, "POST", URL, &h, NULL);
    printf("first get_headers (loads the token from host storage):           %8.3f ms\n", (now_ns() - t0) / 1e6);
    mcp_oauth_headers_free(h);

    calls_per_thread = total / 10; /* warm-up */
    run_threads(1);

    calls_per_thread = total;
    double one = run_threads(1);
    printf("get_headers, valid token, 1 thread:  %7.1f ns/call (%ld calls)\n", one / (double)total, total);

    calls_per_thread = total / 8;
    double eight = run_threads(8);
    long done = calls_per_thread * 8;
    printf("get_headers, valid token, 8 threads: %7.1f ns/call per thread, %7.1f ns/call aggregate "
           "(%ld calls; %ld online CPUs)\n",
           eight / (double)calls_per_thread, eight / (double)done, done, sysconf(_SC_NPROCESSORS_ONLN));
    mcp_oauth_provider_free(shared);
    return 0;
}
