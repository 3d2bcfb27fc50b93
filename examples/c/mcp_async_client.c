/*
 * mcp_async_client: the model a GUI or event-loop host copies. One thread
 * runs a libcurl multi loop, and never blocks on libmcp_oauth:
 *
 *   - the library's own OAuth requests (discovery, registration, tokens)
 *     come through the transport callback and go out on the same multi
 *     handle as the host's MCP requests (so they use the host's proxies,
 *     CAs and TLS settings);
 *   - the headers of each MCP request come from the hot path
 *     (mcp_oauth_provider_try_get_headers, which never waits) or, when it has
 *     none, from mcp_oauth_provider_get_headers_start; a 401/403 goes to
 *     mcp_oauth_provider_handle_response_start; their completions come back
 *     to the loop as events;
 *   - tokens are kept by storage callbacks in a directory (files of mode
 *     0600), read and written on the library's threads.
 *
 * Library threads never touch curl: they queue an event and wake the loop
 * (curl_multi_wakeup). The person's step uses the built-in loopback receiver
 * and the system browser ($BROWSER).
 *
 *   mcp_async_client [--store-dir DIR] [--timeout-ms N] SERVER_URL
 *
 * It runs initialize, notifications/initialized and tools/list, and prints
 * the tools. Operations still running after --timeout-ms (default 120000)
 * are cancelled.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "mcp_oauth.h"

#define PROTOCOL_VERSION "2025-06-18"
#define MAX_HEADERS 64

/* ------------------------------------------------------------ the events */

enum event_kind {
    EV_OAUTH_REQUEST, /* the library asks the loop to send an HTTP request */
    EV_HEADERS,       /* an operation's completion: headers (or not) */
};

struct event {
    enum event_kind kind;
    mcp_oauth_http_request *request; /* EV_OAUTH_* */
    mcp_oauth_result result;         /* EV_HEADERS */
    char *authorization;             /* EV_HEADERS: the value to send, or NULL; wiped when freed */
    bool retry;                      /* EV_HEADERS of a handle_response: send again */
    char *error;                     /* EV_HEADERS: the failure, in one line */
    struct event *next;
};

struct loop {
    CURLM *multi;
    pthread_mutex_t mu;
    struct event *head, *tail;
};

static struct loop the_loop;

/* From any thread: queue an event and wake the loop. */
static void post_event(struct event *ev)
{
    pthread_mutex_lock(&the_loop.mu);
    if (the_loop.tail)
        the_loop.tail->next = ev;
    else
        the_loop.head = ev;
    the_loop.tail = ev;
    pthread_mutex_unlock(&the_loop.mu);
    curl_multi_wakeup(the_loop.multi);
}

static struct event *take_events(void)
{
    pthread_mutex_lock(&the_loop.mu);
    struct event *all = the_loop.head;
    the_loop.head = the_loop.tail = NULL;
    pthread_mutex_unlock(&the_loop.mu);
    return all;
}

static void wipe_free(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = 0;
        free(s);
    }
}

static void event_free(struct event *ev)
{
    wipe_free(ev->authorization);
    free(ev->error);
    free(ev);
}

/* ------------------------------------------------------------- transfers */

/* One HTTP exchange on the multi handle: the library's (oauth) or the
 * host's own MCP request. The list is the loop's; `transfers_mu` guards it
 * and `request` against the library's `cancel`, which runs on its thread. */
struct transfer {
    CURL *easy;
    struct curl_slist *headers;
    bool oauth;
    mcp_oauth_http_request *request; /* NULL once answered */
    char *body;
    size_t len, limit;
    bool too_large;
    char *names[MAX_HEADERS], *values[MAX_HEADERS];
    size_t count;
    struct transfer *next;
};

static struct transfer *transfers;
static pthread_mutex_t transfers_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t on_body(char *buf, size_t size, size_t n, void *userdata)
{
    struct transfer *t = userdata;
    size_t len = size * n;
    if (t->limit && t->len + len > t->limit) {
        t->too_large = true;
        return 0;
    }
    char *grown = realloc(t->body, t->len + len + 1);
    if (!grown)
        return 0;
    t->body = grown;
    memcpy(t->body + t->len, buf, len);
    t->len += len;
    t->body[t->len] = '\0';
    return len;
}

