"""The DAG a program computes: its roots before and after the sizes are known.

:func:`program_roots` simplifies and compresses the outputs (what ``ec.cost`` prices
too); :func:`sized_roots` rewrites them for one size signature, keeping values (up to
rounding): sums equal up to a scale factor are shared; a product is distributed over a
sum (``(T - U @ V.T) @ V`` as ``T @ V - U @ (V.T @ V)``), or a common factor taken out
of a sum (:mod:`eincalc.codegen.factoring`), only where the cost model makes it a clear
win; wide products become chains over shared sub-products
(:mod:`eincalc.codegen.sharing`); Gram products and nested sums come last.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from eincalc import algebra as alg
from eincalc._types import Dim
from eincalc.codegen.factoring import factor_sums
from eincalc.codegen.gram import symmetric_products
from eincalc.codegen.sharing import share_subproducts
from eincalc.codegen.sums import nest_sums
from eincalc.costmodel import node_cost
from eincalc.expr import Add, Const, Delta, Einsum, Node
from eincalc.graph import rewrite, topo_order
from eincalc.rewrite import rebuild, simplify
from eincalc.structure import Compressed, CompressedSum, compress

Structure = Compressed | CompressedSum


def program_roots(outputs: Sequence[Node], dense: bool = False) -> tuple[list[Node], list[Structure | None]]:
    """The nodes a program computes for ``outputs``, and the compression of each output.

    Outputs are simplified (stable forms: softplus for ``log(1 + exp(z))``, logsumexp, …:
    same values, no overflow); a compressed output (δ ⊗ core) computes only its core
    unless ``dense``; sums equal up to a scale factor are shared.
    """
    compressed: list[Structure | None] = []
    roots: list[Node] = []
    for given in outputs:
        o = simplify(given)
        c = None if dense else compress(o)
        if c is not None and c.is_compressed:
            compressed.append(c)
            roots.extend(c.nodes)  # a δ ⊗ core's core; a sum's cores, factors and weights
        else:
            compressed.append(None)
            roots.append(o)
    return _share_scaled_sums(roots), compressed


def root_count(c: Structure | None) -> int:
    """How many roots of the program one output takes."""
    return 1 if c is None else len(c.nodes)


def sized_roots(roots: list[Node], sizes: Mapping[Dim, int]) -> list[Node]:
    """``roots`` rewritten for one size signature: the DAG the generated code computes.

    Products are distributed over sums, or common factors taken out of sums, where the
    cost model makes that a clear win for these sizes; then wide products become chains
    over shared sub-products (:mod:`eincalc.codegen.sharing`). Values are unchanged.
    """
    cost = _Estimate(sizes)
    roots = _distribute_products(roots, cost)
    # Then the mirror image, X @ A.T + X @ A as X @ (A.T + A). With the same costs and
    # a clear win required both ways, it never undoes a distribution, but it may
    # improve on one: (X @ A + X @ B) @ w → X @ (A @ w) + X @ (B @ w) → X @ (A @ w + B @ w).
    roots = factor_sums(roots, cost)
    # Then, as it builds pairwise products the algebra would flatten again: wide
    # products become chains over sub-products shared by all outputs (backprop's signals).
    roots = share_subproducts(roots, sizes)
    # Then Mᵀ D M with D ≥ 0 as a Gram product of M √D (BLAS syrk, half the flops).
    roots = symmetric_products(roots)
    # Last: a sum holding another sum's terms adds to it (a residual network's h + f).
    return nest_sums(roots)


def _share_scaled_sums(roots: list[Node]) -> list[Node]:
    """Rewrite a sum that is ``c ·`` another sum of the DAG as ``c ·`` that sum.

    ``2.0 * T - 2.0 * (U @ V.T)`` next to ``T - U @ V.T`` (a gradient next to its loss)
    becomes ``2.0 * (T - U @ V.T)``: the smart constructors then move the 2.0 into the
    consuming product, onto its smallest array, and the n×m sum is computed once. Only
    exact rescalings (the same interned node) are shared, so values do not change
    beyond rounding of the scale factor.
    """
    order = topo_order(roots)
    present = {id(n) for n in order}

    def bases(s: Add) -> frozenset[int]:
        return frozenset(id(alg.split_coef(t)[1]) for t in s.terms)

    # A rescaled sum has the same terms up to their coefficients: only sums whose term
    # set another sum shares can have a partner, and only those are tried.
    seen = Counter(bases(n) for n in order if isinstance(n, Add))

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        new = rebuild(node, children)
        if isinstance(new, Add):
            key = bases(new)
            if new is not node:
                seen[key] += 1
            if seen[key] > 1:
                c, _ = alg.split_coef(new.terms[0])
                for factor in (c, -c) if c != 0.0 else ():
                    if factor == 1.0:
                        continue
                    candidate = alg.add([alg.scale(t, 1.0 / factor) for t in new.terms])
                    if id(candidate) in present:
                        return alg.scale(candidate, factor)
        present.add(id(new))
        return new

    return rewrite(roots, rule)


ENTRY_COST = 10
"""Cost of one entry of a new array, in flops (allocating, writing and reading it again).

