"""The code base stays ruff clean: lint rules and formatting, as the README's test command runs them.

Skipped where ruff is not installed (it is a test extra).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["eincalc", "tests", "bench", "examples"]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("ruff") is None:
        pytest.importorskip("ruff")
        command = [sys.executable, "-m", "ruff"]
    else:
        command = ["ruff"]
    return subprocess.run([*command, *args, *CHECKED], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check_is_clean():
    result = _ruff("check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
