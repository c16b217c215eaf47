"""NumPy spelling of integer gathers, slices and scatters (selection matrices never formed).

A mix-in of :class:`~eincalc.codegen.numpy_printer.NumPyPrinter`; which products apply a
:class:`~eincalc.expr.Window` as a subscript, a scatter or an added gather is decided in
:mod:`eincalc.codegen.gathers`. The hooks :meth:`GatherPrinting.index_list`,
:meth:`~GatherPrinting.paired_gather`, :meth:`~GatherPrinting.scatter_rows` and
:meth:`~GatherPrinting.add_at_rows` are NumPy's spelling; each library backend overrides
them.
"""

from __future__ import annotations

from collections.abc import Callable

from eincalc._types import IndexTuple
from eincalc.codegen.gathers import GatherTerm, added_gather, scatter_of, windows_to_lower, without_window
from eincalc.codegen.planning import plan_einsum
from eincalc.codegen.printer import Context, Expr
from eincalc.expr import Add, Einsum, Node, Window


def _summed_alone(node: Einsum, w: int, o: str) -> bool:
    """True when the window's output index has size 1 and nothing else uses it: ``x[2]`` drops the axis."""
    window = node.operands[w]
    if window.dims[0] != "1" or o in node.out_idx:
        return False
    return sum(idx.count(o) for idx in node.in_idx) == 1


def _subscript(window: Window, ctx: Context, drop: bool, positions: Callable[[tuple[int, ...]], str]) -> str:
    """The subscript along one axis that applies a selection: ``1:3``, ``-1``, ``[0, 2, 1]``, ``2``.

    ``positions`` spells a gather's positions (:meth:`NumPyPrinter.index_list`).
    """
    if window.rows is not None:
        return str(window.rows[0]) if drop else positions(window.rows)
    if "-" in window.dims[0]:  # n-k entries from start: the slice stops k - start before the end
        stop = window.start - int(window.dims[0].split("-")[1])
        return f"{window.start or ''}:{stop}" if stop else f"{window.start}:"
    size = int(window.dims[0])
    start = -window.start if window.from_end else window.start
    if drop:
        return str(start)
    end = start + size
    return f"{start}:" if window.from_end and end == 0 else f"{start}:{end}"


