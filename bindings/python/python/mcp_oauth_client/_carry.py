"""The core's OAuth requests, sent by the application's httpx client.

Discovery, registration and token requests are yielded from the provider's auth
flow, so the client the MCP request goes through sends them: its transport, TLS
settings (``verify=``, client certificates), proxies, timeouts and event hooks apply,
as they do in the MCP SDK. The rules stay in the core: it sets the headers and body,
bounds each request with its deadline (the client's timeout for the MCP request, or
``http_timeout``) and refuses a body over its size cap. This module only carries: it
builds the ``Request``, reads at most one byte over the cap, and hands status, headers
and body back.

A client that follows redirects (``follow_redirects=True``) follows them before the
core sees the answer; the core is handed the first response, the redirect itself,
which it refuses as it refuses every redirect.
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

from . import _native


def _library(obj: Any) -> Any:
    """The module (``httpx`` or ``httpx2``) whose class ``obj`` is an instance of."""
    return sys.modules[type(obj).__module__.partition(".")[0]]


def outgoing(original: Any, carried: _native.NativeRequest) -> Any:
    """The request to yield for ``carried``: the same class as the application's
    request, with its client's timeouts, each no longer than the core's deadline."""
    deadline = carried.timeout
    timeouts = original.extensions.get("timeout")
    if isinstance(timeouts, dict):
        bounded = {
            phase: deadline if not isinstance(t, (int, float)) or not 0 < t < math.inf else min(float(t), deadline)
            for phase, t in timeouts.items()
        }
    else:
        bounded = dict.fromkeys(("connect", "read", "write", "pool"), deadline)
    return type(original)(
        carried.method,
        carried.url,
        headers=carried.headers,
        content=carried.body,
        extensions={"timeout": bounded},
    )


def _first(sent: Any, response: Any) -> Any:
    """The response to ``sent`` itself: the first of a redirect chain the client followed."""
    if response.request is sent:
        return response
    for earlier in response.history:
        if earlier.request is sent:
            return earlier
    return response


class _CappedAsync:
    """A response stream that stops after the first chunk past ``limit`` bytes."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner, self._limit = inner, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self._inner:
            yield chunk
            total += len(chunk)
            if total > self._limit:
                return

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedSync:
    """Blocking form of :class:`_CappedAsync`."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner, self._limit = inner, limit

    def __iter__(self) -> Iterator[bytes]:
        total = 0
        for chunk in self._inner:
            yield chunk
            total += len(chunk)
            if total > self._limit:
                return

    def close(self) -> None:
        self._inner.close()


_capped: dict[str, tuple[type, type]] = {}


def _capped_streams(library: Any) -> tuple[type, type]:
    """The capped stream classes as ``library``'s byte streams (httpx checks the type)."""
    name = library.__name__
    if name not in _capped:
        _capped[name] = (
            type("CappedAsyncByteStream", (_CappedAsync, library.AsyncByteStream), {}),
            type("CappedSyncByteStream", (_CappedSync, library.SyncByteStream), {}),
        )
    return _capped[name]


def _kind(exc: BaseException) -> str:
    library = _library(exc)
    if isinstance(exc, getattr(library, "TimeoutException", ())):
        return "timeout"
    if isinstance(exc, getattr(library, "ConnectError", ())):
        return "connect"
    return "other"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def deliver(carried: _native.NativeRequest, sent: Any, response: Any) -> None:
    """Hand the response to ``sent`` back to the core (body read up to the cap)."""
    try:
        first = _first(sent, response)
        if first is response:
            capped, _ = _capped_streams(_library(response))
            response.stream = capped(response.stream, carried.max_response_bytes)
            body = await response.aread()
        else:
            body = first.content if first.is_stream_consumed else b""
        carried.respond(first.status_code, first.headers.multi_items(), body)
    except Exception as exc:
        carried.fail(_kind(exc), _describe(exc))


def deliver_sync(carried: _native.NativeRequest, sent: Any, response: Any) -> None:
    """Blocking form of :func:`deliver`."""
    try:
        first = _first(sent, response)
        if first is response:
            _, capped = _capped_streams(_library(response))
            response.stream = capped(response.stream, carried.max_response_bytes)
            body = response.read()
        else:
            body = first.content if first.is_stream_consumed else b""
        carried.respond(first.status_code, first.headers.multi_items(), body)
    except Exception as exc:
        carried.fail(_kind(exc), _describe(exc))


def not_sent(carried: _native.NativeRequest) -> None:
    """The client raised instead of answering (the exception reaches the application)."""
    carried.fail("other", "the HTTP client did not complete the request")
