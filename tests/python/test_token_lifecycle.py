"""The token lifecycle through the real authorization server (rotating refresh tokens
with reuse detection): a request cancelled in the middle of a refresh, an outage of
the token endpoint, the client's own timeout, and callback exceptions raised inside a
refresh (which runs as a task of its own)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import httpx2
import pytest

from conftest import INITIALIZE, MCP_HEADERS, HeadlessBrowser, InMemoryTokenStorage, as_state, metadata

from mcp_oauth_client import OAuthClientProvider, OAuthServerError, OAuthTimeoutError, OAuthToken


def token_fault(peers: dict[str, Any], **fault: Any) -> None:
    """Delay and/or fail the authorization server's next token request."""
    httpx.post(f"{peers['control_url']}/token-fault", json=fault, timeout=10).raise_for_status()


def refreshes(peers: dict[str, Any]) -> int:
    return int(as_state(peers)["token_requests"].get("refresh_token", 0))


def expired(token: OAuthToken) -> OAuthToken:
    """The same tokens, recorded as expired a minute ago: the next request refreshes."""
    return token.model_copy(update={"expires_in": 60, "expires_at": time.time() - 60})


async def authorized(peers: dict[str, Any]) -> tuple[InMemoryTokenStorage, HeadlessBrowser]:
    """A storage holding tokens from one authorization, marked expired, and the
    browser that authorized (to count any further authorization)."""
    storage, browser = InMemoryTokenStorage(), HeadlessBrowser()
    p = OAuthClientProvider(peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler)
    await p.authorize()
    assert storage.tokens is not None and storage.tokens.refresh_token
    storage.tokens = expired(storage.tokens)
    return storage, browser


def provider(
    peers: dict[str, Any], storage: Any, browser: HeadlessBrowser, oauth_requests: Any = "client"
) -> OAuthClientProvider:
    """A new provider (a new process, say) over the storage."""
    return OAuthClientProvider(
        peers["mcp_url"],
        metadata(),
        storage,
        browser.redirect_handler,
        browser.callback_handler,
        oauth_requests=oauth_requests,
    )


