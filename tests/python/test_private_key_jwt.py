"""private_key_jwt: PrivateKeyJWTOAuthProvider with assertions signed by the core
(SignedJWTParameters), given (static_assertion_provider) or the application's own,
against the real authorization server and MCP server."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import httpx2
import pytest
from conftest import INITIALIZE, MCP_HEADERS, InMemoryTokenStorage, as_state
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mcp_oauth_client import (
    OAuthConfigurationError,
    OAuthFlowError,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
    SigningCallbackJWTParameters,
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


def _register(peers: dict[str, Any], key: Any, alg: str = "ES256") -> str:
    jwk = json.loads(_public_jwk(key))
    r = httpx.post(
        f"{peers['issuer']}/reg",
        json={
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": alg,
            "jwks": {"keys": [jwk]},
            "application_type": "web",
        },
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["client_id"])


def _b64(n: int, length: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(length, "big")).rstrip(b"=").decode()


def _public_jwk(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        rn = key.public_key().public_numbers()
        return json.dumps({"kty": "RSA", "n": _b64(rn.n, (rn.n.bit_length() + 7) // 8), "e": _b64(rn.e, 3), "use": "sig"})
    numbers = key.public_key().public_numbers()
    return json.dumps({"kty": "EC", "crv": "P-256", "x": _b64(numbers.x, 32), "y": _b64(numbers.y, 32), "use": "sig"})


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


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
@pytest.mark.parametrize("form", ["pkcs8", "pkcs1"])
async def test_rsa_keys_sign_for_the_real_server(
    peers: dict[str, Any], rsa_key: rsa.RSAPrivateKey, alg: str, form: str
) -> None:
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8 if form == "pkcs8" else serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    client_id = _register(peers, rsa_key, alg)
    params = SignedJWTParameters(issuer=client_id, subject=client_id, signing_key=pem, signing_algorithm=alg)
    if alg == "RS256":
        # The SDK's default algorithm works as it does there.
        params = SignedJWTParameters(issuer=client_id, subject=client_id, signing_key=pem)
    p = PrivateKeyJWTOAuthProvider(
        peers["mcp_url"], InMemoryTokenStorage(), client_id, params.create_assertion_provider(), issuer=peers["issuer"]
    )
    assert await _list_tools(peers, p)


async def test_a_key_held_elsewhere_signs_through_the_application(
    peers: dict[str, Any], ec_key: ec.EllipticCurvePrivateKey
) -> None:
    client_id = _register(peers, ec_key)
    signed: list[bytes] = []

    async def kms_sign(data: bytes) -> bytes:
        signed.append(data)
        # DER, as cloud KMS APIs return ECDSA signatures.
        return ec_key.sign(data, ec.ECDSA(hashes.SHA256()))

    params = SigningCallbackJWTParameters(issuer=client_id, subject=client_id, signing_algorithm="ES256", sign=kms_sign)
    p = PrivateKeyJWTOAuthProvider(peers["mcp_url"], InMemoryTokenStorage(), client_id, params.create_assertion_provider())
    assert await _list_tools(peers, p)
    assert signed and _claims(signed[0].decode() + ".x")["aud"] == peers["issuer"]


async def test_a_signing_callback_that_fails_or_hangs_is_a_clear_error(peers: dict[str, Any]) -> None:
    async def hang(data: bytes) -> bytes:
        await asyncio.sleep(3600)
        return b""

    params = SigningCallbackJWTParameters(issuer="c", subject="c", sign=hang, timeout_seconds=0.2)
    p = PrivateKeyJWTOAuthProvider(peers["mcp_url"], InMemoryTokenStorage(), "c", params.create_assertion_provider())
    with pytest.raises(OAuthFlowError, match="did not answer within"):
        await p.authorize()

    def garbage(data: bytes) -> bytes:
        return b"\x01\x02"

    params = SigningCallbackJWTParameters(issuer="c", subject="c", sign=garbage)
    p = PrivateKeyJWTOAuthProvider(peers["mcp_url"], InMemoryTokenStorage(), "c", params.create_assertion_provider())
    with pytest.raises(Exception, match="not an ES256 signature"):
        await p.authorize()


@pytest.mark.parametrize(
    ("key", "alg", "said"),
    [
        ("not a key", "ES256", "not PEM"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "ES256", "cannot be read"),
        ("rsa", "ES256", "needs a P-256 EC key but the key is an RSA key"),
        ("ec", "RS256", "needs an RSA key but the key is an EC key"),
        ("p384", "ES256", "P-384"),
        ("encrypted", "ES256", "encrypted"),
        ("rsa", "HS256", "not supported"),
    ],
)
def test_bad_keys_are_configuration_errors_that_say_why_and_do_not_echo_the_key(key: str, alg: str, said: str) -> None:
    made: Any = {
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    }
    if key in made:
        key = _pem(made[key]())
    elif key == "encrypted":
        key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass"),
        ).decode()
    params = SignedJWTParameters(issuer="c", subject="c", signing_key=key, signing_algorithm=alg)
    with pytest.raises(OAuthConfigurationError, match=said) as info:
        params.create_assertion_provider()
    assert key not in str(info.value)
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
