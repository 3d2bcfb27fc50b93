/*
 * mcp_client: an MCP client in C over libcurl and cJSON that gets its
 * authorization from libmcp_oauth in header mode.
 *
 * It speaks MCP streamable HTTP: each JSON-RPC message is a POST with
 * "Accept: application/json, text/event-stream"; the answer is JSON or an
 * SSE stream. It keeps the Mcp-Session-Id the server assigns and sends
 * MCP-Protocol-Version after initialize. It runs initialize (+ the
 * initialized notification), tools/list and tools/call.
 *
 * From protocol version 2026-07-28 on, MCP is stateless: no initialize; every
 * request carries the MCP-Protocol-Version header (with Mcp-Method, Mcp-Name) and, in
 * params._meta, the protocol version, the client's capabilities and its info.
 *
 * Authorization, per request: ask the provider for the headers of the request
 * (method and URL; none before the first authorization), send; on 401/403 give
 * the request and the response (status and every header, collected by
 * libcurl's header callback) to the provider, which runs the OAuth flow and
 * says whether to send again, once, and with which headers.
 *
 *   mcp_client [options] SERVER_URL      (mcp_client --help for the options)
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "mcp_oauth.h"

#define DEFAULT_PROTOCOL_VERSION "2025-06-18"
/* The first protocol version without initialize (stateless requests). */
#define STATELESS_PROTOCOL_VERSION "2026-07-28"
#define MAX_RESPONSE_HEADERS 64

/* ------------------------------------------------------------------ options */

struct options {
    const char *server_url;
    bool headless;
    const char *client_id;
    const char *client_secret;
    const char *auth_method;
    const char *issuer;
    const char *private_key_file;
    const char *signing_alg;
    const char *client_metadata_url;
    const char *scope;
    const char *protocol_version;
    bool client_credentials;
    bool memory_store;
    const char *token_dir;
    const char *redirect_uri;
    const char *call_tool;
    const char *call_args;
    const char *idp_token_endpoint;
    const char *idp_client_id;
    const char *idp_client_secret;
    const char *id_token_file;
    const char *workload_jwt_file;
    bool dpop;
    bool no_call;
    bool verbose;
    bool quiet;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mcp_client [options] SERVER_URL\n"
            "\n"
            "Connects to an MCP server over streamable HTTP, authorizing with OAuth through\n"
            "libmcp_oauth, then runs initialize, tools/list and tools/call (from protocol\n"
            "version " STATELESS_PROTOCOL_VERSION " on: no initialize, stateless requests).\n"
            "\n"
            "Authorization:\n"
            "  --headless               no browser: GET the authorization URL with libcurl,\n"
            "                           read its redirect (Location) and hand it back as the\n"
            "                           callback (for servers that approve without a person)\n"
            "  --redirect-uri URI       loopback redirect URI (default http://127.0.0.1:0/callback;\n"
            "                           with --headless, http://127.0.0.1:33418/callback)\n"
            "  --client-id ID           pre-registered client ID\n"
            "  --client-secret SECRET   its secret (confidential clients)\n"
            "  --auth-method METHOD     none, client_secret_basic or client_secret_post\n"
            "  --issuer URL             the authorization server the client ID belongs to\n"
            "                           (its credentials go to no other)\n"
            "  --private-key FILE       PKCS#8 PEM key for private_key_jwt (with --client-id)\n"
            "  --signing-alg ALG        its JWT algorithm (default ES256)\n"
            "  --client-metadata-url U  a Client ID Metadata Document URL to use as client_id\n"
            "  --scope SCOPE            scopes to ask for (space-separated)\n"
            "  --client-credentials     the client credentials grant (needs --client-id)\n"
            "  --dpop                   bind tokens to a key of the client's (DPoP, RFC 9449)\n"
            "  --idp-token-endpoint URL enterprise-managed authorization: exchange the user's ID\n"
            "                           token there for an ID-JAG (needs --id-token-file and\n"
            "                           --client-id/--client-secret for the MCP server's AS)\n"
            "  --idp-client-id ID       this client at the IdP\n"
            "  --idp-client-secret S    its secret at the IdP\n"
            "  --id-token-file FILE     the user's ID token (re-read on each exchange)\n"
            "  --workload-jwt-file FILE workload identity: the platform's JWT (re-read when it\n"
            "                           changes), with --client-id and no secret\n"
            "Storage (default: a file per server in the library's default directory):\n"
            "  --token-dir DIR          the directory of the file store (env MCP_OAUTH_TOKEN_DIR)\n"
            "  --memory-store           keep tokens in memory only\n"
            "MCP:\n"
            "  --protocol-version V     MCP protocol version to offer (default " DEFAULT_PROTOCOL_VERSION ")\n"
            "  --call TOOL              the tool to call (default: the first tool that needs\n"
            "                           no arguments)\n"
            "  --args JSON              its arguments as a JSON object (default {})\n"
            "  --no-call                do not call any tool\n"
            "Output:\n"
            "  --verbose                also show the library's debug log\n"
            "  --quiet                  do not show the library's log\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    o->token_dir = getenv("MCP_OAUTH_TOKEN_DIR");
    if (o->token_dir && !*o->token_dir)
        o->token_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VALUE(field)                                                         \
    do {                                                                     \
        if (i + 1 >= argc) {                                                 \
            fprintf(stderr, "mcp_client: %s needs a value\n", a);            \
            return -1;                                                       \
        }                                                                    \
        o->field = argv[++i];                                                \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--headless")) {
            o->headless = true;
        } else if (!strcmp(a, "--client-id")) {
            VALUE(client_id);
        } else if (!strcmp(a, "--client-secret")) {
            VALUE(client_secret);
        } else if (!strcmp(a, "--auth-method")) {
            VALUE(auth_method);
        } else if (!strcmp(a, "--issuer")) {
            VALUE(issuer);
        } else if (!strcmp(a, "--private-key")) {
            VALUE(private_key_file);
        } else if (!strcmp(a, "--signing-alg")) {
            VALUE(signing_alg);
        } else if (!strcmp(a, "--client-metadata-url")) {
            VALUE(client_metadata_url);
        } else if (!strcmp(a, "--scope")) {
            VALUE(scope);
        } else if (!strcmp(a, "--protocol-version")) {
            VALUE(protocol_version);
        } else if (!strcmp(a, "--client-credentials")) {
            o->client_credentials = true;
        } else if (!strcmp(a, "--memory-store")) {
            o->memory_store = true;
        } else if (!strcmp(a, "--token-dir")) {
            VALUE(token_dir);
        } else if (!strcmp(a, "--redirect-uri")) {
            VALUE(redirect_uri);
        } else if (!strcmp(a, "--call")) {
            VALUE(call_tool);
        } else if (!strcmp(a, "--args")) {
            VALUE(call_args);
        } else if (!strcmp(a, "--no-call")) {
            o->no_call = true;
        } else if (!strcmp(a, "--dpop")) {
            o->dpop = true;
        } else if (!strcmp(a, "--idp-token-endpoint")) {
            VALUE(idp_token_endpoint);
        } else if (!strcmp(a, "--idp-client-id")) {
            VALUE(idp_client_id);
        } else if (!strcmp(a, "--idp-client-secret")) {
            VALUE(idp_client_secret);
        } else if (!strcmp(a, "--id-token-file")) {
            VALUE(id_token_file);
        } else if (!strcmp(a, "--workload-jwt-file")) {
            VALUE(workload_jwt_file);
        } else if (!strcmp(a, "--verbose")) {
            o->verbose = true;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "mcp_client: unknown option %s\n", a);
            return -1;
        } else if (!o->server_url) {
            o->server_url = a;
        } else {
            fprintf(stderr, "mcp_client: unexpected argument %s\n", a);
            return -1;
        }