async def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_a_request_cancelled_in_the_middle_of_a_refresh_keeps_the_rotated_token(
    peers: dict[str, Any],
) -> None:
    """With the package's own HTTP client (``oauth_requests="native"``), the token
    request outlives the cancelled request (one sent by the application's client is
    cancelled with it)."""
    storage, browser = await authorized(peers)
    assert storage.tokens is not None
    old_refresh = storage.tokens.refresh_token
    authorizations, refreshed = as_state(peers)["authorizations"], refreshes(peers)
    p = provider(peers, storage, browser, oauth_requests="native")

    token_fault(peers, mode="delay", ms=60_000)
    async with httpx2.AsyncClient(auth=p, timeout=20) as client:
        task = asyncio.create_task(client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS))
        # The token request has reached the authorization server and is held
        # there: cancel the request now, then let the server answer.
        await wait_for(lambda: as_state(peers)["delayed_token_requests"] == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert storage.tokens.refresh_token == old_refresh  # not answered yet
        token_fault(peers, mode="release")

        # The refresh runs on: its rotated tokens reach the storage (through this
        # loop, which runs the storage's coroutines) and the provider.
        await wait_for(lambda: storage.tokens is not None and storage.tokens.refresh_token != old_refresh)
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200

    state = as_state(peers)
    assert state["authorizations"] == authorizations  # no new authorization
    assert refreshes(peers) == refreshed + 1  # one refresh, no invalid_grant retry
    assert browser.redirects == 1
    assert storage.tokens.refresh_token not in (None, old_refresh)
    assert p.current_tokens is not None and p.current_tokens.refresh_token == storage.tokens.refresh_token


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_an_outage_on_refresh_keeps_the_tokens_and_the_next_request_refreshes(
    peers: dict[str, Any], mode: str
) -> None:
    storage, browser = await authorized(peers)
    before = storage.tokens
    authorizations = as_state(peers)["authorizations"]
    p = provider(peers, storage, browser)

    token_fault(peers, mode="503-json", retry_after=7)
    if mode == "async":
        async with httpx2.AsyncClient(auth=p, timeout=20) as client:
            with pytest.raises(OAuthServerError) as info:
                await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    else:

        def send() -> None:
            with httpx.Client(auth=p, timeout=20) as client:
                client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)

        with pytest.raises(OAuthServerError) as info:
            await asyncio.to_thread(send)
    assert info.value.status == 503
    assert info.value.retry_after == 7.0
    assert info.value.step == "refresh"
    assert storage.tokens == before  # nothing dropped, nothing replaced
    assert as_state(peers)["authorizations"] == authorizations
    assert browser.redirects == 1

    # The server is back: the next request refreshes, silently.
    async with httpx2.AsyncClient(auth=p, timeout=20) as client:
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    assert r.status_code == 200
    assert before is not None and storage.tokens is not None
    assert storage.tokens.refresh_token != before.refresh_token
    assert as_state(peers)["authorizations"] == authorizations
    assert browser.redirects == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_the_clients_timeout_bounds_a_token_request_that_never_answers(
    peers: dict[str, Any], mode: str
) -> None:
    """The token request goes through the application's client, with its 2 s timeout:
    the client's own timeout error, for the token request, within 3 s."""
    storage, browser = await authorized(peers)
    before = storage.tokens
    p = provider(peers, storage, browser)

    token_fault(peers, mode="hang")  # never answers: only a timeout ends the wait
    if mode == "async":
        async with httpx2.AsyncClient(auth=p, timeout=2) as client:
            started = time.monotonic()
            with pytest.raises(httpx2.TimeoutException) as info:
                await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
            elapsed = time.monotonic() - started
    else:
        sync_client = httpx.Client(auth=p, timeout=2)
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException) as info:
            await asyncio.to_thread(sync_client.post, peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        elapsed = time.monotonic() - started
        sync_client.close()
    assert info.value.request.url.path.endswith("/token"), info.value.request.url
    assert elapsed < 3, f"the client's 2 s timeout did not apply ({elapsed:.1f} s)"
    assert storage.tokens == before
    httpx.post(f"{peers['control_url']}/reset", timeout=10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_the_clients_timeout_bounds_a_native_token_request_that_never_answers(
    peers: dict[str, Any], mode: str
) -> None:
    """With the package's own HTTP client, the client's timeout still bounds the token
    request: an ``OAuthTimeoutError`` (an httpx ``TimeoutException``) naming the step."""
    storage, browser = await authorized(peers)
    before = storage.tokens
    p = provider(peers, storage, browser, oauth_requests="native")

    token_fault(peers, mode="hang")
    started = time.monotonic()
    if mode == "async":
        async with httpx2.AsyncClient(auth=p, timeout=1) as client:
            with pytest.raises(OAuthTimeoutError) as info:
                await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    else:

        def send() -> None:
            with httpx.Client(auth=p, timeout=1) as client:
                client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)

        with pytest.raises(OAuthTimeoutError) as info:
            await asyncio.to_thread(send)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"the client's 1 s timeout did not apply ({elapsed:.1f} s)"
    assert isinstance(info.value, httpx2.TimeoutException) and isinstance(info.value, httpx.TimeoutException)
    assert info.value.step == "refresh"
    assert storage.tokens == before
    httpx.post(f"{peers['control_url']}/reset", timeout=10)


class Boom(Exception):
    pass


class FailingRegistrationStorage(InMemoryTokenStorage):
    """Fails to store the client's registration (during the flow a 401 starts)."""

    async def set_client_info(self, client_info: Any) -> None:
        await asyncio.sleep(0)
        raise Boom("the disk is full")


@pytest.mark.timeout(60)
async def test_a_storage_exception_inside_a_flow_reaches_the_caller_as_itself(peers: dict[str, Any]) -> None:
    browser = HeadlessBrowser()
    p = provider(peers, FailingRegistrationStorage(), browser)
    async with httpx2.AsyncClient(auth=p, timeout=20) as client:
        with pytest.raises(Boom, match="the disk is full"):
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)


@pytest.mark.timeout(60)
async def test_a_storage_exception_inside_a_flow_reaches_a_sync_caller_as_itself(peers: dict[str, Any]) -> None:
    class SyncFailingStorage(InMemoryTokenStorage):
        def set_client_info(self, client_info: Any) -> None:  # type: ignore[override]
            raise Boom("read-only file system")

    browser = HeadlessBrowser()
    p = OAuthClientProvider(
        peers["mcp_url"], metadata(), SyncFailingStorage(), browser.sync_redirect_handler, browser.sync_callback_handler
    )

    def send() -> None:
        with httpx.Client(auth=p, timeout=20) as client:
            client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)

    with pytest.raises(Boom, match="read-only file system"):
        await asyncio.to_thread(send)


@pytest.mark.timeout(60)
async def test_a_storage_exception_inside_a_refresh_reaches_the_caller_as_itself(peers: dict[str, Any]) -> None:
    """The refresh re-reads the store under its lease (another process may have
    rotated the refresh token): a failure there is the caller's exception."""
    storage, browser = await authorized(peers)

    class FailsOnSecondRead(InMemoryTokenStorage):
        reads = 0

        async def get_tokens(self) -> OAuthToken | None:
            self.reads += 1
            if self.reads > 1:
                raise Boom("the keychain is locked")
            return self.tokens

    failing = FailsOnSecondRead()
    failing.tokens, failing.client_info = storage.tokens, storage.client_info
    p = provider(peers, failing, browser)
    async with httpx2.AsyncClient(auth=p, timeout=20) as client:
        with pytest.raises(Boom, match="the keychain is locked"):
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    assert failing.tokens == storage.tokens
