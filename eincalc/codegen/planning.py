"""Contraction planning: one Einsum node becomes a sequence of array operations.

This module owns the index arithmetic of code generation, and nothing backend specific:
it decides *which* operations compute a node (a diagonal view, a sum over axes, a BLAS
product, a broadcast multiplication, a pairwise ``einsum``, the embedding of a δ ⊗ core
result), in *which order* (the contraction path comes from ``opt_einsum.contract_path``
with the real sizes), and *where* the scalar coefficient is applied (on the smallest
array). A printer (:mod:`eincalc.codegen.numpy_printer`) turns the resulting
:class:`Plan` into text. The DAG never sees a path: plans live only here, per size
signature.

Steps, in the order a plan uses them:

* unit tensors (``Delta`` factors) whose indices both survive are never materialised:
  their index pairs are merged, the rest is computed as a *core* over the merged
  labels, and :class:`Embed` says how to write it into the diagonal of the result;
* ones factors over summed indices become a size factor of the coefficient, ones
  factors over output indices a broadcast;
* each array factor first loses its repeated indices (a diagonal view) and the indices
  nothing else needs (a sum over axes);
* the remaining factors are contracted pairwise along the opt_einsum path; each pair
  becomes the cheapest kind of operation that fits (see :func:`pair_step`).

Nothing here walks the DAG or knows about node classes beyond the operand kinds.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import opt_einsum
from opt_einsum import get_symbol

from eincalc._types import Dim, Index, IndexTuple
from eincalc.errors import UnsupportedNodeError

MAX_EINSUM_LETTERS = 52
"""``numpy.einsum`` accepts the 52 ASCII letters as indices, and no more."""

OPTIMAL_UP_TO = 4
"""Operand counts up to which the exhaustive ``"optimal"`` path search is used."""

DP_UP_TO = 10
"""Operand counts up to which opt_einsum's dynamic-programming search is tried too (its cost grows fast)."""

ENTRY_COST = 10
"""Cost of one entry of an intermediate array, in flops, when paths are compared.

Fresh memory costs far more than a BLAS flop; this ranks a path through a large
temporary (an outer product of a Hadamard factor with a weight matrix) below a chain
of matrix products with the same flop count.
"""

OPERAND_KINDS = ("array", "delta", "ones")


@dataclass(frozen=True)
class Step:
    """One array operation; its result is the next value number of the plan.

    ``op`` is one of:

    ``"diagonal"``  single-operand ``einsum`` (repeated indices: a diagonal view, maybe summed)
    ``"sum"``       sum over ``axes`` of ``args[0]``
    ``"transpose"`` permute ``args[0]`` by ``axes``
    ``"matmul"``    ``L @ R``; ``axes`` = (perm of L, perm of R) applied first (``()``: none)
    ``"vdot"``      full inner product of two arrays with equal indices in equal order
    ``"tensordot"`` ``tensordot(L, R, axes)`` with ``axes`` = (axes of L, axes of R)
    ``"groups"``    ``L @ R`` over axis groups: L's summed axes ``S`` at one end, R laid out
                    ``(P…, S…, Q…)``; the result is ``(P…, L's free…, Q…)``, and ``axes`` =
                    (L's summed axes first?, len(P), len(S))
    ``"groups_summed"`` both laid out ``(P…, F…, Q…)`` with ``P`` and ``Q`` summed: one
                    product per entry of ``P``, then their sum; ``axes`` = (len(P), len(Q))
    ``"multiply"``  entry-wise product with broadcasting (Hadamard, outer, scaling)
    ``"einsum"``    pairwise ``einsum`` (batch indices that are also contracted)
    ``"broadcast"`` broadcast ``args[0]`` to ``out`` (ones factors over output indices)

    ``args`` are value numbers of earlier values; ``out`` names the result's axes.
    """

    op: str
    args: tuple[int, ...]
    out: IndexTuple
    axes: tuple = ()