#undef VALUE
    }
    if (!o->server_url) {
        usage(stderr);
        return -1;
    }
    if (o->client_credentials && !o->client_id) {
        fprintf(stderr, "mcp_client: --client-credentials needs --client-id\n");
        return -1;
    }
    if (!o->protocol_version)
        o->protocol_version = DEFAULT_PROTOCOL_VERSION;
    return 0;
}

/* ------------------------------------------------------------------ output */

static void step(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("==> ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("    ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

static void print_oauth_error(const char *what, mcp_oauth_result rc, mcp_oauth_error *err)
{
    fprintf(stderr, "error: %s failed: %s\n", what, mcp_oauth_result_name(rc));
    if (err) {
        fprintf(stderr, "  kind:    %s\n", mcp_oauth_error_kind(err));
        if (mcp_oauth_error_step(err))
            fprintf(stderr, "  step:    %s\n", mcp_oauth_error_step(err));
        fprintf(stderr, "  message: %s\n", mcp_oauth_error_message(err));
        if (mcp_oauth_error_http_status(err))
            fprintf(stderr, "  status:  %u\n", (unsigned)mcp_oauth_error_http_status(err));
        if (mcp_oauth_error_oauth_error(err))
            fprintf(stderr, "  oauth:   %s%s%s\n", mcp_oauth_error_oauth_error(err),
                    mcp_oauth_error_oauth_error_description(err) ? ": " : "",
                    mcp_oauth_error_oauth_error_description(err) ? mcp_oauth_error_oauth_error_description(err) : "");
        if (mcp_oauth_error_url(err))
            fprintf(stderr, "  url:     %s\n", mcp_oauth_error_url(err));
        uint64_t retry_after_ms = 0;
        if (mcp_oauth_error_retry_after_ms(err, &retry_after_ms))
            fprintf(stderr, "  retry after: %llu ms\n", (unsigned long long)retry_after_ms);
    }
}

static void on_log(void *userdata, mcp_oauth_log_level level, const char *target, const char *message)
{
    (void)userdata;
    (void)target;
    static const char *names[] = {"off", "error", "warn", "info", "debug", "trace"};
    const char *name = level <= MCP_OAUTH_LOG_LEVEL_TRACE ? names[level] : "?";
    printf("    [libmcp_oauth %s] %s\n", name, message);
}

/* ------------------------------------------------------------------ buffers */

struct buffer {
    char *data;
    size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct buffer *b = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

struct response {
    long status;
    struct buffer body;
    char *content_type;
    char *session_id;
    /* Every header, for the provider (it reads WWW-Authenticate, and more). */
    char *header_names[MAX_RESPONSE_HEADERS];
    char *header_values[MAX_RESPONSE_HEADERS];
    size_t header_count;
};

static void forget_headers(struct response *r)
{
    for (size_t i = 0; i < r->header_count; i++) {
        free(r->header_names[i]);
        free(r->header_values[i]);
    }
    r->header_count = 0;
}

static void response_clear(struct response *r)
{
    free(r->body.data);
    free(r->content_type);
    free(r->session_id);
    forget_headers(r);
    memset(r, 0, sizeof *r);
}

/* The first value of header `name`, or NULL. */
static const char *response_header(const struct response *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++)
        if (!strcasecmp(r->header_names[i], name))
            return r->header_values[i];
    return NULL;
}

/* The value of header line `line` if its name is `name`, trimmed, else NULL. */
static char *header_value(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    char *out = malloc((size_t)(end - v) + 1);
    if (out) {
        memcpy(out, v, (size_t)(end - v));
        out[end - v] = '\0';
    }
    return out;
}

/* Keep header line `line` ("Name: value") as a name and a trimmed value. */
static void keep_header(struct response *r, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line || r->header_count == MAX_RESPONSE_HEADERS)
        return;
    size_t n = (size_t)(colon - line);
    char *name = malloc(n + 1);
    if (!name)
        return;
    memcpy(name, line, n);
    name[n] = '\0';
    char *value = header_value(line, len, name);
    if (!value) {
        free(name);
        return;
    }
    r->header_names[r->header_count] = name;
    r->header_values[r->header_count++] = value;
}

/* libcurl's header callback: one call per header line, status line included. */
static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    struct response *r = userdata;
    size_t len = size * nmemb;
    char *v;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue): forget the previous headers. */
        forget_headers(r);
        return len;
    }
    keep_header(r, line, len);
    if ((v = header_value(line, len, "Mcp-Session-Id"))) {
        free(r->session_id);
        r->session_id = v;
    } else if ((v = header_value(line, len, "Content-Type"))) {
        free(r->content_type);
        r->content_type = v;
    }
    return len;
}

