"""The OAuth requests (discovery, registration, token) are sent by the application's
httpx client: its transport, its TLS settings and its timeouts apply to them."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import InMemoryTokenStorage
from fake_servers import REDIRECT_URI, FakeServers, mock_handler

from mcp_oauth_client import OAuthClientMetadata, OAuthClientProvider, OAuthConnectError, OAuthFlowError, OAuthNetworkError


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

    transport = httpx2.MockTransport(mock_handler(servers, httpx2))
    async with httpx2.AsyncClient(auth=_provider(servers), transport=transport) as client:
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


class EndlessBody(httpx2.AsyncByteStream):
    """A response body that never ends, counting what was read of it."""

    def __init__(self) -> None:
        self.served = 0

    async def __aiter__(self) -> Any:
        chunk = b" " * 65536
        while True:
            self.served += len(chunk)
            yield chunk


async def test_the_cores_body_cap_applies_to_a_response_the_client_reads() -> None:
    """The client is handed an endless metadata document: it is read no further than
    the core's cap (256 KiB), and the core refuses it."""
    servers = FakeServers("https://mcp.test/mcp", "https://auth.test")
    body = EndlessBody()
    serve = mock_handler(servers, httpx2)

    def transport(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.startswith("/.well-known/oauth-protected-resource"):
            return httpx2.Response(200, headers={"content-type": "application/json"}, stream=body)
        response: httpx2.Response = serve(request)
        return response

    async with httpx2.AsyncClient(auth=_provider(servers), transport=httpx2.MockTransport(transport)) as client:
        with pytest.raises(OAuthNetworkError, match="limit") as info:
            await client.get(servers.mcp_url)
    assert info.value.step == "resource_metadata"
    assert 256 * 1024 < body.served <= 256 * 1024 + 65536


async def test_a_redirect_the_client_followed_is_refused_by_the_core() -> None:
    """A client with ``follow_redirects=True`` follows a token endpoint's 307 before the
    core sees the answer; the core is handed the 307 itself and refuses it, as it
    refuses every redirect: no token comes from the place redirected to."""
    servers = FakeServers("https://mcp.test/mcp", "https://auth.test")
    serve = mock_handler(servers, httpx2)

    def transport(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "elsewhere.test":
            return httpx2.Response(200, json={"access_token": "from-elsewhere", "token_type": "Bearer"})
        if request.url.path == "/token":
            return httpx2.Response(307, headers={"location": "https://elsewhere.test/token"})
        response: httpx2.Response = serve(request)
        return response

    provider = _provider(servers)
    async with httpx2.AsyncClient(
        auth=provider, transport=httpx2.MockTransport(transport), follow_redirects=True
    ) as client:
        with pytest.raises(OAuthFlowError) as info:
            await client.get(servers.mcp_url)
    assert info.value.status == 307, info.value
    assert provider.current_tokens is None
