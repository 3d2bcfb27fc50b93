"""Client assertions for ``PrivateKeyJWTOAuthProvider``: signed by the core, or given.

Signing is the core's (``JwtSigner``): ES256 with a P-256 key in PKCS#8 PEM. Any other
algorithm or key is refused when the assertion provider is created, with
``OAuthConfigurationError`` (a ``ValueError``); nothing is signed in Python.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field

from . import _native

__all__ = ["SignedJWTParameters", "static_assertion_provider"]


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
    signing_key: str = Field(description="The private key, PKCS#8 PEM (a P-256 key for ES256).", repr=False)
    signing_algorithm: str = Field(default="RS256", description="The JWS algorithm; only ES256 is supported.")
    lifetime_seconds: int = Field(default=300, description="Seconds from iat to exp.")
    additional_claims: dict[str, Any] | None = Field(default=None, description="More claims for each assertion.")

    def create_assertion_provider(self) -> Callable[[str], Awaitable[str]]:
        """An ``async (audience) -> str`` signing a fresh assertion per call.

        Raises:
            OAuthConfigurationError: (a ``ValueError``) the algorithm is not ES256, the key
                is not a PKCS#8 PEM P-256 key, or ``lifetime_seconds`` is not positive.
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