/* ------------------------------------------------------------------ MCP session */

struct session {
    const struct options *opts;
    CURL *curl;
    mcp_oauth_provider *provider;
    char *session_id;
    char *protocol_version; /* negotiated; sent after initialize (stateless: always) */
    bool stateless;         /* protocol version >= STATELESS_PROTOCOL_VERSION */
    const char *mcp_name;   /* stateless: the Mcp-Name header of the message being sent */
    int next_id;
};

/* Printable ASCII only: fit for an HTTP header value. */
static bool is_header_safe(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
            return false;
    return true;
}

/* Protocol versions are dates (YYYY-MM-DD): they compare as strings. */
static bool is_stateless_version(const char *version)
{
    return strcmp(version, STATELESS_PROTOCOL_VERSION) >= 0;
}

static char *format_header(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *h = malloc(n);
    if (h)
        snprintf(h, n, "%s: %s", name, value);
    return h;
}

/* One POST of `body` (a `method` message) with the provider's headers `auth`
 * (may be NULL: none before the first authorization). */
static int send_once(struct session *s, const char *method, const char *body, const mcp_oauth_headers *auth,
                     struct response *r)
{
    struct curl_slist *headers = NULL;
    char *oauth[4] = {NULL};
    size_t oauth_count = mcp_oauth_headers_count(auth);
    char *sid = NULL, *ver = NULL, *meth = NULL, *name = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json, text/event-stream");
    /* Every header the provider gives (Authorization; DPoP with a bound token). */
    for (size_t i = 0; i < oauth_count && i < 4; i++)
        headers = curl_slist_append(
            headers, (oauth[i] = format_header(mcp_oauth_headers_name(auth, i), mcp_oauth_headers_value(auth, i))));
    if (s->session_id)
        headers = curl_slist_append(headers, (sid = format_header("Mcp-Session-Id", s->session_id)));
    if (s->protocol_version)
        headers = curl_slist_append(headers, (ver = format_header("MCP-Protocol-Version", s->protocol_version)));
    if (s->stateless)
        headers = curl_slist_append(headers, (meth = format_header("Mcp-Method", method)));
    if (s->stateless && s->mcp_name)
        headers = curl_slist_append(headers, (name = format_header("Mcp-Name", s->mcp_name)));

