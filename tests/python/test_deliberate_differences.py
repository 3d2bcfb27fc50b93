"""Where this package is stricter than the SDK because the MCP spec says so, and the
explicit opt-out of each (README, "Deliberate differences from the SDK")."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from conftest import InMemoryTokenStorage
from fake_servers import REDIRECT_URI, FakeServers, mock_handler

from mcp_oauth_client import OAuthClientMetadata, OAuthClientProvider, OAuthFlowError


async def get(fake: FakeServers, scope: str | None = None, **options: Any) -> httpx2.Response:
    provider = OAuthClientProvider(
        fake.mcp_url,
        OAuthClientMetadata(redirect_uris=[REDIRECT_URI], scope=scope),  # type: ignore[list-item]
        InMemoryTokenStorage(),
        fake.redirect_handler,
        fake.callback_handler,
        **options,
    )
    transport = httpx2.MockTransport(mock_handler(fake, httpx2))
    async with httpx2.AsyncClient(auth=provider, transport=transport) as client:
        return await client.get(fake.mcp_url)


async def test_plain_http_off_loopback_is_refused_unless_the_host_is_allowed() -> None:
    """A development setup such as ``http://keycloak:8080`` in docker compose."""
    with pytest.raises(OAuthFlowError, match="https") as info:
        await get(FakeServers("http://mcp.test/mcp", "http://keycloak:8080"))
    assert info.value.step == "authorization_server_metadata"

    fake = FakeServers("http://mcp.test/mcp", "http://keycloak:8080")
    assert (await get(fake, allow_http_hosts=["keycloak"])).status_code == 200
    assert "POST /token" in fake.paths

    with pytest.raises(OAuthFlowError, match="https"):
        await get(FakeServers("http://mcp.test/mcp", "http://keycloak:8080"), allow_http_hosts=["other"])
    with pytest.raises(TypeError):
        await get(FakeServers("http://mcp.test/mcp", "http://keycloak:8080"), allow_http_hosts="keycloak")


async def test_an_authorization_server_not_advertising_s256_is_refused_unless_assumed() -> None:
    with pytest.raises(OAuthFlowError, match="code_challenge_methods_supported"):
        await get(FakeServers("https://mcp.test/mcp", "https://auth.test", advertise_s256=False))
    fake = FakeServers("https://mcp.test/mcp", "https://auth.test", advertise_s256=False)
    assert (await get(fake, assume_s256_when_pkce_unadvertised=True)).status_code == 200


async def test_a_configured_scope_is_kept_unless_the_server_may_replace_it() -> None:
    fake = FakeServers("https://mcp.test/mcp", "https://auth.test", challenge_scope="files:read")
    assert (await get(fake, scope="mine")).status_code == 200
    assert fake.authorized_scope == "mine"

    fake = FakeServers("https://mcp.test/mcp", "https://auth.test", challenge_scope="files:read")
    assert (await get(fake, scope="mine", server_scope_replaces_configured=True)).status_code == 200
    assert fake.authorized_scope == "files:read"
