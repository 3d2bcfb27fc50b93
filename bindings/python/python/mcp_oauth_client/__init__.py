"""OAuth for MCP clients: a drop-in replacement for ``mcp.client.auth``.

The same interface as the MCP Python SDK's ``mcp.client.auth`` (and the models of
``mcp.shared.auth``), run by a Rust core. Code written for the SDK's documentation
runs with its imports changed to this package.
"""

from ._builtins import FileTokenStorage, LoopbackReceiver, RedisTokenStorage, open_browser
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
from ._models import (
    AuthorizationCodeResult,
    InvalidRedirectUriError,
    InvalidScopeError,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthClientMetadataBase,
    OAuthMetadata,
    OAuthToken,
    PKCEParameters,
    ProtectedResourceMetadata,
)
from ._jwt import SignedJWTParameters, SigningCallbackJWTParameters, static_assertion_provider
from ._m2m import EnterpriseAuthOAuthProvider, IdentityAssertionOAuthProvider, WorkloadIdentityOAuthProvider
from ._native import __version__
from ._provider import (
    ClientCredentialsOAuthProvider,
    OAuthClientProvider,
    OAuthContext,
    PrivateKeyJWTOAuthProvider,
    ServerSettings,
    TokenStorage,
)

__all__ = [
    "AuthorizationCodeResult",
    "ClientCredentialsOAuthProvider",
    "EnterpriseAuthOAuthProvider",
    "FileTokenStorage",
    "RedisTokenStorage",
    "IdentityAssertionOAuthProvider",
    "InvalidRedirectUriError",
    "InvalidScopeError",
    "LoopbackReceiver",
    "OAuthClientInformationFull",
    "OAuthClientMetadata",
    "OAuthClientMetadataBase",
    "OAuthClientProvider",
    "OAuthConfigurationError",
    "OAuthConnectError",
    "OAuthContext",
    "OAuthFlowError",
    "OAuthMetadata",
    "OAuthNetworkError",
    "OAuthRegistrationError",
    "OAuthServerError",
    "OAuthTimeoutError",
    "OAuthToken",
    "OAuthTokenError",
    "PKCEParameters",
    "PrivateKeyJWTOAuthProvider",
    "ProtectedResourceMetadata",
    "ServerSettings",
    "SignedJWTParameters",
    "SigningCallbackJWTParameters",
    "TokenStorage",
    "WorkloadIdentityOAuthProvider",
    "__version__",
    "open_browser",
    "static_assertion_provider",
]