    curl_easy_reset(s->curl);
    curl_easy_setopt(s->curl, CURLOPT_URL, s->opts->server_url);
    curl_easy_setopt(s->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT, 120L);
    CURLcode cc = curl_easy_perform(s->curl);
    curl_slist_free_all(headers);
    for (size_t i = 0; i < 4; i++) {
        /* They held a token: do not leave it in freed memory. */
        if (oauth[i])
            memset(oauth[i], 0, strlen(oauth[i]));
        free(oauth[i]);
    }
    free(sid);
    free(ver);
    free(meth);
    free(name);
    if (cc != CURLE_OK) {
        fprintf(stderr, "error: POST %s: %s\n", s->opts->server_url, curl_easy_strerror(cc));
        return -1;
    }
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &r->status);
    return 0;
}

/* POST `body`, with the headers from the provider; on 401/403 let the
 * provider handle the response, and send again once when it says so. */
static int post(struct session *s, const char *method, const char *body, struct response *r)
{
    const char *url = s->opts->server_url;
    mcp_oauth_error *err = NULL;
    mcp_oauth_headers *auth = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(s->provider, "POST", url, &auth, &err);
    if (rc != MCP_OAUTH_RESULT_OK) {
        print_oauth_error("getting the authorization headers", rc, err);
        mcp_oauth_error_free(err);
        return -1;
    }
    if (send_once(s, method, body, auth, r) != 0) {
        mcp_oauth_headers_free(auth); /* overwrites before freeing */
        return -1;
    }
    /* One retry per request; a second only for a DPoP nonce challenge met by
     * the retry (a new DPoP-bound token meets the server's nonce first). */
    for (int round = 0; round < 2; round++) {
        if (r->status != 401 && r->status != 403)
            break;
        if (round == 1 && !mcp_oauth_is_dpop_nonce_challenge((uint16_t)r->status, (const char *const *)r->header_names,
                                                             (const char *const *)r->header_values, r->header_count))
            break;
        const char *challenge = response_header(r, "WWW-Authenticate");
        note("%s: HTTP %ld%s%s", method, r->status, challenge ? ", WWW-Authenticate: " : "", challenge ? challenge : "");
        note("handing the response to libmcp_oauth (this may run the OAuth flow)");
        bool retry = false;
        mcp_oauth_headers *again = NULL;
        rc = mcp_oauth_provider_handle_response(
            s->provider, "POST", url, mcp_oauth_headers_authorization(auth), (uint16_t)r->status,
            (const char *const *)r->header_names, (const char *const *)r->header_values, r->header_count, &retry,
            &again, &err);
        mcp_oauth_headers_free(auth);
        auth = NULL;
        if (rc != MCP_OAUTH_RESULT_OK) {
            print_oauth_error("authorization", rc, err);
            mcp_oauth_error_free(err);
            return -1;
        }
        if (!retry)
            break;
        note("authorized; sending %s again", method);
        response_clear(r);
        auth = again;
        if (send_once(s, method, body, auth, r) != 0) {
            mcp_oauth_headers_free(auth);
            return -1;
        }
    }
    mcp_oauth_headers_free(auth);
    if (r->session_id && (!s->session_id || strcmp(r->session_id, s->session_id) != 0)) {
        free(s->session_id);
        s->session_id = strdup(r->session_id);
        note("session: %s", s->session_id);
    }
    return 0;
}

