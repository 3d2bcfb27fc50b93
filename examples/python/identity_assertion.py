"""An enterprise MCP client: identity assertion (ID-JAG), no consent screen.

The user signed in to the company's identity provider (IdP), and the application
holds their ID token. The IdP, not the user, decides which MCP servers they may
reach: the application exchanges the ID token at the IdP for an Identity Assertion
JWT Authorization Grant (RFC 8693 token exchange), and the provider presents that
grant to the MCP server's authorization server (RFC 7523 JWT bearer grant) with the
client's own credentials there.

    MCP_SERVER_URL=https://mcp.example.com/mcp \\
    MCP_CLIENT_ID=... MCP_CLIENT_SECRET=... MCP_ISSUER=https://auth.example.com \\
    IDP_TOKEN_ENDPOINT=https://idp.example.com/token \\
    IDP_CLIENT_ID=... IDP_CLIENT_SECRET=... ID_TOKEN=... \\
    python examples/python/identity_assertion.py [--both-legs]

By default it has the shape the MCP Python SDK documents: the application obtains
the ID-JAG itself (``assertion_provider``, below, with httpx2) and
``IdentityAssertionOAuthProvider`` presents it. With ``--both-legs`` the provider
runs the exchange too (``EnterpriseAuthOAuthProvider``).
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_oauth_client import OAuthClientInformationFull, OAuthToken
from mcp_oauth_client.extensions.identity_assertion import (
    EnterpriseAuthOAuthProvider,
    IdentityAssertionOAuthProvider,
)


class TokensInMemory:
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


async def exchange_at_the_idp(audience: str, resource: str) -> str:
    """Leg 1, done by the application: the user's ID token for an ID-JAG whose
    audience is the MCP authorization server and whose resource is the MCP server."""
    async with httpx2.AsyncClient(timeout=10) as idp:
        answer = await idp.post(
            os.environ["IDP_TOKEN_ENDPOINT"],
            auth=(os.environ["IDP_CLIENT_ID"], os.environ["IDP_CLIENT_SECRET"]),
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                "audience": audience,
                "resource": resource,
                "subject_token": os.environ["ID_TOKEN"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            },
        )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


async def main(both_legs: bool) -> None:
    server_url = os.environ["MCP_SERVER_URL"]
    auth: IdentityAssertionOAuthProvider | EnterpriseAuthOAuthProvider
    if both_legs:
        auth = EnterpriseAuthOAuthProvider(
            server_url=server_url,
            storage=TokensInMemory(),
            client_id=os.environ["MCP_CLIENT_ID"],
            client_secret=os.environ["MCP_CLIENT_SECRET"],
            idp_token_endpoint=os.environ["IDP_TOKEN_ENDPOINT"],
            id_token=os.environ["ID_TOKEN"],
            idp_client_id=os.environ["IDP_CLIENT_ID"],
            idp_client_secret=os.environ["IDP_CLIENT_SECRET"],
            issuer=os.environ["MCP_ISSUER"],
            token_endpoint_auth_method="client_secret_post",
        )
    else:
        auth = IdentityAssertionOAuthProvider(
            server_url=server_url,
            storage=TokensInMemory(),
            client_id=os.environ["MCP_CLIENT_ID"],
            client_secret=os.environ["MCP_CLIENT_SECRET"],
            issuer=os.environ["MCP_ISSUER"],
            assertion_provider=exchange_at_the_idp,
        )
    async with httpx2.AsyncClient(auth=auth, follow_redirects=True) as http_client:
        async with Client(streamable_http_client(server_url, http_client=http_client)) as client:
            listed = await client.list_tools()
            print("tools:", ", ".join(tool.name for tool in listed.tools))


if __name__ == "__main__":
    asyncio.run(main("--both-legs" in sys.argv[1:]))
