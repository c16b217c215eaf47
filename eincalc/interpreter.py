"""The reference interpreter: values of an expression for given arrays.

Deliberately simple (``numpy.einsum`` and the registries' NumPy functions, one node at a
time): it is the oracle that generated code is tested against, not the fast path.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import opt_einsum

from eincalc import dims as dimsmod
from eincalc._types import Dims, SizeDict
from eincalc.algebra import normalise_name
from eincalc.errors import SizeError, UnsupportedNodeError
from eincalc.expr import Add, Const, Delta, Einsum, Elementwise, Node, Unary, Var
from eincalc.functions import get_elementwise, get_unary
from eincalc.graph import topo_order


def bind_sizes(
    roots: Node | list[Node], arrays: Mapping[str, object], sizes: Mapping[str, int] | None = None
) -> tuple[dict[str, np.ndarray], SizeDict]:
    """Check ``arrays`` against the variables of ``roots`` and bind every dim to a size.

    Raises :class:`SizeError` naming the variable and dim for a missing or extra array, a
    rank mismatch or two sizes for one dim.
    """
    if not all(isinstance(k, str) and k.isascii() for k in arrays):  # names are NFKC, as variables' are
        arrays = {normalise_name(k) if isinstance(k, str) else k: v for k, v in arrays.items()}
    nodes = topo_order(roots)
    variables: dict[str, Var] = {}
    for n in nodes:
        if isinstance(n, Var):
            variables.setdefault(n.name, n)
    missing = [name for name in variables if name not in arrays]
    if missing:
        raise SizeError(f"no array given for {', '.join(missing)} (the expression needs {', '.join(variables)})")
    all_dims = {d for n in nodes for d in n.dims}
    sizes = dict(sizes or {})
    for name in list(arrays):
        # an int keyword naming a dim (not a variable) is that dim's size: evaluate(H, V=..., m=4)
        if name not in variables and name in all_dims and isinstance(arrays[name], int):
            sizes[name] = arrays[name]  # type: ignore[assignment]
    arrays = {k: v for k, v in arrays.items() if k not in sizes or k in variables}
    extra = [name for name in arrays if name not in variables]
    if extra:
        raise SizeError(
            f"array(s) given for {', '.join(extra)}, which the expression does not use "
            f"(it uses {', '.join(variables) or 'no variables'})"
        )
    bound: SizeDict = {}
    source: dict[str, str] = {}
    if sizes:
        for d, s in sizes.items():
            bound[d] = int(s)
            source[d] = "the sizes given"
    values: dict[str, np.ndarray] = {}
    for name, var in variables.items():
        value = np.asarray(arrays[name], dtype=float)
        if value.ndim != var.ndim:
            raise SizeError(
                f"{name} has dims {dimsmod.fmt(var.dims)} (rank {var.ndim}) but the array has shape {value.shape}"
            )
        for axis, (d, s) in enumerate(zip(var.dims, value.shape)):
            _bind(bound, source, d, int(s), f"axis {axis} of {name}")
        values[name] = value
    for n in nodes:  # constants may carry dims no variable has (ones(k), fixed sizes)
        for d in n.dims:
            if d not in bound and dimsmod.is_literal(d):
                bound[d] = int(d)
    unbound = sorted({d for n in nodes for d in n.dims if d not in bound})
    if unbound:
        raise SizeError(f"no size for dim(s) {', '.join(unbound)}: pass them as sizes")
    return values, bound


def _bind(bound: SizeDict, source: dict[str, str], dim: str, size: int, where: str) -> None:
    if dimsmod.is_literal(dim) and int(dim) != size:
        raise SizeError(f"{where} has size {size} but its dim is fixed to {dim}")
    if dim in bound and bound[dim] != size:
        raise SizeError(f"dim {dim!r} has size {bound[dim]} from {source[dim]} but size {size} from {where}")
    bound.setdefault(dim, size)
    source.setdefault(dim, where)


def shape_of(dims: Dims, sizes: SizeDict) -> tuple[int, ...]:
    """Concrete shape of ``dims``."""
    return tuple(sizes[d] for d in dims)


def evaluate(
    expr: Node | list[Node],
    arrays: Mapping[str, object] | None = None,
    sizes: Mapping[str, int] | None = None,
    /,
    **named_arrays: object,
) -> object:
    """Dense values of ``expr`` (or of each expression in a list) for the given arrays.

    Arrays come as keywords (``X=...``) or as a mapping; dims are bound from their shapes.
    Dims that no variable carries get sizes from ``sizes`` or from int keywords named
    after the dim (``evaluate(H, V=Vv, m=4)``).

    The numerically stable forms of :func:`eincalc.simplify` are applied first, as
    :func:`eincalc.compile` does, so both give the same values (``log(1 + exp(1000.0))``
    is 1000, not inf).

    Examples:
        >>> import numpy as np, eincalc as ec
        >>> X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
        >>> ec.evaluate(X @ w, X=np.eye(2), w=np.array([1.0, 2.0]))
        array([1., 2.])
    """
    roots = list(expr) if isinstance(expr, (list, tuple)) else [expr]
    for r in roots:
        if not isinstance(r, Node):
            raise TypeError(f"evaluate needs eincalc expressions, got {type(r).__name__}")
    values, bound = bind_sizes(roots, {**(arrays or {}), **named_arrays}, sizes)
    from eincalc.rewrite import simplify  # rewrite builds through ops, which evaluates constants

    # the stable forms compile uses (softplus for log(1 + exp(z)), logsumexp, …): same values, no overflow
    roots = [simplify(r) for r in roots]
    memo: dict[int, np.ndarray] = {}
    for node in topo_order(roots):
        memo[id(node)] = _eval_node(node, [memo[id(c)] for c in node.children], values, bound)
    out = [memo[id(r)] for r in roots]
    return out if isinstance(expr, (list, tuple)) else out[0]


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


def _eval_node(node: Node, args: list[np.ndarray], values: dict[str, np.ndarray], sizes: SizeDict) -> np.ndarray:
    if isinstance(node, Var):
        return values[node.name]
    if isinstance(node, Const):
        return np.full(shape_of(node.dims, sizes), node.value)
    if isinstance(node, Delta):
        n = int(np.prod(shape_of(node.base, sizes), dtype=np.int64))
        return np.eye(n).reshape(shape_of(node.dims, sizes))
    if isinstance(node, Einsum):
        result = _einsum(node, args) if args else np.array(1.0)
        return node.coef * np.asarray(result, dtype=float)
    if isinstance(node, Add):
        total = args[0].copy()
        for a in args[1:]:
            total = total + a
        return total
    if isinstance(node, Elementwise):
        with np.errstate(all="ignore"):
            return np.asarray(get_elementwise(node.fn).numpy(args[0], node.param), dtype=float)
    if isinstance(node, Unary):
        return np.asarray(get_unary(node.fn).numpy(args[0], node.axis), dtype=float)
    raise UnsupportedNodeError(f"the interpreter has no rule for {type(node).__name__}")