/* The JSON-RPC response with id `id` in a JSON body or an SSE stream. */
static cJSON *find_response(const struct response *r, int id)
{
    if (!r->body.data)
        return NULL;
    bool sse = r->content_type && strncasecmp(r->content_type, "text/event-stream", 17) == 0;
    if (!sse) {
        cJSON *j = cJSON_Parse(r->body.data);
        if (!j)
            return NULL;
        cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (cJSON_IsNumber(jid) && jid->valueint == id)
            return j;
        cJSON_Delete(j);
        return NULL;
    }
    /* SSE: events separated by blank lines; an event's data is its data:
     * lines joined with newlines. */
    cJSON *found = NULL;
    size_t cap = r->body.len + 1, len = 0;
    char *data = malloc(cap);
    if (!data)
        return NULL;
    const char *p = r->body.data;
    while (!found) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0) { /* end of an event */
            if (len > 0) {
                data[len] = '\0';
                cJSON *j = cJSON_Parse(data);
                cJSON *jid = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
                if (cJSON_IsNumber(jid) && jid->valueint == id && !cJSON_GetObjectItemCaseSensitive(j, "method"))
                    found = j;
                else
                    cJSON_Delete(j);
                len = 0;
            }
        } else if (n >= 5 && strncmp(p, "data:", 5) == 0) {
            const char *v = p + 5;
            size_t vn = n - 5;
            if (vn > 0 && *v == ' ') {
                v++;
                vn--;
            }
            if (len > 0)
                data[len++] = '\n';
            memcpy(data + len, v, vn);
            len += vn;
        }
        if (!eol) {
            if (len > 0 && !found) { /* a last event without its blank line */
                data[len] = '\0';
                cJSON *j = cJSON_Parse(data);
                cJSON *jid = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
                if (cJSON_IsNumber(jid) && jid->valueint == id)
                    found = j;
                else
                    cJSON_Delete(j);
            }
            break;
        }
        p = eol + 1;
    }
    free(data);
    return found;
}

/* Send a request; returns its `result` (owned by *whole), or NULL. */
static cJSON *request(struct session *s, const char *method, cJSON *params, cJSON **whole)
{
    *whole = NULL;
    int id = ++s->next_id;
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(msg, "id", id);
    cJSON_AddStringToObject(msg, "method", method);
    if (s->stateless) {
        /* Stateless: what initialize negotiated travels with every request. */
        if (!params)
            params = cJSON_CreateObject();
        cJSON *meta = cJSON_AddObjectToObject(params, "_meta");
        cJSON_AddStringToObject(meta, "io.modelcontextprotocol/protocolVersion", s->protocol_version);
        cJSON_AddObjectToObject(meta, "io.modelcontextprotocol/clientCapabilities");
        cJSON *info = cJSON_AddObjectToObject(meta, "io.modelcontextprotocol/clientInfo");
        cJSON_AddStringToObject(info, "name", "mcp-oauth-client-c-example");
        cJSON_AddStringToObject(info, "version", MCP_OAUTH_VERSION);
    }
    if (params)
        cJSON_AddItemToObject(msg, "params", params);
    char *body = cJSON_PrintUnformatted(msg);
    /* Stateless: the tool, prompt or resource a request names is mirrored in
     * the Mcp-Name header (names and URIs are printable ASCII). */
    const cJSON *named = NULL;
    if (s->stateless && (!strcmp(method, "tools/call") || !strcmp(method, "prompts/get")))
        named = cJSON_GetObjectItemCaseSensitive(params, "name");
    else if (s->stateless && !strcmp(method, "resources/read"))
        named = cJSON_GetObjectItemCaseSensitive(params, "uri");
    s->mcp_name = cJSON_IsString(named) && is_header_safe(named->valuestring) ? named->valuestring : NULL;
    struct response r = {0};
    int sent = post(s, method, body, &r);
    s->mcp_name = NULL;
    cJSON_Delete(msg);
    free(body);
    if (sent != 0) {
        response_clear(&r);
        return NULL;
    }
    if (r.status < 200 || r.status >= 300) {
        fprintf(stderr, "error: %s: HTTP %ld %s\n", method, r.status, r.body.data ? r.body.data : "");
        response_clear(&r);
        return NULL;
    }
    cJSON *resp = find_response(&r, id);
    response_clear(&r);
    if (!resp) {
        fprintf(stderr, "error: %s: no JSON-RPC response with id %d in the answer\n", method, id);
        return NULL;
    }
    cJSON *error = cJSON_GetObjectItemCaseSensitive(resp, "error");
    if (error) {
        char *e = cJSON_PrintUnformatted(error);
        fprintf(stderr, "error: %s: JSON-RPC error %s\n", method, e ? e : "?");
        free(e);
        cJSON_Delete(resp);
        return NULL;
    }
    *whole = resp;
    return cJSON_GetObjectItemCaseSensitive(resp, "result");
}

static int notify(struct session *s, const char *method)
{
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    cJSON_AddStringToObject(msg, "method", method);
    char *body = cJSON_PrintUnformatted(msg);
    cJSON_Delete(msg);
    struct response r = {0};
    int sent = post(s, method, body, &r);
    free(body);
    int ok = sent == 0 && r.status >= 200 && r.status < 300 ? 0 : -1;
    if (sent == 0 && ok != 0)
        fprintf(stderr, "error: %s: HTTP %ld\n", method, r.status);
    response_clear(&r);
    return ok;
}

