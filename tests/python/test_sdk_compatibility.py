"""What SDK programs pass and touch: both constructor lines (2.x positions, 1.x
timeout and (code, state) callbacks), ``provider.context``, the exported names and
the exceptions."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
from typing import Any

import httpx
import httpx2
import mcp.client.auth
import mcp.client.auth.extensions.client_credentials
import mcp.shared.auth
import pytest
from conftest import InMemoryTokenStorage
from fake_servers import REDIRECT_URI, FakeServers, mock_handler

import mcp_oauth_client
import mcp_oauth_client.extensions.client_credentials
from mcp_oauth_client import (
    OAuthClientMetadata,
    OAuthClientProvider,
    OAuthConnectError,
    OAuthFlowError,
    OAuthNetworkError,
    PKCEParameters,
)


def servers() -> FakeServers:
    return FakeServers("https://mcp.test/mcp", "https://auth.test")


async def get(provider: OAuthClientProvider, fake: FakeServers) -> httpx2.Response:
    transport = httpx2.MockTransport(mock_handler(fake, httpx2))
    async with httpx2.AsyncClient(auth=provider, transport=transport) as client:
        return await client.get(fake.mcp_url)


def md() -> OAuthClientMetadata:
    return OAuthClientMetadata(redirect_uris=[REDIRECT_URI])  # type: ignore[list-item]


async def test_sdk_2_positions_client_metadata_url_then_validate_resource_url() -> None:
    fake = servers()
    seen: list[tuple[str, str | None]] = []

    async def validate(server_url: str, resource: str | None) -> None:
        seen.append((server_url, resource))

    with pytest.raises(ValueError, match="(?i)https"):
        OAuthClientProvider(fake.mcp_url, md(), InMemoryTokenStorage(), None, None, "http://client.test/metadata")
    p = OAuthClientProvider(
        fake.mcp_url,
        md(),
        InMemoryTokenStorage(),
        fake.redirect_handler,
        fake.callback_handler,
        "https://client.test/metadata.json",
        validate,
    )
    assert (await get(p, fake)).status_code == 200
    assert seen == [(fake.mcp_url, fake.mcp_url)]


async def test_sdk_1_positional_timeout_and_client_metadata_url() -> None:
    fake = servers()

    async def never() -> Any:
        await asyncio.sleep(3600)

    with pytest.raises(ValueError, match="(?i)https"):
        OAuthClientProvider(fake.mcp_url, md(), InMemoryTokenStorage(), None, None, 300.0, "http://client.test/md")
    p = OAuthClientProvider(fake.mcp_url, md(), InMemoryTokenStorage(), fake.redirect_handler, never, 0.5)
    with pytest.raises(OAuthFlowError, match=r"within 0\.5 s"):
        await get(p, fake)


async def test_timeout_is_keyword_only_in_the_signature() -> None:
    import inspect

    parameters = inspect.signature(OAuthClientProvider.__init__).parameters
    assert list(parameters)[:8] == [
        "self",
        "server_url",
        "client_metadata",
        "storage",
        "redirect_handler",
        "callback_handler",
        "client_metadata_url",
        "validate_resource_url",
    ]
    assert parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY


async def test_sdk_1_callback_handler_returning_code_and_state() -> None:
    fake = servers()

    async def callback() -> tuple[str, str | None]:
        result = await fake.callback_handler()
        return result.code, result.state

    p = OAuthClientProvider(fake.mcp_url, md(), InMemoryTokenStorage(), fake.redirect_handler, callback)
    assert (await get(p, fake)).status_code == 200


async def test_a_code_and_state_tuple_cannot_report_iss_so_it_is_not_checked() -> None:
    """An SDK 1.x handler has no room for ``iss``: with a server that sends it, the
    flow proceeds (as with SDK 1.x); a result that can carry it but lacks it is refused."""
    fake = FakeServers("https://mcp.test/mcp", "https://auth.test", advertise_iss=True)

    async def as_tuple() -> tuple[str, str | None]:
        result = await fake.callback_handler()
        return result.code, result.state

    p = OAuthClientProvider(fake.mcp_url, md(), InMemoryTokenStorage(), fake.redirect_handler, as_tuple)
    assert (await get(p, fake)).status_code == 200

    fake = FakeServers("https://mcp.test/mcp", "https://auth.test", advertise_iss=True)
    p = OAuthClientProvider(fake.mcp_url, md(), InMemoryTokenStorage(), fake.redirect_handler, fake.callback_handler)
    with pytest.raises(OAuthFlowError, match="iss"):
        await get(p, fake)


async def test_the_sdks_own_models_and_callback_result() -> None:
    fake = servers()

    async def callback() -> mcp.shared.auth.AuthorizationCodeResult:
        result = await fake.callback_handler()
        return mcp.shared.auth.AuthorizationCodeResult(code=result.code, state=result.state)

    metadata = mcp.shared.auth.OAuthClientMetadata(redirect_uris=[REDIRECT_URI])  # type: ignore[list-item]
    p = OAuthClientProvider(fake.mcp_url, metadata, InMemoryTokenStorage(), fake.redirect_handler, callback)
    assert (await get(p, fake)).status_code == 200


async def test_context_shows_what_the_provider_knows_read_only() -> None:
    fake = servers()
    storage = InMemoryTokenStorage()
    p = OAuthClientProvider(fake.mcp_url, md(), storage, fake.redirect_handler, fake.callback_handler)
    before = p.context
    assert before.server_url == fake.mcp_url and before.storage is storage
    assert before.current_tokens is None and before.oauth_metadata is None and not before.is_token_valid()

    assert (await get(p, fake)).status_code == 200
    ctx = p.context
    assert ctx.oauth_metadata is not None and str(ctx.oauth_metadata.token_endpoint) == "https://auth.test/token"
    assert ctx.protected_resource_metadata is not None
    assert str(ctx.protected_resource_metadata.resource) == fake.mcp_url
    assert ctx.auth_server_url == "https://auth.test"
    assert ctx.client_info is not None and ctx.client_info.client_id == "client-1"
    assert ctx.current_tokens is not None and ctx.current_tokens.access_token == fake.access_token
    assert ctx.token_expiry_time is not None and ctx.is_token_valid()
    assert ctx.client_metadata is not None and [str(u) for u in ctx.client_metadata.redirect_uris or []] == [
        REDIRECT_URI
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.current_tokens = None  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.context = ctx  # type: ignore[misc]


def _public(module: Any) -> set[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__]
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize(
    ("sdk", "ours"),
    [
        (mcp.client.auth, mcp_oauth_client),
        (mcp.shared.auth, mcp_oauth_client),
        (mcp.client.auth.extensions.client_credentials, mcp_oauth_client.extensions.client_credentials),
    ],
    ids=["mcp.client.auth", "mcp.shared.auth", "extensions.client_credentials"],
)
def test_every_name_the_sdk_exports_is_here(sdk: Any, ours: Any) -> None:
    # The SDK's JWTParameters/RFC7523OAuthClientProvider (1.x, deprecated) are absent from 2.x too.
    missing = sorted(n for n in _public(sdk) if not hasattr(ours, n))
    assert missing == []


def test_pkce_parameters_come_from_the_core() -> None:
    pkce = PKCEParameters.generate()
    digest = hashlib.sha256(pkce.code_verifier.encode()).digest()
    assert pkce.code_challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(pkce.code_verifier) <= 128
    assert PKCEParameters.generate().code_verifier != pkce.code_verifier
    assert pkce.code_verifier not in repr(pkce)


def test_every_exception_is_constructible_without_arguments() -> None:
    for name in mcp_oauth_client.__all__:
        value = getattr(mcp_oauth_client, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            e = value()
            assert str(e) == "" and isinstance(e, Exception), name


def test_network_errors_carry_the_request_as_httpx_errors_do() -> None:
    e = OAuthNetworkError("timed out", "token_exchange", "https://auth.test/token")
    assert e.request.method == "POST" and str(e.request.url) == "https://auth.test/token"
    assert isinstance(e.request, (httpx.Request, httpx2.Request))
    with pytest.raises(RuntimeError):
        OAuthNetworkError().request


async def test_a_native_network_error_names_its_request() -> None:
    p = OAuthClientProvider("http://127.0.0.1:9/mcp", md(), InMemoryTokenStorage(), http_timeout=5)
    with pytest.raises(OAuthConnectError) as info:
        await p.authorize()
    assert info.value.request.method == "GET"
    assert info.value.request.url.path.startswith("/.well-known/oauth-protected-resource")
