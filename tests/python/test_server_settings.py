"""Settings some authorization servers need, given as data (``ServerSettings``),
reach the core: checked against the real authorization server, which issues a token
the MCP server accepts only when the resource is sent."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from conftest import INITIALIZE, MCP_HEADERS, HeadlessBrowser, InMemoryTokenStorage, metadata

from mcp_oauth_client import OAuthClientProvider, OAuthConfigurationError, ServerSettings


async def first_status(peers: dict[str, Any], settings: ServerSettings | None) -> int:
    storage, browser = InMemoryTokenStorage(), HeadlessBrowser()
    p = OAuthClientProvider(
        peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler, settings=settings
    )
    async with httpx2.AsyncClient(auth=p, timeout=20) as client:
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    return r.status_code


@pytest.mark.timeout(60)
async def test_the_resource_is_sent_unless_the_settings_omit_it(peers: dict[str, Any]) -> None:
    # With extra parameters, the default (the resource sent) still works end to end.
    settings = ServerSettings(authorization_params={"ui_locales": "en"}, token_params={"x-trace": "1"})
    assert await first_status(peers, settings) == 200
    # Without `resource`, this authorization server issues a token that is not
    # bound to the MCP server, which refuses it: the setting reached the requests.
    assert await first_status(peers, ServerSettings(resource="omit")) == 401
    # An override with the resource's own value is sent as given.
    assert await first_status(peers, ServerSettings(resource=peers["mcp_url"])) == 200


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(OAuthConfigurationError):
        OAuthClientProvider("http://127.0.0.1:9/mcp", metadata(), InMemoryTokenStorage(), settings=ServerSettings(resource=""))
    with pytest.raises(OAuthConfigurationError):
        OAuthClientProvider(
            "http://127.0.0.1:9/mcp", metadata(), InMemoryTokenStorage(), settings=ServerSettings(lease_wait=-1)
        )
    with pytest.raises(TypeError):
        OAuthClientProvider("http://127.0.0.1:9/mcp", metadata(), InMemoryTokenStorage(), settings={"resource": "omit"})  # type: ignore[arg-type]
