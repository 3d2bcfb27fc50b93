"""The stubs of the native module match it (mypy.stubtest), and the package type-checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

PACKAGE = Path(__file__).resolve().parents[2] / "bindings" / "python" / "python" / "mcp_oauth_client"


@pytest.mark.timeout(300)
def test_stubtest() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "mcp_oauth_client"], capture_output=True, text=True, cwd=PACKAGE.parent.parent
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.timeout(300)
def test_package_type_checks_strictly() -> None:
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", str(PACKAGE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


CASES = Path(__file__).resolve().parent / "typing_cases"


@pytest.mark.timeout(300)
def test_a_program_written_for_the_sdk_type_checks_strictly() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(CASES / "sdk_style_program.py")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.timeout(300)
def test_mistakes_are_caught_not_typed_as_any() -> None:
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", str(CASES / "typos.py")], capture_output=True, text=True)
    assert r.returncode == 1
    assert '"OAuthClientProvider" has no attribute "contxt"' in r.stdout, r.stdout
    assert '"current_tokens" defined in "OAuthContext" is read-only' in r.stdout, r.stdout
