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

import threading
from collections import OrderedDict
from collections.abc import Iterator
from functools import singledispatch

from eincalc import algebra as alg
from eincalc._types import IndexTuple
from eincalc.diff.common import contract_with, fresh, hadamard_lead, transpose_einsum
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
    entry = get_unary(node.fn)
    if entry.cotangent is not None:  # a linear map: its own rule, no Jacobian
        yield 0, entry.cotangent(node, cot, len(lead))
        return
    yield 0, contract_with(entry.jacobian(node), cot, len(lead), node.arg.dims, lead_first=True)


class _Sweep:
    """The reverse sweep of one output ``f``, advanced lazily and kept for every variable.

    The cotangent of a node ``n`` does not depend on which variable is asked for: every
    parent of a node that depends on ``x`` depends on ``x`` too, so ``n̄`` is the sum over
    *all* its parents' contributions. One sweep therefore serves the gradients w.r.t.
    every parameter: asking for them one by one costs what a single backward pass costs,
    not one pass each (which made the gradients of a depth-L network cost O(L³)).
    """

    def __init__(self, f: Node, seed: Node | None = None, n_lead: int | None = None) -> None:
        """The sweep seeded with ``seed`` (dims ``n_lead`` lead dims + ``f.dims``; default the unit tensor)."""
        self.f = f
        n_lead = f.ndim if n_lead is None else n_lead
        seed = alg.delta(f.dims) if seed is None else seed
        self.lead = fresh(n_lead)
        self.lead_dims = seed.dims[:n_lead]
        self.order = topo_order(f)
        self.position = {id(n): k for k, n in enumerate(self.order)}
        self.parents: dict[int, list[Node]] = {}
        for node in self.order:
            for child in dict.fromkeys(node.children):
                self.parents.setdefault(id(child), []).append(node)
        self.cots: dict[int, Node] = {id(f): seed}
        self.contributions: dict[int, list[tuple[int, Node]]] = {}

    def cotangent_of(self, wrt: Var) -> Node:
        if id(wrt) not in self.position:
            return alg.zeros(self.lead_dims + wrt.dims)
        # The nodes on paths from f to wrt whose cotangent is still unknown: walk up from
        # wrt, stopping where it is known (then so are all of that node's ancestors').
        todo: dict[int, Node] = {}
        stack = [wrt]
        while stack:
            node = stack.pop()
            if id(node) in self.cots or id(node) in todo:
                continue
            todo[id(node)] = node
            stack.extend(self.parents.get(id(node), ()))
        for node in sorted(todo.values(), key=lambda n: -self.position[id(n)]):  # parents first
            self.cots[id(node)] = self._sum_from_parents(node)
        return self.cots[id(wrt)]

    def _sum_from_parents(self, node: Node) -> Node:
        terms = []
        for parent in self.parents.get(id(node), ()):
            for k, contribution in self._contributions(parent):
                if parent.children[k] is node:
                    terms.append(contribution)
        # no terms: every path to it passed a zero derivative (e.g. sign')
        return alg.add(terms) if terms else alg.zeros(self.lead_dims + node.dims)

    def _contributions(self, node: Node) -> list[tuple[int, Node]]:
        found = self.contributions.get(id(node))
        if found is None:
            cot = self.cots[id(node)]
            found = [] if alg.is_zero(cot) else list(cotangent(node, cot, self.lead))
            self.contributions[id(node)] = found
        return found


MAX_SWEEPS = 16
"""Reverse sweeps kept (least recently used dropped): the functions differentiated last."""

_SWEEPS: OrderedDict[int, _Sweep] = OrderedDict()
_SWEEPS_LOCK = threading.Lock()


def reverse_jacobian(f: Node, wrt: Var) -> Node:
    """∂f/∂wrt by reverse accumulation: dims ``f.dims + wrt.dims``.

    The sweep over ``f`` is kept (:data:`MAX_SWEEPS`), so the gradients of one function
    w.r.t. several variables share their cotangents.
    """
    with _SWEEPS_LOCK:
        sweep = _SWEEPS.get(id(f))
        if sweep is None or sweep.f is not f:
            sweep = _SWEEPS[id(f)] = _Sweep(f)
        _SWEEPS.move_to_end(id(f))
        while len(_SWEEPS) > MAX_SWEEPS:
            _SWEEPS.popitem(last=False)
        return sweep.cotangent_of(wrt)


def pull_cotangent(f: Node, wrt: Var, seed: Node, n_lead: int) -> Node:
    """The cotangent of ``wrt`` when ``f`` has cotangent ``seed`` (dims ``n_lead`` lead dims + ``f.dims``).

    With the unit tensor as seed it is the Jacobian; with a cotangent ``u`` (``n_lead = 0``)
    it is the vector-Jacobian product ``uᵀ J``, at the cost of a few evaluations of ``f``.
    """
    return _Sweep(f, seed, n_lead).cotangent_of(wrt)
