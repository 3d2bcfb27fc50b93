"""Protected MCP server (OAuth resource server) for tests, built on the MCP Python SDK.

Run with the repo venv:

    python tests/peers/mcp_server/server.py --issuer http://127.0.0.1:9000 [--port 0]
        [--required-scope mcp:read] [--json-response] [--stateless]

- Streamable HTTP at http://127.0.0.1:<port>/mcp (SSE responses by default;
  --json-response answers plain JSON; --stateless uses no sessions).
- Bearer tokens are the JWT access tokens of the oidc peer: verified against the
  issuer's /jwks (ES256/RS256 signature, `iss`, `exp`, `aud` equal to this
  server's MCP URL); scopes come from the `scope` claim.
- No or bad token: 401 with `WWW-Authenticate: Bearer error="invalid_token", ...,
  resource_metadata="http://127.0.0.1:<port>/.well-known/oauth-protected-resource/mcp"`.
  A token without --required-scope: 403 insufficient_scope.
- RFC 9728 metadata at /.well-known/oauth-protected-resource/mcp names the issuer
  as authorization server and --required-scope as scopes_supported.
- Tools: echo(text), whoami() -> {"client_id", "scopes", "sub", "aud"}, slow(ms),
  admin_action(). Calling admin_action without scope mcp:admin answers HTTP 403 with
  `WWW-Authenticate: Bearer error="insufficient_scope", scope="<required> mcp:admin",
  resource_metadata="..."` (step-up).

- DPoP (RFC 9449): a token whose claims hold `cnf.jkt` is accepted only as
  `Authorization: DPoP <token>` with one `DPoP` proof header whose signature verifies
  with the proof's own `jwk`, whose key's thumbprint (RFC 7638) is `cnf.jkt`, with `htm`
  and `htu` matching the request, `ath` = base64url(SHA-256(token)), `iat` within a
  minute of now, a `jti` never seen before, and, when nonces are required, the
  server's current nonce. Refusals are 401 with two challenges, as a server taking
  both schemes may send (RFC 9449 §7.2): `WWW-Authenticate: Bearer resource_metadata=…`
  and `WWW-Authenticate: DPoP error=…`. A refused proof: `DPoP error="invalid_dpop_proof"`;
  a missing or stale nonce: `DPoP error="use_dpop_nonce"` with the current nonce in
  `DPoP-Nonce`; the same token as `Bearer`, or an unbound token with the `DPoP`
  scheme: `DPoP error="invalid_token"`.

Test controls (same port):
  POST /__control/dpop   JSON body, every field optional: {"require_nonce": bool,
                         "rotate": true (a new nonce now), "nonce_loop": bool (every DPoP
                         request is refused with a new nonce: a server that never settles)}.
                         Answers the DPoP state.
  GET  /__control/state  {"dpop": {"require_nonce", "nonce_loop", "accepted", "refused":
                         {error: n}, "nonces_issued"}}: proofs accepted, requests refused by
                         error code, and how many nonces the server has had (1 at start).

Prints `READY {"url": "http://127.0.0.1:N/mcp"}` on stdout when listening; logs to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import secrets
import signal
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import anyio
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

log = logging.getLogger("mcp-peer")

ADMIN_SCOPE = "mcp:admin"


class JwtTokenVerifier:
    """Verifies the oidc peer's JWT access tokens against its JWKS."""

    def __init__(self, issuer: str, audience: str):
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._jwks = jwt.PyJWKClient(f"{self.issuer}/jwks", cache_keys=True, lifespan=300)

    def decode(self, token: str) -> dict[str, Any] | None:
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            return jwt.decode(
                token,
                key.key,
                algorithms=["ES256", "RS256", "PS256", "EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except Exception as exc:  # any failure means "not a valid token here"
            log.info("token rejected: %s: %s", type(exc).__name__, exc)
            return None

    async def verify_token(self, token: str) -> AccessToken | None:
        claims = await anyio.to_thread.run_sync(self.decode, token)
        if claims is None:
            return None
        aud = claims.get("aud")
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or ""),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            resource=self.audience if (aud == self.audience or (isinstance(aud, list) and self.audience in aud)) else None,
            subject=claims.get("sub"),
            claims={k: v for k, v in claims.items() if k in ("iss", "jti", "iat", "aud")},
        )


