"""Compressed (δ ⊗ core) results: finding the structure and computing with it.

After simplification a unit tensor survives only where both of its indices are output
indices: the value is ``δ ⊗ core``. :func:`compress` finds that structure symbolically —
the core expression and the *labels* of the output axes, in which axes joined by a δ
share a label (``H[i,a,j,b] = 2 δ_ij (VᵀV)_ab`` has labels ``('a','b','a','c')`` and the
k×k core over ``('b','c')``). :class:`StructuredTensor` holds the core's values and
offers ``dense()``, ``matvec(v)`` (``@``) and ``solve(b)`` that use the structure: the
matrix-factorisation Newton step is a k×k solve, not an nk×nk one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from eincalc import algebra as alg
from eincalc import runtime
from eincalc.errors import ShapeError
from eincalc.expr import Add, Delta, Einsum, Node

T = TypeVar("T")


@dataclass(frozen=True)
class Compressed:
    """``expr`` as ``core`` embedded along ``labels``.

    ``labels[k]`` names output axis k; equal labels mean "only the diagonal is non-zero".
    ``core`` has one axis per label in ``core_labels`` (labels absent from the core are
    constant along the diagonal, as the i of δ_ij C_ab).
    """

    expr: Node
    core: Node
    labels: tuple[str, ...]
    core_labels: tuple[str, ...]

    @property
    def is_compressed(self) -> bool:
        """True when some output axes share a label (the result is not stored dense)."""
        return len(set(self.labels)) < len(self.labels)

    @property
    def label_dims(self) -> dict[str, str]:
        return dict(zip(self.labels, self.expr.dims))

    @property
    def nodes(self) -> tuple[Node, ...]:
        """What a program computes for this result: the core."""
        return (self.core,)

    def evaluate(self, arrays: dict | None = None, /, **named_arrays: object) -> StructuredTensor | np.ndarray:
        """Values: the core computed by the reference interpreter, wrapped with the structure."""
        (core_value,), sizes = _evaluate_nodes(self, {**(arrays or {}), **named_arrays})
        return structured_value(self, core_value, sizes)

    def __str__(self) -> str:
        if not self.is_compressed:
            return str(self.core)
        return f"{_delta_text(self)} ⊗ ({self.core})"


def _evaluate_nodes(c: Compressed | CompressedSum, named: dict) -> tuple[list[np.ndarray], dict[str, int]]:
    """The values of ``c.nodes`` by the reference interpreter, for the arrays of ``c.expr``."""
    from eincalc.interpreter import bind_values, evaluate

    values, sizes, _ = bind_values([c.expr], named=named)
    computed = []
    for node in c.nodes:
        wanted = node.variables()
        computed.append(np.asarray(evaluate(node, {k: v for k, v in values.items() if k in wanted}, sizes)))
    return computed, sizes


def _delta_text(c: Compressed) -> str:
    dims = c.label_dims
    shared = [lab for lab in dict.fromkeys(c.labels) if c.labels.count(lab) > 1 and lab not in c.core_labels]
    diag = [lab for lab in dict.fromkeys(c.labels) if c.labels.count(lab) > 1 and lab in c.core_labels]
    parts = [f"δ({dims[lab]})" for lab in shared] + [f"diag({dims[lab]})" for lab in diag]
    return " ⊗ ".join(parts)


def compress(expr: Node) -> Compressed:
    """The δ ⊗ core structure of ``expr`` (trivial when there is none).

    A sum of δ ⊗ cores is one δ ⊗ core; a product of independent factors, or a δ ⊗ core
    or Kronecker term plus Gram terms, is a :class:`CompressedSum`.

    Examples:
        >>> import eincalc as ec
        >>> x = ec.vector("x", "n")
        >>> c = compress(ec.diag(ec.exp(x)))
        >>> c.labels, c.core_labels, c.core is ec.exp(x)
        (('a', 'a'), ('a',), True)
    """
    if isinstance(expr, Einsum):
        found = _compress_einsum(expr)
        kron = None if found.is_compressed else _kronecker(expr)
        return found if kron is None else CompressedSum(expr, (kron,))  # type: ignore[return-value]
    if isinstance(expr, Add):
        parts = [_compress_einsum(t) if isinstance(t, Einsum) else _trivial(t) for t in expr.terms]
        labels = _common_labels([p.labels for p in parts])
        if len(set(labels)) < len(labels):
            return _compress_sum(expr, parts, labels)
        mixed = _structured_sum(expr, parts)
        if mixed is not None:
            return mixed  # type: ignore[return-value]
    return _trivial(expr)


def _trivial(expr: Node) -> Compressed:
    labels = alg.symbols(expr.ndim)
    return Compressed(expr, expr, labels, labels)


def _pattern(labels: tuple[str, ...]) -> tuple[int, ...]:
    first: dict[str, int] = {}
    return tuple(first.setdefault(lab, k) for k, lab in enumerate(labels))


def _common_labels(part_labels: list[tuple[str, ...]]) -> tuple[str, ...]:
    """Labels under which two axes share a label iff they share one in every part."""
    patterns = [_pattern(labels) for labels in part_labels]
    keys = list(zip(*patterns))
    names = dict(zip(dict.fromkeys(keys), alg.symbols(len(keys))))
    return tuple(names[key] for key in keys)


def _compress_sum(expr: Add, parts: list[Compressed], labels: tuple[str, ...]) -> Compressed:
    """A sum of δ ⊗ cores as one δ ⊗ (sum of cores) under the coarsest shared pattern.

    A term more diagonal than the pattern (the ridge term 0.2 δ_ij δ_ab next to
    2 δ_ij (VᵀV)_ab) keeps its extra δs inside its core: 2 VᵀV + 0.2 I is the k×k core.
    """
    dims = dict(zip(labels, expr.dims))
    unique = tuple(dict.fromkeys(labels))
    embedded = []
    for part in parts:
        spread: dict[str, list[str]] = {}  # a label of the part -> the shared labels it covers
        for own, shared in zip(part.labels, labels):
            members = spread.setdefault(own, [])
            if shared not in members:
                members.append(shared)
        operands: list[Node] = [part.core]
        indices = [tuple(spread[lab][0] for lab in part.core_labels)]
        for members in spread.values():
            for other in members[1:]:
                operands.append(alg.delta((dims[members[0]],)))
                indices.append((members[0], other))
        embedded.append((operands, indices))
    used = {lab for _, indices in embedded for idx in indices for lab in idx}
    core_labels = tuple(lab for lab in unique if lab in used)
    cores = []
    for operands, indices in embedded:
        missing = tuple(lab for lab in core_labels if not any(lab in idx for idx in indices))
        if missing:
            operands = [*operands, alg.const(1.0, tuple(dims[m] for m in missing))]
            indices = [*indices, missing]
        cores.append(alg.einsum(operands, indices, core_labels))
    return Compressed(expr, alg.add(cores), labels, core_labels)


def _compress_einsum(expr: Einsum) -> Compressed:
    parent: dict[str, str] = {}

    def find(i: str) -> str:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    rest_ops, rest_idx = [], []
    for op, idx in zip(expr.operands, expr.in_idx):
        if isinstance(op, Delta) and len(op.base) == 1:
            a, b = find(idx[0]), find(idx[1])
            if a != b:
                parent[max(a, b)] = min(a, b)
        else:
            rest_ops.append(op)
            rest_idx.append(idx)
    labels = tuple(find(i) for i in expr.out_idx)
    if len(set(labels)) == len(labels):
        plain = alg.symbols(expr.ndim)
        return Compressed(expr, expr, plain, plain)
    renamed = [tuple(find(i) for i in idx) for idx in rest_idx]
    present = {i for idx in renamed for i in idx}
    core_labels = tuple(lab for lab in dict.fromkeys(labels) if lab in present)
    core = alg.einsum(rest_ops, renamed, core_labels, expr.coef) if rest_ops else alg.const(expr.coef)
    return Compressed(expr, core, labels, core_labels)


# --------------------------------------------------------------------------------------
# sums of structured terms: δ ⊗ core, Kronecker products, low-rank Gram terms
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LowRankTerm:
    """``expr = coef · Σ_s weights[s] factor[s, α] factor[s, β]`` (s: the summed rows)."""

    expr: Node
    factor: Node
    weights: Node
    coef: float

    @property
    def nodes(self) -> tuple[Node, ...]:
        return (self.factor, self.weights)

    def __str__(self) -> str:
        return f"{self.coef:g} · Σ_rows ({self.weights}) L Lᵀ, L = {self.factor}"


@dataclass(frozen=True)
class KroneckerTerm:
    """``expr = coef · ⊗_c factors[c]``, factor c over the half positions ``positions[c]``.

    ``H[i, j, k, l] = 2 (AᵀA)[i, k] (BBᵀ)[j, l]`` (the Hessian of ‖A X B − C‖² in X) has
    factors AᵀA over position 0 and BBᵀ over position 1: solved factor by factor.
    """

    expr: Node
    factors: tuple[Node, ...]
    positions: tuple[tuple[int, ...], ...]
    coef: float

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.factors

    def __str__(self) -> str:
        return f"{self.coef:g} · " + " ⊗ ".join(f"({f})" for f in self.factors)


Part = Compressed | LowRankTerm | KroneckerTerm


@dataclass(frozen=True)
class CompressedSum:
    """``expr`` as a sum of structured terms: a δ ⊗ core, Kronecker products, low-rank Gram terms.

    The Hessian of softmax regression, ``δ_bd C[a, b, c] − Σ_s w_s L[s, a, b] L[s, c, d]``
    with ``L[s, a, b] = X[s, a] P[s, b]``: block-diagonal per class plus a Gram term of
    rank n (the samples), applied and solved without the dense (dc) × (dc) matrix. The
    Hessian of ‖A X B − C‖² + λ‖X‖²: a Kronecker product plus a multiple of the identity.
    """

    expr: Node
    parts: tuple[Part, ...]

    is_compressed = True

    @property
    def nodes(self) -> tuple[Node, ...]:
        """What a program computes for this result, in order."""
        return tuple(n for p in self.parts for n in p.nodes)

    def by_part(self, items: Sequence[T]) -> Iterator[tuple[Part, list[T]]]:
        """Each part with its slice of ``items`` (one item per node of :attr:`nodes`)."""
        at = 0
        for p in self.parts:
            yield p, list(items[at : at + len(p.nodes)])
            at += len(p.nodes)

    def evaluate(self, arrays: dict | None = None, /, **named_arrays: object) -> StructuredSum:
        """Values: each term's nodes computed by the reference interpreter, wrapped."""
        computed, sizes = _evaluate_nodes(self, {**(arrays or {}), **named_arrays})
        return structured_sum_value(self, computed, sizes)

    def code(self, codes: list[str], shape: str, structured_code: Callable[[Compressed, str], str]) -> str:
        """Python constructing the value from the code of :attr:`nodes`."""
        parts = []
        for p, mine in self.by_part(codes):
            if isinstance(p, Compressed):
                parts.append(structured_code(p, mine[0]))
            elif isinstance(p, LowRankTerm):
                parts.append(f"LowRank({mine[0]}, {mine[1]}, {p.coef!r}, {shape})")
            else:
                parts.append(f"Kronecker(({', '.join(mine)},), {p.positions!r}, {p.coef!r}, {shape})")
        return f"StructuredSum(({', '.join(parts)},))"

    def __str__(self) -> str:
        return " + ".join(f"{_delta_text(p)} ⊗ ({p.core})" if isinstance(p, Compressed) else str(p) for p in self.parts)


