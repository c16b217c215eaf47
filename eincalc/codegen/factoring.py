"""Factoring sums of products: ``Σⱼ cⱼ · F*Gⱼ`` becomes ``F * (Σⱼ cⱼ · Gⱼ)`` where that is cheaper.

The mirror of the distribution of products over sums in :mod:`eincalc.codegen.rewriting`.
The gradient of ``trace(X @ A @ X.T)`` is ``X @ A.T + X @ A``: two m×n×n products and an
m×n sum, where ``X @ (A.T + A)`` needs one product and an n×n sum.

A *common factor* is an operand that is the same node in every term of a group *and*
plays the same role: its axes carry the same output positions and its summed axes the
same pattern (terms are canonical einsums, so their letters differ; only the positions
relative to the output are compared). ``A @ x + A.T @ x`` has the common factor ``x``
(``(A + A.T) @ x``), but ``X @ A + A @ X`` has none.

This module owns finding groups, building the factored form and the greedy choice; the
cost of a node is a callback of the caller (the real sizes live there), so the choice
can differ between size signatures. It builds nodes only through
:mod:`eincalc.algebra`, so the factored forms are canonical and values are unchanged up
to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from eincalc import algebra as alg
from eincalc._types import Dim, Index, IndexTuple
from eincalc.expr import Add, Const, Delta, Einsum, Node
from eincalc.graph import rewrite, topo_order
from eincalc.rewrite import rebuild

MAX_TERMS = 32
"""Sums with more terms are left alone (the candidates grow with terms × operands)."""

MAX_OPERANDS = 8
"""Terms with more operands are not grouped: pricing them (a path search each) costs more
compile time than the rare win (such products come from high derivatives of long chains)."""

CLEAR_WIN = 0.8
"""A rewrite is made only when it costs less than this fraction of the original (as for distribution)."""

Role = tuple[int, ...]
"""An operand's axes relative to the output: ``p ≥ 0`` is output position p, ``-1 - q`` the q-th summed index."""


@dataclass(frozen=True)
class _Product:
    """A term of a sum as ``coef · einsum(in_idx -> out_idx, *operands)`` (a plain node is one operand)."""

    node: Node
    coef: float
    operands: tuple[Node, ...]
    in_idx: tuple[IndexTuple, ...]
    out_idx: IndexTuple


def _as_product(term: Node) -> _Product | None:
    """The term as a product, or None for terms that cannot share a factor (constants, δ embeddings)."""
    if isinstance(term, Einsum):
        if len(term.operands) > MAX_OPERANDS:
            return None
        return _Product(term, term.coef, term.operands, term.in_idx, term.out_idx)
    if isinstance(term, (Const, Delta)):
        return None
    idx = alg.symbols(term.ndim)
    return _Product(term, 1.0, (term,), (idx,), idx)


def _role(idx: IndexTuple, out: IndexTuple) -> Role:
    """``idx`` relative to ``out``: output positions, and summed indices numbered by first appearance."""
    summed: dict[Index, int] = {}
    return tuple(out.index(i) if i in out else -1 - summed.setdefault(i, len(summed)) for i in idx)


def _groups(products: Sequence[_Product | None]) -> dict[tuple[int, Role], list[tuple[int, int]]]:
    """Per common factor ``(id(operand), role)``, the (term, operand position) pairs; two terms or more."""
    found: dict[tuple[int, Role], list[tuple[int, int]]] = {}
    for j, p in enumerate(products):
        if p is None:
            continue
        seen: set[tuple[int, Role]] = set()
        for k, (op, idx) in enumerate(zip(p.operands, p.in_idx)):
            key = (id(op), _role(idx, p.out_idx))
            if isinstance(op, (Const, Delta)) or key in seen:
                continue  # ones and δ factors are no common factor; one position per term
            seen.add(key)
            found.setdefault(key, []).append((j, k))
    return {key: members for key, members in found.items() if len(members) > 1}


@dataclass(frozen=True)
class Factored:
    """``coef · factor *(common, inner_idx, out) inner``, with ``inner`` the sum left inside."""

    factor: Node
    inner: Node
    common: IndexTuple
    inner_idx: IndexTuple
    out: IndexTuple
    coef: float

    def product(self, inner: Node | None = None) -> Node:
        """The factored product (with ``inner`` in place of the inner sum if given)."""
        inner = self.inner if inner is None else inner
        return alg.einsum([self.factor, inner], [self.common, self.inner_idx], self.out, self.coef)


