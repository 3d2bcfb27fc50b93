// The enterprise side of the MCP extensions, beside oidc-provider in the same server:
//
// - an enterprise identity provider (issuer `${issuer}/idp`) whose token endpoint,
//   POST /idp/token, performs the RFC 8693 token exchange of the identity assertion
//   extension: a user's ID token (signed by this IdP) for an Identity Assertion JWT
//   Authorization Grant (ID-JAG, `typ: oauth-id-jag+jwt`) whose `aud` is the MCP
//   authorization server and whose `resource` is the MCP server; its client
//   authenticates with HTTP Basic (idp-client / idp-secret);
// - a workload platform (issuer `${issuer}/platform`) that issues workload tokens;
// - the RFC 7523 JWT-bearer grant at oidc-provider (registerGrantType, its documented
//   extension point), accepting an ID-JAG from the IdP (for the client it names) or a
//   workload token from the platform, each with `aud` = the authorization server, not
//   expired, and a `jti` never seen before; tokens are issued as for client
//   credentials (JWT access tokens whose `aud` is the resource).
//
// Test controls (served under /__control/ by server.mjs):
//   POST /__control/id-token        {"sub": "alice", "ttl": 600} -> {"id_token": "..."}
//   POST /__control/workload-token  {"sub": "wl", "ttl": 600, "aud": "..."} -> {"token": "..."}
// State: `enterprise` in GET /__control/state (exchanges, refusals, grants).

import { SignJWT, exportJWK, generateKeyPair, jwtVerify, createLocalJWKSet, decodeProtectedHeader } from 'jose';

