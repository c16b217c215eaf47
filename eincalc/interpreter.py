"""The reference interpreter: values of an expression for given arrays.

Deliberately simple (``numpy.einsum`` and the registries' NumPy functions, one node at a
time): it is the oracle that generated code is tested against, not the fast path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import opt_einsum

from eincalc import dims as dimsmod
from eincalc._types import Dims, SizeDict
from eincalc.calling import bind_arguments, signature
from eincalc.errors import ArgumentError, SizeError, UnsupportedNodeError
from eincalc.expr import Add, Array, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var, Window
from eincalc.functions import get_elementwise, get_unary
from eincalc.graph import topo_order


def shape_of(dims: Dims, sizes: SizeDict) -> tuple[int, ...]:
    """Concrete shape of ``dims``."""
    return tuple(sizes[d] for d in dims)


def evaluate(expr: Node | Sequence[Node], /, *args: object, **named_arrays: object) -> object:
    """Dense values of ``expr`` (or of each expression in a list) for the given arrays.

    Arrays come as the function's signature takes them (:mod:`eincalc.calling`):
    positionally in declaration order, or as keywords (``X=...``); or, as before, in a
    mapping followed by an optional mapping of dim sizes. A derivative takes its
    function's arrays, also those it no longer reads; dims that no array given carries
    get sizes from int keywords named after the dim (``evaluate(H, V=Vv, m=4)``).
    float32 arrays give float32 values.

    The numerically stable forms of :func:`eincalc.simplify` are applied first, as
    :func:`eincalc.compile` does, so both give the same values (``log(1 + exp(1000.0))``
    is 1000, not inf).

    Examples:
        >>> import numpy as np, eincalc as ec
        >>> X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
        >>> ec.evaluate(X @ w, X=np.eye(2), w=np.array([1.0, 2.0]))
        array([1., 2.])
        >>> ec.evaluate(X @ w, np.eye(2), np.array([1.0, 2.0]))
        array([1., 2.])
    """
    roots = list(expr) if isinstance(expr, (list, tuple)) else [expr]
    for r in roots:
        if not isinstance(r, Node):
            raise TypeError(f"evaluate needs eincalc expressions, got {type(r).__name__}")
    fixed: Mapping[str, int] | None = None
    if args and (args[0] is None or isinstance(args[0], Mapping)):  # evaluate(f, arrays[, sizes])
        if len(args) > 2 or (len(args) == 2 and not isinstance(args[1], (Mapping, type(None)))):
            raise ArgumentError("evaluate takes arrays positionally, or one mapping of arrays and one of sizes")
        named_arrays = {**(args[0] or {}), **named_arrays}  # type: ignore[dict-item]
        fixed = args[1] if len(args) == 2 else None  # type: ignore[assignment]
        args = ()
    values, bound, dtype = bind_values(roots, args, named_arrays, fixed)
    from eincalc.rewrite import simplify  # rewrite builds through ops, which evaluates constants

    # the stable forms compile uses (softplus for log(1 + exp(z)), logsumexp, …): same values, no overflow
    roots = [simplify(r) for r in roots]
    memo: dict[int, np.ndarray] = {}
    for node in topo_order(roots):
        memo[id(node)] = _eval_node(node, [memo[id(c)] for c in node.children], values, bound, dtype)
    out = [memo[id(r)] for r in roots]
    return out if isinstance(expr, (list, tuple)) else out[0]


def bind_values(
    roots: Sequence[Node],
    args: Sequence[object] = (),
    named: Mapping[str, object] | None = None,
    fixed: Mapping[str, int] | None = None,
) -> tuple[dict[str, np.ndarray], SizeDict, np.dtype]:
    """Bind arrays to the signature of ``roots``: values by name, the size of every dim, the dtype."""
    if fixed is not None and not isinstance(fixed, Mapping):
        raise ArgumentError(f"sizes must be a mapping of dim -> int, got {type(fixed).__name__}")
    nodes = topo_order(list(roots))
    used = {n.name for n in nodes if isinstance(n, Var)}
    dims = list(dict.fromkeys(d for n in nodes for d in n.dims))
    constants = [n for n in nodes if isinstance(n, (Array, Window))]
    b = bind_arguments(signature(list(roots)), used, dims, args, named, fixed, constants=constants)
    return b.arrays, b.sizes, b.dtype


def _einsum(node: Einsum, args: list[np.ndarray]) -> np.ndarray:
    """``numpy.einsum`` of the node; past its 52 letters, opt_einsum's pairwise steps.

    Canonical indices are named in order of first appearance, so a spec has letters
    beyond ``a-zA-Z`` only when it has more than 52 distinct indices.
    """
    if len({i for idx in node.in_idx for i in idx}) <= 52:
        return np.einsum(node.spec, *args, optimize=len(args) > 2)
    try:
        return opt_einsum.contract(node.spec, *args, optimize="greedy")
    except (ValueError, UnicodeError):
        raise UnsupportedNodeError(
            f"an einsum step with more than 52 distinct indices cannot run on NumPy ({node.spec[:60]}…)"
        ) from None


def _eval_node(
    node: Node, args: list[np.ndarray], values: dict[str, np.ndarray], sizes: SizeDict, dtype: np.dtype
) -> np.ndarray:
    if isinstance(node, Var):
        return values[node.name]
    if isinstance(node, Const):
        return np.full(shape_of(node.dims, sizes), node.value, dtype=dtype)
    if isinstance(node, Array):
        return node.data
    if isinstance(node, Window) and node.rows is not None:
        n = sizes[node.dims[1]] if not dimsmod.is_literal(node.dims[1]) else int(node.dims[1])
        if max(node.rows) >= n:
            raise SizeError(f"position {max(node.rows)} is out of range for dim {node.dims[1]!r} of size {n}")
        return np.eye(n)[list(node.rows)]
    if isinstance(node, Window):
        size, n = shape_of(node.dims, sizes)
        first = n - node.start if node.from_end else node.start
        if first < 0 or first + size > n:
            raise SizeError(f"a selection of {size} entries from {first} does not fit dim {node.dims[1]!r} of size {n}")
        return np.eye(size, n, k=first)
    if isinstance(node, Delta):
        n = int(np.prod(shape_of(node.base, sizes), dtype=np.int64))
        return np.eye(n, dtype=dtype).reshape(shape_of(node.dims, sizes))
    if isinstance(node, Shift):
        return np.asarray(node.dense(), dtype=dtype)
    if isinstance(node, Einsum):
        result = _einsum(node, args) if args else np.array(1.0)
        return np.asarray(node.coef * np.asarray(result, dtype=dtype), dtype=dtype)
    if isinstance(node, Add):
        total = args[0].copy()
        for a in args[1:]:
            total = total + a
        return total
    if isinstance(node, Elementwise):
        with np.errstate(all="ignore"):
            return np.asarray(get_elementwise(node.fn).evaluate(args, node.param), dtype=dtype)
    if isinstance(node, Unary):
        entry = get_unary(node.fn)
        param = shape_of(node.dims, sizes) if entry.dims_param else node.axis  # a reshape's target shape
        return np.asarray(entry.numpy(args[0], param), dtype=dtype)
    raise UnsupportedNodeError(f"the interpreter has no rule for {type(node).__name__}")
