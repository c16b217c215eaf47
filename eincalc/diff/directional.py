"""Directional derivatives as expressions: ``jvp`` (J·v), ``vjp`` (uᵀ·J), ``hvp`` (H·v).

Each is one sweep with a direction as its seed instead of the unit tensor: forward mode
pushes the tangent ``v`` of the variable (:func:`~eincalc.diff.forward.push_tangent`),
reverse mode pulls the cotangent ``u`` of the output
(:func:`~eincalc.diff.reverse.pull_cotangent`), and ``hvp`` pushes ``v`` through the
gradient (forward over reverse). No direction indices are carried, so no intermediate
is larger than the expression's own (``ec.cost`` shows it): this is the lesson "forward
builds the Jacobian a column at a time, reverse a row at a time" as code.

The direction is an expression with the right dims (usually a variable) or a name, for
which a variable of those dims is made. The result remembers the function's signature
followed by the direction's variables.
"""

from __future__ import annotations

from eincalc import ops
from eincalc.calling import declared, remember, signature
from eincalc.diff.driver import _resolve_wrt, grad
from eincalc.diff.forward import push_tangent
from eincalc.diff.reverse import pull_cotangent
from eincalc.errors import ArgumentError, ShapeError
from eincalc.expr import Node, Var
from eincalc.rewrite import simplify


def _direction(f: Node, direction: Node | str, dims: tuple[str, ...], role: str) -> Node:
    if isinstance(direction, str):
        if direction in signature(f).names:
            raise ArgumentError(f"the {role} {direction!r} has the name of an argument of the function; pick another")
        return ops.tensor(direction, dims)
    if not isinstance(direction, Node):
        raise TypeError(f"the {role} must be an eincalc expression or a name, got {type(direction).__name__}")
    if direction.dims != dims:
        raise ShapeError(f"the {role} has dims ({', '.join(direction.dims)}) but needs ({', '.join(dims)})")
    return direction


def _signed(result: Node, f: Node, direction: Node) -> Node:
    extra = [v for v in signature(direction).variables if signature(f).get(v.name) is not v]
    return remember(simplify(result), declared([*signature(f).variables, *extra]))


def jvp(f: Node, wrt: Var | str, tangent: Node | str) -> Node:
    """The Jacobian-vector product ``∂f/∂wrt · tangent``: dims ``f.dims``, by one forward sweep.

    Args:
        f: the expression.
        wrt: a variable of ``f`` or its name.
        tangent: an expression with ``wrt``'s dims, or a name for a new variable of them.

    Examples:
        >>> import eincalc as ec
        >>> A, x = ec.matrix("A", "m n"), ec.vector("x", "n")
        >>> print(ec.jvp(ec.tanh(A @ x), x, "v"))
        (-(tanh(A @ x) * tanh(A @ x)) + 1.0) * (A @ v)
    """
    var = _resolve_wrt(f, wrt)
    v = _direction(f, tangent, var.dims, "tangent")
    return _signed(push_tangent(simplify(f), var, v, 0), f, v)


def vjp(f: Node, wrt: Var | str, cotangent: Node | str) -> Node:
    """The vector-Jacobian product ``cotangent · ∂f/∂wrt``: dims ``wrt.dims``, by one reverse sweep.

    Args:
        f: the expression.
        wrt: a variable of ``f`` or its name.
        cotangent: an expression with ``f``'s dims, or a name for a new variable of them.

    Examples:
        >>> import eincalc as ec
        >>> layer = ec.parse("tanh(X @ W)", X="m n", W="n k")
        >>> e = ec.vjp(layer, "W", "G")  # G: (m, k), e: (n, k); the Jacobian would be (m, k, n, k)
        >>> ec.cost(e, m=1000, n=100, k=10).largest_intermediate
        10000
    """
    var = _resolve_wrt(f, wrt)
    u = _direction(f, cotangent, f.dims, "cotangent")
    return _signed(pull_cotangent(simplify(f), var, u, 0), f, u)


def hvp(f: Node, wrt: Var | str, tangent: Node | str) -> Node:
    """The Hessian-vector product ``∇²f · tangent`` of a scalar ``f``: dims ``wrt.dims`` (forward over reverse).

    Examples:
        >>> import eincalc as ec
        >>> f = ec.parse("sum((T - U @ V.T) ** 2)", T="m n", U="m k", V="n k")
        >>> print(ec.hvp(f, "U", "P"))
        2.0 * (P @ V.T @ V)
    """
    var = _resolve_wrt(f, wrt)
    v = _direction(f, tangent, var.dims, "tangent")
    g = grad(f, var)
    return _signed(push_tangent(g, var, v, 0), f, v)
