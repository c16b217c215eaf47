"""The user-facing operations: NumPy-like functions on symbolic tensors (front end 2).

``ec.exp(x)``, ``X @ w``, ``ec.sum(A, axis=0)``, ``ec.einsum('ij,j->i', X, w)`` … all
build nodes through :mod:`eincalc.algebra`. Element-wise ``+``, ``-``, ``*``, ``/`` follow
NumPy broadcasting of trailing dims, and Python numbers broadcast everywhere.
``FUNCTIONS`` is the table the string parsers use: a name there is callable from text.
"""

from __future__ import annotations

from collections.abc import Callable

from eincalc import algebra as alg
from eincalc import dims as dimsmod
from eincalc._types import Dims
from eincalc.errors import IndexMismatchError, ShapeError
from eincalc.expr import Const, Node
from eincalc.functions import ELEMENTWISE

Operand = Node | float | int


# --------------------------------------------------------------------------------------
# declaring
# --------------------------------------------------------------------------------------
def tensor(name: str, dims: object = ()) -> Node:
    """A variable of any rank: ``tensor("T", "m n k")``."""
    return alg.variable(name, dimsmod.parse_dims(dims, f"dims of {name!r}"))


def scalar(name: str) -> Node:
    """A scalar variable."""
    return tensor(name, ())


def vector(name: str, dim: object) -> Node:
    """A vector variable: ``vector("w", "n")``."""
    dims = dimsmod.parse_dims(dim, f"dims of {name!r}")
    if len(dims) != 1:
        raise ShapeError(f"vector {name!r} needs one dim, got {dimsmod.fmt(dims)}")
    return tensor(name, dims)


def matrix(name: str, rows: object, cols: object = None) -> Node:
    """A matrix variable: ``matrix("X", "m", "n")`` or ``matrix("X", "m n")``."""
    dims = dimsmod.parse_dims(rows, f"dims of {name!r}") + (
        () if cols is None else dimsmod.parse_dims(cols, f"dims of {name!r}")
    )
    if len(dims) != 2:
        raise ShapeError(f"matrix {name!r} needs two dims, got {dimsmod.fmt(dims)}")
    return tensor(name, dims)


def as_node(x: object, what: str = "operand") -> Node:
    """A node for ``x``: nodes pass through, Python numbers become scalar constants."""
    if isinstance(x, Node):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return alg.const(float(x))
    if hasattr(x, "shape") and hasattr(x, "dtype") and getattr(x, "shape", None) == ():
        return alg.const(float(x))  # a NumPy scalar
    raise TypeError(f"{what}: expected an eincalc expression or a number, got {type(x).__name__}")


def ones(dims: object = ()) -> Node:
    """The tensor of ones over ``dims``."""
    return alg.const(1.0, dimsmod.parse_dims(dims))


def zeros(dims: object = ()) -> Node:
    """The zero tensor over ``dims``."""
    return alg.zeros(dimsmod.parse_dims(dims))


def eye(dims: object) -> Node:
    """The unit tensor over ``dims``: ``eye("n")`` is the n×n identity, dims ``dims + dims``."""
    parsed = dimsmod.parse_dims(dims)
    if not parsed:
        raise ShapeError("eye needs at least one dim")
    return alg.delta(parsed)


identity = eye


# --------------------------------------------------------------------------------------
# broadcasting arithmetic
# --------------------------------------------------------------------------------------
def broadcast_to(x: Node, dims: Dims) -> Node:
    """``x`` broadcast along leading dims to ``dims`` (NumPy rules: trailing dims align)."""
    if x.dims == dims:
        return x
    lead = len(dims) - x.ndim
    if lead < 0:
        raise ShapeError(f"cannot broadcast dims {dimsmod.fmt(x.dims)} to {dimsmod.fmt(dims)}")
    for a, b in zip(x.dims, dims[lead:]):
        dimsmod.require_same(a, b, f"broadcasting {dimsmod.fmt(x.dims)} against {dimsmod.fmt(dims)}")
    if isinstance(x, Const):
        return alg.const(x.value, dims)
    idx = alg.symbols(len(dims))
    return alg.einsum([x, alg.const(1.0, dims[:lead])], [idx[lead:], idx[:lead]], idx)


