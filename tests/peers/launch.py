"""Start the test peers: the oidc-provider authorization server and the protected
MCP server, wired to each other, on 127.0.0.1.

    .venv/bin/python tests/peers/launch.py [--access-token-ttl S] [--refresh-token-ttl S]
        [--oidc-port N] [--mcp-port N] [--required-scope "mcp:read"]
        [--json-response] [--stateless] [--sse] [--no-stdin]

Prints ONE line of JSON on stdout once both are ready:

    {"issuer": "http://127.0.0.1:A", "mcp_url": "http://127.0.0.1:B/mcp",
     "control_url": "http://127.0.0.1:A/__control", "prm_url": "...",
     "mcp_control_url": "http://127.0.0.1:B/__control", "oidc_pid": N, "mcp_pid": N}

then runs until its stdin reaches EOF (unless --no-stdin), or it gets SIGTERM/SIGINT,
and stops both children. The children die with it even if it is killed (SIGKILL):
they are started with a parent-death signal.

Node >= 22 is taken from tests/peers/node_modules/node/bin/node (installed by
scripts/setup.sh), else from $MCP_PEERS_NODE, else `node` on PATH.

Also usable from Python tests: `with Peers(access_token_ttl=5) as p: p.info["mcp_url"]`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 60.0


def _node_binary() -> str:
    env = os.environ.get("MCP_PEERS_NODE")
    if env:
        return env
    local = HERE / "node_modules" / "node" / "bin" / "node"
    if local.exists():
        return str(local)
    found = shutil.which("node")
    if not found:
        raise RuntimeError("no Node.js found: run scripts/setup.sh (installs Node 22 into tests/peers/node_modules)")
    return found


def _die_with_parent() -> None:
    # Linux: deliver SIGTERM to this child when the launcher dies, however it dies.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    # Own process group: a Ctrl-C at a terminal goes to the launcher, which stops the children.
    os.setpgrp()


def _wait_ready(proc: subprocess.Popen, name: str, timeout: float) -> dict:
    """Reads the child's stdout until its `READY {...}` line; forwards the rest to stderr."""
    result: dict = {}
    done = threading.Event()

    def pump():
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not done.is_set() and line.startswith("READY "):
                try:
                    result.update(json.loads(line[6:]))
                except ValueError:
                    sys.stderr.write(f"[launch] bad READY line from {name}: {line}\n")
                done.set()
            else:
                sys.stderr.write(f"[{name} stdout] {line}\n")
        done.set()

    threading.Thread(target=pump, name=f"{name}-stdout", daemon=True).start()
    if not done.wait(timeout) or not result:
        raise RuntimeError(f"{name} did not report READY (exit code {proc.poll()})")
    return result


class Peers:
    """Starts both peers; `info` holds the JSON that the launcher prints."""

    def __init__(
        self,
        *,
        access_token_ttl: int = 3600,
        refresh_token_ttl: int = 86400,
        oidc_port: int = 0,
        mcp_port: int = 0,
        required_scope: str = "mcp:read",
        json_response: bool = False,
        stateless: bool = False,
        sse: bool = False,
        python: str | None = None,
    ):
        self.args = dict(
            access_token_ttl=access_token_ttl,
            refresh_token_ttl=refresh_token_ttl,
            oidc_port=oidc_port,
            mcp_port=mcp_port,
            required_scope=required_scope,
            json_response=json_response,
            stateless=stateless,
            sse=sse,
        )
        self.python = python or sys.executable
        self.procs: list[subprocess.Popen] = []
        self.info: dict = {}

    def start(self) -> dict:
        a = self.args
        try:
            oidc = subprocess.Popen(
                [
                    _node_binary(),
                    str(HERE / "oidc" / "server.mjs"),
                    "--port", str(a["oidc_port"]),
                    "--access-token-ttl", str(a["access_token_ttl"]),
                    "--refresh-token-ttl", str(a["refresh_token_ttl"]),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                preexec_fn=_die_with_parent,
                cwd=HERE,
            )
            self.procs.append(oidc)
            issuer = _wait_ready(oidc, "oidc", READY_TIMEOUT)["issuer"]

            cmd = [
                self.python,
                str(HERE / "mcp_server" / "server.py"),
                "--port", str(a["mcp_port"]),
                "--issuer", issuer,
                "--required-scope", a["required_scope"],
            ]
            if a["json_response"]:
                cmd.append("--json-response")
            if a["stateless"]:
                cmd.append("--stateless")
            if a["sse"]:
                cmd.append("--sse")
            mcp = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, preexec_fn=_die_with_parent, cwd=HERE
            )
            self.procs.append(mcp)
            mcp_url = _wait_ready(mcp, "mcp", READY_TIMEOUT)["url"]

            # Tell the authorization server about the resource it may issue tokens for.
            control_url = f"{issuer}/__control"
            req = urllib.request.Request(
                f"{control_url}/resources",
                data=json.dumps({"resource": mcp_url}).encode(),
                headers={"content-type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()

            origin, path = mcp_url.rsplit("/", 1)
            self.info = {
                "issuer": issuer,
                "mcp_url": mcp_url,
                "control_url": control_url,
                "prm_url": f"{origin}/.well-known/oauth-protected-resource/{path}",
                "mcp_control_url": f"{origin}/__control",
                "oidc_pid": oidc.pid,
                "mcp_pid": mcp.pid,
            }
            return self.info
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in reversed(self.procs):
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def __enter__(self) -> "Peers":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Start the oidc-provider and MCP server test peers.")
    ap.add_argument("--access-token-ttl", type=int, default=3600, help="seconds (default 3600)")
    ap.add_argument("--refresh-token-ttl", type=int, default=86400, help="seconds (default 86400)")
    ap.add_argument("--oidc-port", type=int, default=0, help="0 = ephemeral (default)")
    ap.add_argument("--mcp-port", type=int, default=0, help="0 = ephemeral (default)")
    ap.add_argument("--required-scope", default="mcp:read", help="scope(s) the MCP server requires")
    ap.add_argument("--json-response", action="store_true", help="MCP server answers JSON, not SSE")
    ap.add_argument("--stateless", action="store_true", help="stateless MCP server (no sessions)")
    ap.add_argument("--sse", action="store_true", help="MCP server on the legacy HTTP+SSE transport (/sse)")
    ap.add_argument("--no-stdin", action="store_true", help="ignore stdin; run until SIGTERM/SIGINT")
    args = ap.parse_args(argv)

    peers = Peers(
        access_token_ttl=args.access_token_ttl,
        refresh_token_ttl=args.refresh_token_ttl,
        oidc_port=args.oidc_port,
        mcp_port=args.mcp_port,
        required_scope=args.required_scope,
        json_response=args.json_response,
        stateless=args.stateless,
        sse=args.sse,
    )
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    try:
        info = peers.start()
    except Exception as exc:
        sys.stderr.write(f"[launch] failed: {exc}\n")
        return 1

    try:
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()

        if not args.no_stdin:
            def watch_stdin():
                try:
                    while sys.stdin.buffer.read1(65536) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.buffer.read(1):
                        pass
                except (OSError, ValueError):
                    pass
                stop.set()

            threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()

        crashed = False
        while not stop.wait(0.5):
            for p in peers.procs:
                if p.poll() is not None:
                    sys.stderr.write(f"[launch] a peer exited unexpectedly (pid {p.pid}, code {p.returncode})\n")
                    crashed = True
                    stop.set()
        return 1 if crashed else 0
    finally:
        peers.stop()


if __name__ == "__main__":
    sys.exit(main())
