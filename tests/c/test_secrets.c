/*
 * No secret in any log message or error, through the C API: a full flow of
 * every grant against the real peers with the process-wide log callback and
 * each provider's log options at MCP_OAUTH_LOG_LEVEL_TRACE, every error's
 * display, message and OAuth fields kept. The OAuth requests go through a
 * host transport (libcurl) that records each exchange, so the secrets
 * actually used can be collected from the wire; tests/c/scan_secrets.py
 * then looks for each of them, and any 12-character window of one, in the
 * captured text (tests/c/run.sh runs both).
 *
 * Flows: the authorization-code flow with PKCE and dynamic registration
 * (public; confidential with client_secret_basic and client_secret_post),
 * refresh with rotation, log-out with revocation; client credentials with a
 * secret (DPoP-bound with a PEM key) and with private_key_jwt; enterprise
 * authorization (ID token exchanged at the IdP, the ID-JAG presented with
 * the JWT-bearer grant). Errors: a client secret the server never issued, a
 * storage that cannot write, a 401 refusing a token the host sent.
 *
 * Environment (run.sh sets it): MCP_URL, ISSUER, CONTROL_URL, BROWSER,
 * KEYS_DIR (core/tests/keys), SECRETS_DIR (where the record goes: wire.jsonl,
 * known.tsv, log.txt, printed.txt).
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "check.h"

static const char *mcp_url, *issuer, *control_url, *keys_dir;
static FILE *wire, *known, *logf, *printed;
static pthread_mutex_t record_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int log_lines;

/* The public half of core/tests/keys/ec-pkcs8.pem, for its registration. */
static const char *PKJWT_JWK = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"sig\","
                               "\"x\":\"JBGCvGimhIzW1f4_QPeAP8AUZ-R1MssHDsGbhoFNrWU\","
                               "\"y\":\"lks6i0QftXF6dR7pRSyDYMuy3Vr01BVrDTLeDP3rT4I\"}";

static void on_log(void *userdata, mcp_oauth_log_level level, const char *target, const char *message)
{
    pthread_mutex_lock(&record_mu);
    fprintf(logf, "%s %u %s %s\n", (const char *)userdata, (unsigned)level, target, message);
    pthread_mutex_unlock(&record_mu);
    atomic_fetch_add(&log_lines, 1);
}

static void note_known(const char *what, const char *value)
{
    if (!value || !*value)
        return;
    pthread_mutex_lock(&record_mu);
    fprintf(known, "%s\t%s\n", what, value);
    pthread_mutex_unlock(&record_mu);
}

static void print_text(const char *label, const char *text)
{
    if (!text)
        return;
    pthread_mutex_lock(&record_mu);
    fprintf(printed, "%s: %s\n", label, text);
    pthread_mutex_unlock(&record_mu);
}

/* Everything an error says, as a host would print or log it; then free it. */
static void print_error(mcp_oauth_error *err)
{
    if (!err)
        return;
    print_text("display", mcp_oauth_error_display(err));
    print_text("message", mcp_oauth_error_message(err));
    print_text("kind", mcp_oauth_error_kind(err));
    print_text("step", mcp_oauth_error_step(err));
    print_text("url", mcp_oauth_error_url(err));
    print_text("oauth error", mcp_oauth_error_oauth_error(err));
    print_text("oauth description", mcp_oauth_error_oauth_error_description(err));
    print_text("oauth uri", mcp_oauth_error_oauth_error_uri(err));
    mcp_oauth_error_free(err);
}

/* ------------------------------------------------ the recording transport */

struct buf {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;
    size_t len = size * n;
    b->data = realloc(b->data, b->len + len + 1);
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = 0;
    return len;
}

struct headers {
    char *names[32];
    char *values[32];
    int count;
};

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
    struct headers *h = userdata;
    size_t len = size * n;
    const char *colon = memchr(p, ':', len);
    if (!strncmp(p, "HTTP/", 5)) {
        for (int i = 0; i < h->count; i++) {
            free(h->names[i]);
            free(h->values[i]);
        }
        h->count = 0;
    } else if (colon && h->count < 32) {
        const char *v = colon + 1;
        while (v < p + len && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(p + len - v);
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
            vlen--;
        h->names[h->count] = strndup(p, (size_t)(colon - p));
        h->values[h->count] = strndup(v, vlen);
        h->count++;
    }
    return len;
}

