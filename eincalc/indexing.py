"""Indexing and joining: ``x[0]``, ``X[:, 1:3]``, ``x[:, None]``, gathers, ``stack``, ``concatenate``.

Gathers are ``x[[3, 0, 0]]`` and ``logp[arange(n), labels]`` with integer arrays.

Integers and slices are products with a selection matrix (:class:`eincalc.expr.Window`,
symbolic in the indexed dim), new axes are products with ones over the dim ``"1"``; so the
derivative of an indexed expression scatters back through the same matrix and no new
node kind needs a derivative rule. A slice of a named dim that leaves k entries out has
the derived dim ``n-k`` (``x[1:]``, ``x[:-1]``); reshapes that merge or split named dims
are the function ``reshape`` (:mod:`eincalc.reshapes`) with dims like ``m*n``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import numpy as np

from eincalc import algebra as alg
from eincalc import dims as dimsmod
from eincalc.errors import ShapeError
from eincalc.expr import Node
from eincalc.ops import Operand, _axes, as_node


def expand_dims(a: Operand, axis: int | tuple[int, ...]) -> Node:
    """New size-1 axes at the positions ``axis`` of the result (NumPy's ``expand_dims``, ``x[:, None]``)."""
    x = as_node(a, "argument of expand_dims")
    rank = x.ndim + (1 if isinstance(axis, int) else len(axis))
    new = _axes(alg.const(0.0, ("1",) * rank), axis, "expand_dims")
    if not new:
        return x
    idx = alg.symbols(rank)
    kept = [i for k, i in enumerate(idx) if k not in new]
    return alg.einsum([x, alg.const(1.0, ("1",) * len(new))], [kept, [idx[k] for k in new]], idx)


def window(dims: object, start: int, from_end: bool = False) -> Node:
    """The selection matrix of dims ``(size, n)``: W[a, i] = 1 where i = start + a (from the end of n)."""
    out_dim, in_dim = dimsmod.parse_dims(dims, "dims of a window")
    return alg.window(out_dim, in_dim, start, from_end)


def gather(dims: object, rows: object) -> Node:
    """The gather matrix of dims ``(len(rows), n)``: W[a, i] = 1 where i = rows[a]."""
    out_dim, in_dim = dimsmod.parse_dims(dims, "dims of a gather")
    return alg.window(out_dim, in_dim, rows=_positions(rows))


def _positions(item: object) -> tuple[int, ...] | None:
    """Integer positions of an index array (a list or NumPy array of ints), else None."""
    if isinstance(item, (list, np.ndarray)):
        values = np.asarray(item)
        if values.ndim != 1 or values.dtype.kind not in "iu" and not (values.size == 0):
            raise ShapeError("an index array must be a 1-D list or array of integers")
        return tuple(int(v) for v in values)
    return None


def index(a: Operand, key: object) -> Node:
    """NumPy's basic indexing: integers, slices with unit step, ``None`` and ``...``.

    Each integer or slice is a product with a selection matrix (:func:`window`), so the
    derivative of an indexed expression scatters back through the same matrix. A slice
    has a fixed length (``v[1:3]``, ``v[:2]``, ``v[-3:]``, ``v[-3:-1]``) or, on a named dim
    ``n``, the derived length ``n-k`` (``v[1:]``, ``v[:-1]``, ``v[1:-1]``).
    """
    x = as_node(a, "indexed operand")
    items = list(key) if isinstance(key, tuple) else [key]
    arrays = [k for k, it in enumerate(items) if _positions(it) is not None]
    if arrays:
        return _gather(x, items, arrays)
    consumed = builtins.sum(1 for it in items if it is not None and it is not Ellipsis)
    if consumed > x.ndim:
        raise ShapeError(f"too many indices ({consumed}) for dims {dimsmod.fmt(x.dims)}")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (x.ndim - consumed)
    items += [slice(None)] * (x.ndim - builtins.sum(1 for it in items if it is not None))
    letters = iter(alg.symbols(64))
    x_idx = [next(letters) for _ in range(x.ndim)]
    operands: list[Node] = [x]
    in_idx: list[tuple[str, ...]] = [tuple(x_idx)]
    out: list[str] = []
    axis = 0
    for it in items:
        if it is None:
            new = next(letters)
            operands.append(alg.const(1.0, ("1",)))
            in_idx.append((new,))
            out.append(new)
            continue
        d, i = x.dims[axis], x_idx[axis]
        axis += 1
        if isinstance(it, slice) and it == slice(None):
            out.append(i)
            continue
        size, start, from_end = _selection(it, d)
        new = next(letters)
        operands.append(alg.window(size, d, start, from_end))
        in_idx.append((new, i))
        if not isinstance(it, (int, np.integer)):
            out.append(new)
    return alg.einsum(operands, in_idx, out)


def _gather(x: Node, items: list[object], arrays: list[int]) -> Node:
    """Integer-array indexing: ``x[labels]``, ``logp[arange(n), labels]`` (NumPy's pairing rule).

    The arrays pair up entry by entry into one result axis, placed where the first one was.
    An array equal to ``arange(len)`` pairs without a gather matrix: its axis becomes the
    result axis (so ``logp[arange(n), labels]`` is Σⱼ logp[a, j] W[a, j], W one-hot-free
    in the expression: its positions are kept, not a dense matrix).
    """
    others = [it for k, it in enumerate(items) if k not in arrays]
    if any(not (isinstance(it, slice) and it == slice(None)) for it in others) or len(items) > x.ndim:
        raise ShapeError("integer arrays in an index combine only with full slices ':'")
    if arrays != list(range(arrays[0], arrays[0] + len(arrays))):
        raise ShapeError("index arrays must be adjacent")
    positions = [_positions(items[k]) for k in arrays]
    length = len(positions[0])  # type: ignore[arg-type]
    if any(len(p) != length for p in positions):  # type: ignore[arg-type]
        raise ShapeError("index arrays must have equal lengths (no broadcasting of index arrays)")
    x_idx = list(alg.symbols(x.ndim))
    g = alg.symbols(1, x.ndim)[0]  # the result axis
    ranged = [k for k, p in zip(arrays, positions) if p == tuple(range(length))]
    out_dim = x.dims[ranged[0]] if ranged else str(length)
    operands: list[Node] = [x]
    in_idx: list[tuple[str, ...]] = []
    for k, p in zip(arrays, positions):
        if ranged and k == ranged[0]:
            x_idx[k] = g  # arange pairs with the result axis itself
        else:
            operands.append(alg.window(out_dim, x.dims[k], rows=p))
            in_idx.append((g, x_idx[k]))
    out = [i for k, i in enumerate(x_idx) if k not in arrays]
    out.insert(arrays[0], g)
    return alg.einsum(operands, [tuple(x_idx), *in_idx], out)


def _selection(item: object, dim: str) -> tuple[str, int, bool]:
    """(size, start, from_end) of an integer or a unit-step slice along ``dim``."""
    n = int(dim) if dimsmod.is_literal(dim) else None
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        k = int(item)
        if n is not None and not -n <= k < n:
            raise ShapeError(f"index {k} is out of range for dim {dim!r}")
        return ("1", -k, True) if k < 0 else ("1", k, False)
    if not isinstance(item, slice) or any(
        v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)))
        for v in (item.start, item.stop, item.step)
    ):
        raise ShapeError(f"index {item!r}: only integers, slices of integers, None and ... are supported")
    if item.step not in (None, 1):
        raise ShapeError(f"slice {item!r}: only a step of 1 is supported")
    lo, hi = item.start, item.stop
    if n is not None:  # a fixed size: NumPy's own rules
        first, last, _ = slice(lo, hi).indices(n)
        if last <= first:
            raise ShapeError(f"slice {item!r} of dim {dim!r} is empty")
        return str(last - first), first, False
    lo = 0 if lo is None else int(lo)
    if hi is None:
        if lo < 0:
            return str(-lo), -lo, True  # v[-3:]
        return dimsmod.minus(dim, lo), lo, False  # v[1:]: the dim n-1
    hi = int(hi)
    if lo >= 0 and hi < 0:  # v[:-1], v[1:-1]: the dim n-k
        return dimsmod.minus(dim, lo - hi), lo, False
    if (lo < 0) != (hi < 0) or hi <= lo:
        raise ShapeError(f"slice {item!r} of dim {dim!r} has no fixed length (or is empty)")
    return str(hi - lo), (-lo if lo < 0 else lo), lo < 0


