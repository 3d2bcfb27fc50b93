"""Smoke test of the test peers, with plain httpx (no OAuth library).

Run: .venv/bin/python -m pytest tests/peers -q
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pytest

pytestmark = pytest.mark.timeout(90)

HERE = Path(__file__).resolve().parent
REDIRECT_URI = "http://127.0.0.1:53682/callback"
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "smoke", "version": "0"}},
}


def launch(*args: str):
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "launch.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        raise RuntimeError(f"launcher exited with {proc.returncode} before printing its JSON line")
    return proc, json.loads(line)


def shutdown(proc: subprocess.Popen) -> None:
    proc.stdin.close()  # EOF on stdin stops the launcher and both peers
    assert proc.wait(15) == 0


@pytest.fixture(scope="module")
def peers():
    proc, info = launch()
    try:
        yield info
    finally:
        shutdown(proc)


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=15) as c:
        yield c


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def register(http, issuer, **extra):
    meta = {
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "client_name": "smoke test",
    }
    meta.update(extra)
    r = http.post(f"{issuer}/reg", json=meta)
    assert r.status_code == 201, r.text
    return r.json()


def authorize(http, issuer, client_id, resource, scope="mcp:read", state=None):
    verifier, challenge = pkce()
    state = state or secrets.token_urlsafe(16)
    r = http.get(
        f"{issuer}/auth",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": resource,
        },
    )
    assert r.status_code in (302, 303), r.text
    loc = r.headers["location"]
    assert loc.startswith(REDIRECT_URI + "?")
    q = {k: v[0] for k, v in parse_qs(urlparse(loc).query).items()}
    assert q.get("state") == state
    assert q.get("iss") == issuer
    return q, verifier


def full_flow(http, peers, scope="mcp:read"):
    client = register(http, peers["issuer"])
    q, verifier = authorize(http, peers["issuer"], client["client_id"], peers["mcp_url"], scope=scope)
    r = http.post(
        f"{peers['issuer']}/token",
        data={
            "grant_type": "authorization_code",
            "code": q["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": client["client_id"],
            "resource": peers["mcp_url"],
        },
        headers={"accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    return client, r.json()


def mcp_session(http, url, token):
    headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
    r = http.post(url, json=INIT, headers=headers)
    assert r.status_code == 200, r.text
    if sid := r.headers.get("mcp-session-id"):
        headers["mcp-session-id"] = sid
    headers["mcp-protocol-version"] = "2025-06-18"
    r = http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert r.status_code == 202, r.text
    return headers


def call_tool(http, url, headers, name, arguments=None):
    return http.post(
        url,
        json={"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments or {}}},
        headers=headers,
    )


def rpc_result(response: httpx.Response) -> dict:
    """The JSON-RPC message of a response, SSE or JSON."""
    if response.headers["content-type"].startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                return json.loads(line[5:])
        raise AssertionError(f"no data in SSE response: {response.text!r}")
    return response.json()


def test_unauthenticated_request_gets_401_with_resource_metadata(http, peers):
    r = http.post(peers["mcp_url"], json=INIT, headers=MCP_HEADERS)
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{peers["prm_url"]}"' in challenge


def test_protected_resource_metadata(http, peers):
    r = http.get(peers["prm_url"])
    assert r.status_code == 200
    prm = r.json()
    assert prm["resource"] == peers["mcp_url"]
    assert prm["authorization_servers"] == [peers["issuer"]]
    assert "mcp:read" in prm["scopes_supported"]


def test_authorization_server_metadata(http, peers):
    r = http.get(f"{peers['issuer']}/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    md = r.json()
    assert md["issuer"] == peers["issuer"]
    assert "S256" in md["code_challenge_methods_supported"]
    assert md["authorization_response_iss_parameter_supported"] is True
    assert md["registration_endpoint"].startswith(peers["issuer"])
    assert md["client_id_metadata_document_supported"] is True
    assert md["response_types_supported"] == ["code"]
    assert {"none", "client_secret_basic", "client_secret_post", "private_key_jwt"} <= set(
        md["token_endpoint_auth_methods_supported"]
    )
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(md["grant_types_supported"])
    # OpenID discovery serves the same issuer
    assert http.get(f"{peers['issuer']}/.well-known/openid-configuration").json()["issuer"] == peers["issuer"]


def test_code_flow_token_refresh_and_reuse_detection(http, peers):
    client, tokens = full_flow(http, peers)
    at = tokens["access_token"]
    assert jwt.get_unverified_header(at)["alg"] == "ES256"
    claims = jwt.decode(at, options={"verify_signature": False})
    assert claims["aud"] == peers["mcp_url"]
    assert claims["iss"] == peers["issuer"]
    assert claims["scope"] == "mcp:read"
    assert claims["client_id"] == client["client_id"]
    assert tokens["token_type"].lower() == "bearer"
    assert "refresh_token" in tokens

    headers = mcp_session(http, peers["mcp_url"], at)
    who = rpc_result(call_tool(http, peers["mcp_url"], headers, "whoami"))
    assert who["result"]["structuredContent"]["client_id"] == client["client_id"]
    assert who["result"]["structuredContent"]["scopes"] == ["mcp:read"]
    echo = rpc_result(call_tool(http, peers["mcp_url"], headers, "echo", {"text": "hello"}))
    assert echo["result"]["content"][0]["text"] == "hello"

    # refresh rotates the refresh token; the new access token still works
    def refresh(rt):
        return http.post(
            f"{peers['issuer']}/token",
            data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": client["client_id"]},
            headers={"accept": "application/json"},
        )

    r = refresh(tokens["refresh_token"])
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert jwt.decode(rotated["access_token"], options={"verify_signature": False})["aud"] == peers["mcp_url"]
    mcp_session(http, peers["mcp_url"], rotated["access_token"])

    # replaying the old refresh token fails, and revokes the whole grant
    r = refresh(tokens["refresh_token"])
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    r = refresh(rotated["refresh_token"])
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


def test_deny_control(http, peers):
    client = register(http, peers["issuer"])
    r = http.post(f"{peers['control_url']}/deny-next")
    assert r.status_code == 200
    verifier, challenge = pkce()
    r = http.get(
        f"{peers['issuer']}/auth",
        params={
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": REDIRECT_URI,
            "scope": "mcp:read",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": peers["mcp_url"],
        },
    )
    assert r.status_code in (302, 303)
    q = {k: v[0] for k, v in parse_qs(urlparse(r.headers["location"]).query).items()}
    assert q["error"] == "access_denied"
    assert q["state"] == "s1"
    assert q["iss"] == peers["issuer"]
    assert "code" not in q
    # only the next one is denied
    q, _ = authorize(http, peers["issuer"], client["client_id"], peers["mcp_url"])
    assert "code" in q


def test_pkce_is_required(http, peers):
    client = register(http, peers["issuer"])
    r = http.get(
        f"{peers['issuer']}/auth",
        params={
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": REDIRECT_URI,
            "scope": "mcp:read",
            "state": "s",
            "resource": peers["mcp_url"],
        },
    )
    q = {k: v[0] for k, v in parse_qs(urlparse(r.headers["location"]).query).items()}
    assert q["error"] == "invalid_request"


def test_unknown_resource_is_refused(http, peers):
    client = register(http, peers["issuer"])
    _, challenge = pkce()
    r = http.get(
        f"{peers['issuer']}/auth",
        params={
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": REDIRECT_URI,
            "scope": "mcp:read",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": "http://127.0.0.1:1/other",
        },
    )
    q = {k: v[0] for k, v in parse_qs(urlparse(r.headers["location"]).query).items()}
    assert q["error"] == "invalid_target"


def test_step_up_on_admin_action(http, peers):
    _, tokens = full_flow(http, peers, scope="mcp:read")
    headers = mcp_session(http, peers["mcp_url"], tokens["access_token"])
    r = call_tool(http, peers["mcp_url"], headers, "admin_action")
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="mcp:read mcp:admin"' in challenge
    assert f'resource_metadata="{peers["prm_url"]}"' in challenge

    _, tokens = full_flow(http, peers, scope="mcp:read mcp:admin")
    headers = mcp_session(http, peers["mcp_url"], tokens["access_token"])
    r = call_tool(http, peers["mcp_url"], headers, "admin_action")
    assert r.status_code == 200
    assert rpc_result(r)["result"]["content"][0]["text"] == "admin action done"


def test_token_for_another_audience_is_rejected(http, peers):
    _, tokens = full_flow(http, peers)
    other = peers["mcp_url"].replace("/mcp", "/other")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["aud"] != other
    # a tampered token (signature no longer matches) is refused with 401
    forged = tokens["access_token"][:-4] + ("AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB")
    r = http.post(peers["mcp_url"], json=INIT, headers={**MCP_HEADERS, "authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_client_credentials_with_secret(http, peers):
    client = register(
        http,
        peers["issuer"],
        grant_types=["client_credentials"],
        response_types=[],
        redirect_uris=[],
        token_endpoint_auth_method="client_secret_basic",
        application_type="web",
    )
    r = http.post(
        f"{peers['issuer']}/token",
        data={"grant_type": "client_credentials", "scope": "mcp:read", "resource": peers["mcp_url"]},
        auth=(client["client_id"], client["client_secret"]),
        headers={"accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    at = r.json()["access_token"]
    assert jwt.decode(at, options={"verify_signature": False})["aud"] == peers["mcp_url"]
    mcp_session(http, peers["mcp_url"], at)


def test_client_id_metadata_document(http, peers):
    """A CIMD client_id https://127.0.0.1:P/... is fetched by the AS over http."""
    holder = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(holder["doc"]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        client_id = f"https://127.0.0.1:{srv.server_address[1]}/client-metadata.json"
        holder["doc"] = {
            "client_id": client_id,
            "client_name": "cimd smoke",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        q, verifier = authorize(http, peers["issuer"], client_id, peers["mcp_url"])
        r = http.post(
            f"{peers['issuer']}/token",
            data={
                "grant_type": "authorization_code",
                "code": q["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": client_id,
            },
        )
        assert r.status_code == 200, r.text
        assert jwt.decode(r.json()["access_token"], options={"verify_signature": False})["client_id"] == client_id
    finally:
        srv.shutdown()


def test_short_access_token_ttl_and_json_responses(http):
    proc, info = launch("--access-token-ttl", "2", "--json-response")
    try:
        _, tokens = full_flow(http, info)
        assert tokens["expires_in"] <= 2
        headers = {**MCP_HEADERS, "authorization": f"Bearer {tokens['access_token']}"}
        r = http.post(info["mcp_url"], json=INIT, headers=headers)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        time.sleep(3.2)
        r = http.post(info["mcp_url"], json=INIT, headers=headers)
        assert r.status_code == 401
    finally:
        shutdown(proc)


def test_token_fault_and_access_token_ttl_controls(http):
    proc, info = launch("--access-token-ttl", "2")
    control, issuer = info["control_url"], info["issuer"]
    try:
        client, tokens = full_flow(http, info)
        assert tokens["expires_in"] <= 2

        def refresh(rt, timeout=15.0):
            return http.post(
                f"{issuer}/token",
                data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": client["client_id"]},
                headers={"accept": "application/json"},
                timeout=timeout,
            )

        def state():
            return http.get(f"{control}/state").json()

        assert http.post(f"{control}/token-fault", json={"mode": "nope"}).status_code == 400
        # 503 JSON with Retry-After, then 502 HTML: the refresh token is not consumed.
        r = http.post(f"{control}/token-fault", json={"mode": "503-json", "retry_after": 9})
        assert r.json()["token_fault"] == {"mode": "503-json", "remaining": 1, "retry_after": 9, "ms": None}
        r = refresh(tokens["refresh_token"])
        assert r.status_code == 503 and r.headers["retry-after"] == "9"
        assert r.json()["error"] == "temporarily_unavailable"
        http.post(f"{control}/token-fault", json={"mode": "502-html"})
        r = refresh(tokens["refresh_token"])
        assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
        # hang: no answer; the client's timeout ends it
        http.post(f"{control}/token-fault", json={"mode": "hang"})
        with pytest.raises(httpx.ReadTimeout):
            refresh(tokens["refresh_token"], timeout=0.5)
        # "off" clears a pending fault
        http.post(f"{control}/token-fault", json={"mode": "503-json", "count": 5})
        assert http.post(f"{control}/token-fault", json={"mode": "off"}).json() == {"token_fault": None}
        # delay, released on demand; the access token lifetime changed meanwhile
        assert http.post(f"{control}/access-token-ttl", json={"seconds": 0}).status_code == 400
        assert http.post(f"{control}/access-token-ttl", json={"seconds": 600}).json() == {"access_token_ttl": 600}
        http.post(f"{control}/token-fault", json={"mode": "delay", "ms": 60000})
        result = {}
        t = threading.Thread(target=lambda: result.update(r=refresh(tokens["refresh_token"])))
        t.start()
        deadline = time.monotonic() + 30
        while state()["delayed_token_requests"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert http.post(f"{control}/token-fault", json={"mode": "release"}).json()["released"] == 1
        t.join(30)
        r = result["r"]
        assert r.status_code == 200, r.text
        assert r.json()["expires_in"] == 600
        s = state()
        assert s["token_endpoint_posts"] == 5  # the code, 503, 502, hang, delayed refresh
        assert s["token_requests"] == {"authorization_code": 1, "refresh_token": 1}
        assert s["token_errors"] == {}
        assert s["token_fault"] is None and s["delayed_token_requests"] == 0
        assert s["access_token_ttl"] == 600
        assert s["metadata_requests"] == 0
        # refused token requests are counted by error
        assert refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
        assert state()["token_errors"] == {"invalid_grant": 1}
    finally:
        shutdown(proc)


def test_reference_sdk_client_interoperates(peers):
    """The MCP Python SDK's own OAuth client completes the flow against both peers
    (DCR with `scope`, prompt=consent, PKCE, resource, iss check)."""
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import OAuthClientMetadata

    class Storage:
        tokens = client_info = None

        async def get_tokens(self):
            return self.tokens

        async def set_tokens(self, tokens):
            self.tokens = tokens

        async def get_client_info(self):
            return self.client_info

        async def set_client_info(self, info):
            self.client_info = info

    results = []

    async def redirect_handler(url):
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as h:
            r = await h.get(url)
        q = {k: v[0] for k, v in parse_qs(urlparse(r.headers["location"]).query).items()}
        results.append(AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss")))

    async def callback_handler():
        return results.pop()

    async def run():
        auth = OAuthClientProvider(
            server_url=peers["mcp_url"],
            client_metadata=OAuthClientMetadata(
                client_name="sdk interop",
                redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                application_type="native",
            ),
            storage=Storage(),
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
        )
        async with httpx2.AsyncClient(auth=auth, timeout=20) as http:
            async with Client(streamable_http_client(peers["mcp_url"], http_client=http)) as client:
                names = [t.name for t in (await client.list_tools()).tools]
                assert {"echo", "whoami", "slow", "admin_action"} <= set(names)
                who = await client.call_tool("whoami", {})
                return who.structured_content

    who = asyncio.run(run())
    assert who["aud"] == peers["mcp_url"]
    assert who["scopes"] == ["mcp:read"]


class DpopKey:
    """A DPoP key of the test's own, making proofs with PyJWT (RFC 9449 §4)."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        members = {m: self.jwk[m] for m in ("crv", "kty", "x", "y")}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
        self.thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()

    def proof(self, method, url, token=None, nonce=None, **overrides):
        claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
        if token is not None:
            claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(overrides)
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": self.jwk})


def dpop_client_credentials(http, peers, key):
    client = register(
        http,
        peers["issuer"],
        grant_types=["client_credentials"],
        response_types=[],
        redirect_uris=[],
        token_endpoint_auth_method="client_secret_basic",
        application_type="web",
    )
    token_url = f"{peers['issuer']}/token"

    def ask(nonce=None):
        return http.post(
            token_url,
            data={"grant_type": "client_credentials", "scope": "mcp:read", "resource": peers["mcp_url"]},
            auth=(client["client_id"], client["client_secret"]),
            headers={"accept": "application/json", "dpop": key.proof("POST", token_url, nonce=nonce)},
        )

    return ask


def dpop_refusal(response: httpx.Response) -> str:
    """The error of a 401 with a DPoP challenge."""
    assert response.status_code == 401, response.text
    bearer, dpop = response.headers.get_list("www-authenticate")
    assert bearer.startswith("Bearer resource_metadata="), bearer
    assert dpop.startswith("DPoP error="), dpop
    error = response.json()["error"]
    assert f'error="{error}"' in dpop
    return error


def test_dpop_bound_tokens_and_every_proof_checked(http, peers):
    key = DpopKey()
    r = dpop_client_credentials(http, peers, key)()
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    at = r.json()["access_token"]
    claims = jwt.decode(at, options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": key.thumbprint}
    assert claims["aud"] == peers["mcp_url"]
    url, control = peers["mcp_url"], peers["mcp_control_url"]
    before = http.get(f"{control}/state").json()["dpop"]

    def send(proof, scheme="DPoP", token=at):
        headers = {**MCP_HEADERS, "authorization": f"{scheme} {token}"}
        if proof is not None:
            headers["dpop"] = proof
        return http.post(url, json=INIT, headers=headers)

    good = key.proof("POST", url, at)
    assert send(good).status_code == 200
    # each request needs its own proof: the same one again is a replay
    r = send(good)
    assert dpop_refusal(r) == "invalid_dpop_proof" and "replayed" in r.json()["error_description"]
    assert send(key.proof("POST", url, at)).status_code == 200
    # another key, though a valid proof of its own
    r = send(DpopKey().proof("POST", url, at))
    assert dpop_refusal(r) == "invalid_dpop_proof" and "another key" in r.json()["error_description"]
    # the claims that tie a proof to its request and token
    assert dpop_refusal(send(key.proof("GET", url, at))) == "invalid_dpop_proof"
    assert dpop_refusal(send(key.proof("POST", url + "/other", at))) == "invalid_dpop_proof"
    assert dpop_refusal(send(key.proof("POST", url, "another-token"))) == "invalid_dpop_proof"
    assert dpop_refusal(send(key.proof("POST", url, at, iat=int(time.time()) - 600))) == "invalid_dpop_proof"
    assert dpop_refusal(send(None)) == "invalid_dpop_proof"
    # a bound token is no bearer token
    assert dpop_refusal(send(None, scheme="Bearer")) == "invalid_token"
    # an unbound token is no DPoP token
    _, bearer = full_flow(http, peers)
    assert bearer["token_type"] == "Bearer"
    assert dpop_refusal(send(key.proof("POST", url, bearer["access_token"]), token=bearer["access_token"])) == "invalid_token"

    after = http.get(f"{control}/state").json()["dpop"]
    assert after["accepted"] - before["accepted"] == 2
    refused = {k: v - before["refused"].get(k, 0) for k, v in after["refused"].items()}
    assert refused == {"invalid_dpop_proof": 7, "invalid_token": 2}


def test_dpop_nonces_at_the_resource_server(http, peers):
    key = DpopKey()
    r = dpop_client_credentials(http, peers, key)()
    assert r.status_code == 200, r.text
    at = r.json()["access_token"]
    url, control = peers["mcp_url"], peers["mcp_control_url"]

    def send(nonce=None):
        headers = {**MCP_HEADERS, "authorization": f"DPoP {at}", "dpop": key.proof("POST", url, at, nonce=nonce)}
        return http.post(url, json=INIT, headers=headers)

    assert http.post(f"{control}/dpop", json={"require_nonce": "yes"}).status_code == 400
    try:
        http.post(f"{control}/dpop", json={"require_nonce": True})
        r = send()
        assert dpop_refusal(r) == "use_dpop_nonce"
        first = r.headers["dpop-nonce"]
        assert send(first).status_code == 200
        assert send(first).status_code == 200
        # rotated: the old nonce is stale now
        assert http.post(f"{control}/dpop", json={"rotate": True}).json()["nonces_issued"] >= 2
        r = send(first)
        assert dpop_refusal(r) == "use_dpop_nonce"
        second = r.headers["dpop-nonce"]
        assert second != first
        assert send(second).status_code == 200
        # a server that never settles: every answer asks for yet another nonce
        http.post(f"{control}/dpop", json={"nonce_loop": True})
        r = send(second)
        third = r.headers["dpop-nonce"]
        assert dpop_refusal(r) == "use_dpop_nonce" and third != second
        assert dpop_refusal(send(third)) == "use_dpop_nonce"
    finally:
        http.post(f"{control}/dpop", json={"require_nonce": False, "nonce_loop": False})
    assert send().status_code == 200


def test_dpop_nonce_control_of_the_authorization_server(http, peers):
    key = DpopKey()
    ask = dpop_client_credentials(http, peers, key)
    control = peers["control_url"]
    assert http.post(f"{control}/dpop", json={}).status_code == 400
    try:
        assert http.post(f"{control}/dpop", json={"require_nonce": True}).json() == {"dpop_require_nonce": True}
        assert http.get(f"{control}/state").json()["dpop_require_nonce"] is True
        r = ask()
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
        nonce = r.headers["dpop-nonce"]
        r = ask(nonce)
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "DPoP"
        assert ask("not-the-nonce").json()["error"] == "use_dpop_nonce"
    finally:
        http.post(f"{control}/dpop", json={"require_nonce": False})
    assert ask().status_code == 200
