// Test authorization server: node-oidc-provider configured the way an MCP
// deployment would configure it, with headless approval so that tests can run
// the authorization code flow without a browser.
//
// Run with Node >= 22 (the repo installs one: tests/peers/node_modules/node/bin/node):
//
//   node tests/peers/oidc/server.mjs --port 0 --resource http://127.0.0.1:8001/mcp
//
// Options (each also settable through the environment variable in brackets):
//   --port N                 listen port on 127.0.0.1, 0 = ephemeral        [OIDC_PORT]          default 0
//   --resource URL           allowed RFC 8707 resource (repeatable)        [OIDC_RESOURCES]     space separated
//   --access-token-ttl S     access token lifetime, seconds                [OIDC_ACCESS_TOKEN_TTL]  default 3600
//   --refresh-token-ttl S    refresh token lifetime, seconds               [OIDC_REFRESH_TOKEN_TTL] default 86400
//   --scopes "a b c"         scopes of the resource server(s)              [OIDC_SCOPES]
//                            default "mcp:read mcp:write mcp:admin"
//
// Behaviour:
//   issuer http://127.0.0.1:<port>; metadata at /.well-known/oauth-authorization-server
//   and /.well-known/openid-configuration; JWKS at /jwks.
//   Open dynamic client registration at /reg (no initial access token).
//   PKCE S256 required for every authorization code request; `iss` in every
//   authorization response (RFC 9207).
//   Access tokens are ES256 JWTs (typ at+jwt) whose `aud` is the requested
//   resource; only the resources given with --resource are accepted (exact
//   string match), others get invalid_target. The token and refresh requests
//   may omit `resource` (the granted one is used).
//   Refresh tokens go to every client that registered the refresh_token grant
//   (offline_access is not needed); they rotate on every use, and presenting a
//   used refresh token again revokes the whole grant (invalid_grant).
//   Token endpoint auth: none, client_secret_basic, client_secret_post,
//   private_key_jwt. Client credentials grant enabled (needs `resource`).
//   DPoP (RFC 9449): a token request with a DPoP proof (ES256) gets a token bound
//   to the proof's key (token_type DPoP, `cnf.jkt` in the JWT access token).
//   Nonces are offered (a `DPoP-Nonce` header when the proof's nonce is missing or
//   old) and required when the dpop control says so.
//   Client ID Metadata Documents enabled. A CIMD client_id must be an https URL;
//   for tests, an https client_id on a loopback host (127.0.0.1, localhost, [::1])
//   is fetched over plain http from the same host and port.
//   Headless approval: a GET of the authorization URL without cookies logs a
//   test user ("test-user") in and grants exactly the requested scopes, answering
//   303 to redirect_uri?code=...&state=...&iss=... . No consent or login page,
//   also not with prompt=login or prompt=consent.
//   Device authorization grant (RFC 8628) at /device/auth; the person's part is
//   oidc-provider's own pages: the user-code page GET /device (or
//   /device?user_code=...), its confirmation form, then a login interaction
//   GET /interaction/<uid> whose form (a "Sign in as test-user" button, or
//   "Deny") POSTs to /interaction/<uid>/login or /interaction/<uid>/abort,
//   and the success page. Codes live 600 s and are polled every 5 s.
//   Token revocation (RFC 7009) at /token/revocation.
//
// Test controls (same port):
//   POST /__control/deny-next   the next authorization request is answered with an
//                               error redirect (redirect_uri?error=access_denied&state&iss).
//                               Optional JSON body {"error": "...", "error_description": "...",
//                               "count": N} to pick another OAuth error code or deny N requests.
//   POST /__control/resources   JSON body {"resource": url} or {"resources": [...]}: allow more
//                               resources (lets a launcher start this server before the
//                               MCP server whose URL it does not know yet).
//   POST /__control/token-fault JSON body {"mode": "503-json" | "502-html" | "hang" | "delay" | "off" | "release",
//                               "count": N, "retry_after": S, "ms": M}: the next N (default 1)
//                               POSTs to the token endpoint get a fault instead of (or, for
//                               "delay", before) the real answer: 503 with an OAuth error body
//                               (and Retry-After: S when given), 502 with an HTML page, no answer
//                               at all (the connection stays open until the client gives up), or
//                               the real answer after M ms. "off" clears it; "release" lets every
//                               delayed request through now.
//   POST /__control/access-token-ttl  JSON body {"seconds": N}: access tokens issued from now on
//                               live N seconds (tokens already issued keep their lifetime).
//   POST /__control/id-token, /__control/workload-token: signed tokens of the enterprise
//                               IdP and the workload platform (see enterprise.mjs), which
//                               also serves the IdP's token endpoint POST /idp/token and
//                               the JWT-bearer grant.
//   POST /__control/dpop        JSON body {"require_nonce": bool}: whether token requests with a
//                               DPoP proof must carry the server's nonce (answered 400
//                               use_dpop_nonce with a DPoP-Nonce header otherwise). Off at start.
//   POST /__control/reset       clears pending denials and token faults.
//   GET  /__control/state       JSON: pending denials, counters of authorizations, token
//                               requests by grant type (successes), token errors by error
//                               code, POSTs to the token endpoint (all, faulted ones too),
//                               GETs of the metadata (a client's discovery),
//                               the pending token fault, how many delayed requests wait, and
//                               the access token lifetime, and whether DPoP nonces are required.
//
// Prints exactly one line to stdout when listening:
//   READY {"issuer": "http://127.0.0.1:N", "port": N}
// Logs to stderr. Exits 0 on SIGTERM / SIGINT.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

