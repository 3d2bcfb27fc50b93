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
//   Client ID Metadata Documents enabled. A CIMD client_id must be an https URL;
//   for tests, an https client_id on a loopback host (127.0.0.1, localhost, [::1])
//   is fetched over plain http from the same host and port.
//   Headless approval: a GET of the authorization URL without cookies logs a
//   test user ("test-user") in and grants exactly the requested scopes, answering
//   303 to redirect_uri?code=...&state=...&iss=... . No consent or login page,
//   also not with prompt=login or prompt=consent.
//
// Test controls (same port):
//   POST /__control/deny-next   the next authorization request is answered with an
//                               error redirect (redirect_uri?error=access_denied&state&iss).
//                               Optional JSON body {"error": "...", "error_description": "...",
//                               "count": N} to pick another OAuth error code or deny N requests.
//   POST /__control/resources   JSON body {"resource": url} or {"resources": [...]}: allow more
//                               resources (lets a launcher start this server before the
//                               MCP server whose URL it does not know yet).
//   POST /__control/token-fault the next token endpoint request is delayed and/or failed:
//                               JSON body {"delay_ms": N, "status": 503, "retry_after": S,
//                               "count": N}. With delay_ms alone, the request is answered
//                               normally after the delay; with status, it is answered with
//                               that status (and Retry-After: S) without being processed.
//   POST /__control/reset       clears pending denials and token faults.
//   GET  /__control/state       JSON: pending denials and token faults, counters of
//                               authorizations and token requests by grant type.
//
// Prints exactly one line to stdout when listening:
//   READY {"issuer": "http://127.0.0.1:N", "port": N}
// Logs to stderr. Exits 0 on SIGTERM / SIGINT.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

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
  tokenFaults: [], // queue of { delay_ms, status, retry_after }
  authorizations: 0,
  tokenRequests: {},
};

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
    AccessToken: accessTokenTTL,
    ClientCredentials: accessTokenTTL,
    RefreshToken: refreshTokenTTL,
    AuthorizationCode: 60,
    Grant: Math.max(refreshTokenTTL, accessTokenTTL, 600),
    Session: Math.max(refreshTokenTTL, 600),
    IdToken: 3600,
    Interaction: 600,
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
          accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
    clientIdMetadataDocument: { enabled: true, ack: 'draft-02' },
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
      const delay = Number(body.delay_ms ?? 0);
      const status = body.status === undefined ? undefined : Number(body.status);
      const retryAfter = body.retry_after === undefined ? undefined : String(body.retry_after);
      if (!(delay >= 0) || (status !== undefined && !(status >= 100 && status < 600))) {
        return sendJson(res, 400, { error: 'expected {"delay_ms": N, "status": S, "retry_after": S, "count": N}' });
      }
      const count = Number(body.count ?? 1);
      for (let i = 0; i < count; i++) control.tokenFaults.push({ delay, status, retryAfter });
      return sendJson(res, 200, { pending_token_faults: control.tokenFaults.length });
    }
    if (req.method === 'POST' && path === '/__control/reset') {
      control.denials.length = 0;
      control.tokenFaults.length = 0;
      return sendJson(res, 200, { pending_denials: 0, pending_token_faults: 0 });
    }
    if (req.method === 'GET' && path === '/__control/state') {
      return sendJson(res, 200, {
        pending_denials: control.denials.length,
        pending_token_faults: control.tokenFaults.length,
        authorizations: control.authorizations,
        token_requests: control.tokenRequests,
        resources: [...resources],
      });
    }
    return sendJson(res, 404, { error: 'unknown control' });
  } catch (err) {
    return sendJson(res, 400, { error: String(err?.message ?? err) });
  }
}

// A token endpoint request under a test fault: held for `delay` ms, then
// answered with `status` (unprocessed) or passed on.
function tokenFault(fault, req, res, callback) {
  log(`token request under a test fault: delay ${fault.delay} ms${fault.status ? `, then ${fault.status}` : ''}`);
  setTimeout(() => {
    if (fault.status === undefined) return void callback(req, res);
    req.resume();
    const headers = { 'content-type': 'text/plain', 'cache-control': 'no-store' };
    if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
    res.writeHead(fault.status, headers);
    res.end(`test fault: ${fault.status}\n`);
  }, fault.delay);
}

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  issuer = `http://127.0.0.1:${actualPort}`;
  const provider = new Provider(issuer, configuration);

  provider.on('grant.success', (ctx) => {
    const gt = ctx.oidc.params?.grant_type ?? 'unknown';
    control.tokenRequests[gt] = (control.tokenRequests[gt] ?? 0) + 1;
  });
  for (const ev of ['grant.error', 'authorization.error', 'registration_create.error', 'server_error', 'introspection.error', 'revocation.error']) {
    provider.on(ev, (ctx, err) => log(`${ev}: ${err?.name} ${err?.message} ${err?.error_description ?? ''} ${err?.error_detail ?? ''}`.trim()));
  }
  provider.on('grant.revoked', (_ctx, grantId) => log(`grant revoked ${grantId}`));

  const callback = provider.callback();
  server.on('request', (req, res) => {
    log(req.method, req.url);
    if (req.url.startsWith('/__control/')) return void handleControl(req, res);
    const fault = req.method === 'POST' && req.url.split('?')[0] === '/token' ? control.tokenFaults.shift() : undefined;
    if (fault) return void tokenFault(fault, req, res, callback);
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
