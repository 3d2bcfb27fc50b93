"""The providers: ``httpx.Auth`` and ``httpx2.Auth`` around the native core.

Per request: the headers (``Authorization``) come from the held token, for the
request's method and URL (one native call: no I/O, no lock, nothing awaited) or, when
none is held or it is about to expire, from the core, which loads stored tokens or
refreshes. A 401 or a 403 ``insufficient_scope`` goes to the core with the response's
headers and the ``Authorization`` the request carried; the core refreshes, runs the
authorization flow or steps up, and the request is sent again once with the new
headers. The OAuth requests the core makes on the way are yielded from the auth flow
and sent by the httpx client itself (``_carry``); the client's own timeout for the
request (httpx's ``timeout``) bounds each of them. Concurrent requests through one provider are not
serialized; refreshes and flows are single-flight, each run as a task of its own, so a
cancelled request does not lose a refresh its cancellation interrupted.

Async clients: the storage and handler callbacks run on the caller's event loop.
Sync clients: the core runs with the GIL released, and async callbacks run on a private
event loop in a daemon thread of this package (plain functions are fine too).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import json
import math
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, Union

from pydantic import BaseModel

from . import _native
from ._bridge import Bridge, anyio_home, home_loop
from ._builtins import DeviceAuthorization, LogoutResult
from ._carry import deliver, deliver_sync, not_sent, outgoing
from ._models import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)

__all__ = [
    "ClientCredentialsOAuthProvider",
    "OAuthClientProvider",
    "OAuthContext",
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
    """Where tokens and client information live between runs: four async methods.

    The getters may return this package's models, the SDK's (``mcp.shared.auth``), any
    pydantic model or a dict with their fields; the setters receive this package's
    models (typed ``Any`` here, so that a storage written for the SDK's models, whose
    setters take those, is a ``TokenStorage`` too).
    """

    async def get_tokens(self) -> OAuthToken | BaseModel | Mapping[str, Any] | None:
        """Get stored tokens."""
        ...

    async def set_tokens(self, tokens: Any) -> None:
        """Store tokens."""
        ...

    async def get_client_info(self) -> OAuthClientInformationFull | BaseModel | Mapping[str, Any] | None:
        """Get stored client information."""
        ...

    async def set_client_info(self, client_info: Any) -> None:
        """Store client information."""
        ...


CallbackResult: TypeAlias = Union[AuthorizationCodeResult, BaseModel, "tuple[str, str | None]", Mapping[str, Any]]
"""What a ``callback_handler`` may return: an ``AuthorizationCodeResult`` (ours or the
SDK's), SDK 1.x's ``(code, state)`` or a dict with the result's fields."""

RedirectHandler: TypeAlias = Union[Callable[[str], Awaitable[None]], Callable[[str], None]]
CallbackHandler: TypeAlias = Union[Callable[[], Awaitable[CallbackResult]], Callable[[], CallbackResult]]
DeviceCodeHandler: TypeAlias = Union[Callable[[DeviceAuthorization], Awaitable[None]], Callable[[DeviceAuthorization], None]]
ResourceValidator: TypeAlias = Union[
    Callable[[str, "str | None"], Awaitable[None]], Callable[[str, "str | None"], None]
]
ClientMetadataLike: TypeAlias = Union[OAuthClientMetadata, BaseModel, Mapping[str, Any]]


@dataclass(frozen=True)
class OAuthContext:
    """What a provider knows, read-only (``provider.context``), with the attributes of
    the SDK's ``OAuthContext`` that programs read. A snapshot taken at each access:
    the core holds the state, and changing it here would change nothing.

    ``protected_resource_metadata``, ``oauth_metadata`` and ``auth_server_url`` are
    ``None`` until discovery has run (and, like ``client_info``, while a refresh or a
    flow is running). ``token_expiry_time`` is the absolute expiry, in seconds since
    the epoch, of ``current_tokens``.
    """

    server_url: str
    client_metadata: OAuthClientMetadata | None
    storage: Any
    redirect_handler: Callable[[str], Any] | None
    callback_handler: Callable[[], Any] | None
    client_metadata_url: str | None
    protected_resource_metadata: ProtectedResourceMetadata | None
    oauth_metadata: OAuthMetadata | None
    auth_server_url: str | None
    protocol_version: str | None
    client_info: OAuthClientInformationFull | None
    current_tokens: OAuthToken | None
    token_expiry_time: float | None

    def is_token_valid(self) -> bool:
        """Whether a token is held that has not expired."""
        if self.current_tokens is None or not self.current_tokens.access_token:
            return False
        return self.token_expiry_time is None or time.time() <= self.token_expiry_time


def _lenient(model: Any, data: Any) -> Any:
    """``data`` as ``model``; the core accepted it, so a field pydantic finds wanting
    (an endpoint of the 2025-03-26 defaults) is kept as it is rather than lost."""
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValueError:
        return model.model_construct(**data)


def _auth_bases() -> tuple[type, ...]:
    bases: list[type] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module: Any = __import__(module_name)
        except ImportError:
            continue
        bases.append(module.Auth)
    return tuple(bases) or (object,)


if TYPE_CHECKING:
    # What type checkers see: both libraries' Auth (an installed package whose
    # imports do not resolve is checked as if they were Any, never as an error).
    import httpx
    import httpx2

    class _AuthBase(httpx2.Auth, httpx.Auth):  # type: ignore[misc]
        pass

else:
    _AuthBase = type("_AuthBase", _auth_bases(), {})


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


@contextlib.contextmanager
def _on_this_loop() -> Iterator[asyncio.AbstractEventLoop | None]:
    """Where a native call started here runs its callbacks: ``None`` for the running
    asyncio loop; under another event loop (trio), the private loop, which hands each
    callback back to this loop (``_bridge.home_loop``, seen by the call it starts)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        reset = home_loop.set(anyio_home())
        try:
            yield _callback_loop()
        finally:
            home_loop.reset(reset)
        return
    yield None


async def _next(operation: Any, event_loop: asyncio.AbstractEventLoop | None) -> Any:
    """The next step of a native operation: awaited on asyncio; under another event
    loop, waited for in a worker thread."""
    if event_loop is None:
        return await operation.next()
    import anyio.to_thread

    return await anyio.to_thread.run_sync(operation.next_blocking, abandon_on_cancel=True)


def _host_list(hosts: Sequence[str]) -> list[str]:
    if isinstance(hosts, str):
        raise TypeError('allow_http_hosts must be a list of host names, e.g. ["keycloak"]')
    return [str(h) for h in hosts]


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


def _device_client_metadata(client_metadata: Any) -> tuple[OAuthClientMetadata, str]:
    """The client metadata of the device flow, which needs no redirect URI: the model
    (``redirect_uris`` may be ``None``) and its JSON for the core (the core sets the
    grant types)."""
    if hasattr(client_metadata, "model_dump"):
        data = client_metadata.model_dump(mode="json", exclude_none=True)
    else:
        data = dict(client_metadata)
    if not data.get("redirect_uris"):
        data["redirect_uris"] = None
    model = OAuthClientMetadata.model_validate(data)
    native = model.model_dump(mode="json", exclude_none=True)
    native.setdefault("redirect_uris", [])
    return model, json.dumps(native)


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
    from ._builtins import FileTokenStorage, RedisTokenStorage

    return storage._native if isinstance(storage, (FileTokenStorage, RedisTokenStorage)) else None


def _native_keyring(storage: Any) -> Any:
    from ._builtins import KeyringTokenStorage

    return storage._native if isinstance(storage, KeyringTokenStorage) else None


class OAuthClientProvider(_AuthBase):
    """OAuth for MCP servers, as an ``httpx2.Auth`` and an ``httpx.Auth``.

    Args:
        server_url: The MCP server URL.
        client_metadata: The client's registration metadata (``OAuthClientMetadata``,
            the SDK's model, or a dict).
        storage: A ``TokenStorage`` (any object with the four async methods).
        redirect_handler: Awaited with the authorization URL; gets a person there.
        callback_handler: Awaited next; returns the redirect's ``AuthorizationCodeResult``
            (or, as in SDK 1.x, a ``(code, state)`` tuple).
        client_metadata_url: A Client ID Metadata Document URL (HTTPS, non-root path),
            used as ``client_id`` when the authorization server supports it.
        validate_resource_url: Awaited with ``(server_url, resource)`` from the
            protected resource metadata instead of the default check; raise to refuse.
        timeout: Seconds for the person's step, from ``redirect_handler`` to
            ``callback_handler``'s answer, before the flow fails with ``OAuthFlowError``.
            Keyword-only, as SDK 2.x has ``client_metadata_url`` in its place; a number
            passed there positionally (an SDK 1.x program) is taken as ``timeout``.
        http_timeout: Seconds for each OAuth request, unless the httpx client's own
            timeout for the request being authorized applies.
        oauth_requests: ``"client"`` (the default, as in the SDK): discovery,
            registration and token requests are sent by the httpx client the MCP
            request goes through, with its transport, TLS settings, proxies, timeouts
            and event hooks. ``"native"``: by this package's own HTTP client (the
            system's CA roots, proxies from the environment), which also keeps a
            refresh's request alive when the request that started it is cancelled.
            ``authorize()`` has no client at hand and always uses the native one.
        assume_s256_when_pkce_unadvertised: Accept authorization servers whose metadata
            omits ``code_challenge_methods_supported`` (and use S256), as the SDK does.
        allow_http_hosts: Host names or addresses (any port) whose authorization-server
            endpoints may use plain ``http``, e.g. ``["keycloak"]`` for
            ``http://keycloak:8080`` in docker compose (HTTPS is required off loopback
            otherwise). Tokens and secrets cross the network in the clear there.
        server_scope_replaces_configured: Let the server's scope (its challenge's, else its
            protected resource metadata's) replace ``client_metadata.scope``, as the SDK
            does; by default a configured scope is never overwritten.
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
        device_code_handler: Use the device authorization grant (RFC 8628) instead of
            the browser flow, for hosts where the person has no browser on this machine
            (an SSH session, a container): called (sync or async) with a
            ``DeviceAuthorization`` to show the person (the user code and where to enter
            it); the provider then polls the token endpoint until the person approves on
            another device, denies (``OAuthTokenError``, ``access_denied``), or the code
            expires. The authorization server must advertise a
            ``device_authorization_endpoint``; ``redirect_handler`` and
            ``callback_handler`` are not used, and ``client_metadata`` needs no
            redirect URIs. ``timeout`` bounds the wait as well.

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
        client_metadata: ClientMetadataLike,
        storage: TokenStorage,
        redirect_handler: RedirectHandler | None = None,
        callback_handler: CallbackHandler | None = None,
        client_metadata_url: str | None = None,
        validate_resource_url: ResourceValidator | None = None,
        *,
        timeout: float = 300.0,
        http_timeout: float = 30.0,
        oauth_requests: Literal["client", "native"] = "client",
        assume_s256_when_pkce_unadvertised: bool = False,
        allow_http_hosts: Sequence[str] = (),
        server_scope_replaces_configured: bool = False,
        skip_resource_check: bool = False,
        protocol_version: str | None = None,
        settings: ServerSettings | None = None,
        dpop: bool = False,
        dpop_key: str | None = None,
        dpop_algorithm: str = "ES256",
        device_code_handler: DeviceCodeHandler | None = None,
    ) -> None:
        # SDK 1.x had `timeout` where 2.x has `client_metadata_url` (and
        # `client_metadata_url` next): a number there is a 1.x program's timeout.
        if isinstance(client_metadata_url, (int, float)) and not isinstance(client_metadata_url, bool):
            timeout = float(client_metadata_url)
            client_metadata_url = None
            if isinstance(validate_resource_url, str):
                client_metadata_url, validate_resource_url = validate_resource_url, None
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        if oauth_requests not in ("client", "native"):
            raise ValueError('oauth_requests must be "client" or "native"')
        self._storage = storage
        if device_code_handler is not None:
            self._client_metadata, metadata_json = _device_client_metadata(client_metadata)
        else:
            self._client_metadata = OAuthClientMetadata.model_validate_json(_client_metadata_json(client_metadata))
            metadata_json = self._client_metadata.model_dump_json(exclude_none=True)
        self._redirect_handler = redirect_handler
        self._callback_handler = callback_handler
        self._client_metadata_url = client_metadata_url
        self._protocol_version = protocol_version
        bridge = Bridge(
            storage,
            redirect_handler,
            callback_handler,
            float(timeout),
            validate_resource_url,
            device_code_handler=device_code_handler,
        )
        self._native = _native.NativeProvider(
            server_url,
            bridge,
            client_metadata_json=metadata_json,
            native_storage=_native_storage(storage),
            native_keyring=_native_keyring(storage),
            device_code=device_code_handler is not None,
            has_handler=redirect_handler is not None or callback_handler is not None,
            http_timeout=float(http_timeout),
            authorization_timeout=float(timeout),
            client_metadata_url=client_metadata_url,
            validate_resource=validate_resource_url is not None,
            assume_s256_when_pkce_unadvertised=assume_s256_when_pkce_unadvertised,
            skip_resource_check=skip_resource_check,
            protocol_version=protocol_version,
            carried_requests=oauth_requests == "client",
            allow_http_hosts=_host_list(allow_http_hosts),
            server_scope_replaces_configured=bool(server_scope_replaces_configured),
            **_settings_kwargs(settings),
            **_dpop_kwargs(dpop, dpop_key, dpop_algorithm),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server_url={self._native.server_url!r})"

    @property
    def context(self) -> OAuthContext:
        """What the provider knows now (a read-only snapshot)."""
        known = json.loads(self._native.context_json())
        tokens = self.current_tokens
        client_info = known.get("client_info")
        return OAuthContext(
            server_url=self._native.server_url,
            client_metadata=getattr(self, "_client_metadata", None),
            storage=getattr(self, "_storage", None),
            redirect_handler=getattr(self, "_redirect_handler", None),
            callback_handler=getattr(self, "_callback_handler", None),
            client_metadata_url=getattr(self, "_client_metadata_url", None),
            protected_resource_metadata=_lenient(ProtectedResourceMetadata, known.get("protected_resource_metadata")),
            oauth_metadata=_lenient(OAuthMetadata, known.get("oauth_metadata")),
            auth_server_url=known.get("auth_server_url"),
            protocol_version=getattr(self, "_protocol_version", None),
            client_info=None if client_info is None else OAuthClientInformationFull.model_validate(client_info),
            current_tokens=tokens,
            token_expiry_time=None if tokens is None else tokens.expires_at,
        )

    @property
    def current_tokens(self) -> OAuthToken | None:
        """The tokens held now, if any."""
        raw = self._native.current_token_json()
        return None if raw is None else OAuthToken.model_validate_json(raw)

    async def authorize(self) -> None:
        """Run discovery and the whole flow now, before any request (a "log in" step).

        No httpx client is at hand here: the package's own HTTP client sends its OAuth
        requests (the system's CA roots, proxies from the environment)."""
        try:
            with _on_this_loop() as event_loop:
                if event_loop is None:
                    awaitable = self._native.authorize()
                else:
                    context = contextvars.copy_context()
            if event_loop is None:
                await awaitable
            else:
                import anyio.to_thread

                await anyio.to_thread.run_sync(context.run, self._native.authorize_blocking, event_loop)
        finally:
            _native.flush_logs()

    def authorize_sync(self) -> None:
        """Blocking form of :meth:`authorize` (with the package's own HTTP client too)."""
        self._native.authorize_blocking(_callback_loop())

    async def logout(self) -> LogoutResult:
        """Log out: revoke the refresh token, then the access token, at the authorization
        server's ``revocation_endpoint`` (RFC 7009) when it advertises one, as the
        client; then delete the tokens stored for the MCP server (the registration is
        kept). Tokens only ever go to the authorization server that issued them. When
        revoking the refresh token fails, nothing is deleted and the error is raised:
        try again. The package's own HTTP client sends the requests."""
        try:
            with _on_this_loop() as event_loop:
                if event_loop is None:
                    awaitable = self._native.logout()
                else:
                    context = contextvars.copy_context()
            if event_loop is None:
                raw = await awaitable
            else:
                import anyio.to_thread

                raw = await anyio.to_thread.run_sync(context.run, self._native.logout_blocking, event_loop)
        finally:
            _native.flush_logs()
        return LogoutResult(**json.loads(raw))

    def logout_sync(self) -> LogoutResult:
        """Blocking form of :meth:`logout`."""
        return LogoutResult(**json.loads(self._native.logout_blocking(_callback_loop())))

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        native = self._native
        method, url = request.method, None
        headers = _held_headers(native, request)
        if headers is False:
            url = str(request.url)
            headers = native.cached_headers(method, url)
        if headers is None:
            url = url or str(request.url)
            with _on_this_loop() as event_loop:
                operation = native.start_headers(method, url, _request_timeout(request), event_loop)
            try:
                while True:
                    kind, value = await _next(operation, event_loop)
                    if kind == "done":
                        headers = value
                        break
                    sent = outgoing(request, value)
                    try:
                        carried_response = yield sent
                    except BaseException:
                        not_sent(value)
                        raise
                    await deliver(value, sent, carried_response)
            finally:
                _native.flush_logs()
        if headers is not None:
            for name, value in headers:
                request.headers[name] = value
        response = yield request
        # One retry per request; a second only for a DPoP nonce challenge met by
        # the retry (a new DPoP-bound token meets the server's nonce first).
        for attempt in range(2):
            status = response.status_code
            if status != 401 and status != 403:
                # The common case, on every request: no copy of the headers.
                if native.observes_responses and "dpop-nonce" in response.headers:
                    native.observe_response(url or str(request.url), response.headers.multi_items())
                return
            url = url or str(request.url)
            items = response.headers.multi_items()
            if attempt == 1 and not native.is_dpop_nonce_challenge(status, items):
                return
            with _on_this_loop() as event_loop:
                operation = native.start_handle_response(
                    method,
                    url,
                    request.headers.get("authorization"),
                    status,
                    items,
                    _request_timeout(request),
                    event_loop,
                )
            try:
                while True:
                    kind, value = await _next(operation, event_loop)
                    if kind == "done":
                        retry = value
                        break
                    sent = outgoing(request, value)
                    try:
                        carried_response = yield sent
                    except BaseException:
                        not_sent(value)
                        raise
                    await deliver(value, sent, carried_response)
            finally:
                _native.flush_logs()
            if retry is None:
                return
            for name, value in retry:
                request.headers[name] = value
            response = yield request

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        native = self._native
        method, url = request.method, None
        headers = _held_headers(native, request)
        if headers is False:
            url = str(request.url)
            headers = native.cached_headers(method, url)
        if headers is None:
            url = url or str(request.url)
            operation = native.start_headers(method, url, _request_timeout(request), _callback_loop())
            headers = yield from _carry_sync(operation, request)
        if headers is not None:
            for name, value in headers:
                request.headers[name] = value
        response = yield request
        for attempt in range(2):
            status = response.status_code
            if status != 401 and status != 403:
                # The common case, on every request: no copy of the headers.
                if native.observes_responses and "dpop-nonce" in response.headers:
                    native.observe_response(url or str(request.url), response.headers.multi_items())
                return
            url = url or str(request.url)
            items = response.headers.multi_items()
            if attempt == 1 and not native.is_dpop_nonce_challenge(status, items):
                return
            operation = native.start_handle_response(
                method,
                url,
                request.headers.get("authorization"),
                status,
                items,
                _request_timeout(request),
                _callback_loop(),
            )
            retry = yield from _carry_sync(operation, request)
            if retry is None:
                return
            for name, value in retry:
                request.headers[name] = value
            response = yield request


def _held_headers(native: Any, request: Any) -> Any:
    """The hot path's first step, from the request's origin only: httpx makes
    the URL a string anew on every call, the slowest step of a request here.
    The headers to set, ``None`` when there are none to give without waiting
    (then the flow runs, with the URL), or ``False`` when they depend on the
    whole URL (a DPoP proof; then ``cached_headers`` takes it)."""
    u = request.url
    return native.cached_headers_at(u.scheme, u.raw_host, u.port)


def _dpop_kwargs(dpop: bool, dpop_key: str | None, dpop_algorithm: str) -> dict[str, Any]:
    if dpop_key is not None:
        return {"dpop": True, "dpop_key_pem": dpop_key, "dpop_algorithm": dpop_algorithm}
    return {"dpop": bool(dpop)}


def _carry_sync(operation: Any, request: Any) -> Generator[Any, Any, Any]:
    """Run a native operation from a sync auth flow, yielding the requests it makes."""
    while True:
        kind, value = operation.next_blocking()
        if kind == "done":
            return value
        sent = outgoing(request, value)
        try:
            carried_response = yield sent
        except BaseException:
            not_sent(value)
            raise
        deliver_sync(value, sent, carried_response)


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
        native_keyring=_native_keyring(storage),
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
