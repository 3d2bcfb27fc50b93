"""Client assertions for ``PrivateKeyJWTOAuthProvider``: signed by the core, or given.

Signing is the core's: RS256 or PS256 with an RSA key, ES256 with a P-256 key, from PEM
in PKCS#8, PKCS#1 or SEC1 form. A key that cannot do the algorithm is refused when the
assertion provider is created, with ``OAuthConfigurationError`` (a ``ValueError``) saying
what is wrong. A key that never leaves an HSM or a cloud KMS signs through
``SigningCallbackJWTParameters``: the core makes the claims and encoding, the
application's coroutine only signs bytes. Nothing is encoded in Python.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field

from . import _native
from ._errors import OAuthFlowError

__all__ = ["SignedJWTParameters", "SigningCallbackJWTParameters", "static_assertion_provider"]


def static_assertion_provider(token: str) -> Callable[[str], Awaitable[str]]:
    """An assertion provider that always returns ``token``, a pre-built JWT (its audience is its own)."""

    async def provider(audience: str) -> str:
        return token

    return provider


class SignedJWTParameters(BaseModel):
    """What the core needs to sign RFC 7523 client assertions with the client's key.

    ``create_assertion_provider()`` parses the key once and returns the coroutine
    function to pass as ``assertion_provider``. Each assertion carries ``iss``,
    ``sub``, ``aud`` (the authorization server's issuer), ``iat``, ``exp`` and a random
    ``jti``, plus ``additional_claims``, which cannot replace those six.
    """

    issuer: str = Field(description="The assertion's iss (usually the client ID).")
    subject: str = Field(description="The assertion's sub (usually the client ID).")
    signing_key: str = Field(
        description="The private key in PEM (PKCS#8, PKCS#1 or SEC1): RSA for RS256/PS256, P-256 for ES256.",
        repr=False,
    )
    signing_algorithm: str = Field(default="RS256", description="The JWS algorithm: RS256, PS256 or ES256.")
    lifetime_seconds: int = Field(default=300, description="Seconds from iat to exp.")
    additional_claims: dict[str, Any] | None = Field(default=None, description="More claims for each assertion.")

    def create_assertion_provider(self) -> Callable[[str], Awaitable[str]]:
        """An ``async (audience) -> str`` signing a fresh assertion per call.

        Raises:
            OAuthConfigurationError: (a ``ValueError``) the algorithm is not supported, the
                key cannot be read or cannot do the algorithm (the message says which), or
                ``lifetime_seconds`` is not positive.
        """
        extra = None if self.additional_claims is None else json.dumps(self.additional_claims)
        signer = _native.NativeSigner(
            self.signing_key,
            self.signing_algorithm,
            lifetime_seconds=self.lifetime_seconds,
            extra_claims_json=extra,
        )
        issuer, subject = self.issuer, self.subject

        async def provider(audience: str) -> str:
            return signer.client_assertion(issuer, subject, audience)

        return provider


async def _awaited(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _within(seconds: float, work: Awaitable[Any]) -> Any:
    """``work`` within ``seconds`` (``TimeoutError`` otherwise), on whichever event loop
    runs it: asyncio's, or trio's through anyio (which the MCP SDK brings)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        import anyio

        with anyio.fail_after(seconds):
            return await work
    try:
        return await asyncio.wait_for(work, seconds)
    except asyncio.TimeoutError:
        raise TimeoutError from None


class SigningCallbackJWTParameters(BaseModel):
    """Client assertions signed by a key held elsewhere (an HSM, a cloud KMS).

    ``sign`` receives the bytes to sign (the JWS signing input) and returns the signature:
    for ES256 the 64 bytes ``r || s`` or DER, as KMS APIs return it; for RS256/PS256 the
    RSA signature. It may be a coroutine function or a plain one. The claims are the
    core's, as with ``SignedJWTParameters``; a signature that does not come within
    ``timeout_seconds`` fails the token request with ``OAuthFlowError``.
    """

    issuer: str = Field(description="The assertion's iss (usually the client ID).")
    subject: str = Field(description="The assertion's sub (usually the client ID).")
    signing_algorithm: str = Field(default="ES256", description="The JWS algorithm: RS256, PS256 or ES256.")
    sign: Callable[[bytes], Awaitable[bytes] | bytes] = Field(description="Signs the bytes given.", repr=False)
    key_id: str | None = Field(default=None, description="The JWS kid.")
    lifetime_seconds: int = Field(default=300, description="Seconds from iat to exp.")
    timeout_seconds: float = Field(default=10.0, description="How long to wait for each signature.")
    additional_claims: dict[str, Any] | None = Field(default=None, description="More claims for each assertion.")

    def create_assertion_provider(self) -> Callable[[str], Awaitable[str]]:
        """An ``async (audience) -> str`` asking ``sign`` for each assertion's signature."""
        extra = None if self.additional_claims is None else json.dumps(self.additional_claims)
        algorithm, issuer, subject = self.signing_algorithm, self.issuer, self.subject
        lifetime, key_id, sign, timeout = self.lifetime_seconds, self.key_id, self.sign, self.timeout_seconds
        # Checked now, as SignedJWTParameters checks its key.
        _native.assertion_signing_input(algorithm, issuer, subject, "check", lifetime_seconds=lifetime)
        if not timeout > 0:
            raise ValueError("timeout_seconds must be a positive number of seconds")

        async def provider(audience: str) -> str:
            signing_input = _native.assertion_signing_input(
                algorithm,
                issuer,
                subject,
                audience,
                lifetime_seconds=lifetime,
                extra_claims_json=extra,
                key_id=key_id,
            )
            try:
                signature = await _within(timeout, _awaited(sign(signing_input.encode("ascii"))))
            except TimeoutError:
                raise OAuthFlowError(
                    f"the signing callback did not answer within {timeout:g} seconds", step="signing"
                ) from None
            if not isinstance(signature, (bytes, bytearray)):
                raise TypeError(f"sign must return bytes, not {type(signature).__name__}")
            return _native.assertion_finish(signing_input, algorithm, bytes(signature))

        return provider
