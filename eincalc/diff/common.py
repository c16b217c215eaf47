"""Pieces shared by the differentiation modes: dependence, index names, transposed einsums.

The one non-obvious helper is :func:`transpose_einsum`, the cotangent of one operand of
a product: ``C = coef · A₁ *(s₁,…,sₙ → s₀) … `` gives
``Āₖ[s4, sₖ] = coef · Σ C̄[s4, s₀] Πⱼ≠ₖ Aⱼ[sⱼ]``. Two awkward cases are handled here, once:

* an index of ``sₖ`` that no other factor carries (``'ij,j->j'`` differentiated w.r.t.
  the first operand): a ones factor supplies its range (``numpy.einsum`` rejects
  ``'j,j->ij'``);
* a repeated index in ``sₖ`` (a trace ``'ii->'``): the cotangent is non-zero only on the
  diagonal, so the repeat becomes a fresh index tied to the first by a δ.
"""

from __future__ import annotations

from collections.abc import Sequence

from eincalc import algebra as alg
from eincalc._types import Dims, Index, IndexTuple
from eincalc.expr import Add, Delta, Einsum, Node, Var
from eincalc.graph import topo_order


def _has_delta(node: Node) -> bool:
    return isinstance(node, Delta) or isinstance(node, Einsum) and any(isinstance(op, Delta) for op in node.operands)


def product(operands: Sequence[Node], in_idx: Sequence[IndexTuple], out_idx: IndexTuple, coef: float = 1.0) -> Node:
    """An einsum that first distributes over sum operands containing a unit tensor.

    A Jacobian like softmax's, ``δ ⊙ S − S ⊗ S``, is a sum; multiplied as a whole it
    would be materialised (a (b·c)² tensor for a batch), while term by term its δ meets
    the other factors and is renamed away.
    """
    for k, op in enumerate(operands):
        if isinstance(op, Add) and any(_has_delta(t) for t in op.terms):
            terms = []
            for t in op.terms:
                ops = list(operands)
                ops[k] = t
                terms.append(product(ops, in_idx, out_idx, coef))
            return alg.add(terms)
    return alg.einsum(operands, in_idx, out_idx, coef)


def depends_on(roots: Node | Sequence[Node], wrt: Var) -> set[int]:
    """Ids of the nodes (reachable from ``roots``) whose value depends on ``wrt``."""
    dep: set[int] = set()
    for node in topo_order(roots):
        if node is wrt or any(id(c) in dep for c in node.children):
            dep.add(id(node))
    return dep


def fresh(n: int) -> IndexTuple:
    """``n`` fresh index names."""
    return tuple(alg.fresh_index() for _ in range(n))


def transpose_einsum(node: Einsum, k: int, cotangent: Node, lead: IndexTuple) -> Node:
    """The contribution of ``cotangent`` (dims ``lead dims + node.dims``) to operand ``k``.

    ``lead`` are fresh names for the cotangent's leading (output-of-f) axes. The result
    has dims ``lead dims + node.operands[k].dims``.
    """
    target_op = node.operands[k]
    s_k = node.in_idx[k]
    ops: list[Node] = [cotangent]
    ins: list[IndexTuple] = [lead + node.out_idx]
    for j, (op, idx) in enumerate(zip(node.operands, node.in_idx)):
        if j != k:
            ops.append(op)
            ins.append(idx)
    carried = {i for idx in ins for i in idx}
    out: list[Index] = []
    seen: set[Index] = set()
    for i, dim in zip(s_k, target_op.dims):
        if i in seen:  # repeated index: only the diagonal receives a cotangent
            r = alg.fresh_index()
            ops.append(alg.delta((dim,)))
            ins.append((i, r))
            out.append(r)
            continue
        seen.add(i)
        if i not in carried:
            ops.append(alg.const(1.0, (dim,)))
            ins.append((i,))
            carried.add(i)
        out.append(i)
    return product(ops, ins, lead + tuple(out), node.coef)


def hadamard_lead(factor: Node, tangent: Node, lead_first: bool) -> Node:
    """``tangent ⊙ factor`` broadcasting ``factor`` over the tangent's extra axes.

    With ``lead_first`` the extra axes come first (a cotangent ``[s4, s1]``), else last
    (a tangent ``[s1, t]``).
    """
    n_extra = tangent.ndim - factor.ndim
    s1 = alg.symbols(factor.ndim)
    extra = alg.symbols(n_extra, factor.ndim)
    idx = extra + s1 if lead_first else s1 + extra
    return product([tangent, factor], [idx, s1], idx)


def contract_with(jac: Node, tangent: Node, n_lead: int, arg_dims: Dims, lead_first: bool) -> Node:
    """Chain a Jacobian ``jac`` (dims out + arg) with a tangent or cotangent.

    Forward (``lead_first=False``): ``jac[o, a] · tangent[a, t] → [o, t]``.
    Reverse (``lead_first=True``): ``cot[s4, o] · jac[o, a] → [s4, a]``.
    """
    n_out = jac.ndim - len(arg_dims)
    o = alg.symbols(n_out)
    a = alg.symbols(len(arg_dims), n_out)
    e = alg.symbols(n_lead, n_out + len(arg_dims))
    if lead_first:
        return product([tangent, jac], [e + o, o + a], e + a)
    return product([jac, tangent], [o + a, a + e], o + e)
