"""A study's notebook runs the code of its example script (percent format, ``# %%`` cells), so neither drifts."""

from __future__ import annotations

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = pathlib.Path(__file__).parent.parent
STUDIES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.read_text().startswith("# %%"))


def _code_cells(script: pathlib.Path) -> list[str]:
    cells, current, is_code = [], [], False
    for line in [*script.read_text().splitlines(), "# %% end"]:
        if line.startswith("# %%"):
            if is_code and "\n".join(current).strip():
                cells.append("\n".join(current).strip("\n"))
            current, is_code = [], "[markdown]" not in line
        else:
            current.append(line)
    return cells


@pytest.mark.parametrize("script", STUDIES, ids=[p.stem for p in STUDIES])
def test_notebook_has_the_scripts_code(script):
    book = nbformat.read(ROOT / "notebooks" / f"{script.stem}.ipynb", as_version=4)
    code = [c.source for c in book.cells if c.cell_type == "code"]
    assert code[0].startswith("%matplotlib inline\n")  # figures render in the notebook, not through Agg
    code[0] = code[0].removeprefix("%matplotlib inline\n")
    assert code == _code_cells(script)
