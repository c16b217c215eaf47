"""The user-facing operations: NumPy-like functions on symbolic tensors (front end 2).

``ec.exp(x)``, ``X @ w``, ``ec.sum(A, axis=0)``, ``ec.einsum('ij,j->i', X, w)`` … all
build nodes through :mod:`eincalc.algebra`. Element-wise ``+``, ``-``, ``*``, ``/`` follow
NumPy broadcasting of trailing dims, and Python numbers broadcast everywhere.
The names the string parsers accept are in :mod:`eincalc.language`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence

import numpy as np

from eincalc import algebra as alg
from eincalc import dims as dimsmod
from eincalc._types import Dim, Dims
from eincalc.errors import DomainError, IndexMismatchError, ShapeError
from eincalc.expr import Array, Const, Node

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


def matrix(name: str, rows: object, cols: object = None, symmetric: bool = False) -> Node:
    """A matrix variable: ``matrix("X", "m", "n")`` or ``matrix("X", "m n")``.

    ``symmetric=True`` declares X = Xᵀ (square): derivatives w.r.t. it are symmetric,
    the gradient being ``(∂f/∂X + ∂f/∂Xᵀ) / 2`` (the symmetric convention).
    """
    dims = dimsmod.parse_dims(rows, f"dims of {name!r}") + (
        () if cols is None else dimsmod.parse_dims(cols, f"dims of {name!r}")
    )
    if len(dims) != 2:
        raise ShapeError(f"matrix {name!r} needs two dims, got {dimsmod.fmt(dims)}")
    return alg.variable(name, dims, symmetric) if symmetric else tensor(name, dims)


def as_node(x: object, what: str = "operand") -> Node:
    """A node for ``x``: nodes pass through, numbers become scalar constants, arrays constant arrays."""
    if isinstance(x, Node):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return alg.const(float(x))
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        if getattr(x, "shape", None) == ():
            return alg.const(float(x))  # a NumPy scalar
        if np.asarray(x).dtype.kind in "biuf":
            return alg.array(x)
    raise TypeError(f"{what}: expected an eincalc expression, a number or a NumPy array, got {type(x).__name__}")


def array(data: object, dims: object = None) -> Node:
    """A constant tensor holding ``data`` (dims: its sizes, or names for its axes)."""
    return alg.array(data, None if dims is None else dimsmod.parse_dims(dims, "dims of an array"))


def _adopt(x: Node, dims: Sequence[Dim | None]) -> Node:
    """A constant array named after its neighbours' dims (``dims[k]`` for axis k, None: keep).

    A size-1 axis keeps the dim ``"1"`` (it broadcasts); the data's sizes are checked
    against the names when sizes are bound. An axis left unnamed whose size equals a named
    axis's takes that name too (``np.eye(3) @ v`` has ``v``'s dim on both axes): equal
    sizes are interchangeable, and the binding check covers both.
    """
    if not isinstance(x, Array) or len(dims) != x.ndim:
        return x
    shape = x.data.shape
    named = list(
        old if d is None or (shape[k] == 1 and d != "1") else d for k, (old, d) in enumerate(zip(x.dims, dims))
    )
    by_size = {shape[k]: named[k] for k in range(x.ndim) if not dimsmod.is_literal(named[k])}
    new = tuple(by_size.get(shape[k], d) if dimsmod.is_literal(d) and d != "1" else d for k, d in enumerate(named))
    return x if new == x.dims else alg.array(x.data, new)


def _adopt_broadcast(nodes: list[Node]) -> list[Node]:
    """Constant arrays among broadcast operands take the others' trailing dims."""
    named = [n for n in nodes if not isinstance(n, Array)]
    if not named or len(named) == len(nodes):
        return nodes
    target = broadcast_dims(*(n.dims for n in named))
    out = []
    for n in nodes:
        lead = len(target) - n.ndim
        out.append(_adopt(n, [target[lead + k] if lead + k >= 0 else None for k in range(n.ndim)]))
    return out


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
    """``x`` broadcast to ``dims`` (NumPy rules: trailing dims align, a dim ``1`` stretches)."""
    if x.dims == dims:
        return x
    lead = len(dims) - x.ndim
    if lead < 0:
        raise ShapeError(f"cannot broadcast dims {dimsmod.fmt(x.dims)} to {dimsmod.fmt(dims)}")
    idx = alg.symbols(len(dims))
    x_idx: list[str] = []
    spread = list(range(lead))  # output axes that x does not carry
    for k, (a, b) in enumerate(zip(x.dims, dims[lead:])):
        if a == "1" and b != "1":  # a size-1 axis stretches: summed away (it has one entry)
            x_idx.append(alg.symbols(1, len(dims) + k)[0])
            spread.append(lead + k)
        else:
            if a != b:  # the message is only built for a mismatch (or a dim being inferred)
                dimsmod.require_same(a, b, f"broadcasting {dimsmod.fmt(x.dims)} against {dimsmod.fmt(dims)}")
            x_idx.append(idx[lead + k])
    if isinstance(x, Const):
        return alg.const(x.value, dims)
    ones = alg.const(1.0, tuple(dims[k] for k in spread))
    return alg.einsum([x, ones], [x_idx, [idx[k] for k in spread]], idx)


