"""Running the MCP Python SDK's own programs, as published, with the SDK and with this
package: download the sdist with pip, copy its programs into a temporary folder with
only their import lines rewritten, start the SDK's example servers, and play the
person each program expects (a pasted redirect URL, or a browser).

Nothing of the SDK is copied into this repository: every file comes from the sdist,
in a temporary folder, at test time.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

# `from <module> import ...` lines naming the SDK's auth modules, and where the same
# names live here. Only these lines change.
_MODULES = {
    "mcp.client.auth.extensions.client_credentials": "mcp_oauth_client.extensions.client_credentials",
    "mcp.client.auth.extensions.identity_assertion": "mcp_oauth_client.extensions.identity_assertion",
    "mcp.client.auth": "mcp_oauth_client",
    "mcp.shared.auth": "mcp_oauth_client",
}
_IMPORT = re.compile(r"^(\s*from\s+)(mcp\.client\.auth(?:\.extensions\.\w+)?|mcp\.shared\.auth)(\s+import\b.*)$")


def rewrite_imports(source: str) -> tuple[str, int]:
    """``source`` with its SDK auth imports pointing here, and how many lines changed."""
    out, changed = [], 0
    for line in source.splitlines(keepends=True):
        m = _IMPORT.match(line.rstrip("\r\n"))
        if m and m.group(2) in _MODULES:
            line = f"{m.group(1)}{_MODULES[m.group(2)]}{m.group(3)}" + line[len(line.rstrip("\r\n")) :]
            changed += 1
        out.append(line)
    return "".join(out), changed


def uses_client_auth(path: Path) -> bool:
    return "mcp.client.auth" in path.read_text(errors="replace")


def download_sdk(spec: str, dest: Path) -> Path:
    """The sdist of ``mcp`` matching ``spec`` (e.g. ``==2.3.0``, ``<2``), extracted."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        + ["--no-binary", ":all:", f"mcp{spec}", "-d", str(dest)],
        check=True,
        timeout=300,
    )
    (archive,) = dest.glob("mcp-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    (root,) = (p for p in dest.iterdir() if p.is_dir() and p.name.startswith("mcp-"))
    return root


def programs_using_client_auth(root: Path) -> list[str]:
    """The documentation and example programs of an sdist that use ``mcp.client.auth``
    (the library, its tests, translations and doc tooling left out), relative paths."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("src/", "tests/", "scripts/", "i18n/")):
            continue
        if uses_client_auth(path):
            found.append(rel)
    return found


def rewritten_copy(root: Path, programs: Sequence[str], dest: Path) -> Path:
    """A copy of the sdist's programs (examples/, docs_src/, .github/) in ``dest``, the
    listed programs with their imports rewritten."""
    for top in ("examples", "docs_src", ".github"):
        if (root / top).exists():
            shutil.copytree(root / top, dest / top)
    for rel in programs:
        text, changed = rewrite_imports((root / rel).read_text())
        assert changed, f"{rel}: no import line to rewrite"
        (dest / rel).write_text(text)
    return dest


def free_port_or_fail(port: int) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is in use: the SDK's programs need it free")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server for port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


@contextmanager
def simple_auth_servers(python: str, root: Path, log_dir: Path) -> Iterator[None]:
    """The SDK's examples/servers/simple-auth: its authorization server on :9000 and its
    resource server on :8001, as its README starts them."""
    pythonpath = str(root / "examples" / "servers" / "simple-auth")
    env = {**os.environ, "PYTHONPATH": pythonpath}
    commands = [
        (9000, "mcp_simple_auth.auth_server", ["--port=9000"]),
        (
            8001,
            "mcp_simple_auth.server",
            ["--port=8001", "--auth-server=http://localhost:9000", "--transport=streamable-http"],
        ),
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port, module, args in commands:
            free_port_or_fail(port)
            code = f"import sys; from {module} import main; sys.argv[0] = {module!r}; main()"
            with open(log_dir / f"{module}.log", "wb") as log:
                procs.append(
                    subprocess.Popen([python, "-c", code, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
                )
            wait_for_port(port, procs[-1])
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def person(authorization_url: str) -> str:
    """The person at the simple-auth server's login page (its demo credentials): the URL
    the browser is then sent back to."""
    with httpx.Client(timeout=30) as client:
        r = client.get(authorization_url)
        assert r.status_code in (302, 303, 307), (r.status_code, r.text[:200])
        login = urljoin(authorization_url, r.headers["location"])
        state = parse_qs(urlsplit(login).query)["state"][0]
        r = client.post(
            urljoin(login, "/login/callback"),
            data={"username": "demo_user", "password": "demo_password", "state": state},
        )
        assert r.status_code in (302, 303, 307), (r.status_code, r.text[:200])
        return str(r.headers["location"])


BROWSER_SCRIPT = """\
#!{python}
# Stands in for the person: logs in at the authorization server, then lets the
# browser follow the redirect back to the program's callback listener.
import sys
sys.path.insert(0, {here!r})
import httpx
from sdk_programs import person
httpx.get(person(sys.argv[1]), timeout=30)
"""


@dataclass
class Outcome:
    """How one run of a program went."""

    returncode: int | None
    output: str
    ok: bool

    def last_line(self) -> str:
        lines = [line.strip(" |") for line in self.output.strip().splitlines()]
        lines = [line for line in lines if line and not line.startswith(("+-", "^", "~"))]
        return lines[-1][:160] if lines else f"exit status {self.returncode}"

    def describe(self) -> str:
        tail = "\n".join(self.output.strip().splitlines()[-15:])
        return f"exit status {self.returncode}\n{textwrap.indent(tail, '    ')}"


@dataclass
class Program:
    """One SDK program and how its README (or docstring) runs it."""

    path: str
    kind: str  # "story", "paste", "browser", "conformance"
    marker: str = ""
    module: str = ""  # for stories: the module to run with -m
    stdin: str = ""
    needs: str = ""  # a module of this package the program needs (None yet: skipped)
    servers: bool = False
    env: dict[str, str] = field(default_factory=dict)


def run_program(program: Program, python: str, base: Path, work: Path, timeout: float = 120) -> Outcome:
    """Run ``program`` from ``base`` (the sdist, or the rewritten copy)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(program.env)
    env["PYTHONUNBUFFERED"] = "1"
    path = base / program.path
    if program.kind == "story":
        return _finish(
            subprocess.Popen(
                [python, "-m", program.module, "--http"],
                cwd=base / "examples",
                env={**env, "OAUTH_DEMO_AUTO_CONSENT": "1"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            ),
            program,
            timeout,
        )
    if program.kind == "browser":
        script = work / "browser"
        script.write_text(BROWSER_SCRIPT.format(python=sys.executable, here=str(Path(__file__).parent)))
        script.chmod(0o755)
        proc = subprocess.Popen(
            [python, str(path)],
            cwd=path.parent,
            env={**env, "BROWSER": str(script)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        return _finish(proc, program, timeout, stdin=program.stdin)
    if program.kind == "paste":
        # The program prints "Visit: <url>" and reads the redirect URL from stdin.
        code = (
            "import asyncio, runpy, sys; ns = runpy.run_path(sys.argv[1], run_name='sdk_program'); "
            "asyncio.run(ns['main']())"
        )
        proc = subprocess.Popen(
            [python, "-c", code, str(path)],
            cwd=path.parent,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None and proc.stdin is not None
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            seen.append(line)
            m = re.search(r"Visit:\s*(\S+)", line)
            if m:
                try:
                    proc.stdin.write((person(m.group(1)) + "\n").encode())
                    proc.stdin.flush()
                except Exception as e:  # the person could not log in: reported below
                    seen.append(f"[the person could not log in: {e!r}]\n")
                break
        return _finish(proc, program, max(1.0, deadline - time.monotonic()), prefix="".join(seen))
    raise ValueError(program.kind)


CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance" / "node_modules"

WRAPPER = """\
#!/bin/sh
# The conformance suite runs this with the MCP server URL as its last argument.
cd {cwd}
exec {command} "$@"
"""


def run_conformance(
    program: Program, python: str, base: Path, work: Path, scenario: str, timeout: float = 120
) -> Outcome:
    """One scenario of the pinned MCP conformance suite (tests/conformance) with the
    program as its client, launched as the program's own documentation says."""
    path = base / program.path
    if path.name == "__init__.py":  # a package run with -m, the scenario first
        command = f"{python} -m {path.parent.name} \"$MCP_CONFORMANCE_SCENARIO\""
        cwd = path.parent.parent
    else:
        command = f"{python} {path}"
        cwd = path.parent
    wrapper = work / f"client-{abs(hash((str(base), program.path)))}"
    wrapper.write_text(WRAPPER.format(cwd=cwd, command=command))
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(program.env)
    env["PATH"] = f"{CONFORMANCE / 'node' / 'bin'}:{env.get('PATH', '')}"
    checks = work / "checks"
    proc = subprocess.Popen(
        [str(CONFORMANCE / ".bin" / "conformance"), "client", "--command", str(wrapper)]
        + ["--scenario", scenario, "--timeout", "30000", "-o", str(checks)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    outcome = _finish(proc, program, timeout)
    outcome.ok = outcome.ok and "OVERALL: PASSED" in re.sub(r"\x1b\[[0-9;]*m", "", outcome.output)
    return outcome


def _finish(
    proc: subprocess.Popen[bytes], program: Program, timeout: float, stdin: str = "", prefix: str = ""
) -> Outcome:
    try:
        out, _ = proc.communicate(stdin.encode() if stdin else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        output = prefix + out.decode(errors="replace") + f"\n[killed after {timeout:.0f} s]"
        return Outcome(None, output, False)
    output = prefix + out.decode(errors="replace")
    ok = proc.returncode == 0 and (not program.marker or program.marker in output)
    return Outcome(proc.returncode, output, ok)
