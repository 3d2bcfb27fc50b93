"""No secret in any log record, exception message or repr, through the Python module.

One test runs a full flow of every grant against the real peers with the module's
logger (its bridge of the core's events to ``logging``) at its most verbose level,
DEBUG, and takes the
``repr()`` and ``str()`` of every provider, token, client information, handler value
and exception it meets. The secrets actually used are collected from what went over
the wire (the provider's OAuth requests go through the httpx client, whose event
hooks record each request and response), from the storage and from the keys the test
made; the test fails if any of them, or any 12-character window of one, appears in
what was captured.

Flows: the authorization-code flow with PKCE and dynamic registration (public, and
confidential with ``client_secret_basic`` and ``client_secret_post``), refresh with
rotation, log-out with revocation; client credentials with a secret (DPoP-bound, with a
key made here) and with ``private_key_jwt``; the device authorization grant (approved
on oidc-provider's own pages); enterprise authorization (ID token exchanged at the
IdP, ID-JAG presented with the JWT-bearer grant). Error paths: a revoked refresh token
(``invalid_grant``), a storage that fails, a stored token the MCP server rejects.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from conftest import INITIALIZE, MCP_HEADERS, HeadlessBrowser, InMemoryTokenStorage, metadata
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcp_oauth_client import (
    AuthorizationCodeResult,
    ClientCredentialsOAuthProvider,
    DeviceAuthorization,
    EnterpriseAuthOAuthProvider,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthClientProvider,
    OAuthToken,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)

ROOT = Path(__file__).resolve().parents[2]
APPROVER = ROOT / "tests" / "browser" / "approve_device.py"
WINDOW = 12
SECRET_FIELDS = {
    "code",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "refresh_token",
    "access_token",
    "id_token",
    "subject_token",
    "actor_token",
    "assertion",
    "device_code",
    "token",
    "registration_access_token",
}


class Run:
    """The secrets of the run, and what it printed."""

    def __init__(self) -> None:
        self.secrets: set[tuple[str, str]] = set()
        self.printed: list[str] = []

    def secret(self, what: str, value: str | None) -> None:
        if value:
            self.secrets.add((what, value))

    def show(self, *values: Any) -> None:
        for v in values:
            self.printed.append(repr(v))
            self.printed.append(str(v))

    def token(self, t: OAuthToken | None) -> None:
        if t is not None:
            self.secret("access token", t.access_token)
            self.secret("refresh token", t.refresh_token)
            extra = t.model_extra or {}
            self.secret("id_token", extra.get("id_token"))
            self.show(t)

    def client(self, c: OAuthClientInformationFull | None) -> None:
        if c is not None:
            self.secret("client secret", c.client_secret)
            self.show(c)

    def storage(self, s: InMemoryTokenStorage) -> None:
        self.token(s.tokens)
        self.client(s.client_info)

    def provider(self, p: OAuthClientProvider) -> None:
        self.show(p, p.context)
        self.token(p.current_tokens)

    def pem(self, what: str, pem: str) -> None:
        self.secret(what, pem)
        self.secret(what, "".join(line for line in pem.splitlines() if not line.startswith("-----")))

    def header(self, name: str, value: str) -> None:
        name = name.lower()
        if name == "dpop":
            self.secret("DPoP proof", value)
        if name != "authorization" or " " not in value:
            return
        scheme, credentials = value.split(" ", 1)
        self.secret("authorization credentials", credentials)
        if scheme.lower() == "basic":
            _, _, secret = base64.b64decode(credentials).decode().partition(":")
            from urllib.parse import unquote

            self.secret("client secret (basic)", unquote(secret))

    def body(self, raw: bytes) -> None:
        try:
            v = json.loads(raw)
        except ValueError:
            if raw[:1] != b"<":
                for k, val in parse_qsl(raw.decode(errors="replace")):
                    if k in SECRET_FIELDS:
                        self.secret(k, val)
            return
        if isinstance(v, dict):
            for k in SECRET_FIELDS:
                if isinstance(v.get(k), str):
                    self.secret(k, v[k])

    def client_hooks(self) -> dict[str, list[Any]]:
        """httpx event hooks recording every exchange's secrets."""

        async def on_request(request: httpx.Request) -> None:
            for k, v in request.headers.items():
                self.header(k, v)
            self.body(request.content)

        async def on_response(response: httpx.Response) -> None:
            await response.aread()
            self.body(response.content)

        return {"request": [on_request], "response": [on_response]}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def significant_parts(secret: str) -> list[str]:
    """A JWT's claims and signature (its header is public and alike across JWTs of
    a kind), or the whole value."""
    parts = secret.split(".")
    if len(parts) == 3 and parts[0].startswith("eyJ"):
        return parts[1:]
    return [secret]


