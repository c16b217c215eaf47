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

from dataclasses import dataclass

import numpy as np

from eincalc import algebra as alg
from eincalc import runtime
from eincalc.errors import ShapeError
from eincalc.expr import Add, Delta, Einsum, Node


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

    def evaluate(self, arrays: dict | None = None, /, **named_arrays: object) -> StructuredTensor | np.ndarray:
        """Values: the core computed by the reference interpreter, wrapped with the structure."""
        from eincalc.interpreter import bind_values, evaluate

        values, sizes, _ = bind_values([self.expr], named={**(arrays or {}), **named_arrays})
        core_vars = self.core.variables()
        core_value = np.asarray(evaluate(self.core, {k: v for k, v in values.items() if k in core_vars}, sizes))
        return structured_value(self, core_value, sizes)

    def __str__(self) -> str:
        if not self.is_compressed:
            return str(self.core)
        return f"{_delta_text(self)} ⊗ ({self.core})"


def _delta_text(c: Compressed) -> str:
    dims = c.label_dims
    shared = [lab for lab in dict.fromkeys(c.labels) if c.labels.count(lab) > 1 and lab not in c.core_labels]
    diag = [lab for lab in dict.fromkeys(c.labels) if c.labels.count(lab) > 1 and lab in c.core_labels]
    parts = [f"δ({dims[lab]})" for lab in shared] + [f"diag({dims[lab]})" for lab in diag]
    return " ⊗ ".join(parts)


def compress(expr: Node) -> Compressed:
    """The δ ⊗ core structure of ``expr`` (trivial when there is none).

    Examples:
        >>> import eincalc as ec
        >>> x = ec.vector("x", "n")
        >>> c = compress(ec.diag(ec.exp(x)))
        >>> c.labels, c.core_labels, c.core is ec.exp(x)
        (('a', 'a'), ('a',), True)
    """
    if isinstance(expr, Einsum):
        return _compress_einsum(expr)
    if isinstance(expr, Add):
        parts = [compress(t) for t in expr.terms]
        labels = _common_labels([p.labels for p in parts])
        if len(set(labels)) < len(labels):
            return _compress_sum(expr, parts, labels)
        mixed = _structured_sum(expr, parts)
        if mixed is not None:
            return mixed  # type: ignore[return-value]
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
# sums of structured terms: δ ⊗ core plus low-rank Gram terms
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


@dataclass(frozen=True)
class CompressedSum:
    """``expr`` as a sum of a δ ⊗ core term and low-rank Gram terms (:class:`LowRankTerm`).

    The Hessian of softmax regression, ``δ_bd C[a, b, c] − Σ_s w_s L[s, a, b] L[s, c, d]``
    with ``L[s, a, b] = X[s, a] P[s, b]``: block-diagonal per class plus a Gram term of
    rank n (the samples), applied and solved without the dense (dc) × (dc) matrix.
    """

    expr: Node
    block: Compressed
    low_rank: tuple[LowRankTerm, ...]

    is_compressed = True

    @property
    def nodes(self) -> tuple[Node, ...]:
        """What a program computes for this result, in order."""
        return (self.block.core, *(n for t in self.low_rank for n in t.nodes))

    def evaluate(self, arrays: dict | None = None, /, **named_arrays: object) -> StructuredSum:
        """Values: each term's nodes computed by the reference interpreter, wrapped."""
        from eincalc.interpreter import bind_values, evaluate

        values, sizes, _ = bind_values([self.expr], named={**(arrays or {}), **named_arrays})
        computed = []
        for node in self.nodes:
            wanted = node.variables()
            computed.append(np.asarray(evaluate(node, {k: v for k, v in values.items() if k in wanted}, sizes)))
        return structured_sum_value(self, computed, sizes)

    def __str__(self) -> str:
        terms = [f"{_delta_text(self.block)} ⊗ ({self.block.core})"]
        for t in self.low_rank:
            terms.append(f"{t.coef:g} · Σ_rows ({t.weights}) L Lᵀ, L = {t.factor}")
        return " + ".join(terms)


def _structured_sum(expr: Add, parts: list[Compressed]) -> CompressedSum | None:
    """A δ ⊗ core term (the compressed terms, merged) plus Gram terms, or None."""
    blocks = [(t, p) for t, p in zip(expr.terms, parts) if p.is_compressed]
    rest = [t for t, p in zip(expr.terms, parts) if not p.is_compressed]
    if not blocks or not rest or expr.ndim % 2:
        return None
    low = [_low_rank(t) for t in rest]
    if any(term is None for term in low):
        return None
    if len(blocks) == 1:
        block = blocks[0][1]
    else:
        labels = _common_labels([p.labels for _, p in blocks])
        if len(set(labels)) == len(labels):
            return None
        block = _compress_sum(alg.add([t for t, _ in blocks]), [p for _, p in blocks], labels)  # type: ignore[arg-type]
    return CompressedSum(expr, block, tuple(low))  # type: ignore[arg-type]


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


class StructuredSum(runtime.StructuredSum):
    """A sum of structured terms (:class:`eincalc.runtime.StructuredSum` with eincalc's errors)."""

    error = ShapeError


def structured_sum_value(c: CompressedSum, computed: list[np.ndarray], sizes: dict[str, int]) -> StructuredSum:
    """Wrap the values of ``c.nodes`` as a StructuredSum."""
    shape = tuple(sizes[d] for d in c.expr.dims)
    block = structured_value(c.block, computed[0], sizes)
    parts: list = [block if isinstance(block, StructuredTensor) else np.asarray(block)]
    for k, t in enumerate(c.low_rank):
        parts.append(LowRank(computed[1 + 2 * k], computed[2 + 2 * k], t.coef, shape))
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