/* Sends the request synchronously and answers it before returning (the ABI
 * allows it), writing the exchange to wire.jsonl. */
static int record_send(void *userdata, mcp_oauth_http_request *req)
{
    (void)userdata;
    cJSON *ex = cJSON_CreateObject();
    cJSON *hs = cJSON_AddArrayToObject(ex, "headers");
    CURL *curl = curl_easy_init();
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < mcp_oauth_http_request_header_count(req); i++) {
        const char *name = mcp_oauth_http_request_header_name(req, i);
        const char *value = mcp_oauth_http_request_header_value(req, i);
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(name));
        cJSON_AddItemToArray(pair, cJSON_CreateString(value));
        cJSON_AddItemToArray(hs, pair);
        size_t n = strlen(name) + strlen(value) + 3;
        char *line = malloc(n);
        snprintf(line, n, "%s: %s", name, value);
        list = curl_slist_append(list, line);
        free(line);
    }
    size_t body_len = 0;
    const uint8_t *body = mcp_oauth_http_request_body(req, &body_len);
    char *request_body = strndup(body ? (const char *)body : "", body_len);
    cJSON_AddStringToObject(ex, "request", request_body);
    struct buf resp = {0};
    struct headers rh = {.count = 0};
    curl_easy_setopt(curl, CURLOPT_URL, mcp_oauth_http_request_url(req));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)mcp_oauth_http_request_timeout_ms(req));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &rh);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (!strcmp(mcp_oauth_http_request_method(req), "POST")) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request_body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    cJSON_AddStringToObject(ex, "response", resp.data ? resp.data : "");
    if (rc != CURLE_OK)
        mcp_oauth_http_request_fail(req, MCP_OAUTH_NETWORK_FAILURE_OTHER, curl_easy_strerror(rc));
    else
        mcp_oauth_http_request_respond(req, (uint16_t)status, (const char *const *)rh.names,
                                       (const char *const *)rh.values, (size_t)rh.count,
                                       (const uint8_t *)resp.data, resp.len);
    char *line = cJSON_PrintUnformatted(ex);
    pthread_mutex_lock(&record_mu);
    fprintf(wire, "%s\n", line);
    pthread_mutex_unlock(&record_mu);
    free(line);
    cJSON_Delete(ex);
    for (int i = 0; i < rh.count; i++) {
        free(rh.names[i]);
        free(rh.values[i]);
    }
    free(resp.data);
    free(request_body);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return 0;
}

/* ------------------------------------------------------ an in-memory store */

struct store {
    pthread_mutex_t mu;
    char *tokens, *client;
    bool fail_writes;
};