static size_t on_header(char *buf, size_t size, size_t n, void *userdata)
{
    struct transfer *t = userdata;
    size_t len = size * n;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response (after a 100): start again */
        for (size_t i = 0; i < t->count; i++) {
            free(t->names[i]);
            free(t->values[i]);
        }
        t->count = 0;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon || t->count == MAX_HEADERS)
        return len;
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n'))
        end--;
    t->names[t->count] = strndup(buf, (size_t)(colon - buf));
    t->values[t->count] = strndup(v, (size_t)(end - v));
    t->count++;
    return len;
}

static const char *transfer_header(const struct transfer *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++)
        if (!strcasecmp(t->names[i], name))
            return t->values[i];
    return NULL;
}

static struct transfer *transfer_new(const char *url)
{
    struct transfer *t = calloc(1, sizeof *t);
    t->easy = curl_easy_init();
    curl_easy_setopt(t->easy, CURLOPT_URL, url);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    return t;
}

static void transfer_start(struct transfer *t)
{
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    pthread_mutex_lock(&transfers_mu);
    t->next = transfers;
    transfers = t;
    pthread_mutex_unlock(&transfers_mu);
    curl_multi_add_handle(the_loop.multi, t->easy);
}

static void transfer_free(struct transfer *t)
{
    pthread_mutex_lock(&transfers_mu);
    for (struct transfer **p = &transfers; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&transfers_mu);
    curl_multi_remove_handle(the_loop.multi, t->easy);
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    for (size_t i = 0; i < t->count; i++) {
        free(t->names[i]);
        free(t->values[i]);
    }
    if (t->body) /* token responses hold secrets */
        memset(t->body, 0, t->len);
    free(t->body);
    free(t);
}

/* ------------------------------------------- the library's HTTP requests */

/* Transport `send`: on a library thread, so only queue it for the loop. */
static int transport_send(void *userdata, mcp_oauth_http_request *request)
{
    (void)userdata;
    struct event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return 1; /* not taken: the library fails the request */
    ev->kind = EV_OAUTH_REQUEST;
    ev->request = request;
    post_event(ev);
    return 0;
}

/* Transport `cancel`, on a library thread: the library no longer waits
 * for `request`. It is answered here, at once (answering is what frees it);
 * its transfer, which only the loop may touch, runs out on its own timeout
 * and is then dropped. A request still in the queue is answered by the loop
 * (its answer is then ignored). */
static void transport_cancel(void *userdata, mcp_oauth_http_request *request)
{
    (void)userdata;
    pthread_mutex_lock(&transfers_mu);
    for (struct transfer *t = transfers; t; t = t->next) {
        if (t->request == request) {
            mcp_oauth_http_request_fail(request, MCP_OAUTH_NETWORK_FAILURE_OTHER, "cancelled");
            t->request = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&transfers_mu);
}

/* On the loop: start the library's request as a transfer. */
static void start_oauth_request(mcp_oauth_http_request *req)
{
    struct transfer *t = transfer_new(mcp_oauth_http_request_url(req));
    t->oauth = true;
    t->request = req;
    t->limit = mcp_oauth_http_request_max_response_bytes(req);
    for (size_t i = 0; i < mcp_oauth_http_request_header_count(req); i++) {
        const char *name = mcp_oauth_http_request_header_name(req, i);
        const char *value = mcp_oauth_http_request_header_value(req, i);
        size_t n = strlen(name) + strlen(value) + 3;
        char *line = malloc(n);
        snprintf(line, n, "%s: %s", name, value);
        t->headers = curl_slist_append(t->headers, line);
        memset(line, 0, n); /* a header may hold a client secret */
        free(line);
    }
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)mcp_oauth_http_request_timeout_ms(req));
    size_t len = 0;
    const uint8_t *body = mcp_oauth_http_request_body(req, &len);
    if (!strcmp(mcp_oauth_http_request_method(req), "POST")) {
        curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long)len);
        curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, body ? (const char *)body : ""); /* the request's own bytes */
    }
    transfer_start(t);
}

/* On the loop: answer the library's request with what its transfer got,
 * unless `cancel` answered it already. */
