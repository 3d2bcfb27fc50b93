"""A machine-to-machine MCP client: the client credentials grant, no person involved.

A nightly job or another service holds a client ID and secret issued by the MCP
server's authorization server. The provider gets a token from the token endpoint,
keeps it, renews it before it expires, and sets it on every request of the MCP
session. ``issuer`` names the authorization server the credentials belong to: if the
MCP server pointed anywhere else, the secret would not be sent.

    MCP_SERVER_URL=https://mcp.example.com/mcp \\
    MCP_CLIENT_ID=reporting-agent MCP_CLIENT_SECRET=... \\
    MCP_ISSUER=https://auth.example.com MCP_SCOPE="..." \\
    python examples/python/client_credentials.py

Written for the MCP Python SDK's ``Client``; the OAuth part comes from
``mcp_oauth_client`` at the SDK's module path.
"""

from __future__ import annotations

import asyncio
import os

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_oauth_client import OAuthClientInformationFull, OAuthToken
from mcp_oauth_client.extensions.client_credentials import ClientCredentialsOAuthProvider


class TokensInMemory:
    """A TokenStorage for one process: the four methods the provider calls."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def main() -> None:
    server_url = os.environ["MCP_SERVER_URL"]
    auth = ClientCredentialsOAuthProvider(
        server_url=server_url,
        storage=TokensInMemory(),
        client_id=os.environ["MCP_CLIENT_ID"],
        client_secret=os.environ["MCP_CLIENT_SECRET"],
        scope=os.environ.get("MCP_SCOPE"),
        issuer=os.environ.get("MCP_ISSUER"),
    )
    async with httpx2.AsyncClient(auth=auth, follow_redirects=True) as http_client:
        async with Client(streamable_http_client(server_url, http_client=http_client)) as client:
            listed = await client.list_tools()
            print("tools:", ", ".join(tool.name for tool in listed.tools))


if __name__ == "__main__":
    asyncio.run(main())
