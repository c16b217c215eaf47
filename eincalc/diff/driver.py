"""The public differentiation API: ``derivative``, ``grad``, ``jacobian``, ``hessian``.

Layout: ``derivative(f, x, order=k)`` has dims ``f.dims + x.dims * k`` (output dims
first, as MatrixCalculus.org's mixed layout and JAX's jacobians). Each order is one
Jacobian of the previous result, taken in the mode chosen for that order and then
simplified; the result is an ordinary expression and can be differentiated again.

``mode="auto"`` takes reverse mode for the first order when the output has fewer
entries than the variable (forward otherwise), and for higher orders compares the
candidate combinations with :func:`eincalc.costmodel.cost` at nominal sizes and keeps
the cheapest.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from eincalc import algebra as alg
from eincalc.calling import Signature, nearest, remember, signature
from eincalc.costmodel import price
from eincalc.diff.cross_country import cross_country_jacobian
from eincalc.diff.forward import forward_jacobian
from eincalc.diff.reverse import reverse_jacobian
from eincalc.errors import NotDifferentiableError, ShapeError, UnknownNameError
from eincalc.expr import Node, Var
from eincalc.graph import topo_order
from eincalc.rewrite import simplify

MODES: dict[str, Callable[[Node, Var], Node]] = {
    "forward": forward_jacobian,
    "reverse": reverse_jacobian,
    "cross_country": cross_country_jacobian,
}
NOMINAL_SIZE = 1000


_VARIABLES: OrderedDict[int, tuple[Node, dict[str, list[Var]]]] = OrderedDict()
MAX_VARIABLE_TABLES = 16


def _variables_by_name(expr: Node) -> dict[str, list[Var]]:
    """The variables of ``expr`` by name; the last few are kept (gradients w.r.t. each parameter ask in turn)."""
    hit = _VARIABLES.get(id(expr))
    if hit is not None and hit[0] is expr:
        return hit[1]
    table: dict[str, list[Var]] = {}
    for n in topo_order(expr):
        if isinstance(n, Var):
            table.setdefault(n.name, []).append(n)
    _VARIABLES[id(expr)] = (expr, table)
    while len(_VARIABLES) > MAX_VARIABLE_TABLES:
        _VARIABLES.popitem(last=False)
    return table


def _resolve_wrt(expr: Node, wrt: Var | str) -> Var:
    """The variable ``wrt`` names: one the expression reads, or one of its signature that simplification dropped."""
    if isinstance(wrt, Var):
        return wrt
    if isinstance(wrt, str):
        found = list(_variables_by_name(expr).get(wrt, ()))
        if len(found) > 1:
            raise ShapeError(f"the name {wrt!r} is used with different dims: pass the variable itself")
        if found:
            return found[0]
        sig = signature(expr)
        dropped = sig.get(wrt)
        if dropped is not None:
            return dropped  # its derivative is a zero of its dims
        near = nearest(wrt, sig.names)
        hint = f"did you mean {near!r}? " if near else ""
        raise UnknownNameError(
            f"the expression has no variable {wrt!r} ({hint}its variables: {', '.join(sig.names) or 'none'}); "
            "pass the variable itself to get a zero derivative"
        )
    raise TypeError(f"wrt must be a variable or its name, got {type(wrt).__name__}")


Wrt = Union[Var, str, Sequence["Wrt"]]  # noqa: UP007 - an alias evaluated at run time
"""A variable, its name, or a sequence of them (see :func:`derivative`)."""


def _steps(expr: Node, wrt: Wrt, order: int) -> list[Var | list[Var]]:
    """One entry per order of differentiation: a variable, or a list of them for a block."""
    if isinstance(wrt, (Var, str)):
        return [_resolve_wrt(expr, wrt)] * order
    if isinstance(wrt, Node):
        raise TypeError(f"wrt must be a variable or its name, got the expression {wrt}")
    if not isinstance(wrt, Sequence):
        raise TypeError(f"wrt must be a variable, its name or a sequence of them, got {type(wrt).__name__}")
    if order != 1:
        raise ValueError("give either a sequence of variables (one per order) or order=, not both")
    steps: list[Var | list[Var]] = []
    for item in wrt:
        if isinstance(item, (Var, str)):
            steps.append(_resolve_wrt(expr, item))
        elif isinstance(item, Sequence) and not isinstance(item, Node) and item:
            if not all(isinstance(v, (Var, str)) for v in item):
                raise TypeError("a block of wrt holds variables or names, not deeper sequences")
            steps.append([_resolve_wrt(expr, v) for v in item])
        else:
            raise TypeError(f"wrt entries are variables, names or non-empty sequences of them, got {item!r}")
    return steps


def _check_mode(mode: str) -> None:
    if mode != "auto" and mode not in MODES:
        raise UnknownNameError(f"unknown mode {mode!r}; known: auto, {', '.join(MODES)}")


def _nominal(exprs: Sequence[Node], sizes: Mapping[str, int] | None) -> dict[str, int]:
    dims = {d for n in topo_order(list(exprs)) for d in n.dims}
    given = dict(sizes or {})
    return {d: given.get(d, int(d) if d.isdigit() else NOMINAL_SIZE) for d in dims}


def _first_mode(f: Node, wrt: Var) -> str:
    # Reverse pays one sweep per output entry, forward one per input entry (here all at
    # once, but the intermediate tangents carry the larger set of indices).
    return "reverse" if f.ndim <= wrt.ndim else "forward"


def derivative(
    expr: Node,
    wrt: Wrt,
    order: int = 1,
    mode: str | Sequence[str] = "auto",
    sizes: Mapping[str, int] | None = None,
) -> Any:
    """The ``order``-th derivative of ``expr`` w.r.t. ``wrt``: dims ``expr.dims + wrt.dims * order``.

    The result remembers ``expr``'s signature (:mod:`eincalc.calling`): it is evaluated
    and compiled with the arrays of ``expr``, in ``expr``'s order.

    Args:
        expr: the expression.
        wrt: a variable of ``expr`` or its name (also one that simplification dropped: its
            derivative is a zero of its dims); or a sequence, one entry per order, for
            mixed partials: ``["U", "V"]`` is ∂²f/∂U∂V, dims ``f.dims + U.dims + V.dims``.
            An entry that is itself a sequence gives one result per variable (blocks):
            ``[["U", "V"]]`` is ``[∂f/∂U, ∂f/∂V]``, ``[["U", "V"]] * 2`` the block Hessian
            as nested lists.
        order: 0, 1, 2, … (only with a single ``wrt``).
        mode: ``"auto"``, ``"reverse"``, ``"forward"``, ``"cross_country"``, or one mode
            per order (``("reverse", "forward")`` is forward-over-reverse).
        sizes: dim sizes that ``mode="auto"`` uses to compare costs (default 1000 each).

    Examples:
        >>> import eincalc as ec
        >>> x, A = ec.vector("x", "n"), ec.matrix("A", "n n")
        >>> print(ec.derivative(x @ A @ x, x))
        x @ A + x @ A.T
        >>> print(ec.derivative(x @ A @ x, [x, A]))
        outer(eye('n'), x) + einsum('ac,b->abc', eye('n'), x)
    """
    if not isinstance(expr, Node):
        raise TypeError(f"derivative needs an eincalc expression, got {type(expr).__name__}")
    if not isinstance(order, int) or isinstance(order, bool) or order < 0:
        raise ValueError(f"order must be a non-negative int, got {order!r}")
    steps = _steps(expr, wrt, order)
    modes = [mode] * len(steps) if isinstance(mode, str) else list(mode)
    if len(modes) != len(steps):
        raise ValueError(f"{len(modes)} modes given for a derivative of order {len(steps)}")
    for m in modes:
        _check_mode(m)
    return _derive(simplify(expr), steps, modes, sizes, signature(expr), 0)


def _derive(
    expr: Node, steps: list[Var | list[Var]], modes: list[str], sizes: Mapping[str, int] | None, sig: Signature, k: int
) -> Any:
    """Differentiate ``expr`` by ``steps[k:]``; a block step fans out into a list."""
    if k == len(steps):
        return remember(expr, sig)
    step = steps[k]
    if isinstance(step, list):
        return [_derive(expr, [*steps[:k], v, *steps[k + 1 :]], modes, sizes, sig, k) for v in step]
    return _derive(_one_order(expr, step, modes[k], first=k == 0, sizes=sizes), steps, modes, sizes, sig, k + 1)


def _one_order(expr: Node, var: Var, mode: str, first: bool, sizes: Mapping[str, int] | None) -> Node:
    """One Jacobian in ``mode``, in the symmetric convention for a symmetric matrix."""
    found = _jacobian_in(expr, var, mode, first, sizes)
    if not var.symmetric:
        return found
    # only symmetric directions dX exist: the part of ∂/∂X that pairs with them
    k = found.ndim
    swapped = alg.permute(found, [*range(k - 2), k - 1, k - 2])
    return simplify(alg.scale(alg.add([found, swapped]), 0.5))


def _jacobian_in(expr: Node, var: Var, mode: str, first: bool, sizes: Mapping[str, int] | None) -> Node:
    """One Jacobian in ``mode``; ``"auto"`` by output size first, by the cost model after."""
    if mode != "auto":
        return simplify(MODES[mode](expr, var))
    if first:
        return simplify(MODES[_first_mode(expr, var)](expr, var))
    candidates = [simplify(MODES[name](expr, var)) for name in ("forward", "reverse")]
    nominal = _nominal(candidates, sizes)
    # priced as built (no code-generation rewrites: those cost more than the choice saves)
    reports = [price([c], nominal) for c in candidates]
    best = min(range(len(candidates)), key=lambda i: (reports[i].flops, reports[i].largest_intermediate))
    return candidates[best]


def _blocks(wrt: Wrt) -> Wrt:
    """A sequence of variables as one block step; a single variable as itself."""
    return wrt if isinstance(wrt, (Var, str)) else [list(wrt)]


def _scalar(expr: Node, what: str, hint: str = "") -> None:
    if not isinstance(expr, Node):
        raise TypeError(f"{what} needs an eincalc expression, got {type(expr).__name__}")
    if expr.ndim:
        raise NotDifferentiableError(f"{what} needs a scalar expression, this one has dims {expr.dims}{hint}")


def jacobian(expr: Node, wrt: Wrt, mode: str = "auto") -> Any:
    """∂expr/∂wrt: dims ``expr.dims + wrt.dims``; a list of Jacobians for a sequence of variables."""
    return derivative(expr, _blocks(wrt), 1, mode)


def grad(expr: Node, wrt: Wrt, mode: str = "auto") -> Any:
    """The gradient of a scalar expression: dims ``wrt.dims``; a list of gradients for a sequence.

    Examples:
        >>> import eincalc as ec
        >>> f = ec.parse("sum((T - U @ V.T) ** 2)", T="m n", U="m k", V="n k")
        >>> gU, gV = ec.grad(f, ["U", "V"])
        >>> print(gV)
        -2.0 * ((T - U @ V.T).T @ U)
    """
    _scalar(expr, "grad", "; use jacobian")
    return derivative(expr, _blocks(wrt), 1, mode)


def value_and_grad(expr: Node, wrt: Wrt, mode: str = "auto") -> tuple[Node, ...]:
    """``(value, gradient)``, or ``(value, grad_1, grad_2, …)`` for a sequence of variables.

    Flat, so that ``ec.compile(ec.value_and_grad(f, ["U", "V"]))`` computes all of them
    in one function that shares their common work, and returns them in this order.
    """
    _scalar(expr, "value_and_grad")
    grads = grad(expr, wrt, mode)
    value = remember(simplify(expr), signature(expr))
    return (value, *grads) if isinstance(grads, list) else (value, grads)


def hessian(expr: Node, wrt: Wrt, mode: str | Sequence[str] = "auto", sizes: Mapping[str, int] | None = None) -> Any:
    """The Hessian of a scalar expression: dims ``wrt.dims * 2`` (compressed where δ survives).

    For a sequence of variables, the blocks as nested lists: ``H[i][j]`` is
    ∂²f/∂wrt[i]∂wrt[j], dims ``wrt[i].dims + wrt[j].dims``.
    """
    _scalar(expr, "hessian")
    if isinstance(wrt, (Var, str)):
        return derivative(expr, wrt, 2, mode, sizes)
    return derivative(expr, [list(wrt)] * 2, 1, mode, sizes)
