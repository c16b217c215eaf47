"""Convolution and pooling, as products with a window tensor (:class:`~eincalc.expr.Shift`).

A convolution is an ordinary product with one structured constant per spatial axis:

    conv1d:  Y[b, d, o] = Σ_{c,k,i} X[b, c, i] · S[i, k, o] · K[d, c, k]
    conv2d:  Y[b, d, p, q] = Σ X[b, c, i, j] · Sh[i, k, p] · Sw[j, l, q] · K[d, c, k, l]

so its derivatives come from the product rule with no rule of their own: the gradient
w.r.t. the kernel is again a windowed product (a correlation of input and signal), the
gradient w.r.t. the input a transposed convolution (the signal scattered back through
the windows). Average pooling is the same product with a constant kernel, and
:func:`windows` exposes the window axes themselves (max pooling is a max over them).
Code generation lowers every product with a window tensor to a sliding-window view or a
strided scatter (:mod:`eincalc.codegen.windows`); the 0/1 tensor is never built.

Spatial sizes must be fixed numbers (``X="b c 28 28"``): the output size is a function
of them. Batch and channel dims may be named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eincalc import algebra as alg
from eincalc import dims as dimsmod
from eincalc.errors import ShapeError
from eincalc.expr import Node, Shift
from eincalc.ops import Operand, as_node

IntOrPair = int | Sequence[int]


def _positive(value: object, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ShapeError(f"{what} must be an int ≥ {least}, got {value!r}")
    return value


def shift(size: int, kernel: int, stride: int = 1, dilation: int = 1, padding: int = 0) -> Shift:
    """The window tensor ``S[i, k, o] = 1`` iff ``i = o·stride + k·dilation − padding``: dims ``(size, kernel, out)``.

    Examples:
        >>> s = shift(6, 3, stride=2, padding=1)
        >>> s.dims
        ('6', '3', '3')
    """
    size = _positive(size, "shift: size")
    kernel = _positive(kernel, "shift: kernel")
    stride = _positive(stride, "shift: stride")
    dilation = _positive(dilation, "shift: dilation")
    padding = _positive(padding, "shift: padding", least=0)
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:
        raise ShapeError(
            f"a window of {kernel} (spanning {span} with dilation {dilation}) does not fit an axis of size {size} "
            f"with padding {padding}"
        )
    return Shift.make(size, kernel, stride, dilation, padding)


def _pair(value: IntOrPair, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if isinstance(value, (tuple, list)) and len(value) == n:
        return tuple(value)
    raise ShapeError(f"{what} must be an int or a tuple of {n} ints, got {value!r}")


def _spatial(x: Node, n: int, what: str) -> tuple[int, ...]:
    if x.ndim < n:
        raise ShapeError(f"{what} needs at least {n} axes, got dims {dimsmod.fmt(x.dims)}")
    dims = x.dims[x.ndim - n :]
    if not all(dimsmod.is_literal(d) for d in dims):
        raise ShapeError(
            f"{what} needs fixed spatial sizes (declare them as numbers, e.g. 'b c 28 28'); "
            f"got dims {dimsmod.fmt(dims)}"
        )
    return tuple(int(d) for d in dims)


def _windowed(
    x: Node, n: int, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int], padding: Sequence[int],
    what: str,
) -> tuple[list[Node], list[tuple[str, ...]], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:  # fmt: skip
    """Factors ``x, S₁, …, Sₙ`` over the last ``n`` axes of ``x``, and the lead, window and output indices."""
    sizes = _spatial(x, n, what)
    lead = tuple(f"l{k}" for k in range(x.ndim - n))
    inner = tuple(f"i{k}" for k in range(n))
    win = tuple(f"k{k}" for k in range(n))
    outer = tuple(f"o{k}" for k in range(n))
    factors: list[Node] = [x]
    idx: list[tuple[str, ...]] = [lead + inner]
    for axis in range(n):
        factors.append(shift(sizes[axis], kernel[axis], stride[axis], dilation[axis], padding[axis]))
        idx.append((inner[axis], win[axis], outer[axis]))
    return factors, idx, lead, win, outer


def _conv(x: Operand, kernel: Operand, n: int, stride: IntOrPair, padding: IntOrPair, dilation: IntOrPair) -> Node:
    what = f"conv{n}d"
    x = as_node(x, f"input of {what}")
    kernel = as_node(kernel, f"kernel of {what}")
    if kernel.ndim != n + 2:
        raise ShapeError(
            f"{what}: the kernel needs dims (out channels, in channels, {n} window sizes), "
            f"got {dimsmod.fmt(kernel.dims)}"
        )
    if x.ndim < n + 1:
        raise ShapeError(f"{what}: the input needs dims (…, channels, {n} spatial), got {dimsmod.fmt(x.dims)}")
    dimsmod.require_same(x.dims[x.ndim - n - 1], kernel.dims[1], f"{what}: input channels vs kernel in channels")
    window = _spatial(kernel, n, f"{what} kernel")
    factors, idx, lead, win, outer = _windowed(
        x, n, window, _pair(stride, n, f"{what}: stride"), _pair(dilation, n, f"{what}: dilation"),
        _pair(padding, n, f"{what}: padding"), what,
    )  # fmt: skip
    batch, channel = lead[:-1], lead[-1]
    factors.append(kernel)
    idx.append(("d", channel) + win)
    return alg.einsum(factors, idx, batch + ("d",) + outer)


def conv1d(x: Operand, kernel: Operand, stride: IntOrPair = 1, padding: IntOrPair = 0, dilation: IntOrPair = 1) -> Node:
    """1-D convolution (cross-correlation, as PyTorch's ``conv1d``): ``(…, c, n) * (d, c, k) → (…, d, o)``.

    Examples:
        >>> import eincalc as ec
        >>> X, K = ec.tensor("X", "b 3 10"), ec.tensor("K", "4 3 3")
        >>> conv1d(X, K, padding=1).dims
        ('b', '4', '10')
    """
    return _conv(x, kernel, 1, stride, padding, dilation)


def conv2d(x: Operand, kernel: Operand, stride: IntOrPair = 1, padding: IntOrPair = 0, dilation: IntOrPair = 1) -> Node:
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``): ``(…, c, h, w) * (d, c, kh, kw) → (…, d, oh, ow)``.

    Examples:
        >>> import eincalc as ec
        >>> X, K = ec.tensor("X", "b 1 8 8"), ec.tensor("K", "6 1 3 3")
        >>> conv2d(X, K).dims
        ('b', '6', '6', '6')
    """
    return _conv(x, kernel, 2, stride, padding, dilation)


def windows(x: Operand, size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0, n: int = 2) -> Node:
    """The sliding windows of the last ``n`` axes: ``(…, h, w) → (…, oh, ow, kh, kw)`` (zeros where padded).

    Examples:
        >>> import eincalc as ec
        >>> windows(ec.tensor("X", "b 4 4"), 2).dims
        ('b', '2', '2', '2', '2')
    """
    x = as_node(x, "input of windows")
    kernel = _pair(size, n, "windows: size")
    factors, idx, lead, win, outer = _windowed(
        x, n, kernel, _pair(kernel if stride is None else stride, n, "windows: stride"), (1,) * n,
        _pair(padding, n, "windows: padding"), "windows",
    )  # fmt: skip
    return alg.einsum(factors, idx, lead + outer + win)


def _max_pool(x: Operand, n: int, size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair) -> Node:
    from eincalc.reductions import max as reduce_max  # reductions import ops, as this module does
    from eincalc.reductions import min as reduce_min

    what = f"max_pool{n}d"
    x = as_node(x, f"input of {what}")
    kernel = _pair(size, n, f"{what}: size")
    steps = _pair(kernel if stride is None else stride, n, f"{what}: stride")
    pads = _pair(padding, n, f"{what}: padding")
    for k, p in zip(kernel, pads):
        if isinstance(p, int) and 2 * p > k:
            raise ShapeError(f"{what}: padding {p} is more than half the window {k} (PyTorch's limit too)")
    w = windows(x, kernel, steps, pads, n=n)
    if any(pads):
        # Padded entries are -inf for a max (PyTorch): here min(x) - 1, finite and below every
        # entry, so a padded entry never wins nor ties and takes no part in the derivative.
        real = _real_entries(_spatial(x, n, what), kernel, steps, pads)
        w = w + alg.array(1.0 - real) * (reduce_min(x) - 1.0)
    return reduce_max(w, axis=tuple(range(w.ndim - n, w.ndim)))


def _real_entries(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]) -> Any:
    """M[o₁…oₙ, k₁…kₙ] = 1 where window entry k of output o lies inside the input, 0 where padded."""
    axes = []
    for size, k, s, p in zip(sizes, kernel, stride, padding):
        out = (size + 2 * p - k) // s + 1
        pos = np.arange(out)[:, None] * s + np.arange(k)[None, :] - p
        axes.append(((pos >= 0) & (pos < size)).astype(float))
    n = len(axes)
    letters = "abcdefgh"
    spec = ",".join(letters[a] + letters[n + a] for a in range(n)) + "->" + letters[:n] + letters[n : 2 * n]
    return np.einsum(spec, *axes)