import { installEnterprise, readText } from './enterprise.mjs';

const log = (...args) => console.error('[oidc]', ...args);

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string' },
    resource: { type: 'string', multiple: true },
    'access-token-ttl': { type: 'string' },
    'refresh-token-ttl': { type: 'string' },
    scopes: { type: 'string' },
  },
  strict: true,
});

const env = process.env;
const port = Number(opts.port ?? env.OIDC_PORT ?? 0);
const resources = new Set(
  opts.resource?.length ? opts.resource : (env.OIDC_RESOURCES ?? '').split(/\s+/).filter(Boolean),
);
const accessTokenTTL = Number(opts['access-token-ttl'] ?? env.OIDC_ACCESS_TOKEN_TTL ?? 3600);
const refreshTokenTTL = Number(opts['refresh-token-ttl'] ?? env.OIDC_REFRESH_TOKEN_TTL ?? 86400);
const rsScopes = (opts.scopes ?? env.OIDC_SCOPES ?? 'mcp:read mcp:write mcp:admin').split(/\s+/).filter(Boolean);

for (const [name, v] of [['port', port], ['access-token-ttl', accessTokenTTL], ['refresh-token-ttl', refreshTokenTTL]]) {
  if (!Number.isInteger(v) || v < 0) {
    log(`invalid --${name}`);
    process.exit(2);
  }
}
if (!resources.size) log('no --resource given yet: add some with POST /__control/resources');

// ---------------------------------------------------------------------------
// test controls state
const control = {
  denials: [], // queue of { error, error_description }
  authorizations: 0,
  tokenRequests: {}, // grant_type -> successful token requests
  tokenErrors: {}, // OAuth error code -> refused token requests
  tokenEndpointPosts: 0, // every POST to the token endpoint, faulted ones included
  metadataRequests: 0, // GETs of the authorization server metadata (either well-known URL)
  tokenFault: null, // { mode, remaining, retryAfter, ms }
  delayed: new Set(), // token requests held by the delay fault: { go }
  accessTokenTTL, // for access tokens issued from now on (POST /__control/access-token-ttl)
  dpopRequireNonce: false, // POST /__control/dpop
};

const METADATA_PATHS = new Set(['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']);
const TOKEN_FAULT_MODES = new Set(['503-json', '502-html', 'hang', 'delay']);
// A hanging response is dropped after this long at most (the client has given up by then).
const HANG_LIMIT_MS = 120_000;

