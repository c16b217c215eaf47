"""Every script in examples/ runs to completion (a smoke test; the scripts assert their own claims).

Studies run short (``EINCALC_QUICK=1``: fewer epochs, smaller sweeps) and save their figures
to a temporary folder (``EINCALC_FIGURES``), not next to themselves.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = {**os.environ, "EINCALC_FIGURES": str(tmp_path), "EINCALC_QUICK": "1"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
