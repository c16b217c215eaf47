"""Symmetric products computed as such: ``Mᵀ D M`` with ``D ≥ 0`` as ``(M √D)ᵀ (M √D)``.

The Hessian of logistic regression is ``Xᵀ diag(s(1−s)) X``. Written as it stands it is
a general matrix product (``X.T @ (X * w[:, None])``, 2nd² flops); with the weights
proved non-negative (:mod:`eincalc.signs`) it is ``Xs.T @ Xs`` for ``Xs = X * √w``,
which NumPy hands to BLAS as a symmetric rank-k update (``syrk``, half the flops), as a
hand-written Newton step does. Values are unchanged up to rounding.
"""

from __future__ import annotations

from eincalc import algebra as alg
from eincalc.codegen.sharing import with_children
from eincalc.expr import Einsum, Node
from eincalc.graph import rewrite
from eincalc.signs import is_nonnegative


def symmetric_products(roots: list[Node]) -> list[Node]:
    """``roots`` with every ``Mᵀ D M`` (``D ≥ 0`` over the summed axis) as a Gram product."""

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        node = with_children(node, children)
        return _as_gram(node) if isinstance(node, Einsum) else node

    return rewrite(roots, rule)


def _as_gram(node: Einsum) -> Node:
    found = _gram_pair(node)
    if found is None:
        return node
    i, j, summed = found
    m = node.operands[i]
    ops = [op for k, op in enumerate(node.operands) if k not in (i, j)]
    idx = [ix for k, ix in enumerate(node.in_idx) if k not in (i, j)]
    # the sign is proved on the flattened product (y ⊙ y is a square only once y is
    # seen twice); the weights are computed from the operands as they are (shared ones)
    if not is_nonnegative(alg.einsum(ops, idx, (summed,))):
        return node
    w = (
        ops[0]
        if len(ops) == 1 and idx[0] == (summed,)
        else Einsum.make(tuple(ops), tuple(idx), (summed,), 1.0, (m.dims[node.in_idx[i].index(summed)],))
    )
    scaled = Einsum.make((m, alg.elementwise("sqrt", w)), (node.in_idx[i], (summed,)), node.in_idx[i], 1.0, m.dims)
    return Einsum.make((scaled, scaled), (node.in_idx[i], node.in_idx[j]), node.out_idx, node.coef, node.dims)


def _gram_pair(node: Einsum) -> tuple[int, int, str] | None:
    """Positions of ``M`` twice as ``M[c, a] M[c, b]`` (or ``M[a, c] M[b, c]``) and the summed ``c``.

    Every other factor must live on ``c`` alone (the weights), some on ``c`` itself, and the
    output is ``(a, b)``.
    """
    if len(node.out_idx) != 2 or len(node.operands) < 3:
        return None
    for i, (op, p) in enumerate(zip(node.operands, node.in_idx)):
        if op.ndim != 2:
            continue
        for j in range(i + 1, len(node.operands)):
            q = node.in_idx[j]
            if node.operands[j] is not op:
                continue
            for at in (0, 1):
                c, a, b = p[at], p[1 - at], q[1 - at]
                if q[at] != c or c in node.out_idx or a == b or {a, b} != set(node.out_idx):
                    continue
                rest = [idx for k, idx in enumerate(node.in_idx) if k not in (i, j)]
                # weights on c alone; scalars only (mean's 1/m) leave a plain MᵀM, which
                # NumPy already hands to syrk
                if all(set(idx) <= {c} for idx in rest) and any(c in idx for idx in rest):
                    return i, j, c
    return None
