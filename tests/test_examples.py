"""Every script in examples/ runs to completion (a smoke test; the scripts assert their own claims).

A study (a percent-format script, ``# %%`` cells) is executed as its notebook by
tests/test_notebooks.py, whose cells tests/test_study_notebooks.py keeps equal to the
script's; so here one study runs as a script, for what only a script does: save its figures
(to ``EINCALC_FIGURES``, a temporary folder, instead of next to itself). Studies run short
(``EINCALC_QUICK=1``: fewer epochs, smaller sweeps).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.read_text().startswith("# %%"))
OPTIONAL = ("dask", "distributed", "torch", "jax")
"""Peers a script may import at top level: without them the script is skipped, not failed."""


def _optional_imports(script: pathlib.Path) -> list[str]:
    text = script.read_text()
    return [m for m in OPTIONAL if re.search(rf"^(import|from) {m}\b", text, re.MULTILINE)]


def _run(script: pathlib.Path, figures: pathlib.Path) -> None:
    env = {**os.environ, "EINCALC_FIGURES": str(figures), "EINCALC_QUICK": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    for module in _optional_imports(script):
        pytest.importorskip(module)
    _run(script, tmp_path)


def test_study_script_saves_its_figures(tmp_path):
    _run(ROOT / "examples" / "einstein_calculus.py", tmp_path)
    assert (tmp_path / "einstein_calculus.png").stat().st_size > 10_000