def max_pool1d(x: Operand, size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> Node:
    """Maximum over windows of the last axis (stride defaults to the window size): ``(…, n) → (…, o)``.

    The derivative splits a tie evenly between the tied entries, as JAX's ``reduce_max``.
    Padding acts as ``-inf`` (PyTorch's ``max_pool1d``): a padded entry is never the maximum;
    like PyTorch, at most half the window may be padding.
    """
    return _max_pool(x, 1, size, stride, padding)


def max_pool2d(x: Operand, size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> Node:
    """Maximum over windows of the last two axes (stride defaults to the window size): ``(…, h, w) → (…, oh, ow)``.

    Examples:
        >>> import eincalc as ec
        >>> max_pool2d(ec.tensor("X", "b 6 8 8"), 2).dims
        ('b', '6', '4', '4')
    """
    return _max_pool(x, 2, size, stride, padding)


def _registered() -> None:
    """Make the operations callable from the NumPy dialect (ints by keyword: ``conv2d(X, K, stride=2)``)."""
    from eincalc.ops import FUNCTIONS

    options = ("stride", "padding", "dilation")
    FUNCTIONS.update(
        {
            "shift": (shift, 0, ("size", "kernel", *options)),
            "conv1d": (conv1d, 2, options),
            "conv2d": (conv2d, 2, options),
            "windows": (windows, 1, ("size", "stride", "padding")),
            "avg_pool1d": (avg_pool1d, 1, ("size", "stride", "padding")),
            "avg_pool2d": (avg_pool2d, 1, ("size", "stride", "padding")),
            "max_pool1d": (max_pool1d, 1, ("size", "stride", "padding")),
            "max_pool2d": (max_pool2d, 1, ("size", "stride", "padding")),
        }
    )


def _avg_pool(x: Operand, n: int, size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair) -> Node:
    what = f"avg_pool{n}d"
    x = as_node(x, f"input of {what}")
    kernel = _pair(size, n, f"{what}: size")
    factors, idx, lead, win, outer = _windowed(
        x, n, kernel, _pair(kernel if stride is None else stride, n, f"{what}: stride"), (1,) * n,
        _pair(padding, n, f"{what}: padding"), what,
    )  # fmt: skip
    count = 1
    for k in kernel:
        count *= k
    # padded zeros count in the mean, as PyTorch's default (count_include_pad=True)
    return alg.einsum(factors, idx, lead + outer, 1.0 / count)


def avg_pool1d(x: Operand, size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> Node:
    """Mean over windows of the last axis (stride defaults to the window size): ``(…, n) → (…, o)``."""
    return _avg_pool(x, 1, size, stride, padding)


def avg_pool2d(x: Operand, size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> Node:
    """Mean over windows of the last two axes (stride defaults to the window size): ``(…, h, w) → (…, oh, ow)``.

    Examples:
        >>> import eincalc as ec
        >>> avg_pool2d(ec.tensor("X", "b 6 8 8"), 2).dims
        ('b', '6', '4', '4')
    """
    return _avg_pool(x, 2, size, stride, padding)


_registered()