@dataclass(frozen=True)
class Embed:
    """Write the core into the diagonal of a zero result.

    ``labels[k]`` is the label of output axis k (equal labels: a δ joins the axes);
    ``unique`` are the distinct labels in order, and the core's axes are the labels of
    ``unique`` that some array factor carries (the others are constant along the diagonal,
    so the write broadcasts over them).
    """

    labels: IndexTuple
    unique: IndexTuple


@dataclass(frozen=True)
class Plan:
    """How to compute ``coef · einsum(...)`` from the node's array operands.

    Values ``0 … len(inputs)-1`` are operands (``inputs[k]`` is the operand's position in
    the node); value ``len(inputs) + s`` is the result of ``steps[s]``. ``value_idx``
    names the axes of every value. ``result`` is the value holding the core, or None
    when there is no array factor (the core is the scalar coefficient). The coefficient
    times the sizes of ``counts`` multiplies value ``scale_at`` (None: nothing to scale,
    or a scalar core). ``embed`` is set when unit tensors survive.
    """

    inputs: tuple[int, ...]
    steps: tuple[Step, ...]
    value_idx: tuple[IndexTuple, ...]
    result: int | None
    coef: float
    counts: tuple[Dim, ...]
    scale_at: int | None
    embed: Embed | None
    out: IndexTuple
    index_dim: Mapping[Index, Dim]


def letters(*groups: Sequence[Index]) -> dict[Index, str]:
    """Map the indices of ``groups`` to einsum letters ``a, b, …`` in order of appearance.

    Raises:
        UnsupportedNodeError: when more than 52 distinct indices meet in one call, the
            limit of ``numpy.einsum``.

    Examples:
        >>> letters(("#3", "x"), ("x",))
        {'#3': 'a', 'x': 'b'}
    """
    mapping: dict[Index, str] = {}
    for group in groups:
        for i in group:
            if i not in mapping:
                mapping[i] = get_symbol(len(mapping))
    if len(mapping) > MAX_EINSUM_LETTERS:
        raise UnsupportedNodeError(
            f"one einsum call would need {len(mapping)} distinct indices; numpy.einsum accepts at most "
            f"{MAX_EINSUM_LETTERS} (split the expression into smaller products)"
        )
    return mapping


def spec_of(inputs: Sequence[Sequence[Index]], out: Sequence[Index]) -> str:
    """The einsum subscripts of one call, with indices mapped to letters per call."""
    table = letters(*inputs, out)
    return ",".join("".join(table[i] for i in idx) for idx in inputs) + "->" + "".join(table[i] for i in out)


class _Builder:
    """Accumulates values and steps while a plan is built."""

    def __init__(
        self,
        value_idx: list[IndexTuple],
        index_dim: Mapping[Index, Dim],
        sizes: Mapping[Dim, int],
        groups: bool = False,
    ) -> None:
        self.groups = groups
        self.value_idx = value_idx
        self.steps: list[Step] = []
        self.index_dim = index_dim
        self.sizes = sizes
        self.n_inputs = len(value_idx)

    def add(self, op: str, args: tuple[int, ...], out: IndexTuple, axes: tuple = ()) -> int:
        self.steps.append(Step(op, args, out, axes))
        self.value_idx.append(out)
        return len(self.value_idx) - 1

    def size(self, idx: Sequence[Index]) -> int:
        return math.prod(self.sizes[self.index_dim[i]] for i in idx)

    def flip(self, value: int) -> bool:
        """Make a matrix product's result come out transposed: ``L @ R`` becomes ``R.T @ L.T``.

        Only for a 2-D result of a ``matmul`` step of this plan (each value is used
        once, so nobody else sees the change). Returns False when ``value`` is not one.
        """
        s = value - self.n_inputs
        if s < 0 or self.steps[s].op != "matmul" or len(self.value_idx[value]) != 2:
            return False
        step = self.steps[s]
        (left, right), (perm_l, perm_r) = step.args, step.axes
        if len(self.value_idx[left]) != 2 or len(self.value_idx[right]) != 2 or len(step.out) != 2:
            return False  # a matrix-vector or batched product
        toggle = {(): (1, 0), (1, 0): ()}
        out = (step.out[1], step.out[0])
        self.steps[s] = Step("matmul", (right, left), out, (toggle[perm_r], toggle[perm_l]))
        self.value_idx[value] = out
        return True

    def transpose_to(self, value: int, out: IndexTuple) -> int:
        idx = self.value_idx[value]
        if idx == out:
            return value
        return self.add("transpose", (value,), out, tuple(idx.index(i) for i in out))


