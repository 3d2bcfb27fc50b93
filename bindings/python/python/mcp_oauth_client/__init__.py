"""OAuth for MCP clients: a drop-in replacement for ``mcp.client.auth``.

The same interface as the MCP Python SDK's ``mcp.client.auth`` (and the models of
``mcp.shared.auth``), run by a Rust core. Code written for the SDK's documentation
runs with its imports changed to this package.
"""

from ._builtins import FileTokenStorage, LoopbackReceiver, open_browser
from ._errors import (
    OAuthConfigurationError,
    OAuthConnectError,
    OAuthFlowError,
    OAuthNetworkError,
    OAuthRegistrationError,
    OAuthServerError,
    OAuthTimeoutError,
    OAuthTokenError,
)
from ._models import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from ._jwt import SignedJWTParameters, SigningCallbackJWTParameters, static_assertion_provider
from ._m2m import EnterpriseAuthOAuthProvider, IdentityAssertionOAuthProvider, WorkloadIdentityOAuthProvider
from ._native import __version__
from ._provider import (
    ClientCredentialsOAuthProvider,
    OAuthClientProvider,
    PrivateKeyJWTOAuthProvider,
    ServerSettings,
    TokenStorage,
)

__all__ = [
    "AuthorizationCodeResult",
    "ClientCredentialsOAuthProvider",
    "EnterpriseAuthOAuthProvider",
    "FileTokenStorage",
    "IdentityAssertionOAuthProvider",
    "LoopbackReceiver",
    "OAuthClientInformationFull",
    "OAuthClientMetadata",
    "OAuthClientProvider",
    "OAuthConfigurationError",
    "OAuthConnectError",
    "OAuthFlowError",
    "OAuthNetworkError",
    "OAuthRegistrationError",
    "OAuthServerError",
    "OAuthTimeoutError",
    "OAuthToken",
    "OAuthTokenError",
    "PrivateKeyJWTOAuthProvider",
    "ServerSettings",
    "SignedJWTParameters",
    "SigningCallbackJWTParameters",
    "TokenStorage",
    "WorkloadIdentityOAuthProvider",
    "__version__",
    "open_browser",
    "static_assertion_provider",
]
