"""An MCP server and its authorization server in one request handler, for tests that
need a whole flow without the peers (behind a ``MockTransport``, or served over TLS)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mcp_oauth_client import AuthorizationCodeResult

REDIRECT_URI = "http://127.0.0.1:3030/callback"


class FakeServers:
    """An MCP server and its authorization server, as one request handler: enough of
    RFC 9728, RFC 8414, RFC 7591 and the authorization-code grant with PKCE to log in."""

    def __init__(
        self,
        mcp_url: str,
        issuer: str,
        *,
        challenge_scope: str | None = None,
        advertise_s256: bool = True,
        advertise_iss: bool = False,
    ) -> None:
        self.advertise_iss = advertise_iss
        self.mcp_url, self.issuer = mcp_url, issuer
        self.challenge_scope, self.advertise_s256 = challenge_scope, advertise_s256
        self.authorized_scope: str | None = None
        self.access_token = secrets.token_urlsafe(16)
        self.codes: dict[str, str] = {}  # code -> code_challenge
        self.paths: list[str] = []

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(url).path
        self.paths.append(f"{method} {path}")
        mcp_path = urlsplit(self.mcp_url).path
        if path == mcp_path:
            if headers.get("authorization") == f"Bearer {self.access_token}":
                return _json(200, {"ok": True})
            prm = f"{self.mcp_url.rsplit(mcp_path, 1)[0]}/.well-known/oauth-protected-resource{mcp_path}"
            scope = "" if self.challenge_scope is None else f', scope="{self.challenge_scope}"'
            return 401, {"www-authenticate": f'Bearer resource_metadata="{prm}"{scope}'}, b""
        if path == f"/.well-known/oauth-protected-resource{mcp_path}":
            return _json(200, {"resource": self.mcp_url, "authorization_servers": [self.issuer]})
        if path == "/.well-known/oauth-authorization-server":
            pkce: dict[str, Any] = {"code_challenge_methods_supported": ["S256"]} if self.advertise_s256 else {}
            if self.advertise_iss:
                pkce["authorization_response_iss_parameter_supported"] = True
            return _json(
                200,
                {
                    **pkce,
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "registration_endpoint": f"{self.issuer}/register",
                    "response_types_supported": ["code"],
                    "grant_types_supported": ["authorization_code", "refresh_token"],
                },
            )
        if path == "/register" and method == "POST":
            registration = json.loads(body)
            return _json(201, {**registration, "client_id": "client-1", "token_endpoint_auth_method": "none"})
        if path == "/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            challenge = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "").encode()
            expected = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if challenge is None or challenge != expected or form.get("grant_type") != "authorization_code":
                return _json(400, {"error": "invalid_grant"})
            return _json(200, {"access_token": self.access_token, "token_type": "Bearer", "expires_in": 3600})
        return 404, {}, b""

    # The person: the redirect handler "approves", the callback handler returns the code.
    async def redirect_handler(self, authorization_url: str) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        assert query["code_challenge_method"] == "S256"
        self.authorized_scope = query.get("scope")
        code = secrets.token_urlsafe(16)
        self.codes[code] = query["code_challenge"]
        self.result = AuthorizationCodeResult(code=code, state=query["state"])

    async def callback_handler(self) -> AuthorizationCodeResult:
        return self.result


def _json(status: int, value: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(value).encode()


def mock_handler(servers: FakeServers, library: Any) -> Any:
    """A ``MockTransport`` handler of ``library`` (httpx or httpx2) serving ``servers``."""

    def handle(request: Any) -> Any:
        status, headers, body = servers.handle(request.method, str(request.url), dict(request.headers), request.content)
        return library.Response(status, headers=headers, content=body)

    return handle
