"""The provider on plain httpx clients, sync and async, and on httpx2's sync client."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2

from conftest import INITIALIZE, MCP_HEADERS, HeadlessBrowser, InMemoryTokenStorage, as_state, metadata

from mcp_oauth_client import OAuthClientProvider


def test_provider_is_an_auth_of_both_libraries(peers: dict[str, Any]) -> None:
    p = OAuthClientProvider(peers["mcp_url"], metadata(), InMemoryTokenStorage())
    assert isinstance(p, httpx.Auth) and isinstance(p, httpx2.Auth)
    httpx.AsyncClient(auth=p)
    httpx2.AsyncClient(auth=p)


async def test_async_httpx(peers: dict[str, Any]) -> None:
    browser = HeadlessBrowser()
    p = OAuthClientProvider(
        peers["mcp_url"], metadata(), InMemoryTokenStorage(), browser.redirect_handler, browser.callback_handler
    )
    async with httpx.AsyncClient(auth=p) as client:
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text
        # The 401, then the OAuth requests, sent by this client: protected resource
        # and authorization server metadata, registration, token.
        assert [h.status_code for h in r.history] == [401, 200, 200, 201, 200]
        assert [h.request.method for h in r.history[1:]] == ["GET", "GET", "POST", "POST"]
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200 and r.history == []
    assert browser.redirects == 1


def test_sync_httpx_with_async_handlers(peers: dict[str, Any]) -> None:
    """Sync client, async callbacks (run on the package's private loop)."""
    browser = HeadlessBrowser()
    p = OAuthClientProvider(
        peers["mcp_url"], metadata(), InMemoryTokenStorage(), browser.redirect_handler, browser.callback_handler
    )
    before = as_state(peers)["authorizations"]
    with httpx.Client(auth=p) as client:
        for _ in range(3):
            r = client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
            assert r.status_code == 200, r.text
    assert as_state(peers)["authorizations"] == before + 1
    assert browser.redirects == 1


def test_sync_httpx2_with_sync_handlers_and_storage(peers: dict[str, Any]) -> None:
    """Plain functions work as callbacks too."""

    class SyncStorage:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        def get_tokens(self) -> Any:
            return self.data.get("tokens")

        def set_tokens(self, tokens: Any) -> None:
            self.data["tokens"] = tokens

        def get_client_info(self) -> Any:
            return self.data.get("client")

        def set_client_info(self, info: Any) -> None:
            self.data["client"] = info

    browser = HeadlessBrowser()
    storage = SyncStorage()
    p = OAuthClientProvider(
        peers["mcp_url"], metadata(), storage, browser.sync_redirect_handler, browser.sync_callback_handler
    )
    with httpx2.Client(auth=p) as client:
        r = client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text
    assert "tokens" in storage.data and "client" in storage.data
