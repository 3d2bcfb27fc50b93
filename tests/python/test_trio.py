"""Under trio: the SDK runs on anyio, so with trio too, and so does this package. The
SDK's ``Client`` logs in through the real peers, the storage and handlers run as trio
code, and a second run through a new provider uses the stored tokens."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import HeadlessBrowser, InMemoryTokenStorage, as_state, metadata

from mcp_oauth_client import OAuthClientProvider

trio = pytest.importorskip("trio")


class TrioStorage(InMemoryTokenStorage):
    """A storage whose coroutines only trio can run (a trio checkpoint in each)."""

    async def get_tokens(self) -> Any:
        await trio.lowlevel.checkpoint()
        return await super().get_tokens()

    async def set_tokens(self, tokens: Any) -> None:
        await trio.lowlevel.checkpoint()
        await super().set_tokens(tokens)


async def list_tools(mcp_url: str, provider: OAuthClientProvider) -> list[str]:
    async with httpx2.AsyncClient(auth=provider) as http_client:
        async with Client(streamable_http_client(mcp_url, http_client=http_client)) as client:
            return [tool.name for tool in (await client.list_tools()).tools]


@pytest.mark.timeout(120)
def test_the_sdk_client_under_trio(peers: dict[str, Any]) -> None:
    browser, storage = HeadlessBrowser(), TrioStorage()
    before = as_state(peers)["authorizations"]

    def provider() -> OAuthClientProvider:
        return OAuthClientProvider(
            peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler
        )

    async def main() -> tuple[list[str], list[str]]:
        first = await list_tools(peers["mcp_url"], provider())
        second = await list_tools(peers["mcp_url"], provider())
        return first, second

    first, second = trio.run(main)
    assert first and first == second
    assert browser.redirects == 1
    assert as_state(peers)["authorizations"] == before + 1
    assert storage.tokens is not None


@pytest.mark.timeout(120)
def test_authorize_under_trio(peers: dict[str, Any]) -> None:
    browser, storage = HeadlessBrowser(), TrioStorage()
    p = OAuthClientProvider(peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler)
    trio.run(p.authorize)
    assert storage.tokens is not None and browser.redirects == 1
