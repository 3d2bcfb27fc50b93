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

Prints `READY {"url": "http://127.0.0.1:N/mcp"}` on stdout when listening; logs to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
from typing import Any

import anyio
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer

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


def _token_of(ctx: Context) -> AccessToken | None:
    request = getattr(ctx.request_context, "request", None)
    user = getattr(request, "user", None) if request is not None else None
    token = getattr(user, "access_token", None)
    return token or get_access_token()


def build_app(issuer: str, mcp_url: str, required_scope: str, json_response: bool, stateless: bool):
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
    def admin_action(ctx: Context) -> str:
        """Needs scope mcp:admin (enforced with an HTTP 403 step-up challenge)."""
        tok = _token_of(ctx)
        if tok is not None and ADMIN_SCOPE not in tok.scopes:  # defence in depth
            raise ValueError("insufficient_scope")
        return "admin action done"

    app = server.streamable_http_app(json_response=json_response, stateless_http=stateless)
    prm_url = f"{mcp_url.split('/mcp')[0]}/.well-known/oauth-protected-resource/mcp"
    return StepUpMiddleware(app, verifier, required_scope, prm_url)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    p.add_argument("--issuer", required=True, help="authorization server issuer, e.g. http://127.0.0.1:9000")
    p.add_argument("--required-scope", default="mcp:read", help="space separated scopes every request needs")
    p.add_argument("--json-response", action="store_true", help="answer POSTs with JSON instead of SSE")
    p.add_argument("--stateless", action="store_true", help="stateless streamable HTTP (no Mcp-Session-Id)")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="[mcp] %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)

    # Bind first so that the URL (the token audience) is known before the app is built.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    mcp_url = f"http://127.0.0.1:{port}/mcp"

    app = build_app(args.issuer, mcp_url, args.required_scope, args.json_response, args.stateless)
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