def factor_out(products: Sequence[_Product], positions: Sequence[int], dims: Sequence[Dim]) -> Factored:
    """Factor the operand at ``positions[j]`` of ``products[j]`` (one node, one role) out of their sum.

    Indices are renamed: output position p is ``o<p>``, the factor's q-th summed index
    ``s<q>``, the others ``r<n>``. The inner sum carries the factor's indices and the
    output indices that some remaining operand carries; a term whose operands lack one
    of them is broadcast along it (a ones factor: Σ_q F_q = Σ_q F_q · 1_q). The
    coefficients stay inside, but for a common one (:func:`_common_coef`) that
    multiplies the product.
    """
    first = products[0]
    factor = first.operands[positions[0]]
    out = tuple(f"o{p}" for p in range(len(dims)))
    common = tuple(f"o{r}" if r >= 0 else f"s{-1 - r}" for r in _role(first.in_idx[positions[0]], first.out_idx))
    index_dim: dict[Index, Dim] = dict(zip(out, dims))
    index_dim.update(zip(common, factor.dims))
    rests: list[tuple[list[Node], list[IndexTuple]]] = []
    carried: set[Index] = set()
    for p, k in zip(products, positions):
        names = dict(zip(p.out_idx, out))
        for i, new in zip(p.in_idx[k], common):
            names.setdefault(i, new)
        ops, idxs = [], []
        for n, (op, idx) in enumerate(zip(p.operands, p.in_idx)):
            if n == k:
                continue
            for i in idx:
                names.setdefault(i, f"r{len(names)}")
            ops.append(op)
            idxs.append(tuple(names[i] for i in idx))
        rests.append((ops, idxs))
        carried.update(i for idx in idxs for i in idx)
    # The inner sum's axes: in the order a term already has when one operand is left
    # (X @ A + Y @ A: X + Y, not X.T + Y.T), else the factor's axes, then the output's.
    inner_idx = tuple(i for i in dict.fromkeys((*common, *out)) if i in carried)
    plain = [idxs[0] for _, idxs in rests if len(idxs) == 1 and sorted(idxs[0]) == sorted(inner_idx)]
    inner_idx = max([inner_idx, *plain], key=plain.count)  # the first of the most frequent
    coef = _common_coef([p.coef for p in products])
    parts = []
    for p, (ops, idxs) in zip(products, rests):
        have = {i for idx in idxs for i in idx}
        missing = [i for i in inner_idx if i not in have]
        ones = [alg.const(1.0, (index_dim[i],)) for i in missing]
        parts.append(alg.einsum([*ops, *ones], [*idxs, *((i,) for i in missing)], inner_idx, p.coef / coef))
    return Factored(factor, alg.add(parts), common, inner_idx, out, coef)


def _common_coef(coefs: Sequence[float]) -> float:
    """The coefficient to factor out too: the least in magnitude when the others are whole multiples of it.

    ``-2.0 * (T @ V) + 2.0 * (U @ W)`` gives -2.0 and ``T - U @ W`` inside; ``2.0 * (X @ A) -
    3.0 * (X @ B)`` gives 1.0 and ``2.0 * A - 3.0 * B`` inside (no inexact ratio like 1.5 or 2/3).
    """
    least = min(coefs, key=abs)
    return least if all((c / least).is_integer() for c in coefs) else 1.0


