"""The built-ins: file token store, loopback receiver with the browser, client credentials."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest

from conftest import INITIALIZE, MCP_HEADERS, HeadlessBrowser, InMemoryTokenStorage, as_state, metadata

from mcp_oauth_client import (
    ClientCredentialsOAuthProvider,
    FileTokenStorage,
    LoopbackReceiver,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthClientProvider,
    OAuthToken,
)

HERE = Path(__file__).resolve().parent


async def test_file_storage_roundtrip(tmp_path: Path) -> None:
    s = FileTokenStorage("http://127.0.0.1:1/mcp", tmp_path)
    assert await s.get_tokens() is None and await s.get_client_info() is None
    await s.set_tokens(OAuthToken(access_token="at", refresh_token="rt", expires_in=60, expires_at=123.0))
    await s.set_client_info(OAuthClientInformationFull(client_id="cid", client_secret="cs", issuer="http://as"))
    again = FileTokenStorage("http://127.0.0.1:1/mcp", tmp_path)
    t = await again.get_tokens()
    c = await again.get_client_info()
    assert t is not None and (t.access_token, t.refresh_token, t.expires_at) == ("at", "rt", 123.0)
    assert c is not None and (c.client_id, c.client_secret, c.issuer) == ("cid", "cs", "http://as")
    files = [f for f in tmp_path.iterdir() if f.suffix == ".json"]
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600


async def test_loopback_receiver_and_browser_with_file_storage(
    peers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER", f"{sys.executable} {HERE / 'browser_helper.py'} %s")
    receiver = LoopbackReceiver("http://127.0.0.1:0/callback", timeout=30)
    assert not receiver.redirect_uri.endswith(":0/callback")
    p = OAuthClientProvider(
        peers["mcp_url"],
        OAuthClientMetadata(client_name="loopback test", redirect_uris=[receiver.redirect_uri]),
        FileTokenStorage(peers["mcp_url"], tmp_path),
        redirect_handler=receiver.redirect_handler,
        callback_handler=receiver.callback_handler,
    )
    async with httpx2.AsyncClient(auth=p) as client:
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text

    # The next run reads the file: nothing to ask, nothing to register.
    state = as_state(peers)
    browser = HeadlessBrowser()
    again = OAuthClientProvider(
        peers["mcp_url"],
        OAuthClientMetadata(redirect_uris=[receiver.redirect_uri]),
        FileTokenStorage(peers["mcp_url"], tmp_path),
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    with httpx.Client(auth=again) as client:
        r = client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200 and r.history == []
    assert as_state(peers) == state and browser.redirects == 0


def _register_client_credentials_client(peers: dict[str, Any], method: str) -> dict[str, Any]:
    r = httpx.post(
        f"{peers['issuer']}/reg",
        json={
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": method,
            "application_type": "web",
        },
        timeout=10,
    )
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_client_credentials(peers: dict[str, Any], method: str) -> None:
    client = _register_client_credentials_client(peers, method)
    storage = InMemoryTokenStorage()
    p = ClientCredentialsOAuthProvider(
        peers["mcp_url"],
        storage,
        client["client_id"],
        client["client_secret"],
        token_endpoint_auth_method=method,  # type: ignore[arg-type]
        scopes="mcp:read",
    )
    before = as_state(peers)["token_requests"].get("client_credentials", 0)
    async with httpx2.AsyncClient(auth=p) as http:
        r = await http.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text
    assert as_state(peers)["token_requests"].get("client_credentials", 0) == before + 1
    assert storage.tokens is not None and storage.tokens.scope == "mcp:read"


def test_default_file_storage_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    s = FileTokenStorage("http://127.0.0.1:1/mcp")
    assert s.directory == tmp_path / "mcp-oauth-client"
    assert os.path.isdir(s.directory)
