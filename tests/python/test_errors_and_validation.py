"""Validation before any traffic, and each exception where the SDK raises it."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import httpx2
import pytest
from pydantic import ValidationError

from conftest import INITIALIZE, MCP_HEADERS, REDIRECT_URI, HeadlessBrowser, InMemoryTokenStorage, metadata

from mcp_oauth_client import (
    AuthorizationCodeResult,
    ClientCredentialsOAuthProvider,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthClientProvider,
    OAuthConfigurationError,
    OAuthConnectError,
    OAuthFlowError,
    OAuthNetworkError,
    OAuthRegistrationError,
    OAuthToken,
    OAuthTokenError,
)


def test_missing_redirect_uris_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        OAuthClientMetadata(client_name="Bookshop Agent")  # type: ignore[call-arg]
    assert info.value.errors()[0]["loc"] == ("redirect_uris",)
    assert "redirect_uris" in str(info.value) and "Field required" in str(info.value)


def test_metadata_defaults() -> None:
    m = OAuthClientMetadata(redirect_uris=[REDIRECT_URI])
    assert m.grant_types == ["authorization_code", "refresh_token"]
    assert m.response_types == ["code"]
    assert m.model_dump(mode="json", exclude_none=True)["redirect_uris"] == [REDIRECT_URI]


def test_dict_metadata_is_validated_too() -> None:
    with pytest.raises(ValidationError, match="redirect_uris"):
        OAuthClientProvider("http://127.0.0.1:1/mcp", {"client_name": "x"}, InMemoryTokenStorage())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["http://example.com/client.json", "https://example.com", "https://example.com/", "not a url"],
)
def test_cimd_url_must_be_https_with_a_path(url: str) -> None:
    with pytest.raises(ValueError, match="client_metadata_url"):
        OAuthClientProvider("http://127.0.0.1:1/mcp", metadata(), InMemoryTokenStorage(), client_metadata_url=url)


def test_cimd_url_accepted() -> None:
    OAuthClientProvider(
        "http://127.0.0.1:1/mcp", metadata(), InMemoryTokenStorage(), client_metadata_url="https://app.example/c.json"
    )


@pytest.mark.parametrize("server_url", ["ftp://x/mcp", "nope"])
def test_bad_server_url_is_a_value_error(server_url: str) -> None:
    with pytest.raises(ValueError, match="server_url"):
        OAuthClientProvider(server_url, metadata(), InMemoryTokenStorage())


def test_plain_http_redirect_on_a_remote_host_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        OAuthClientProvider(
            "http://127.0.0.1:1/mcp",
            OAuthClientMetadata(redirect_uris=["http://example.com/cb"]),
            InMemoryTokenStorage(),
        )


def test_secrets_never_in_repr() -> None:
    t = OAuthToken(access_token="AT-SECRET", refresh_token="RT-SECRET", id_token="ID-SECRET", expires_in=60)
    c = OAuthClientInformationFull(client_id="cid", client_secret="CS-SECRET")
    r = AuthorizationCodeResult(code="CODE-SECRET", state="STATE-SECRET", iss="https://as")
    text = " ".join([repr(t), str(t), repr(c), str(c), repr(r), str(r)])
    assert "SECRET" not in text
    assert "expires_in=60" in repr(t) and "cid" in repr(c)
    p = ClientCredentialsOAuthProvider("http://127.0.0.1:1/mcp", InMemoryTokenStorage(), "cid", "CS-SECRET")
    assert "SECRET" not in repr(p)


def _control(peers: dict[str, Any], what: str, body: dict[str, Any] | None = None) -> None:
    httpx.post(f"{peers['control_url']}/{what}", json=body or {}, timeout=10).raise_for_status()


async def test_denied_authorization_is_a_flow_error(peers: dict[str, Any]) -> None:
    _control(peers, "deny-next")
    browser = HeadlessBrowser()
    p = OAuthClientProvider(
        peers["mcp_url"], metadata(), InMemoryTokenStorage(), browser.redirect_handler, browser.callback_handler
    )
    async with httpx2.AsyncClient(auth=p) as client:
        with pytest.raises(OAuthFlowError) as info:
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    e = info.value
    assert type(e) is OAuthFlowError
    assert e.error == "access_denied" and e.error_description
    assert e.step == "authorization"


async def test_state_mismatch_is_a_flow_error(peers: dict[str, Any]) -> None:
    browser = HeadlessBrowser()

    async def forged() -> AuthorizationCodeResult:
        real = await browser.callback_handler()
        return AuthorizationCodeResult(code=real.code, state="forged", iss=real.iss)

    p = OAuthClientProvider(peers["mcp_url"], metadata(), InMemoryTokenStorage(), browser.redirect_handler, forged)
    async with httpx2.AsyncClient(auth=p) as client:
        with pytest.raises(OAuthFlowError, match="state") as info:
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    assert info.value.step == "callback"
    assert "forged" not in str(info.value)


async def test_refused_code_is_a_token_error(peers: dict[str, Any]) -> None:
    browser = HeadlessBrowser()

    async def bad_code() -> AuthorizationCodeResult:
        real = await browser.callback_handler()
        return AuthorizationCodeResult(code="not-the-code", state=real.state, iss=real.iss)

    p = OAuthClientProvider(peers["mcp_url"], metadata(), InMemoryTokenStorage(), browser.redirect_handler, bad_code)
    async with httpx2.AsyncClient(auth=p) as client:
        with pytest.raises(OAuthTokenError) as info:
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    e = info.value
    assert e.error == "invalid_grant" and e.status == 400 and e.step == "token_exchange"
    assert e.url is not None and e.url.endswith("/token")
    assert "not-the-code" not in str(e)


async def test_refused_registration_is_a_registration_error(peers: dict[str, Any]) -> None:
    # private_key_jwt without keys: the authorization server refuses the registration.
    p = OAuthClientProvider(
        peers["mcp_url"],
        metadata(token_endpoint_auth_method="private_key_jwt"),
        InMemoryTokenStorage(),
        HeadlessBrowser().redirect_handler,
        HeadlessBrowser().callback_handler,
    )
    async with httpx2.AsyncClient(auth=p) as client:
        with pytest.raises(OAuthRegistrationError) as info:
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    assert info.value.step == "registration" and info.value.error == "invalid_client_metadata"


def test_wrong_client_secret_is_a_configuration_error(peers: dict[str, Any]) -> None:
    """A pre-registered client the authorization server does not know cannot work
    until someone fixes its credentials: a configuration error, with the server's
    ``invalid_client``."""
    p = ClientCredentialsOAuthProvider(peers["mcp_url"], InMemoryTokenStorage(), "no-such-client", "wrong")
    with httpx.Client(auth=p) as client:
        with pytest.raises(OAuthConfigurationError) as info:
            client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    assert info.value.error == "invalid_client"
    assert "wrong" not in str(info.value)


async def test_handler_exceptions_propagate_unchanged(peers: dict[str, Any]) -> None:
    class Boom(Exception):
        pass

    async def redirect(url: str) -> None:
        raise Boom("no browser here")

    p = OAuthClientProvider(peers["mcp_url"], metadata(), InMemoryTokenStorage(), redirect, redirect)  # type: ignore[arg-type]
    async with httpx2.AsyncClient(auth=p) as client:
        with pytest.raises(Boom, match="no browser here"):
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)


def test_storage_exceptions_propagate_unchanged_in_sync_mode(peers: dict[str, Any]) -> None:
    class Broken(InMemoryTokenStorage):
        async def get_tokens(self) -> OAuthToken | None:
            raise KeyError("disk gone")

    p = OAuthClientProvider(peers["mcp_url"], metadata(), Broken())
    with httpx.Client(auth=p) as client:
        with pytest.raises(KeyError, match="disk gone"):
            client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)


async def test_missing_handlers_is_a_flow_error(peers: dict[str, Any]) -> None:
    p = OAuthClientProvider(peers["mcp_url"], metadata(), InMemoryTokenStorage())
    async with httpx2.AsyncClient(auth=p) as client:
        with pytest.raises(OAuthFlowError, match="handler"):
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)


async def test_callback_timeout_is_a_flow_error(peers: dict[str, Any]) -> None:
    browser = HeadlessBrowser()

    async def never() -> AuthorizationCodeResult:
        import asyncio

        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    p = OAuthClientProvider(
        peers["mcp_url"], metadata(), InMemoryTokenStorage(), browser.redirect_handler, never, timeout=0.3
    )
    async with httpx2.AsyncClient(auth=p) as client:
        with pytest.raises(OAuthFlowError, match="callback") as info:
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    assert info.value.step == "callback"


async def test_resource_validator_is_called_and_may_refuse(peers: dict[str, Any]) -> None:
    seen: list[tuple[str, str | None]] = []

    class Refused(Exception):
        pass

    async def validate(server_url: str, resource: str | None) -> None:
        seen.append((server_url, resource))
        raise Refused(resource)

    browser = HeadlessBrowser()
    p = OAuthClientProvider(
        peers["mcp_url"],
        metadata(),
        InMemoryTokenStorage(),
        browser.redirect_handler,
        browser.callback_handler,
        validate_resource_url=validate,
    )
    async with httpx2.AsyncClient(auth=p) as client:
        with pytest.raises(Refused):
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    assert seen == [(peers["mcp_url"], peers["mcp_url"])]
    assert browser.redirects == 0


def test_network_failure_of_discovery_through_the_client_is_its_connect_error() -> None:
    """The MCP server (mocked) answers 401; the client cannot reach the metadata: the
    application sees its client's own error, for the discovery request."""

    def mcp(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/mcp":
            return httpx.Response(401, headers={"www-authenticate": 'Bearer error="invalid_token"'})
        raise httpx.ConnectError("connection refused", request=request)

    p = OAuthClientProvider("http://127.0.0.1:9/mcp", metadata(), InMemoryTokenStorage(), http_timeout=5)
    with httpx.Client(auth=p, transport=httpx.MockTransport(mcp)) as client:
        with pytest.raises(httpx.ConnectError) as info:
            client.get("http://127.0.0.1:9/mcp")
    assert info.value.request.url.path.startswith("/.well-known/oauth-protected-resource")


async def test_network_failure_of_a_native_discovery_is_an_httpx_connect_error() -> None:
    """``authorize()`` (no client at hand) uses the package's own HTTP client; a closed
    port is an ``OAuthConnectError``, also an httpx ``ConnectError``, naming the step."""
    p = OAuthClientProvider("http://127.0.0.1:9/mcp", metadata(), InMemoryTokenStorage(), http_timeout=5)
    with pytest.raises(OAuthConnectError) as info:
        await p.authorize()
    e = info.value
    assert isinstance(e, httpx.ConnectError) and isinstance(e, httpx2.ConnectError)
    assert isinstance(e, OAuthNetworkError) and not isinstance(e, OAuthFlowError)
    assert e.step == "resource_metadata"


async def test_logs_go_to_the_package_logger(peers: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_oauth_client")
    browser = HeadlessBrowser()
    p = OAuthClientProvider(
        peers["mcp_url"], metadata(), InMemoryTokenStorage(), browser.redirect_handler, browser.callback_handler
    )
    async with httpx2.AsyncClient(auth=p) as client:
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200
    records = [r for r in caplog.records if r.name == "mcp_oauth_client"]
    messages = " | ".join(r.getMessage() for r in records)
    assert "discovered the authorization server" in messages
    assert "obtained tokens" in messages
    assert any(r.levelno == logging.DEBUG for r in records)
    tokens = p.current_tokens
    assert tokens is not None and tokens.access_token not in messages