static void finish_oauth_request(struct transfer *t, CURLcode rc)
{
    pthread_mutex_lock(&transfers_mu);
    mcp_oauth_http_request *req = t->request;
    if (!req) {
        pthread_mutex_unlock(&transfers_mu);
        return;
    }
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (t->too_large)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_TOO_LARGE, "the response is too large");
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_TIMEOUT, curl_easy_strerror(rc));
    else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_SSL_CONNECT_ERROR ||
             rc == CURLE_PEER_FAILED_VERIFICATION)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_CONNECT, curl_easy_strerror(rc));
    else if (rc != CURLE_OK)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_OTHER, curl_easy_strerror(rc));
    else
        mcp_oauth_http_request_respond(req, (uint16_t)status, (const char *const *)t->names,
                                       (const char *const *)t->values, t->count, (const uint8_t *)t->body, t->len);
    t->request = NULL;
    pthread_mutex_unlock(&transfers_mu);
}

/* --------------------------------------------------- the storage callbacks */

static const char *store_dir; /* NULL: nothing kept */

static char *store_path(const char *name)
{
    size_t n = strlen(store_dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", store_dir, name);
    return p;
}

static int store_get(const char *name, mcp_oauth_answer *answer)
{
    if (!store_dir)
        return 0;
    char *path = store_path(name);
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f)
        return errno == ENOENT ? 0 : 1;
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int rc = n ? (mcp_oauth_answer_set(answer, buf) == MCP_OAUTH_RESULT_OK ? 0 : 1) : 0;
    memset(buf, 0, sizeof buf);
    return rc;
}

static int store_set(const char *name, const char *json)
{
    if (!store_dir)
        return 0;
    char *path = store_path(name), *tmp = store_path("tmp");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc = fd < 0;
    if (fd >= 0) {
        size_t len = strlen(json);
        rc = write(fd, json, len) != (ssize_t)len;
        rc |= fsync(fd) != 0;
        close(fd);
        rc |= rename(tmp, path) != 0;
    }
    free(path);
    free(tmp);
    return rc;
}

static int get_tokens(void *u, mcp_oauth_answer *a) { (void)u; return store_get("tokens.json", a); }
static int set_tokens(void *u, const char *json) { (void)u; return store_set("tokens.json", json); }
static int get_client_info(void *u, mcp_oauth_answer *a) { (void)u; return store_get("client.json", a); }
static int set_client_info(void *u, const char *json) { (void)u; return store_set("client.json", json); }

/* ------------------------------------------------------------ the client */

struct client {
    mcp_oauth_provider *provider;
    const char *url;
    int step;        /* 0 initialize, 1 initialized, 2 tools/list, 3 done */
    char *session;   /* Mcp-Session-Id */
    char *sent_auth; /* the Authorization the request in flight carries (wiped) */
    bool retried;
    mcp_oauth_operation *op; /* the operation in flight, to cancel it */
    int status;      /* the exit status */
    bool done;
};

static struct client client;

static const char *step_body(int step)
{
    switch (step) {
    case 0:
        return "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"initialize\", \"params\": {\"protocolVersion\": \""
               PROTOCOL_VERSION "\", \"capabilities\": {}, \"clientInfo\": {\"name\": \"mcp-async-client\", "
               "\"version\": \"" MCP_OAUTH_VERSION "\"}}}";
    case 1:
        return "{\"jsonrpc\": \"2.0\", \"method\": \"notifications/initialized\"}";
    default:
        return "{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"tools/list\"}";
    }
}

static void finish(int status)
{
    client.status = status;
    client.done = true;
}

/* A completion: on a library thread, so copy what is needed and post it. */
static void headers_done(void *userdata, mcp_oauth_result result, const mcp_oauth_headers *headers,
                         const mcp_oauth_error *error)
{
    struct event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return;
    ev->kind = EV_HEADERS;
    ev->result = result;
    ev->retry = userdata != NULL;
    const char *auth = mcp_oauth_headers_authorization(headers);
    ev->authorization = auth ? strdup(auth) : NULL;
    ev->error = error ? strdup(mcp_oauth_error_display(error)) : NULL;
    post_event(ev);
}