def broadcast_dims(*all_dims: Dims, what: str = "broadcasting") -> Dims:
    """The dims NumPy broadcasting gives operands of ``all_dims`` (trailing dims align)."""
    rank = builtins.max(len(d) for d in all_dims)
    out: list[str] = []
    for k in range(rank):
        found: str | None = None
        for d in all_dims:
            j = k - (rank - len(d))
            if j < 0 or d[j] == "1" and found is not None:
                continue
            if found is None or found == "1":
                found = d[j]
            elif found != d[j]:  # the message is only built for a mismatch (or a dim being inferred)
                dimsmod.require_same(
                    found, d[j], f"{what}: dims {' and '.join(dimsmod.fmt(x) for x in all_dims)} do not broadcast"
                )
        assert found is not None
        out.append(found)
    return tuple(out)


def _broadcast_pair(a: Operand, b: Operand, op: str) -> tuple[Node, Node]:
    x, y = _adopt_broadcast([as_node(a, f"left operand of {op}"), as_node(b, f"right operand of {op}")])
    dims = broadcast_dims(x.dims, y.dims, what=op)
    return broadcast_to(x, dims), broadcast_to(y, dims)


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
    x, y = _adopt_broadcast([as_node(a, "left operand of *"), as_node(b, "right operand of *")])
    if x.ndim == 0 or y.ndim == 0:  # scalar times tensor: no broadcast tensor needed
        s, t = (x, y) if x.ndim == 0 else (y, x)
        idx = alg.symbols(t.ndim)
        return alg.einsum([s, t], ["", idx], idx)
    x, y = _broadcast_pair(x, y, "*")
    idx = alg.symbols(x.ndim)
    return alg.einsum([x, y], [idx, idx], idx)


def power(a: Operand, b: Operand) -> Node:
    """``a ** b`` entry-wise; a constant exponent gives ``pow``, a tensor one ``power(a, b)``.

    A tensor exponent needs a positive base where the derivative in ``b`` is wanted
    (it is ``log(a) a ** b``); a positive number as the base gives ``exp(b log a)``.
    """
    if isinstance(b, Node) and isinstance(b, Const) and b.ndim == 0:
        b = b.value
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        base = as_node(a, "base of **")
        if isinstance(base, Const) and base.value < 0 and not float(b).is_integer():
            # as the parser says of (-8.0) ** 0.5 (it would print so and not parse back)
            raise DomainError(f"({base.value!r}) ** {float(b)!r} is not a real number")
        return alg.elementwise("pow", base, float(b))
    if isinstance(a, Const) and a.ndim == 0:
        a = a.value
    if isinstance(a, (int, float)) and not isinstance(a, bool) and a > 0:
        import math

        return exp(multiply(math.log(a), as_node(b)))
    base, exponent = _adopt_broadcast([as_node(a, "base of **"), as_node(b, "exponent of **")])
    if isinstance(base, Const) and base.value > 0:  # a filled constant base: the same as a number
        return power(base.value, broadcast_to(exponent, broadcast_dims(base.dims, exponent.dims, what="**")))
    return _elementwise_n("power", base, exponent)