def plan_einsum(
    kinds: Sequence[str],
    in_idx: Sequence[IndexTuple],
    out_idx: IndexTuple,
    coef: float,
    index_dim: Mapping[Index, Dim],
    sizes: Mapping[Dim, int],
    groups: bool = False,
) -> Plan:
    """Plan ``coef · einsum(in_idx -> out_idx)`` over operands of the given kinds.

    Args:
        kinds: per operand, ``"array"`` (a computed value), ``"delta"`` (a unit tensor,
            first half of its indices paired with the second half) or ``"ones"``.
        in_idx: the operands' indices.
        out_idx: the result's indices (distinct).
        coef: the scalar factor.
        index_dim: the dim of every index.
        sizes: the size of every dim (real or nominal; only the order of operations
            depends on them, never the result).
        groups: allow ``"groups"`` steps (a matrix product over axis groups of a large
            array whose summed axes sit between kept ones, without copying it).

    Returns:
        The plan; see :class:`Plan`.

    Examples:
        >>> p = plan_einsum(["array", "array"], [("a", "b"), ("b",)], ("a",), 1.0,
        ...                 {"a": "m", "b": "n"}, {"m": 5, "n": 3})
        >>> [(s.op, s.args, s.out) for s in p.steps]
        [('matmul', (0, 1), ('a',))]
    """
    for kind in kinds:
        if kind not in OPERAND_KINDS:
            raise ValueError(f"unknown operand kind {kind!r}; expected one of {OPERAND_KINDS}")
    # Unit tensors: merge the indices each δ joins (union-find, deterministic roots).
    parent: dict[Index, Index] = {}

    def find(i: Index) -> Index:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    rank = {i: k for k, i in enumerate(dict.fromkeys([*out_idx, *(i for idx in in_idx for i in idx)]))}
    for kind, idx in zip(kinds, in_idx):
        if kind == "delta":
            half = len(idx) // 2
            for p, q in zip(idx[:half], idx[half:]):
                a, b = find(p), find(q)
                if a != b:  # the earlier index (output first) names the merged class
                    parent[max(a, b, key=rank.__getitem__)] = min(a, b, key=rank.__getitem__)
    labels = tuple(find(i) for i in out_idx)
    unique = tuple(dict.fromkeys(labels))
    embedded = len(unique) < len(labels)

    inputs = tuple(k for k, kind in enumerate(kinds) if kind == "array")
    arrays = [tuple(find(i) for i in in_idx[k]) for k in inputs]
    carried = {i for idx in arrays for i in idx}
    present = dict.fromkeys(find(i) for idx in in_idx for i in idx)
    # A class nobody carries and the output does not keep is summed over a constant:
    # the sum is its size (Σ_q 1 = n), a factor of the coefficient.
    counts = tuple(index_dim[i] for i in present if i not in carried and i not in unique)
    core_out = tuple(i for i in unique if i in carried)

    builder = _Builder(list(arrays), index_dim, sizes, groups)
    result = _contract(builder, list(range(len(arrays))), core_out)
    if result is not None and not embedded and core_out != out_idx:
        # ones factors over output indices: the core is constant along them
        result = builder.add("broadcast", (result,), out_idx)

    scale_at = None
    if result is not None and (coef != 1.0 or counts):
        # Scale the smallest array (ties: the latest, which reads best: 2.0 * (A @ B));
        # a broadcast view is excluded, scaling it would allocate the full result.
        candidates = [
            v
            for v in range(len(builder.value_idx))
            if not (v >= len(inputs) and builder.steps[v - len(inputs)].op == "broadcast")
        ]
        scale_at = min(candidates, key=lambda v: (builder.size(builder.value_idx[v]), -v))
    return Plan(
        inputs=inputs,
        steps=tuple(builder.steps),
        value_idx=tuple(builder.value_idx),
        result=result,
        coef=coef,
        counts=counts,
        scale_at=scale_at,
        embed=Embed(labels, unique) if embedded else None,
        out=out_idx,
        index_dim=index_dim,
    )


