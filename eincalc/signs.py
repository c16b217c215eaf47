"""Bounds on values proved from structure: what the algebra knows about signs.

:func:`bounds` gives ``(lo, hi)`` with ``lo ≤ node ≤ hi`` entry-wise wherever ``node`` is
defined, from the images in the element-wise registry (``sigmoid ∈ [0, 1]``,
``exp ≥ 0``), constants, even powers, squares in products (``y ⊙ y``) and interval
arithmetic over sums (``1 − sigmoid(z) ≥ 0``). It is sound, not complete: ``(-inf,
inf)`` means "not proved". Code generation uses it to compute ``Mᵀ D M`` with ``D ≥ 0``
as ``(M √D)ᵀ (M √D)`` (a symmetric rank-k update at half the flops).
"""

from __future__ import annotations

import math
import weakref

from eincalc.expr import Add, Const, Delta, Einsum, Elementwise, Node, Unary
from eincalc.graph import topo_order

Interval = tuple[float, float]
_ANY: Interval = (-math.inf, math.inf)
_UNIT_RANGE = {"softmax": (0.0, 1.0)}

_CACHE: weakref.WeakKeyDictionary[Node, Interval] = weakref.WeakKeyDictionary()


def bounds(node: Node) -> Interval:
    """``(lo, hi)`` with ``lo ≤ node ≤ hi`` wherever ``node`` is defined."""
    known = _CACHE.get(node)
    if known is not None:
        return known
    for n in topo_order(node, stop=lambda m: m in _CACHE):
        if n not in _CACHE:
            _CACHE[n] = _bounds_of(n)
    return _CACHE[node]


def is_nonnegative(node: Node) -> bool:
    """True if ``node ≥ 0`` entry-wise is proved wherever it is defined."""
    return bounds(node)[0] >= 0.0


def _bounds_of(node: Node) -> Interval:
    if isinstance(node, Const):
        return (node.value, node.value)
    if isinstance(node, Delta):
        return (0.0, 1.0)
    if isinstance(node, Add):
        los, his = [_CACHE[t][0] for t in node.terms], [_CACHE[t][1] for t in node.terms]
        return (-math.inf if -math.inf in los else math.fsum(los), math.inf if math.inf in his else math.fsum(his))
    if isinstance(node, Elementwise):
        return _elementwise_bounds(node)
    if isinstance(node, Einsum):
        return _product_bounds(node)
    if isinstance(node, Unary):
        return _UNIT_RANGE.get(node.fn, _ANY)
    return _ANY


def _elementwise_bounds(node: Elementwise) -> Interval:
    from eincalc.functions import get_elementwise

    if node.fn == "pow":
        assert node.param is not None
        p = node.param
        # an even power, a power of x ≥ 0, or a fractional one (defined only for x ≥ 0)
        return (0.0, math.inf) if p % 2 == 0 or _CACHE[node.arg][0] >= 0.0 or not float(p).is_integer() else _ANY
    if node.fn in ("maximum", "minimum", "where"):
        parts = [_CACHE[a] for a in (node.args[1:] if node.fn == "where" else node.args)]
        los, his = [lo for lo, _ in parts], [hi for _, hi in parts]
        if node.fn == "maximum":
            return (max(los), max(his))
        if node.fn == "minimum":
            return (min(los), min(his))
        return (min(los), max(his))
    return get_elementwise(node.fn).image


def _product_bounds(node: Einsum) -> Interval:
    """The interval product of the factors (nothing summed), or the sign of a sum of products.

    Each factor (or pair of equal factors, a square) ≥ 0 makes a sum of products ≥ 0.
    """
    signed = _product_sign(node)
    if not all(set(idx) <= set(node.out_idx) for idx in node.in_idx):
        return signed
    lo, hi = node.coef, node.coef
    for op in node.operands:
        lo, hi = _times((lo, hi), _CACHE[op])
    return (max(lo, signed[0]), min(hi, signed[1]))


def _product_sign(node: Einsum) -> Interval:
    pairs: dict[tuple[int, tuple[str, ...]], int] = {}
    for op, idx in zip(node.operands, node.in_idx):
        pairs[(id(op), idx)] = pairs.get((id(op), idx), 0) + 1
    sign = 1.0 if node.coef >= 0 else -1.0
    for op, idx in zip(node.operands, node.in_idx):
        if pairs[(id(op), idx)] % 2 == 0:
            continue  # y ⊙ y: a square
        lo, hi = _CACHE[op]
        if lo >= 0.0:
            continue
        if hi <= 0.0:
            sign = -sign
            continue
        return _ANY
    return (0.0, math.inf) if sign > 0 else (-math.inf, 0.0)


def _times(x: Interval, y: Interval) -> Interval:
    """Interval multiplication (0 · ∞ taken as 0: a bound, not a value)."""
    products = [0.0 if a == 0.0 or b == 0.0 else a * b for a in x for b in y]
    return (min(products), max(products))