BLAS flops are much cheaper than fresh memory (about 2 s per GiB here), so this is low;
it only has to rank ``(T - U @ V.T) @ V`` (an n×m temporary) above ``T @ V - U @ (V.T @ V)``.
"""


class _Estimate:
    """Flops of computing a node from its children plus ``ENTRY_COST`` per new entry, for ``sizes``.

    A transpose or diagonal of one array is a view (``A.T``): free. Memoised per node
    (the node is kept, so its id stays its own): the rewrites price the same terms often.
    """

    def __init__(self, sizes: Mapping[Dim, int]) -> None:
        self.sizes = dict(sizes)
        self._memo: dict[int, tuple[Node, float]] = {}

    def __call__(self, node: Node) -> float:
        hit = self._memo.get(id(node))
        if hit is not None:
            return hit[1]
        if (
            isinstance(node, Einsum)
            and len(node.operands) == 1
            and node.coef == 1.0
            and not isinstance(node.operands[0], (Delta, Const))
            and set(node.in_idx[0]) == set(node.out_idx)
        ):
            value = 0.0
        else:
            c = node_cost(node, self.sizes)
            value = float(c.flops + ENTRY_COST * c.size)
        self._memo[id(node)] = (node, value)
        return value


def _distribute_products(roots: list[Node], cost: _Estimate) -> list[Node]:
    """Distribute products over sums they alone use, where that is cheaper for the sizes of ``cost``.

    ``-2.0 * ((T - U @ V.T) @ V)`` becomes ``-2.0 * (T @ V) + 2.0 * (U @ (V.T @ V))`` for
    n, m ≫ k: the n×m sum and its n×m product term are never formed. A sum some other
    node (or an output) needs is left alone: it is computed anyway. The decision uses
    ``cost`` (:func:`eincalc.costmodel.node_cost` with ``ENTRY_COST`` per entry of each
    new array), so it can differ between size signatures (all dims 1000: no change).
    """
    order = topo_order(roots)
    uses: dict[int, int] = {}
    for node in order:
        for child in node.children:
            uses[id(child)] = uses.get(id(child), 0) + 1
    root_ids = {id(r) for r in roots}

    def alone(node: Node) -> bool:
        return uses.get(id(node), 0) == 1 and id(node) not in root_ids

    def distributed(node: Einsum, operands: Sequence[Node], k: int, terms: Sequence[Node]) -> list[Node]:
        ops = list(operands)
        return [alg.einsum([*ops[:k], t, *ops[k + 1 :]], node.in_idx, node.out_idx, node.coef) for t in terms]

    choice: dict[int, int] = {}
    for node in order:
        if not isinstance(node, Einsum) or any(isinstance(op, Delta) for op in node.operands):
            continue
        best = 0.0
        for k, s in enumerate(node.operands):
            if not isinstance(s, Add) or not alone(s):
                continue
            before = cost(node) + cost(s) + sum(cost(t) for t in s.terms if isinstance(t, Einsum) and alone(t))
            adding = (len(s.terms) - 1 + ENTRY_COST) * math.prod(cost.sizes[d] for d in node.dims)
            if adding >= 0.8 * before or before - adding <= best:
                continue  # the sum of the distributed terms alone loses: no need to build them
            after = sum(cost(t) for t in distributed(node, node.operands, k, s.terms)) + adding
            if after < 0.8 * before and before - after > best:  # a clear win only
                best, choice[id(node)] = before - after, k
    if not choice:
        return roots

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        k = choice.get(id(node))
        if k is None:
            return rebuild(node, children)
        assert isinstance(node, Einsum)
        s = children[k]
        terms = s.terms if isinstance(s, Add) else (s,)
        return alg.add(distributed(node, children, k, terms))

    return rewrite(roots, rule)