// Applies the pending token fault to a POST to the token endpoint, if any. Returns
// true when the fault answered (or swallowed) the request; false to let it through,
// possibly after `next` is called later (delay).
function applyTokenFault(req, res, next) {
  const fault = control.tokenFault;
  if (!fault || fault.remaining <= 0) return false;
  fault.remaining -= 1;
  if (fault.remaining <= 0) control.tokenFault = null;
  log(`token fault ${fault.mode} (test control; ${fault.remaining} left)`);
  switch (fault.mode) {
    case '503-json': {
      req.resume();
      const body = JSON.stringify({ error: 'temporarily_unavailable', error_description: 'the token endpoint is down (test control)' });
      const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' };
      if (fault.retryAfter != null) headers['retry-after'] = String(fault.retryAfter);
      res.writeHead(503, headers);
      res.end(body);
      return true;
    }
    case '502-html': {
      req.resume();
      const body = '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>The upstream server did not answer (test control).</p></body></html>\n';
      res.writeHead(502, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    }
    case 'hang': {
      // Never answer: nothing runs meanwhile (no timer but the cap, no polling);
      // the socket is freed when the client closes it, or at the cap.
      req.resume();
      const cap = setTimeout(() => res.destroy(), HANG_LIMIT_MS);
      cap.unref();
      res.on('close', () => clearTimeout(cap));
      return true;
    }
    case 'delay': {
      let timer;
      const entry = {
        go: () => {
          clearTimeout(timer);
          control.delayed.delete(entry);
          next();
        },
      };
      timer = setTimeout(entry.go, fault.ms);
      control.delayed.add(entry);
      // A client that gives up takes its request with it: it never reaches the provider.
      res.on('close', () => {
        clearTimeout(timer);
        control.delayed.delete(entry);
      });
      return true;
    }
    default:
      return false;
  }
}

const ALLOWED_DENY_ERRORS = new Set([
  'access_denied', 'invalid_scope', 'server_error', 'temporarily_unavailable',
  'unauthorized_client', 'invalid_request', 'consent_required', 'login_required',
]);

// ---------------------------------------------------------------------------
// keys: ES256 for access tokens, RS256 for ID tokens (the OIDC default alg)
const ecJwk = { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'es256-' + randomBytes(4).toString('hex') };
const rsaJwk = { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'rs256-' + randomBytes(4).toString('hex') };

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

// Headless: no login or consent page. The consent check for native clients
// and the explicit prompt=login / prompt=consent checks are removed; the
// session is logged in during the authorization request (see extraParams).
const policy = interactionPolicy.base();
policy.get('consent').checks.remove('native_client_prompt');
policy.get('consent').checks.remove('consent_prompt');
policy.get('login').checks.remove('login_prompt');

let issuer; // set once listening

const configuration = {
  clients: [],
  jwks: { keys: [rsaJwk, ecJwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  responseTypes: ['code'],
  // Listed here too so that DCR accepts them in a client's `scope` and discovery
  // advertises them; access tokens carry them only for a resource server.
  scopes: ['openid', 'offline_access', ...rsScopes],
  claims: { openid: ['sub'] },
  pkce: { required: () => true },
  clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  interactions: {
    policy,
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  // Runs during every authorization request after the client, redirect_uri,
  // PKCE and resource checks, before the session's account is loaded.
  extraParams: {
    async __headless(ctx) {
      if (ctx.oidc.route !== 'authorization') return;
      control.authorizations += 1;
      const denial = control.denials.shift();
      if (denial) {
        log(`denying authorization request with ${denial.error} (test control)`);
        if (denial.error === 'access_denied') throw new errors.AccessDenied(denial.error_description);
        throw new errors.CustomOIDCProviderError(denial.error, denial.error_description);
      }
      if (!ctx.oidc.session.accountId) {
        ctx.oidc.session.loginAccount({ accountId: 'test-user' });
      }
    },
  },
  // A new grant per authorization request, holding exactly what was asked for.
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    const oidcScopes = [...oidc.requestParamOIDCScopes];
    if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
    for (const [indicator, rs] of Object.entries(oidc.resourceServers ?? {})) {
      const granted = [...oidc.requestParamScopes].filter((s) => rs.scopes.has(s));
      if (granted.length) grant.addResourceScope(indicator, granted.join(' '));
    }
    await grant.save();
    return grant;
  },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: () => control.accessTokenTTL,
    ClientCredentials: () => control.accessTokenTTL,
    RefreshToken: refreshTokenTTL,
    AuthorizationCode: 60,
    Grant: Math.max(refreshTokenTTL, accessTokenTTL, 600),
    Session: Math.max(refreshTokenTTL, 600),
    IdToken: 3600,
    Interaction: 600,
    DeviceCode: 600,
  },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true, initialAccessToken: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (!resources.has(resource)) throw new errors.InvalidTarget(`resource ${resource} is not known here`);
        return {
          scope: rsScopes.join(' '),
          audience: resource,
          accessTokenTTL: control.accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
    clientIdMetadataDocument: { enabled: true, ack: 'draft-02' },
    deviceFlow: { enabled: true },
    dPoP: {
      enabled: true,
      nonceSecret: randomBytes(32),
      requireNonce: () => control.dpopRequireNonce,
    },
  },
  // CIMD documents on loopback hosts are fetched over plain http (test servers
  // have no TLS certificate); everything else goes through the default fetch.
  fetch: (url, options) => {
    const u = new URL(url);
    if (u.protocol === 'https:' && LOOPBACK_HOSTS.has(u.hostname)) {
      u.protocol = 'http:';
      const { dispatcher: _ssrfGuard, ...rest } = options;
      log(`fetching ${url} as ${u.href} (loopback test document)`);
      return globalThis.fetch(u.href, rest);
    }
    return globalThis.fetch(url, options);
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
};

// ---------------------------------------------------------------------------
async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  return JSON.parse(text);
}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function faultState() {
  const f = control.tokenFault;
  if (!f) return null;
  return { mode: f.mode, remaining: f.remaining, retry_after: f.retryAfter, ms: f.mode === 'delay' ? f.ms : null };
}

async function handleControl(req, res) {
  const path = new URL(req.url, 'http://x').pathname;
  try {
    if (req.method === 'POST' && path === '/__control/deny-next') {
      const body = await readBody(req);
      const error = body.error ?? 'access_denied';
      if (!ALLOWED_DENY_ERRORS.has(error)) return sendJson(res, 400, { error: `unsupported error ${error}` });
      const count = Number(body.count ?? 1);
      for (let i = 0; i < count; i++) {
        control.denials.push({ error, error_description: body.error_description ?? 'the test user denied the request' });
      }
      return sendJson(res, 200, { pending_denials: control.denials.length });
    }
    if (req.method === 'POST' && path === '/__control/resources') {
      const body = await readBody(req);
      const list = Array.isArray(body.resources) ? body.resources : [body.resource];
      if (!list.length || list.some((r) => typeof r !== 'string' || !URL.canParse(r))) {
        return sendJson(res, 400, { error: 'expected {"resource": url} or {"resources": [url, ...]}' });
      }
      list.forEach((r) => resources.add(r));
      log(`allowed resources now: ${[...resources].join(' ')}`);
      return sendJson(res, 200, { resources: [...resources] });
    }
    if (req.method === 'POST' && path === '/__control/token-fault') {
      const body = await readBody(req);
      const mode = body.mode ?? '503-json';
      if (mode === 'off') {
        control.tokenFault = null;
        return sendJson(res, 200, { token_fault: null });
      }
      if (mode === 'release') {
        const held = [...control.delayed];
        held.forEach((e) => e.go());
        return sendJson(res, 200, { released: held.length, token_fault: faultState() });
      }
      if (!TOKEN_FAULT_MODES.has(mode)) return sendJson(res, 400, { error: `unsupported mode ${mode}` });
      const count = Number(body.count ?? 1);
      const retryAfter = body.retry_after == null ? null : Number(body.retry_after);
      const ms = Number(body.ms ?? 1000);
      if (!Number.isInteger(count) || count < 1) return sendJson(res, 400, { error: 'count must be a positive integer' });
      if (retryAfter != null && !(Number.isInteger(retryAfter) && retryAfter >= 0)) {
        return sendJson(res, 400, { error: 'retry_after must be a non-negative integer' });
      }
      if (!(Number.isInteger(ms) && ms >= 0)) return sendJson(res, 400, { error: 'ms must be a non-negative integer' });
      control.tokenFault = { mode, remaining: count, retryAfter, ms };
      return sendJson(res, 200, { token_fault: faultState() });
    }
    if (req.method === 'POST' && path === '/__control/access-token-ttl') {
      const body = await readBody(req);
      const seconds = Number(body.seconds);
      if (!(Number.isInteger(seconds) && seconds > 0)) return sendJson(res, 400, { error: 'expected {"seconds": N}, N > 0' });
      control.accessTokenTTL = seconds;
      log(`access tokens issued from now on live ${seconds}s (test control)`);
      return sendJson(res, 200, { access_token_ttl: seconds });
    }
    if (req.method === 'POST' && path === '/__control/dpop') {
      const body = await readBody(req);
      if (typeof body.require_nonce !== 'boolean') return sendJson(res, 400, { error: 'expected {"require_nonce": true | false}' });
      control.dpopRequireNonce = body.require_nonce;
      log(`DPoP nonces ${control.dpopRequireNonce ? 'required' : 'optional'} at the token endpoint (test control)`);
      return sendJson(res, 200, { dpop_require_nonce: control.dpopRequireNonce });
    }
    if (req.method === 'POST' && path === '/__control/reset') {
      control.denials.length = 0;
      control.tokenFault = null;
      return sendJson(res, 200, { pending_denials: 0 });
    }
    if (req.method === 'GET' && path === '/__control/state') {
      return sendJson(res, 200, {
        pending_denials: control.denials.length,
        authorizations: control.authorizations,
        token_requests: control.tokenRequests,
        token_errors: control.tokenErrors,
        token_endpoint_posts: control.tokenEndpointPosts,
        metadata_requests: control.metadataRequests,
        token_fault: faultState(),
        delayed_token_requests: control.delayed.size,
        access_token_ttl: control.accessTokenTTL,
        dpop_require_nonce: control.dpopRequireNonce,
        resources: [...resources],
        enterprise: enterprise?.state,
      });
    }
    return sendJson(res, 404, { error: 'unknown control' });
  } catch (err) {
    return sendJson(res, 400, { error: String(err?.message ?? err) });
  }
}

// The login interaction of the device flow's confirmation (the code flow is
// headless and never gets here): a page with a form a person (or a test
// playing one) submits to sign in as the test user, or to deny.
async function handleInteraction(provider, req, res, path) {
  const [, , uid, action] = path.split('/');
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return sendJson(res, 400, { error: 'interaction mismatch' });
    if (req.method === 'GET' && !action) {
      const body = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><h1>Sign in</h1><p>Prompt: ${details.prompt.name}</p>
<form method="post" action="/interaction/${uid}/login"><button type="submit" name="login" value="test-user">Sign in as test-user</button></form>
<form method="post" action="/interaction/${uid}/abort"><button type="submit" name="abort" value="yes">Deny</button></form>
</body></html>`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      return void res.end(body);
    }
    if (req.method === 'POST' && action === 'login') {
      req.resume();
      control.authorizations += 1;
      return void (await provider.interactionFinished(req, res, { login: { accountId: 'test-user' } }, { mergeWithLastSubmission: false }));
    }
    if (req.method === 'POST' && action === 'abort') {
      req.resume();
      const result = { error: 'access_denied', error_description: 'the test user denied the request' };
      return void (await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false }));
    }
    return sendJson(res, 404, { error: 'unknown interaction action' });
  } catch (err) {
    log(`interaction failed: ${err?.message ?? err}`);
    return sendJson(res, 400, { error: String(err?.message ?? err) });
  }
}

// The enterprise IdP, the workload platform and the JWT-bearer grant (enterprise.mjs).
let enterprise;

const server = http.createServer();
server.listen(port, '127.0.0.1', async () => {
  const actualPort = server.address().port;
  issuer = `http://127.0.0.1:${actualPort}`;
  const provider = new Provider(issuer, configuration);
  enterprise = await installEnterprise({
    provider,
    issuer,
    resources,
    resourceServerInfo: configuration.features.resourceIndicators.getResourceServerInfo,
    log,
    errors,
  });

  provider.on('grant.success', (ctx) => {
    const gt = ctx.oidc.params?.grant_type ?? 'unknown';
    control.tokenRequests[gt] = (control.tokenRequests[gt] ?? 0) + 1;
  });
  provider.on('grant.error', (_ctx, err) => {
    const code = err?.error ?? 'unknown';
    control.tokenErrors[code] = (control.tokenErrors[code] ?? 0) + 1;
  });
  for (const ev of ['grant.error', 'authorization.error', 'registration_create.error', 'server_error', 'introspection.error', 'revocation.error']) {
    provider.on(ev, (ctx, err) => log(`${ev}: ${err?.name} ${err?.message} ${err?.error_description ?? ''} ${err?.error_detail ?? ''}`.trim()));
  }
  provider.on('grant.revoked', (_ctx, grantId) => log(`grant revoked ${grantId}`));

  const callback = provider.callback();
  server.on('request', (req, res) => {
    log(req.method, req.url);
    const path = new URL(req.url, 'http://x').pathname;
    if (req.method === 'POST' && (path === '/__control/id-token' || path === '/__control/workload-token')) {
      return void readBody(req)
        .then((body) => enterprise.control(path, body, res, sendJson))
        .catch((err) => sendJson(res, 400, { error: String(err?.message ?? err) }));
    }
    if (req.url.startsWith('/__control/')) return void handleControl(req, res);
    if (path.startsWith('/interaction/')) return void handleInteraction(provider, req, res, path);
    if (req.method === 'POST' && path === '/idp/token') {
      return void readText(req)
        .then((body) => enterprise.idpToken(req, res, body, sendJson))
        .catch((err) => sendJson(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) }));
    }
    if (req.method === 'GET' && METADATA_PATHS.has(path)) control.metadataRequests += 1;
    if (req.method === 'POST' && path === '/token') {
      control.tokenEndpointPosts += 1;
      if (applyTokenFault(req, res, () => callback(req, res))) return undefined;
    }
    return callback(req, res);
  });

  process.stdout.write(`READY ${JSON.stringify({ issuer, port: actualPort })}\n`);
  log(`listening on ${issuer}; resources: ${[...resources].join(' ') || '(none)'}; AT ttl ${accessTokenTTL}s, RT ttl ${refreshTokenTTL}s`);
});

function shutdown(sig) {
  log(`${sig}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
