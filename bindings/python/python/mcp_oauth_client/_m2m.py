"""Providers of the JWT-bearer grant (RFC 7523): enterprise-managed authorization
(identity assertion, ID-JAG) and workload identity.

``IdentityAssertionOAuthProvider`` has the MCP Python SDK's signature and meaning: the
application obtains the ID-JAG itself (``assertion_provider``) and the provider presents
it (leg 2). ``EnterpriseAuthOAuthProvider`` runs both legs: it exchanges the user's ID
token at the enterprise IdP for the ID-JAG (RFC 8693) and presents it.
``WorkloadIdentityOAuthProvider`` presents a JWT that the platform gives the workload.
Every rule is the core's; these classes carry the settings to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from os import PathLike
from typing import Literal

from ._bridge import Bridge
from ._provider import OAuthClientProvider, ServerSettings, TokenStorage, _dpop_kwargs, _machine_native

__all__ = ["EnterpriseAuthOAuthProvider", "IdentityAssertionOAuthProvider", "WorkloadIdentityOAuthProvider"]


def _check_auth_method(method: str) -> None:
    if method not in ("client_secret_basic", "client_secret_post"):
        raise ValueError("token_endpoint_auth_method must be client_secret_basic or client_secret_post")


class IdentityAssertionOAuthProvider(OAuthClientProvider):
    """Leg 2 of enterprise-managed authorization: an ID-JAG the application obtains,
    presented with the JWT-bearer grant at the configured authorization server.

    Args:
        server_url: The MCP server URL.
        storage: A ``TokenStorage``.
        client_id: The client ID at the MCP authorization server.
        client_secret: Its secret (this grant is for confidential clients).
        issuer: The MCP authorization server's issuer. Metadata from any other issuer is
            refused, and the ID-JAG and the secret are sent nowhere else.
        assertion_provider: ``async (audience, resource) -> str``: the ID-JAG for the
            authorization server ``audience`` (the issuer) and the MCP server
            ``resource``; called for each token request.
        scope: Space-separated scopes to ask for.
        token_endpoint_auth_method: ``client_secret_post`` (the default) or
            ``client_secret_basic``.
        dpop: Bind the tokens to a key with DPoP (see ``OAuthClientProvider``).

    Raises:
        ValueError: no ``client_secret`` or ``issuer``, or an unknown authentication method.
    """

    def __init__(
        self,
        server_url: str,
        storage: TokenStorage,
        client_id: str,
        client_secret: str,
        issuer: str,
        assertion_provider: Callable[[str, str], Awaitable[str]],
        scope: str | None = None,
        token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_post",
        *,
        http_timeout: float = 30.0,
        protocol_version: str | None = None,
        settings: ServerSettings | None = None,
        dpop: bool = False,
        dpop_key: str | None = None,
        dpop_algorithm: str = "ES256",
    ) -> None:
        if not client_secret:
            raise ValueError("client_secret is required: this grant is for confidential clients")
        if not issuer:
            raise ValueError("issuer is required: the authorization server is configuration, not discovery")
        if not callable(assertion_provider):
            raise TypeError("assertion_provider must be callable: async (audience, resource) -> str")
        _check_auth_method(token_endpoint_auth_method)
        self._storage = storage
        self._native = _machine_native(
            server_url,
            Bridge(storage, None, None, 1.0, None, grant_assertion_provider=assertion_provider),
            storage,
            http_timeout,
            False,
            False,
            protocol_version,
            settings,
            client_credentials=False,
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=token_endpoint_auth_method,
            scope=scope,
            issuer=issuer,
            grant_assertion=True,
            **_dpop_kwargs(dpop, dpop_key, dpop_algorithm),
        )


class EnterpriseAuthOAuthProvider(OAuthClientProvider):
    """Enterprise-managed authorization, both legs: the user's ID token exchanged at the
    enterprise IdP (RFC 8693) for an ID-JAG, presented with the JWT-bearer grant at the
    MCP server's authorization server. No person takes part once the ID token is held.

    Args:
        server_url: The MCP server URL.
        storage: A ``TokenStorage``.
        client_id: The client ID at the MCP authorization server.
        client_secret: Its secret.
        idp_token_endpoint: The enterprise IdP's token endpoint.
        id_token: The user's ID token from the IdP, or ``None`` with ``id_token_provider``.
        id_token_provider: ``() -> str`` (or a coroutine function) giving the ID token;
            called again once the one it gave has expired.
        idp_client_id: This client at the IdP (sent with the exchange).
        idp_client_secret: Its secret at the IdP (HTTP Basic).
        issuer: The MCP authorization server's issuer, pinned when given.
        scope: Space-separated scopes to ask for (in the ID-JAG and the token).
        token_endpoint_auth_method: How ``client_id`` authenticates at the MCP
            authorization server (``client_secret_basic``, the default, or ``_post``).
        dpop: Bind the tokens to a key with DPoP (see ``OAuthClientProvider``).

    Raises:
        ValueError: neither or both of ``id_token`` and ``id_token_provider``, an IdP
            token endpoint that is not a URL, or an unknown authentication method.
    """

    def __init__(
        self,
        server_url: str,
        storage: TokenStorage,
        client_id: str,
        client_secret: str | None,
        idp_token_endpoint: str,
        id_token: str | None = None,
        *,
        id_token_provider: Callable[[], Awaitable[str] | str] | None = None,
        idp_client_id: str | None = None,
        idp_client_secret: str | None = None,
        issuer: str | None = None,
        scope: str | None = None,
        token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic",
        http_timeout: float = 30.0,
        protocol_version: str | None = None,
        settings: ServerSettings | None = None,
        dpop: bool = False,
        dpop_key: str | None = None,
        dpop_algorithm: str = "ES256",
    ) -> None:
        if (id_token is None) == (id_token_provider is None):
            raise ValueError("give id_token or id_token_provider (exactly one)")
        _check_auth_method(token_endpoint_auth_method)
        self._storage = storage
        self._native = _machine_native(
            server_url,
            Bridge(storage, None, None, 1.0, None, jwt_provider=id_token_provider),
            storage,
            http_timeout,
            False,
            False,
            protocol_version,
            settings,
            client_credentials=False,
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method=token_endpoint_auth_method if client_secret else "none",
            scope=scope,
            issuer=issuer,
            idp_token_endpoint=idp_token_endpoint,
            idp_client_id=idp_client_id,
            idp_client_secret=idp_client_secret,
            id_token=id_token,
            fresh_jwt=id_token_provider is not None,
            **_dpop_kwargs(dpop, dpop_key, dpop_algorithm),
        )


class WorkloadIdentityOAuthProvider(OAuthClientProvider):
    """Workload identity: the JWT-bearer grant with a JWT the platform gives the workload
    (a Kubernetes projected service-account token, a cloud's identity token), and no
    client secret.

    Args:
        server_url: The MCP server URL.
        storage: A ``TokenStorage``.
        client_id: The workload's client ID at the authorization server.
        token: The JWT itself.
        token_file: A file holding it, read again whenever it changes.
        token_provider: ``() -> str`` (or a coroutine function) giving it; called again
            once the one it gave has expired.
        issuer: The authorization server's issuer, pinned when given.
        scope: Space-separated scopes to ask for.
        dpop: Bind the tokens to a key with DPoP (see ``OAuthClientProvider``).

    Raises:
        ValueError: not exactly one of ``token``, ``token_file`` and ``token_provider``.
    """

    def __init__(
        self,
        server_url: str,
        storage: TokenStorage,
        client_id: str,
        *,
        token: str | None = None,
        token_file: str | PathLike[str] | None = None,
        token_provider: Callable[[], Awaitable[str] | str] | None = None,
        issuer: str | None = None,
        scope: str | None = None,
        http_timeout: float = 30.0,
        protocol_version: str | None = None,
        settings: ServerSettings | None = None,
        dpop: bool = False,
        dpop_key: str | None = None,
        dpop_algorithm: str = "ES256",
    ) -> None:
        if sum(x is not None for x in (token, token_file, token_provider)) != 1:
            raise ValueError("give exactly one of token, token_file and token_provider")
        self._storage = storage
        self._native = _machine_native(
            server_url,
            Bridge(storage, None, None, 1.0, None, jwt_provider=token_provider),
            storage,
            http_timeout,
            False,
            False,
            protocol_version,
            settings,
            client_credentials=False,
            client_id=client_id,
            token_endpoint_auth_method="none",
            scope=scope,
            issuer=issuer,
            workload_token=token,
            workload_token_file=None if token_file is None else str(token_file),
            fresh_jwt=token_provider is not None,
            **_dpop_kwargs(dpop, dpop_key, dpop_algorithm),
        )