/* Send the current step's request with `authorization` (or none). */
static void send_step(const char *authorization)
{
    wipe_free(client.sent_auth);
    client.sent_auth = authorization ? strdup(authorization) : NULL;
    struct transfer *t = transfer_new(client.url);
    t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
    t->headers = curl_slist_append(t->headers, "Accept: application/json, text/event-stream");
    char line[4096];
    if (client.session) {
        snprintf(line, sizeof line, "Mcp-Session-Id: %s", client.session);
        t->headers = curl_slist_append(t->headers, line);
    }
    if (client.step > 0)
        t->headers = curl_slist_append(t->headers, "MCP-Protocol-Version: " PROTOCOL_VERSION);
    if (authorization) {
        snprintf(line, sizeof line, "Authorization: %s", authorization);
        t->headers = curl_slist_append(t->headers, line);
        memset(line, 0, sizeof line);
    }
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, step_body(client.step));
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, 30000L);
    transfer_start(t);
}

/* Before each request: the hot path, or an operation when it has nothing. */
static void begin_step(void)
{
    client.retried = false;
    mcp_oauth_headers *h = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_try_get_headers(client.provider, "POST", client.url, &h, NULL);
    if (rc == MCP_OAUTH_RESULT_OK && h) {
        send_step(mcp_oauth_headers_authorization(h));
        mcp_oauth_headers_free(h);
        return;
    }
    /* Load stored tokens, or refresh: on the library's threads. */
    rc = mcp_oauth_provider_get_headers_start(client.provider, "POST", client.url, headers_done, NULL, &client.op);
    if (rc != MCP_OAUTH_RESULT_OK) {
        fprintf(stderr, "get_headers_start: %s\n", mcp_oauth_result_name(rc));
        finish(1);
    }
}

/* The JSON-RPC message with id 2 in a JSON or SSE body: print the tools. */
static void print_tools(const struct transfer *t)
{
    const char *body = t->body ? t->body : "";
    const char *json = strstr(body, "data:");
    json = json ? json + 5 : body;
    cJSON *msg = cJSON_Parse(json);
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(msg, "result"), "tools");
    printf("tools/list:");
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(tool, "name");
        printf(" %s", cJSON_IsString(name) ? name->valuestring : "?");
    }
    printf("\n");
    cJSON_Delete(msg);
}

static void finish_mcp_request(struct transfer *t, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        fprintf(stderr, "POST %s: %s\n", client.url, curl_easy_strerror(rc));
        finish(1);
        return;
    }
    if ((status == 401 || status == 403) && !client.retried) {
        printf("%ld: handing the response to libmcp_oauth\n", status);
        client.retried = true;
        /* The flow (discovery, the person, tokens) runs on the library's
         * threads; its HTTP requests come back here through the transport. */
        mcp_oauth_result r = mcp_oauth_provider_handle_response_start(
            client.provider, "POST", client.url, client.sent_auth, (uint16_t)status, (const char *const *)t->names,
            (const char *const *)t->values, t->count, headers_done, &client, &client.op);
        if (r != MCP_OAUTH_RESULT_OK) {
            fprintf(stderr, "handle_response_start: %s\n", mcp_oauth_result_name(r));
            finish(1);
        }
        return;
    }
    if (status / 100 != 2) {
        fprintf(stderr, "POST %s: HTTP %ld\n", client.url, status);
        finish(1);
        return;
    }
    const char *session = transfer_header(t, "mcp-session-id");
    if (session && !client.session)
        client.session = strdup(session);
    if (client.step == 2) {
        print_tools(t);
        finish(0);
        return;
    }
    printf("%s: HTTP %ld\n", client.step == 0 ? "initialize" : "notifications/initialized", status);
    client.step++;
    begin_step();
}

