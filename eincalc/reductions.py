"""Reductions beyond sums: ``var``, ``std``, ``max``, ``min``, ``prod`` (NumPy's signatures).

``var`` and ``std`` are built from sums and means; ``max`` and ``prod`` are general
functions of :mod:`eincalc.tensor_functions` (ties of ``max`` share the derivative evenly);
``min`` is ``-max(-x)``. ``sum`` and ``mean`` live in :mod:`eincalc.ops`.
"""

from __future__ import annotations

from eincalc import algebra as alg
from eincalc.expr import Node
from eincalc.ops import Operand, _axes, _count, _keep, as_node, mean, multiply, negative, power, sqrt, subtract
from eincalc.ops import sum as _sum


def var(x: Operand, axis: int | tuple[int, ...] | None = None, ddof: int = 0, keepdims: bool = False) -> Node:
    """The variance over ``axis``: ``sum((x - mean)**2) / (N - ddof)``, NumPy's ``var``."""
    node = as_node(x)
    axes = _axes(node, axis, "var")
    centred = subtract(node, mean(node, axis, keepdims=True))
    total = _sum(multiply(centred, centred), axis, keepdims)
    count = _count(node, axes)
    if ddof:
        count = subtract(count, float(ddof))
    return multiply(total, power(count, -1.0))


def std(x: Operand, axis: int | tuple[int, ...] | None = None, ddof: int = 0, keepdims: bool = False) -> Node:
    """The standard deviation ``sqrt(var(x, axis, ddof))``."""
    return sqrt(var(x, axis, ddof, keepdims))


def _reduce_fn(name: str, x: Operand, axis: int | tuple[int, ...] | None, keepdims: bool) -> Node:
    node = as_node(x, f"argument of {name}")
    axes = _axes(node, axis, name)
    if not axes:
        return node
    out = alg.unary(name, node, axes if len(axes) > 1 else axes[0])
    return _keep(out, node.ndim, axes) if keepdims else out


def max(x: Operand, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Node:  # noqa: A001
    """The maximum over ``axis`` (all by default); tied maxima share the derivative evenly."""
    return _reduce_fn("max", x, axis, keepdims)


def min(x: Operand, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Node:  # noqa: A001
    """The minimum over ``axis``: ``-max(-x)``."""
    return negative(max(negative(as_node(x, "argument of min")), axis, keepdims))


def prod(x: Operand, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Node:
    """The product over ``axis`` (its derivative ``P / x`` is nan where an entry is exactly 0)."""
    return _reduce_fn("prod", x, axis, keepdims)