class StepUpMiddleware:
    """Answers HTTP 403 insufficient_scope for a tools/call of admin_action when
    the token lacks mcp:admin (the SDK has no per-tool scopes)."""

    def __init__(self, app, verifier: JwtTokenVerifier, required_scope: str, resource_metadata_url: str):
        self.app = app
        self.verifier = verifier
        self.challenge_scope = " ".join(dict.fromkeys([*required_scope.split(), ADMIN_SCOPE]))
        self.resource_metadata_url = resource_metadata_url

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/mcp"):
            return await self.app(scope, receive, send)
        # Buffer the body to look at the JSON-RPC message, then replay it.
        chunks = []
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)

        if self._calls_admin(body):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            authz = headers.get("authorization", "")
            token = authz[7:] if authz.lower().startswith("bearer ") else None
            info = await self.verifier.verify_token(token) if token else None
            # Without a valid token the SDK's own 401 handling applies.
            if info is not None and ADMIN_SCOPE not in info.scopes:
                return await self._forbidden(send)

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    @staticmethod
    def _calls_admin(body: bytes) -> bool:
        try:
            msg = json.loads(body)
        except ValueError:
            return False
        msgs = msg if isinstance(msg, list) else [msg]
        return any(
            isinstance(m, dict)
            and m.get("method") == "tools/call"
            and isinstance(m.get("params"), dict)
            and m["params"].get("name") == "admin_action"
            for m in msgs
        )

    async def _forbidden(self, send):
        body = json.dumps(
            {"error": "insufficient_scope", "error_description": f"Required scope: {ADMIN_SCOPE}"}
        ).encode()
        challenge = (
            f'Bearer error="insufficient_scope", scope="{self.challenge_scope}", '
            f'resource_metadata="{self.resource_metadata_url}", '
            f'error_description="Required scope: {ADMIN_SCOPE}"'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# Algorithms a DPoP proof may be signed with (asymmetric only: RFC 9449 §4.2).
DPOP_ALGS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
# How far a proof's `iat` may be from now, seconds.
DPOP_IAT_WINDOW = 60
# JWK members that only a private key has; a proof's key must have none.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
# RFC 7638 §3.2: the members a thumbprint is computed over, per key type.
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def b64url_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 of the required members, as compact JSON in key order."""
    members = THUMBPRINT_MEMBERS.get(jwk.get("kty"))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise ValueError("unsupported or incomplete JWK")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url_sha256(canonical.encode())


def normalized_url(url: str) -> tuple[str, str, str]:
    """(scheme, authority, path) with scheme and host lower-cased: what `htu` is compared on."""
    u = urlsplit(url)
    host = (u.hostname or "").lower()
    port = u.port
    default = {"http": 80, "https": 443}.get(u.scheme.lower())
    authority = host if port in (None, default) else f"{host}:{port}"
    return u.scheme.lower(), authority, u.path or "/"


class DpopRefusal(Exception):
    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error
        self.description = description


class DpopGate:
    """ASGI middleware in front of the MCP app: the resource server's side of DPoP
    (RFC 9449 §7). A DPoP request that passes is handed on as a Bearer request (the
    SDK knows no other scheme); one that does not is answered 401 here. Also serves
    the test controls under /__control/."""

    def __init__(self, app, verifier: JwtTokenVerifier, resource_metadata_url: str):
        self.app = app
        self.verifier = verifier
        self.resource_metadata_url = resource_metadata_url
        self.require_nonce = False
        self.nonce_loop = False
        self.nonce = secrets.token_urlsafe(16)
        self.nonces_issued = 1
        self.seen_jti: dict[str, float] = {}  # jti -> when it may be forgotten
        self.accepted = 0
        self.refused: dict[str, int] = {}

    def rotate(self) -> None:
        self.nonce = secrets.token_urlsafe(16)
        self.nonces_issued += 1

    def state(self) -> dict[str, Any]:
        return {
            "require_nonce": self.require_nonce,
            "nonce_loop": self.nonce_loop,
            "accepted": self.accepted,
            "refused": dict(self.refused),
            "nonces_issued": self.nonces_issued,
        }

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"].startswith("/__control/"):
            return await self._control(scope, receive, send)
        if not scope["path"].startswith("/mcp"):
            return await self.app(scope, receive, send)
        headers = scope["headers"]
        authz = [v.decode("latin-1") for k, v in headers if k.lower() == b"authorization"]
        proofs = [v.decode("latin-1") for k, v in headers if k.lower() == b"dpop"]
        scheme, _, token = (authz[0] if len(authz) == 1 else "").partition(" ")
        token = token.strip()
        scheme = scheme.lower()
        if scheme not in ("bearer", "dpop") or not token:
            return await self.app(scope, receive, send)
        claims = await anyio.to_thread.run_sync(self.verifier.decode, token)
        if claims is None:
            # Not a valid token: the SDK answers 401 invalid_token as for any other.
            return await self.app(self._as_bearer(scope, token), receive, send)
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        try:
            if scheme == "bearer":
                if jkt is not None:
                    raise DpopRefusal("invalid_token", "a DPoP-bound token must be presented with the DPoP scheme")
                return await self.app(scope, receive, send)
            if not isinstance(jkt, str):
                raise DpopRefusal("invalid_token", "the token is not DPoP-bound; present it as Bearer")
            if len(proofs) != 1:
                raise DpopRefusal("invalid_dpop_proof", "exactly one DPoP proof header is required")
            self._check_proof(proofs[0], scope, token, jkt)
        except DpopRefusal as refusal:
            return await self._refuse(send, refusal)
        self.accepted += 1
        return await self.app(self._as_bearer(scope, token), receive, send)

    @staticmethod
    def _as_bearer(scope, token: str):
        rest = [(k, v) for k, v in scope["headers"] if k.lower() != b"authorization"]
        return {**scope, "headers": [*rest, (b"authorization", f"Bearer {token}".encode("latin-1"))]}

    def _request_url(self, scope) -> tuple[str, str, str]:
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"host"), "")
        return normalized_url(f"{scope['scheme']}://{host}{scope.get('root_path', '')}{scope['path']}")

    def _check_proof(self, proof: str, scope, token: str, jkt: str) -> None:
        bad = lambda why: DpopRefusal("invalid_dpop_proof", why)  # noqa: E731
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError:
            raise bad("the DPoP proof is not a JWS") from None
        alg, jwk = header.get("alg"), header.get("jwk")
        if header.get("typ") != "dpop+jwt":
            raise bad("the DPoP proof's typ is not dpop+jwt")
        if alg not in DPOP_ALGS:
            raise bad("the DPoP proof's alg is not an accepted asymmetric algorithm")
        if not isinstance(jwk, dict) or any(m in jwk for m in PRIVATE_JWK_MEMBERS):
            raise bad("the DPoP proof's jwk is missing or holds a private key")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims = jwt.decode(
                proof,
                key.key,
                algorithms=[alg],
                options={"require": ["jti", "htm", "htu", "iat"], "verify_iat": False, "verify_aud": False},
            )
        except Exception as exc:  # a malformed key or a bad signature alike
            raise bad(f"the DPoP proof does not verify with its jwk ({type(exc).__name__})") from None
        try:
            thumbprint = jwk_thumbprint(jwk)
        except ValueError:
            raise bad("the DPoP proof's jwk has no thumbprint") from None
        if not secrets.compare_digest(thumbprint, jkt):
            raise bad("the DPoP proof is signed by another key than the one the token is bound to")
        if claims["htm"] != scope["method"]:
            raise bad("the DPoP proof's htm is not the request's method")
        if not isinstance(claims["htu"], str) or normalized_url(claims["htu"]) != self._request_url(scope):
            raise bad("the DPoP proof's htu is not the request's URL")
        if claims.get("ath") != b64url_sha256(token.encode("latin-1")):
            raise bad("the DPoP proof's ath is not the hash of the access token")
        iat = claims["iat"]
        now = time.time()
        if not isinstance(iat, (int, float)) or abs(now - iat) > DPOP_IAT_WINDOW:
            raise bad("the DPoP proof's iat is not recent")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise bad("the DPoP proof has no jti")
        self.seen_jti = {j: t for j, t in self.seen_jti.items() if t > now}
        if jti in self.seen_jti:
            raise bad("the DPoP proof was used before (jti replayed)")
        # Remembered for as long as its iat would be accepted.
        self.seen_jti[jti] = iat + DPOP_IAT_WINDOW + 1
        if self.nonce_loop:
            self.rotate()
            raise DpopRefusal("use_dpop_nonce", "a new DPoP nonce is required")
        if self.require_nonce and claims.get("nonce") != self.nonce:
            raise DpopRefusal("use_dpop_nonce", "the DPoP proof must carry the server's current nonce")

    async def _refuse(self, send, refusal: DpopRefusal) -> None:
        self.refused[refusal.error] = self.refused.get(refusal.error, 0) + 1
        log.info("DPoP: refused (%s): %s", refusal.error, refusal.description)
        body = json.dumps({"error": refusal.error, "error_description": refusal.description}).encode()
        challenge = (
            f'DPoP error="{refusal.error}", error_description="{refusal.description}", '
            f'algs="{" ".join(DPOP_ALGS)}"'
        )
        # This server takes both schemes, so it names both (RFC 9449 §7.2): the
        # error is the DPoP challenge's, after a plain Bearer one.
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", f'Bearer resource_metadata="{self.resource_metadata_url}"'.encode()),
            (b"www-authenticate", challenge.encode()),
            (b"cache-control", b"no-store"),
        ]
        if refusal.error == "use_dpop_nonce":
            headers.append((b"dpop-nonce", self.nonce.encode()))
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _control(self, scope, receive, send) -> None:
        chunks = []
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        status, answer = 200, None
        if scope["method"] == "GET" and scope["path"] == "/__control/state":
            answer = {"dpop": self.state()}
        elif scope["method"] == "POST" and scope["path"] == "/__control/dpop":
            try:
                body = json.loads(b"".join(chunks) or b"{}")
            except ValueError:
                body = None
            flags = ("require_nonce", "rotate", "nonce_loop")
            if not isinstance(body, dict) or any(not isinstance(body.get(f, False), bool) for f in flags):
                status, answer = 400, {"error": 'expected {"require_nonce": bool, "rotate": bool, "nonce_loop": bool}'}
            else:
                self.require_nonce = body.get("require_nonce", self.require_nonce)
                self.nonce_loop = body.get("nonce_loop", self.nonce_loop)
                if body.get("rotate"):
                    self.rotate()
                log.info("DPoP control: %s", self.state())
                answer = self.state()
        else:
            status, answer = 404, {"error": "unknown control"}
        data = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})


def _token_of(ctx: Context) -> AccessToken | None:
    request = getattr(ctx.request_context, "request", None)
    user = getattr(request, "user", None) if request is not None else None
    token = getattr(user, "access_token", None)
    return token or get_access_token()


class HostAnswer(BaseModel):
    answer: str


def build_app(issuer: str, mcp_url: str, required_scope: str, json_response: bool, stateless: bool, sse: bool = False):
    verifier = JwtTokenVerifier(issuer, mcp_url)
    server = MCPServer(
        name="mcp-oauth-client test peer",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=issuer,
            resource_server_url=mcp_url,
            required_scopes=required_scope.split(),
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def echo(text: str) -> str:
        """Returns the text unchanged."""
        return text

    @server.tool()
    def whoami(ctx: Context) -> dict[str, Any]:
        """Returns the client_id and scopes of the access token used."""
        tok = _token_of(ctx)
        if tok is None:
            return {"client_id": None, "scopes": []}
        return {
            "client_id": tok.client_id,
            "scopes": tok.scopes,
            "sub": tok.subject,
            "aud": (tok.claims or {}).get("aud"),
        }

    @server.tool()
    async def slow(ms: int) -> str:
        """Sleeps ms milliseconds, then answers."""
        await anyio.sleep(max(0, ms) / 1000)
        return f"slept {ms} ms"

    @server.tool()
    async def ask_host(question: str, ctx: Context) -> str:
        """Logs a notification, then asks the client (elicitation) and returns its answer."""
        await ctx.info(f"asking the host: {question}")
        answer = await ctx.elicit(message=question, schema=HostAnswer)
        if answer.action != "accept" or answer.data is None:
            return f"the host answered {answer.action}"
        return f"the host said: {answer.data.answer}"

    @server.tool()
    def admin_action(ctx: Context) -> str:
        """Needs scope mcp:admin (enforced with an HTTP 403 step-up challenge)."""
        tok = _token_of(ctx)
        if tok is not None and ADMIN_SCOPE not in tok.scopes:  # defence in depth
            raise ValueError("insufficient_scope")
        return "admin action done"

    if sse:
        # The legacy HTTP+SSE transport (MCP 2024-11-05): GET /sse, POST /messages/.
        app = server.sse_app()
    else:
        app = server.streamable_http_app(json_response=json_response, stateless_http=stateless)
    origin, path = mcp_url.rsplit("/", 1)
    prm_url = f"{origin}/.well-known/oauth-protected-resource/{path}"
    return DpopGate(StepUpMiddleware(app, verifier, required_scope, prm_url), verifier, prm_url)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    p.add_argument("--issuer", required=True, help="authorization server issuer, e.g. http://127.0.0.1:9000")
    p.add_argument("--required-scope", default="mcp:read", help="space separated scopes every request needs")
    p.add_argument("--json-response", action="store_true", help="answer POSTs with JSON instead of SSE")
    p.add_argument("--stateless", action="store_true", help="stateless streamable HTTP (no Mcp-Session-Id)")
    p.add_argument("--sse", action="store_true", help="the legacy HTTP+SSE transport at /sse instead")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="[mcp] %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)

    # Bind first so that the URL (the token audience) is known before the app is built.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    mcp_url = f"http://127.0.0.1:{port}/{'sse' if args.sse else 'mcp'}"

    app = build_app(args.issuer, mcp_url, args.required_scope, args.json_response, args.stateless, args.sse)
    config = uvicorn.Config(app, log_level=args.log_level.lower(), access_log=False, lifespan="on")
    userver = uvicorn.Server(config)

    async def run():
        async def announce():
            while not userver.started:
                await asyncio.sleep(0.02)
            print("READY " + json.dumps({"url": mcp_url}), flush=True)
            log.info("listening on %s (issuer %s)", mcp_url, args.issuer)

        task = asyncio.create_task(announce())
        await userver.serve(sockets=[sock])
        task.cancel()

    # uvicorn handles SIGTERM/SIGINT during serve() (graceful shutdown) and re-raises
    # them afterwards; with these no-op handlers the re-raise ends in a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
