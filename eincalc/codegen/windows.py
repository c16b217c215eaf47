"""Lowering products with window tensors (:class:`~eincalc.expr.Shift`): views and scatters, never the 0/1 tensor.

A window tensor ``S[i, k, o]`` in a product is used in one of two ways:

* *gather*: ``i`` is summed and only one array ``A`` carries it (a convolution's input,
  or the input in a kernel gradient). ``Σ_i A[…, i, …] S[i, k, o]`` is the sliding-window
  view of ``A`` (``numpy.lib.stride_tricks.sliding_window_view``, padded and strided):
  axis ``i`` becomes ``o`` and a window axis ``k`` is appended. The rest of the product
  is then an ordinary contraction of that view (a BLAS call on its im2col matrix);
* *scatter*: ``i`` is an output index no array carries (the input gradient of a
  convolution: a transposed convolution). The rest of the product is computed with
  ``o`` and ``k`` kept, then added into a zero array window by window: a loop over the
  kernel width with one strided slice each (col2im).

Products fitting neither pattern (a window tensor meeting another on one index, as in
some second derivatives) are left to the planner, which then multiplies by the dense
0/1 tensor: correct, but the kernel width times slower. :func:`lower` says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from eincalc._types import Dim, Index, IndexTuple
from eincalc.codegen.planning import contraction_cost
from eincalc.expr import Const, Einsum, Shift


@dataclass(frozen=True)
class Gather:
    """Operand ``operand`` (position in the product) windowed along its index ``i`` by ``shift``."""

    operand: int
    shift: Shift
    i: Index
    k: Index
    o: Index


@dataclass(frozen=True)
class Scatter:
    """The output index ``i`` filled from the kept indices ``o`` (window start) and ``k`` (offset)."""

    shift: Shift
    i: Index
    k: Index
    o: Index


@dataclass(frozen=True)
class Lowering:
    """How a product with window tensors is computed.

    ``factors`` are the remaining operands (positions in the product) with their indices
    after the gathers (a gathered operand's ``i`` renamed ``o`` and ``k`` appended);
    ``inner_out`` the indices of the contraction of those factors (the product's output
    with each scattered ``i`` replaced by its ``o``, kept ``k``'s at the end), before the
    ``scatters`` run in order.
    """

    gathers: tuple[Gather, ...]
    factors: tuple[tuple[int, IndexTuple], ...]
    inner_out: IndexTuple
    scatters: tuple[Scatter, ...]


def lower(node: Einsum) -> Lowering | None:
    """The lowering of ``node``, or None when a window tensor fits neither pattern (or there is none)."""
    shifts = [(k, op) for k, op in enumerate(node.operands) if isinstance(op, Shift)]
    if not shifts:
        return None
    others = [k for k, op in enumerate(node.operands) if not isinstance(op, Shift)]
    if any(not isinstance(node.operands[k], Const) and not _plain(node.in_idx[k]) for k in others):
        return None  # diagonals of arrays: not worth a special case
    idx = {k: node.in_idx[k] for k in others}
    gathers: list[Gather] = []
    scatters: list[Scatter] = []
    shift_indices = [i for k, _ in shifts for i in node.in_idx[k]]
    for k, op in shifts:
        i, w, o = node.in_idx[k]
        if len({i, w, o}) < 3 or any(shift_indices.count(j) > 1 for j in (i, w, o)):
            return None  # window tensors sharing an index
        holders = [j for j in others if i in node.in_idx[j]]
        if i not in node.out_idx and len(holders) == 1 and not isinstance(node.operands[holders[0]], Const):
            (a,) = holders
            if o in idx[a] or w in idx[a]:
                return None
            idx[a] = tuple(o if j == i else j for j in idx[a]) + (w,)
            gathers.append(Gather(a, op, i, w, o))
        elif i in node.out_idx and not holders:
            scatters.append(Scatter(op, i, w, o))
        else:
            return None
    carried = {j for k in others if not isinstance(node.operands[k], Const) for j in idx[k]}
    if not carried:
        return None
    scattered = {s.i: s for s in scatters}
    inner = [scattered[j].o if j in scattered else j for j in node.out_idx]
    inner = [j for j in inner if j in carried or j not in {s.o for s in scatters}]
    inner += [s.k for s in scatters if s.k in carried]
    return Lowering(tuple(gathers), tuple((k, idx[k]) for k in others), tuple(inner), tuple(scatters))


BATCH_LAST_MAX_ROW = 15
"""The longest image row (the innermost window-start axis) for which col2im puts the batch innermost.

Measured on the input gradient alone (6←16 and 16←32 channels, batch 16–256, kernels 3×3
and 5×5, strides 1 and 2, one thread): rows of 5 to 15 numbers took 20–57 % less time
batch innermost, rows of 2–4 from 25 % less to the same, rows of 16 and more from 7 %
less to 85 % more (28: +10 to +85 %).
"""


def batch_last(node: Einsum, low: Lowering) -> tuple[int, int, IndexTuple] | None:
    """Where col2im pays with the batch innermost: (signal position, number of batch axes, product order) or None.

    A convolution's input gradient ``Σ_c K[c, d, u, v] G[b, c, y, x]`` added into ``dX[b,
    d, y + u, x + v]`` multiplies one small matrix per image and then adds runs of one
    image row; for short rows (LeNet's 8×8 maps) one product over all images, ``(c,
    y·x·b)``, and adds over rows of ``x·b`` numbers are faster. It applies to two array
    factors: the signal carrying every window start and leading with the batch axes (the
    output's axes before the first one the kernel or a window carries), and the kernel
    carrying every window offset.
    """
    if low.gathers or len(low.factors) != 2 or any(isinstance(node.operands[k], Const) for k, _ in low.factors):
        return None
    if not joint_scatters(low) or tiles_back(low):
        return None
    starts = {s.o for s in low.scatters}
    offsets = {s.k for s in low.scatters}
    signal = [p for p, (_, ix) in enumerate(low.factors) if starts <= set(ix) and not offsets & set(ix)]
    if len(signal) != 1:
        return None
    (pos,) = signal
    ix, kernel = low.factors[pos][1], low.factors[1 - pos][1]
    if not offsets <= set(kernel) or starts & set(kernel):
        return None
    n_lead = next(n for n, i in enumerate(low.inner_out) if i in starts or i in offsets or i in kernel)
    if not n_lead or ix[:n_lead] != low.inner_out[:n_lead]:
        return None
    innermost = max(low.scatters, key=lambda s: low.inner_out.index(s.o))
    if innermost.shift.out > BATCH_LAST_MAX_ROW:
        return None
    # the order one tensordot gives, whichever factor comes first: (d, u, v, y, x, b)
    moved = ix[n_lead:] + ix[:n_lead]
    order = tuple(i for i in kernel + moved if i in low.inner_out)
    if len(order) != len(low.inner_out) or set(order) != set(low.inner_out):
        return None  # an axis both factors keep (a grouped convolution)
    return pos, n_lead, order


def joint_scatters(low: Lowering) -> bool:
    """True when every scatter keeps its window start and offset in the contraction: one col2im adds them all."""
    return bool(low.scatters) and all({s.o, s.k} <= set(low.inner_out) for s in low.scatters)


def tiles_back(low: Lowering) -> bool:
    """True when every scatter's windows tile their axis exactly (pooling's gradient): a reshape puts them back."""
    return bool(low.scatters) and all(exact_tiling([s.shift]) and s.o in low.inner_out for s in low.scatters)


CHUNK_ENTRIES = 1 << 17
"""Entries of a product's largest array (im2col matrix, col2im values) one chunk of images holds.

A convolution's im2col matrix over a whole batch (54 × 784 numbers per image, 100
images: 34 MB) is written to memory and read back; one chunk of about 1 MB stays in the
core's cache between the copy and the matrix product (and between the product and the
col2im adds). Measured on all gradients of the 28×28 CNN (batch 100, interleaved A/B):
53 ms without chunks, 36–38 ms with chunks of 2¹⁵ to 2¹⁸ entries (a flat optimum; 2¹⁷
is 3 images of its second layer); max pooling 56 → 44 ms; LeNet-5 9.1 → 8.0–8.2 ms.
"""


@dataclass(frozen=True)
class Chunk:
    """Compute a product ``size`` entries of its batch index ``index`` at a time (a loop over chunks)."""

    index: Index
    size: int


def chunking(node: Einsum, low: Lowering, sizes: Mapping[Dim, int]) -> Chunk | None:
    """How to split ``node`` into chunks of images, or None (one pass).

    The batch index is the leading axis of the product's largest array (the windowed
    operand of a gather, the values a scatter adds); it must lead every array factor
    carrying it (a chunk is then one slice of each) and the output when kept, and be no
    window's index. Chunks pay when that array exceeds :data:`CHUNK_ENTRIES`. Pooling's
    gradient (a reshape) and col2im with the batch innermost (:func:`batch_last`) run
    whole.
    """
    if tiles_back(low) or batch_last(node, low) is not None:
        return None
    dims = index_dims(node)
    size = _entries(dims, sizes)
    arrays = [ix for k, ix in low.factors if not isinstance(node.operands[k], Const)]
    if len(arrays) == 1 and not low.scatters and set(arrays[0]) <= set(low.inner_out):
        return None  # the windows copied and nothing more (a padded max pool's): no product to keep in cache
    # the arrays a pass over the whole batch writes and reads back: im2col copies of
    # overlapping windows (tiles are views) and the values col2im adds
    copied = {g.operand for g in low.gathers if not exact_tiling([g.shift])}
    candidates = [(size(ix), ix[0]) for k, ix in low.factors if k in copied]
    if joint_scatters(low) and low.inner_out:
        candidates.append((size(low.inner_out), low.inner_out[0]))
    if not candidates:
        return None
    largest, n = max(candidates, key=lambda c: c[0])
    windowed = {j for g in low.gathers for j in (g.i, g.k, g.o)} | {j for s in low.scatters for j in (s.i, s.k, s.o)}
    if n in windowed or any(n in ix and ix[0] != n for ix in arrays):
        return None
    if n in low.inner_out and low.inner_out[0] != n:
        return None
    if sum(1 for d in dims.values() if d == dims[n]) > 1:
        return None  # another index of the same dim: its size code must not change with the chunk
    count = sizes[dims[n]]
    per_image = largest // max(count, 1)
    step = max(1, CHUNK_ENTRIES // max(per_image, 1))
    if largest <= CHUNK_ENTRIES or count <= step:
        return None
    return Chunk(n, step)


def exact_tiling(shifts: list[Shift]) -> bool:
    """True when the windows tile their axes exactly (pooling: stride = size, no padding): a reshape, no copy."""
    return all(s.stride == s.kernel and s.padding == 0 and s.dilation == 1 and s.size % s.kernel == 0 for s in shifts)


def _plain(idx: IndexTuple) -> bool:
    return len(set(idx)) == len(idx)


CORRELATION_RATIO = 2.0
"""An input gradient is computed as a correlation when its im2col matrix is at most this many times the col2im values.

