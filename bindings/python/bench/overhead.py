"""Per-request cost of the provider with a valid token, against the MCP SDK's
``mcp.client.auth.OAuthClientProvider``, in the same process and run.

    python bindings/python/bench/overhead.py [--requests N] [--rounds R]

Both providers sit on an ``httpx2.AsyncClient`` over a ``MockTransport`` (no network)
and hold a valid token from their storage. The overhead is the time per request
minus that of the same client with an auth that only sets a fixed header (best of R
rounds, the order rotated each round). Then 16 concurrent
requests, each held 200 ms by the mock server, through each provider.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx2
from mcp.client.auth import OAuthClientProvider as SdkProvider
from mcp.shared import auth as sdk

import mcp_oauth_client as ours

SERVER = "http://127.0.0.1:9/mcp"


class Storage:
    def __init__(self, token: Any, client: Any) -> None:
        self.token, self.client = token, client

    async def get_tokens(self) -> Any:
        return self.token

    async def set_tokens(self, tokens: Any) -> None:
        self.token = tokens

    async def get_client_info(self) -> Any:
        return self.client

    async def set_client_info(self, client_info: Any) -> None:
        self.client = client_info


def sdk_provider() -> Any:
    storage = Storage(
        sdk.OAuthToken(access_token="bench-token", expires_in=None),
        sdk.OAuthClientInformationFull(client_id="bench", redirect_uris=["http://127.0.0.1:3030/cb"]),  # type: ignore[list-item]
    )
    meta = sdk.OAuthClientMetadata(redirect_uris=["http://127.0.0.1:3030/cb"])  # type: ignore[list-item]
    return SdkProvider(SERVER, meta, storage)


def our_provider() -> Any:
    storage = Storage(
        ours.OAuthToken(access_token="bench-token"),
        ours.OAuthClientInformationFull(client_id="bench"),
    )
    meta = ours.OAuthClientMetadata(redirect_uris=["http://127.0.0.1:3030/cb"])  # type: ignore[list-item]
    return ours.OAuthClientProvider(SERVER, meta, storage)


class StaticHeader(httpx2.Auth):
    """The least an auth can do: set a fixed header (the baseline)."""

    def auth_flow(self, request: httpx2.Request) -> Any:
        request.headers["Authorization"] = "Bearer bench-token"
        yield request


def ok(request: httpx2.Request) -> httpx2.Response:
    assert request.headers["authorization"] == "Bearer bench-token"
    return httpx2.Response(200, content=b"{}")


async def held(request: httpx2.Request) -> httpx2.Response:
    await asyncio.sleep(0.2)
    return httpx2.Response(200, content=b"{}")


async def per_request(auth: Any, n: int) -> float:
    async with httpx2.AsyncClient(auth=auth, transport=httpx2.MockTransport(ok)) as client:
        await client.get(SERVER)  # loads the stored token
        started = time.perf_counter()
        for _ in range(n):
            await client.get(SERVER)
        return (time.perf_counter() - started) / n


async def flow_only(auth: Any, n: int) -> float:
    """The auth flow alone, driven by hand: one request in, one 200 response back."""
    request = httpx2.Request("POST", SERVER, content=b"{}")
    response = httpx2.Response(200, request=request)

    async def once() -> None:
        flow = auth.async_auth_flow(request)
        await flow.__anext__()
        try:
            await flow.asend(response)
        except StopAsyncIteration:
            pass

    await once()  # loads the stored token
    started = time.perf_counter()
    for _ in range(n):
        await once()
    return (time.perf_counter() - started) / n


async def concurrent(auth: Any, count: int = 16) -> tuple[float, float]:
    async with httpx2.AsyncClient(auth=auth, transport=httpx2.MockTransport(held)) as client:
        await client.get(SERVER)
        started = time.perf_counter()
        await client.get(SERVER)
        one = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(client.get(SERVER) for _ in range(count)))
        return one, time.perf_counter() - started


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    makers: dict[str, Callable[[], Any]] = {
        "fixed header": StaticHeader,
        "mcp SDK 2.3.0": sdk_provider,
        "mcp_oauth_client": our_provider,
    }
    names = list(makers)
    best = {name: float("inf") for name in makers}
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:  # rotated, so drift hits all alike
            best[name] = min(best[name], await per_request(makers[name](), args.requests))
    base = best["fixed header"]
    print(f"per request, {args.requests} requests, best of {args.rounds} rounds (httpx2 MockTransport):")
    for name, t in best.items():
        extra = "" if name == "fixed header" else f"  overhead {(t - base) * 1e6:6.1f} us"
        print(f"  {name:18} {t * 1e6:7.1f} us{extra}")
    sdk_o, our_o = best["mcp SDK 2.3.0"] - base, best["mcp_oauth_client"] - base
    if our_o > 1e-6:
        print(f"  overhead ratio SDK / ours: {sdk_o / our_o:.1f}x")
    else:
        print("  ours is within measurement noise of setting a fixed header")

    flows = {name: float("inf") for name in makers}
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            flows[name] = min(flows[name], await flow_only(makers[name](), args.requests))
    print("the auth flow alone (no client, no transport), per request:")
    for name, t in flows.items():
        print(f"  {name:18} {t * 1e6:7.2f} us")

    print("16 concurrent requests, each held 200 ms by the server:")
    for name in ("mcp SDK 2.3.0", "mcp_oauth_client"):
        one, sixteen = await concurrent(makers[name]())
        print(f"  {name:18} one {one * 1000:6.0f} ms, 16 concurrent {sixteen * 1000:6.0f} ms, ratio {sixteen / one:5.2f}")


if __name__ == "__main__":
    asyncio.run(main())
