"""Under trio: the SDK runs on anyio, so with trio too, and so does this package. The
SDK's ``Client`` logs in through the real peers, the storage and handlers run as trio
code, and a second run through a new provider uses the stored tokens."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import HeadlessBrowser, InMemoryTokenStorage, as_state, metadata

from mcp_oauth_client import OAuthClientProvider

trio = pytest.importorskip("trio")


class TrioStorage(InMemoryTokenStorage):
    """A storage whose coroutines only trio can run (a trio checkpoint in each)."""

    async def get_tokens(self) -> Any:
        await trio.lowlevel.checkpoint()
        return await super().get_tokens()

    async def set_tokens(self, tokens: Any) -> None:
        await trio.lowlevel.checkpoint()
        await super().set_tokens(tokens)


async def list_tools(mcp_url: str, provider: OAuthClientProvider) -> list[str]:
    async with httpx2.AsyncClient(auth=provider) as http_client:
        async with Client(streamable_http_client(mcp_url, http_client=http_client)) as client:
            return [tool.name for tool in (await client.list_tools()).tools]


@pytest.mark.timeout(120)
def test_the_sdk_client_under_trio(peers: dict[str, Any]) -> None:
    browser, storage = HeadlessBrowser(), TrioStorage()
    before = as_state(peers)["authorizations"]

    def provider() -> OAuthClientProvider:
        return OAuthClientProvider(
            peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler
        )

    async def main() -> tuple[list[str], list[str]]:
        first = await list_tools(peers["mcp_url"], provider())
        second = await list_tools(peers["mcp_url"], provider())
        return first, second

    first, second = trio.run(main)
    assert first and first == second
    assert browser.redirects == 1
    assert as_state(peers)["authorizations"] == before + 1
    assert storage.tokens is not None


@pytest.mark.timeout(120)
def test_authorize_under_trio(peers: dict[str, Any]) -> None:
    browser, storage = HeadlessBrowser(), TrioStorage()
    p = OAuthClientProvider(peers["mcp_url"], metadata(), storage, browser.redirect_handler, browser.callback_handler)
    trio.run(p.authorize)
    assert storage.tokens is not None and browser.redirects == 1


@pytest.mark.timeout(120)
def test_machine_providers_callbacks_run_as_trio_code(peers: dict[str, Any]) -> None:
    """A workload token and a KMS-style signature from coroutines only trio can run:
    the JWT-bearer grant's token provider and a signing callback with its deadline."""
    import base64

    import httpx
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from mcp_oauth_client import (
        PrivateKeyJWTOAuthProvider,
        SigningCallbackJWTParameters,
        WorkloadIdentityOAuthProvider,
    )

    control = peers["control_url"]

    def register(grant: str, method: str, jwks: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {
            "grant_types": [grant],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": method,
            "application_type": "web",
        }
        if jwks is not None:
            body["jwks"] = jwks
            body["token_endpoint_auth_signing_alg"] = "ES256"
        r = httpx.post(f"{peers['issuer']}/reg", json=body, timeout=10)
        assert r.status_code == 201, r.text
        return str(r.json()["client_id"])

    workload = register("urn:ietf:params:oauth:grant-type:jwt-bearer", "none")
    token = httpx.post(f"{control}/workload-token", json={"sub": workload}, timeout=10).json()["token"]

    async def platform_token() -> str:
        await trio.lowlevel.checkpoint()
        return str(token)

    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y), "use": "sig"}
    signer = register("client_credentials", "private_key_jwt", {"keys": [jwk]})

    async def kms_sign(data: bytes) -> bytes:
        await trio.lowlevel.checkpoint()
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    async def main() -> tuple[list[str], list[str]]:
        wif = WorkloadIdentityOAuthProvider(
            peers["mcp_url"], InMemoryTokenStorage(), workload, token_provider=platform_token
        )
        params = SigningCallbackJWTParameters(issuer=signer, subject=signer, sign=kms_sign)
        pkj = PrivateKeyJWTOAuthProvider(
            peers["mcp_url"], InMemoryTokenStorage(), signer, params.create_assertion_provider()
        )
        return await list_tools(peers["mcp_url"], wif), await list_tools(peers["mcp_url"], pkj)  # type: ignore[arg-type]

    grants = as_state(peers)["enterprise"]["grants"]
    by_workload, by_signature = trio.run(main)
    assert "whoami" in by_workload and "whoami" in by_signature
    assert as_state(peers)["enterprise"]["grants"] == grants + 1, "the workload token was presented once"