``Σ_o K[o, c, u, v] G[b, o, y, x]`` added into ``dX[b, c, y + u − p, x + v − p]`` (col2im:
``C·k²`` numbers per pixel added into strided windows) equals the correlation of ``G``
padded by ``k − 1 − p`` with the flipped kernel (an im2col copy of ``O·k²`` numbers per
pixel and one matrix product). NumPy adds into strided windows at about 1.2 ns a number
and copies windows at about 0.5: measured (batch 64–100, one thread, chunked) 1.8× faster
as a correlation at 16 → 16 channels (32×32), level at 16 → 32, 5 % slower at 6 → 16 and
2× slower at 3 → 16.
"""


def as_correlation(node: Einsum, low: Lowering, sizes: Mapping[Dim, int]) -> tuple[Lowering, int] | None:
    """An input gradient (two factors, every window scattered) as windows of the signal, or None.

    With stride 1, ``dX[i] = Σ_k K[k] G[i − k·d + p]`` is ``Σ_k' K[K−1−k'] G[i + k'·d −
    ((K−1)·d − p)]``: the signal windowed by a shift of padding ``(K−1)·d − p`` and the
    kernel read backwards along its offsets. Returns the gather lowering (the signal's
    window-start index named as the output's, its offset as the kernel's) and the
    position of the kernel, whose offset axes the caller reverses.
    """
    if low.gathers or len(low.factors) != 2 or any(isinstance(node.operands[k], Const) for k, _ in low.factors):
        return None
    if not joint_scatters(low) or tiles_back(low):
        return None  # not every window's start and offset kept for col2im, or pooling's gradient
    if any(s.shift.stride != 1 or (s.shift.kernel - 1) * s.shift.dilation < s.shift.padding for s in low.scatters):
        return None
    starts = {s.o for s in low.scatters}
    offsets = {s.k for s in low.scatters}
    (a, ia), (b, ib) = low.factors
    if starts <= set(ia) and offsets <= set(ib) and not (starts & set(ib) or offsets & set(ia)):
        (signal, ix), kernel = (a, ia), b
    elif starts <= set(ib) and offsets <= set(ia) and not (starts & set(ia) or offsets & set(ib)):
        (signal, ix), kernel = (b, ib), a
    else:
        return None
    size = _entries(index_dims(node), sizes)
    window = math.prod(s.shift.kernel for s in low.scatters)
    if size(ix) * window > CORRELATION_RATIO * size(low.inner_out):
        return None
    gathers, by_o = [], {s.o: s for s in low.scatters}
    for s in low.scatters:
        sh = s.shift
        flipped = Shift.make(sh.out, sh.kernel, 1, sh.dilation, (sh.kernel - 1) * sh.dilation - sh.padding)
        gathers.append(Gather(signal, flipped, s.o, s.k, s.i))
    windowed = tuple(by_o[j].i if j in by_o else j for j in ix) + tuple(s.k for s in low.scatters)
    factors = tuple((k, windowed if k == signal else kix) for k, kix in low.factors)
    return Lowering(tuple(gathers), factors, node.out_idx, ()), kernel


def _entries(dims: Mapping[Index, Dim], sizes: Mapping[Dim, int]) -> Callable[[IndexTuple], int]:
    """The number of entries over some indices: ``size(("b", "c")) == sizes[b] · sizes[c]``."""
    return lambda idx: math.prod(sizes[dims[i]] for i in idx)


def index_dims(node: Einsum) -> dict[Index, Dim]:
    """The dim of every index of ``node``."""
    return {i: d for op, idx in zip(node.operands, node.in_idx) for i, d in zip(idx, op.dims)}


def lowered_cost(node: Einsum, low: Lowering, sizes: Mapping[Dim, int]) -> tuple[int, int]:
    """Flops and largest intermediate of the lowered code (windows copied once by the contraction)."""
    dims = index_dims(node)
    size = _entries(dims, sizes)
    correlation = as_correlation(node, low, sizes)
    if correlation is not None:
        low = correlation[0]  # printed as the signal's windows (an input gradient)
    arrays = [(k, ix) for k, ix in low.factors if not isinstance(node.operands[k], Const)]
    windows = [size(ix) for k, ix in arrays if any(g.operand == k for g in low.gathers)]
    if len(arrays) > 1:
        # an output axis only a constant factor carries (ones) is a broadcast of the rest
        present = {i for _, ix in arrays for i in ix}
        out = tuple(i for i in low.inner_out if i in present)
        flops, largest = contraction_cost([ix for _, ix in arrays], out, dims, sizes)
        spread = size(tuple(i for i in low.inner_out if i not in present))
        flops, largest = flops * spread, largest * spread
    else:
        flops = largest = size(arrays[0][1])
    scattered = size(low.inner_out) * max(1, len(low.scatters)) if low.scatters else 0
    flops += sum(windows) + scattered
    chunk = chunking(node, low, sizes)
    if chunk is not None:  # the windows, the product and the values col2im adds exist one chunk at a time
        count = sizes[dims[chunk.index]]
        held = [largest, *windows] + ([size(low.inner_out)] if low.scatters else [])
        return flops, max(-(-n * chunk.size // count) for n in held)
    return flops, max([largest, size(low.inner_out), *windows])