def _contract(b: _Builder, live: list[int], out: IndexTuple) -> int | None:
    """Contract the values ``live`` into one value over ``out``; None if there are none."""
    if not live:
        return None
    # Preprocess each factor: take diagonals, and sum the indices only it carries.
    for pos, v in enumerate(live):
        idx = b.value_idx[v]
        needed = set(out).union(*(b.value_idx[w] for w in live if w != v))
        keep = tuple(dict.fromkeys(i for i in idx if i in needed))
        if len(live) == 1:
            keep = out  # the only factor: produce the output order directly where we can
        if len(set(idx)) < len(idx):
            live[pos] = b.add("diagonal", (v,), keep)
        elif len(keep) < len(idx):
            reduced = tuple(i for i in idx if i in needed)
            live[pos] = b.add("sum", (v,), reduced, tuple(k for k, i in enumerate(idx) if i not in needed))
    if len(live) == 1:
        return b.transpose_to(live[0], out)

    path = contraction_path([b.value_idx[v] for v in live], out, b.index_dim, b.sizes)
    for i, j in path:
        right = live.pop(j)
        left = live.pop(i)
        rest = set().union(*(b.value_idx[w] for w in live))
        desired = out if not live else None
        live.append(pair_step(b, left, right, set(out) | rest, desired, prefer=out))
    return b.transpose_to(live[0], out)


def contraction_path(
    inputs: Sequence[IndexTuple], out: IndexTuple, index_dim: Mapping[Index, Dim], sizes: Mapping[Dim, int]
) -> list[tuple[int, int]]:
    """A pairwise contraction order for ``einsum(inputs -> out)`` at the given sizes.

    Each pair ``(i, j)`` (``i < j``) names two live values; they are removed and their
    product appended, as in :func:`opt_einsum.contract_path`. Several of opt_einsum's
    optimisers are asked and the path with the least flops plus ``ENTRY_COST`` per entry
    of its intermediates wins: the exhaustive ones are exact but limited in size, and
    the heuristic ones miss chain orders in Hadamard-heavy products (a backward pass's
    ``δ ⊙ (W @ …)``) which the dynamic programme finds.

    Examples:
        >>> contraction_path([("a", "b"), ("b", "c"), ("c",)], ("a",), dict(a="n", b="n", c="n"), dict(n=9))
        [(1, 2), (0, 1)]
    """
    if len(inputs) < 2:
        return []
    return list(_best_path(*_spec_and_shapes(inputs, out, index_dim, sizes))[0])


def contraction_cost(
    inputs: Sequence[IndexTuple], out: IndexTuple, index_dim: Mapping[Index, Dim], sizes: Mapping[Dim, int]
) -> tuple[int, int]:
    """Flops and largest intermediate of the path :func:`contraction_path` picks (opt_einsum's counts)."""
    _, flops, largest = _best_path(*_spec_and_shapes(inputs, out, index_dim, sizes))
    return flops, largest


