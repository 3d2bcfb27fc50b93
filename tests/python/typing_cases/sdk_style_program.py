"""A program written for the SDK's interface (2.x and 1.x habits, the SDK's own models):
``mypy --strict`` accepts it against this package."""

from urllib.parse import parse_qs, urlparse

import httpx
import httpx2

from mcp_oauth_client import AuthorizationCodeResult, OAuthClientMetadata, OAuthClientProvider, TokenStorage
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.shared.auth import OAuthClientMetadata as SDKMetadata


class Storage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.info = client_info


async def redirect(url: str) -> None:
    print(url)


async def callback_1x() -> tuple[str, str | None]:
    params = parse_qs(urlparse(input()).query)
    return params["code"][0], params.get("state", [None])[0]


def callback_sync() -> AuthorizationCodeResult:
    r = AuthorizationCodeResult.from_redirect_url(input())
    code: str = r.code
    return AuthorizationCodeResult(code=code, state=r.state)


p = OAuthClientProvider(
    "https://mcp.example/mcp",
    SDKMetadata(redirect_uris=["http://localhost:3000/callback"]),  # type: ignore[list-item]
    Storage(),
    redirect,
    callback_1x,
)
q = OAuthClientProvider(
    server_url="https://mcp.example/mcp",
    client_metadata=OAuthClientMetadata(redirect_uris=["http://localhost:3000/callback"]),  # type: ignore[list-item]
    storage=Storage(),
    redirect_handler=redirect,
    callback_handler=callback_sync,
    timeout=30,
)
httpx.AsyncClient(auth=p)
httpx2.AsyncClient(auth=q)
tokens = p.context.current_tokens
endpoint = p.context.oauth_metadata.token_endpoint if p.context.oauth_metadata else None