def find_leak(text: str, secret: str) -> str | None:
    def line(at: int) -> str:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        return text[start : end if end >= 0 else len(text)]

    if secret in text:
        return line(text.index(secret))
    for part in significant_parts(secret):
        for i in range(0, len(part) - WINDOW + 1):
            at = text.find(part[i : i + WINDOW])
            if at >= 0:
                return line(at)
    return None


class RecordingBrowser(HeadlessBrowser):
    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    async def callback_handler(self) -> AuthorizationCodeResult:
        result = await super().callback_handler()
        self.run.secret("authorization code", result.code)
        self.run.show(result)
        return result


async def mcp_session(run: Run, p: Any, url: str) -> None:
    """initialize and tools/list through an httpx client carrying the provider."""
    async with httpx.AsyncClient(auth=p, timeout=30, event_hooks=run.client_hooks()) as http:
        r = await http.post(url, json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text
        headers = {**MCP_HEADERS}
        if sid := r.headers.get("mcp-session-id"):
            headers["mcp-session-id"] = sid
        r = await http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}, headers=headers)
        assert r.status_code == 200, r.text
        for k, v in r.request.headers.items():
            run.header(k, v)


def register(run: Run, peers: dict[str, Any], meta: dict[str, Any]) -> tuple[str, str | None]:
    r = httpx.post(f"{peers['issuer']}/reg", json={"application_type": "web", **meta}, timeout=10)
    assert r.status_code == 201, r.text
    body = r.json()
    run.secret("pre-registered client secret", body.get("client_secret"))
    run.secret("registration access token", body.get("registration_access_token"))
    return str(body["client_id"]), body.get("client_secret")


def expired(token: OAuthToken) -> OAuthToken:
    return token.model_copy(update={"expires_in": 60, "expires_at": time.time() - 60})


async def authorization_code_flows(run: Run, peers: dict[str, Any]) -> int:
    flows = 0
    for method in (None, "client_secret_basic", "client_secret_post"):
        storage, browser = InMemoryTokenStorage(), RecordingBrowser(run)
        meta = metadata(token_endpoint_auth_method=method) if method else metadata()
        p = OAuthClientProvider(peers["mcp_url"], meta, storage, browser.redirect_handler, browser.callback_handler)
        await mcp_session(run, p, peers["mcp_url"])
        run.provider(p)
        run.storage(storage)
        flows += 1
        if method is None:
            # Refresh with rotation: the stored token is past its expiry.
            assert storage.tokens is not None
            first = storage.tokens
            storage.tokens = expired(first)
            p = OAuthClientProvider(peers["mcp_url"], meta, storage, browser.redirect_handler, browser.callback_handler)
            await mcp_session(run, p, peers["mcp_url"])
            rotated = storage.tokens
            assert rotated.refresh_token != first.refresh_token, "the refresh token rotates"
            assert browser.redirects == 1, "a refresh, not a new authorization"
            run.provider(p)
            run.storage(storage)
            flows += 1
        out = await p.logout()
        run.show(out)
        assert out.had_tokens and out.revocation_endpoint
        flows += 1
        if method is None:
            # The revoked refresh token is refused (invalid_grant): a new flow follows.
            storage.tokens = expired(rotated)
            p = OAuthClientProvider(peers["mcp_url"], meta, storage, browser.redirect_handler, browser.callback_handler)
            await mcp_session(run, p, peers["mcp_url"])
            assert browser.redirects == 2, "invalid_grant on refresh, then a new authorization"
            run.provider(p)
            run.storage(storage)
            flows += 1
            # A stored token the MCP server rejects (a 401 with the token sent).
            bogus = base64.urlsafe_b64encode(b"not a token of this server, 1234567890").decode().rstrip("=")
            run.secret("rejected access token", bogus)
            assert storage.tokens is not None
            storage.tokens = storage.tokens.model_copy(update={"access_token": bogus})
            p = OAuthClientProvider(peers["mcp_url"], meta, storage, browser.redirect_handler, browser.callback_handler)
            await mcp_session(run, p, peers["mcp_url"])
            run.provider(p)
            run.storage(storage)
            flows += 1
    return flows


