"""The providers: ``httpx.Auth`` and ``httpx2.Auth`` around the native core.

Per request: the headers (``Authorization``) come from the held token, for the
request's method and URL (one native call: no I/O, no lock, nothing awaited) or, when
none is held or it is about to expire, from the core, which loads stored tokens or
refreshes. A 401 or a 403 ``insufficient_scope`` goes to the core with the response's
headers and the ``Authorization`` the request carried; the core refreshes, runs the
authorization flow or steps up, and the request is sent again once with the new
headers. The client's own timeout for the request (httpx's ``timeout``) bounds each
OAuth request made for it. Concurrent requests through one provider are not
serialized; refreshes and flows are single-flight, each run as a task of its own, so a
cancelled request does not lose a refresh its cancellation interrupted.

Async clients: the storage and handler callbacks run on the caller's event loop.
Sync clients: the core runs with the GIL released, and async callbacks run on a private
event loop in a daemon thread of this package (plain functions are fine too).
"""

from __future__ import annotations

import asyncio
import atexit
import math
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from . import _native
from ._bridge import Bridge
from ._models import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

__all__ = [
    "ClientCredentialsOAuthProvider",
    "OAuthClientProvider",
    "PrivateKeyJWTOAuthProvider",
    "ServerSettings",
    "TokenStorage",
]


@dataclass(frozen=True)
class ServerSettings:
    """What some authorization servers need, as data (pass as ``settings=`` to a provider).

    Args:
        resource: ``"send"`` (the default) sends the discovered resource (RFC 8707) in
            authorization and token requests, as the MCP spec requires; ``"omit"`` sends
            none (some Microsoft Entra ID tenants reject it); any other string is sent
            instead of the discovered one.
        authorization_params: Extra query parameters of the authorization request
            (Auth0's ``audience``). They never replace a parameter the protocol sets.
        token_params: Extra parameters of every token request.
        lease_wait: Seconds to wait for another process's refresh of the same token
            store before failing with a storage error.
    """

    resource: str = "send"
    authorization_params: Mapping[str, str] = field(default_factory=dict)
    token_params: Mapping[str, str] = field(default_factory=dict)
    lease_wait: float = 30.0

    def _native_kwargs(self) -> dict[str, Any]:
        return {
            "resource_parameter": self.resource,
            "authorization_params": list(self.authorization_params.items()),
            "token_params": list(self.token_params.items()),
            "lease_wait": float(self.lease_wait),
        }


def _settings_kwargs(settings: ServerSettings | None) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, ServerSettings):
        raise TypeError("settings must be a ServerSettings")
    return settings._native_kwargs()


class TokenStorage(Protocol):
    """Where tokens and client information live between runs: four async methods."""

    async def get_tokens(self) -> OAuthToken | None:
        """Get stored tokens."""
        ...

    async def set_tokens(self, tokens: OAuthToken) -> None:
        """Store tokens."""
        ...

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        """Get stored client information."""
        ...

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        """Store client information."""
        ...


def _auth_bases() -> tuple[type, ...]:
    bases: list[type] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module: Any = __import__(module_name)
        except ImportError:
            continue
        bases.append(module.Auth)
    return tuple(bases) or (object,)


_private_loop: asyncio.AbstractEventLoop | None = None
_private_loop_lock = threading.Lock()


def _callback_loop() -> asyncio.AbstractEventLoop:
    """The loop that runs async callbacks for sync clients (started on first use)."""
    global _private_loop
    with _private_loop_lock:
        if _private_loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="mcp-oauth-client-callbacks", daemon=True)
            thread.start()

            def stop() -> None:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=5)
                if not loop.is_running():
                    loop.close()

            atexit.register(stop)
            _private_loop = loop
        return _private_loop


def _client_metadata_json(client_metadata: Any) -> str:
    # Our model, the SDK's model or a dict: validated by our model either way, so a
    # missing redirect_uris is a ValidationError naming the field.
    if isinstance(client_metadata, OAuthClientMetadata):
        model = client_metadata
    elif hasattr(client_metadata, "model_dump"):
        model = OAuthClientMetadata.model_validate(client_metadata.model_dump(mode="json", exclude_none=True))
    else:
        model = OAuthClientMetadata.model_validate(client_metadata)
    return model.model_dump_json(exclude_none=True)


