"""private_key_jwt: PrivateKeyJWTOAuthProvider with assertions signed by the core
(SignedJWTParameters), given (static_assertion_provider) or the application's own,
against the real authorization server and MCP server."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import httpx2
import pytest
from conftest import INITIALIZE, MCP_HEADERS, InMemoryTokenStorage, as_state
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mcp_oauth_client import (
    OAuthConfigurationError,
    OAuthFlowError,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
    static_assertion_provider,
)

TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _register(peers: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    jwk = json.loads(_public_jwk(key))
    r = httpx.post(
        f"{peers['issuer']}/reg",
        json={
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": [jwk]},
            "application_type": "web",
        },
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["client_id"])


def _public_jwk(key: ec.EllipticCurvePrivateKey) -> str:
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    return json.dumps({"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y), "use": "sig"})


async def _list_tools(peers: dict[str, Any], provider: PrivateKeyJWTOAuthProvider) -> list[str]:
    async with httpx2.AsyncClient(auth=provider, timeout=20) as http:
        r = await http.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text
        headers = dict(MCP_HEADERS)
        if sid := r.headers.get("mcp-session-id"):
            headers["mcp-session-id"] = sid
        headers["mcp-protocol-version"] = "2025-06-18"
        await http.post(
            peers["mcp_url"], json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        r = await http.post(peers["mcp_url"], json=TOOLS_LIST, headers=headers)
        assert r.status_code == 200, r.text
    body = r.text
    if body.lstrip().startswith("{"):
        message = json.loads(body)
    else:
        message = json.loads(next(line[5:] for line in body.splitlines() if line.startswith("data:")))
    return [tool["name"] for tool in message["result"]["tools"]]


async def test_signed_assertions_get_a_token_the_mcp_server_accepts(
    peers: dict[str, Any], ec_key: ec.EllipticCurvePrivateKey
) -> None:
    client_id = _register(peers, ec_key)
    params = SignedJWTParameters(
        issuer=client_id, subject=client_id, signing_key=_pem(ec_key), signing_algorithm="ES256"
    )
    storage = InMemoryTokenStorage()
    p = PrivateKeyJWTOAuthProvider(
        peers["mcp_url"], storage, client_id, params.create_assertion_provider(), scope="mcp:read", issuer=peers["issuer"]
    )
    before = as_state(peers)["token_requests"].get("client_credentials", 0)
    assert await _list_tools(peers, p)
    assert as_state(peers)["token_requests"].get("client_credentials", 0) == before + 1
    assert storage.tokens is not None and storage.tokens.scope == "mcp:read"


async def test_the_applications_provider_is_awaited_with_the_issuer(
    peers: dict[str, Any], ec_key: ec.EllipticCurvePrivateKey
) -> None:
    client_id = _register(peers, ec_key)
    sign = SignedJWTParameters(
        issuer=client_id,
        subject=client_id,
        signing_key=_pem(ec_key),
        signing_algorithm="ES256",
        lifetime_seconds=60,
        additional_claims={"tenant": "t1", "aud": "ignored"},
    ).create_assertion_provider()
    audiences: list[str] = []
    made: list[str] = []

    async def provider(audience: str) -> str:
        audiences.append(audience)
        made.append(await sign(audience))
        return made[-1]

    p = PrivateKeyJWTOAuthProvider(peers["mcp_url"], InMemoryTokenStorage(), client_id, provider, scopes="mcp:read")
    assert await _list_tools(peers, p)
    assert audiences == [peers["issuer"]]
    claims = _claims(made[0])
    assert (claims["iss"], claims["sub"], claims["aud"], claims["tenant"]) == (
        client_id,
        client_id,
        peers["issuer"],
        "t1",
    )
    assert claims["exp"] - claims["iat"] == 60 and claims["jti"]


async def test_static_assertion_is_sent_as_given(peers: dict[str, Any], ec_key: ec.EllipticCurvePrivateKey) -> None:
    client_id = _register(peers, ec_key)
    signed = await SignedJWTParameters(
        issuer=client_id, subject=client_id, signing_key=_pem(ec_key), signing_algorithm="ES256"
    ).create_assertion_provider()(peers["issuer"])
    provider = static_assertion_provider(signed)
    assert await provider("anything") == signed
    p = PrivateKeyJWTOAuthProvider(peers["mcp_url"], InMemoryTokenStorage(), client_id, provider)
    assert await _list_tools(peers, p)


async def test_assertion_provider_exceptions_reach_the_caller_unchanged(peers: dict[str, Any]) -> None:
    class Refused(Exception):
        pass

    async def provider(audience: str) -> str:
        raise Refused(audience)

    p = PrivateKeyJWTOAuthProvider(peers["mcp_url"], InMemoryTokenStorage(), "some-client", provider)
    with pytest.raises(Refused) as info:
        await p.authorize()
    assert info.value.args == (peers["issuer"],)


async def test_another_issuer_gets_no_assertion(peers: dict[str, Any]) -> None:
    called: list[str] = []

    async def provider(audience: str) -> str:
        called.append(audience)
        return "x.y.z"

    p = PrivateKeyJWTOAuthProvider(
        peers["mcp_url"], InMemoryTokenStorage(), "some-client", provider, issuer="https://elsewhere.example"
    )
    with pytest.raises(OAuthFlowError, match="pinned to the authorization server"):
        await p.authorize()
    assert called == []


def test_rs256_is_refused_clearly() -> None:
    rsa_pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    params = SignedJWTParameters(issuer="c", subject="c", signing_key=rsa_pem)
    assert params.signing_algorithm == "RS256"
    with pytest.raises(ValueError, match="RS256.*not supported.*ES256") as info:
        params.create_assertion_provider()
    assert isinstance(info.value, OAuthConfigurationError)


@pytest.mark.parametrize(
    "key", ["not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "rsa"]
)
def test_bad_keys_are_configuration_errors_that_do_not_echo_the_key(key: str) -> None:
    if key == "rsa":
        key = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    params = SignedJWTParameters(issuer="c", subject="c", signing_key=key, signing_algorithm="ES256")
    with pytest.raises(OAuthConfigurationError) as info:
        params.create_assertion_provider()
    assert "P-256" in str(info.value) and key not in str(info.value)
    assert key not in repr(params)


def test_bad_lifetime_and_issuer_are_value_errors(ec_key: ec.EllipticCurvePrivateKey) -> None:
    params = SignedJWTParameters(
        issuer="c", subject="c", signing_key=_pem(ec_key), signing_algorithm="ES256", lifetime_seconds=0
    )
    with pytest.raises(ValueError, match="lifetime_seconds"):
        params.create_assertion_provider()
    with pytest.raises(ValueError, match="issuer"):
        PrivateKeyJWTOAuthProvider(
            "http://127.0.0.1:1/mcp", InMemoryTokenStorage(), "c", static_assertion_provider("x"), issuer="as.example"
        )


def test_sync_client_gets_a_token(peers: dict[str, Any], ec_key: ec.EllipticCurvePrivateKey) -> None:
    client_id = _register(peers, ec_key)
    provider = SignedJWTParameters(
        issuer=client_id, subject=client_id, signing_key=_pem(ec_key), signing_algorithm="ES256"
    ).create_assertion_provider()
    p = PrivateKeyJWTOAuthProvider(peers["mcp_url"], InMemoryTokenStorage(), client_id, provider)
    with httpx.Client(auth=p, timeout=20) as http:
        r = http.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text