def _broadcast_pair(a: Operand, b: Operand, op: str) -> tuple[Node, Node]:
    x, y = as_node(a, f"left operand of {op}"), as_node(b, f"right operand of {op}")
    big = x.dims if x.ndim >= y.ndim else y.dims
    small = y if x.ndim >= y.ndim else x
    for p, q in zip(small.dims, big[len(big) - small.ndim :]):
        dimsmod.require_same(q, p, f"{op}: dims {dimsmod.fmt(x.dims)} and {dimsmod.fmt(y.dims)} do not broadcast")
    return broadcast_to(x, big), broadcast_to(y, big)


def add(a: Operand, b: Operand) -> Node:
    """``a + b`` with broadcasting."""
    x, y = _broadcast_pair(a, b, "+")
    return alg.add([x, y])


def subtract(a: Operand, b: Operand) -> Node:
    """``a - b`` with broadcasting."""
    x, y = _broadcast_pair(a, b, "-")
    return alg.add([x, alg.scale(y, -1.0)])


def negative(a: Operand) -> Node:
    """``-a``."""
    return alg.scale(as_node(a), -1.0)


def multiply(a: Operand, b: Operand) -> Node:
    """``a * b`` entry-wise with broadcasting (a Hadamard einsum)."""
    x, y = as_node(a, "left operand of *"), as_node(b, "right operand of *")
    if x.ndim == 0 or y.ndim == 0:  # scalar times tensor: no broadcast tensor needed
        s, t = (x, y) if x.ndim == 0 else (y, x)
        idx = alg.symbols(t.ndim)
        return alg.einsum([s, t], ["", idx], idx)
    x, y = _broadcast_pair(x, y, "*")
    idx = alg.symbols(x.ndim)
    return alg.einsum([x, y], [idx, idx], idx)


def power(a: Operand, b: Operand) -> Node:
    """``a ** b``: ``b`` must be a number (or ``a`` a positive number, giving exp(b log a))."""
    if isinstance(b, Node) and isinstance(b, Const) and b.ndim == 0:
        b = b.value
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        return alg.elementwise("pow", as_node(a, "base of **"), float(b))
    if isinstance(a, (int, float)) and not isinstance(a, bool) and a > 0:
        import math

        return exp(multiply(math.log(a), as_node(b)))
    raise ShapeError("x ** y needs a constant exponent y (or a positive constant base x)")


def divide(a: Operand, b: Operand) -> Node:
    """``a / b`` entry-wise with broadcasting."""
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        if b == 0:
            raise ShapeError("division by the constant 0")
        return multiply(a, 1.0 / b)
    return multiply(a, power(b, -1.0))


# --------------------------------------------------------------------------------------
# products and reductions
# --------------------------------------------------------------------------------------
def matmul(a: Operand, b: Operand) -> Node:
    """``a @ b`` with NumPy's rules for vectors and matrices (and equal leading batch dims)."""
    x, y = as_node(a, "left operand of @"), as_node(b, "right operand of @")
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("@ needs operands with at least one dim; use * for scalars")
    ix = list(alg.symbols(x.ndim))
    iy = list(alg.symbols(y.ndim, x.ndim))
    contracted_y = 0 if y.ndim == 1 else y.ndim - 2
    iy[contracted_y] = ix[-1]
    if x.ndim > 2 or y.ndim > 2:
        if x.ndim != y.ndim:
            raise ShapeError(f"@ with batch dims needs equal ranks, got {dimsmod.fmt(x.dims)} @ {dimsmod.fmt(y.dims)}")
        iy[:-2] = ix[:-2]
    dimsmod.require_same(
        x.dims[-1], y.dims[contracted_y], f"@: dims {dimsmod.fmt(x.dims)} @ {dimsmod.fmt(y.dims)} do not fit"
    )
    out = [i for i in ix[:-1]] + [i for k, i in enumerate(iy) if k != contracted_y and i not in ix]
    return alg.einsum([x, y], [ix, iy], out)


def transpose(a: Operand, axes: tuple[int, ...] | None = None) -> Node:
    """Permute the axes (reverse them by default)."""
    x = as_node(a)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"transpose axes {axes} are not a permutation of 0..{x.ndim - 1}")
    return alg.permute(x, axes)


