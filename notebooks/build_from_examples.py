"""Rebuild the study notebooks from their example scripts: ``python notebooks/build_from_examples.py``.

A study is a script in examples/ written in percent format (``# %%`` code cells, ``# %% [markdown]``
cells of ``# `` comments). Its notebook gets the same cells, ``%matplotlib inline`` first, and no
outputs; tests/test_study_notebooks.py checks that the two agree.
"""

import pathlib

import nbformat

ROOT = pathlib.Path(__file__).parent.parent


def notebook_of(script: pathlib.Path) -> nbformat.NotebookNode:
    """The notebook of a percent-format script."""
    cells, kind, lines = [], None, []
    for line in [*script.read_text().splitlines(), "# %% end"]:
        if line.startswith("# %%"):
            body = "\n".join(lines).strip("\n")
            if kind == "markdown":
                cells.append(
                    nbformat.v4.new_markdown_cell(
                        "\n".join(s[2:] if s.startswith("# ") else s.lstrip("#") for s in body.splitlines())
                    )
                )
            elif kind == "code" and body:
                first = not any(c.cell_type == "code" for c in cells)
                cells.append(nbformat.v4.new_code_cell(("%matplotlib inline\n" if first else "") + body))
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    for number, cell in enumerate(cells):
        cell.id = f"{script.stem}-{number}"  # stable ids: rebuilding an unchanged script changes nothing
    book = nbformat.v4.new_notebook(cells=cells)
    book.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    return book


if __name__ == "__main__":
    for script in sorted((ROOT / "examples").glob("*.py")):
        if script.read_text().startswith("# %%"):
            nbformat.write(notebook_of(script), ROOT / "notebooks" / f"{script.stem}.ipynb")
            print(f"notebooks/{script.stem}.ipynb")
