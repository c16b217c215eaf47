"""Shared sub-products: wide einsums become chains of pairwise products shared across outputs.

The algebra keeps every product flat (one canonical n-ary einsum per node), which is what
simplification wants and what a backward pass does not: the gradient of each layer of a
network is a flat product that contains the back-propagated signal of every layer above
it. Planned one by one, each gradient recomputes that chain, and a contraction planner
facing a Hadamard-heavy product may leave the chain order altogether.

This pass restores the chain, per size signature, before printing:

* every eligible product (three or more array operands, no unit tensor or ones factor) is
  planned in order of its number of operands, smallest first;
* a sub-product that an earlier plan already computes (or that is a node of the program)
  is *reused*: if some of the operands, with the indices they need to keep, form exactly
  that interned node, they are replaced by it (largest first). Canonical form makes the
  test an identity check: ``einsum(subset, needed indices) is P``;
* what is left is planned pairwise (:func:`eincalc.codegen.planning.contraction_path`,
  real sizes); every intermediate of the path is registered under its canonical node, so
  later, larger products reuse it;
* a product whose operands are those of a registered intermediate with fewer output
  indices is a sum of that intermediate (``Σ_b δ[b, h]``, a bias gradient next to its
  weight gradient's signal).

The result is a DAG of pairwise products over interned sub-products, built with raw node
constructors (no flattening, which would undo it); the printer prints each once. Values
are unchanged: only the association of the products changes.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from eincalc import algebra as alg
from eincalc._types import Dim, Index, IndexTuple
from eincalc.codegen.planning import contraction_path
from eincalc.expr import Add, Const, Delta, Einsum, Elementwise, Node, Shift, Unary
from eincalc.graph import rewrite, topo_order

MIN_OPERANDS = 3
"""Products with fewer array operands are printed as they are."""

MAX_KEPT = 4
"""A reused sub-product keeps at most this many indices (their orders are tried in turn)."""

MAX_PICKS = 64
"""Ways of choosing a reused product's operands among equal operands that are tried."""


class _Part(NamedTuple):  # a tuple: made for every operand of every plan, so cheaply
    """A factor while a product is planned: a node (operand or shared sub-product) and its indices."""

    node: Node
    idx: IndexTuple
    members: frozenset[int]  # positions of the product's operands it covers


class _Pair(NamedTuple):
    """How a node is computed: ``coef · einsum(idx[0], idx[1] -> out)`` of two parts (or one)."""

    parts: tuple[_Part, ...]
    out: IndexTuple
    coef: float


def _eligible(node: Node, least: int = MIN_OPERANDS) -> bool:
    return (
        isinstance(node, Einsum)
        and len(node.operands) >= least
        and not any(isinstance(op, (Delta, Const)) for op in node.operands)
        and all(len(set(idx)) == len(idx) for idx in node.in_idx)
    )


