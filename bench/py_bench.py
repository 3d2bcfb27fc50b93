"""The Python benchmarks of bench/run.py: our provider (``mcp_oauth_client``) beside the
MCP Python SDK's ``mcp.client.auth.OAuthClientProvider``, in the same process, rounds
interleaved (the order rotated each round) so that the machine's noise hits all alike.

    python bench/py_bench.py overhead [--requests N] [--rounds R]
    python bench/py_bench.py concurrency [--count N] [--rounds R]
    python bench/py_bench.py storm --peers JSON [--count N] [--rounds R]
    python bench/py_bench.py shared-store --peers JSON [--processes N]
    python bench/py_bench.py login --peers JSON [--rounds R]

Each prints what it measured and lines "RESULT name value" for bench/run.py. The last
three need the real peers (tests/peers/launch.py; ``--peers`` is its JSON line):
their OAuth requests go to the real oidc-provider and the protected MCP server's
metadata, through a counting httpx2 transport; in the storm the MCP requests
themselves are answered in process (a server that refuses the expired token with a
401, as the real one does, and accepts any other after ``--latency-ms``, 10 ms by
default, the time a real server takes), so that the figure is the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client.auth import OAuthClientProvider as SdkProvider
from mcp.shared import auth as sdk

import mcp_oauth_client as ours

MOCK_SERVER = "http://127.0.0.1:9/mcp"
REDIRECT_URI = "http://127.0.0.1:3030/callback"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "mcp-oauth-client bench", "version": "0"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def result(name: str, value: float) -> None:
    print(f"RESULT {name} {value:.6g}", flush=True)


class Storage:
    """The storage of the SDK's documentation, for either provider."""

    def __init__(self, token: Any = None, client: Any = None) -> None:
        self.token, self.client = token, client

    async def get_tokens(self) -> Any:
        return self.token

    async def set_tokens(self, tokens: Any) -> None:
        self.token = tokens

    async def get_client_info(self) -> Any:
        return self.client

    async def set_client_info(self, client_info: Any) -> None:
        self.client = client_info