/* ------------------------------------------------------------------ headless handler */

/* The --headless handler: the authorization server answers the GET of the
 * authorization URL with a redirect to redirect_uri; that redirect URL is
 * the callback's answer. Both callbacks run on a library thread, one after
 * the other, so the slot needs no lock. */
struct headless {
    char *redirect_url;
};

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static int headless_redirect(void *userdata, const char *authorization_url)
{
    struct headless *h = userdata;
    note("headless: GET the authorization URL (not following its redirect)");
    CURL *c = curl_easy_init();
    if (!c)
        return 1;
    curl_easy_setopt(c, CURLOPT_URL, authorization_url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    char *location = NULL;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
    }
    int rc = 0;
    free(h->redirect_url);
    h->redirect_url = NULL;
    if (cc != CURLE_OK) {
        fprintf(stderr, "error: headless GET of the authorization URL: %s\n", curl_easy_strerror(cc));
        rc = 2;
    } else if (!location) {
        fprintf(stderr, "error: the authorization endpoint answered HTTP %ld without a redirect\n", status);
        rc = 3;
    } else {
        h->redirect_url = strdup(location);
        note("headless: HTTP %ld, redirected back to the client", status);
    }
    curl_easy_cleanup(c);
    return rc;
}

static int headless_callback(void *userdata, mcp_oauth_answer *answer)
{
    struct headless *h = userdata;
    if (!h->redirect_url)
        return 1;
    mcp_oauth_result rc = mcp_oauth_answer_set(answer, h->redirect_url);
    memset(h->redirect_url, 0, strlen(h->redirect_url)); /* it held a code */
    free(h->redirect_url);
    h->redirect_url = NULL;
    return rc == MCP_OAUTH_RESULT_OK ? 0 : 1;
}

static void headless_release(void *userdata)
{
    struct headless *h = userdata;
    free(h->redirect_url);
    free(h);
}

/* ------------------------------------------------------------------ provider */

/* Overwrite and free a buffer this program allocated (not the library's). */
static void wipe_and_free(char *buf, size_t cap)
{
    volatile char *p = buf;
    for (size_t i = 0; i < cap; i++)
        p[i] = 0;
    free(buf);
}

/* Read a whole (small) secret file into a buffer of PRIVATE_KEY_CAP + 1
 * bytes; NULL with a message on failure. */
#define PRIVATE_KEY_CAP 16384
static char *read_secret_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mcp_client: cannot open %s\n", path);
        return NULL;
    }
    size_t cap = PRIVATE_KEY_CAP, len = 0;
    char *buf = malloc(cap + 1);
    if (buf) {
        len = fread(buf, 1, cap, f);
        buf[len] = '\0';
    }
    int bad = !buf || ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "mcp_client: cannot read %s (missing, or over %zu bytes)\n", path, cap);
        if (buf)
            wipe_and_free(buf, cap + 1);
        return NULL;
    }
    return buf;
}

