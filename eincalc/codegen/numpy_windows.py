"""NumPy spelling of window tensors: sliding-window views, strided scatters, and the dense fallback.

A mix-in of :class:`~eincalc.codegen.numpy_printer.NumPyPrinter`; which pattern a
product follows is decided in :mod:`eincalc.codegen.windows`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace

from eincalc._types import Index, IndexTuple
from eincalc.codegen.planning import MIN_GROUP_COLUMNS, Plan, plan_einsum
from eincalc.codegen.printer import ATOM, SUM, Context, Expr, align, binary, call, literal, transpose
from eincalc.codegen.windows import (
    Chunk,
    Lowering,
    Scatter,
    as_correlation,
    batch_last,
    chunking,
    exact_tiling,
    index_dims,
    joint_scatters,
    lower,
    tiles_back,
)
from eincalc.expr import Const, Einsum, Shift


class WindowPrinting:
    """Printer methods for :class:`~eincalc.expr.Shift` and the products that use it."""

    def np(self, member: str) -> str:  # provided by NumPyPrinter
        raise NotImplementedError

    def render_plan(self, plan, operands, ctx):  # type: ignore[no-untyped-def]  # provided by NumPyPrinter
        raise NotImplementedError

    permute = "transpose"  # the array method permuting axes; backends override it
    chunks = False  # products over large batches run in chunks of images (NumPy: cache-sized; see chunking)

    def creation(self, member: str, *args: str) -> Expr:  # provided by NumPyPrinter
        raise NotImplementedError

    def as_float(self, code: str) -> str:  # provided by NumPyPrinter
        raise NotImplementedError

    def add_into(self, target: str, subscript: str, value: str) -> str:
        """The statement adding ``value`` into ``target[subscript]`` (in place)."""
        return f"{target}[{subscript}] += {value}"

    def __init__(self) -> None:
        super().__init__()
        self._lowerings: dict[int, tuple[Einsum, Lowering | None]] = {}  # the node is kept: its id stays its own
        # key -> view (printed once), its im2col axis order, whether that copy is made (else: chunk by chunk)
        self._views: dict[tuple, tuple[Expr, tuple[int, ...] | None, bool]] = {}

    def lowering(self, node: Einsum) -> Lowering | None:
        """:func:`~eincalc.codegen.windows.lower`, once per node."""
        hit = self._lowerings.get(id(node))
        if hit is None:
            hit = self._lowerings[id(node)] = (node, lower(node))
        return hit[1]

    def _print_Shift(self, node: Shift, ctx: Context) -> Expr | None:
        lowered_everywhere = all(
            isinstance(u, Einsum) and (low := self.lowering(u)) is not None and _lowers(u, low, node)
            for u in ctx.uses(node)
        )
        if lowered_everywhere and not ctx.is_root(node):
            return None  # every product using it becomes a window view or a scatter
        # the fallback: the 0/1 tensor itself, S[i, k, o] = [i == o·stride + k·dilation − padding]
        i = f"{self.np('arange')}({node.size})[:, None, None]"
        k = f"{self.np('arange')}({node.kernel})[:, None]"
        o = f"{self.np('arange')}({node.out})"
        k_term = k if node.dilation == 1 else f"{node.dilation} * {k}"
        o_term = o if node.stride == 1 else f"{node.stride} * {o}"
        pad = f" - {node.padding}" if node.padding else ""
        return Expr(self.as_float(f"({i} == {o_term} + {k_term}{pad})"), ATOM, owned=True)

    def print_windowed(self, node: Einsum, low: Lowering, coef: float, ctx: Context) -> Expr:
        """Code for ``node``: windows of the gathered operands, the contraction, then the scatters."""
        values = {}
        for k, op in enumerate(node.operands):
            if not isinstance(op, (Shift, Const)):
                values[k] = ctx.arg(op)
        pooled = self._tile_sum(node, low, values, coef, ctx)
        if pooled is not None:
            return pooled
        dims = index_dims(node)
        correlation = as_correlation(node, low, ctx.sizes)
        if correlation is not None:
            # the input gradient as a convolution of the padded signal with the flipped kernel,
            # copied once with its kept axes first (one matrix product per image, as forward)
            low, kernel = correlation
            ix = node.in_idx[kernel]
            flips = ", ".join("::-1" if any(g.k == j for g in low.gathers) else ":" for j in ix)
            order = tuple(sorted(range(len(ix)), key=lambda p: (ix[p] not in node.out_idx, p)))
            flipped = self.contiguous(Expr(f"{values[kernel].atom}[{flips}]", ATOM), order)
            if flipped is not None:
                values[kernel] = ctx.temp(flipped)
                factors = tuple((k, tuple(fix[p] for p in order) if k == kernel else fix) for k, fix in low.factors)
                low = replace(low, factors=factors)
            else:
                values[kernel] = Expr(f"{values[kernel].atom}[{flips}]", ATOM, readonly=True)
        tiled, joint = tiles_back(low), joint_scatters(low)
        moved = batch_last(node, low)
        chunk = chunking(node, low, ctx.sizes) if self.chunks else None
        layout: dict[int, tuple[int, ...]] = {}
        per_chunk: dict[int, tuple[int, ...]] = {}  # operands copied (im2col) chunk by chunk: their axis order
        for k in dict.fromkeys(g.operand for g in low.gathers):
            mine = [g for g in low.gathers if g.operand == k]
            key = _view_key(node, k, mine)
            ix = dict(low.factors)[k]
            if key not in self._views:
                view = self._window(values[k], list(key[1]), len(node.in_idx[k]), [g.shift for g in mine], ctx)
                order = None
                if not exact_tiling([g.shift for g in mine]):
                    # im2col: a contiguous copy every contraction (the forward pass, the kernel
                    # gradient) reads without copying the view again; BLAS would copy the view
                    # anyway. Whole, or chunk by chunk when the products run in chunks
                    order = _im2col_order(ix, low.inner_out, lambda jx: math.prod(ctx.sizes[dims[i]] for i in jx))
                    if chunk is not None:
                        order = _leading(order, ix.index(chunk.index))
                self._views[key] = (view, order, False)
            view, order, copied = self._views[key]
            if order is not None and not copied and (chunk is None or ix[order[0]] != chunk.index):
                whole = self.contiguous(view, order)
                if whole is None:
                    order = None
                else:
                    view, copied = ctx.temp(whole), True
                self._views[key] = (view, order, copied)
            values[k] = view
            if order is not None:
                layout[k] = order
                if not copied:
                    per_chunk[k] = order
        kinds = ["ones" if isinstance(node.operands[k], Const) else "array" for k, _ in low.factors]
        factor_idx = [tuple(ix[p] for p in layout[k]) if k in layout else ix for k, ix in low.factors]
        inner_out = low.inner_out
        if moved is not None:
            # col2im with the batch innermost (short image rows): one matrix product for
            # all images, and strided adds over runs of row × batch numbers, not of one row
            pos, n_lead, order = moved
            k, ix = low.factors[pos]
            copied = self.contiguous(values[k], (*range(n_lead, len(ix)), *range(n_lead)))
            if copied is not None:
                values[k] = ctx.temp(copied)
                factor_idx[pos] = ix[n_lead:] + ix[:n_lead]
                inner_out = order
        plan = plan_einsum(kinds, factor_idx, inner_out, coef, dims, ctx.sizes, groups=True)
        if tiled or joint:
            plan = _natural_order(plan)  # the scatter reads the contraction in its own order
        if chunk is not None:
            return self._chunked(node, low, plan, chunk, values, per_chunk, factor_idx, joint, ctx)
        value = self.render_plan(plan, [values[low.factors[k][0]] for k in plan.inputs], ctx)
        if tiled:
            return self._untile(value, plan.out, low.scatters, node.out_idx, dims, ctx)
        if joint:
            target, target_axes = self._scatter_target(plan.out, low.scatters, dims, ctx)
            self._scatter_into(target, target_axes, value, plan.out, low.scatters, ctx)
            return self._cropped(target, target_axes, low.scatters, node.out_idx)
        axes = low.inner_out
        for s in low.scatters:
            value, axes = self._scatter(value, axes, s, node.out_idx, low, dims, ctx)
        return value

    def _chunked(
        self,
        node: Einsum,
        low: Lowering,
        plan: Plan,
        chunk: Chunk,
        values: dict[int, Expr],
        per_chunk: dict[int, tuple[int, ...]],
        factor_idx: list[IndexTuple],
        joint: bool,
        ctx: Context,
    ) -> Expr:
        """``node`` computed :attr:`Chunk.size` images at a time: a loop whose body slices every factor carrying them.

        The result is allocated whole before the loop: the scatter's zero array (each
        chunk adds into its rows), the output (each chunk assigns its rows) or, when the
        images are summed (a kernel gradient), a zero array each chunk adds into. An
        operand copied to im2col order is copied one chunk at a time, so the copy is still
        in the cache when the matrix product reads it.
        """
        dims = index_dims(node)
        n, n_dim = chunk.index, dims[chunk.index]
        if joint:
            target, target_axes = self._scatter_target(plan.out, low.scatters, dims, ctx)
        else:
            member = "empty" if n in node.out_idx else "zeros"
            target, target_axes = ctx.temp(self.creation(member, ctx.shape(node.dims))), node.out_idx
        # the loop's own names (_r0, _r1, …): not temporaries the function deletes later,
        # which would fail after a loop over no images
        local = replace(ctx, new_temp=_loop_names())
        start = local.new_temp()
        rows = f"{start}:{start} + {chunk.size}"
        header = f"for {start} in range(0, {ctx.size(n_dim)}, {chunk.size}):"
        first_line = len(ctx.lines)
        operands: dict[int, Expr] = {}
        counted: str | None = None  # a chunk's array whose first axis is the images
        for p, (k, ix) in enumerate(low.factors):
            if k not in values:
                continue
            if k in per_chunk:
                copied = self.contiguous(Expr(f"{values[k].atom}[{_rows_at(ix.index(n), rows)}]", ATOM), per_chunk[k])
                operands[k] = local.temp(copied)  # type: ignore[arg-type]
                counted = counted or operands[k].text
            elif n in factor_idx[p]:
                sliced = Expr(f"{values[k].atom}[{_rows_at(factor_idx[p].index(n), rows)}]", ATOM, readonly=True)
                if counted is None:
                    sliced = local.temp(sliced)
                    counted = sliced.text
                operands[k] = sliced
            else:
                operands[k] = values[k]
        assert counted is not None  # the batch index leads the largest array factor (chunking)
        sub = replace(local, dim_code={**ctx.dim_code, n_dim: f"{counted}.shape[0]"})
        value = self.render_plan(plan, [operands[low.factors[k][0]] for k in plan.inputs], sub)
        if joint:
            self._scatter_into(target, target_axes, value, plan.out, low.scatters, sub, (n, rows))
        elif n in node.out_idx:
            aligned = align(value, plan.out, node.out_idx, self.permute)
            ctx.lines.append(f"{target.text}[{_rows_at(node.out_idx.index(n), rows)}] = {aligned.text}")
        else:
            aligned = align(value, plan.out, node.out_idx, self.permute)
            ctx.lines.append(f"{target.text} += {aligned.text}")
        ctx.lines[first_line:] = [header] + ["    " + line for line in ctx.lines[first_line:]]
        ctx.in_place.add(id(node))  # the target is a fresh array only this node holds
        result = replace(target, owned=True, inline=True)
        return self._cropped(result, target_axes, low.scatters, node.out_idx) if joint else result

    def _untile(
        self, value: Expr, axes: IndexTuple, scatters: tuple[Scatter, ...], out: IndexTuple, dims: dict, ctx: Context
    ) -> Expr:
        """Windows that tile their axes exactly (pooling's gradient): each (``o``, ``k``) pair reshaped into ``i``.

        ``v.transpose(0, 1, 2, 4, 3, 5).reshape(b, c, 28, 28)``, one copy; a ``k`` the value
        does not carry (average pooling: equal weights) is a broadcast first.
        """
        by_o = {s.o: s for s in scatters}
        by_k = {s.k: s for s in scatters}
        present = [j for j in axes if j not in by_k]
        order: list = []  # the value's axes with each window offset right after its window start
        for j in present:
            order.append(j)
            if j in by_o:
                order.append(by_o[j].k)
        carried = tuple(j for j in order if j in axes)
        e = transpose(value, tuple(axes.index(j) for j in carried), self.permute)
        if len(carried) < len(order):
            subs = ", ".join(":" if j in axes else "None" for j in order)
            sizes = ", ".join(str(by_k[j].shift.kernel) if j in by_k else ctx.size(dims[j]) for j in order)
            e = Expr(f"{self.np('broadcast_to')}({e.atom}[{subs}], ({sizes}))", ATOM)
        target = tuple(by_o[j].i if j in by_o else j for j in present)
        shape = [str(by_o[j].shift.size) if j in by_o else ctx.size(dims[j]) for j in present]
        merged = Expr(f"{e.atom}.reshape({', '.join(shape)}{',' if len(shape) == 1 else ''})", ATOM, owned=True)
        return transpose(merged, tuple(target.index(j) for j in out), self.permute)

    def _scatter_target(
        self, axes: IndexTuple, scatters: tuple[Scatter, ...], dims: dict, ctx: Context
    ) -> tuple[Expr, IndexTuple]:
        """The zero array col2im adds values with axes ``axes`` into, and its axes.

        ``o`` stands padded where its ``i`` will be, ``k`` is dropped: the value's axis
        order, so every slice of the value is read in memory order.
        """
        by_o = {s.o: s for s in scatters}
        kernel_axes = {s.k for s in scatters}
        target = tuple(by_o[j].i if j in by_o else j for j in axes if j not in kernel_axes)
        padded = {s.i: str(s.shift.size + 2 * s.shift.padding) for s in scatters}
        sizes = [padded[j] if j in padded else ctx.size(dims[j]) for j in target]
        zeros = ctx.temp(self.creation("zeros", "(" + ", ".join(sizes) + ("," if len(target) == 1 else "") + ")"))
        return zeros, target

    def _scatter_into(
        self,
        zeros: Expr,
        target: IndexTuple,
        value: Expr,
        axes: IndexTuple,
        scatters: tuple[Scatter, ...],
        ctx: Context,
        rows: tuple[Index, str] | None = None,
    ) -> None:
        """Add ``value`` (axes ``axes``: each scatter's ``o`` and ``k``) into ``zeros``, window by window.

        ``zeros`` has axes ``target`` (:meth:`_scatter_target`). One loop per kernel axis,
        one strided slice each (col2im); ``rows`` (an index of ``target`` and its slice)
        restricts the adds to a chunk of images.
        """
        by_i = {s.i: s for s in scatters}
        source = value if value.inline else ctx.temp(value)
        loops = {s.k: ctx.new_temp() for s in scatters}
        reads = [loops[j] if j in loops else ":" for j in axes]
        while reads[-1] == ":":
            reads.pop()
        writes = [_window_slice(by_i[j].shift, loops[by_i[j].k]) if j in by_i else ":" for j in target]
        if rows is not None:
            writes[target.index(rows[0])] = rows[1]
        for depth, s in enumerate(scatters):
            ctx.lines.append(f"{'    ' * depth}for {loops[s.k]} in range({s.shift.kernel}):")
        added = self.add_into(zeros.text, ", ".join(writes), f"{source.atom}[{', '.join(reads)}]")
        ctx.lines.append("    " * len(scatters) + added)

    def _cropped(self, zeros: Expr, target: IndexTuple, scatters: tuple[Scatter, ...], out: IndexTuple) -> Expr:
        """The scattered array (axes ``target``) without its padding, in ``out`` order (a view)."""
        by_i = {s.i: s for s in scatters}
        crop = []
        for j in target:
            sh = by_i[j].shift if j in by_i else None
            crop.append(f"{sh.padding}:{sh.padding + sh.size}" if sh is not None and sh.padding else ":")
        result = Expr(zeros.text, ATOM, owned=True, inline=True)
        if any(c != ":" for c in crop):
            result = Expr(f"{zeros.text}[{', '.join(crop)}]", ATOM, owned=True)
        return transpose(result, tuple(target.index(j) for j in out), self.permute)

    def _tile_sum(self, node: Einsum, low: Lowering, values: dict, coef: float, ctx: Context) -> Expr | None:
        """A sum over non-overlapping windows (average pooling) as a sum of strided slices.

        ``x[:, :, 0::2, 0::2] + x[:, :, 1::2, 0::2] + …``: NumPy reduces the small trailing
        axes of a tiled view several times slower than it adds these slices.
        """
        shifts = [g.shift for g in low.gathers]
        if low.scatters or len(low.factors) != 1 or not exact_tiling(shifts):
            return None
        k, ix = low.factors[0]
        mine = [g for g in low.gathers if g.operand == k]
        offsets = {g.k for g in mine}
        if len(mine) != len(low.gathers) or offsets & set(low.inner_out) or node.out_idx != low.inner_out:
            return None
        if tuple(i for i in ix if i not in offsets) != low.inner_out or math.prod(s.kernel for s in shifts) > 16:
            return None
        axes = [node.in_idx[k].index(g.i) for g in mine]
        source = values[k]
        terms = []
        for start in itertools.product(*(range(s.kernel) for s in shifts)):
            subs = [":"] * len(node.in_idx[k])
            for a, s, o in zip(axes, shifts, start):
                subs[a] = f"{o}::{s.kernel}"
            while subs and subs[-1] == ":":
                subs.pop()
            terms.append(f"{source.atom}[{', '.join(subs)}]")
        total = Expr(" + ".join(terms), SUM, "+", owned=True)
        return total if coef == 1.0 else binary(literal(coef), "*", total)

    def contiguous(self, view: Expr, order: tuple[int, ...]) -> Expr | None:
        """A contiguous copy of ``view`` with its axes in ``order`` (None: keep the view)."""
        return call(self.np("ascontiguousarray"), f"{view.atom}.transpose{order}")

    def _window(self, e: Expr, axes: list[int], ndim: int, shifts: list[Shift], ctx: Context) -> Expr:
        """``e`` with each axis of ``axes`` turned into window starts, window offsets appended in that order.

        One padded copy and one view for all axes: ``sliding_window_view(pad(X), (3, 3), axis=(2, 3))``.
        Windows that tile their axes exactly (pooling: stride = size, no padding) are a
        reshape instead, whose reductions run over memory in order.
        """
        if exact_tiling(shifts):
            return self._tiles(e, axes, ndim, shifts, ctx)
        text = self._padded(e, axes, ndim, shifts)
        spans = [s.dilation * (s.kernel - 1) + 1 for s in shifts]
        if len(axes) == 1:
            shape, where = str(spans[0]), str(axes[0])
        else:
            shape, where = f"({', '.join(map(str, spans))})", f"({', '.join(map(str, axes))})"
        view = f"{self.np('lib.stride_tricks.sliding_window_view')}({text}, {shape}, axis={where})"
        # strides on the window starts (the axes in place), dilations on the appended offsets
        starts = [":"] * ndim
        for a, s in zip(axes, shifts):
            starts[a] = f"::{s.stride}" if s.stride != 1 else ":"
        offsets = [f"::{s.dilation}" if s.dilation != 1 else ":" for s in shifts]
        index = starts + offsets
        while index and index[-1] == ":":
            index.pop()
        if index:
            view += f"[{', '.join(index)}]"
        return ctx.temp(Expr(view, ATOM, readonly=True))

    def _padded(self, e: Expr, axes: list[int], ndim: int, shifts: list[Shift]) -> str:
        """``e`` padded with zeros along ``axes`` as its windows need: ``numpy.pad(X, ((0, 0), (1, 1)))``."""
        pad = {a: s.padding for a, s in zip(axes, shifts) if s.padding}
        if not pad:
            return e.text
        pads = ", ".join(f"({pad[a]}, {pad[a]})" if a in pad else "(0, 0)" for a in range(ndim))
        return f"{self.np('pad')}({e.text}, ({pads}{',' if ndim == 1 else ''}))"

    def _tiles(self, e: Expr, axes: list[int], ndim: int, shifts: list[Shift], ctx: Context) -> Expr:
        """Non-overlapping windows as a view: ``X.reshape(b, c, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5)``."""
        by_axis = dict(zip(axes, shifts))
        shape: list[str] = []
        position: dict[int, int] = {}  # axis of e -> its (window start) axis in the reshaped array
        for a in range(ndim):
            position[a] = len(shape)
            if a in by_axis:
                shape += [str(by_axis[a].out), str(by_axis[a].kernel)]
            else:
                shape.append(f"{e.atom}.shape[{a}]")
        perm = [position[a] for a in range(ndim)] + [position[a] + 1 for a in axes]
        view = f"{e.atom}.reshape({', '.join(shape)}).{self.permute}({', '.join(map(str, perm))})"
        return ctx.temp(Expr(view, ATOM, readonly=e.readonly))

    def _scatter(
        self, value: Expr, axes: IndexTuple, s: Scatter, out: IndexTuple, low: Lowering, dims: dict, ctx: Context
    ) -> tuple[Expr, IndexTuple]:
        """Add ``value`` (axes ``axes``, with ``s.o`` and maybe ``s.k``) into a zero array along ``s.i``."""
        sh = s.shift
        pending = {x.i: x for x in low.scatters}
        target: list[Index] = []
        for j in out:
            if j == s.i:
                target.append(j)
            elif j in pending and pending[j].o not in axes and pending[j].i not in axes:
                continue  # a later scatter's window start that no factor carries
            elif j in pending and pending[j].i not in axes:
                target.append(pending[j].o)
            else:
                target.append(j)
        target += [j for j in axes if j not in target and j != s.k and j != s.o]
        size_code = [str(sh.size + 2 * sh.padding) if j == s.i else ctx.size(dims[j]) for j in target]
        zeros = ctx.temp(self.creation("zeros", "(" + ", ".join(size_code) + ("," if len(target) == 1 else "") + ")"))
        loop = ctx.new_temp()
        source = value if value.inline else ctx.temp(value)
        src = source.text
        if s.k in axes:
            src = f"{src}[{', '.join(':' if j != s.k else loop for j in axes)}]"
        src_axes = tuple(j for j in axes if j != s.k)
        # the value over o, aligned with the target's axes (o standing where i is)
        aligned = align(Expr(src, ATOM), src_axes, tuple(s.o if j == s.i else j for j in target), self.permute)
        subs = ", ".join(_window_slice(sh, loop) if j == s.i else ":" for j in target)
        ctx.lines.append(f"for {loop} in range({sh.kernel}):")
        ctx.lines.append(f"    {self.add_into(zeros.text, subs, aligned.text)}")
        if sh.padding:
            crop = ", ".join(f"{sh.padding}:{sh.padding + sh.size}" if j == s.i else ":" for j in target)
            return Expr(f"{zeros.text}[{crop}]", ATOM, owned=True), tuple(target)
        return Expr(zeros.text, ATOM, owned=True, inline=True), tuple(target)


def _window_slice(shift: Shift, offset: str) -> str:
    """The input positions the windows of ``shift`` read at kernel offset ``offset``: ``u:u + 28``, ``2 * u:… :2``."""
    start = offset if shift.dilation == 1 else f"{shift.dilation} * {offset}"
    step = f":{shift.stride}" if shift.stride != 1 else ""
    return f"{start}:{start} + {(shift.out - 1) * shift.stride + 1}{step}"


def _loop_names() -> Callable[[], str]:
    """New names for the body of a loop over chunks (``_r0``, ``_r1`` and so on).

    Not ``_c``: module-level constants are named so, and a loop assigning one would make
    it a local of the function everywhere (Python's scoping).
    """
    count = itertools.count()
    return lambda: f"_r{next(count)}"


def _rows_at(position: int, rows: str) -> str:
    """The subscript slicing ``rows`` of axis ``position``: ``:, _t5:_t5 + 4``."""
    return ", ".join([":"] * position + [rows])


def _leading(order: tuple[int, ...], position: int) -> tuple[int, ...]:
    """``order`` with axis ``position`` moved to the front (the chunked images lead the im2col copy)."""
    return (position, *(p for p in order if p != position))


def _im2col_order(ix: IndexTuple, kept: IndexTuple, size: Callable[[list[Index]], int]) -> tuple[int, ...]:
    """The axis order of the im2col copy of a window view with indices ``ix``.

    Kept axes before the first summed one, the summed ones, then the other kept ones:
    (b, c·u·v, y·x) for a convolution, which a matrix product per image reads in place
    and which gives its result channels first. With no kept axis in front (a kernel
    gradient alone) or small images (the trailing kept axes smaller than
    :data:`~eincalc.codegen.planning.MIN_GROUP_COLUMNS`), the kept axes first: one
    matrix over the summed ones.
    """
    n_lead = next((p for p, i in enumerate(ix) if i not in kept), len(ix))
    lead = list(range(n_lead))
    summed = [p for p, i in enumerate(ix) if i not in kept]
    rest = [p for p in range(n_lead, len(ix)) if ix[p] in kept]
    if not lead or size([ix[p] for p in rest]) < MIN_GROUP_COLUMNS:
        kept_first = [p for p, i in enumerate(ix) if i in kept]
        return (*kept_first, *summed)
    return (*lead, *summed, *rest)


def _natural_order(plan: Plan) -> Plan:
    """``plan`` without its final transpose: the result in the order its last operation gives."""
    if not plan.steps or plan.steps[-1].op != "transpose" or plan.embed is not None:
        return plan
    n = len(plan.value_idx) - 1
    if plan.result != n or plan.scale_at == n:
        return plan
    (before,) = plan.steps[-1].args
    steps, value_idx = plan.steps[:-1], plan.value_idx[:-1]
    return replace(plan, steps=steps, value_idx=value_idx, result=before, out=plan.value_idx[before])


def _view_key(node: Einsum, k: int, mine: list) -> tuple:
    """One view per (array, windowed axes, window tensors): products sharing it share the code."""
    axes = tuple(node.in_idx[k].index(g.i) for g in mine)
    return (id(node.operands[k]), axes, tuple(id(g.shift) for g in mine))


def _lowers(node: Einsum, low: Lowering, shift: Shift) -> bool:
    """True when ``low`` handles every occurrence of ``shift`` in ``node`` (no dense value needed)."""
    used = sum(1 for op in node.operands if op is shift)
    handled = sum(1 for g in low.gathers if g.shift is shift) + sum(1 for s in low.scatters if s.shift is shift)
    return used == handled