class Person:
    """The person's step, headless: the authorization server approves a GET of the
    authorization URL without cookies (303 to the redirect URI)."""

    def __init__(self, result_type: Any) -> None:
        self.location = ""
        self.result_type = result_type

    async def redirect(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient() as client:
            r = await client.get(authorization_url)
        if r.status_code not in (302, 303):
            raise RuntimeError(f"the authorization server answered {r.status_code}")
        self.location = r.headers["location"]

    async def callback(self) -> Any:
        q = {k: v[0] for k, v in parse_qs(urlsplit(self.location).query).items()}
        return self.result_type(code=q["code"], state=q.get("state"), iss=q.get("iss"))


def sdk_provider(server: str, storage: Any, person: Person | None = None) -> Any:
    meta = sdk.OAuthClientMetadata(redirect_uris=[REDIRECT_URI])  # type: ignore[list-item]
    if person is None:
        return SdkProvider(server, meta, storage)
    return SdkProvider(server, meta, storage, person.redirect, person.callback)


def our_provider(server: str, storage: Any, person: Person | None = None) -> Any:
    meta = ours.OAuthClientMetadata(redirect_uris=[REDIRECT_URI])  # type: ignore[list-item]
    if person is None:
        return ours.OAuthClientProvider(server, meta, storage)
    return ours.OAuthClientProvider(server, meta, storage, person.redirect, person.callback)


class StaticHeader(httpx2.Auth):
    """The least an auth can do: set a fixed header (the baseline)."""

    def auth_flow(self, request: httpx2.Request) -> Any:
        request.headers["Authorization"] = "Bearer bench-token"
        yield request


def rotated(names: list[str], r: int) -> list[str]:
    k = r % len(names)
    return names[k:] + names[:k]


# ---------------------------------------------------------------------------
# 2. Per-request overhead with a valid token


def ok(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, content=b"{}")


async def per_request(auth: Any, n: int) -> float:
    async with httpx2.AsyncClient(auth=auth, transport=httpx2.MockTransport(ok)) as client:
        r = await client.get(MOCK_SERVER)  # loads the stored token
        if auth is not None and r.request.headers.get("authorization") != "Bearer bench-token":
            raise RuntimeError("the provider did not send the stored token")
        started = time.perf_counter()
        for _ in range(n):
            await client.get(MOCK_SERVER)
        return (time.perf_counter() - started) / n


def valid_makers() -> dict[str, Callable[[], Any]]:
    def sdk_valid() -> Any:
        return sdk_provider(
            MOCK_SERVER,
            Storage(
                sdk.OAuthToken(access_token="bench-token", expires_in=None),
                sdk.OAuthClientInformationFull(client_id="bench", redirect_uris=[REDIRECT_URI]),  # type: ignore[list-item]
            ),
        )

    def ours_valid() -> Any:
        return our_provider(
            MOCK_SERVER,
            Storage(ours.OAuthToken(access_token="bench-token"), ours.OAuthClientInformationFull(client_id="bench")),
        )

    return {"fixed": StaticHeader, "sdk": sdk_valid, "ours": ours_valid}


async def flow_only(auth: Any, n: int) -> float:
    """The auth flow alone, driven by hand (no client, no transport): one request
    in, one 200 response back."""
    request = httpx2.Request("GET", MOCK_SERVER)
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


def paired(times: dict[str, list[float]], name: str) -> tuple[float, float]:
    """The median over rounds of `name`'s time less the fixed header's in the same
    round, and its noise: the standard error of that median (1.25 x the standard
    deviation of the differences / sqrt(rounds))."""
    d = [t - f for t, f in zip(times[name], times["fixed"], strict=True)]
    spread = statistics.stdev(d) if len(d) > 1 else 0.0
    return statistics.median(d), 1.25 * spread / len(d) ** 0.5


async def overhead(args: argparse.Namespace) -> None:
    makers = valid_makers()
    names = list(makers)
    for measure, label, prefix in (
        (per_request, "per request through httpx2.AsyncClient (MockTransport)", ""),
        (flow_only, "the auth flow alone (no client, no transport)", "flow_"),
    ):
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            for name in rotated(names, r):
                times[name].append(await measure(makers[name](), args.requests))
        base = statistics.median(times["fixed"])
        print(f"{label}: {args.rounds} interleaved rounds of {args.requests} requests")
        print(f"  fixed header  {base * 1e6:7.2f} us (median)")
        result(f"{prefix}fixed_us", base * 1e6)
        for name in ("sdk", "ours"):
            extra, noise = paired(times, name)
            print(f"  {name:12}  +{extra * 1e6:6.2f} us over the fixed header (median of paired rounds; noise {noise * 1e6:.2f} us)")
            result(f"{prefix}{name}_extra_us", extra * 1e6)
            result(f"{prefix}{name}_noise_us", noise * 1e6)


# ---------------------------------------------------------------------------
# 3. Concurrent requests held by the server


async def held(request: httpx2.Request) -> httpx2.Response:
    await asyncio.sleep(0.2)
    return httpx2.Response(200, content=b"{}")


async def concurrent(auth: Any, count: int) -> float:
    async with httpx2.AsyncClient(auth=auth, transport=httpx2.MockTransport(held)) as client:
        await client.get(MOCK_SERVER)
        started = time.perf_counter()
        await asyncio.gather(*(client.get(MOCK_SERVER) for _ in range(count)))
        return time.perf_counter() - started


async def concurrency(args: argparse.Namespace) -> None:
    makers: dict[str, Callable[[], Any]] = {"none": lambda: None, **valid_makers()}
    names = list(makers)
    best = {name: float("inf") for name in names}
    for r in range(args.rounds):
        for name in rotated(names, r):
            best[name] = min(best[name], await concurrent(makers[name](), args.count))
    print(f"{args.count} concurrent requests, each held 200 ms by the server (best of {args.rounds}):")
    for name, t in best.items():
        print(f"  {name:6} {t * 1000:7.0f} ms")
        result(f"{name}_ms", t * 1000)


# ---------------------------------------------------------------------------
# Against the real peers


class Routed(httpx2.AsyncBaseTransport):
    """Counts every request; POSTs to the MCP URL go to `mcp` (in process) when
    given, everything else to the real servers."""

    def __init__(self, mcp_url: str, mcp: Callable[[httpx2.Request], Awaitable[httpx2.Response]] | None) -> None:
        self.mcp_url = mcp_url
        self.mock = httpx2.MockTransport(mcp) if mcp else None
        self.real = httpx2.AsyncHTTPTransport()
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.mock is not None and request.method == "POST" and str(request.url) == self.mcp_url:
            return await self.mock.handle_async_request(request)
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()

    def token_requests(self) -> int:
        return sum(1 for r in self.requests if r.startswith("POST ") and r.endswith("/token"))


class StormServer:
    """The MCP server's part of the storm: a 401 for the expired token (or none), as the
    real server answers, and a 200 for any other."""

    def __init__(self, peers: dict[str, Any], expired: str, latency: float = 0.0) -> None:
        self.latency = latency
        self.challenge = f'Bearer error="invalid_token", resource_metadata="{peers["prm_url"]}"'
        self.expired = f"Bearer {expired}"
        self.with_expired = 0
        self.without_token = 0

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        auth = request.headers.get("authorization")
        if auth is None or auth == self.expired:
            if auth is None:
                self.without_token += 1
            else:
                self.with_expired += 1
            return httpx2.Response(401, headers={"www-authenticate": self.challenge}, content=b"")
        if self.latency:
            await asyncio.sleep(self.latency)
        return httpx2.Response(200, content=b"{}")


async def login_tokens(peers: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh login (ours, in memory): the tokens and client information as JSON."""
    storage = Storage()
    person = Person(ours.AuthorizationCodeResult)
    async with httpx2.AsyncClient(auth=our_provider(peers["mcp_url"], storage, person), timeout=30) as client:
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        if r.status_code != 200:
            raise RuntimeError(f"the login did not end in 200 but {r.status_code}")
    return storage.token.model_dump(exclude_none=True), storage.client.model_dump(exclude_none=True)


async def storm_once(peers: dict[str, Any], who: str, count: int, latency: float) -> dict[str, float]:
    tokens, client = await login_tokens(peers)
    server = StormServer(peers, tokens["access_token"], latency)
    if who == "ours":
        expired = ours.OAuthToken.model_validate({**tokens, "expires_at": time.time() - 1})
        storage = Storage(expired, ours.OAuthClientInformationFull.model_validate(client))
        provider = our_provider(peers["mcp_url"], storage, Person(ours.AuthorizationCodeResult))
    else:
        # The SDK keeps no absolute expiry: a stored token is taken as it is.
        expired_sdk = sdk.OAuthToken.model_validate({**tokens, "expires_in": 0})
        client_sdk = sdk.OAuthClientInformationFull.model_validate(client)
        provider = sdk_provider(peers["mcp_url"], Storage(expired_sdk, client_sdk), Person(sdk.AuthorizationCodeResult))
    transport = Routed(peers["mcp_url"], server)
    async with httpx2.AsyncClient(auth=provider, transport=transport, timeout=120) as http:
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(http.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS) for _ in range(count))
        )
        wall = time.perf_counter() - started
    failed = sum(1 for a in answers if a.status_code != 200)
    return {
        "token": transport.token_requests(),
        "expired": server.with_expired,
        "untokened": server.without_token,
        "failed": failed,
        "wall": wall,
    }


async def storm(args: argparse.Namespace) -> None:
    peers = json.loads(args.peers)
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "sdk": []}
    for r in range(args.rounds):
        for who in rotated(list(runs), r):
            runs[who].append(await storm_once(peers, who, args.count, args.latency_ms / 1000))
    print(
        f"refresh storm: {args.count} concurrent requests, the stored token just expired,"
        f" the server answering each in {args.latency_ms:g} ms ({args.rounds} rounds):"
    )
    for who, rs in runs.items():
        wall = statistics.median(x["wall"] for x in rs)
        token = max(x["token"] for x in rs)
        expired = max(x["expired"] for x in rs)
        untokened = max(x["untokened"] for x in rs)
        failed = max(x["failed"] for x in rs)
        print(
            f"  {who:5} token-endpoint requests {token}, sent with the expired token {expired},"
            f" without a token {untokened}, failed {failed}, wall {wall * 1000:.0f} ms (median)"
        )
        result(f"{who}_token_requests", token)
        result(f"{who}_expired_sent", expired)
        result(f"{who}_untokened", untokened)
        result(f"{who}_failed", failed)
        result(f"{who}_wall_ms", wall * 1000)


# ---------------------------------------------------------------------------
# 4b. Processes sharing one file store


async def child(args: argparse.Namespace) -> None:
    """One of the processes: wait for the start time, then one request."""
    peers = json.loads(args.peers)
    storage = ours.FileTokenStorage(peers["mcp_url"], args.dir)
    provider = our_provider(peers["mcp_url"], storage, Person(ours.AuthorizationCodeResult))
    server = StormServer(peers, os.environ["BENCH_EXPIRED_TOKEN"])
    transport = Routed(peers["mcp_url"], server)
    async with httpx2.AsyncClient(auth=provider, transport=transport, timeout=60) as http:
        await asyncio.sleep(max(0.0, args.start - time.time()))
        r = await http.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    print(json.dumps({"status": r.status_code, "token": transport.token_requests(), "expired": server.with_expired}))


async def shared_store(args: argparse.Namespace) -> None:
    peers = json.loads(args.peers)
    with tempfile.TemporaryDirectory() as d:
        # The first process logs in; its token is then marked just expired.
        tokens, client = await login_tokens(peers)
        store = ours.FileTokenStorage(peers["mcp_url"], d)
        await store.set_client_info(ours.OAuthClientInformationFull.model_validate(client))
        await store.set_tokens(ours.OAuthToken.model_validate({**tokens, "expires_at": time.time() - 1}))
        stored = await store.get_tokens()
        if stored is None or stored.expires_at is None or stored.expires_at > time.time():
            raise RuntimeError("the file store did not keep the expired token")
        start = time.time() + 3.0  # time for every process to start and load
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "child",
                    "--peers",
                    args.peers,
                    "--dir",
                    d,
                    "--start",
                    str(start),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "BENCH_EXPIRED_TOKEN": tokens["access_token"]},
            )
            for _ in range(args.processes)
        ]
        outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    refreshes = sum(o["token"] for o in outs)
    expired = sum(o["expired"] for o in outs)
    failed = sum(1 for o in outs if o["status"] != 200)
    print(
        f"{args.processes} processes sharing one file store, token just expired: refreshes {refreshes},"
        f" sent with the expired token {expired}, failed {failed}"
    )
    result("refreshes", refreshes)
    result("expired_sent", expired)
    result("failed", failed)


# ---------------------------------------------------------------------------
# 5. A login from nothing


async def login_by_hand(peers: dict[str, Any]) -> tuple[int, float]:
    """The floor of a login on these servers: the same six requests and the person's
    step, written out by hand with nothing checked, parsed or stored beyond what the
    next request needs."""
    import base64
    import hashlib
    import secrets

    transport = Routed(peers["mcp_url"], None)
    async with httpx2.AsyncClient(transport=transport, timeout=60) as http:
        started = time.perf_counter()
        r = await http.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        prm = (await http.get(peers["prm_url"])).json()
        issuer = prm["authorization_servers"][0]
        asm = (await http.get(f"{issuer}/.well-known/oauth-authorization-server")).json()
        reg = (
            await http.post(
                asm["registration_endpoint"],
                json={"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
                      "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]},
            )
        ).json()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code", "client_id": reg["client_id"], "redirect_uri": REDIRECT_URI,
            "state": secrets.token_urlsafe(16), "code_challenge": challenge, "code_challenge_method": "S256",
            "resource": prm["resource"], "scope": " ".join(prm.get("scopes_supported", [])),
        }
        person = Person(ours.AuthorizationCodeResult)
        await person.redirect(str(httpx2.URL(asm["authorization_endpoint"], params=params)))
        code = (await person.callback()).code
        token = (
            await http.post(
                asm["token_endpoint"],
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                      "client_id": reg["client_id"], "code_verifier": verifier, "resource": prm["resource"]},
            )
        ).json()
        headers = {**MCP_HEADERS, "authorization": f"Bearer {token['access_token']}"}
        r = await http.post(peers["mcp_url"], json=INITIALIZE, headers=headers)
        wall = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"the login by hand ended in {r.status_code}")
    return len(transport.requests), wall


async def login_once(peers: dict[str, Any], who: str) -> tuple[int, float]:
    if who == "floor":
        return await login_by_hand(peers)
    if who == "ours":
        provider = our_provider(peers["mcp_url"], Storage(), Person(ours.AuthorizationCodeResult))
    else:
        provider = sdk_provider(peers["mcp_url"], Storage(), Person(sdk.AuthorizationCodeResult))
    transport = Routed(peers["mcp_url"], None)
    async with httpx2.AsyncClient(auth=provider, transport=transport, timeout=60) as http:
        started = time.perf_counter()
        r = await http.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        wall = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{who}: the login ended in {r.status_code}: {transport.requests}")
    if os.environ.get("BENCH_VERBOSE"):
        print(f"  {who}: {transport.requests}", file=sys.stderr)
    return len(transport.requests), wall


async def login(args: argparse.Namespace) -> None:
    peers = json.loads(args.peers)
    runs: dict[str, list[tuple[int, float]]] = {"ours": [], "sdk": [], "floor": []}
    for who in runs:  # warm-up: imports, connection setup
        await login_once(peers, who)
    for r in range(args.rounds):
        for who in rotated(list(runs), r):
            runs[who].append(await login_once(peers, who))
    print(f"a login from nothing against the local peers (median of {args.rounds} interleaved rounds):")
    for who, rs in runs.items():
        requests = max(n for n, _ in rs)
        wall = statistics.median(w for _, w in rs)
        print(f"  {who:5} {requests} HTTP requests, {wall * 1000:.0f} ms")
        result(f"{who}_requests", requests)
        result(f"{who}_ms", wall * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("overhead")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--rounds", type=int, default=31)
    p = sub.add_parser("concurrency")
    p.add_argument("--count", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p = sub.add_parser("storm")
    p.add_argument("--peers", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--latency-ms", type=float, default=10.0, help="the MCP server's time per request")
    p = sub.add_parser("shared-store")
    p.add_argument("--peers", required=True)
    p.add_argument("--processes", type=int, default=8)
    p = sub.add_parser("child")
    p.add_argument("--peers", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--start", type=float, required=True)
    p = sub.add_parser("login")
    p.add_argument("--peers", required=True)
    p.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    run = {
        "overhead": overhead,
        "concurrency": concurrency,
        "storm": storm,
        "shared-store": shared_store,
        "child": child,
        "login": login,
    }[args.what]
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
