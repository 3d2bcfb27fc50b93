"""The proof of the drop-in promise: the MCP Python SDK's own documentation and example
programs that use ``mcp.client.auth``, downloaded with pip (the sdists of 2.3.0 and of
the newest 1.x), run once as published and once with only their import lines pointing
at this package, against the SDK's own example servers. Every program that runs with
the SDK runs with this package; ``mypy --strict`` finds nothing in the rewritten
programs that it does not find in the originals.

Needs the network (pip) and the ports the programs name: 8000 (the stories), 8001 and
9000 (the simple-auth example servers), 3030 (the simple-auth client's listener).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_programs import (
    Outcome,
    Program,
    download_sdk,
    programs_using_client_auth,
    rewritten_copy,
    run_conformance,
    run_program,
    simple_auth_servers,
)

import mcp_oauth_client


# Conformance scenarios the SDK's conformance clients run through (a few, for time: the
# whole suite runs against this package in tests/conformance).
SCENARIOS = ["auth/metadata-default", "auth/scope-step-up", "auth/token-endpoint-auth-post"]

STORY = "OK: "
TOOLS = "Available tools"

# Every program of the sdists that uses mcp.client.auth, and how its README runs it.
# (The test checks this list against the sdist: a program added by a later SDK is not
# silently left out.)
SDK_2 = [
    Program("examples/stories/oauth/client.py", "story", STORY, module="stories.oauth.client"),
    Program(
        "examples/stories/oauth_client_credentials/client.py",
        "story",
        STORY,
        module="stories.oauth_client_credentials.client",
    ),
    Program(
        "examples/stories/identity_assertion/client.py",
        "story",
        STORY,
        module="stories.identity_assertion.client",
        needs="mcp_oauth_client.extensions.identity_assertion",
    ),
    Program("docs_src/oauth_clients/tutorial001.py", "paste", "[", servers=True),
    Program("docs_src/oauth_clients/tutorial002.py", "paste", "[", servers=True),
    Program(
        "docs_src/identity_assertion/tutorial001.py",
        "paste",
        needs="mcp_oauth_client.extensions.identity_assertion",
        servers=True,
    ),
    Program("examples/snippets/clients/oauth_client.py", "paste", TOOLS, servers=True),
    Program(
        "examples/snippets/clients/identity_assertion_client.py",
        "paste",
        needs="mcp_oauth_client.extensions.identity_assertion",
        servers=True,
    ),
    Program(
        "examples/clients/simple-auth-client/mcp_simple_auth_client/main.py",
        "browser",
        "Available tools",
        stdin="list\nquit\n",
        servers=True,
        env={"MCP_SERVER_PORT": "8001", "MCP_TRANSPORT_TYPE": "streamable-http"},
    ),
    Program(
        ".github/actions/conformance/client.py",
        "conformance",
        needs="mcp_oauth_client.extensions.identity_assertion",
    ),
]
SDK_1 = [
    Program("examples/snippets/clients/oauth_client.py", "paste", TOOLS, servers=True),
    Program(
        "examples/clients/simple-auth-client/mcp_simple_auth_client/main.py",
        "browser",
        "Available tools",
        stdin="list\nquit\n",
        servers=True,
        env={"MCP_SERVER_PORT": "8001", "MCP_TRANSPORT_TYPE": "streamable-http"},
    ),
    Program("examples/clients/conformance-auth-client/mcp_conformance_auth_client/__init__.py", "conformance"),
    Program(".github/actions/conformance/client.py", "conformance"),
]


# Programs that run with the SDK and not yet with this package, each for a reason owned
# elsewhere. A listed program that runs fails the test (the entry is stale).
KNOWN_GAPS: dict[str, str] = {}
# The same, for mypy --strict (a program that does not run with the SDK may still type-check).
MYPY_KNOWN_GAPS: dict[str, str] = {**KNOWN_GAPS}


class Sdk:
    """One SDK release: its sdist, the rewritten copy, and the interpreter it runs on."""

    def __init__(self, spec: str, programs: list[Program], work: Path, python: str) -> None:
        self.spec, self.programs, self.work, self.python = spec, programs, work, python
        # Where another environment than this one finds this package (None: installed here).
        self.package_path: str | None = None
        self.root = download_sdk(spec, work / "sdist")
        self.version = self.root.name.removeprefix("mcp-")
        self.published = programs_using_client_auth(self.root)
        self.ours = rewritten_copy(self.root, [p.path for p in programs], work / "ours")


def _python_with(sdist_root: Path, work: Path) -> str:
    """A virtual environment with this SDK release (from its sdist) and the example
    servers' dependencies (pinned as in the repository's requirements); this package
    is reached through ``PYTHONPATH`` of its runs (a copy of it alone, see ``sdk1``)."""
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(sdist_root)]
        + ["pydantic-settings==2.16.3", "click==8.5.1", "uvicorn==0.54.0", "sse-starlette==3.7.1", "httpx==0.28.1"],
        check=True,
        timeout=600,
    )
    return python


@pytest.fixture(scope="module")
def sdk2(tmp_path_factory: pytest.TempPathFactory) -> Sdk:
    return Sdk("==2.3.0", SDK_2, tmp_path_factory.mktemp("sdk2"), sys.executable)


@pytest.fixture(scope="module")
def sdk1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sdk]:
    work = tmp_path_factory.mktemp("sdk1")
    sdk = Sdk("<2", SDK_1, work, "")
    sdk.python = _python_with(sdk.root, work)
    # A copy of this package alone: wherever it is installed, its neighbours must not
    # shadow the 1.x environment's own packages (mcp first).
    shutil.copytree(Path(mcp_oauth_client.__file__).resolve().parent, work / "package" / "mcp_oauth_client")
    sdk.package_path = str(work / "package")
    yield sdk


def _both(sdk: Sdk, program: Program, tmp: Path) -> tuple[Outcome, Outcome]:
    """The program run with the SDK, then with this package."""
    python = sdk.python
    extra = {} if sdk.package_path is None else {"PYTHONPATH": sdk.package_path}
    with_sdk = run_program(program, python, sdk.root, tmp)
    program_ours = Program(**{**program.__dict__, "env": {**program.env, **extra}})
    with_ours = run_program(program_ours, python, sdk.ours, tmp)
    return with_sdk, with_ours


def _check(sdk: Sdk, tmp: Path, results: dict[str, str]) -> None:
    assert sorted(sdk.published) == sorted(p.path for p in sdk.programs), (
        "the sdist's programs using mcp.client.auth changed; list each with how to run it"
    )
    failures = []
    runnable = [p for p in sdk.programs if p.kind != "conformance"]
    for program in (p for p in sdk.programs if p.kind == "conformance"):
        if program.needs and importlib.util.find_spec(program.needs) is None:
            results[program.path] = f"skipped: {program.needs} is not in this package yet"
            continue
        extra = {} if sdk.package_path is None else {"PYTHONPATH": sdk.package_path}
        ours = Program(**{**program.__dict__, "env": {**program.env, **extra}})
        passed_sdk, passed_ours, broken = 0, 0, []
        for scenario in SCENARIOS:
            with_sdk = run_conformance(program, sdk.python, sdk.root, tmp, scenario)
            if not with_sdk.ok:
                continue
            passed_sdk += 1
            with_ours = run_conformance(ours, sdk.python, sdk.ours, tmp, scenario)
            if with_ours.ok:
                passed_ours += 1
            else:
                broken.append(scenario)
                failures.append(f"{program.path} {scenario}\n  with the SDK: ok\n  with this package: {with_ours.describe()}")
        results[program.path] = (
            f"conformance {', '.join(SCENARIOS)}: {passed_sdk} pass with the SDK, {passed_ours} of them with this package"
            + (f" (FAILS: {', '.join(broken)})" if broken else "")
        )
    servers_needed = [p for p in runnable if p.servers]
    logs = tmp / "logs"
    logs.mkdir()

    def run_all(programs: list[Program]) -> None:
        for program in programs:
            if program.needs and importlib.util.find_spec(program.needs) is None:
                results[program.path] = f"skipped: {program.needs} is not in this package yet"
                continue
            with_sdk, with_ours = _both(sdk, program, tmp)
            if not with_sdk.ok:
                results[program.path] = f"does not run with the SDK ({with_sdk.last_line()})"
                continue
            gap = KNOWN_GAPS.get(program.path)
            if with_ours.ok and gap:
                results[program.path] = "runs with the SDK and with this package (a stale known gap)"
                failures.append(f"{program.path} runs now: remove it from KNOWN_GAPS")
            elif with_ours.ok:
                results[program.path] = "runs with the SDK and with this package"
            elif gap:
                results[program.path] = f"runs with the SDK, not yet with this package: {gap}"
            else:
                results[program.path] = "runs with the SDK, FAILS with this package"
                failures.append(f"{program.path}\n  with the SDK: ok\n  with this package: {with_ours.describe()}")

    run_all([p for p in runnable if not p.servers])
    if servers_needed:
        with simple_auth_servers(sdk.python, sdk.root, logs):
            run_all(servers_needed)
    assert not failures, "\n\n".join(failures)


@pytest.mark.timeout(900)
def test_the_sdk_2_programs_run_with_this_package(sdk2: Sdk, tmp_path: Path) -> None:
    results: dict[str, str] = {}
    try:
        _check(sdk2, tmp_path, results)
    finally:
        print(f"\nMCP Python SDK {sdk2.version}:")
        for path, result in results.items():
            print(f"  {path}: {result}")


@pytest.mark.timeout(1200)
def test_the_sdk_1_programs_run_with_this_package(sdk1: Sdk, tmp_path: Path) -> None:
    results: dict[str, str] = {}
    try:
        _check(sdk1, tmp_path, results)
    finally:
        print(f"\nMCP Python SDK {sdk1.version}:")
        for path, result in results.items():
            print(f"  {path}: {result}")


def _mypy(python: str, program: Path, cache: Path, env: dict[str, str]) -> set[str]:
    """mypy --strict's errors in ``program`` itself (not in what it imports), each as
    "line: error: message  [code]"."""
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context"]
        + ["--python-executable", python, "--cache-dir", str(cache), str(program)],
        capture_output=True,
        text=True,
        env=env,
        cwd=program.parent,
    )
    assert r.returncode in (0, 1), r.stdout + r.stderr
    # One error a line: "file:line: error: message  [code]", the file relative to the
    # program's folder; import lines keep their line numbers in both trees.
    prefix = f"{program.name}:"
    return {line.removeprefix(prefix) for line in r.stdout.splitlines() if line.startswith(prefix) and ": error:" in line}


def _mypy_check(sdk: Sdk, tmp: Path) -> None:
    failures = []
    env = {**os.environ}
    if sdk.package_path is not None:
        env["MYPYPATH"] = sdk.package_path
    for program in sdk.programs:
        if program.needs and importlib.util.find_spec(program.needs) is None:
            continue
        sdk_errors = _mypy(sdk.python, sdk.root / program.path, tmp / "cache-sdk", env)
        our_errors = _mypy(sdk.python, sdk.ours / program.path, tmp / "cache-ours", env)
        # The same error against our names (the module in a message differs).
        normalize = lambda errors: {  # noqa: E731
            re.sub(r"mcp_oauth_client(\.\w+)*|mcp\.(client|shared)\.auth(\.\w+)*", "<auth>", e) for e in errors
        }
        new = sorted(normalize(our_errors) - normalize(sdk_errors))
        if new and program.path in MYPY_KNOWN_GAPS:
            print(f"\n{program.path}: known gap ({MYPY_KNOWN_GAPS[program.path]}):\n  " + "\n  ".join(new))
        elif new:
            failures.append(f"{program.path}:\n  " + "\n  ".join(new))
    assert not failures, "mypy --strict finds errors with this package that it does not with the SDK:\n" + "\n".join(
        failures
    )


@pytest.mark.timeout(900)
def test_mypy_strict_finds_nothing_new_in_the_sdk_2_programs(sdk2: Sdk, tmp_path: Path) -> None:
    _mypy_check(sdk2, tmp_path)


@pytest.mark.timeout(900)
def test_mypy_strict_finds_nothing_new_in_the_sdk_1_programs(sdk1: Sdk, tmp_path: Path) -> None:
    _mypy_check(sdk1, tmp_path)