class _Factorer:
    """The greedy search over one DAG.

    ``cost`` prices a node computed from its children's values; ``known`` are the ids
    of the nodes the program computes anyway (free to reuse). The methods take
    ``sole``, the ids of the terms whose only consumer is the sum being rewritten
    (their cost is saved when they disappear; a new node's always is).
    """

    def __init__(self, cost: Callable[[Node], float], known: set[int]) -> None:
        self.cost = cost
        self.known = known

    def price(self, node: Node) -> float:
        return 0.0 if id(node) in self.known else self.cost(node)

    def best(self, s: Add, sole: Collection[int]) -> Node | None:
        """The cheapest factored form of the sum ``s`` (factoring again while it pays), or None."""
        current: Node = s
        improved = False
        while isinstance(current, Add) and len(current.terms) <= MAX_TERMS:
            step = self._step(current, sole)
            if step is None:
                break
            current, improved = step, True
        return current if improved else None

    def _step(self, s: Add, sole: Collection[int]) -> Node | None:
        """One factoring of ``s``: the group saving most, if that is a clear win."""
        products = [_as_product(t) for t in s.terms]
        groups = _groups(products)
        if not groups:
            return None
        choice: tuple[float, Node] | None = None
        for members in groups.values():
            group = [p for j, _ in members if (p := products[j]) is not None]
            done = factor_out(group, [k for _, k in members], s.dims)
            taken = {j for j, _ in members}
            rest = [t for j, t in enumerate(s.terms) if j not in taken]
            product = done.product()
            new = alg.add([product, *rest]) if rest else product
            saved = [p.node for p in group if id(p.node) not in self.known or id(p.node) in sole]
            before = self.cost(s) + sum(self.cost(t) for t in saved)
            after = self.price(product) + (self.price(new) if rest else 0.0)
            if isinstance(done.inner, Add) and id(done.inner) not in self.known:
                after += self.cost(done.inner) + sum(self.price(t) for t in done.inner.terms)
            # A δ ⊗ core term factored with a dense one becomes a diagonal written into the
            # smaller inner sum instead of the whole result: any saving is a real one. One
            # factor alone may not pay where several together do (Σ_b x_b x_bᵀ ⊗ (M_b + diag
            # v_b)): for such groups the fully nested form is priced too (only for them: it
            # is a search of its own, ten times the compile time of an MLP's HVP for all).
            delta = any(isinstance(op, Delta) for p in group for op in p.operands)
            win = 1.0 if delta else CLEAR_WIN
            nested = None
            if after >= win * before and delta:
                nested = self._nested(done, product, rest)
                after = self._new_cost(nested)
            if after < win * before and (choice is None or before - after > choice[0]):
                choice = (before - after, nested if nested is not None else self._nested(done, product, rest))
        return None if choice is None else choice[1]

    def _new_cost(self, node: Node) -> float:
        """The cost of the nodes of ``node``'s DAG the program does not compute anyway."""
        return sum(self.cost(n) for n in topo_order([node]) if id(n) not in self.known)

    def _nested(self, done: Factored, product: Node, rest: list[Node]) -> Node:
        """The factored sum, its inner sum factored too: ``X @ A @ B + X @ A @ C`` → ``X @ (A @ (B + C))``."""
        inner = done.inner
        if isinstance(inner, Add) and id(inner) not in self.known:
            better = self.best(inner, sole=())  # its terms are new, or needed elsewhere
            if better is not None:
                product = done.product(better)
        return alg.add([product, *rest]) if rest else product


def factor_sums(roots: list[Node], cost: Callable[[Node], float]) -> list[Node]:
    """Factor common factors out of the sums of the DAG where ``cost`` says it is a clear win.

    Args:
        roots: the program's outputs.
        cost: the cost of computing a node from its children's values (flops plus
            memory, for the real sizes).

    Returns:
        The rewritten roots (the same nodes when nothing pays).

    Examples:
        >>> import eincalc as ec
        >>> X, A = ec.matrix("X", "m n"), ec.matrix("A", "n n")
        >>> def flops(node):
        ...     return ec.cost(node, m=100, n=10).nodes[-1].flops
        >>> print(ec.to_numpy_syntax(factor_sums([X @ A.T + X @ A], flops)[0]))
        X @ (A.T + A)
    """
    order = topo_order(roots)
    if not any(isinstance(n, Add) and _groups([_as_product(t) for t in n.terms]) for n in order):
        return roots
    uses: dict[int, int] = {}
    for node in order:
        for child in node.children:
            uses[id(child)] = uses.get(id(child), 0) + 1
    root_ids = {id(r) for r in roots}
    known = {id(n) for n in order}
    origin: dict[int, Node] = {}  # image -> the node it replaces, for use counts
    factorer = _Factorer(cost, known)

    def sole(term: Node) -> bool:
        key = id(origin.get(id(term), term))
        return uses.get(key, 0) == 1 and key not in root_ids

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        new = rebuild(node, children)
        if isinstance(new, Add):
            better = factorer.best(new, {id(t) for t in new.terms if sole(t)})
            if better is not None:
                new = better
                known.update(id(n) for n in topo_order(new))  # a later sum may reuse its parts
        if new is not node:
            origin[id(new)] = node
            known.add(id(new))
        return new

    return rewrite(roots, rule)
