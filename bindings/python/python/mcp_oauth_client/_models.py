"""The models, as pydantic models with the fields (and JSON) of ``mcp.shared.auth``.

A storage written for the SDK's models works with these unchanged: the fields, their
defaults and the ``model_*`` methods are the same. Extra keys are kept: the client
stores ``expires_at`` (absolute expiry) on tokens and ``issuer`` on client
information, and whatever else a server sent. Secrets (tokens, client secrets,
authorization codes) never appear in a ``repr``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import AnyHttpUrl, AnyUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from . import _native

__all__ = [
    "AuthorizationCodeResult",
    "InvalidRedirectUriError",
    "InvalidScopeError",
    "OAuthClientInformationFull",
    "OAuthClientMetadata",
    "OAuthClientMetadataBase",
    "OAuthMetadata",
    "OAuthToken",
    "PKCEParameters",
    "ProtectedResourceMetadata",
]

_URL_CONFIG = ConfigDict(extra="allow")
if "url_preserve_empty_path" in ConfigDict.__annotations__:
    # Keep "http://localhost:3030" as written instead of adding a "/" (pydantic >= 2.12).
    _URL_CONFIG["url_preserve_empty_path"] = True

_SECRET_FIELDS = frozenset({"access_token", "refresh_token", "client_secret", "code", "state", "id_token"})


class _Model(BaseModel):
    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Declared fields only (pydantic shows extra keys too, and a server may send
        # secrets in them), and never a secret.
        for name, info in type(self).model_fields.items():
            if info.repr and name not in _SECRET_FIELDS:
                yield name, getattr(self, name)


def _empty_to_none(v: object) -> object:
    return None if v == "" else v


class OAuthToken(_Model):
    """A token response (RFC 6749 §5.1), as stored."""

    model_config = ConfigDict(extra="allow")

    access_token: str = Field(repr=False)
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    refresh_token: str | None = Field(default=None, repr=False)
    expires_at: float | None = None
    """Absolute expiry in seconds since the epoch, recorded by this client."""

    @field_validator("token_type", mode="before")
    @classmethod
    def _normalize_token_type(cls, v: object) -> object:
        if isinstance(v, str) and v.lower() == "bearer":
            return "Bearer"
        return v


class OAuthClientMetadataBase(_Model):
    """The RFC 7591 client metadata fields shared by the metadata and the client information."""

    model_config = _URL_CONFIG

    response_types: list[str] = ["code"]
    scope: str | None = None
    client_name: str | None = None
    client_uri: AnyHttpUrl | None = None
    logo_uri: AnyHttpUrl | None = None
    contacts: list[str] | None = None
    tos_uri: AnyHttpUrl | None = None
    policy_uri: AnyHttpUrl | None = None
    jwks_uri: AnyHttpUrl | None = None
    jwks: Any | None = None
    software_id: str | None = None
    software_version: str | None = None

    @field_validator("client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri", mode="before")
    @classmethod
    def _optional_url(cls, v: object) -> object:
        return _empty_to_none(v)


class OAuthClientMetadata(OAuthClientMetadataBase):
    """RFC 7591 client metadata: what the client registers with.

    ``redirect_uris`` is required; ``grant_types`` defaults to
    ``["authorization_code", "refresh_token"]`` and ``response_types`` to ``["code"]``.
    When ``application_type`` is left out, the client sends ``native`` for loopback or
    private-scheme redirect URIs and ``web`` otherwise.
    """

    redirect_uris: list[AnyUrl] | None = Field(..., min_length=1)
    token_endpoint_auth_method: (
        Literal["none", "client_secret_post", "client_secret_basic", "private_key_jwt"] | None
    ) = None
    grant_types: list[str] = ["authorization_code", "refresh_token"]
    application_type: Literal["web", "native"] | None = None


class OAuthClientInformationFull(OAuthClientMetadataBase):
    """Client information (RFC 7591 §3.2.1): the metadata plus what the server issued."""

    redirect_uris: list[AnyUrl] | None = None
    token_endpoint_auth_method: str | None = None
    grant_types: list[str] = ["authorization_code", "refresh_token"]
    application_type: str | None = None
    client_id: str
    client_secret: str | None = Field(default=None, repr=False)
    client_id_issued_at: int | None = None
    client_secret_expires_at: int | None = None
    issuer: str | None = None
    """The issuer that issued ``client_id``; the client never offers it to another."""

    @model_validator(mode="before")
    @classmethod
    def _placeholders_are_absent(cls, data: object) -> object:
        # Servers echo unset members as null or "": the same as an absent key.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None and v != ""}
        return data


class AuthorizationCodeResult(_Model):
    """What the redirect back from the authorization server carried.

    Return it from a ``callback_handler`` with ``state`` and ``iss`` exactly as they
    arrived. When the server redirected with ``error=``, leave ``code`` out (it is then
    ``""``) and set ``error`` (and ``error_description``): the provider raises an
    ``OAuthFlowError`` carrying them.
    """

    code: str = Field(default="", repr=False)
    state: str | None = Field(default=None, repr=False)
    iss: str | None = None
    error: str | None = None
    error_description: str | None = None
    error_uri: str | None = None

    @field_validator("code", mode="before")
    @classmethod
    def _absent_code(cls, v: object) -> object:
        return "" if v is None else v

    @classmethod
    def from_redirect_url(cls, url: str) -> AuthorizationCodeResult:
        """Read the result from the URL the person was redirected to (or its query)."""
        code, state, iss, error, error_description, error_uri = _native.parse_redirect(url)
        return cls(
            code=code or "",
            state=state,
            iss=iss,
            error=error,
            error_description=error_description,
            error_uri=error_uri,
        )


class OAuthMetadata(_Model):
    """RFC 8414 authorization server metadata, as discovered (``provider.context.oauth_metadata``)."""

    model_config = _URL_CONFIG

    issuer: AnyHttpUrl
    authorization_endpoint: AnyHttpUrl
    token_endpoint: AnyHttpUrl
    registration_endpoint: AnyHttpUrl | None = None
    scopes_supported: list[str] | None = None
    response_types_supported: list[str] = ["code"]
    response_modes_supported: list[str] | None = None
    grant_types_supported: list[str] | None = None
    token_endpoint_auth_methods_supported: list[str] | None = None
    token_endpoint_auth_signing_alg_values_supported: list[str] | None = None
    service_documentation: AnyHttpUrl | None = None
    ui_locales_supported: list[str] | None = None
    op_policy_uri: AnyHttpUrl | None = None
    op_tos_uri: AnyHttpUrl | None = None
    revocation_endpoint: AnyHttpUrl | None = None
    revocation_endpoint_auth_methods_supported: list[str] | None = None
    revocation_endpoint_auth_signing_alg_values_supported: list[str] | None = None
    introspection_endpoint: AnyHttpUrl | None = None
    introspection_endpoint_auth_methods_supported: list[str] | None = None
    introspection_endpoint_auth_signing_alg_values_supported: list[str] | None = None
    code_challenge_methods_supported: list[str] | None = None
    client_id_metadata_document_supported: bool | None = None
    authorization_response_iss_parameter_supported: bool | None = None


class ProtectedResourceMetadata(_Model):
    """RFC 9728 protected resource metadata, as discovered
    (``provider.context.protected_resource_metadata``)."""

    model_config = _URL_CONFIG

    resource: AnyHttpUrl
    authorization_servers: list[AnyHttpUrl] = Field(..., min_length=1)
    jwks_uri: AnyHttpUrl | None = None
    scopes_supported: list[str] | None = None
    bearer_methods_supported: list[str] | None = Field(default=["header"])
    resource_signing_alg_values_supported: list[str] | None = None
    resource_name: str | None = None
    resource_documentation: AnyHttpUrl | None = None
    resource_policy_uri: AnyHttpUrl | None = None
    resource_tos_uri: AnyHttpUrl | None = None
    tls_client_certificate_bound_access_tokens: bool | None = None
    authorization_details_types_supported: list[str] | None = None
    dpop_signing_alg_values_supported: list[str] | None = None
    dpop_bound_access_tokens_required: bool | None = None


class PKCEParameters(_Model):
    """A PKCE pair (RFC 7636, S256). The provider makes its own for each flow; this is
    for programs that build an authorization request themselves."""

    code_verifier: str = Field(..., min_length=43, max_length=128, repr=False)
    code_challenge: str = Field(..., min_length=43, max_length=128)

    @classmethod
    def generate(cls) -> PKCEParameters:
        """A fresh pair from the core (the system's CSPRNG)."""
        verifier, challenge = _native.generate_pkce()
        return cls(code_verifier=verifier, code_challenge=challenge)


class InvalidScopeError(Exception):
    """A scope that was not registered or is not allowed."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class InvalidRedirectUriError(Exception):
    """A redirect URI that was not registered."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message