def _spec_and_shapes(
    inputs: Sequence[IndexTuple], out: IndexTuple, index_dim: Mapping[Index, Dim], sizes: Mapping[Dim, int]
) -> tuple[str, tuple[tuple[int, ...], ...]]:
    """The key of :func:`_best_path`: subscripts (opt_einsum symbols, past 52 letters too) and shapes."""
    names = dict.fromkeys(itertools.chain.from_iterable(inputs))
    symbol = dict(zip(names, map(get_symbol, range(len(names))))).__getitem__
    spec = ",".join(["".join(map(symbol, idx)) for idx in inputs]) + "->" + "".join(map(symbol, out))
    size = {i: sizes[index_dim[i]] for i in names}.__getitem__
    return spec, tuple([tuple(map(size, idx)) for idx in inputs])


@functools.lru_cache(maxsize=4096)
def _best_path(spec: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[tuple[tuple[int, int], ...], int, int]:
    """Path, flops and largest intermediate for letters and shapes; remembered, as asked for often."""
    inputs = spec.split("->")[0].split(",")
    if len(inputs) < 2:
        _, info = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize="optimal")
        return (), int(info.opt_cost), int(info.largest_intermediate)
    if len(inputs) <= OPTIMAL_UP_TO:
        optimisers = ["optimal"]
    elif len(inputs) <= DP_UP_TO:
        optimisers = ["auto", "dp"]
    else:
        optimisers = ["auto"]
    best: tuple[float, tuple[tuple[int, int], ...], int, int] | None = None
    for optimize in optimisers:
        path, info = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize=optimize)
        if any(len(c) != 2 for c in path):
            continue  # "dp" sums an index only one operand carries on its own; the others pair only
        price = float(info.opt_cost) + ENTRY_COST * float(sum(info.size_list[:-1]))
        if best is None or price < best[0]:
            pairs = tuple(tuple(sorted(c)) for c in path)
            best = (price, pairs, int(info.opt_cost), int(info.largest_intermediate))  # type: ignore[assignment]
    if best is None:  # pragma: no cover - "auto" and "optimal" give pairwise paths
        raise AssertionError(f"no pairwise contraction path for {spec}")
    return best[1], best[2], best[3]


def pair_step(
    b: _Builder, a: int, c: int, keep: set[Index], desired: IndexTuple | None, prefer: IndexTuple = ()
) -> int:
    """Contract values ``a`` and ``c`` keeping the indices in ``keep``; returns the new value.

    The kind of operation: with no batch index (an index both share and the result
    keeps) and something to contract, a BLAS call (``@`` for matrices and vectors,
    ``tensordot`` otherwise, ``vdot`` for a full inner product); with nothing to contract,
    a broadcasting ``*``; with both, a batched ``@`` when it is one, else ``einsum``.
    ``desired`` fixes the result's index order (the node's output); otherwise each kind
    picks its natural order, for a matrix product the one that keeps the indices in the
    order of ``prefer`` (the node's output), so that a later entry-wise product with it
    reads both arrays in memory order (``d @ W.T`` next to ``d``, not ``(W @ d.T).T``).
    """
    sa, sc = b.value_idx[a], b.value_idx[c]
    shared = [i for i in sa if i in sc]
    summed = [i for i in shared if i not in keep]
    batch = [i for i in shared if i in keep]
    fa = tuple(i for i in sa if i not in shared)
    fc = tuple(i for i in sc if i not in shared)
    if not batch and summed:
        if not fa and not fc and sa == sc:
            return b.add("vdot", (a, c), ())
        if len(sa) <= 2 and len(sc) <= 2 and len(summed) == 1:
            return _matmul(b, a, c, summed[0], desired, prefer)
        return _tensordot(b, a, c, summed, desired)
    if not summed:
        if desired is not None:
            out = desired
        elif set(sc) <= set(sa):
            out = sa
        elif set(sa) <= set(sc):
            out = sc
        else:
            out = sa + fc
        return b.add("multiply", (a, c), out)
    if len(summed) == 1 and len(fa) == 1 and len(fc) == 1:
        return _batched_matmul(b, a, c, tuple(batch), summed[0], desired)
    out = desired if desired is not None else tuple(i for i in sa if i in keep) + fc
    return b.add("einsum", (a, c), out)


