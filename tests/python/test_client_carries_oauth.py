"""The OAuth requests (discovery, registration, token) are sent by the application's
httpx client: its transport, its TLS settings and its timeouts apply to them."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from conftest import InMemoryTokenStorage

from mcp_oauth_client import AuthorizationCodeResult, OAuthClientMetadata, OAuthClientProvider, OAuthConnectError

REDIRECT_URI = "http://127.0.0.1:3030/callback"


class FakeServers:
    """An MCP server and its authorization server, as one request handler: enough of
    RFC 9728, RFC 8414, RFC 7591 and the authorization-code grant with PKCE to log in."""

    def __init__(self, mcp_url: str, issuer: str) -> None:
        self.mcp_url, self.issuer = mcp_url, issuer
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
            return 401, {"www-authenticate": f'Bearer resource_metadata="{prm}"'}, b""
        if path == f"/.well-known/oauth-protected-resource{mcp_path}":
            return _json(200, {"resource": self.mcp_url, "authorization_servers": [self.issuer]})
        if path == "/.well-known/oauth-authorization-server":
            return _json(
                200,
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "registration_endpoint": f"{self.issuer}/register",
                    "response_types_supported": ["code"],
                    "grant_types_supported": ["authorization_code", "refresh_token"],
                    "code_challenge_methods_supported": ["S256"],
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
        code = secrets.token_urlsafe(16)
        self.codes[code] = query["code_challenge"]
        self.result = AuthorizationCodeResult(code=code, state=query["state"])

    async def callback_handler(self) -> AuthorizationCodeResult:
        return self.result


def _json(status: int, value: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(value).encode()


def _provider(servers: FakeServers) -> OAuthClientProvider:
    return OAuthClientProvider(
        servers.mcp_url,
        OAuthClientMetadata(redirect_uris=[REDIRECT_URI]),  # type: ignore[list-item]
        InMemoryTokenStorage(),
        servers.redirect_handler,
        servers.callback_handler,
    )


async def test_a_whole_flow_through_a_mock_transport() -> None:
    """The hosts do not exist (``.test`` never resolves): the flow can only succeed if
    every request, the OAuth ones included, goes to the client's transport."""
    servers = FakeServers("https://mcp.test/mcp", "https://auth.test")

    def transport(request: httpx2.Request) -> httpx2.Response:
        status, headers, body = servers.handle(
            request.method, str(request.url), dict(request.headers), request.content
        )
        return httpx2.Response(status, headers=headers, content=body)

    async with httpx2.AsyncClient(auth=_provider(servers), transport=httpx2.MockTransport(transport)) as client:
        r = await client.get(servers.mcp_url)
        assert r.status_code == 200 and r.json() == {"ok": True}
    assert servers.paths == [
        "GET /mcp",
        "GET /.well-known/oauth-protected-resource/mcp",
        "GET /.well-known/oauth-authorization-server",
        "POST /register",
        "POST /token",
        "GET /mcp",
    ]


def _test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-oauth-client test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def https_servers(tmp_path: Path) -> Iterator[tuple[FakeServers, Path]]:
    """The fake servers on https://127.0.0.1 with a certificate from a test CA."""
    ca, cert, key = _test_ca(tmp_path)
    holder: dict[str, FakeServers] = {}

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, out = holder["servers"].handle(self.command, self.path, headers, body)
            self.send_response(status)
            for name, value in out_headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    origin = f"https://127.0.0.1:{server.server_address[1]}"
    holder["servers"] = FakeServers(f"{origin}/mcp", origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["servers"], ca
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(60)
async def test_an_authorization_server_behind_a_private_ca_is_reached_with_the_clients_verify(
    https_servers: tuple[FakeServers, Path],
) -> None:
    """The package's own HTTP client does not trust the test CA: only the client's
    ``verify=`` makes discovery, registration and the token request succeed."""
    servers, ca = https_servers
    async with httpx2.AsyncClient(auth=_provider(servers), verify=ssl.create_default_context(cafile=ca)) as client:
        r = await client.get(servers.mcp_url)
        assert r.status_code == 200 and r.json() == {"ok": True}
    assert "POST /token" in servers.paths


@pytest.mark.timeout(60)
async def test_with_the_packages_own_client_the_private_ca_is_not_trusted(
    https_servers: tuple[FakeServers, Path],
) -> None:
    """The control for the test above: with ``oauth_requests="native"`` the MCP request
    (sent by the client, which trusts the CA) is answered, but discovery, sent by the
    package's own HTTP client, fails on the certificate."""
    servers, ca = https_servers
    provider = OAuthClientProvider(
        servers.mcp_url,
        OAuthClientMetadata(redirect_uris=[REDIRECT_URI]),  # type: ignore[list-item]
        InMemoryTokenStorage(),
        servers.redirect_handler,
        servers.callback_handler,
        oauth_requests="native",
    )
    async with httpx2.AsyncClient(auth=provider, verify=ssl.create_default_context(cafile=ca)) as client:
        with pytest.raises(OAuthConnectError) as info:
            await client.get(servers.mcp_url)
    assert info.value.step == "resource_metadata"
    assert servers.paths == ["GET /mcp"]
