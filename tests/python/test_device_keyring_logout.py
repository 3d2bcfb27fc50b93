"""The built-ins for terminals and desktops through the Python binding: the device
flow (approved and denied on oidc-provider's own pages by tests/browser/approve_device.py),
log-out with revocation, and ``KeyringTokenStorage`` against a real Secret Service
(run under scripts/with-keyring.sh, which tests/python/run.sh uses when gnome-keyring is
installed) and without one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import InMemoryTokenStorage, as_state

from mcp_oauth_client import (
    DeviceAuthorization,
    KeyringTokenStorage,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthClientProvider,
    OAuthToken,
    OAuthTokenError,
)

ROOT = Path(__file__).resolve().parents[2]
APPROVER = ROOT / "tests" / "browser" / "approve_device.py"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
needs_keyring = pytest.mark.skipif(
    not os.environ.get("MCP_OAUTH_KEYRING_TESTS"),
    reason="needs a Secret Service: run under scripts/with-keyring.sh",
)


class Screen:
    """Records each device authorization shown to the person."""

    def __init__(self) -> None:
        self.shown: list[DeviceAuthorization] = []
        self.event = asyncio.Event()

    def __call__(self, authorization: DeviceAuthorization) -> None:
        self.shown.append(authorization)
        self.event.set()


def device_provider(peers: dict[str, Any], storage: Any, screen: Screen) -> OAuthClientProvider:
    return OAuthClientProvider(
        peers["mcp_url"],
        OAuthClientMetadata(client_name="python device flow test", redirect_uris=None),
        storage,
        device_code_handler=screen,
        timeout=120,
    )


async def person(authorization: DeviceAuthorization, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(APPROVER), authorization.verification_uri, authorization.user_code, *args
    )
    assert await proc.wait() == 0


async def log_in(p: OAuthClientProvider, screen: Screen, *approver_args: str) -> None:
    login = asyncio.create_task(p.authorize())
    await asyncio.wait_for(screen.event.wait(), 30)
    await person(screen.shown[-1], *approver_args)
    await asyncio.wait_for(login, 60)


async def test_device_flow_then_logout_revokes(peers: dict[str, Any]) -> None:
    screen = Screen()
    storage = InMemoryTokenStorage()
    p = device_provider(peers, storage, screen)
    before = as_state(peers)["token_requests"].get(DEVICE_GRANT, 0)
    await log_in(p, screen)
    shown = screen.shown[0]
    assert shown.verification_uri == f"{peers['issuer']}/device"
    assert shown.verification_uri_complete and shown.user_code in shown.verification_uri_complete
    assert (shown.interval, shown.expires_in) == (5, 600)
    assert shown.user_code not in repr(shown)
    assert as_state(peers)["token_requests"][DEVICE_GRANT] == before + 1
    tokens = p.current_tokens
    assert tokens is not None and tokens.refresh_token
    assert storage.tokens is not None and storage.client_info is not None
    assert DEVICE_GRANT in (storage.client_info.grant_types or [])

    out = await p.logout()
    assert out.had_tokens and out.refresh_token_revoked and out.revocation_endpoint
    assert out.revocation_endpoint.endswith("/token/revocation")
    assert p.current_tokens is None
    # The SDK's four-method storage cannot delete: the provider ignores those tokens now.
    assert out.removed is False
    # oidc-provider refuses the revoked refresh token.
    client = storage.client_info
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "client_id": client.client_id}
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    r = httpx.post(f"{peers['issuer']}/token", data=form, auth=auth, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


async def test_device_flow_denied_raises_token_error(peers: dict[str, Any]) -> None:
    screen = Screen()
    storage = InMemoryTokenStorage()
    p = device_provider(peers, storage, screen)
    with pytest.raises(OAuthTokenError) as e:
        await log_in(p, screen, "--deny")
    assert e.value.error == "access_denied" and e.value.step == "device_authorization"
    assert storage.tokens is None


async def test_a_failing_device_code_handler_ends_the_flow_with_its_exception(peers: dict[str, Any]) -> None:
    polls_before = as_state(peers)["token_endpoint_posts"]

    def broken(_: DeviceAuthorization) -> None:
        raise RuntimeError("the screen is off")

    p = OAuthClientProvider(
        peers["mcp_url"], OAuthClientMetadata(redirect_uris=None), InMemoryTokenStorage(), device_code_handler=broken
    )
    # As with the other callbacks, the application's own exception comes back.
    with pytest.raises(RuntimeError, match="the screen is off"):
        await p.authorize()
    assert as_state(peers)["token_endpoint_posts"] == polls_before, "no polling after the handler failed"


def test_keyring_without_a_secret_service_says_so(tmp_path: Path) -> None:
    code = (
        "import asyncio, mcp_oauth_client as m\n"
        "s = m.KeyringTokenStorage('https://mcp.example.com/mcp', service='mcp-oauth-client-test')\n"
        "try:\n"
        "    asyncio.run(s.get_tokens())\n"
        "except m.OAuthFlowError as e:\n"
        "    print('ERROR', e.step, e)\n"
    )
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=f"unix:path={tmp_path / 'no-bus'}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("ERROR storage "), out.stdout + out.stderr
    assert "Secret Service" in out.stdout


@needs_keyring
async def test_keyring_storage_roundtrip_across_processes_and_delete() -> None:
    service = f"mcp-oauth-client-py-{uuid.uuid4().hex[:8]}"
    server = "https://mcp.example.com/mcp"
    s = KeyringTokenStorage(server, service=service)
    assert await s.get_tokens() is None
    await s.set_tokens(OAuthToken(access_token="py-at", refresh_token="py-rt", expires_in=60))
    await s.set_client_info(OAuthClientInformationFull(client_id="py-client", issuer="https://as.example.com"))
    code = (
        "import asyncio, sys, mcp_oauth_client as m\n"
        "s = m.KeyringTokenStorage(sys.argv[1], service=sys.argv[2])\n"
        "t = asyncio.run(s.get_tokens()); c = asyncio.run(s.get_client_info())\n"
        "print(t.access_token if t else None, t.refresh_token if t else None, c.client_id if c else None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, server, service], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["py-at", "py-rt", "py-client"], out.stdout + out.stderr
    assert await s.delete(registrations=True)
    assert await s.get_tokens() is None and await s.get_client_info() is None
    out = subprocess.run([sys.executable, "-c", code, server, service], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["None", "None", "None"], out.stdout + out.stderr


@needs_keyring
async def test_device_flow_into_the_keyring_then_a_second_provider_needs_no_one(peers: dict[str, Any]) -> None:
    service = f"mcp-oauth-client-py-{uuid.uuid4().hex[:8]}"
    screen = Screen()
    p = device_provider(peers, KeyringTokenStorage(peers["mcp_url"], service=service), screen)
    await log_in(p, screen)
    first = p.current_tokens
    again = Screen()
    p2 = device_provider(peers, KeyringTokenStorage(peers["mcp_url"], service=service), again)
    async with httpx.AsyncClient(auth=p2) as client:
        r = await client.post(
            peers["mcp_url"],
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"accept": "application/json, text/event-stream"},
        )
    assert r.status_code != 401
    assert again.shown == [] and first is not None
    assert p2.current_tokens is not None and p2.current_tokens.access_token == first.access_token
    out = await p2.logout()
    assert out.refresh_token_revoked and out.removed
    assert await KeyringTokenStorage(peers["mcp_url"], service=service).get_tokens() is None
