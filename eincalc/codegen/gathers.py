"""Integer gathers in code: which products and sums use a gather matrix without forming it.

A gather matrix ``W[o, i] = [i = rows[o]]`` (:class:`eincalc.expr.Window` with ``rows``)
is the expression of ``x[labels]`` and ``logp[arange(n), labels]``. Its transpose is a
scatter: the reverse rule of a gather is a product ``Σ_o W[o, i] ȳ[o, …]`` with ``i`` an
output index, and the cotangent of ``logp[arange(n), labels]`` holds a term ``-W``. Both
are written without the dense one-hot matrix:

* a *scatter product* (:func:`scatter_of`) is the product of the other factors with ``o``
  in place of ``i``, written into zeros at the rows: ``out[rows] = core`` when the rows
  are distinct, ``numpy.add.at(out, rows, core)`` when they repeat;
* a *gather product* (:func:`windows_to_lower`) indexes the one operand that carries
  ``i``: ``X[[0, 2]]``, ``x[1:3]``, ``logp[arange(n), labels]``;
* an *added gather* (:func:`added_gather`), ``c · W`` as a term of a sum, is
  ``out[arange(m), rows] += c`` on the sum (each row of W has one entry).

:func:`lowered_indices` gives the index pattern the code contracts, for ``ec.cost``. How
each library spells the three forms is the printers' business: the hooks ``index_list``,
``paired_gather``, ``scatter_rows`` and ``add_at_rows`` of
:class:`~eincalc.codegen.numpy_gathers.GatherPrinting` (NumPy's), overridden per backend (JAX's
``.at[rows].add``, torch's ``index_add_``, Dask's ``vindex``).
"""

from __future__ import annotations

from dataclasses import dataclass

from eincalc._types import IndexTuple
from eincalc.expr import Const, Delta, Einsum, Node, Window


@dataclass(frozen=True)
class GatherTerm:
    """``coef · W`` kept out of a sum's terms: the sum adds ``coef`` at W's entries."""

    window: Window
    coef: float


def windows_to_lower(node: Einsum) -> list[tuple[int, int]]:
    """(window position, operand position) pairs where the selection becomes a subscript.

    A window ``W[o, i]`` qualifies when ``i`` is summed and occurs once in exactly one other
    operand, an array that does not carry ``o``; each array axis takes one window.
    """
    found: list[tuple[int, int]] = []
    for w, (op, idx) in enumerate(zip(node.operands, node.in_idx)):
        if not isinstance(op, Window) or len(set(idx)) != 2:
            continue
        o, i = idx
        if i in node.out_idx:
            continue
        holders = [k for k, other in enumerate(node.in_idx) if k != w and i in other]
        if len(holders) != 1:
            continue
        (x,) = holders
        target = node.operands[x]
        if isinstance(target, (Delta, Const, Window)) or node.in_idx[x].count(i) != 1:
            continue
        if o in node.in_idx[x] and not _paired_gather(op, node.in_idx[x], o, i):
            continue
        found.append((w, x))
    return found


def _paired_gather(window: Window, idx: IndexTuple, o: str, i: str) -> bool:
    """``logp[arange(n), labels]``: a gather whose output index is the operand's neighbouring axis."""
    return window.rows is not None and idx.count(o) == 1 and abs(idx.index(o) - idx.index(i)) == 1


def scatter_of(node: Einsum) -> int | None:
    """The position of a gather matrix ``W[o, i]`` that makes ``node`` a scatter along ``i``.

    ``i`` is an output index no other factor carries, ``o`` is summed and carried by
    another factor; products with unit tensors keep their own lowering.
    """
    if any(isinstance(op, Delta) for op in node.operands):
        return None
    for w, (op, idx) in enumerate(zip(node.operands, node.in_idx)):
        if not isinstance(op, Window) or op.rows is None or len(set(idx)) != 2:
            continue
        o, i = idx
        if node.out_idx.count(i) != 1 or o in node.out_idx:
            continue
        if sum(x.count(i) for x in node.in_idx) != 1:
            continue
        if any(o in x for k, x in enumerate(node.in_idx) if k != w):
            return w
    return None


def added_gather(node: Node) -> GatherTerm | None:
    """``c · W`` for a gather matrix ``W`` (the node itself, or a one-factor product of it)."""
    if isinstance(node, Window) and node.rows is not None:
        return GatherTerm(node, 1.0)
    if (
        isinstance(node, Einsum)
        and len(node.operands) == 1
        and isinstance(node.operands[0], Window)
        and node.operands[0].rows is not None
        and node.in_idx[0] == node.out_idx
    ):
        return GatherTerm(node.operands[0], node.coef)
    return None


def without_window(
    in_idx: tuple[IndexTuple, ...], out_idx: IndexTuple, w: int
) -> tuple[tuple[IndexTuple, ...], IndexTuple]:
    """The product once the window at ``w`` (``W[o, i]``) is applied as indexing: ``i`` becomes ``o``."""
    o, i = in_idx[w]
    rest = tuple(tuple(o if j == i else j for j in idx) for k, idx in enumerate(in_idx) if k != w)
    return rest, tuple(o if j == i else j for j in out_idx)


def lowered_indices(node: Einsum) -> tuple[list[Node], tuple[IndexTuple, ...], IndexTuple]:
    """Operands and indices the code contracts once gathers and a scatter are applied as indexing.

    A paired gather (``logp[arange(n), labels]``) stays a factor here: its cost is that of
    the product it already is.
    """
    operands, in_idx, out_idx = list(node.operands), node.in_idx, node.out_idx
    applied = [w for w, x in windows_to_lower(node) if node.in_idx[w][0] not in node.in_idx[x]]
    scatter = scatter_of(node)
    for w in sorted([*applied, *([scatter] if scatter is not None else [])], reverse=True):
        in_idx, out_idx = without_window(in_idx, out_idx, w)
        del operands[w]
    return operands, in_idx, out_idx
