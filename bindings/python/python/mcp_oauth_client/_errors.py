"""Exceptions.

Every OAuth failure is an :class:`OAuthFlowError`; registration and token-endpoint
refusals are its subclasses :class:`OAuthRegistrationError` and
:class:`OAuthTokenError`, as in ``mcp.client.auth``. An authorization server that
cannot answer (a 5xx, a 429, an HTML page) is an :class:`OAuthServerError`, with the
``retry_after`` it asked for; stored tokens survive it. A configuration that cannot work
is an :class:`OAuthConfigurationError`, which is both an ``OAuthFlowError`` and a
``ValueError`` (raised at construction when it can be seen then).

Network failures of the provider's own requests (discovery, registration, token
endpoint) are not flow errors: they are :class:`OAuthNetworkError` and its subclasses
:class:`OAuthConnectError` and :class:`OAuthTimeoutError`, which are also the
``TransportError``/``ConnectError``/``TimeoutException`` of ``httpx`` and ``httpx2``
(whichever are installed), so ``except httpx.HTTPError`` catches them as it would a
failure of the request itself.

Every exception of this module carries ``step`` (what the client was doing, e.g.
``"registration"``, ``"token_exchange"``), ``url`` (without query), ``status`` (the HTTP
status, if any) and the OAuth ``error``, ``error_description`` and ``error_uri`` the
server sent, each ``None`` when unknown. Messages and reprs never contain a token, a
secret, a code or a PKCE verifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "OAuthConfigurationError",
    "OAuthConnectError",
    "OAuthFlowError",
    "OAuthNetworkError",
    "OAuthRegistrationError",
    "OAuthServerError",
    "OAuthTimeoutError",
    "OAuthTokenError",
]


class _Detail:
    """The detail every exception of this package carries."""

    step: str | None
    url: str | None
    status: int | None
    error: str | None
    error_description: str | None
    error_uri: str | None

    def __init__(
        self,
        message: str = "",
        step: str | None = None,
        url: str | None = None,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        error_uri: str | None = None,
    ) -> None:
        super().__init__(message)  # type: ignore[call-arg]  # the next base: Exception or a TransportError
        self.step = step
        self.url = url
        self.status = status
        self.error = error
        self.error_description = error_description
        self.error_uri = error_uri


class OAuthFlowError(_Detail, Exception):
    """Base exception for OAuth flow errors."""


class OAuthTokenError(OAuthFlowError):
    """The token endpoint refused a grant (code exchange, refresh, client credentials)."""


class OAuthRegistrationError(OAuthFlowError):
    """The authorization server refused, or does not offer, client registration."""


class OAuthServerError(OAuthFlowError):
    """The authorization server could not answer: a 5xx, a 429, an HTML error page or
    a malformed answer. An outage, not a refusal: stored tokens are kept, and the next
    request tries again.

    ``retry_after`` is the wait the server asked for (``Retry-After``), in seconds, or
    ``None``.
    """

    retry_after: float | None

    def __init__(
        self,
        message: str = "",
        step: str | None = None,
        url: str | None = None,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        error_uri: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, step, url, status, error, error_description, error_uri)
        self.retry_after = retry_after


class OAuthConfigurationError(OAuthFlowError, ValueError):
    """The configuration cannot work (a bad URL, missing handlers, invalid metadata)."""


def _transport_bases(name: str) -> tuple[type[BaseException], ...]:
    bases: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module: Any = __import__(module_name)
        except ImportError:
            continue
        bases.append(getattr(module, name))
    return tuple(bases) or (Exception,)


# The method of the OAuth request each step sends (discovery reads, the rest posts).
_GET_STEPS = frozenset({"resource_metadata", "authorization_server_metadata"})


def _request_for(step: str | None, url: str) -> Any:
    """The request that failed, as the installed httpx (httpx2 first) describes one."""
    for module_name in ("httpx2", "httpx"):
        try:
            module: Any = __import__(module_name)
        except ImportError:
            continue
        try:
            return module.Request("GET" if step in _GET_STEPS else "POST", url)
        except Exception:
            return None
    return None


if TYPE_CHECKING:
    # What type checkers see: both libraries' exceptions (unresolved imports in an
    # installed package are checked as Any, never reported).
    import httpx
    import httpx2

    class _TransportError(httpx2.TransportError, httpx.TransportError):  # type: ignore[misc]
        pass

    class _ConnectError(httpx2.ConnectError, httpx.ConnectError):  # type: ignore[misc]
        pass

    class _TimeoutException(httpx2.TimeoutException, httpx.TimeoutException):  # type: ignore[misc]
        pass

else:
    _TransportError = type("_TransportError", _transport_bases("TransportError"), {})
    _ConnectError = type("_ConnectError", _transport_bases("ConnectError"), {})
    _TimeoutException = type("_TimeoutException", _transport_bases("TimeoutException"), {})


# (httpx's and httpx2's HTTPError.request are the same property, typed each with its own Request.)
class OAuthNetworkError(_Detail, _TransportError):  # type: ignore[misc]
    """A request the provider made itself failed on the network.

    ``request`` is that request (method and URL, without its headers or body), as for
    httpx's own network errors; like theirs, reading it raises ``RuntimeError`` when
    the exception was built without one (no ``url``).
    """

    def __init__(
        self,
        message: str = "",
        step: str | None = None,
        url: str | None = None,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        error_uri: str | None = None,
    ) -> None:
        super().__init__(message, step, url, status, error, error_description, error_uri)
        if url is not None and hasattr(type(self), "request"):
            request = _request_for(step, url)
            if request is not None:
                self.request = request


class OAuthConnectError(OAuthNetworkError, _ConnectError):  # type: ignore[misc]
    """The connection could not be made (refused, DNS, TLS)."""


class OAuthTimeoutError(OAuthNetworkError, _TimeoutException):  # type: ignore[misc]
    """A request took longer than ``http_timeout``."""