static void on_event(struct event *ev)
{
    switch (ev->kind) {
    case EV_OAUTH_REQUEST:
        start_oauth_request(ev->request);
        break;
    case EV_HEADERS:
        mcp_oauth_operation_free(client.op);
        client.op = NULL;
        if (ev->result != MCP_OAUTH_RESULT_OK) {
            fprintf(stderr, "libmcp_oauth: %s\n", ev->error ? ev->error : mcp_oauth_result_name(ev->result));
            finish(1);
        } else if (ev->retry && !ev->authorization) {
            fprintf(stderr, "libmcp_oauth: the request is not to be sent again\n");
            finish(1);
        } else {
            send_step(ev->authorization);
        }
        break;
    }
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
    long timeout_ms = 120000;
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--store-dir") && i + 1 < argc)
            store_dir = argv[++i];
        else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc)
            timeout_ms = strtol(argv[++i], NULL, 10);
        else if (argv[i][0] != '-')
            url = argv[i];
        else {
            fprintf(stderr, "usage: mcp_async_client [--store-dir DIR] [--timeout-ms N] SERVER_URL\n");
            return 2;
        }
    }
    if (!url) {
        fprintf(stderr, "usage: mcp_async_client [--store-dir DIR] [--timeout-ms N] SERVER_URL\n");
        return 2;
    }
    if (store_dir && mkdir(store_dir, 0700) != 0 && errno != EEXIST) {
        perror(store_dir);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    the_loop.multi = curl_multi_init();
    pthread_mutex_init(&the_loop.mu, NULL);

    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_config_builder_set_server_url(b, url);
    mcp_oauth_config_builder_set_client_metadata_json(
        b, "{\"client_name\": \"mcp-async-client\", \"redirect_uris\": [\"http://127.0.0.1:0/callback\"], "
           "\"grant_types\": [\"authorization_code\", \"refresh_token\"]}");
    mcp_oauth_config_builder_set_loopback_handler(b, NULL, 0);
    mcp_oauth_transport_callbacks transport = MCP_OAUTH_TRANSPORT_CALLBACKS_INIT;
    transport.send = transport_send;
    transport.cancel = transport_cancel;
    mcp_oauth_storage_callbacks storage = MCP_OAUTH_STORAGE_CALLBACKS_INIT;
    storage.get_tokens = get_tokens;
    storage.set_tokens = set_tokens;
    storage.get_client_info = get_client_info;
    storage.set_client_info = set_client_info;
    mcp_oauth_error *err = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_set_transport_callbacks(b, &transport, &err);
    if (rc == MCP_OAUTH_RESULT_OK)
        rc = mcp_oauth_config_builder_set_storage_callbacks(b, &storage, &err);
    if (rc == MCP_OAUTH_RESULT_OK)
        rc = mcp_oauth_config_builder_build(b, &client.provider, &err);
    else
        mcp_oauth_config_builder_free(b);
    if (rc != MCP_OAUTH_RESULT_OK) {
        fprintf(stderr, "configuration: %s\n", err ? mcp_oauth_error_display(err) : mcp_oauth_result_name(rc));
        mcp_oauth_error_free(err);
        return 1;
    }
    client.url = url;

    begin_step();
    long deadline = now_ms() + timeout_ms;
    bool cancelled = false;
    while (!client.done) {
        int running = 0;
        curl_multi_perform(the_loop.multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(the_loop.multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct transfer *t = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            CURLcode result = msg->data.result;
            if (t->oauth)
                finish_oauth_request(t, result);
            else
                finish_mcp_request(t, result);
            transfer_free(t);
        }
        for (struct event *ev = take_events(), *next; ev; ev = next) {
            next = ev->next;
            on_event(ev);
            event_free(ev);
        }
        if (!cancelled && now_ms() > deadline) {
            /* Give up: the operation completes with CANCELLED (an event). */
            fprintf(stderr, "timed out: cancelling\n");
            cancelled = true;
            if (client.op)
                mcp_oauth_operation_cancel(client.op);
            else
                finish(1);
        }
        if (!client.done)
            curl_multi_poll(the_loop.multi, NULL, 0, 1000, NULL);
    }

    /* Freeing the provider cancels what is left; its transport requests are
     * answered here (a cancelled one still has to be answered). */
    mcp_oauth_operation_free(client.op);
    mcp_oauth_provider_free(client.provider);
    mcp_oauth_shutdown(5000);
    for (struct event *ev = take_events(), *next; ev; ev = next) {
        next = ev->next;
        if (ev->kind == EV_OAUTH_REQUEST)
            mcp_oauth_http_request_fail(ev->request, MCP_OAUTH_NETWORK_FAILURE_OTHER, "closing");
        event_free(ev);
    }
    while (transfers) {
        pthread_mutex_lock(&transfers_mu);
        struct transfer *t = transfers;
        if (t->request)
            mcp_oauth_http_request_fail(t->request, MCP_OAUTH_NETWORK_FAILURE_OTHER, "closing");
        t->request = NULL;
        pthread_mutex_unlock(&transfers_mu);
        transfer_free(t);
    }
    wipe_free(client.sent_auth);
    free(client.session);
    curl_multi_cleanup(the_loop.multi);
    curl_global_cleanup();
    pthread_mutex_destroy(&the_loop.mu);
    return client.status;
}