def _elementwise_n(name: str, *xs: Operand) -> Node:
    """The element-wise function ``name`` of several arguments, broadcast NumPy's way."""
    nodes = _adopt_broadcast([as_node(x, f"argument {k} of {name}") for k, x in enumerate(xs)])
    dims = broadcast_dims(*(n.dims for n in nodes), what=name)
    return alg.elementwise(name, [broadcast_to(n, dims) for n in nodes])


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
    """``a @ b`` with NumPy's rules: vectors, matrices and broadcast leading batch dims."""
    x, y = as_node(a, "left operand of @"), as_node(b, "right operand of @")
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("@ needs operands with at least one dim; use * for scalars")
    ky = -2 if y.ndim >= 2 else 0
    x = _adopt(x, [None] * (x.ndim - 1) + [y.dims[ky]]) if not isinstance(y, Array) else x
    y = _adopt(y, [x.dims[-1] if k == y.ndim + ky else None for k in range(y.ndim)]) if not isinstance(x, Array) else y
    bx, by = x.dims[:-2], y.dims[:-2]
    nb = builtins.max(len(bx), len(by))
    batch = alg.symbols(nb)
    m, k, n = alg.symbols(3, nb)
    for p, q in zip(reversed(bx), reversed(by)):
        if p != q:  # messages are only built for a mismatch (or a dim being inferred)
            dimsmod.require_same(p, q, f"@: batch dims of {dimsmod.fmt(x.dims)} @ {dimsmod.fmt(y.dims)} do not fit")
    ix = batch[nb - len(bx) :] + ((m, k) if x.ndim >= 2 else (k,))
    iy = batch[nb - len(by) :] + ((k, n) if y.ndim >= 2 else (k,))
    if x.dims[-1] != y.dims[-2 if y.ndim >= 2 else 0]:
        dimsmod.require_same(
            x.dims[-1],
            y.dims[-2 if y.ndim >= 2 else 0],
            f"@: dims {dimsmod.fmt(x.dims)} @ {dimsmod.fmt(y.dims)} do not fit",
        )
    out = batch + ((m,) if x.ndim >= 2 else ()) + ((n,) if y.ndim >= 2 else ())
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


def _keep(reduced: Node, rank: int, axes: tuple[int, ...]) -> Node:
    """``reduced`` with size-1 axes put back where ``axes`` were (NumPy's ``keepdims=True``)."""
    idx = alg.symbols(rank)
    kept = [i for k, i in enumerate(idx) if k not in axes]
    return alg.einsum([reduced, alg.const(1.0, ("1",) * len(axes))], [kept, [idx[a] for a in axes]], idx)


