"""What the native provider calls back into: the application's storage, handlers and
resource validator, with values crossing as JSON text.

Storage methods may return this package's models, the MCP SDK's models
(``mcp.shared.auth``) or plain dicts; they receive this package's models. Callbacks
may be coroutine functions (as the SDK documents) or plain functions.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import OAuthFlowError
from ._models import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken

# code, state, iss, error, error_description, error_uri, and whether the handler's
# result could carry iss at all (SDK 1.x's (code, state) cannot).
CallbackTuple = tuple[str | None, str | None, str | None, str | None, str | None, str | None, bool]


async def _resolve(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _invoke(fn: Callable[..., Any], *args: Any) -> Any:
    return await _resolve(fn(*args))


# Set by a call made from an event loop other than asyncio's (trio): its callbacks are
# then run there, from the package's private loop, through this function.
home_loop: contextvars.ContextVar[Callable[..., Any] | None] = contextvars.ContextVar(
    "mcp_oauth_client_home_loop", default=None
)


def anyio_home() -> Callable[..., Any]:
    """What runs a callback on the current (non-asyncio) event loop from another thread."""
    import anyio.from_thread
    import anyio.lowlevel

    token = anyio.lowlevel.current_token()

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        return anyio.from_thread.run(_invoke, fn, *args, token=token)

    return run


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call an application callback (sync or async) on the loop of the request that
    needs it: the running loop, or the caller's own (trio) loop when one was recorded."""
    home = home_loop.get()
    if home is None:
        return await _invoke(fn, *args)
    return await asyncio.to_thread(home, fn, *args)


def to_json(value: Any, what: str) -> str | None:
    """JSON text for a model (ours or the SDK's), a dict, or JSON text itself."""
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return json.dumps(value.model_dump(mode="json", exclude_none=True))
    if isinstance(value, dict):
        return json.dumps({k: v for k, v in value.items() if v is not None})
    if isinstance(value, (str, bytes)):
        return value if isinstance(value, str) else value.decode()
    raise TypeError(f"{what} must return a pydantic model, a dict or None, not {type(value).__name__}")


def callback_tuple(result: Any) -> CallbackTuple:
    """The parts of a callback handler's result, whatever its type."""
    if result is None:
        raise TypeError("callback_handler returned None instead of an AuthorizationCodeResult")
    keys = ("code", "state", "iss", "error", "error_description", "error_uri")
    if isinstance(result, tuple):
        # SDK 1.x: (code, state).
        if len(result) != 2:
            raise TypeError("callback_handler returned a tuple that is not (code, state)")
        code, state = result
        return (None if code is None else str(code), None if state is None else str(state), None, None, None, None, False)
    if isinstance(result, dict):
        parts = tuple(result.get(k) for k in keys)
    else:
        parts = tuple(getattr(result, k, None) for k in keys)
    c, s, i, e, d, u = (None if p is None or p == "" else str(p) for p in parts)
    return (c, s, i, e, d, u, True)


class Bridge:
    """The object the native provider holds; every method is a coroutine."""

    def __init__(
        self,
        storage: Any,
        redirect_handler: Callable[[str], Awaitable[None] | None] | None,
        callback_handler: Callable[[], Awaitable[Any] | Any] | None,
        timeout: float,
        validate_resource_url: Callable[[str, str | None], Awaitable[None] | None] | None,
        assertion_provider: Callable[[str], Awaitable[str]] | None = None,
        grant_assertion_provider: Callable[[str, str], Awaitable[str]] | None = None,
        jwt_provider: Callable[[], Awaitable[str] | str] | None = None,
        device_code_handler: Callable[[Any], Awaitable[None] | None] | None = None,
    ) -> None:
        self._storage = storage
        self._redirect_handler = redirect_handler
        self._callback_handler = callback_handler
        self._timeout = timeout
        self._validate_resource_url = validate_resource_url
        self._assertion_provider = assertion_provider
        self._grant_assertion_provider = grant_assertion_provider
        self._jwt_provider = jwt_provider
        self._device_code_handler = device_code_handler

    async def get_tokens(self) -> str | None:
        return to_json(await _call(self._storage.get_tokens), "get_tokens")

    async def set_tokens(self, tokens: str) -> None:
        await _call(self._storage.set_tokens, OAuthToken.model_validate_json(tokens))

    async def get_client_info(self) -> str | None:
        return to_json(await _call(self._storage.get_client_info), "get_client_info")

    async def set_client_info(self, info: str) -> None:
        await _call(self._storage.set_client_info, OAuthClientInformationFull.model_validate_json(info))

    async def redirect(self, authorization_url: str) -> None:
        if self._redirect_handler is None:
            raise OAuthFlowError("No redirect handler provided for authorization code grant", step="authorization")
        await _call(self._redirect_handler, authorization_url)

    async def callback(self) -> CallbackTuple:
        if self._callback_handler is None:
            raise OAuthFlowError("No callback handler provided for authorization code grant", step="callback")
        handler = self._callback_handler
        # The core bounds the person's step with the same deadline; this one
        # also cancels the handler's coroutine when the time is up.
        try:
            result = await asyncio.wait_for(_call(handler), self._timeout)
        except asyncio.TimeoutError:
            raise OAuthFlowError(
                f"no authorization callback within {self._timeout:g} seconds", step="callback"
            ) from None
        if isinstance(result, AuthorizationCodeResult):
            return (
                result.code or None,
                result.state,
                result.iss,
                result.error,
                result.error_description,
                result.error_uri,
                True,
            )
        return callback_tuple(result)

    async def device_code(
        self, user_code: str, verification_uri: str, complete: str | None, expires_in: int, interval: int
    ) -> None:
        from ._builtins import DeviceAuthorization

        if self._device_code_handler is None:
            raise OAuthFlowError("No device code handler provided", step="device_authorization")
        await _call(
            self._device_code_handler,
            DeviceAuthorization(user_code, verification_uri, complete, expires_in, interval),
        )

    async def validate_resource(self, server_url: str, resource: str | None) -> None:
        if self._validate_resource_url is not None:
            await _call(self._validate_resource_url, server_url, resource)

    async def assertion(self, audience: str) -> str:
        if self._assertion_provider is None:
            raise OAuthFlowError("No assertion provider for private_key_jwt", step="grant")
        assertion = await _call(self._assertion_provider, audience)
        if not isinstance(assertion, str) or not assertion:
            raise TypeError(f"assertion_provider must return a JWT string, not {type(assertion).__name__}")
        return assertion

    async def grant_assertion(self, audience: str, resource: str) -> str:
        if self._grant_assertion_provider is None:
            raise OAuthFlowError("No assertion provider for the JWT-bearer grant", step="grant")
        assertion = await _call(self._grant_assertion_provider, audience, resource)
        if not isinstance(assertion, str) or not assertion:
            raise TypeError(f"assertion_provider must return a JWT string, not {type(assertion).__name__}")
        return assertion

    async def fresh_jwt(self) -> str:
        if self._jwt_provider is None:
            raise OAuthFlowError("No token provider", step="grant")
        token = await _call(self._jwt_provider)
        if not isinstance(token, str) or not token:
            raise TypeError(f"the token provider must return a JWT string, not {type(token).__name__}")
        return token