async def client_credentials_flows(run: Run, peers: dict[str, Any]) -> int:
    def m2m(method: str, **extra: Any) -> dict[str, Any]:
        return {
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": method,
            **extra,
        }

    flows = 0
    key = ec.generate_private_key(ec.SECP256R1())
    dpop_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    run.pem("DPoP private key (PEM)", dpop_pem)
    d = key.private_numbers().private_value.to_bytes(32, "big")
    run.secret("DPoP private key (JWK d)", base64.urlsafe_b64encode(d).decode().rstrip("="))
    for method in ("client_secret_basic", "client_secret_post"):
        client_id, secret = register(run, peers, m2m(method))
        assert secret
        storage = InMemoryTokenStorage()
        p = ClientCredentialsOAuthProvider(
            peers["mcp_url"],
            storage,
            client_id,
            secret,
            token_endpoint_auth_method=method,  # type: ignore[arg-type]
            issuer=peers["issuer"],
            dpop=method == "client_secret_basic",
            dpop_key=dpop_pem if method == "client_secret_basic" else None,
        )
        await mcp_session(run, p, peers["mcp_url"])
        run.provider(p)
        run.storage(storage)
        flows += 1

    # private_key_jwt with an EC key made here.
    jwt_key = ec.generate_private_key(ec.SECP256R1())
    pem = jwt_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    run.pem("private_key_jwt key (PEM)", pem)
    numbers = jwt_key.public_key().public_numbers()
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).decode().rstrip("=")  # noqa: E731
    jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y), "use": "sig"}
    client_id, _ = register(
        run, peers, m2m("private_key_jwt", jwks={"keys": [jwk]}, token_endpoint_auth_signing_alg="ES256")
    )
    params = SignedJWTParameters(issuer=client_id, subject=client_id, signing_key=pem, signing_algorithm="ES256")
    run.show(params)
    storage = InMemoryTokenStorage()
    p = PrivateKeyJWTOAuthProvider(
        peers["mcp_url"],
        storage,
        client_id,
        params.create_assertion_provider(),
        issuer=peers["issuer"],
    )
    await mcp_session(run, p, peers["mcp_url"])
    run.provider(p)
    run.storage(storage)
    flows += 1
    return flows


async def device_flow(run: Run, peers: dict[str, Any]) -> int:
    shown: list[DeviceAuthorization] = []
    event = asyncio.Event()

    def screen(a: DeviceAuthorization) -> None:
        run.show(a)
        shown.append(a)
        event.set()

    storage = InMemoryTokenStorage()
    p = OAuthClientProvider(
        peers["mcp_url"],
        OAuthClientMetadata(client_name="secrets test (device)", redirect_uris=None),
        storage,
        device_code_handler=screen,
        timeout=120,
    )
    session = asyncio.create_task(mcp_session(run, p, peers["mcp_url"]))
    await asyncio.wait_for(event.wait(), 30)
    approver = await asyncio.create_subprocess_exec(
        sys.executable, str(APPROVER), shown[0].verification_uri, shown[0].user_code
    )
    assert await approver.wait() == 0
    await asyncio.wait_for(session, 60)
    run.provider(p)
    run.storage(storage)
    run.show(await p.logout())
    return 1