def _matmul(b: _Builder, a: int, c: int, k: Index, desired: IndexTuple | None, prefer: IndexTuple = ()) -> int:
    """``L @ R`` for operands of rank ≤ 2 sharing one summed index ``k``."""
    rank = {i: n for n, i in enumerate(prefer)}

    def out_of_order(out: IndexTuple) -> bool:
        known = [rank[i] for i in out if i in rank]
        return known != sorted(known)

    options = []
    for left, right in ((a, c), (c, a)):
        li, ri = b.value_idx[left], b.value_idx[right]
        if len(li) == 1 and len(ri) == 2 and ri[0] != k:
            continue  # v @ M contracts M's first axis; M @ v (the swapped option) fits instead
        if len(ri) == 1 and len(li) == 2 and li[1] != k:
            continue
        t_left = len(li) == 2 and li[1] != k
        t_right = len(ri) == 2 and ri[0] != k
        out = tuple(i for i in li if i != k) + tuple(i for i in ri if i != k)
        options.append(
            (desired is not None and out != desired, out_of_order(out), int(t_left) + int(t_right), left, right, out)
        )
    *_, left, right, out = min(options, key=lambda o: o[:3])
    li, ri = b.value_idx[left], b.value_idx[right]
    # An operand that is itself a matrix product of this plan is computed transposed
    # instead of being transposed here: V.T @ V, not (V.T @ V).T.
    if len(li) == 2 and li[1] != k and b.flip(left):
        li = b.value_idx[left]
    if len(ri) == 2 and ri[0] != k and b.flip(right):
        ri = b.value_idx[right]
    perm_l = (1, 0) if len(li) == 2 and li[1] != k else ()
    perm_r = (1, 0) if len(ri) == 2 and ri[0] != k else ()
    value = b.add("matmul", (left, right), out, (perm_l, perm_r))
    return b.transpose_to(value, desired) if desired is not None else value


def _batched_matmul(b: _Builder, a: int, c: int, batch: IndexTuple, k: Index, desired: IndexTuple | None) -> int:
    """``L @ R`` over leading batch axes: L as (batch…, f, k), R as (batch…, k, g)."""
    options = []
    for left, right in ((a, c), (c, a)):
        li, ri = b.value_idx[left], b.value_idx[right]
        (f,) = (i for i in li if i not in ri)
        (g,) = (i for i in ri if i not in li)
        want_l, want_r = batch + (f, k), batch + (k, g)
        out = batch + (f, g)
        moves = int(li != want_l) + int(ri != want_r)
        options.append((desired is not None and out != desired, moves, left, right, want_l, want_r, out))
    _, _, left, right, want_l, want_r, out = min(options, key=lambda o: o[:2])
    li, ri = b.value_idx[left], b.value_idx[right]
    perm_l = tuple(li.index(i) for i in want_l) if li != want_l else ()
    perm_r = tuple(ri.index(i) for i in want_r) if ri != want_r else ()
    value = b.add("matmul", (left, right), out, (perm_l, perm_r))
    return b.transpose_to(value, desired) if desired is not None else value