static int store_get(struct store *s, char **slot, mcp_oauth_answer *answer)
{
    pthread_mutex_lock(&s->mu);
    if (*slot)
        mcp_oauth_answer_set(answer, *slot);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void note_document(const char *json);

static int store_set(struct store *s, char **slot, const char *json)
{
    note_document(json);
    if (s->fail_writes)
        return 28; /* ENOSPC, say */
    pthread_mutex_lock(&s->mu);
    free(*slot);
    *slot = strdup(json);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int get_tokens(void *u, mcp_oauth_answer *a) { return store_get(u, &((struct store *)u)->tokens, a); }
static int set_tokens(void *u, const char *j) { return store_set(u, &((struct store *)u)->tokens, j); }
static int get_client(void *u, mcp_oauth_answer *a) { return store_get(u, &((struct store *)u)->client, a); }
static int set_client(void *u, const char *j) { return store_set(u, &((struct store *)u)->client, j); }

/* Records the secrets of a stored JSON document (tokens or client). */
static void note_document(const char *json)
{
    cJSON *doc = json ? cJSON_Parse(json) : NULL;
    const char *fields[] = {"access_token", "refresh_token", "client_secret", "id_token"};
    for (size_t i = 0; doc && i < sizeof fields / sizeof fields[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, fields[i]);
        if (cJSON_IsString(v))
            note_known(fields[i], v->valuestring);
    }
    cJSON_Delete(doc);
}

/* Marks the stored tokens as expired a minute ago. */
static void expire(struct store *s)
{
    pthread_mutex_lock(&s->mu);
    cJSON *doc = cJSON_Parse(s->tokens);
    cJSON_DeleteItemFromObject(doc, "expires_at");
    cJSON_AddNumberToObject(doc, "expires_at", (double)time(NULL) - 60);
    free(s->tokens);
    s->tokens = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    pthread_mutex_unlock(&s->mu);
}

/* -------------------------------------------------------------- providers */

struct config {
    const char *metadata;
    const char *client_id, *client_secret, *auth_method;
    bool client_credentials;
    const char *dpop_key_pem, *private_key_pem;
    const char *idp_endpoint, *id_token;
    struct store *store;
};

static mcp_oauth_provider *build(const char *label, const struct config *c)
{
    mcp_oauth_config_builder *b = mcp_oauth_config_builder_new();
    mcp_oauth_error *err = NULL;
    CHECK(mcp_oauth_config_builder_set_server_url(b, mcp_url) == MCP_OAUTH_RESULT_OK, "%s: server url", label);
    if (c->metadata)
        CHECK(mcp_oauth_config_builder_set_client_metadata_json(b, c->metadata) == MCP_OAUTH_RESULT_OK,
              "%s: metadata", label);
    if (c->client_id)
        CHECK(mcp_oauth_config_builder_set_static_client(b, c->client_id, c->client_secret, c->auth_method, issuer) ==
                  MCP_OAUTH_RESULT_OK,
              "%s: static client", label);
    if (c->client_credentials)
        CHECK(mcp_oauth_config_builder_set_grant(b, MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, NULL) == MCP_OAUTH_RESULT_OK,
              "%s: grant", label);
    if (c->dpop_key_pem)
        CHECK(mcp_oauth_config_builder_set_dpop_key(b, c->dpop_key_pem, "ES256") == MCP_OAUTH_RESULT_OK,
              "%s: DPoP key", label);
    if (c->private_key_pem) {
        CHECK(mcp_oauth_config_builder_set_private_key_jwt(b, c->private_key_pem, "ES256", NULL, &err) ==
                  MCP_OAUTH_RESULT_OK,
              "%s: private_key_jwt", label);
        print_error(err);
        err = NULL;
    }
    if (c->idp_endpoint)
        CHECK(mcp_oauth_config_builder_set_identity_assertion(b, c->idp_endpoint, "idp-client", "idp-secret",
                                                              c->id_token) == MCP_OAUTH_RESULT_OK,
              "%s: identity assertion", label);
    if (!c->client_credentials && !c->idp_endpoint)
        CHECK(mcp_oauth_config_builder_set_loopback_handler(b, NULL, 30000) == MCP_OAUTH_RESULT_OK, "%s: loopback",
              label);
    mcp_oauth_storage_callbacks s = MCP_OAUTH_STORAGE_CALLBACKS_INIT;
    s.userdata = c->store;
    s.get_tokens = get_tokens;
    s.set_tokens = set_tokens;
    s.get_client_info = get_client;
    s.set_client_info = set_client;
    CHECK(mcp_oauth_config_builder_set_storage_callbacks(b, &s, NULL) == MCP_OAUTH_RESULT_OK, "%s: storage", label);
    mcp_oauth_transport_callbacks t = MCP_OAUTH_TRANSPORT_CALLBACKS_INIT;
    t.send = record_send;
    CHECK(mcp_oauth_config_builder_set_transport_callbacks(b, &t, NULL) == MCP_OAUTH_RESULT_OK, "%s: transport",
          label);
    mcp_oauth_log_options lo = MCP_OAUTH_LOG_OPTIONS_INIT;
    lo.userdata = (void *)"provider";
    lo.callback = on_log;
    lo.max_level = MCP_OAUTH_LOG_LEVEL_TRACE;
    CHECK(mcp_oauth_config_builder_set_log_options(b, &lo, NULL) == MCP_OAUTH_RESULT_OK, "%s: log options", label);
    CHECK(mcp_oauth_config_builder_set_timeout_ms(b, 20000, NULL) == MCP_OAUTH_RESULT_OK, "%s: timeout", label);
    mcp_oauth_provider *p = NULL;
    mcp_oauth_result rc = mcp_oauth_config_builder_build(b, &p, &err);
    CHECK(rc == MCP_OAUTH_RESULT_OK && p, "%s: build", label);
    print_error(err);
    return p;
}

/* get_headers for the MCP server, running the flow first when no token is
 * held; records the headers' secrets. */
static bool headers(const char *label, mcp_oauth_provider *p, bool authorize_first)
{
    mcp_oauth_error *err = NULL;
    if (authorize_first) {
        mcp_oauth_result rc = mcp_oauth_provider_authorize(p, &err);
        CHECK(rc == MCP_OAUTH_RESULT_OK, "%s: authorize (%s)", label, err ? mcp_oauth_error_display(err) : "ok");
        print_error(err);
        err = NULL;
    }
    mcp_oauth_headers *h = NULL;
    mcp_oauth_result rc = mcp_oauth_provider_get_headers(p, "POST", mcp_url, &h, &err);
    bool ok = rc == MCP_OAUTH_RESULT_OK && h && mcp_oauth_headers_authorization(h);
    for (size_t i = 0; h && i < mcp_oauth_headers_count(h); i++)
        note_known(mcp_oauth_headers_name(h, i), mcp_oauth_headers_value(h, i));
    mcp_oauth_headers_free(h);
    print_error(err);
    return ok;
}

/* POST JSON; returns the parsed answer. */
static cJSON *post_json(const char *url, const char *body)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *list = curl_slist_append(NULL, "Content-Type: application/json");
    struct buf out = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(curl);
    cJSON *doc = rc == CURLE_OK && out.data ? cJSON_Parse(out.data) : NULL;
    free(out.data);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return doc;
}

/* Pre-registers a client out of band; returns its ID (and secret). */
static char *register_client(const char *grant, const char *method, const char *extra, char **secret_out)
{
    char body[2048], url[512];
    snprintf(body, sizeof body,
             "{\"grant_types\":[\"%s\"],\"response_types\":[],\"redirect_uris\":[],\"application_type\":\"web\","
             "\"token_endpoint_auth_method\":\"%s\"%s}",
             grant, method, extra ? extra : "");
    snprintf(url, sizeof url, "%s/reg", issuer);
    cJSON *doc = post_json(url, body);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "client_id");
    const cJSON *secret = cJSON_GetObjectItemCaseSensitive(doc, "client_secret");
    const cJSON *rat = cJSON_GetObjectItemCaseSensitive(doc, "registration_access_token");
    char *out = cJSON_IsString(id) ? strdup(id->valuestring) : NULL;
    if (secret_out)
        *secret_out = cJSON_IsString(secret) ? strdup(secret->valuestring) : NULL;
    if (cJSON_IsString(secret))
        note_known("pre-registered client secret", secret->valuestring);
    if (cJSON_IsString(rat))
        note_known("registration access token", rat->valuestring);
    cJSON_Delete(doc);
    CHECK(out != NULL, "registered a %s client (%s)", grant, method);
    return out;
}

