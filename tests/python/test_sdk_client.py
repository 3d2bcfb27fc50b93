"""The program of the SDK documentation, with this package's imports, against the real
peers through the MCP SDK 2.3.0 `Client` and `streamable_http_client`."""

from __future__ import annotations

from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import AnyUrl

from conftest import HeadlessBrowser, InMemoryTokenStorage, as_state

from mcp_oauth_client import OAuthClientMetadata, OAuthClientProvider


async def list_tools(mcp_url: str, provider: Any) -> list[str]:
    async with httpx2.AsyncClient(auth=provider, follow_redirects=True) as http_client:
        transport = streamable_http_client(mcp_url, http_client=http_client)
        async with Client(transport) as client:
            result = await client.list_tools()
            return [tool.name for tool in result.tools]


async def test_sdk_documentation_program_lists_tools(peers: dict[str, Any]) -> None:
    browser = HeadlessBrowser()
    storage = InMemoryTokenStorage()
    oauth = OAuthClientProvider(
        server_url=peers["mcp_url"],
        client_metadata=OAuthClientMetadata(
            client_name="Bookshop Agent",
            redirect_uris=[AnyUrl("http://127.0.0.1:3030/callback")],
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    before = as_state(peers)["authorizations"]
    tools = await list_tools(peers["mcp_url"], oauth)
    assert {"echo", "whoami", "slow", "admin_action"} <= set(tools)
    assert browser.redirects == 1 and browser.callbacks == 1
    assert as_state(peers)["authorizations"] == before + 1
    assert storage.tokens is not None and storage.client_info is not None
    assert storage.tokens.refresh_token