static mcp_oauth_provider *make_provider(const struct options *o)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_result rc = mcp_oauth_config_builder_set_server_url(b, o->server_url);

    /* Client metadata, in the MCP Python SDK's schema. With the loopback
     * receiver, the library puts the bound redirect URI in. */
    const char *redirect_uri = o->redirect_uri;
    if (!redirect_uri && o->headless)
        redirect_uri = "http://127.0.0.1:33418/callback";
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "client_name", "mcp-oauth-client C example");
    cJSON *uris = cJSON_AddArrayToObject(meta, "redirect_uris");
    cJSON_AddItemToArray(uris, cJSON_CreateString(redirect_uri ? redirect_uri : "http://127.0.0.1:0/callback"));
    cJSON *grants = cJSON_AddArrayToObject(meta, "grant_types");
    cJSON_AddItemToArray(grants, cJSON_CreateString("authorization_code"));
    cJSON_AddItemToArray(grants, cJSON_CreateString("refresh_token"));
    cJSON *types = cJSON_AddArrayToObject(meta, "response_types");
    cJSON_AddItemToArray(types, cJSON_CreateString("code"));
    cJSON_AddStringToObject(meta, "token_endpoint_auth_method", "none");
    char *meta_json = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    if (rc == MCP_OAUTH_RESULT_OK)
        rc = mcp_oauth_config_builder_set_client_metadata_json(b, meta_json);
    free(meta_json);

    if (rc == MCP_OAUTH_RESULT_OK && o->scope)
        rc = mcp_oauth_config_builder_set_scope(b, o->scope);
    if (rc == MCP_OAUTH_RESULT_OK && o->client_id)
        rc = mcp_oauth_config_builder_set_static_client(b, o->client_id, o->client_secret, o->auth_method,
                                                        o->issuer); /* NULL: not pinned */
    if (rc == MCP_OAUTH_RESULT_OK && o->private_key_file) {
        char *pem = read_secret_file(o->private_key_file);
        if (!pem) {
            mcp_oauth_config_builder_free(b);
            return NULL;
        }
        rc = mcp_oauth_config_builder_set_private_key_jwt(b, pem, o->signing_alg ? o->signing_alg : "ES256", NULL, NULL);
        wipe_and_free(pem, PRIVATE_KEY_CAP + 1);
    }
    if (rc == MCP_OAUTH_RESULT_OK && o->client_metadata_url)
        rc = mcp_oauth_config_builder_set_client_metadata_url(b, o->client_metadata_url);
    if (rc == MCP_OAUTH_RESULT_OK)
        rc = mcp_oauth_config_builder_set_protocol_version(b, o->protocol_version);
    if (rc == MCP_OAUTH_RESULT_OK && o->client_credentials)
        rc = mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL);
    if (rc == MCP_OAUTH_RESULT_OK && o->dpop)
        rc = mcp_oauth_config_builder_set_dpop(b, true);
    if (rc == MCP_OAUTH_RESULT_OK && o->idp_token_endpoint) {
        char *id_token = o->id_token_file ? read_secret_file(o->id_token_file) : NULL;
        if (!id_token) {
            fprintf(stderr, "mcp_client: --idp-token-endpoint needs a readable --id-token-file\n");
            mcp_oauth_config_builder_free(b);
            return NULL;
        }
        id_token[strcspn(id_token, "\r\n")] = '\0';
        rc = mcp_oauth_config_builder_set_identity_assertion(b, o->idp_token_endpoint, o->idp_client_id,
                                                             o->idp_client_secret, id_token);
        wipe_and_free(id_token, PRIVATE_KEY_CAP + 1);
    }
    if (rc == MCP_OAUTH_RESULT_OK && o->workload_jwt_file)
        rc = mcp_oauth_config_builder_set_workload_identity(b, NULL, o->workload_jwt_file);
    if (rc == MCP_OAUTH_RESULT_OK) {
        if (o->memory_store)
            rc = mcp_oauth_config_builder_set_storage_memory(b);
        else
            rc = mcp_oauth_config_builder_set_storage_file(b, o->token_dir); /* NULL: the default */
    }
    if (rc == MCP_OAUTH_RESULT_OK && !o->client_credentials) {
        if (o->headless) {
            struct headless *h = calloc(1, sizeof *h);
            mcp_oauth_handler_callbacks cb = {
                .version = MCP_OAUTH_HANDLER_CALLBACKS_VERSION,
                .userdata = h,
                .redirect = headless_redirect,
                .callback = headless_callback,
                .release = headless_release,
            };
            rc = mcp_oauth_config_builder_set_handler_callbacks(b, &cb, NULL);
            if (rc != MCP_OAUTH_RESULT_OK)
                free(h);
        } else {
            rc = mcp_oauth_config_builder_set_loopback_handler(b, redirect_uri, 0);
        }
    }
    if (rc != MCP_OAUTH_RESULT_OK) {
        print_oauth_error("configuring libmcp_oauth", rc, NULL);
        mcp_oauth_config_builder_free(b);
        return NULL;
    }
    mcp_oauth_provider *p = NULL;
    mcp_oauth_error *err = NULL;
    rc = mcp_oauth_config_builder_build(b, &p, &err); /* consumes b */
    if (rc != MCP_OAUTH_RESULT_OK) {
        print_oauth_error("building the provider", rc, err);
        mcp_oauth_error_free(err);
        return NULL;
    }
    return p;
}

/* ------------------------------------------------------------------ main */

static void print_content(const cJSON *result)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(result, "content");
    const cJSON *item;
    cJSON_ArrayForEach(item, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(item, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(item, "text");
        if (cJSON_IsString(type) && !strcmp(type->valuestring, "text") && cJSON_IsString(text))
            note("%s", text->valuestring);
        else {
            char *j = cJSON_PrintUnformatted(item);
            note("%s", j ? j : "?");
            free(j);
        }
    }
    const cJSON *is_error = cJSON_GetObjectItemCaseSensitive(result, "isError");
    if (cJSON_IsTrue(is_error))
        note("(the tool reported an error)");
}

/* A tool whose input schema requires nothing. */
static bool needs_no_arguments(const cJSON *tool)
{
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(tool, "inputSchema");
    const cJSON *required = cJSON_GetObjectItemCaseSensitive(schema, "required");
    return !cJSON_IsArray(required) || cJSON_GetArraySize(required) == 0;
}

/* The stateful handshake: initialize, then notifications/initialized. From
 * STATELESS_PROTOCOL_VERSION on there is none: each request says it all. */