static char *read_file(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        on_data(chunk, 1, n, &b);
    fclose(f);
    pthread_mutex_lock(&record_mu);
    fprintf(known, "pem file\t%s\n", path);
    pthread_mutex_unlock(&record_mu);
    return b.data;
}

static void free_store(struct store *s)
{
    free(s->tokens);
    free(s->client);
}

int main(void)
{
    mcp_url = need_env("MCP_URL");
    issuer = need_env("ISSUER");
    control_url = need_env("CONTROL_URL");
    keys_dir = need_env("KEYS_DIR");
    need_env("BROWSER");
    const char *dir = need_env("SECRETS_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/wire.jsonl", dir);
    wire = fopen(path, "w");
    snprintf(path, sizeof path, "%s/known.tsv", dir);
    known = fopen(path, "w");
    snprintf(path, sizeof path, "%s/log.txt", dir);
    logf = fopen(path, "w");
    snprintf(path, sizeof path, "%s/printed.txt", dir);
    printed = fopen(path, "w");
    if (!wire || !known || !logf || !printed) {
        CHECK(0, "open the record files in %s", dir);
        return check_finish();
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CHECK(mcp_oauth_set_log_callback(on_log, (void *)"process", MCP_OAUTH_LOG_LEVEL_TRACE) == MCP_OAUTH_RESULT_OK,
          "the process-wide log callback at TRACE");
    int flows = 0;

    /* The authorization-code flow with dynamic registration: public, then
     * confidential with each secret method. */
    const char *methods[] = {NULL, "client_secret_basic", "client_secret_post"};
    for (int i = 0; i < 3; i++) {
        char meta[512];
        snprintf(meta, sizeof meta,
                 "{\"client_name\": \"c secrets test\", \"redirect_uris\": [\"http://127.0.0.1:0/callback\"], "
                 "\"grant_types\": [\"authorization_code\", \"refresh_token\"]%s%s%s}",
                 methods[i] ? ", \"token_endpoint_auth_method\": \"" : "", methods[i] ? methods[i] : "",
                 methods[i] ? "\"" : "");
        struct store s = {.mu = PTHREAD_MUTEX_INITIALIZER};
        struct config c = {.metadata = meta, .store = &s};
        mcp_oauth_provider *p = build("authorization code", &c);
        CHECK(p && headers("authorization code", p, true), "authorization code (%s): a token",
              methods[i] ? methods[i] : "public");
        note_document(s.tokens);
        note_document(s.client);
        flows++;
        if (!methods[i] && s.tokens) {
            /* Refresh with rotation: a new provider over the expired tokens. */
            char *before = strdup(s.tokens);
            expire(&s);
            mcp_oauth_provider *p2 = build("refresh", &c);
            CHECK(p2 && headers("refresh", p2, false), "refresh: a token");
            CHECK(s.tokens && strcmp(before, s.tokens) != 0, "refresh: new tokens stored");
            note_document(s.tokens);
            free(before);
            /* A 401 refusing a token the host sent: the provider authorizes again. */
            const char *bogus = "Bearer YSB0b2tlbiB0aGlzIHNlcnZlciBuZXZlciBpc3N1ZWQsIDAxMjM0NTY3ODk";
            note_known("rejected access token", bogus + 7);
            const char *names[] = {"www-authenticate"};
            const char *values[] = {"Bearer error=\"invalid_token\", error_description=\"the token is not valid\""};
            bool retry = false;
            mcp_oauth_headers *again = NULL;
            mcp_oauth_error *err = NULL;
            mcp_oauth_provider_handle_response(p2, "POST", mcp_url, bogus, 401, names, values, 1, &retry, &again,
                                               &err);
            for (size_t k = 0; again && k < mcp_oauth_headers_count(again); k++)
                note_known(mcp_oauth_headers_name(again, k), mcp_oauth_headers_value(again, k));
            mcp_oauth_headers_free(again);
            print_error(err);
            note_document(s.tokens);
            /* Log-out: revocation at the authorization server. */
            bool revoked = false;
            err = NULL;
            CHECK(mcp_oauth_provider_logout(p2, &revoked, &err) == MCP_OAUTH_RESULT_OK && revoked,
                  "log-out revokes");
            print_error(err);
            mcp_oauth_provider_free(p2);
            flows += 3;
        }
        mcp_oauth_provider_free(p);
        free_store(&s);
    }

    /* Client credentials: client_secret_basic with a DPoP key from a PEM
     * file, then client_secret_post. */
    char *dpop_pem = read_file(keys_dir, "ec-sec1.pem");
    const char *cc_methods[] = {"client_secret_basic", "client_secret_post"};
    for (int i = 0; i < 2; i++) {
        char *secret = NULL;
        char *id = register_client("client_credentials", cc_methods[i], NULL, &secret);
        struct store s = {.mu = PTHREAD_MUTEX_INITIALIZER};
        struct config c = {.client_id = id,
                           .client_secret = secret,
                           .auth_method = cc_methods[i],
                           .client_credentials = true,
                           .dpop_key_pem = i == 0 ? dpop_pem : NULL,
                           .store = &s};
        mcp_oauth_provider *p = build("client credentials", &c);
        CHECK(p && headers("client credentials", p, true), "client credentials (%s): a token", cc_methods[i]);
        note_document(s.tokens);
        mcp_oauth_provider_free(p);
        free_store(&s);
        free(id);
        free(secret);
        flows++;
    }

    /* private_key_jwt with the key of core/tests/keys/ec-pkcs8.pem. */
    char *key_pem = read_file(keys_dir, "ec-pkcs8.pem");
    char extra[512];
    snprintf(extra, sizeof extra, ",\"token_endpoint_auth_signing_alg\":\"ES256\",\"jwks\":{\"keys\":[%s]}", PKJWT_JWK);
    char *id = register_client("client_credentials", "private_key_jwt", extra, NULL);
    {
        struct store s = {.mu = PTHREAD_MUTEX_INITIALIZER};
        struct config c = {.client_id = id,
                           .auth_method = "private_key_jwt",
                           .client_credentials = true,
                           .private_key_pem = key_pem,
                           .store = &s};
        mcp_oauth_provider *p = build("private_key_jwt", &c);
        CHECK(p && headers("private_key_jwt", p, true), "private_key_jwt: a token");
        note_document(s.tokens);
        mcp_oauth_provider_free(p);
        free_store(&s);
        flows++;
    }
    free(id);

    /* Enterprise authorization: the ID token exchanged at the peers' IdP. */
    char *secret = NULL;
    id = register_client("urn:ietf:params:oauth:grant-type:jwt-bearer", "client_secret_post", NULL, &secret);
    char url[512], body[512];
    snprintf(url, sizeof url, "%s/id-token", control_url);
    snprintf(body, sizeof body, "{\"sub\":\"alice\",\"client_id\":\"%s\"}", id ? id : "");
    cJSON *doc = post_json(url, body);
    const cJSON *id_token = cJSON_GetObjectItemCaseSensitive(doc, "id_token");
    CHECK(cJSON_IsString(id_token), "the IdP issued an ID token");
    if (cJSON_IsString(id_token)) {
        note_known("ID token", id_token->valuestring);
        note_known("IdP client secret", "idp-secret");
        snprintf(url, sizeof url, "%s/idp/token", issuer);
        struct store s = {.mu = PTHREAD_MUTEX_INITIALIZER};
        struct config c = {.client_id = id,
                           .client_secret = secret,
                           .auth_method = "client_secret_post",
                           .idp_endpoint = url,
                           .id_token = id_token->valuestring,
                           .store = &s};
        mcp_oauth_provider *p = build("enterprise", &c);
        CHECK(p && headers("enterprise", p, true), "enterprise authorization: a token");
        note_document(s.tokens);
        mcp_oauth_provider_free(p);
        free_store(&s);
        flows++;
    }
    cJSON_Delete(doc);
    free(id);
    free(secret);

    /* Errors: a client secret the server never issued; a storage that
     * cannot write. */
    id = register_client("client_credentials", "client_secret_basic", NULL, NULL);
    {
        const char *wrong = "YSBzZWNyZXQgdGhlIHNlcnZlciBuZXZlciBpc3N1ZWQh";
        note_known("wrong client secret", wrong);
        struct store s = {.mu = PTHREAD_MUTEX_INITIALIZER};
        struct config c = {.client_id = id,
                           .client_secret = wrong,
                           .auth_method = "client_secret_basic",
                           .client_credentials = true,
                           .store = &s};
        mcp_oauth_provider *p = build("wrong secret", &c);
        mcp_oauth_error *err = NULL;
        mcp_oauth_result rc = p ? mcp_oauth_provider_authorize(p, &err) : MCP_OAUTH_RESULT_OK;
        CHECK(rc != MCP_OAUTH_RESULT_OK && err && mcp_oauth_error_oauth_error(err) &&
                  !strcmp(mcp_oauth_error_oauth_error(err), "invalid_client"),
              "a wrong secret is refused with invalid_client (%s)", mcp_oauth_result_name(rc));
        print_error(err);
        mcp_oauth_provider_free(p);
        free_store(&s);
    }
    free(id);
    {
        struct store s = {.mu = PTHREAD_MUTEX_INITIALIZER, .fail_writes = true};
        struct config c = {.metadata = "{\"client_name\": \"c secrets test\", \"redirect_uris\": "
                                       "[\"http://127.0.0.1:0/callback\"]}",
                           .store = &s};
        mcp_oauth_provider *p = build("failing storage", &c);
        mcp_oauth_error *err = NULL;
        CHECK(p && mcp_oauth_provider_authorize(p, &err) == MCP_OAUTH_RESULT_STORAGE,
              "a storage that cannot write fails the flow");
        print_error(err);
        mcp_oauth_provider_free(p);
        free_store(&s);
    }
    flows += 2;

    free(dpop_pem);
    free(key_pem);
    printf("# %d flows, %d log messages\n", flows, atomic_load(&log_lines));
    CHECK(atomic_load(&log_lines) > 0, "log messages were captured");
    mcp_oauth_set_log_callback(NULL, NULL, MCP_OAUTH_LOG_LEVEL_OFF);
    fclose(wire);
    fclose(known);
    fclose(logf);
    fclose(printed);
    curl_global_cleanup();
    return check_finish();
}
