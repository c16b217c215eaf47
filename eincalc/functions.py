"""Registries of functions: element-wise (``ELEMENTWISE``) and general (``UNARY``).

Adding a function is one entry here. An element-wise entry gives its NumPy evaluation,
its SymPy definition (the oracle for tests and :mod:`eincalc.check`) and its derivative
``f'(x)`` *as an expression*, so derivatives of every order follow from the rules of the
node kinds (the JAX ``defjvp`` pattern). A general entry gives its dims rule, a stable
NumPy evaluation and its Jacobian as an expression of dims ``out.dims + arg.dims``.

Nothing here walks graphs; the chain rule lives in :mod:`eincalc.diff`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from eincalc._types import Dims
from eincalc.errors import NotDifferentiableError, ShapeError, UnknownNameError
from eincalc.expr import Node, Unary


def _ops() -> Any:
    from eincalc import ops

    return ops


def _alg() -> Any:
    from eincalc import algebra

    return algebra


@dataclass(frozen=True)
class ElementwiseFn:
    """An entry-wise function: ``numpy(x, param)``, ``sympy(x, param)``, ``deriv(x, param)``.

    ``deriv`` returns f'(x) as an expression in the node ``x``; ``undefined_at`` names the
    points where the derivative is mathematically undefined (e.g. relu at 0), which a
    finite-difference check must avoid.
    """

    name: str
    numpy: Callable[[Any, float | None], Any]
    sympy: Callable[[Any, float | None], Any]
    deriv: Callable[[Node, float | None], Node]
    has_param: bool = False
    domain: str = "real"  # "real", "positive" or "nonzero": where tests may sample inputs
    undefined_at: tuple[float, ...] = ()


def _sigmoid(x: Any) -> Any:
    # Two branches so that neither exp overflows (stable at |x| = 1000).
    out = np.empty_like(x, dtype=float)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _np(fn: Callable[[Any], Any]) -> Callable[[Any, float | None], Any]:
    """``fn`` in the ``(x, param)`` signature of the registry (for functions without a parameter)."""
    return lambda x, p: fn(x)


_sp = _np  # the same adapter, named for SymPy entries so each row reads "NumPy, SymPy, derivative"


def _one_minus_sq(y: Node) -> Node:
    return 1 - y * y


ELEMENTWISE: dict[str, ElementwiseFn] = {}


def register_elementwise(fn: ElementwiseFn) -> None:
    """Add an element-wise function; a name can be registered once."""
    if fn.name in ELEMENTWISE:
        raise KeyError(f"element-wise function {fn.name!r} is already registered")
    ELEMENTWISE[fn.name] = fn


for _entry in [
    ElementwiseFn("exp", _np(np.exp), _sp(sympy.exp), lambda x, p: _ops().exp(x)),
    ElementwiseFn("log", _np(np.log), _sp(sympy.log), lambda x, p: x**-1, domain="positive"),
    ElementwiseFn("sin", _np(np.sin), _sp(sympy.sin), lambda x, p: _ops().cos(x)),
    ElementwiseFn("cos", _np(np.cos), _sp(sympy.cos), lambda x, p: -_ops().sin(x)),
    ElementwiseFn("tan", _np(np.tan), _sp(sympy.tan), lambda x, p: 1 + _ops().tan(x) ** 2),
    ElementwiseFn("tanh", _np(np.tanh), _sp(sympy.tanh), lambda x, p: _one_minus_sq(_ops().tanh(x))),
    ElementwiseFn(
        "sigmoid",
        _np(lambda x: _sigmoid(np.asarray(x, dtype=float))),
        _sp(lambda x: 1 / (1 + sympy.exp(-x))),
        lambda x, p: _ops().sigmoid(x) * (1 - _ops().sigmoid(x)),
    ),
    ElementwiseFn(
        "softplus",
        _np(lambda x: np.logaddexp(0.0, x)),
        _sp(lambda x: sympy.log(1 + sympy.exp(x))),
        lambda x, p: _ops().sigmoid(x),
    ),
    # Subgradient convention of PyTorch and JAX at the kinks: relu'(0) = step(0) = 0 and
    # abs'(0) = sign(0) = 0, so gradients agree with theirs bit for bit on ReLU networks.
    ElementwiseFn(
        "relu",
        _np(lambda x: np.maximum(x, 0.0)),
        _sp(lambda x: sympy.Max(x, 0)),
        lambda x, p: _ops().step(x),
        undefined_at=(0.0,),
    ),
    ElementwiseFn(
        "step",
        _np(lambda x: np.heaviside(x, 0.0)),
        _sp(lambda x: sympy.Heaviside(x, 0)),
        lambda x, p: _alg().zeros(x.dims),
        undefined_at=(0.0,),
    ),
    ElementwiseFn(
        "abs", _np(np.abs), _sp(sympy.Abs), lambda x, p: _ops().sign(x), domain="nonzero", undefined_at=(0.0,)
    ),
    ElementwiseFn(
        "sign", _np(np.sign), _sp(sympy.sign), lambda x, p: _alg().zeros(x.dims), domain="nonzero", undefined_at=(0.0,)
    ),
    ElementwiseFn("sqrt", _np(np.sqrt), _sp(sympy.sqrt), lambda x, p: 0.5 / _ops().sqrt(x), domain="positive"),
    ElementwiseFn(
        "pow",
        lambda x, p: np.power(x, p),
        lambda x, p: x ** (sympy.Integer(int(p)) if p is not None and float(p).is_integer() else sympy.Float(p)),
        lambda x, p: p * _alg().elementwise("pow", x, p - 1),
        has_param=True,
        domain="positive",
    ),
]:
    register_elementwise(_entry)


def get_elementwise(name: str) -> ElementwiseFn:
    """The registry entry ``name``, or an error listing the known names."""
    try:
        return ELEMENTWISE[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown element-wise function {name!r}; known: {', '.join(sorted(ELEMENTWISE))}"
        ) from None


# --------------------------------------------------------------------------------------
# general unary functions
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnaryFn:
    """A tensor function that is not entry-wise.

    ``takes_axis``: None (no axis), "one" (an axis, default -1) or "optional" (an axis or
    None for all axes). ``jacobian(node)`` returns ∂node/∂arg as an expression of dims
    ``node.dims + arg.dims``.
    """

    name: str
    numpy: Callable[[Any, int | None], Any]
    jacobian: Callable[[Unary], Node]
    square: bool = False
    takes_axis: str | None = None
    reduces: bool = False  # the result drops the axis (or every axis when axis is None)

    def normalise_axis(self, dims: Dims, axis: int | None) -> int | None:
        if self.takes_axis is None:
            if axis is not None:
                raise ShapeError(f"{self.name} takes no axis")
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
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ShapeError(f"{self.name}: axis must be an int, got {axis!r}")
        if not -len(dims) <= axis < len(dims):
            raise ShapeError(f"{self.name}: axis {axis} is out of range for dims of rank {len(dims)}")
        return axis % len(dims)

    def out_dims(self, dims: Dims, axis: int | None) -> Dims:
        if self.name in ("det", "logdet"):
            return ()
        if not self.reduces:
            return dims
        if axis is None:
            return ()
        return dims[:axis] + dims[axis + 1 :]


# initial=-inf: over a size-0 axis the max is -inf (log-sum-exp of nothing), not an error
def _softmax_np(x: Any, axis: int | None) -> Any:
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_np(x: Any, axis: int | None) -> Any:
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):  # a size-0 axis: log(0), never read
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _logsumexp_np(x: Any, axis: int | None) -> Any:
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) + (-inf) = -inf for no entries
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out.reshape(()) if axis is None else np.squeeze(out, axis=axis)


def _logdet_np(x: Any, axis: int | None) -> Any:
    sign, value = np.linalg.slogdet(x)
    return value  # log|det|; its derivative inv(A)ᵀ holds for either sign


def _adjugate_np(x: Any, axis: int | None) -> Any:
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
    return alg.add(
        [alg.einsum([node, inv], ["ij", "lk"], "ijkl"), alg.einsum([node, inv], ["ik", "lj"], "ijkl", -1.0)]
    )


def _jac_inv(node: Unary) -> Node:
    """∂inv(A)[i,j]/∂A[k,l] = −B[i,k] B[l,j] with B = inv(A)."""
    return _alg().einsum([node, node], ["ik", "lj"], "ijkl", -1.0)


def _jac_det(node: Unary) -> Node:
    """∂det(A)/∂A[k,l] = adj(A)[l,k] (Jacobi's formula; det(A) inv(A) would fail at singular A)."""
    return _ops().transpose(_ops().adjugate(node.arg))


def _jac_logdet(node: Unary) -> Node:
    """∂log|det A|/∂A[k,l] = B[l,k] with B = inv(A)."""
    return _ops().transpose(_ops().inv(node.arg))


def _axis_letters(rank: int, axis: int) -> tuple[str, str, str, str]:
    """Index strings (out, in, out with the axis letter of in, others of in) for softmax rules."""
    alg = _alg()
    o = "".join(alg.symbols(rank))
    i = "".join(alg.symbols(rank, rank))
    o_with_i = o[:axis] + i[axis] + o[axis + 1 :]
    return o, i, o_with_i, i[:axis] + i[axis + 1 :]


def _jac_softmax(node: Unary) -> Node:
    """∂S[o]/∂x[i] = δ(o,i) S[o] − δ(o∖a, i∖a) S[o] S[o with oₐ→iₐ], S = softmax along axis a."""
    alg = _alg()
    d = node.dims
    assert node.axis is not None
    o, i, o_i, _ = _axis_letters(len(d), node.axis)
    others = d[: node.axis] + d[node.axis + 1 :]
    o_oth = o[: node.axis] + o[node.axis + 1 :]
    i_oth = i[: node.axis] + i[node.axis + 1 :]
    diag = alg.einsum([node, alg.delta(d)], [o, o + i], o + i)
    outer = alg.einsum([node, node, alg.delta(others)], [o, o_i, o_oth + i_oth], o + i)
    return alg.add([diag, alg.scale(outer, -1.0)])


def _jac_log_softmax(node: Unary) -> Node:
    """∂log S[o]/∂x[i] = δ(o,i) − δ(o∖a, i∖a) S[o with oₐ→iₐ]."""
    alg = _alg()
    d = node.dims
    assert node.axis is not None
    o, i, o_i, _ = _axis_letters(len(d), node.axis)
    others = d[: node.axis] + d[node.axis + 1 :]
    o_oth = o[: node.axis] + o[node.axis + 1 :]
    i_oth = i[: node.axis] + i[node.axis + 1 :]
    soft = _ops().softmax(node.arg, axis=node.axis)
    ones_i = alg.const(1.0, (d[node.axis],))
    off = alg.einsum([soft, alg.delta(others), ones_i], [o_i, o_oth + i_oth, o[node.axis]], o + i)
    return alg.add([alg.delta(d), alg.scale(off, -1.0)])


def _jac_logsumexp(node: Unary) -> Node:
    """∂lse(x)[o]/∂x[i] = δ(o, i∖a) softmax(x, a)[i] (all axes when axis is None)."""
    alg = _alg()
    x = node.arg
    d = x.dims
    if node.axis is None:
        idx = alg.symbols(len(d))
        shifted = x - alg.einsum([node, alg.const(1.0, d)], ["", idx], idx)
        return _ops().exp(shifted)
    o, i, _, i_oth = _axis_letters(len(d), node.axis)
    o_red = o[: len(d) - 1]
    others = d[: node.axis] + d[node.axis + 1 :]
    soft = _ops().softmax(x, axis=node.axis)
    return alg.einsum([soft, alg.delta(others)], [i, o_red + i_oth], o_red + i)


UNARY: dict[str, UnaryFn] = {}


def register_unary(fn: UnaryFn) -> None:
    """Add a general function; a name can be registered once."""
    if fn.name in UNARY:
        raise KeyError(f"function {fn.name!r} is already registered")
    UNARY[fn.name] = fn


for _u in [
    UnaryFn("inv", lambda x, a: np.linalg.inv(x), _jac_inv, square=True),
    UnaryFn("det", lambda x, a: np.linalg.det(x), _jac_det, square=True),
    UnaryFn("adjugate", _adjugate_np, _jac_adjugate, square=True),
    UnaryFn("logdet", _logdet_np, _jac_logdet, square=True),
    UnaryFn("softmax", _softmax_np, _jac_softmax, takes_axis="one"),
    UnaryFn("log_softmax", _log_softmax_np, _jac_log_softmax, takes_axis="one"),
    UnaryFn("logsumexp", _logsumexp_np, _jac_logsumexp, takes_axis="optional", reduces=True),
]:
    register_unary(_u)


def get_unary(name: str) -> UnaryFn:
    """The registry entry ``name``, or an error listing the known names."""
    try:
        return UNARY[name]
    except KeyError:
        raise UnknownNameError(f"unknown function {name!r}; known: {', '.join(sorted(UNARY))}") from None


def not_differentiable(what: str, mode: str) -> NotDifferentiableError:
    """The error for a node kind without a rule in ``mode``."""
    return NotDifferentiableError(f"no {mode}-mode derivative rule for {what}")
