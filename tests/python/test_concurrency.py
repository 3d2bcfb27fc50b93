"""Concurrent requests through one provider run in parallel; threads never deadlock."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import httpx2
import pytest

from conftest import INITIALIZE, MCP_HEADERS, HeadlessBrowser, InMemoryTokenStorage, metadata

from mcp_oauth_client import OAuthClientProvider


SLOW_CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow", "arguments": {"ms": 200}}}


async def test_sixteen_concurrent_requests_take_less_than_twice_one(light_peers: dict[str, Any]) -> None:
    """Each request is held 200 ms by the server (stateless, JSON answers, so that the
    server's own work stays small next to the 200 ms)."""
    url = light_peers["mcp_url"]
    browser = HeadlessBrowser()
    p = OAuthClientProvider(url, metadata(), InMemoryTokenStorage(), browser.redirect_handler, browser.callback_handler)
    headers = dict(MCP_HEADERS, **{"mcp-protocol-version": "2025-06-18"})
    async with httpx2.AsyncClient(auth=p) as client:

        async def slow() -> None:
            r = await client.post(url, json=SLOW_CALL, headers=headers)
            assert r.status_code == 200 and "slept 200 ms" in r.text, r.text

        await slow()  # authorizes
        await asyncio.gather(*(slow() for _ in range(16)))  # opens the connections
        singles, batches = [], []
        for _ in range(5):
            started = time.perf_counter()
            await slow()
            singles.append(time.perf_counter() - started)
            started = time.perf_counter()
            await asyncio.gather(*(slow() for _ in range(16)))
            batches.append(time.perf_counter() - started)
    # Best of five of each, so that a stall caused by another process on the machine
    # does not decide the ratio.
    one, sixteen = min(singles), min(batches)
    print(f"one request {one * 1000:.0f} ms, 16 concurrent {sixteen * 1000:.0f} ms, ratio {sixteen / one:.2f}")
    assert sixteen < 2 * one, (singles, batches)
    assert browser.redirects == 1


@pytest.mark.timeout(120)
def test_thread_stress_with_expiring_tokens(short_peers: dict[str, Any]) -> None:
    """Threads with sync clients and threads with their own event loops share one
    provider while tokens expire every 3 s, so refreshes race with requests. A
    deadlock shows as a hang (the test's timeout)."""
    peers = short_peers
    browser = HeadlessBrowser()
    storage = InMemoryTokenStorage()
    p = OAuthClientProvider(peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler)
    deadline = time.monotonic() + 8
    errors: list[BaseException] = []
    counts: list[int] = []
    lock = threading.Lock()

    def record(n: int) -> None:
        with lock:
            counts.append(n)

    def sync_worker() -> None:
        n = 0
        try:
            with httpx.Client(auth=p) as client:
                while time.monotonic() < deadline:
                    r = client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
                    assert r.status_code == 200, r.status_code
                    n += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        record(n)

    def async_worker() -> None:
        async def run() -> int:
            n = 0
            async with httpx2.AsyncClient(auth=p) as client:
                while time.monotonic() < deadline:
                    rs = await asyncio.gather(
                        *(client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS) for _ in range(4))
                    )
                    assert all(r.status_code == 200 for r in rs), [r.status_code for r in rs]
                    n += len(rs)
            return n

        try:
            record(asyncio.run(run()))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=sync_worker) for _ in range(6)]
    threads += [threading.Thread(target=async_worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a worker hangs: deadlock"
    assert not errors, errors
    assert sum(counts) > 50
    assert browser.redirects == 1, "one authorization, then refreshes only"