def _axes(x: Node, axis: int | tuple[int, ...] | None, fn: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or not -x.ndim <= a < x.ndim:
            raise ShapeError(f"{fn}: axis {a!r} is out of range for dims {dimsmod.fmt(x.dims)}")
        if a % x.ndim in out:  # NumPy refuses this too; mean would divide by the size twice
            raise ShapeError(f"{fn}: axis {a!r} is given twice in {axis!r}")
        out.append(a % x.ndim)
    return tuple(out)


def sum(x: Operand, axis: int | tuple[int, ...] | None = None) -> Node:  # noqa: A001 - NumPy's name
    """Sum over ``axis`` (all axes by default)."""
    node = as_node(x)
    axes = _axes(node, axis, "sum")
    idx = alg.symbols(node.ndim)
    return alg.einsum([node], [idx], tuple(i for k, i in enumerate(idx) if k not in axes))


def mean(x: Operand, axis: int | tuple[int, ...] | None = None) -> Node:
    """The mean over ``axis``: the sum divided by the (symbolic) number of entries."""
    node = as_node(x)
    axes = _axes(node, axis, "mean")
    count_dims = tuple(node.dims[a] for a in axes)
    count = alg.einsum([alg.const(1.0, count_dims)], [alg.symbols(len(count_dims))], "")
    return multiply(sum(node, axis), power(count, -1.0))


def trace(x: Operand) -> Node:
    """The trace of a square matrix."""
    node = as_node(x)
    if node.ndim != 2:
        raise ShapeError(f"trace needs a matrix, got dims {dimsmod.fmt(node.dims)}")
    return alg.einsum([node], ["aa"], "")


def diag(x: Operand) -> Node:
    """NumPy's ``diag``: a vector becomes a diagonal matrix, a matrix gives its diagonal."""
    node = as_node(x)
    if node.ndim == 1:
        return alg.einsum([node, alg.delta(node.dims)], ["a", "ab"], "ab")
    if node.ndim == 2:
        return alg.einsum([node], ["aa"], "a")
    raise ShapeError(f"diag needs a vector or a matrix, got dims {dimsmod.fmt(node.dims)}")


def outer(a: Operand, b: Operand) -> Node:
    """The outer (tensor) product: dims ``a.dims + b.dims``."""
    x, y = as_node(a), as_node(b)
    ix, iy = alg.symbols(x.ndim), alg.symbols(y.ndim, x.ndim)
    return alg.einsum([x, y], [ix, iy], ix + iy)


def dot(a: Operand, b: Operand) -> Node:
    """NumPy's ``dot``: inner product of vectors, matrix product, scalar multiple."""
    x, y = as_node(a), as_node(b)
    if x.ndim == 0 or y.ndim == 0:
        return multiply(x, y)
    if x.ndim <= 2 and y.ndim <= 2:
        return matmul(x, y)
    ix = alg.symbols(x.ndim)
    iy = list(alg.symbols(y.ndim, x.ndim))
    k = 0 if y.ndim == 1 else y.ndim - 2
    iy[k] = ix[-1]
    return alg.einsum([x, y], [ix, iy], ix[:-1] + tuple(i for j, i in enumerate(iy) if j != k))


def einsum(spec: str, *operands: Operand) -> Node:
    """``numpy.einsum(spec, *operands)`` symbolically; implicit output (no ``->``) as NumPy.

    Examples:
        >>> import eincalc as ec
        >>> X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
        >>> einsum("ij,j->i", X, w) is X @ w
        True
    """
    if not isinstance(spec, str):
        raise IndexMismatchError(f"einsum needs a subscripts string first, got {type(spec).__name__}")
    text = spec.replace(" ", "")
    if "." in text:
        raise IndexMismatchError("einsum: ellipsis ('...') is not supported; name every index")
    lhs, arrow, rhs = text.partition("->")
    groups = lhs.split(",")
    for g in [*groups, rhs]:
        for ch in g:
            if not ch.isalpha():
                raise IndexMismatchError(f"einsum: {ch!r} in {spec!r} is not an index letter")
    if not arrow:
        counts: dict[str, int] = {}
        for g in groups:
            for ch in g:
                counts[ch] = counts.get(ch, 0) + 1
        rhs = "".join(sorted(ch for ch, c in counts.items() if c == 1))
    if len(groups) != len(operands):
        raise IndexMismatchError(
            f"einsum {spec!r} has {len(groups)} index groups but {len(operands)} operands were given"
        )
    nodes = [as_node(op, f"einsum operand {k}") for k, op in enumerate(operands)]
    return alg.einsum(nodes, [tuple(g) for g in groups], tuple(rhs))


def norm2(x: Operand) -> Node:
    """The Euclidean (Frobenius) norm ``sqrt(sum(x * x))``."""
    node = as_node(x)
    return sqrt(sum(multiply(node, node)))


def norm1(x: Operand) -> Node:
    """The entry-wise 1-norm ``sum(abs(x))``."""
    return sum(abs(as_node(x)))


# --------------------------------------------------------------------------------------
# functions from the registries
# --------------------------------------------------------------------------------------
def _elementwise(name: str) -> Callable[[Operand], Node]:
    def apply(x: Operand) -> Node:
        return alg.elementwise(name, as_node(x, f"argument of {name}"))

    apply.__name__ = name
    apply.__doc__ = f"``{name}(x)`` entry-wise."
    return apply


exp = _elementwise("exp")
log = _elementwise("log")
sin = _elementwise("sin")
cos = _elementwise("cos")
tan = _elementwise("tan")
tanh = _elementwise("tanh")
sigmoid = _elementwise("sigmoid")
softplus = _elementwise("softplus")
relu = _elementwise("relu")
step = _elementwise("step")
abs = _elementwise("abs")  # noqa: A001 - NumPy's name
sign = _elementwise("sign")
sqrt = _elementwise("sqrt")


def inv(x: Operand) -> Node:
    """The matrix inverse."""
    return alg.unary("inv", as_node(x, "argument of inv"))


def det(x: Operand) -> Node:
    """The determinant."""
    return alg.unary("det", as_node(x, "argument of det"))


def adjugate(x: Operand) -> Node:
    """The adjugate ``det(x) inv(x)`` (transposed cofactors), finite at singular ``x``."""
    return alg.unary("adjugate", as_node(x, "argument of adjugate"))


def logdet(x: Operand) -> Node:
    """``log|det(x)|``."""
    return alg.unary("logdet", as_node(x, "argument of logdet"))


def softmax(x: Operand, axis: int = -1) -> Node:
    """Softmax along ``axis``."""
    return alg.unary("softmax", as_node(x, "argument of softmax"), axis)


def log_softmax(x: Operand, axis: int = -1) -> Node:
    """``log(softmax(x, axis))``, computed stably."""
    return alg.unary("log_softmax", as_node(x, "argument of log_softmax"), axis)


def logsumexp(x: Operand, axis: int | None = None) -> Node:
    """``log(sum(exp(x), axis))``, computed stably."""
    return alg.unary("logsumexp", as_node(x, "argument of logsumexp"), axis)


# name -> (callable, number of positional expression arguments or None for any, keywords)
FUNCTIONS: dict[str, tuple[Callable[..., Node], int | None, tuple[str, ...]]] = {
    "sum": (sum, 1, ("axis",)),
    "mean": (mean, 1, ("axis",)),
    "trace": (trace, 1, ()),
    "diag": (diag, 1, ()),
    "outer": (outer, 2, ()),
    "dot": (dot, 2, ()),
    "matmul": (matmul, 2, ()),
    "transpose": (transpose, 1, ()),
    "det": (det, 1, ()),
    "adjugate": (adjugate, 1, ()),
    "logdet": (logdet, 1, ()),
    "inv": (inv, 1, ()),
    "softmax": (softmax, 1, ("axis",)),
    "log_softmax": (log_softmax, 1, ("axis",)),
    "logsumexp": (logsumexp, 1, ("axis",)),
    "norm2": (norm2, 1, ()),
    "norm1": (norm1, 1, ()),
    "einsum": (einsum, None, ()),
    "eye": (eye, None, ()),
    "ones": (ones, None, ()),
    "zeros": (zeros, None, ()),
}
for _name in ELEMENTWISE:
    if _name != "pow":
        FUNCTIONS[_name] = (globals()[_name], 1, ())