class GatherPrinting:
    """Printer methods for :class:`~eincalc.expr.Window` and the products that apply it."""

    def np(self, member: str) -> str:  # provided by NumPyPrinter
        raise NotImplementedError

    def _print_Window(self, node: Window, ctx: Context) -> Expr | None:
        uses = ctx.uses(node)
        if self._added_gather(node, ctx):
            ctx.embeds[id(node)] = added_gather(node)
            return None  # each sum writes it at its rows
        if uses and not ctx.is_root(node) and all(self._applies_window(u, node, ctx) for u in uses):
            return None  # every product applies it as a subscript or a scatter
        size, n = (ctx.size(d) for d in node.dims)
        if node.rows is not None:
            return Expr(f"{self.creation('eye', n).text}[{self.index_list(node.rows)}]", owned=True)
        first = f"{n} - {node.start}" if node.from_end else str(node.start)
        return self.creation("eye", size, n, f"k={first}")

    def _applies_window(self, use: Node, window: Window, ctx: Context) -> bool:
        """True when the code of ``use`` applies every occurrence of ``window`` without its matrix.

        A product may hold one gather matrix twice (a gather's Hessian, ``Σ_o W[o, a] W[o, b] d[o]``):
        the scatter applies one of them, the other stays a factor and needs its matrix.
        """
        if isinstance(use, Einsum):
            if self._added_gather(use, ctx):
                return True
            if id(use) in ctx.scaled_of:
                return False
            applied = {w for w, _ in windows_to_lower(use)} | {scatter_of(use)}
            return all(k in applied for k, op in enumerate(use.operands) if op is window)
        return False

    def _added_gather(self, node: Node, ctx: Context) -> bool:
        """``c · W`` only ever added into sums: the sums write ``c`` at W's rows."""
        uses = ctx.uses(node)
        return (
            added_gather(node) is not None
            and bool(uses)
            and not ctx.is_root(node)
            and id(node) not in ctx.scaled_of
            and all(isinstance(u, Add) for u in uses)
        )

    def _print_scatter(
        self,
        node: Einsum,
        w: int,
        coef: float,
        kinds: list[str],
        in_idx: tuple[IndexTuple, ...],
        operands: list[Expr | None],
        index_dim: dict,
        ctx: Context,
    ) -> Expr:
        """``Σ_o W[o, i] y[o, …]``: the product without W, written into zeros at W's rows."""
        window = node.operands[w]
        assert isinstance(window, Window) and window.rows is not None
        k = in_idx.index(node.in_idx[w])  # its place once gathers are applied
        rest = [j for j in range(len(kinds)) if j != k]
        rest_idx, out_idx = without_window(in_idx, node.out_idx, k)
        plan = plan_einsum([kinds[j] for j in rest], rest_idx, out_idx, coef, index_dim, ctx.sizes)
        others = [operands[j] for j in rest]
        core = self.render_plan(plan, [others[j] for j in plan.inputs], ctx)  # type: ignore[misc]
        axis = node.out_idx.index(node.in_idx[w][1])
        return self.scatter_rows(ctx.shape(node.dims), axis, window.rows, core, ctx)

    def _lower_windows(
        self, node: Einsum, kinds: list[str], operands: list[Expr | None], ctx: Context
    ) -> tuple[list[str], tuple[IndexTuple, ...], list[Expr | None]]:
        """Selection factors applied to their operand as subscripts: ``X[:, 1:3]``, ``x[-1]``, ``X[[0, 2]]``.

        A :class:`Window` whose input index meets exactly one array operand is not a matrix
        in the code: that operand is sliced (a view) or indexed, and the product goes on
        without it.
        """
        lowered = windows_to_lower(node)
        if not lowered:
            return kinds, node.in_idx, operands
        in_idx = list(node.in_idx)
        exprs = list(operands)
        for w, x in lowered:
            window = node.operands[w]
            assert isinstance(window, Window)
            o, i = node.in_idx[w]
            idx = list(in_idx[x])
            axis = idx.index(i)
            target = exprs[x]
            assert target is not None
            if o in idx:  # paired with its neighbour axis: x[arange(n), rows] keeps one axis
                assert window.rows is not None
                exprs[x] = self.paired_gather(target, axis, idx.index(o), ctx.size(window.dims[0]), window.rows)
                in_idx[x] = tuple(j for j in idx if j != i)
                continue
            drop = _summed_alone(node, w, o)
            key = _subscript(window, ctx, drop, self.index_list)
            subs = ", ".join([":"] * axis + [key])
            exprs[x] = Expr(f"{target.atom}[{subs}]", readonly=target.readonly)
            in_idx[x] = tuple(j for j in idx if j != i) if drop else tuple(o if j == i else j for j in idx)
        keep = [k for k in range(len(kinds)) if k not in {w for w, _ in lowered}]
        return [kinds[k] for k in keep], tuple(in_idx[k] for k in keep), [exprs[k] for k in keep]

    def index_list(self, rows: tuple[int, ...]) -> str:
        """Code for a gather's constant positions as a subscript: ``[0, 2, 1]``."""
        return repr(list(rows))

    def paired_gather(self, target: Expr, axis: int, paired: int, size: str, rows: tuple[int, ...]) -> Expr:
        """``target[:, arange(size), rows]``: the entries at ``rows[o]`` on ``axis`` and ``o`` on ``paired``.

        ``paired`` is a neighbour of ``axis``; the two index arrays pair up entry by entry
        into one result axis, placed at the first of the two.
        """
        keys = [f"{self.np('arange')}({size})", self.index_list(rows)]
        if paired > axis:
            keys.reverse()
        subs = ", ".join([":"] * min(axis, paired) + keys)
        return Expr(f"{target.atom}[{subs}]", owned=True)

    def scatter_rows(self, shape: str, axis: int, rows: tuple[int, ...], core: Expr, ctx: Context) -> Expr:
        """Zeros of ``shape`` holding ``core``'s entry ``o`` at ``rows[o]`` along ``axis``; repeated rows add up.

        ``core`` has the result's axes, with ``len(rows)`` entries along ``axis``. NumPy
        writes into the zeros after they are assigned: ``out[:, rows] = core`` when the
        rows are distinct, ``numpy.add.at(out, (slice(None), rows), core)`` when some repeat.
        """
        if len(set(rows)) == len(rows):  # distinct rows: a plain indexed assignment
            target = ", ".join([":"] * axis + [self.index_list(rows)])
            ctx.after(lambda name: f"{name}[{target}] = {core.text}")
        else:  # repeated rows add up
            listed = self.index_list(rows)
            key = listed if axis == 0 else f"({'slice(None), ' * axis}{listed})"
            ctx.after(lambda name: f"{self.np('add.at')}({name}, {key}, {core.text})")
        return self.creation("zeros", shape)

    def add_at_rows(self, name: str, term: GatherTerm, ctx: Context) -> str:
        """The statement adding ``term.coef`` to the array ``name`` at the entries of the gather matrix.

        ``name[arange(m), rows] -= 1.0``: each row of the matrix has one entry, so the
        positions are distinct and ``+=`` is exact.
        """
        rows = f"{self.np('arange')}({ctx.size(term.window.dims[0])}), {self.index_list(term.window.rows or ())}"
        return f"{name}[{rows}] {'-=' if term.coef < 0 else '+='} {abs(term.coef)!r}"
