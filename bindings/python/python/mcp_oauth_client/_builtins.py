"""Built-ins: a file token store, a Redis token store for fleets, the loopback redirect
receiver and the browser.

``LoopbackReceiver`` gives the SDK-style handler pair::

    receiver = LoopbackReceiver("http://127.0.0.1:0/callback")
    provider = OAuthClientProvider(
        server_url,
        OAuthClientMetadata(redirect_uris=[receiver.redirect_uri]),
        FileTokenStorage(server_url),
        redirect_handler=receiver.redirect_handler,
        callback_handler=receiver.callback_handler,
    )
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path

from . import _native
from ._models import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken

__all__ = ["FileTokenStorage", "LoopbackReceiver", "RedisTokenStorage", "open_browser"]


class FileTokenStorage:
    """Tokens and client information in a JSON file per MCP server.

    Files live in ``directory`` (default: ``$XDG_STATE_HOME/mcp-oauth-client`` or the
    platform's equivalent), are replaced atomically with mode 0600, and are guarded by
    an advisory lock, so several processes can share them: when one refreshes, the
    others use its tokens instead of refreshing again.
    """

    def __init__(self, server_url: str, directory: str | os.PathLike[str] | None = None) -> None:
        if directory is None:
            directory = _native.NativeFileStorage.default_dir()
            if directory is None:
                raise ValueError("no default directory for token files on this platform; pass directory=")
        self.directory = Path(directory)
        self._native = _native.NativeFileStorage(self.directory, server_url)

    def __repr__(self) -> str:
        return f"FileTokenStorage(directory={str(self.directory)!r})"

    async def get_tokens(self) -> OAuthToken | None:
        raw = await self._native.get_tokens()
        return None if raw is None else OAuthToken.model_validate_json(raw)

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self._native.set_tokens(_json(tokens))

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        raw = await self._native.get_client_info()
        return None if raw is None else OAuthClientInformationFull.model_validate_json(raw)

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._native.set_client_info(_json(client_info))


EncryptionKey = bytes | str
"""32 bytes, or their standard base64 (as a secret manager or an environment variable gives them)."""


class RedisTokenStorage:
    """Tokens and registrations in Redis, shared by every process of a fleet.

    Replicas of a gateway, a pool of workers or serverless functions using one
    ``RedisTokenStorage`` act as one client: one registration per authorization server,
    one token family, refreshed once (a lease in Redis; the others wait and use the new
    tokens). The core's store does the work; see the README's Redis section.

    Args:
        url: ``redis://[user[:password]@]host[:port][/db]``, ``rediss://...`` for TLS, or
            the URLs of several nodes of a Redis Cluster separated by commas.
        prefix: The prefix of every key (hosts sharing one Redis keep apart by it).
        encryption_key: The key that encrypts every value (AES-256-GCM, a fresh nonce
            per write): 32 bytes or their base64. Required unless
            ``allow_unencrypted_values=True``.
        key_id: The id stored beside each value ``encryption_key`` encrypts.
        old_keys: Keys that only decrypt, by id (rotation: values they wrote are read,
            and written again with ``encryption_key``).
        allow_unencrypted_values: Store tokens and client secrets as plain JSON,
            readable by anyone who can read the Redis database.
        server_url: The MCP server whose tokens the four methods below read and write.
            Not needed to pass the store to a provider, which binds it to its server.
        timeout: Seconds one Redis operation may take before it fails.

    A value in Redis that fails to decrypt or parse raises ``OAuthFlowError`` (``step``
    ``"storage"``) naming the key, and is neither used nor overwritten. While Redis is
    unreachable, a provider holding a valid token keeps serving requests; a refresh
    fails with ``OAuthFlowError`` (``step`` ``"storage"``) naming the store.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "mcp-oauth",
        encryption_key: EncryptionKey | None = None,
        *,
        key_id: str = "default",
        old_keys: Mapping[str, EncryptionKey] | None = None,
        allow_unencrypted_values: bool = False,
        server_url: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        keys: list[tuple[str, bytes]] = []
        if encryption_key is not None:
            keys.append((key_id, _key_bytes(key_id, encryption_key)))
        for old_id, old in (old_keys or {}).items():
            keys.append((old_id, _key_bytes(old_id, old)))
        if not keys and old_keys:
            raise ValueError("old_keys only decrypt: give encryption_key too")
        self.prefix = prefix
        self._native = _native.NativeRedisStorage(
            url,
            server_url=server_url,
            key_prefix=prefix,
            keys=keys,
            allow_unencrypted_values=allow_unencrypted_values,
            timeout=float(timeout),
        )

    def __repr__(self) -> str:
        # The core's description: URLs with the password redacted, key ids, no key.
        return f"RedisTokenStorage({self._native!r})"

    async def get_tokens(self) -> OAuthToken | None:
        raw = await self._native.get_tokens()
        return None if raw is None else OAuthToken.model_validate_json(raw)

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self._native.set_tokens(_json(tokens))

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        raw = await self._native.get_client_info()
        return None if raw is None else OAuthClientInformationFull.model_validate_json(raw)

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._native.set_client_info(_json(client_info))


def _key_bytes(key_id: str, key: EncryptionKey) -> bytes:
    if isinstance(key, str):
        try:
            return base64.b64decode(key.strip(), validate=True)
        except ValueError:
            raise ValueError(f"the encryption key {key_id!r} is not valid base64") from None
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"the encryption key {key_id!r} must be bytes or a base64 string")


def _json(model: object) -> str:
    from ._bridge import to_json

    out = to_json(model, "the value")
    if out is None:
        raise TypeError("cannot store None")
    return out


class LoopbackReceiver:
    """An RFC 8252 loopback listener for the redirect back from the authorization server.

    Bind it first (port 0 picks a free port), put :attr:`redirect_uri` in the client
    metadata, and pass :meth:`redirect_handler` and :meth:`callback_handler` to the
    provider. The redirect handler opens the system browser (``$BROWSER`` is honoured;
    with no browser the URL is printed) and the callback handler waits, at most
    ``timeout`` seconds, for the redirect carrying the same ``state``.
    """

    def __init__(self, redirect_uri: str = "http://127.0.0.1:0/callback", timeout: float = 300.0) -> None:
        self._native = _native.NativeLoopbackReceiver(redirect_uri, float(timeout))

    @property
    def redirect_uri(self) -> str:
        """The redirect URI, with the port actually bound."""
        return self._native.redirect_uri

    def __repr__(self) -> str:
        return f"LoopbackReceiver(redirect_uri={self.redirect_uri!r})"

    async def redirect_handler(self, authorization_url: str) -> None:
        """Open the authorization URL in the browser."""
        await self._native.redirect(authorization_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        """Wait for the redirect and return what it carried."""
        code, state, iss, error, error_description, error_uri = await self._native.callback()
        return AuthorizationCodeResult(
            code=code or "", state=state, iss=iss, error=error, error_description=error_description, error_uri=error_uri
        )


async def open_browser(authorization_url: str) -> None:
    """A ``redirect_handler`` that opens the system browser (``$BROWSER`` honoured) or,
    with none, prints the URL on standard error."""
    await _native.open_browser(authorization_url)