export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** A request's body as text (the IdP's token endpoint takes a form). */
export async function readText(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const ID_JAG_TYPE = 'urn:ietf:params:oauth:token-type:id-jag';
const IDP_CLIENT = { id: 'idp-client', secret: 'idp-secret' };

export async function installEnterprise({ provider, issuer, resources, resourceServerInfo, log, errors }) {
  const idpIssuer = `${issuer}/idp`;
  const platformIssuer = `${issuer}/platform`;
  const idpKeys = await generateKeyPair('ES256');
  const platformKeys = await generateKeyPair('ES256');
  const idpJwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(idpKeys.publicKey)), alg: 'ES256' }] });
  const platformJwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(platformKeys.publicKey)), alg: 'ES256' }] });
  const seenJti = new Set();
  const state = { exchanges: 0, exchangeRefusals: 0, grants: 0, grantRefusals: 0 };

  const sign = (keys, iss, typ, claims, ttl) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ })
      .setIssuer(iss)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
      .setJti(crypto.randomUUID())
      .sign(keys.privateKey);

  // --- the IdP's token endpoint (RFC 8693) ---------------------------------------
  async function idpToken(req, res, body, sendJson) {
    const refuse = (status, error, description) => {
      state.exchangeRefusals += 1;
      log(`idp: refused token exchange: ${error} ${description}`);
      return sendJson(res, status, { error, error_description: description });
    };
    const auth = req.headers.authorization ?? '';
    const expected = `Basic ${Buffer.from(`${IDP_CLIENT.id}:${IDP_CLIENT.secret}`).toString('base64')}`;
    if (auth !== expected) return refuse(401, 'invalid_client', 'the IdP client must authenticate with HTTP Basic');
    const p = new URLSearchParams(body);
    if (p.get('grant_type') !== TOKEN_EXCHANGE) return refuse(400, 'unsupported_grant_type', 'token exchange only');
    if (p.get('requested_token_type') !== ID_JAG_TYPE) return refuse(400, 'invalid_request', 'requested_token_type must be id-jag');
    if (p.get('subject_token_type') !== ID_TOKEN_TYPE) return refuse(400, 'invalid_request', 'subject_token_type must be id_token');
    if (p.get('audience') !== issuer) return refuse(400, 'invalid_target', `audience must be ${issuer}`);
    const resource = p.get('resource');
    if (!resources.has(resource)) return refuse(400, 'invalid_target', 'unknown resource');
    let idToken;
    try {
      ({ payload: idToken } = await jwtVerify(p.get('subject_token') ?? '', idpJwks, { issuer: idpIssuer, audience: IDP_CLIENT.id }));
    } catch (err) {
      return refuse(400, 'invalid_grant', `the ID token is not valid: ${err.code ?? err.message}`);
    }
    const clientId = idToken.mcp_client_id;
    if (!clientId) return refuse(400, 'invalid_grant', 'the user has no client at this authorization server');
    const claims = { sub: idToken.sub, aud: issuer, resource, client_id: clientId };
    if (p.get('scope')) claims.scope = p.get('scope');
    const idJag = await sign(idpKeys, idpIssuer, 'oauth-id-jag+jwt', claims, 300);
    state.exchanges += 1;
    return sendJson(res, 200, { access_token: idJag, issued_token_type: ID_JAG_TYPE, token_type: 'N_A', expires_in: 300 });
  }

  // --- the JWT-bearer grant at the authorization server --------------------------
  provider.registerGrantType(
    JWT_BEARER,
    async function jwtBearerGrant(ctx) {
      const { client, params } = ctx.oidc;
      const fail = (description) => {
        state.grantRefusals += 1;
        log(`jwt-bearer: refused: ${description}`);
        throw new errors.InvalidGrant(description);
      };
      const assertion = params.assertion ?? '';
      let header;
      try {
        header = decodeProtectedHeader(assertion);
      } catch {
        return fail('the assertion is not a JWT');
      }
      const idJag = header.typ === 'oauth-id-jag+jwt';
      let payload;
      try {
        ({ payload } = await jwtVerify(assertion, idJag ? idpJwks : platformJwks, {
          issuer: idJag ? idpIssuer : platformIssuer,
          audience: issuer,
        }));
      } catch (err) {
        return fail(`the assertion is not valid: ${err.code ?? err.message}`);
      }
      if (seenJti.has(payload.jti)) return fail('the assertion was used before');
      seenJti.add(payload.jti);
      if (idJag && payload.client_id !== client.clientId) return fail('the ID-JAG was issued for another client');
      if (!idJag && payload.sub !== client.clientId) return fail('the workload token is for another workload');
      const resource = idJag ? payload.resource : (params.resource ?? [...resources][0]);
      if (!resources.has(resource)) return fail('unknown resource');
      if (params.resource && params.resource !== resource) return fail('the resource differs from the assertion');
      const info = await resourceServerInfo(ctx, resource);
      const token = new ctx.oidc.provider.ClientCredentials({ client, scope: params.scope || payload.scope || undefined });
      token.resourceServer = new ctx.oidc.provider.ResourceServer(resource, info);
      const value = await token.save();
      state.grants += 1;
      ctx.body = { access_token: value, token_type: token.tokenType, expires_in: token.expiration, scope: token.scope || undefined };
    },
    ['assertion', 'scope', 'resource'],
  );

  // --- controls ------------------------------------------------------------------
  async function control(path, body, res, sendJson) {
    const args = body ?? {};
    if (path === '/__control/id-token') {
      const claims = { sub: args.sub ?? 'alice', aud: IDP_CLIENT.id, mcp_client_id: args.client_id };
      return sendJson(res, 200, { id_token: await sign(idpKeys, idpIssuer, 'JWT', claims, args.ttl ?? 600) });
    }
    if (path === '/__control/workload-token') {
      const claims = { sub: args.sub, aud: args.aud ?? issuer };
      return sendJson(res, 200, { token: await sign(platformKeys, platformIssuer, 'JWT', claims, args.ttl ?? 600) });
    }
    return false;
  }

  return { idpToken, control, state, idpIssuer, idpClient: IDP_CLIENT };
}