class _Planner:
    """Plans products in turn, registering and reusing their intermediates."""

    def __init__(self, sizes: Mapping[Dim, int]) -> None:
        self.sizes = sizes
        self.recipe: dict[int, _Pair] = {}  # id(canonical node) -> how it is computed
        self.known: dict[int, tuple[Einsum, frozenset[int]]] = {}  # products computed (coefficient 1)
        # Each known product is listed under one of its operands (the one with the fewest
        # products so far): a product whose operands include it is found by its anchor alone.
        self.by_anchor: dict[int, list[Einsum]] = {}
        self.slot: dict[tuple[int, int], int] = {}  # (id(operand), id(product)) -> rank among its products
        self.count: dict[int, int] = {}  # id(operand) -> how many known products have it
        self.by_operands: dict[tuple[int, ...], list[Einsum]] = {}  # sorted operand ids -> products
        # products built while planning, by operands and index pattern (kept alive with them)
        self._built: dict[tuple, tuple[tuple[Node, ...], Node]] = {}

    def product(self, operands: Sequence[Node], indices: Sequence[IndexTuple], out: IndexTuple) -> Node:
        """``alg.einsum(operands, indices, out)``, remembered: matching asks again for products plans built.

        The canonical product depends only on the operands and the pattern of the indices
        (renamed by first appearance, output first), which is the key.
        """
        names: dict[Index, int] = {i: k for k, i in enumerate(out)}
        pattern = tuple(tuple(names.setdefault(i, len(names)) for i in idx) for idx in indices)
        key = (tuple(id(op) for op in operands), pattern, len(out))
        hit = self._built.get(key)
        if hit is None:
            hit = self._built[key] = (tuple(operands), alg.einsum(operands, indices, out))
        return hit[1]

    def register(self, node: Node) -> None:
        if not isinstance(node, Einsum) or node.coef != 1.0 or len(node.operands) < 2 or id(node) in self.known:
            return
        ids = frozenset(id(op) for op in node.operands)
        self.known[id(node)] = (node, ids)
        anchor, fewest = 0, -1
        for op_id in ids:
            n = self.slot[op_id, id(node)] = self.count.get(op_id, 0)
            self.count[op_id] = n + 1
            if fewest < 0 or n < fewest:
                anchor, fewest = op_id, n
        self.by_anchor.setdefault(anchor, []).append(node)
        self.by_operands.setdefault(tuple(sorted(id(op) for op in node.operands)), []).append(node)

    def plan(self, node: Einsum) -> None:
        if self._as_sum_of_known(node):
            return
        parts = [_Part(op, idx, frozenset((k,))) for k, (op, idx) in enumerate(zip(node.operands, node.in_idx))]
        parts = self._reuse(node, parts)
        index_dim = {i: d for op, idx in zip(node.operands, node.in_idx) for i, d in zip(idx, op.dims)}
        if len(parts) == 1 or any(isinstance(p.node, Shift) for p in parts):
            # A product with window tensors stays whole (the printer lowers it to views and
            # scatters), but entry-wise products among its arrays are shared sub-products:
            # relu'(z) ⊙ δ feeds both the kernel gradient and the bias gradient.
            parts = self._hadamard_groups(node, parts)
            self.recipe[id(node)] = _Pair(tuple(parts), node.out_idx, node.coef)
            return
        path = contraction_path([p.idx for p in parts], node.out_idx, index_dim, self.sizes)
        live = list(parts)
        for n_step, (i, j) in enumerate(path):
            right, left = live.pop(max(i, j)), live.pop(min(i, j))
            if not live:  # the last step is the product itself
                assert n_step == len(path) - 1
                self.recipe[id(node)] = _Pair((left, right), node.out_idx, node.coef)
                return
            # Keep what later steps need, in the order they meet it: a signal δ[b, g]
            # comes out with the batch axis first, as the Hadamard factor next to it has.
            mine = set(left.idx) | set(right.idx)
            later = [i for p in live for i in p.idx] + list(node.out_idx)
            out = tuple(dict.fromkeys(i for i in later if i in mine))
            members = left.members | right.members
            sub = self.product(
                [node.operands[k] for k in sorted(members)], [node.in_idx[k] for k in sorted(members)], out
            )
            if isinstance(sub, Einsum) and id(sub) not in self.recipe:
                self.recipe[id(sub)] = _Pair((left, right), out, 1.0)
                self.register(sub)
            live.append(_Part(sub, out, members))
        raise AssertionError("a contraction path ends with one value")  # pragma: no cover

    def _hadamard_groups(self, node: Einsum, parts: list[_Part]) -> list[_Part]:
        """Arrays over the same indices (in the same order) multiplied first, as registered sub-products."""
        groups: dict[IndexTuple, list[_Part]] = {}
        for q in parts:
            if not isinstance(q.node, Shift) and len(set(q.idx)) == len(q.idx):
                groups.setdefault(q.idx, []).append(q)
        for idx, members in groups.items():
            if len(members) < 2:
                continue
            covered = frozenset().union(*(q.members for q in members))
            sub = self.product([q.node for q in members], [q.idx for q in members], idx)
            if not isinstance(sub, Einsum):
                continue
            if id(sub) not in self.recipe:
                self.recipe[id(sub)] = _Pair(tuple(members), idx, 1.0)
                self.register(sub)
            parts = [q for q in parts if q not in members] + [_Part(sub, idx, covered)]
        return parts

    def _as_it_is(self, p: Einsum) -> None:
        """Give a reused node of the program without a plan (two operands) the recipe of itself."""
        if id(p) not in self.recipe:
            own = tuple(_Part(op, idx, frozenset()) for op, idx in zip(p.operands, p.in_idx))
            self.recipe[id(p)] = _Pair(own, p.out_idx, p.coef)

    def _as_sum_of_known(self, node: Einsum) -> bool:
        """Compute ``node`` as a sum over axes of a known product of the same operands, if there is one."""
        for wide in self.by_operands.get(tuple(sorted(id(op) for op in node.operands)), ()):
            if wide.ndim <= node.ndim or wide is node:
                continue
            idx = alg.symbols(wide.ndim)
            for axes in itertools.permutations(range(wide.ndim), node.ndim):
                if tuple(wide.dims[k] for k in axes) != node.dims:
                    continue  # cheap test first: building the sum is the costly part
                out = tuple(idx[k] for k in axes)
                if alg.einsum([wide], [idx], out, node.coef) is node:
                    self._as_it_is(wide)
                    self.recipe[id(node)] = _Pair((_Part(wide, idx, frozenset()),), out, node.coef)
                    return True
        return False

    def _reuse(self, node: Einsum, parts: list[_Part]) -> list[_Part]:
        """Replace operands that form a known product by that product, largest first."""
        leaves = frozenset(id(op) for op in node.operands)
        # Known products with no operand outside this one (a set test in C), found by their
        # anchors. The algebra caps product width (algebra.MAX_INLINE), so this stays small.
        by_size: dict[int, list[Einsum]] = {}
        width = len(node.children)
        for op_id in leaves:
            for p in self.by_anchor.get(op_id, ()):
                size = len(p.children)
                if size < width and self.known[id(p)][1] <= leaves:
                    by_size.setdefault(size, []).append(p)
        # Largest first; ties in the order of the operands' product lists, walked in the
        # order of `leaves`: the first of the product's operands there, then its rank.
        rank = {op_id: k for k, op_id in enumerate(leaves)}

        def first_seen(p: Einsum) -> tuple[int, int]:
            return min((rank[op_id], self.slot[op_id, id(p)]) for op_id in self.known[id(p)][1])

        single: dict[int, list[_Part]] | None = None  # the layout of `parts`, made when first needed
        occurs: dict[Index, int] = {}
        matched = False  # whether a match took operands away since `by_size` was filled
        for size in sorted(by_size, reverse=True):
            # a match takes operands away: only products still inside are ordered and tried
            same = [p for p in by_size[size] if self.known[id(p)][1] <= leaves] if matched else by_size[size]
            tested = True  # every product in `same` is inside the current leaves
            for p in sorted(same, key=first_seen) if len(same) > 1 else same:
                if not tested and not self.known[id(p)][1] <= leaves:
                    continue
                need: dict[int, int] = {}
                for op in p.operands:
                    need[id(op)] = need.get(id(op), 0) + 1
                if single is None:
                    single, occurs = _layout(parts)
                found = self._match(node, parts, p, need, single, occurs)
                if found is not None:
                    parts, single = found, None
                    leaves = frozenset(id(q.node) for q in parts if len(q.members) == 1)
                    matched, tested = True, False
        return parts

    def _match(
        self,
        node: Einsum,
        parts: list[_Part],
        p: Einsum,
        need: dict[int, int],
        single: dict[int, list[_Part]],
        occurs: dict[Index, int],
    ) -> list[_Part] | None:
        """``parts`` with ``need`` (operand id -> count, ``p``'s operands) replaced by ``p``, if they form it.

        ``single`` and ``occurs`` describe ``parts`` (:func:`_layout`).
        """
        # the ways to pick p's operands among equal ones (window tensors repeat): a few at most
        choices = 1
        for op_id, c in need.items():
            same = single.get(op_id, [])
            if len(same) < c:
                return None
            choices *= math.comb(len(same), c)
            if choices > MAX_PICKS:
                return None  # too many ways (a power of one matrix): plan the product instead
        if choices == 1:  # each operand as often as p has it: one way (most products)
            return self._match_chosen(node, parts, p, [q for op_id in need for q in single[op_id]], occurs)
        options = [list(itertools.combinations(single[op_id], c)) for op_id, c in need.items()]
        for picks in itertools.product(*options):
            chosen = [q for pick in picks for q in pick]
            found = self._match_chosen(node, parts, p, chosen, occurs)
            if found is not None:
                return found
        return None

    def _match_chosen(
        self, node: Einsum, parts: list[_Part], p: Einsum, chosen: list[_Part], occurs: dict[Index, int]
    ) -> list[_Part] | None:
        # The indices the chosen parts keep: the output's and those another part carries
        # (counted: a part carries an index once). Tested before the rest is assembled.
        mine: dict[Index, int] = {}
        for q in chosen:
            for i in q.idx:
                mine[i] = mine.get(i, 0) + 1
        kept = set(node.out_idx)
        needed = tuple(dict.fromkeys(i for q in chosen for i in q.idx if i in kept or occurs[i] > mine[i]))
        if len(needed) != p.ndim or len(needed) > MAX_KEPT:
            return None
        chosen_ids = {id(q) for q in chosen}
        rest = [q for q in parts if id(q) not in chosen_ids]
        operands = [q.node for q in chosen]
        indices = [q.idx for q in chosen]
        dim_of = {i: d for q in chosen for i, d in zip(q.idx, q.node.dims)}
        for out in itertools.permutations(needed):
            if tuple(dim_of[i] for i in out) != p.dims:
                continue  # cheap test first: building the product is the costly part
            if self.product(operands, indices, out) is p:
                self._as_it_is(p)
                members = frozenset().union(*(q.members for q in chosen))
                return [*rest, _Part(p, out, members)]
        return None


