"""The client credentials providers, where the MCP Python SDK has them
(``mcp.client.auth.extensions.client_credentials``)."""

from .._jwt import SignedJWTParameters, SigningCallbackJWTParameters, static_assertion_provider
from .._provider import ClientCredentialsOAuthProvider, PrivateKeyJWTOAuthProvider

__all__ = [
    "ClientCredentialsOAuthProvider",
    "PrivateKeyJWTOAuthProvider",
    "SignedJWTParameters",
    "SigningCallbackJWTParameters",
    "static_assertion_provider",
]
