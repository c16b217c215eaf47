"""Window products as PyTorch's convolution kernels: ``conv2d``, its input and its weight gradient.

NumPy has no convolution, so a product with window tensors becomes an im2col view and
a matrix product (:mod:`eincalc.codegen.numpy_windows`); torch has convolutions, and
``torch.autograd`` uses them. A product of two arrays whose windows follow one of the
three patterns below is one call; anything else keeps NumPy's lowering.

With ``N`` the batch indices (output, signal only), ``C`` the input channels and ``O``
the output channels, spatial positions ``i`` windowed into starts ``o`` and offsets ``k``:

* *forward*: ``Σ_{C,k} A[N,C,i(o,k)] K[O,C,k]`` → ``conv2d(A, K)`` — out (N, O, o);
* *weight gradient*: ``Σ_{N,o} A[N,C,i(o,k)] G[N,O,o]`` → ``conv2d_weight(A, K.shape, G)`` — out (O, C, k);
* *input gradient*: ``Σ_{O} G[N,O,o] K[O,C,k]`` scattered to ``i`` → ``conv2d_input(A.shape, K, G)`` — out (N, C, i).

Index groups may hold several indices (flattened) or none (a size-1 axis). One, two or
three spatial axes use conv1d, conv2d or conv3d. The window's stride, padding and
dilation are the call's (PyTorch's padding is symmetric, as :class:`~eincalc.expr.Shift`'s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from eincalc._types import Dim, Index, IndexTuple
from eincalc.codegen.printer import ATOM, Context, Expr, binary, literal
from eincalc.codegen.windows import Lowering, index_dims
from eincalc.expr import Const, Einsum, Shift

_NAMES = {1: "1d", 2: "2d", 3: "3d"}
Dims = Mapping[Index, Dim]
Window = tuple[Shift, Index, Index, Index]
"""A gathered window: its shift, the position index ``i``, the offset ``k`` and the start ``o``."""


def convolution_call(node: Einsum, low: Lowering, coef: float, ctx: Context, np: Callable[[str], str]) -> Expr | None:
    """``node`` as one PyTorch convolution call (``np`` spells torch members), or None if it is no plain one."""
    if any(isinstance(op, Const) for op in node.operands) or len(low.factors) != 2:
        return None
    if len(set(node.out_idx)) != len(node.out_idx):
        return None  # a diagonal of the result: no convolution's layout
    n = len(low.gathers) + len(low.scatters)
    if n not in _NAMES or (low.gathers and low.scatters):
        return None
    if low.gathers:
        if len({g.operand for g in low.gathers}) != 1:
            return None
        signal = low.gathers[0].operand
        (other,) = (k for k, _ in low.factors if k != signal)
        windows: list[Window] = [(g.shift, g.i, g.k, g.o) for g in low.gathers]
        b_idx = node.in_idx[other]
        if {g.k for g in low.gathers} <= set(b_idx):
            return _forward(node, signal, other, windows, coef, ctx, np)
        if {g.o for g in low.gathers} <= set(b_idx):
            return _weight_gradient(node, signal, other, windows, coef, ctx, np)
        return None
    return _input_gradient(node, low, coef, ctx, np)


def _groups(a: IndexTuple, b: IndexTuple, out: IndexTuple, spatial: set[Index]) -> tuple[IndexTuple, ...] | None:
    """(only in a, in both, only in b), spatial indices left out; None unless each index goes one plain way.

    Indices only in ``a`` or only in ``b`` must be output indices and shared ones summed
    (a shared output index would be a grouped convolution; a summed index of one
    operand alone a sum first — both keep NumPy's lowering).
    """
    if len(set(a)) != len(a) or len(set(b)) != len(b):
        return None
    only_a = tuple(i for i in a if i not in spatial and i not in b)
    both = tuple(i for i in a if i not in spatial and i in b)
    only_b = tuple(i for i in b if i not in spatial and i not in a)
    if any(i not in out for i in only_a + only_b) or any(i in out for i in both):
        return None
    return only_a, both, only_b


def _as_nc(
    e: Expr, idx: IndexTuple, first: IndexTuple, second: IndexTuple, rest: IndexTuple, dims: Dims, ctx: Context
) -> str:
    """``e`` (axes ``idx``) as (first flattened, second flattened, *rest): a permute and a reshape where needed."""
    order = (*first, *second, *rest)
    text = e.atom
    perm = tuple(idx.index(i) for i in order)
    if perm != tuple(range(len(idx))):
        text += f".permute({', '.join(map(str, perm))})"
    if len(first) != 1 or len(second) != 1:
        sizes = [_flat(first, dims, ctx), _flat(second, dims, ctx), *(ctx.size(dims[i]) for i in rest)]
        text += f".reshape({', '.join(sizes)})"
    return text


def _flat(group: IndexTuple, dims: Dims, ctx: Context) -> str:
    """Code for the number of entries of the axes ``group`` (1 for none)."""
    return " * ".join(ctx.size(dims[i]) for i in group) if group else "1"


def _shape(groups: tuple[IndexTuple, IndexTuple, IndexTuple], dims: Dims, ctx: Context) -> str:
    """Code for the shape (first flattened, second flattened, *spatial) of a convolution's operand."""
    first, second, spatial = groups
    return f"({', '.join([_flat(first, dims, ctx), _flat(second, dims, ctx), *(ctx.size(dims[i]) for i in spatial)])})"


def _call(name: str, args: list[str], shifts: Sequence[Shift]) -> str:
    """``name(args…, stride=…, padding=…, dilation=…)``, options only where they are not the default."""
    return f"{name}({', '.join([*args, *_options(shifts)])})"


def _options(shifts: Sequence[Shift]) -> list[str]:
    """``stride=…, padding=…, dilation=…`` where they differ from 1, 0, 1."""
    options = []
    for name, values, default in (
        ("stride", [s.stride for s in shifts], 1),
        ("padding", [s.padding for s in shifts], 0),
        ("dilation", [s.dilation for s in shifts], 1),
    ):
        if any(v != default for v in values):
            options.append(f"{name}={values[0] if len(values) == 1 else tuple(values)}")
    return options


def _finish(value: str, groups: Sequence[IndexTuple], node: Einsum, coef: float, dims: Dims, ctx: Context) -> Expr:
    """The call's (flat, flat, *spatial) result in ``node``'s output order, times ``coef``."""
    axes = tuple(i for g in groups for i in g)
    text = value
    if any(len(g) != 1 for g in groups[:2]):
        text += f".reshape({', '.join(ctx.size(dims[i]) for i in axes)})"
    perm = tuple(axes.index(i) for i in node.out_idx)
    if perm != tuple(range(len(perm))):
        text += f".permute({', '.join(map(str, perm))})"
    e = Expr(text, ATOM, owned=True)
    return e if coef == 1.0 else binary(literal(coef), "*", e)


def _forward(node: Einsum, signal: int, kernel: int, windows: list[Window], coef: float, ctx: Context,
             np: Callable[[str], str]) -> Expr | None:  # fmt: skip
    dims = index_dims(node)
    a, b, out = node.in_idx[signal], node.in_idx[kernel], node.out_idx
    i_s, k_s, o_s = (tuple(w[j] for w in windows) for j in (1, 2, 3))
    if any(k in out or k in a for k in k_s) or any(o not in out or o in b for o in o_s):
        return None
    groups = _groups(a, b, out, {*i_s, *k_s})
    if groups is None:
        return None
    batch, channels, outs = groups
    x = _as_nc(ctx.arg(node.operands[signal]), a, batch, channels, i_s, dims, ctx)
    w = _as_nc(ctx.arg(node.operands[kernel]), b, outs, channels, k_s, dims, ctx)
    value = _call(np(f"nn.functional.conv{_NAMES[len(windows)]}"), [x, w], [win[0] for win in windows])
    return _finish(value, [batch, outs, o_s], node, coef, dims, ctx)


def _weight_gradient(node: Einsum, signal: int, grad: int, windows: list[Window], coef: float, ctx: Context,
                     np: Callable[[str], str]) -> Expr | None:  # fmt: skip
    dims = index_dims(node)
    a, g, out = node.in_idx[signal], node.in_idx[grad], node.out_idx
    i_s, k_s, o_s = (tuple(w[j] for w in windows) for j in (1, 2, 3))
    if any(k not in out for k in k_s) or any(o in out or o in a for o in o_s):
        return None
    groups = _groups(a, g, out, {*i_s, *o_s})
    if groups is None:
        return None
    channels, batch, outs = groups  # in the signal only: its channels; shared: the batch
    x = _as_nc(ctx.arg(node.operands[signal]), a, batch, channels, i_s, dims, ctx)
    dy = _as_nc(ctx.arg(node.operands[grad]), g, batch, outs, o_s, dims, ctx)
    shape = _shape((outs, channels, k_s), dims, ctx)
    value = _call(np(f"nn.grad.conv{_NAMES[len(windows)]}_weight"), [x, shape, dy], [win[0] for win in windows])
    return _finish(value, [outs, channels, k_s], node, coef, dims, ctx)


def _input_gradient(node: Einsum, low: Lowering, coef: float, ctx: Context, np: Callable[[str], str]) -> Expr | None:
    dims = index_dims(node)
    i_s, k_s, o_s = (tuple(s.i for s in low.scatters), tuple(s.k for s in low.scatters),
                     tuple(s.o for s in low.scatters))  # fmt: skip
    (gk, g), (kk, b) = ((k, node.in_idx[k]) for k, _ in low.factors)
    if set(o_s) <= set(b):
        (gk, g), (kk, b) = (kk, b), (gk, g)
    out = node.out_idx
    if not set(o_s) <= set(g) or not set(k_s) <= set(b) or any(o in b for o in o_s) or any(k in g for k in k_s):
        return None
    groups = _groups(g, b, out, {*o_s, *k_s, *i_s})
    if groups is None:
        return None
    batch, outs, channels = groups
    dy = _as_nc(ctx.arg(node.operands[gk]), g, batch, outs, o_s, dims, ctx)
    w = _as_nc(ctx.arg(node.operands[kk]), b, outs, channels, k_s, dims, ctx)
    shape = _shape((batch, channels, i_s), dims, ctx)
    value = _call(np(f"nn.grad.conv{_NAMES[len(low.scatters)]}_input"), [shape, w, dy], [s.shift for s in low.scatters])
    return _finish(value, [batch, channels, i_s], node, coef, dims, ctx)