def _layout(parts: list[_Part]) -> tuple[dict[int, list[_Part]], dict[Index, int]]:
    """The single-operand parts by operand id (in order), and how many parts carry each index."""
    single: dict[int, list[_Part]] = {}
    occurs: dict[Index, int] = {}
    for q in parts:
        if len(q.members) == 1:
            single.setdefault(id(q.node), []).append(q)
        for i in q.idx:
            occurs[i] = occurs.get(i, 0) + 1
    return single, occurs


def share_subproducts(roots: list[Node], sizes: Mapping[Dim, int]) -> list[Node]:
    """``roots`` with wide products rewritten as pairwise products over shared sub-products."""
    order = topo_order(roots)
    planner = _Planner(sizes)
    for n in order:
        planner.register(n)
    wide = [n for n in order if _eligible(n)]
    pairs = [n for n in order if _eligible(n, 2) and len(n.operands) == 2]
    if not wide and not pairs:
        return roots
    position = {id(n): k for k, n in enumerate(order)}
    wide.sort(key=lambda n: (len(n.operands), position[id(n)]))
    for n in wide:
        assert isinstance(n, Einsum)
        planner.plan(n)
    # A product planned before a larger one registered a wider version of it (the
    # signal δ[b, h] next to the bias gradient Σ_b δ[b, h]) is that version summed.
    for n in wide:
        assert isinstance(n, Einsum)
        planner._as_sum_of_known(n)
    # two-operand products are printed as they are, unless they sum a known product
    wide += [n for n in pairs if planner._as_sum_of_known(n)]  # type: ignore[arg-type]
    if not wide:
        return roots

    # Sub-products used by one product only are folded back into it (the printer plans
    # them inside that product's statement); shared ones become nodes of their own.
    in_dag = {id(n) for n in order}
    uses: Counter[int] = Counter()
    seen: set[int] = set()
    stack = [id(n) for n in wide]
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        for q in planner.recipe[key].parts:
            uses[id(q.node)] += 1
            if id(q.node) in planner.recipe:
                stack.append(id(q.node))

    def separate(node: Node) -> bool:
        return id(node) in in_dag or uses[id(node)] > 1 or id(node) not in planner.recipe

    built: dict[int, Node] = {}  # id(original or sub-product) -> the node printed for it

    def factors(node: Node, idx: IndexTuple) -> list[tuple[Node, IndexTuple]]:
        """The factors computing ``node`` over ``idx``, its private sub-products unfolded."""
        if separate(node):
            return [(product(node) if id(node) in planner.recipe else built[id(node)], idx)]
        pair = planner.recipe[id(node)]
        # the recipe may come from another product's plan: rename into this one's indices
        rename = dict(zip(pair.out, idx))
        for part in pair.parts:
            for i in part.idx:
                if i not in rename:
                    rename[i] = alg.fresh_index()
        return [f for part in pair.parts for f in factors(part.node, tuple(rename[i] for i in part.idx))]

    def product(node: Node) -> Node:
        done = built.get(id(node))
        if done is not None:
            return done
        pair = planner.recipe[id(node)]
        flat = [f for q in pair.parts for f in factors(q.node, q.idx)]
        own = sorted(id(built[id(c)]) for c in node.children) if id(node) in in_dag else None
        if own is not None and sorted(id(op) for op, _ in flat) == own:
            # nothing shared after all: the product stays as it was, for the printer to plan
            built[id(node)] = with_children(node, tuple(built[id(c)] for c in node.children))
            return built[id(node)]
        table: dict[Index, Index] = {}
        for i in itertools.chain(pair.out, *(idx for _, idx in flat)):
            table.setdefault(i, alg.symbols(1, len(table))[0])
        new = Einsum.make(
            tuple(op for op, _ in flat),
            tuple(tuple(table[i] for i in idx) for _, idx in flat),
            tuple(table[i] for i in pair.out),
            pair.coef,
            node.dims,
        )
        built[id(node)] = new
        return new

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        if id(node) in planner.recipe:
            built[id(node)] = product(node)
        else:
            built[id(node)] = with_children(node, children)
        return built[id(node)]

    return rewrite(roots, rule)


def with_children(node: Node, children: Sequence[Node]) -> Node:
    """``node`` with new children and the same parameters, without re-canonicalising.

    The smart constructors would flatten the pairwise products again.
    """
    children = tuple(children)
    if all(a is b for a, b in zip(children, node.children)):
        return node
    if isinstance(node, Einsum):
        return Einsum.make(children, node.in_idx, node.out_idx, node.coef, node.dims)
    if isinstance(node, Add):
        return Add.make(children)
    if isinstance(node, Elementwise):
        return Elementwise.make(node.fn, children, node.param)
    if isinstance(node, Unary):
        return Unary.make(node.fn, children[0], node.axis, node.dims)
    raise TypeError(f"unknown node kind {type(node).__name__}")  # pragma: no cover