static int initialize(struct session *s)
{
    const struct options *o = s->opts;
    cJSON *whole = NULL;

    if (is_stateless_version(o->protocol_version)) {
        step("protocol version %s: stateless, no initialize (POST %s)", o->protocol_version, o->server_url);
        s->stateless = true;
        s->protocol_version = strdup(o->protocol_version);
        return s->protocol_version ? 0 : -1;
    }

    step("initialize (POST %s, protocol version %s)", o->server_url, o->protocol_version);
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "protocolVersion", o->protocol_version);
    cJSON_AddObjectToObject(params, "capabilities");
    cJSON *info = cJSON_AddObjectToObject(params, "clientInfo");
    cJSON_AddStringToObject(info, "name", "mcp-oauth-client-c-example");
    cJSON_AddStringToObject(info, "version", MCP_OAUTH_VERSION);
    cJSON *result = request(s, "initialize", params, &whole);
    if (!result)
        return -1;
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(result, "protocolVersion");
    const cJSON *server = cJSON_GetObjectItemCaseSensitive(result, "serverInfo");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(server, "name");
    const cJSON *sversion = cJSON_GetObjectItemCaseSensitive(server, "version");
    note("server: %s %s, protocol version %s", cJSON_IsString(name) ? name->valuestring : "?",
         cJSON_IsString(sversion) ? sversion->valuestring : "",
         cJSON_IsString(version) ? version->valuestring : "?");
    s->protocol_version = strdup(cJSON_IsString(version) ? version->valuestring : o->protocol_version);
    cJSON_Delete(whole);

    step("notifications/initialized");
    return notify(s, "notifications/initialized");
}

static int run(struct session *s)
{
    const struct options *o = s->opts;
    cJSON *whole = NULL;
    cJSON *params, *result;

    if (initialize(s) != 0)
        return -1;

    step("tools/list");
    result = request(s, "tools/list", NULL, &whole);
    if (!result)
        return -1;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(result, "tools");
    const cJSON *tool;
    char *chosen = o->call_tool ? strdup(o->call_tool) : NULL;
    note("%d tool(s):", cJSON_GetArraySize(tools));
    cJSON_ArrayForEach(tool, tools)
    {
        const cJSON *tname = cJSON_GetObjectItemCaseSensitive(tool, "name");
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(tool, "description");
        if (!cJSON_IsString(tname))
            continue;
        note("  %-16s %s", tname->valuestring, cJSON_IsString(desc) ? desc->valuestring : "");
        if (!chosen && !o->no_call && needs_no_arguments(tool))
            chosen = strdup(tname->valuestring);
    }
    cJSON_Delete(whole);

    if (o->no_call || !chosen) {
        if (!o->no_call)
            note("no tool without required arguments; use --call NAME --args JSON");
        free(chosen);
        return 0;
    }
    const char *args_json = o->call_args ? o->call_args : "{}";
    step("tools/call %s %s", chosen, args_json);
    cJSON *args = cJSON_Parse(args_json);
    if (!cJSON_IsObject(args)) {
        fprintf(stderr, "error: --args must be a JSON object\n");
        cJSON_Delete(args);
        free(chosen);
        return -1;
    }
    params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "name", chosen);
    cJSON_AddItemToObject(params, "arguments", args);
    free(chosen);
    result = request(s, "tools/call", params, &whole);
    if (!result)
        return -1;
    print_content(result);
    cJSON_Delete(whole);
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    if (!o.quiet)
        mcp_oauth_set_log_callback(on_log, NULL, o.verbose ? MCP_OAUTH_LOG_LEVEL_DEBUG : MCP_OAUTH_LOG_LEVEL_INFO);

    step("libmcp_oauth %s; MCP server %s", mcp_oauth_version(), o.server_url);
    struct session s = {.opts = &o};
    s.provider = make_provider(&o);
    if (!s.provider) {
        curl_global_cleanup();
        return 1;
    }
    if (o.client_credentials)
        note("authorization: client credentials grant as %s", o.client_id);
    else if (o.headless)
        note("authorization: headless redirect handler");
    else
        note("authorization: browser + loopback receiver at %s", mcp_oauth_provider_redirect_uri(s.provider));
    note("token storage: %s", o.memory_store ? "memory" : (o.token_dir ? o.token_dir : "the default file store"));

    s.curl = curl_easy_init();
    int rc = s.curl ? run(&s) : -1;
    if (rc == 0)
        step("done");

    curl_easy_cleanup(s.curl);
    free(s.session_id);
    free(s.protocol_version);
    mcp_oauth_provider_free(s.provider);
    mcp_oauth_set_log_callback(NULL, NULL, MCP_OAUTH_LOG_LEVEL_OFF);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}
