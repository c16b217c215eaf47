"""Forward mode: tangents from the variable to the output, one rule per node kind.

Seed: ``ẋ = δ`` over ``x.dims``, so every input direction is carried at once as extra
trailing indices ``t``: ``Ċ`` has dims ``C.dims + x.dims``. Nodes that do not depend on
``x`` have a zero tangent and are skipped.

* product: ``Ċ = Σₖ A₁ … Ȧₖ … Aₙ`` with ``t`` carried along      (:func:`tangent_einsum`)
* sum: ``Ċ = Σ Ȧₖ``                                               (:func:`tangent_add`)
* entry-wise: ``Ċ[s1, t] = Σₖ ∂f/∂Aₖ[s1] Ȧₖ[s1, t]``               (:func:`tangent_elementwise`)
* general: ``Ċ[s3, t] = J[s3, s1] Ȧ[s1, t]``                        (:func:`tangent_unary`)
"""

from __future__ import annotations

from functools import singledispatch

from eincalc import algebra as alg
from eincalc.diff.common import contract_with, depends_on, fresh, hadamard_lead, product
from eincalc.expr import Add, Einsum, Elementwise, Node, Unary, Var
from eincalc.functions import get_elementwise, get_unary, not_differentiable
from eincalc.graph import topo_order


@singledispatch
def tangent(node: Node, tangents: list[Node | None], n_dir: int) -> Node:
    """The tangent of ``node`` from its children's tangents (None where independent)."""
    raise not_differentiable(f"{type(node).__name__} nodes", "forward")


@tangent.register
def tangent_einsum(node: Einsum, tangents: list[Node | None], n_dir: int) -> Node:
    """``Ċ[s0, t] = coef · Σₖ einsum(…, Ȧₖ[sₖ, t], …)``."""
    t = fresh(n_dir)
    terms = []
    for k, tk in enumerate(tangents):
        if tk is None:
            continue
        ops = list(node.operands)
        ins = list(node.in_idx)
        ops[k] = tk
        ins[k] = ins[k] + t
        terms.append(product(ops, ins, node.out_idx + t, node.coef))
    return alg.add(terms)


@tangent.register
def tangent_add(node: Add, tangents: list[Node | None], n_dir: int) -> Node:
    """``Ċ = Σ Ȧₖ``."""
    return alg.add([t for t in tangents if t is not None])


@tangent.register
def tangent_elementwise(node: Elementwise, tangents: list[Node | None], n_dir: int) -> Node:
    """``Ċ[s1, t] = Σₖ ∂f/∂Aₖ[s1] Ȧₖ[s1, t]`` (one term for a function of one argument)."""
    partials = get_elementwise(node.fn).partials(node.args, node.param)
    return alg.add([hadamard_lead(d, ta, lead_first=False) for d, ta in zip(partials, tangents) if ta is not None])


@tangent.register
def tangent_unary(node: Unary, tangents: list[Node | None], n_dir: int) -> Node:
    """``Ċ[s3, t] = J[s3, s1] Ȧ[s1, t]``."""
    (ta,) = tangents
    assert ta is not None
    entry = get_unary(node.fn)
    if entry.tangent is not None:  # a linear map: its own rule, no Jacobian
        return entry.tangent(node, ta, n_dir)
    jac = entry.jacobian(node)
    return contract_with(jac, ta, n_dir, node.arg.dims, lead_first=False)


def forward_jacobian(f: Node, wrt: Var) -> Node:
    """∂f/∂wrt by forward accumulation: dims ``f.dims + wrt.dims``."""
    return push_tangent(f, wrt, alg.delta(wrt.dims), wrt.ndim)


def push_tangent(f: Node, wrt: Var, seed: Node, n_dir: int) -> Node:
    """The tangent of ``f`` when ``wrt`` has tangent ``seed`` (dims ``wrt.dims`` + ``n_dir`` direction dims).

    With the unit tensor as seed it is the Jacobian; with a direction ``v`` (``n_dir = 0``)
    it is the Jacobian-vector product ``J v``, at the cost of a few evaluations of ``f``.
    """
    dep = depends_on(f, wrt)
    if id(f) not in dep:
        return alg.zeros(f.dims + seed.dims[wrt.ndim :])
    tangents: dict[int, Node] = {}
    for node in topo_order(f):
        if id(node) not in dep:
            continue
        if node is wrt:
            tangents[id(node)] = seed
            continue
        child_tangents = [tangents.get(id(c)) if id(c) in dep else None for c in node.children]
        tangents[id(node)] = tangent(node, child_tangents, n_dir)
    return tangents[id(f)]