async def enterprise_flow(run: Run, peers: dict[str, Any]) -> int:
    client_id, secret = register(
        run,
        peers,
        {
            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_post",
        },
    )
    assert secret
    id_token = httpx.post(
        f"{peers['control_url']}/id-token", json={"sub": "alice", "client_id": client_id}, timeout=10
    ).json()["id_token"]
    run.secret("ID token", id_token)
    run.secret("IdP client secret", "idp-secret")
    storage = InMemoryTokenStorage()
    p = EnterpriseAuthOAuthProvider(
        server_url=peers["mcp_url"],
        storage=storage,
        client_id=client_id,
        client_secret=secret,
        idp_token_endpoint=f"{peers['issuer']}/idp/token",
        id_token=id_token,
        idp_client_id="idp-client",
        idp_client_secret="idp-secret",
        issuer=peers["issuer"],
        token_endpoint_auth_method="client_secret_post",
    )
    await mcp_session(run, p, peers["mcp_url"])
    run.provider(p)
    run.storage(storage)
    return 1


class Boom(Exception):
    pass


async def failing_storage(run: Run, peers: dict[str, Any]) -> int:
    class Failing(InMemoryTokenStorage):
        async def set_tokens(self, tokens: OAuthToken) -> None:
            run.token(tokens)
            raise Boom("the disk is full")

    browser = RecordingBrowser(run)
    p = OAuthClientProvider(peers["mcp_url"], metadata(), Failing(), browser.redirect_handler, browser.callback_handler)
    with pytest.raises(Boom) as caught:
        await mcp_session(run, p, peers["mcp_url"])
    run.show(caught.value)
    # A token endpoint refusal: a client secret the server does not know.
    storage = InMemoryTokenStorage()
    client_id, _ = register(run, peers, {"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []})
    wrong = base64.urlsafe_b64encode(b"a secret the server never issued!").decode()
    run.secret("wrong client secret", wrong)
    p2 = ClientCredentialsOAuthProvider(peers["mcp_url"], storage, client_id, wrong, issuer=peers["issuer"])
    with pytest.raises(Exception) as refused:
        await mcp_session(run, p2, peers["mcp_url"])
    run.show(refused.value, refused.value.__cause__, refused.value.__context__)
    return 2


@pytest.mark.timeout(120)
async def test_no_secret_in_logs_errors_or_reprs(peers: dict[str, Any]) -> None:
    # The module's logger (the core's events bridged to logging) at its most
    # verbose level. Other libraries' loggers are not ours to judge: httpcore's
    # DEBUG records show the Location header of the test's own "browser", code
    # and all.
    capture = Capture()
    ours = logging.getLogger("mcp_oauth_client")
    ours.addHandler(capture)
    ours.setLevel(logging.DEBUG)
    run = Run()
    try:
        flows = await authorization_code_flows(run, peers)
        flows += await client_credentials_flows(run, peers)
        flows += await device_flow(run, peers)
        flows += await enterprise_flow(run, peers)
        flows += await failing_storage(run, peers)
        # The detector: a piece of a secret logged is caught.
        canary = base64.urlsafe_b64encode(b"canary secret of the detector itself").decode()
        logging.getLogger("mcp_oauth_client.test").debug("a piece: %s", canary[5:20])
    finally:
        ours.removeHandler(capture)
        ours.setLevel(logging.NOTSET)

    logs = "\n".join(capture.lines)
    printed = "\n".join(run.printed)
    distinct = {v for _, v in run.secrets}
    print(
        f"{flows} flows; {len(distinct)} distinct secret values; {len(logs)} bytes of log, "
        f"{len(printed)} bytes of repr/str output"
    )
    assert find_leak(logs, canary), "the detector missed the canary"
    assert any(line.startswith("DEBUG mcp_oauth_client") for line in capture.lines), "the core's DEBUG events"
    assert "refreshed the access token" in logs and "revoked" in logs, logs[-2000:]
    kinds = {k for k, _ in run.secrets}
    for kind in (
        "access token",
        "refresh token",
        "client secret",
        "code_verifier",
        "authorization code",
        "client_assertion",
        "DPoP proof",
        "DPoP private key (JWK d)",
        "ID token",
        "subject_token",
        "device_code",
    ):
        assert kind in kinds, f"no {kind} was collected"
    leaks = []
    for what, value in sorted(run.secrets):
        if value == canary:
            continue
        for place, text in (("log", logs), ("repr/str output", printed)):
            line = find_leak(text, value)
            if line is not None:
                leaks.append(f"{what} in the {place}: {line[:300]}")
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks)
