"""Programs of the shapes the MCP Python SDK documents for machine-to-machine and
enterprise clients (examples/python), run as a user runs them, through the SDK
``Client`` against the real peers: oidc-provider (client credentials, and the
JWT-bearer grant with an enterprise IdP beside it) and the MCP server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import as_state

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def _register(peers: dict[str, Any], grant_type: str, method: str) -> tuple[str, str]:
    r = httpx.post(
        f"{peers['issuer']}/reg",
        json={
            "grant_types": [grant_type],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": method,
            "application_type": "web",
        },
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["client_id"]), str(r.json()["client_secret"])


def _run(program: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / program), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_client_credentials_program(peers: dict[str, Any]) -> None:
    client_id, secret = _register(peers, "client_credentials", "client_secret_basic")
    before = as_state(peers)["token_requests"].get("client_credentials", 0)
    out = _run(
        "client_credentials.py",
        {
            "MCP_SERVER_URL": peers["mcp_url"],
            "MCP_CLIENT_ID": client_id,
            "MCP_CLIENT_SECRET": secret,
            "MCP_ISSUER": peers["issuer"],
        },
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tools:" in out.stdout and "whoami" in out.stdout, out.stdout
    assert as_state(peers)["token_requests"].get("client_credentials", 0) == before + 1
    assert secret not in out.stdout + out.stderr


def test_the_client_credentials_program_never_sends_the_secret_to_another_issuer(peers: dict[str, Any]) -> None:
    client_id, secret = _register(peers, "client_credentials", "client_secret_basic")
    before = as_state(peers)["token_requests"].get("client_credentials", 0)
    out = _run(
        "client_credentials.py",
        {
            "MCP_SERVER_URL": peers["mcp_url"],
            "MCP_CLIENT_ID": client_id,
            "MCP_CLIENT_SECRET": secret,
            "MCP_ISSUER": "https://auth.elsewhere.example",
        },
    )
    assert out.returncode != 0
    assert "pinned" in out.stderr or "issuer" in out.stderr, out.stderr
    assert as_state(peers)["token_requests"].get("client_credentials", 0) == before
    assert secret not in out.stdout + out.stderr


@pytest.mark.parametrize("legs", [[], ["--both-legs"]], ids=["sdk-shape", "both-legs"])
def test_the_identity_assertion_program(peers: dict[str, Any], legs: list[str]) -> None:
    client_id, secret = _register(peers, "urn:ietf:params:oauth:grant-type:jwt-bearer", "client_secret_post")
    control = peers["control_url"]
    id_token = httpx.post(f"{control}/id-token", json={"sub": "alice", "client_id": client_id}, timeout=10).json()[
        "id_token"
    ]
    before = as_state(peers)["enterprise"]
    out = _run(
        "identity_assertion.py",
        {
            "MCP_SERVER_URL": peers["mcp_url"],
            "MCP_CLIENT_ID": client_id,
            "MCP_CLIENT_SECRET": secret,
            "MCP_ISSUER": peers["issuer"],
            "IDP_TOKEN_ENDPOINT": f"{peers['issuer']}/idp/token",
            "IDP_CLIENT_ID": "idp-client",
            "IDP_CLIENT_SECRET": "idp-secret",
            "ID_TOKEN": id_token,
        },
        *legs,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "whoami" in out.stdout, out.stdout
    after = as_state(peers)["enterprise"]
    assert after["exchanges"] == before["exchanges"] + 1
    assert after["grants"] == before["grants"] + 1
