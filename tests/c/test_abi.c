/*
 * What a host shipping on the C ABI relies on beyond the error paths:
 * - the `release` contract: a userdata shared by several providers (or by
 *   storage and handler callbacks) is released once, after the last user,
 *   whichever is freed first (run under ASan: a second release would be a
 *   double free, an early one a use after free);
 *
 * Needs no peer.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

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
static void check_reads_store(mcp_oauth_provider *p, const char *what)
{
    mcp_oauth_headers *h = NULL;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", URL, &h, &err);
    const char *auth = mcp_oauth_headers_authorization(h);
    CHECK(rc == MCP_OAUTH_RESULT_OK && auth && !strcmp(auth, "Bearer shared"), "%s reads the shared store (%s)", what,
          err ? mcp_oauth_error_display(err) : "ok");
    mcp_oauth_headers_free(h);
    mcp_oauth_error_free(err);
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

int main(void)
{
    test_release_shared_userdata();
    test_release_storage_and_handler_share();
    return check_finish();
}
