"""Storage that returns the SDK's models, a second run from storage, refresh, step-up."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared import auth as sdk

from conftest import HeadlessBrowser, as_state, metadata

from mcp_oauth_client import OAuthClientProvider, OAuthToken


class SdkModelStorage:
    """Persists with the SDK's models' own methods, as a storage written for the SDK does,
    and counts every call."""

    def __init__(self) -> None:
        self.tokens_json: str | None = None
        self.client_json: str | None = None
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def get_tokens(self) -> sdk.OAuthToken | None:
        self._count("get_tokens")
        return None if self.tokens_json is None else sdk.OAuthToken.model_validate_json(self.tokens_json)

    async def set_tokens(self, tokens: sdk.OAuthToken) -> None:
        self._count("set_tokens")
        self.tokens_json = tokens.model_dump_json()

    async def get_client_info(self) -> sdk.OAuthClientInformationFull | None:
        self._count("get_client_info")
        if self.client_json is None:
            return None
        return sdk.OAuthClientInformationFull.model_validate_json(self.client_json)

    async def set_client_info(self, client_info: sdk.OAuthClientInformationFull) -> None:
        self._count("set_client_info")
        self.client_json = client_info.model_dump_json()


async def call(mcp_url: str, provider: Any, tool: str, args: dict[str, Any] | None = None) -> Any:
    async with httpx2.AsyncClient(auth=provider) as http_client:
        async with Client(streamable_http_client(mcp_url, http_client=http_client)) as client:
            return await client.call_tool(tool, args or {})


async def test_second_run_from_stored_sdk_models_asks_no_one(peers: dict[str, Any]) -> None:
    storage = SdkModelStorage()
    browser = HeadlessBrowser()
    first = OAuthClientProvider(
        peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler
    )
    who = await call(peers["mcp_url"], first, "whoami")
    assert not who.is_error
    client_id = json.loads(storage.client_json or "{}")["client_id"]
    assert storage.calls["set_client_info"] == 1

    # A new process: a new provider on the same storage.
    state = as_state(peers)
    storage.calls.clear()
    second_browser = HeadlessBrowser()
    second = OAuthClientProvider(
        peers["mcp_url"], metadata(), storage, second_browser.redirect_handler, second_browser.callback_handler
    )
    who = await call(peers["mcp_url"], second, "whoami")
    assert not who.is_error
    assert client_id in who.content[0].text
    after = as_state(peers)
    assert after["authorizations"] == state["authorizations"], "nobody was asked"
    assert after["token_requests"] == state["token_requests"], "no token request"
    assert second_browser.redirects == 0 and second_browser.callbacks == 0
    assert "set_client_info" not in storage.calls, "nothing registered"
    assert "set_tokens" not in storage.calls


async def test_refresh_with_a_short_lived_token(short_peers: dict[str, Any]) -> None:
    peers = short_peers
    storage = SdkModelStorage()
    browser = HeadlessBrowser()
    p = OAuthClientProvider(peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler)
    async with httpx2.AsyncClient(auth=p) as http_client:
        async with Client(streamable_http_client(peers["mcp_url"], http_client=http_client)) as client:
            assert not (await client.call_tool("echo", {"text": "one"})).is_error
            first = p.current_tokens
            assert first is not None and first.expires_in == 3
            refreshes = as_state(peers)["token_requests"].get("refresh_token", 0)
            await asyncio.sleep(3.2)
            assert not (await client.call_tool("echo", {"text": "two"})).is_error
    assert as_state(peers)["token_requests"].get("refresh_token", 0) == refreshes + 1
    assert browser.redirects == 1, "a refresh, not a new authorization"
    second = p.current_tokens
    assert second is not None and second.access_token != first.access_token
    stored = OAuthToken.model_validate_json(storage.tokens_json or "{}")
    assert stored.access_token == second.access_token


async def test_step_up_on_insufficient_scope(peers: dict[str, Any]) -> None:
    storage = SdkModelStorage()
    browser = HeadlessBrowser()
    p = OAuthClientProvider(peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler)
    async with httpx2.AsyncClient(auth=p) as http_client:
        async with Client(streamable_http_client(peers["mcp_url"], http_client=http_client)) as client:
            assert not (await client.call_tool("echo", {"text": "x"})).is_error
            tokens = p.current_tokens
            assert tokens is not None and "mcp:admin" not in (tokens.scope or "")
            result = await client.call_tool("admin_action", {})
            assert not result.is_error, result
    assert browser.redirects == 2
    tokens = p.current_tokens
    assert tokens is not None and {"mcp:read", "mcp:admin"} <= set((tokens.scope or "").split())


async def test_storage_of_plain_dicts_and_handlers_on_the_callers_loop(peers: dict[str, Any]) -> None:
    import threading

    loop, thread = asyncio.get_running_loop(), threading.current_thread()
    seen: list[bool] = []

    class DictStorage:
        def __init__(self) -> None:
            self.data: dict[str, dict[str, Any]] = {}

        async def get_tokens(self) -> dict[str, Any] | None:
            seen.append(asyncio.get_running_loop() is loop and threading.current_thread() is thread)
            return self.data.get("tokens")

        async def set_tokens(self, tokens: OAuthToken) -> None:
            self.data["tokens"] = tokens.model_dump()

        async def get_client_info(self) -> dict[str, Any] | None:
            return self.data.get("client")

        async def set_client_info(self, client_info: Any) -> None:
            self.data["client"] = client_info.model_dump(mode="json")

    browser = HeadlessBrowser()

    async def redirect(url: str) -> None:
        seen.append(asyncio.get_running_loop() is loop and threading.current_thread() is thread)
        await browser.redirect_handler(url)

    storage = DictStorage()
    first = OAuthClientProvider(peers["mcp_url"], metadata(), storage, redirect, browser.callback_handler)
    assert not (await call(peers["mcp_url"], first, "whoami")).is_error
    assert isinstance(storage.data["tokens"], dict)
    second = OAuthClientProvider(peers["mcp_url"], metadata(), storage, redirect, browser.callback_handler)
    assert not (await call(peers["mcp_url"], second, "whoami")).is_error
    assert browser.redirects == 1, "the second provider used the dicts"
    assert seen and all(seen)
