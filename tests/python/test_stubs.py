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