def stack(arrays: Sequence[Operand], axis: int = 0) -> Node:
    """NumPy's ``stack``: a new axis of size ``len(arrays)``; entry k is a product with a unit vector."""
    nodes = _stack_operands(arrays, "stack")
    rank = nodes[0].ndim + 1
    if not -rank <= axis < rank:
        raise ShapeError(f"stack: axis {axis} is out of range for rank {rank}")
    axis %= rank
    idx = alg.symbols(rank)
    new = idx[axis]
    kept = idx[:axis] + idx[axis + 1 :]
    k_dim = str(len(nodes))
    terms = [alg.einsum([x, alg.window("1", k_dim, k)], [kept, ("#unit", new)], idx) for k, x in enumerate(nodes)]
    return alg.add(terms)


def concatenate(arrays: Sequence[Operand], axis: int = 0) -> Node:
    """NumPy's ``concatenate`` along an axis of fixed sizes (each part is placed by a selection matrix)."""
    nodes = _stack_operands(arrays, "concatenate", same_rank_only=True)
    rank = nodes[0].ndim
    if rank == 0 or not -rank <= axis < rank:
        raise ShapeError(f"concatenate: axis {axis} is out of range for rank {rank}")
    axis %= rank
    sizes = [x.dims[axis] for x in nodes]
    if not all(dimsmod.is_literal(d) for d in sizes):
        raise ShapeError(
            f"concatenate needs fixed sizes along axis {axis}, got dims {', '.join(sizes)} "
            "(the length of the result would have no name)"
        )
    for x in nodes[1:]:
        for k, (a, b) in enumerate(zip(nodes[0].dims, x.dims)):
            if k != axis:
                dimsmod.require_same(a, b, f"concatenate: axis {k} of the parts")
    total = str(builtins.sum(int(d) for d in sizes))
    idx = alg.symbols(rank + 1)
    out = idx[:rank]
    terms, offset = [], 0
    for x, d in zip(nodes, sizes):
        part = out[:axis] + (idx[rank],) + out[axis + 1 :]
        terms.append(alg.einsum([x, alg.window(d, total, offset)], [part, (idx[rank], out[axis])], out))
        offset += int(d)
    return alg.add(terms)


