"""RedisTokenStorage: the core's Redis fleet store from Python, against a real
redis-server started here on a free port (and stopped after) and the peers.

Without redis-server these tests fail: the store is never reported as tested when it
was not (scripts/setup.sh installs it)."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from conftest import INITIALIZE, MCP_HEADERS, HeadlessBrowser, as_state

from mcp_oauth_client import (
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthClientProvider,
    OAuthConfigurationError,
    OAuthFlowError,
    OAuthToken,
    RedisTokenStorage,
)

KEY = bytes(range(32))
KEY_B64 = base64.b64encode(bytes([7] * 32)).decode()


class Redis:
    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.proc = proc
        self.url = f"redis://127.0.0.1:{port}"

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args], check=True, capture_output=True, text=True
        )
        return out.stdout.rstrip("\n")


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.fail("redis-server is not installed (scripts/setup.sh installs it): RedisTokenStorage is untested")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Redis(port, proc)
    deadline = time.monotonic() + 20
    while True:
        try:
            if server.cli("ping") == "PONG":
                break
        except subprocess.CalledProcessError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
        time.sleep(0.05)
    yield server
    proc.kill()
    proc.wait()


async def test_roundtrip_is_encrypted_and_shared(redis: Redis) -> None:
    url = "http://127.0.0.1:1/mcp"
    s = RedisTokenStorage(redis.url, prefix="py-rt", encryption_key=KEY, key_id="k1", server_url=url)
    assert await s.get_tokens() is None and await s.get_client_info() is None
    await s.set_tokens(OAuthToken(access_token="secret-at", refresh_token="secret-rt", expires_in=60))
    await s.set_client_info(OAuthClientInformationFull(client_id="cid", client_secret="secret-cs", issuer="http://as"))
    # Another instance (another process) with the key reads them.
    again = RedisTokenStorage(redis.url, prefix="py-rt", encryption_key=KEY, key_id="k1", server_url=url)
    t = await again.get_tokens()
    c = await again.get_client_info()
    assert t is not None and (t.access_token, t.refresh_token) == ("secret-at", "secret-rt")
    assert c is not None and (c.client_id, c.client_secret) == ("cid", "secret-cs")
    # What Redis holds is encrypted with k1.
    keys = redis.cli("--scan", "--pattern", "py-rt:*").split()
    values = [redis.cli("hget", k, "d") if k.endswith(":tokens") else redis.cli("get", k) for k in keys
              if k.endswith((":tokens", ":client"))]
    assert values and all(v.startswith("aes256gcm:k1:") for v in values), values
    assert not any("secret" in v for v in values)
    # Rotation: a new key writes, the old one still reads.
    rotated = RedisTokenStorage(
        redis.url, prefix="py-rt", encryption_key=KEY_B64, key_id="k2", old_keys={"k1": KEY}, server_url=url
    )
    assert (await rotated.get_tokens()) == t
    await rotated.set_tokens(t)
    # A store without k2 refuses what k2 wrote, with a storage error naming the key id.
    with pytest.raises(OAuthFlowError) as e:
        await again.get_tokens()
    assert "k2" in str(e.value) and e.value.step == "storage"


def test_settings_are_checked_and_secrets_not_shown(redis: Redis) -> None:
    with pytest.raises(OAuthConfigurationError, match="allow_unencrypted_values"):
        RedisTokenStorage(redis.url)
    RedisTokenStorage(redis.url, allow_unencrypted_values=True)
    with pytest.raises(OAuthConfigurationError, match="32"):
        RedisTokenStorage(redis.url, encryption_key=b"short")
    with pytest.raises(ValueError, match="base64"):
        RedisTokenStorage(redis.url, encryption_key="not base64!")
    with pytest.raises(OAuthConfigurationError):
        RedisTokenStorage("http://127.0.0.1:6379", encryption_key=KEY)
    s = RedisTokenStorage(f"redis://fleet:pw-123@127.0.0.1:{redis.port}/2", encryption_key=KEY, key_id="visible")
    shown = repr(s)
    assert "pw-123" not in shown and "***" in shown and "visible" in shown, shown
    assert "0, 1, 2" not in shown


async def test_methods_need_a_server_url(redis: Redis) -> None:
    s = RedisTokenStorage(redis.url, encryption_key=KEY)
    with pytest.raises(OAuthConfigurationError, match="server_url"):
        await s.get_tokens()


async def test_a_fleet_of_providers_shares_one_login(peers: dict[str, Any], redis: Redis) -> None:
    browser = HeadlessBrowser()

    def provider(b: HeadlessBrowser) -> OAuthClientProvider:
        return OAuthClientProvider(
            peers["mcp_url"],
            OAuthClientMetadata(client_name="redis fleet", redirect_uris=["http://127.0.0.1:3030/callback"]),
            RedisTokenStorage(redis.url, prefix="py-fleet", encryption_key=KEY),
            redirect_handler=b.redirect_handler,
            callback_handler=b.callback_handler,
        )

    async with httpx2.AsyncClient(auth=provider(browser)) as client:
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text
    assert browser.redirects == 1

    # Another member of the fleet: tokens and registration from Redis, nobody asked.
    state = as_state(peers)
    other = HeadlessBrowser()
    async with httpx2.AsyncClient(auth=provider(other)) as client:
        r = await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
        assert r.status_code == 200 and r.history == []
    assert other.redirects == 0 and as_state(peers) == state

    # A value altered in Redis: refused with a storage error, not used.
    key = next(k for k in redis.cli("--scan", "--pattern", "py-fleet:srv:*:tokens").split())
    raw = redis.cli("hget", key, "d")
    tampered = raw[:-3] + ("A" if raw[-3] != "A" else "B") + raw[-2:]
    redis.cli("hset", key, "d", tampered)
    with pytest.raises(OAuthFlowError) as e:
        async with httpx2.AsyncClient(auth=provider(HeadlessBrowser())) as client:
            await client.post(peers["mcp_url"], json=INITIALIZE, headers=MCP_HEADERS)
    assert e.value.step == "storage" and key in str(e.value) and "not used" in str(e.value)
    assert redis.cli("hget", key, "d") == tampered