def _structured_sum(expr: Add, parts: list[Compressed]) -> CompressedSum | None:
    """A δ ⊗ core term (the compressed terms, merged) or a Kronecker term, plus Gram terms, or None."""
    blocks = [(t, p) for t, p in zip(expr.terms, parts) if p.is_compressed]
    rest = [t for t, p in zip(expr.terms, parts) if not p.is_compressed]
    if expr.ndim % 2 or not rest:
        return None
    kron = [k for k in (_kronecker(t) for t in rest) if k is not None]
    if len(kron) > 1:
        return None
    others = [t for t in rest if not kron or t is not kron[0].expr]
    low = [_low_rank(t) for t in others]
    if any(term is None for term in low) or not (blocks or kron):
        return None
    found: list[Part] = [*kron]
    if len(blocks) == 1:
        found.append(blocks[0][1])
    elif blocks:
        labels = _common_labels([p.labels for _, p in blocks])
        if len(set(labels)) == len(labels):
            return None
        merged = alg.add([t for t, _ in blocks])
        found.append(_compress_sum(merged, [p for _, p in blocks], labels))  # type: ignore[arg-type]
    return CompressedSum(expr, (*found, *low))  # type: ignore[arg-type]


def _kronecker(term: Node) -> KroneckerTerm | None:
    """``term`` as ``coef · ⊗_c K_c`` when its factors fall into groups on disjoint half positions.

    Groups are the connected components of the factors (joined by shared indices); each
    must carry the row and the column index of the same positions (α_p and β_p).
    """
    if not isinstance(term, Einsum) or term.ndim % 2 or term.ndim < 4:
        return None
    k = term.ndim // 2
    if term.dims[:k] != term.dims[k:] or len(set(term.out_idx)) != term.ndim:
        return None
    parent = list(range(len(term.operands)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for n, idx in enumerate(term.in_idx):
        for i in idx:
            m = first.setdefault(i, n)
            parent[find(n)] = find(m)
    groups: dict[int, list[int]] = {}
    for n in range(len(term.operands)):
        groups.setdefault(find(n), []).append(n)
    position = {i: p % k for p, i in enumerate(term.out_idx)}
    factors, positions = [], []
    for members in groups.values():
        present = {i for n in members for i in term.in_idx[n] if i in position}
        held = tuple(sorted({position[i] for i in present}))
        if not held or present != {term.out_idx[p] for p in held} | {term.out_idx[k + p] for p in held}:
            return None  # a group on no position (a scalar) or on a row without its column
        out = tuple(term.out_idx[p] for p in held) + tuple(term.out_idx[k + p] for p in held)
        factors.append(alg.einsum([term.operands[n] for n in members], [term.in_idx[n] for n in members], out))
        positions.append(held)
    if len(factors) < 2:
        return None
    order = sorted(range(len(factors)), key=lambda c: positions[c])
    return KroneckerTerm(term, tuple(factors[c] for c in order), tuple(positions[c] for c in order), term.coef)


def _low_rank(term: Node) -> LowRankTerm | None:
    """``term`` as ``coef · Σ_s w_s L[s, α] L[s, β]`` when its factors split that way.

    The output is two halves α, β of equal dims; each factor lives on one half (plus
    summed indices) or on summed indices only (the weights); the two halves' products
    are one node over (s, half), s being the summed indices they share.
    """
    if not isinstance(term, Einsum) or term.ndim % 2:
        return None
    k = term.ndim // 2
    if term.dims[:k] != term.dims[k:]:
        return None
    alpha, beta = set(term.out_idx[:k]), set(term.out_idx[k:])
    sides: dict[str, list[tuple[Node, tuple[str, ...]]]] = {"left": [], "right": [], "weights": []}
    for op, idx in zip(term.operands, term.in_idx):
        on_alpha, on_beta = bool(alpha & set(idx)), bool(beta & set(idx))
        if on_alpha and on_beta:
            return None
        sides["left" if on_alpha else "right" if on_beta else "weights"].append((op, idx))
    if not sides["left"] or not sides["right"]:
        return None
    summed_left = {i for _, idx in sides["left"] for i in idx if i not in alpha}
    summed_right = {i for _, idx in sides["right"] for i in idx if i not in beta}
    rows = tuple(sorted(summed_left & summed_right))
    if not rows:
        return None
    index_dim = {i: d for op, idx in zip(term.operands, term.in_idx) for i, d in zip(idx, op.dims)}
    weight_idx = {i for _, idx in sides["weights"] for i in idx}
    if weight_idx & ((summed_left | summed_right) - set(rows)):
        return None  # weights tied to one half's private sums: not a Gram term

    def half(side: str, out: tuple[str, ...]) -> Node:
        return alg.einsum([op for op, _ in sides[side]], [idx for _, idx in sides[side]], rows + out)

    left, right = half("left", term.out_idx[:k]), half("right", term.out_idx[k:])
    if left is not right:
        return None
    if sides["weights"]:
        weights = alg.einsum([op for op, _ in sides["weights"]], [idx for _, idx in sides["weights"]], rows)
    else:
        weights = alg.const(1.0, tuple(index_dim[i] for i in rows))
    return LowRankTerm(term, left, weights, term.coef)


# --------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------
class StructuredTensor(runtime.StructuredTensor):
    """Values of a compressed result: ``core`` over ``core_labels`` embedded along ``labels``.

    ``shape`` is the dense shape; ``dense()``, ``matvec(v)``, ``t @ v`` and ``solve(b)`` use
    the structure (see :class:`eincalc.runtime.StructuredTensor`, the same class that
    generated modules carry). Errors are :class:`~eincalc.errors.ShapeError`.
    """

    error = ShapeError


class LowRank(runtime.LowRank):
    """A weighted Gram term's values (:class:`eincalc.runtime.LowRank` with eincalc's errors)."""

    error = ShapeError


class Kronecker(runtime.Kronecker):
    """A Kronecker product's values (:class:`eincalc.runtime.Kronecker` with eincalc's errors)."""

    error = ShapeError


class StructuredSum(runtime.StructuredSum):
    """A sum of structured terms (:class:`eincalc.runtime.StructuredSum` with eincalc's errors)."""

    error = ShapeError


def structured_sum_value(c: CompressedSum, computed: list[np.ndarray], sizes: dict[str, int]) -> StructuredSum:
    """Wrap the values of ``c.nodes`` as a StructuredSum."""
    shape = tuple(sizes[d] for d in c.expr.dims)
    parts: list = []
    for p, mine in c.by_part(computed):
        if isinstance(p, Compressed):
            value = structured_value(p, mine[0], sizes)
            parts.append(value if isinstance(value, StructuredTensor) else np.asarray(value))
        elif isinstance(p, LowRankTerm):
            parts.append(LowRank(mine[0], mine[1], p.coef, shape))
        else:
            parts.append(Kronecker(tuple(mine), p.positions, p.coef, shape))
    return StructuredSum(tuple(parts))


def structured_value(c: Compressed, core_value: np.ndarray, sizes: dict[str, int]) -> StructuredTensor | np.ndarray:
    """Wrap ``core_value`` (the value of ``c.core``) as a StructuredTensor (or return it dense)."""
    if not c.is_compressed:
        return core_value
    letters = {lab: alg.symbols(1, k)[0] for k, lab in enumerate(dict.fromkeys(c.labels))}
    shape = tuple(sizes[d] for d in c.expr.dims)
    return StructuredTensor(
        core_value, "".join(letters[lab] for lab in c.core_labels), "".join(letters[lab] for lab in c.labels), shape
    )