def _tensordot(b: _Builder, a: int, c: int, summed: list[Index], desired: IndexTuple | None) -> int:
    """``tensordot`` over the summed indices; the result is L's free axes, then R's."""
    if b.groups:
        grouped = _grouped_matmul(b, a, c, summed, desired)
        if grouped is not None:
            return b.transpose_to(grouped, desired) if desired is not None else grouped
    sa, sc = b.value_idx[a], b.value_idx[c]
    left, right = a, c
    fa = tuple(i for i in sa if i not in summed)
    fc = tuple(i for i in sc if i not in summed)
    if desired is not None and desired != fa + fc and desired == fc + fa:
        left, right = c, a
    li, ri = b.value_idx[left], b.value_idx[right]
    axes = (tuple(li.index(i) for i in summed), tuple(ri.index(i) for i in summed))
    out = tuple(i for i in li if i not in summed) + tuple(i for i in ri if i not in summed)
    value = b.add("tensordot", (left, right), out, axes)
    return b.transpose_to(value, desired) if desired is not None else value


MIN_GROUP_COLUMNS = 64
"""The smallest trailing group ``Q`` worth a matrix product per leading entry (``P``)."""


def _grouped_matmul(b: _Builder, a: int, c: int, summed: list[Index], desired: IndexTuple | None) -> int | None:
    """A ``"groups"`` step when one operand's summed axes sit inside it, or None.

    ``tensordot`` would copy that operand to bring them to an end; ``K.reshape(o, s) @
    X.reshape(p, s, q)`` reads it in place and keeps its layout in the result: a
    convolution over an im2col array (b, c·u·v, y·x) gives (b, o, y·x), channels first.
    """
    for small, big in ((a, c), (c, a)):
        si, bi = b.value_idx[small], b.value_idx[big]
        pos = [bi.index(i) for i in summed]
        start, stop = min(pos), max(pos) + 1
        if stop - start != len(summed) or start == 0 or stop == len(bi):
            continue  # not one inner run of axes: tensordot reads it as a matrix as it is
        group = bi[start:stop]
        if si[: len(group)] == group:
            summed_first = True
        elif si[len(si) - len(group) :] == group:
            summed_first = False
        else:
            continue
        lead, tail = bi[:start], bi[stop:]
        if b.size(tail) < MIN_GROUP_COLUMNS:
            continue  # many thin products: tensordot's one large one is faster
        free = tuple(i for i in si if i not in group)
        return b.add("groups", (small, big), lead + free + tail, (summed_first, len(lead), len(group)))
    layout = _summed_batches(b, a, c, summed)
    if layout is None:
        return None
    out, n_lead, n_tail = layout
    if desired is not None and out != desired:
        swapped = _summed_batches(b, c, a, summed)
        if swapped is not None and swapped[0] == desired:
            (out, n_lead, n_tail), a, c = swapped, c, a  # the result as wanted: (o, c, u, v), not (c, u, v, o)
    return b.add("groups_summed", (a, c), out, (n_lead, n_tail))


def _summed_batches(b: _Builder, a: int, c: int, summed: list[Index]) -> tuple[IndexTuple, int, int] | None:
    """The result axes and group lengths of a ``"groups_summed"`` step of ``a`` and ``c``, or None.

    ``(A.reshape(p, f, q) @ B.reshape(p, g, q).transpose(0, 2, 1)).sum(0)``: for two arrays
    sharing leading and trailing summed axes around their free ones (a convolution's
    kernel gradient from an im2col array (b, c·u·v, y·x) and the signal (b, o, y·x));
    ``tensordot`` would copy both to bring the summed axes together.
    """
    ia, ic = b.value_idx[a], b.value_idx[c]
    n_lead = next((n for n, (i, j) in enumerate(zip(ia, ic)) if i != j or i not in summed), min(len(ia), len(ic)))
    n_tail = len(summed) - n_lead
    if not n_lead or n_tail <= 0 or ia[len(ia) - n_tail :] != ic[len(ic) - n_tail :]:
        return None
    tail = ia[len(ia) - n_tail :]
    if set(ia[:n_lead] + tail) != set(summed) or b.size(tail) < MIN_GROUP_COLUMNS:
        return None
    return ia[n_lead : len(ia) - n_tail] + ic[n_lead : len(ic) - n_tail], n_lead, n_tail
