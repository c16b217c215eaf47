"""The registry of general (not entry-wise) tensor functions (``UNARY``): one entry each.

An entry gives its dims rule, a stable NumPy evaluation and its Jacobian as an
expression of dims ``out.dims + arg.dims`` (the chain rule in :mod:`eincalc.diff` does
the rest). Functions along axes (softmax, log_softmax, logsumexp, max) take one axis or
a tuple of them; a node stores an int for one axis, a sorted tuple for several and None
for "all axes".

``max`` along axes splits the derivative evenly among tied maxima (JAX's
``reduce_max``): ∂max/∂xᵢ = [xᵢ = max] / #{j : xⱼ = max}.

Element-wise functions live in :mod:`eincalc.functions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from eincalc._types import Dims
from eincalc.errors import ShapeError, UnknownNameError
from eincalc.expr import Node, Unary

Axis = int | tuple[int, ...] | None


def _ops() -> Any:
    from eincalc import ops

    return ops


def _alg() -> Any:
    from eincalc import algebra

    return algebra


def axes_of(axis: Axis, rank: int) -> tuple[int, ...]:
    """A stored axis (int, tuple or None for all) as a tuple of axes."""
    if axis is None:
        return tuple(range(rank))
    return (axis,) if isinstance(axis, int) else axis


@dataclass(frozen=True)
class UnaryFn:
    r"""A tensor function that is not entry-wise.

    ``takes_axis``: None (no axis), "one" (an axis or a tuple of them, default -1) or
    "optional" (axes, or None for all axes). ``jacobian(node)`` returns ∂node/∂arg as an
    expression of dims ``node.dims + arg.dims``. ``latex`` is the LaTeX name, or a template
    with ``{0}`` for the argument (``\log\lvert\det({0})\rvert``).

    The optional spellings make an entry complete on its own (the entries of
    :mod:`eincalc.linalg` and :mod:`eincalc.reshapes` use them all; older entries keep
    their NumPy code in ``NumPyPrinter._unary_<name>`` methods):
    ``dims_rule`` maps the argument's dims to the result's (``pinv`` transposes);
    ``matrix`` asks for a rank-2 argument; ``latex_power`` writes ``arg^{…}`` (``+`` for
    the pseudo-inverse); ``syntax`` is the printed NumPy syntax with ``{0}`` for the
    argument (``eigh({0})[1]``); ``code(printer, node, x, ctx)`` returns the NumPy code
    (an :class:`eincalc.codegen.printer.Expr`); ``cubic`` prices it at n³ in ``ec.cost``,
    ``view`` at nothing (a reshape).
    """

    name: str
    numpy: Callable[[Any, Axis], Any]
    jacobian: Callable[[Unary], Node]
    square: bool = False
    takes_axis: str | None = None
    reduces: bool = False  # the result drops the axes (or every axis when axis is None)
    scalar: bool = False  # the result is a scalar (det, logdet)
    latex: str = ""
    param: str | None = None  # an integer parameter kept in the node's axis field (triu's k)
    dims_rule: Callable[[Dims], Dims] | None = None
    matrix: bool = False
    latex_power: str | None = None
    syntax: str | None = None
    code: Callable[[Any, Unary, Any, Any], Any] | None = None
    cubic: bool = False
    view: bool = False  # the code is a view of the argument (no flops, no memory)
    dims_param: bool = False  # the node's axis field holds its target dims (reshape)
    tangent: Callable[[Unary, Node, int], Node] | None = None  # a linear map's own rules, instead of
    cotangent: Callable[[Unary, Node, int], Node] | None = None  # contracting with its Jacobian

    def printed(self, arg: str, dims: Dims, axis: Axis) -> str:
        """The NumPy-dialect text of this function applied to the printed ``arg``."""
        if self.syntax is not None:
            return self.syntax.format(arg)
        if self.dims_param:
            return f"{self.name}({arg}, {' '.join(axis)!r})"  # type: ignore[arg-type]
        return f"{self.name}({arg}{self.keyword(dims, axis)})"

    def keyword(self, dims: Dims, axis: Axis) -> str:
        """The printed keyword, ``", axis=1"`` or ``", k=1"``; empty for the default."""
        if self.dims_param:
            return ""
        if self.param is not None:
            return "" if axis == 0 else f", {self.param}={axis}"
        default = len(dims) - 1 if self.takes_axis == "one" else None
        return "" if axis == default else f", axis={axis}"

    def normalise_axis(self, dims: Dims, axis: object) -> Axis:
        if self.dims_param:
            from eincalc.dims import same_size

            if not isinstance(axis, tuple) or not all(isinstance(d, str) for d in axis):
                raise ShapeError(f"{self.name} needs target dims, got {axis!r}")
            same_size(dims, axis, self.name)
            return axis  # type: ignore[return-value]
        if self.param is not None:
            if len(dims) != 2:
                from eincalc.dims import fmt

                raise ShapeError(f"{self.name} needs a matrix, got dims {fmt(dims)}")
            value = 0 if axis is None else axis
            if not isinstance(value, int) or isinstance(value, bool):
                raise ShapeError(f"{self.name}: {self.param} must be an int, got {axis!r}")
            return value
        if self.takes_axis is None:
            if axis is not None:
                raise ShapeError(f"{self.name} takes no axis")
            if self.matrix and len(dims) != 2:
                from eincalc.dims import fmt

                raise ShapeError(f"{self.name} needs a matrix, got dims {fmt(dims)}")
            if self.square and (len(dims) != 2 or dims[0] != dims[1]):
                from eincalc.dims import fmt, require_same

                if len(dims) != 2:
                    raise ShapeError(f"{self.name} needs a square matrix, got dims {fmt(dims)}")
                require_same(dims[0], dims[1], f"{self.name} needs a square matrix")
            return None
        if axis is None:
            if self.takes_axis == "one":
                axis = -1
            else:
                return None
        given = axis if isinstance(axis, tuple) else (axis,)
        found: list[int] = []
        for a in given:
            if not isinstance(a, int) or isinstance(a, bool):
                raise ShapeError(f"{self.name}: axis must be an int or a tuple of ints, got {axis!r}")
            if not -len(dims) <= a < len(dims):
                raise ShapeError(f"{self.name}: axis {a} is out of range for dims of rank {len(dims)}")
            if a % len(dims) in found:
                raise ShapeError(f"{self.name}: axis {a} is given twice in {axis!r}")
            found.append(a % len(dims))
        if not found:
            raise ShapeError(f"{self.name}: an empty tuple of axes")
        if len(found) == 1:
            return found[0]
        if self.takes_axis == "optional" and len(found) == len(dims):
            return None
        return tuple(sorted(found))

    def out_dims(self, dims: Dims, axis: Axis) -> Dims:
        if self.scalar:
            return ()
        if self.dims_param:
            return axis  # type: ignore[return-value]
        if self.dims_rule is not None:
            return self.dims_rule(dims)
        if not self.reduces:
            return dims
        drop = axes_of(axis, len(dims))
        return tuple(d for k, d in enumerate(dims) if k not in drop)


# initial=-inf: over a size-0 axis the max is -inf (log-sum-exp of nothing), not an error
def _softmax_np(x: Any, axis: Axis) -> Any:
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_np(x: Any, axis: Axis) -> Any:
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):  # a size-0 axis: log(0), never read
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _logsumexp_np(x: Any, axis: Axis) -> Any:
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0.0)  # all -inf (or an inf) along the axis: no shift
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out.reshape(()) if axis is None else np.squeeze(out, axis=axis)


def _logdet_np(x: Any, axis: Axis) -> Any:
    sign, value = np.linalg.slogdet(x)
    return value  # log|det|; its derivative inv(A)ᵀ holds for either sign


def _jac_inv(node: Unary) -> Node:
    """∂inv(A)[i,j]/∂A[k,l] = −B[i,k] B[l,j] with B = inv(A)."""
    return _alg().einsum([node, node], ["ik", "lj"], "ijkl", -1.0)


def _adjugate_np(x: Any, axis: Axis) -> Any:
    """adj(A) = det(A) inv(A), finite at singular A too.

    From A = U S Vᵀ: adj(A) = det(U) det(Vᵀ) V diag(Π_{j≠i} s_j) Uᵀ (products of the
    other singular values, so nothing is divided by a zero one).
    """
    u, s, vt = np.linalg.svd(x)
    before = np.cumprod(np.concatenate(([1.0], s)))[:-1]
    after = np.cumprod(np.concatenate(([1.0], s[::-1])))[-2::-1]
    return np.linalg.det(u) * np.linalg.det(vt) * (vt.T * (before * after)) @ u.T


def _jac_adjugate(node: Unary) -> Node:
    """∂adj(A)[i,j]/∂A[k,l] = adj(A)[i,j] B[l,k] − adj(A)[i,k] B[l,j] with B = inv(A)."""
    alg = _alg()
    inv = _ops().inv(node.arg)
    return alg.add([alg.einsum([node, inv], ["ij", "lk"], "ijkl"), alg.einsum([node, inv], ["ik", "lj"], "ijkl", -1.0)])


def _jac_det(node: Unary) -> Node:
    """∂det(A)/∂A[k,l] = adj(A)[l,k] (Jacobi's formula; det(A) inv(A) would fail at singular A)."""
    return _ops().transpose(_ops().adjugate(node.arg))


def _jac_logdet(node: Unary) -> Node:
    """∂log|det A|/∂A[k,l] = B[l,k] with B = inv(A)."""
    return _ops().transpose(_ops().inv(node.arg))


class _Letters:
    """Index letters for a function along axes ``A`` of an argument of rank r.

    ``o``/``i``: letters of the output (unreduced) and the argument; ``o_i``: ``o`` with
    its A-positions taken from ``i``; ``o_oth``/``i_oth``: the letters off A;
    ``others``: the dims off A.
    """

    def __init__(self, dims: Dims, axis: Axis) -> None:
        alg = _alg()
        r = len(dims)
        self.axes = axes_of(axis, r)
        self.o = "".join(alg.symbols(r))
        self.i = "".join(alg.symbols(r, r))
        self.o_i = "".join(self.i[k] if k in self.axes else self.o[k] for k in range(r))
        self.o_oth = "".join(self.o[k] for k in range(r) if k not in self.axes)
        self.i_oth = "".join(self.i[k] for k in range(r) if k not in self.axes)
        self.o_ax = "".join(self.o[k] for k in self.axes)
        self.others = tuple(d for k, d in enumerate(dims) if k not in self.axes)
        self.axis_dims = tuple(dims[k] for k in self.axes)


def _jac_softmax(node: Unary) -> Node:
    """∂S[o]/∂x[i] = δ(o,i) S[o] − δ(o∖A, i∖A) S[o] S[o with o_A→i_A], S = softmax along A."""
    alg = _alg()
    d = node.dims
    L = _Letters(d, node.axis)
    diag = alg.einsum([node, alg.delta(d)], [L.o, L.o + L.i], L.o + L.i)
    outer = alg.einsum([node, node, alg.delta(L.others)], [L.o, L.o_i, L.o_oth + L.i_oth], L.o + L.i)
    return alg.add([diag, alg.scale(outer, -1.0)])


def _jac_log_softmax(node: Unary) -> Node:
    """∂log S[o]/∂x[i] = δ(o,i) − δ(o∖A, i∖A) S[o with o_A→i_A]."""
    alg = _alg()
    d = node.dims
    L = _Letters(d, node.axis)
    soft = alg.unary("softmax", node.arg, node.axis)
    ones = alg.const(1.0, L.axis_dims)
    off = alg.einsum([soft, alg.delta(L.others), ones], [L.o_i, L.o_oth + L.i_oth, L.o_ax], L.o + L.i)
    return alg.add([alg.delta(d), alg.scale(off, -1.0)])


def _spread(reduced: Node, L: _Letters, dims: Dims) -> Node:
    """A reduced value (dims ``L.others``) repeated along the reduced axes (dims ``dims``)."""
    alg = _alg()
    return alg.einsum([reduced, alg.const(1.0, L.axis_dims)], [L.i_oth, "".join(L.i[k] for k in L.axes)], L.i)


def _jac_logsumexp(node: Unary) -> Node:
    """∂lse(x)[o]/∂x[i] = δ(o, i∖A) softmax(x, A)[i] (all axes when axis is None)."""
    alg = _alg()
    x = node.arg
    L = _Letters(x.dims, node.axis)
    if node.axis is None:
        return _ops().exp(x - _spread(node, L, x.dims))
    soft = alg.unary("softmax", x, node.axis)
    return alg.einsum([soft, alg.delta(L.others)], [L.i, L.o_oth + L.i_oth], L.o_oth + L.i)


def _jac_max(node: Unary) -> Node:
    """∂max(x, A)[o]/∂x[i] = δ(o, i∖A) [x[i] = max] / #ties: ties share the derivative evenly."""
    alg = _alg()
    x = node.arg
    L = _Letters(x.dims, node.axis)
    hit = _ops().equal(x, _spread(node, L, x.dims))
    count = alg.einsum([hit], [L.i], L.i_oth)
    share = alg.elementwise("pow", count, -1.0)
    return alg.einsum([hit, share, alg.delta(L.others)], [L.i, L.i_oth, L.o_oth + L.i_oth], L.o_oth + L.i)


def _jac_prod(node: Unary) -> Node:
    """∂Π_A x[o]/∂x[i] = δ(o, i∖A) P[o] / x[i] (IEEE inf/nan where an entry is exactly 0)."""
    alg = _alg()
    x = node.arg
    L = _Letters(x.dims, node.axis)
    recip = alg.elementwise("pow", x, -1.0)
    return alg.einsum([node, recip, alg.delta(L.others)], [L.i_oth, L.i, L.o_oth + L.i_oth], L.o_oth + L.i)


def _jac_triangle(node: Unary) -> Node:
    """∂triu(X)[i,j]/∂X[k,l] = δ(i,k) δ(j,l) M[i,j] with M = triu(ones) (tril alike)."""
    alg = _alg()
    mask = alg.unary(node.fn, alg.const(1.0, node.dims), node.axis)
    return alg.einsum([mask, alg.delta(node.dims)], ["ab", "abcd"], "abcd")


UNARY: dict[str, UnaryFn] = {}


def register_unary(fn: UnaryFn) -> None:
    """Add a general function; a name can be registered once."""
    if fn.name in UNARY:
        raise KeyError(f"function {fn.name!r} is already registered")
    UNARY[fn.name] = fn


for _u in [
    UnaryFn("inv", lambda x, a: np.linalg.inv(x), _jac_inv, square=True, cubic=True, latex_power="-1"),
    UnaryFn("det", lambda x, a: np.linalg.det(x), _jac_det, square=True, scalar=True, cubic=True, latex=r"\det"),
    UnaryFn("adjugate", _adjugate_np, _jac_adjugate, square=True, cubic=True, latex=r"\operatorname{adj}"),
    UnaryFn(
        "logdet", _logdet_np, _jac_logdet, square=True, scalar=True, cubic=True, latex=r"\log\lvert\det({0})\rvert"
    ),
    UnaryFn("softmax", _softmax_np, _jac_softmax, takes_axis="one"),
    UnaryFn("log_softmax", _log_softmax_np, _jac_log_softmax, takes_axis="one", latex=r"\log\operatorname{softmax}"),
    UnaryFn("logsumexp", _logsumexp_np, _jac_logsumexp, takes_axis="optional", reduces=True),
    UnaryFn("max", lambda x, a: np.max(x, axis=a), _jac_max, takes_axis="optional", reduces=True, latex=r"\max"),
    UnaryFn("prod", lambda x, a: np.prod(x, axis=a), _jac_prod, takes_axis="optional", reduces=True, latex=r"\prod"),
    UnaryFn("triu", lambda x, k: np.triu(x, k), _jac_triangle, param="k"),
    UnaryFn("tril", lambda x, k: np.tril(x, k), _jac_triangle, param="k"),
]:
    register_unary(_u)


from eincalc import linalg as _linalg  # noqa: E402 - registers cholesky, eigh, pinv
from eincalc import reshapes as _reshapes  # noqa: E402 - registers reshape

for _u in [*_linalg.ENTRIES, *_reshapes.ENTRIES]:
    register_unary(_u)


def get_unary(name: str) -> UnaryFn:
    """The registry entry ``name``, or an error listing the known names."""
    try:
        return UNARY[name]
    except KeyError:
        raise UnknownNameError(f"unknown function {name!r}; known: {', '.join(sorted(UNARY))}") from None