def sum(x: Operand, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Node:  # noqa: A001
    """Sum over ``axis`` (all axes by default), NumPy's ``sum``."""
    node = as_node(x)
    axes = _axes(node, axis, "sum")
    idx = alg.symbols(node.ndim)
    out = alg.einsum([node], [idx], tuple(i for k, i in enumerate(idx) if k not in axes))
    return _keep(out, node.ndim, axes) if keepdims else out


def _count(node: Node, axes: tuple[int, ...]) -> Node:
    """The (symbolic) number of entries along ``axes``."""
    count_dims = tuple(node.dims[a] for a in axes)
    return alg.einsum([alg.const(1.0, count_dims)], [alg.symbols(len(count_dims))], "")


def mean(x: Operand, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Node:
    """The mean over ``axis``: the sum divided by the (symbolic) number of entries."""
    node = as_node(x)
    axes = _axes(node, axis, "mean")
    return multiply(sum(node, axis, keepdims), power(_count(node, axes), -1.0))


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
    lhs, arrow, rhs = text.partition("->")
    groups = lhs.split(",")
    for g in [*groups, rhs]:
        for ch in g.replace("...", ""):
            if not ch.isalpha():
                raise IndexMismatchError(f"einsum: {ch!r} in {spec!r} is not an index letter")
    if len(groups) != len(operands):
        raise IndexMismatchError(
            f"einsum {spec!r} has {len(groups)} index groups but {len(operands)} operands were given"
        )
    nodes = [as_node(op, f"einsum operand {k}") for k, op in enumerate(operands)]
    ins, ellipsis = _expand_ellipsis(spec, groups, nodes)
    named = {i: d for n, g in zip(nodes, ins) if not isinstance(n, Array) for i, d in zip(g, n.dims)}
    nodes = [_adopt(n, [named.get(i) for i in g]) for n, g in zip(nodes, ins)]
    if not arrow:
        counts: dict[str, int] = {}
        for g in ins:
            for ch in g:
                counts[ch] = counts.get(ch, 0) + 1
        out = list(ellipsis) + sorted(ch for ch, c in counts.items() if c == 1 and ch not in ellipsis)
    else:
        if "..." in rhs and not any("..." in g for g in groups):
            raise IndexMismatchError(f"einsum {spec!r}: '...' in the output but in no operand")
        head, dots, tail = rhs.partition("...")
        out = list(head) + (list(ellipsis) if dots else []) + list(tail)
    # A repeated output index ('i->ii') is a diagonal: the repeat gets a fresh name tied
    # to the first by a unit tensor, which stays symbolic (a δ ⊗ core result).
    factors, factor_idx, final = list(nodes), [tuple(g) for g in ins], []
    index_dim = {i: d for n, g in zip(nodes, ins) for i, d in zip(g, n.dims)}
    for i in out:
        if i in final and i in index_dim:
            twin = alg.fresh_index()
            factors.append(alg.delta((index_dim[i],)))
            factor_idx.append((i, twin))
            final.append(twin)
        else:
            final.append(i)
    return alg.einsum(factors, factor_idx, tuple(final))


def _expand_ellipsis(spec: str, groups: list[str], nodes: list[Node]) -> tuple[list[str], tuple[str, ...]]:
    """Index groups with each ``...`` replaced by letters for the axes it covers (NumPy rules)."""
    if not any("..." in g for g in groups):
        return groups, ()
    used = {ch for g in groups for ch in g if ch.isalpha()}
    spare = [ch for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if ch not in used]
    covered = [n.ndim - len(g.replace("...", "")) if "..." in g else 0 for g, n in zip(groups, nodes)]
    if any(c < 0 for c in covered):
        raise IndexMismatchError(f"einsum {spec!r}: an operand has fewer dims than its indices")
    rank = builtins.max(covered)
    letters = tuple(spare[:rank])
    out: list[str] = []
    for g, c in zip(groups, covered):
        out.append(g.replace("...", "".join(letters[rank - c :])) if "..." in g else g)
    return out, letters


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
log1p = _elementwise("log1p")
expm1 = _elementwise("expm1")
sinh = _elementwise("sinh")
cosh = _elementwise("cosh")
arctan = _elementwise("arctan")
arcsin = _elementwise("arcsin")
arccos = _elementwise("arccos")
arcsinh = _elementwise("arcsinh")
arctanh = _elementwise("arctanh")
erf = _elementwise("erf")
log2 = _elementwise("log2")
log10 = _elementwise("log10")


def square(x: Operand) -> Node:
    """``x ** 2`` entry-wise."""
    return power(as_node(x, "argument of square"), 2.0)


def reciprocal(x: Operand) -> Node:
    """``1 / x`` entry-wise."""
    return power(as_node(x, "argument of reciprocal"), -1.0)


def maximum(a: Operand, b: Operand) -> Node:
    """The entry-wise maximum; at a tie each argument gets half the derivative (as JAX)."""
    return _elementwise_n("maximum", a, b)


def minimum(a: Operand, b: Operand) -> Node:
    """The entry-wise minimum; at a tie each argument gets half the derivative (as JAX)."""
    return _elementwise_n("minimum", a, b)


def arctan2(y: Operand, x: Operand) -> Node:
    """The angle of the point ``(x, y)``, entry-wise (NumPy's ``arctan2(y, x)``)."""
    return _elementwise_n("arctan2", y, x)


def where(condition: Operand, a: Operand, b: Operand) -> Node:
    """``a`` where ``condition`` is non-zero, else ``b`` (the derivative follows the branch taken)."""
    return _elementwise_n("where", condition, a, b)


def clip(x: Operand, lower: Operand | None = None, upper: Operand | None = None) -> Node:
    """``minimum(maximum(x, lower), upper)`` (NumPy's and JAX's ``clip``); None means no bound."""
    out = as_node(x, "argument of clip")
    if lower is None and upper is None:
        raise ShapeError("clip needs a lower or an upper bound")
    if lower is not None:
        out = maximum(out, lower)
    if upper is not None:
        out = minimum(out, upper)
    return out


def _comparison(name: str, symbol: str) -> Callable[[Operand, Operand], Node]:
    def compare(a: Operand, b: Operand) -> Node:
        return _elementwise_n(name, a, b)

    compare.__name__ = name
    compare.__doc__ = f"``a {symbol} b`` as 0/1 values (derivative 0)."
    return compare


greater = _comparison("greater", ">")
greater_equal = _comparison("greater_equal", ">=")
less = _comparison("less", "<")
less_equal = _comparison("less_equal", "<=")
equal = _comparison("equal", "==")
not_equal = _comparison("not_equal", "!=")


def inv(x: Operand) -> Node:
    """The matrix inverse."""
    return alg.unary("inv", as_node(x, "argument of inv"))


def solve(a: Operand, b: Operand) -> Node:
    """``x`` with ``a @ x = b`` (NumPy's ``linalg.solve``), built as ``inv(a) @ b``.

    The derivatives are those of the solve; the generated code forms the inverse.
    """
    return matmul(inv(a), b)


def slogdet(x: Operand) -> tuple[Node, Node]:
    """NumPy's ``linalg.slogdet``: ``(sign(det(x)), log|det(x)|)`` (the sign has derivative 0)."""
    node = as_node(x, "argument of slogdet")
    return sign(det(node)), logdet(node)


def det(x: Operand) -> Node:
    """The determinant."""
    return alg.unary("det", as_node(x, "argument of det"))


def adjugate(x: Operand) -> Node:
    """The adjugate ``det(x) inv(x)`` (transposed cofactors), finite at singular ``x``."""
    return alg.unary("adjugate", as_node(x, "argument of adjugate"))


def logdet(x: Operand) -> Node:
    """``log|det(x)|``."""
    return alg.unary("logdet", as_node(x, "argument of logdet"))


Axes = int | tuple[int, ...] | None


def triu(x: Operand, k: int = 0) -> Node:
    """The upper triangle of a matrix (entries with j - i >= k), zeros elsewhere."""
    return alg.unary("triu", as_node(x, "argument of triu"), k)


def tril(x: Operand, k: int = 0) -> Node:
    """The lower triangle of a matrix (entries with j - i <= k), zeros elsewhere."""
    return alg.unary("tril", as_node(x, "argument of tril"), k)


def softmax(x: Operand, axis: Axes = -1) -> Node:
    """Softmax along ``axis`` (one axis or a tuple of them)."""
    return alg.unary("softmax", as_node(x, "argument of softmax"), axis)


def log_softmax(x: Operand, axis: Axes = -1) -> Node:
    """``log(softmax(x, axis))``, computed stably."""
    return alg.unary("log_softmax", as_node(x, "argument of log_softmax"), axis)


def logsumexp(x: Operand, axis: Axes = None, keepdims: bool = False) -> Node:
    """``log(sum(exp(x), axis))``, computed stably (one axis, a tuple of them or all)."""
    node = as_node(x, "argument of logsumexp")
    out = alg.unary("logsumexp", node, axis)
    return _keep(out, node.ndim, _axes(node, axis, "logsumexp")) if keepdims else out


def __getattr__(name: str) -> object:
    # the parsers' name table moved to eincalc.language; ops.FUNCTIONS still finds it
    if name == "FUNCTIONS":
        from eincalc.language import FUNCTIONS

        return FUNCTIONS
    raise AttributeError(f"module 'eincalc.ops' has no attribute {name!r}")
