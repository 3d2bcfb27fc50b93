"""Fixtures: the real peers (oidc-provider and the SDK's protected MCP server), and
headless handlers that approve through the authorization server's no-cookie
approval (a GET of the authorization URL answers 303 to the redirect URI)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "peers"))

from launch import Peers  # noqa: E402

from mcp_oauth_client import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken  # noqa: E402

REDIRECT_URI = "http://127.0.0.1:3030/callback"


def _run_peers(**options: Any) -> Iterator[dict[str, Any]]:
    p = Peers(**options)
    p.start()
    pipes = [proc.stdout for proc in p.procs if proc.stdout is not None]
    try:
        yield p.info
    finally:
        p.stop()
        for pipe in pipes:  # the launcher leaves its read ends open
            pipe.close()


@pytest.fixture(scope="session")
def peers() -> Iterator[dict[str, Any]]:
    yield from _run_peers()


@pytest.fixture(scope="session")
def light_peers() -> Iterator[dict[str, Any]]:
    """Peers whose MCP server is stateless and answers JSON."""
    yield from _run_peers(json_response=True, stateless=True)


@pytest.fixture(scope="session")
def short_peers() -> Iterator[dict[str, Any]]:
    """Peers whose access tokens live 3 seconds."""
    yield from _run_peers(access_token_ttl=3)


def as_state(peers: dict[str, Any]) -> dict[str, Any]:
    """The authorization server's counters."""
    return httpx.get(f"{peers['control_url']}/state", timeout=10).json()


def registrations(peers: dict[str, Any]) -> int:
    """How many clients the authorization server has registered."""
    return int(as_state(peers).get("registrations", -1))


class InMemoryTokenStorage:
    """The storage of the SDK documentation."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class HeadlessBrowser:
    """A redirect/callback handler pair: the "browser" GETs the authorization URL
    without following the redirect, and the callback returns the redirect's query."""

    def __init__(self) -> None:
        self.location: str | None = None
        self.redirects = 0
        self.callbacks = 0

    async def redirect_handler(self, authorization_url: str) -> None:
        self.redirects += 1
        async with httpx.AsyncClient() as client:
            r = await client.get(authorization_url)
        assert r.status_code in (302, 303), r.status_code
        self.location = r.headers["location"]

    async def callback_handler(self) -> AuthorizationCodeResult:
        self.callbacks += 1
        assert self.location is not None
        return AuthorizationCodeResult.from_redirect_url(self.location)

    def sync_redirect_handler(self, authorization_url: str) -> None:
        self.redirects += 1
        r = httpx.get(authorization_url)
        assert r.status_code in (302, 303), r.status_code
        self.location = r.headers["location"]

    def sync_callback_handler(self) -> AuthorizationCodeResult:
        self.callbacks += 1
        assert self.location is not None
        return AuthorizationCodeResult.from_redirect_url(self.location)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "mcp-oauth-client-tests", "version": "0"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def metadata(**extra: Any) -> Any:
    from mcp_oauth_client import OAuthClientMetadata

    return OAuthClientMetadata(client_name="mcp-oauth-client tests", redirect_uris=[REDIRECT_URI], **extra)