def _request_timeout(request: Any) -> float | None:
    """The client's own timeout for this request, in seconds: httpx puts its
    connect/read/write/pool timeouts in ``request.extensions["timeout"]``; the largest
    finite one bounds each OAuth request made for it (``None``: ``http_timeout``)."""
    timeouts = request.extensions.get("timeout")
    if not isinstance(timeouts, dict):
        return None
    finite = [float(t) for t in timeouts.values() if isinstance(t, (int, float)) and 0 < t < math.inf]
    return max(finite) if finite else None


def _native_storage(storage: Any) -> Any:
    from ._builtins import FileTokenStorage

    return storage._native if isinstance(storage, FileTokenStorage) else None


class OAuthClientProvider(*_auth_bases()):  # type: ignore[misc]
    """OAuth for MCP servers, as an ``httpx2.Auth`` and an ``httpx.Auth``.

    Args:
        server_url: The MCP server URL.
        client_metadata: The client's registration metadata (``OAuthClientMetadata``,
            the SDK's model, or a dict).
        storage: A ``TokenStorage`` (any object with the four async methods).
        redirect_handler: Awaited with the authorization URL; gets a person there.
        callback_handler: Awaited next; returns the redirect's ``AuthorizationCodeResult``.
        timeout: Seconds for the person's step, from ``redirect_handler`` to
            ``callback_handler``'s answer, before the flow fails with ``OAuthFlowError``.
        client_metadata_url: A Client ID Metadata Document URL (HTTPS, non-root path),
            used as ``client_id`` when the authorization server supports it.
        validate_resource_url: Awaited with ``(server_url, resource)`` from the
            protected resource metadata instead of the default check; raise to refuse.
        http_timeout: Seconds for each HTTP request the provider makes itself, unless
            the httpx client's own timeout for the request being authorized applies.
        assume_s256_when_pkce_unadvertised: Accept authorization servers whose metadata
            omits ``code_challenge_methods_supported`` (and use S256).
        skip_resource_check: Skip the protected resource metadata ``resource`` check.
        protocol_version: Sent as ``MCP-Protocol-Version`` on discovery requests.
        settings: What the authorization server needs (``ServerSettings``).
        dpop: Bind tokens to a key with DPoP (RFC 9449): every token request and every
            request to the MCP server carries a fresh proof. Without ``dpop_key`` the
            provider makes an ES256 key of its own, so DPoP tokens it stored are
            obtained again by the next process.
        dpop_key: A PEM private key (ES256 P-256, or RS256/PS256 with
            ``dpop_algorithm``) for DPoP, so that bound tokens outlive the process.
        dpop_algorithm: The algorithm of ``dpop_key`` (default ES256).

    Raises:
        ValueError: ``client_metadata_url`` is not HTTPS with a non-root path, or
            another part of the configuration cannot work (``OAuthConfigurationError``).
        pydantic.ValidationError: ``client_metadata`` is not valid.
    """

    requires_request_body = True
    requires_response_body = False

    def __init__(
        self,
        server_url: str,
        client_metadata: OAuthClientMetadata,
        storage: TokenStorage,
        redirect_handler: Callable[[str], Awaitable[None]] | None = None,
        callback_handler: Callable[[], Awaitable[AuthorizationCodeResult]] | None = None,
        timeout: float = 300.0,
        client_metadata_url: str | None = None,
        validate_resource_url: Callable[[str, str | None], Awaitable[None]] | None = None,
        *,
        http_timeout: float = 30.0,
        assume_s256_when_pkce_unadvertised: bool = False,
        skip_resource_check: bool = False,
        protocol_version: str | None = None,
        settings: ServerSettings | None = None,
        dpop: bool = False,
        dpop_key: str | None = None,
        dpop_algorithm: str = "ES256",
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        self._storage = storage
        bridge = Bridge(storage, redirect_handler, callback_handler, float(timeout), validate_resource_url)
        self._native = _native.NativeProvider(
            server_url,
            bridge,
            client_metadata_json=_client_metadata_json(client_metadata),
            native_storage=_native_storage(storage),
            has_handler=redirect_handler is not None or callback_handler is not None,
            http_timeout=float(http_timeout),
            authorization_timeout=float(timeout),
            client_metadata_url=client_metadata_url,
            validate_resource=validate_resource_url is not None,
            assume_s256_when_pkce_unadvertised=assume_s256_when_pkce_unadvertised,
            skip_resource_check=skip_resource_check,
            protocol_version=protocol_version,
            **_settings_kwargs(settings),
            **_dpop_kwargs(dpop, dpop_key, dpop_algorithm),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server_url={self._native.server_url!r})"

    @property
    def current_tokens(self) -> OAuthToken | None:
        """The tokens held now, if any."""
        raw = self._native.current_token_json()
        return None if raw is None else OAuthToken.model_validate_json(raw)

    async def authorize(self) -> None:
        """Run discovery and the whole flow now, before any request (a "log in" step)."""
        try:
            await self._native.authorize()
        finally:
            _native.flush_logs()

    def authorize_sync(self) -> None:
        """Blocking form of :meth:`authorize`."""
        self._native.authorize_blocking(_callback_loop())

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        native = self._native
        method, url = request.method, str(request.url)
        headers = native.cached_headers(method, url)
        if headers is None:
            try:
                headers = await native.headers(method, url, _request_timeout(request))
            finally:
                _native.flush_logs()
        if headers is not None:
            for name, value in headers:
                request.headers[name] = value
        response = yield request
        # One retry per request; a second only for a DPoP nonce challenge met by
        # the retry (a new DPoP-bound token meets the server's nonce first).
        for round in range(2):
            status = response.status_code
            items = response.headers.multi_items()
            if status != 401 and status != 403:
                if "dpop-nonce" in response.headers:
                    native.observe_response(url, items)
                return
            if round == 1 and not native.is_dpop_nonce_challenge(status, items):
                return
            try:
                retry = await native.handle_response(
                    method,
                    url,
                    request.headers.get("authorization"),
                    status,
                    items,
                    _request_timeout(request),
                )
            finally:
                _native.flush_logs()
            if retry is None:
                return
            for name, value in retry:
                request.headers[name] = value
            response = yield request

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        native = self._native
        method, url = request.method, str(request.url)
        headers = native.cached_headers(method, url)
        if headers is None:
            headers = native.headers_blocking(_callback_loop(), method, url, _request_timeout(request))
        if headers is not None:
            for name, value in headers:
                request.headers[name] = value
        response = yield request
        for round in range(2):
            status = response.status_code
            items = response.headers.multi_items()
            if status != 401 and status != 403:
                if "dpop-nonce" in response.headers:
                    native.observe_response(url, items)
                return
            if round == 1 and not native.is_dpop_nonce_challenge(status, items):
                return
            retry = native.handle_response_blocking(
                _callback_loop(),
                method,
                url,
                request.headers.get("authorization"),
                status,
                items,
                _request_timeout(request),
            )
            if retry is None:
                return
            for name, value in retry:
                request.headers[name] = value
            response = yield request


def _dpop_kwargs(dpop: bool, dpop_key: str | None, dpop_algorithm: str) -> dict[str, Any]:
    if dpop_key is not None:
        return {"dpop": True, "dpop_key_pem": dpop_key, "dpop_algorithm": dpop_algorithm}
    return {"dpop": bool(dpop)}


def _machine_native(
    server_url: str,
    bridge: Bridge,
    storage: Any,
    http_timeout: float,
    assume_s256_when_pkce_unadvertised: bool,
    skip_resource_check: bool,
    protocol_version: str | None,
    settings: ServerSettings | None,
    **grant: Any,
) -> Any:
    """The native provider of a grant without a person or handlers (client credentials
    unless ``grant`` names another)."""
    return _native.NativeProvider(
        server_url,
        bridge,
        native_storage=_native_storage(storage),
        http_timeout=float(http_timeout),
        assume_s256_when_pkce_unadvertised=assume_s256_when_pkce_unadvertised,
        skip_resource_check=skip_resource_check,
        protocol_version=protocol_version,
        client_credentials=grant.pop("client_credentials", True),
        **_settings_kwargs(settings),
        **grant,
    )


class ClientCredentialsOAuthProvider(OAuthClientProvider):
    """The client credentials grant: a pre-registered ``client_id`` and secret, no person.

    Args:
        server_url: The MCP server URL.
        storage: A ``TokenStorage``.
        client_id: The client ID.
        client_secret: The client secret.
        token_endpoint_auth_method: ``client_secret_basic`` (HTTP Basic, the default) or
            ``client_secret_post`` (in the form body).
        scope: Space-separated scopes to ask for (``scopes=``, the SDK 1.x name, is
            accepted as well).
        issuer: The issuer of the authorization server the credentials belong to. When
            set, metadata from any other issuer is refused and the secret is never sent
            elsewhere: the flow stops with ``OAuthFlowError``.
        dpop: Bind the tokens to a key with DPoP (see ``OAuthClientProvider``).

    Raises:
        ValueError: an unknown ``token_endpoint_auth_method``, an ``issuer`` that is not
            an http(s) URL, or both ``scope`` and ``scopes`` given and different.
    """

    def __init__(
        self,
        server_url: str,
        storage: TokenStorage,
        client_id: str,
        client_secret: str,
        token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic",
        scope: str | None = None,
        issuer: str | None = None,
        *,
        scopes: str | None = None,
        http_timeout: float = 30.0,
        assume_s256_when_pkce_unadvertised: bool = False,
        skip_resource_check: bool = False,
        protocol_version: str | None = None,
        settings: ServerSettings | None = None,
        dpop: bool = False,
        dpop_key: str | None = None,
        dpop_algorithm: str = "ES256",
    ) -> None:
        if token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError("token_endpoint_auth_method must be client_secret_basic or client_secret_post")
        if scopes is not None and scope is not None and scopes != scope:
            raise ValueError("pass scopes or scope, not both")
        self._storage = storage
        self._native = _machine_native(
            server_url,
            Bridge(storage, None, None, 1.0, None),
            storage,
            http_timeout,
            assume_s256_when_pkce_unadvertised,
            skip_resource_check,
            protocol_version,
            settings,
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=token_endpoint_auth_method,
            scope=scope if scope is not None else scopes,
            issuer=issuer,
            **_dpop_kwargs(dpop, dpop_key, dpop_algorithm),
        )


class PrivateKeyJWTOAuthProvider(OAuthClientProvider):
    """The client credentials grant with ``private_key_jwt`` client authentication (RFC 7523 §2.2).

    Each token request carries a fresh assertion from ``assertion_provider``, awaited
    with the audience: the authorization server's issuer identifier. Use
    ``SignedJWTParameters(...).create_assertion_provider()`` to have the core sign with
    the client's key, ``static_assertion_provider(jwt)`` for a pre-built JWT, or your
    own coroutine function (workload identity federation). Its exceptions reach the
    caller unchanged.

    Args:
        server_url: The MCP server URL.
        storage: A ``TokenStorage``.
        client_id: The client ID, registered with ``private_key_jwt``.
        assertion_provider: ``async (audience: str) -> str``, a signed JWT whose ``aud``
            is ``audience`` (a plain function works too).
        scope: Space-separated scopes to ask for (``scopes`` is accepted as well).
        issuer: The issuer of the authorization server ``client_id`` is registered with.
            When set, that server is chosen among those the MCP server names, and no
            assertion is made for any other: the flow stops with ``OAuthFlowError``.

    Raises:
        ValueError: ``issuer`` is not an http(s) URL, or both ``scope`` and ``scopes``
            are given and differ.
    """

    def __init__(
        self,
        server_url: str,
        storage: TokenStorage,
        client_id: str,
        assertion_provider: Callable[[str], Awaitable[str]],
        scope: str | None = None,
        issuer: str | None = None,
        *,
        scopes: str | None = None,
        http_timeout: float = 30.0,
        assume_s256_when_pkce_unadvertised: bool = False,
        skip_resource_check: bool = False,
        protocol_version: str | None = None,
        settings: ServerSettings | None = None,
        dpop: bool = False,
        dpop_key: str | None = None,
        dpop_algorithm: str = "ES256",
    ) -> None:
        if not callable(assertion_provider):
            raise TypeError("assertion_provider must be callable: async (audience: str) -> str")
        if scopes is not None and scope is not None and scopes != scope:
            raise ValueError("pass scopes or scope, not both")
        self._storage = storage
        self._native = _machine_native(
            server_url,
            Bridge(storage, None, None, 1.0, None, assertion_provider),
            storage,
            http_timeout,
            assume_s256_when_pkce_unadvertised,
            skip_resource_check,
            protocol_version,
            settings,
            client_id=client_id,
            token_endpoint_auth_method="private_key_jwt",
            scope=scope if scope is not None else scopes,
            client_assertion=True,
            issuer=issuer,
            **_dpop_kwargs(dpop, dpop_key, dpop_algorithm),
        )
