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

from eincalc.costmodel import cost
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
    if isinstance(wrt, Var):
        return wrt
    if isinstance(wrt, str):
        found = list(_variables_by_name(expr).get(wrt, ()))
        if not found:
            known = ", ".join(expr.variables()) or "none"
            raise UnknownNameError(
                f"the expression has no variable {wrt!r} (its variables: {known}); "
                "pass the variable itself to get a zero derivative"
            )
        if len(found) > 1:
            raise ShapeError(f"the name {wrt!r} is used with different dims: pass the variable itself")
        return found[0]
    raise TypeError(f"wrt must be a variable or its name, got {type(wrt).__name__}")


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
    wrt: Var | str,
    order: int = 1,
    mode: str | Sequence[str] = "auto",
    sizes: Mapping[str, int] | None = None,
) -> Node:
    """The ``order``-th derivative of ``expr`` w.r.t. ``wrt``: dims ``expr.dims + wrt.dims * order``.

    Args:
        expr: the expression.
        wrt: a variable of ``expr`` or its name. A variable that does not occur gives a
            symbolic zero.
        order: 0, 1, 2, …
        mode: ``"auto"``, ``"reverse"``, ``"forward"``, ``"cross_country"``, or one mode
            per order (``("reverse", "forward")`` is forward-over-reverse).
        sizes: dim sizes that ``mode="auto"`` uses to compare costs (default 1000 each).

    Examples:
        >>> import eincalc as ec
        >>> x, A = ec.vector("x", "n"), ec.matrix("A", "n n")
        >>> print(ec.derivative(x @ A @ x, x))
        x @ A + x @ A.T
    """
    if not isinstance(expr, Node):
        raise TypeError(f"derivative needs an eincalc expression, got {type(expr).__name__}")
    if not isinstance(order, int) or isinstance(order, bool) or order < 0:
        raise ValueError(f"order must be a non-negative int, got {order!r}")
    var = _resolve_wrt(expr, wrt)
    modes = [mode] * order if isinstance(mode, str) else list(mode)
    if len(modes) != order:
        raise ValueError(f"{len(modes)} modes given for a derivative of order {order}")
    for m in modes:
        _check_mode(m)
    result = simplify(expr)
    if order == 0:
        return result
    if all(m != "auto" for m in modes):
        for m in modes:
            result = simplify(MODES[m](result, var))
        return result
    return _auto(result, var, modes, sizes)


def _auto(expr: Node, var: Var, modes: list[str], sizes: Mapping[str, int] | None) -> Node:
    first = modes[0] if modes[0] != "auto" else _first_mode(expr, var)
    result = simplify(MODES[first](expr, var))
    for m in modes[1:]:
        if m != "auto":
            result = simplify(MODES[m](result, var))
            continue
        candidates = [simplify(MODES[name](result, var)) for name in ("forward", "reverse")]
        nominal = _nominal(candidates, sizes)
        reports = [cost(c, **nominal) for c in candidates]
        best = min(range(len(candidates)), key=lambda k: (reports[k].flops, reports[k].largest_intermediate))
        result = candidates[best]
    return result


def jacobian(expr: Node, wrt: Var | str, mode: str = "auto") -> Node:
    """∂expr/∂wrt: dims ``expr.dims + wrt.dims``."""
    return derivative(expr, wrt, 1, mode)


def grad(expr: Node, wrt: Var | str, mode: str = "auto") -> Node:
    """The gradient of a scalar expression: dims ``wrt.dims``."""
    if not isinstance(expr, Node):
        raise TypeError(f"grad needs an eincalc expression, got {type(expr).__name__}")
    if expr.ndim:
        raise NotDifferentiableError(f"grad needs a scalar expression, this one has dims {expr.dims}; use jacobian")
    return derivative(expr, wrt, 1, mode)


def hessian(
    expr: Node, wrt: Var | str, mode: str | Sequence[str] = "auto", sizes: Mapping[str, int] | None = None
) -> Node:
    """The Hessian of a scalar expression: dims ``wrt.dims * 2`` (compressed where δ survives)."""
    if not isinstance(expr, Node):
        raise TypeError(f"hessian needs an eincalc expression, got {type(expr).__name__}")
    if expr.ndim:
        raise NotDifferentiableError(f"hessian needs a scalar expression, this one has dims {expr.dims}")
    return derivative(expr, wrt, 2, mode, sizes)
