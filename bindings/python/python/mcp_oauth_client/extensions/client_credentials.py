"""``mcp.client.auth.extensions.client_credentials``: the client credentials providers
and their JWT helpers, as this package names them."""

from .._jwt import SignedJWTParameters, static_assertion_provider
from .._provider import ClientCredentialsOAuthProvider, PrivateKeyJWTOAuthProvider

__all__ = [
    "ClientCredentialsOAuthProvider",
    "PrivateKeyJWTOAuthProvider",
    "SignedJWTParameters",
    "static_assertion_provider",
]