def _stack_operands(arrays: Sequence[Operand], fn: str, same_rank_only: bool = False) -> list[Node]:
    if not isinstance(arrays, (list, tuple)) or not arrays:
        raise ShapeError(f"{fn} needs a non-empty list of operands")
    nodes = [as_node(a, f"operand {k} of {fn}") for k, a in enumerate(arrays)]
    for k, x in enumerate(nodes[1:], 1):
        if x.ndim != nodes[0].ndim:
            raise ShapeError(
                f"{fn}: operand {k} has dims {dimsmod.fmt(x.dims)}, operand 0 {dimsmod.fmt(nodes[0].dims)}"
            )
        if not same_rank_only:
            dimsmod.require_same_dims(nodes[0].dims, x.dims, f"{fn}: operand {k} against operand 0")
    return nodes


def reshape(a: Operand, *shape: object) -> Node:
    """NumPy's ``reshape``, named dims included: ``X.reshape(-1)`` of an ``m × n`` matrix has the dim ``m*n``.

    Sizes are ints with at most one -1; each int is matched with consecutive fixed dims of
    equal product (or is a new size-1 axis), the -1 takes the dims in between. Target dims
    can also be given by name: ``reshape(X, 'm*n')``, ``reshape(v, 'm n')`` (a split).
    Adding or removing size-1 axes is a product with ones; any other reshape is the
    function ``reshape`` (a view in code, reshapes as derivative rules).
    """
    x = as_node(a, "argument of reshape")
    if len(shape) == 1 and isinstance(shape[0], str):
        return _reshaped(x, dimsmod.parse_dims(shape[0], "dims of reshape"))
    target = list(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else list(shape)
    if any(not isinstance(t, (int, np.integer)) or isinstance(t, bool) or t == 0 or t < -1 for t in target):
        raise ShapeError(f"reshape takes positive sizes and at most one -1, got {tuple(target)}")
    if target.count(-1) > 1:
        raise ShapeError("reshape takes at most one -1")
    named = [d for d in x.dims if d != "1"]
    ones = [k for k, t in enumerate(target) if t == 1]
    rest = [k for k, t in enumerate(target) if t != 1]
    if len(rest) == len(named) and all(
        target[k] == -1 or (dimsmod.is_literal(d) and int(d) == target[k]) for k, d in zip(rest, named)
    ):
        squeezed = _squeeze_ones(x)
        return expand_dims(squeezed, tuple(ones)) if ones else squeezed
    if all(dimsmod.is_literal(d) for d in x.dims):  # fixed sizes: NumPy's rule, splits included
        size = int(np.prod([int(d) for d in x.dims], dtype=np.int64))
        known = int(np.prod([t for t in target if t != -1], dtype=np.int64))
        if -1 in target:
            if size % known:
                raise ShapeError(f"cannot reshape dims {dimsmod.fmt(x.dims)} into {tuple(target)}")
            target[target.index(-1)] = size // known
        if int(np.prod(target, dtype=np.int64)) != size:
            raise ShapeError(f"cannot reshape dims {dimsmod.fmt(x.dims)} into {tuple(target)}")
        return _reshaped(x, tuple(str(int(t)) for t in target))
    groups = _groups(named, [int(t) for t in target])
    if groups is None:
        raise ShapeError(f"cannot reshape dims {dimsmod.fmt(x.dims)} into {tuple(target)}")
    return _reshaped(x, tuple(dimsmod.product(g) for g in groups))


def _reshaped(x: Node, dims: tuple[str, ...]) -> Node:
    dimsmod.same_size(x.dims, dims, "reshape")
    if dims == x.dims:
        return x
    return alg.unary("reshape", x, dims)


def _groups(dims: list[str], target: list[int]) -> list[list[str]] | None:
    """The dims each target size takes: fixed sizes from consecutive fixed dims, -1 the rest (None: no fit)."""
    split = target.index(-1) if -1 in target else len(target)

    def take(sizes: list[int], pool: list[str]) -> list[list[str]] | None:
        out: list[list[str]] = []
        for t in sizes:
            group: list[str] = []
            total = 1
            while total < t and pool and dimsmod.is_literal(pool[0]):
                group.append(pool.pop(0))
                total *= int(group[-1])
            if total != t:
                return None
            out.append(group)
        return out

    pool = list(dims)
    left = take(target[:split], pool)
    if left is None:
        return None
    if split == len(target):
        return left if not pool else None
    pool.reverse()
    right = take(target[:split:-1], pool)
    if right is None:
        return None
    middle = list(reversed(pool))
    return [*left, middle, *[list(reversed(g)) for g in reversed(right)]]


def _squeeze_ones(x: Node) -> Node:
    """``x`` without its size-1 axes."""
    if "1" not in x.dims:
        return x
    idx = alg.symbols(x.ndim)
    return alg.einsum([x], [idx], tuple(i for i, d in zip(idx, x.dims) if d != "1"))
