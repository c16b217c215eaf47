"""Reverse mode: cotangents (pullbacks) from the output to the variable, one rule per node kind.

Seed: ``f̄ = δ`` over ``f.dims`` (the scalar 1 for a scalar ``f``). Each rule receives a
node ``C``, its accumulated cotangent ``C̄`` (dims ``f.dims + C.dims``) and yields the
contributions to its children; contributions to one child add up (the same variable used
several times). Nodes that do not depend on ``wrt`` are never visited. With ``s4`` the
output's index set:

* product ``C = A *(s1,s2,s3) B``: ``Ā += C̄ *(s4s3, s2, s4s1) B``  (:func:`cotangent_einsum`)
* sum: ``Ā += C̄`` for each term                                       (:func:`cotangent_add`)
* entry-wise ``C = f(A, …)``: ``Āₖ += C̄ *(s4s1, s1, s4s1) ∂f/∂Aₖ``         (:func:`cotangent_elementwise`)
* general ``C = g(A)`` with Jacobian ``J[s3, s1]``: ``Ā += C̄ *(s4s3, s3s1, s4s1) J``
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import singledispatch

from eincalc import algebra as alg
from eincalc._types import IndexTuple
from eincalc.diff.common import contract_with, depends_on, fresh, hadamard_lead, transpose_einsum
from eincalc.expr import Add, Einsum, Elementwise, Node, Unary, Var
from eincalc.functions import get_elementwise, get_unary, not_differentiable
from eincalc.graph import topo_order

Contributions = Iterator[tuple[int, Node]]


@singledispatch
def cotangent(node: Node, cot: Node, lead: IndexTuple) -> Contributions:
    """Yield ``(child position, contribution)`` pairs for ``node`` given its cotangent."""
    raise not_differentiable(f"{type(node).__name__} nodes", "reverse")


@cotangent.register
def cotangent_einsum(node: Einsum, cot: Node, lead: IndexTuple) -> Contributions:
    """``Āₖ = coef · C̄ *(s4 s0, s_j…, s4 sₖ) Π_{j≠k} A_j``."""
    for k in range(len(node.operands)):
        yield k, transpose_einsum(node, k, cot, lead)


@cotangent.register
def cotangent_add(node: Add, cot: Node, lead: IndexTuple) -> Contributions:
    """``Āₖ = C̄`` for every term."""
    for k in range(len(node.terms)):
        yield k, cot


@cotangent.register
def cotangent_elementwise(node: Elementwise, cot: Node, lead: IndexTuple) -> Contributions:
    """``Āₖ = C̄ *(s4s1, s1, s4s1) ∂f/∂Aₖ`` for each argument ``Aₖ``."""
    partials = get_elementwise(node.fn).partials(node.args, node.param)
    for k, d in enumerate(partials):
        if not alg.is_zero(d):
            yield k, hadamard_lead(d, cot, lead_first=True)


@cotangent.register
def cotangent_unary(node: Unary, cot: Node, lead: IndexTuple) -> Contributions:
    """``Ā = C̄ *(s4s3, s3s1, s4s1) J`` with ``J = ∂g(A)/∂A`` from the registry."""
    jac = get_unary(node.fn).jacobian(node)
    yield 0, contract_with(jac, cot, len(lead), node.arg.dims, lead_first=True)


def reverse_jacobian(f: Node, wrt: Var) -> Node:
    """∂f/∂wrt by reverse accumulation: dims ``f.dims + wrt.dims``."""
    dep = depends_on(f, wrt)
    if id(f) not in dep:
        return alg.zeros(f.dims + wrt.dims)
    lead = fresh(f.ndim)
    seed = alg.delta(f.dims)
    pending: dict[int, list[Node]] = {id(f): [seed]}
    for node in reversed(topo_order(f)):
        if id(node) not in dep:
            continue
        contributions = pending.pop(id(node), [])
        if not contributions:  # every path to it passed a zero derivative (e.g. sign')
            continue
        cot = alg.add(contributions)
        if node is wrt:
            return cot
        if alg.is_zero(cot):
            continue
        for k, contribution in cotangent(node, cot, lead):
            child = node.children[k]
            if id(child) in dep:
                pending.setdefault(id(child), []).append(contribution)
    return alg.zeros(f.dims + wrt.dims)
