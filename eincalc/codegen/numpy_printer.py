"""The NumPy backend: how each node kind and each planned step is spelled in NumPy.

This module owns the NumPy spelling of everything but the element-wise functions (whose
code is part of their registry entry, :data:`eincalc.functions.ELEMENTWISE`): the
general functions (:data:`UNARY_CODE`), and the rendering of contraction plans
(BLAS ``@``/``tensordot``/``vdot``, broadcasting ``*`` with ``[:, None]`` reshapes,
``.sum(axis=…)``, diagonal views ``numpy.einsum('ii->i', a)``, pairwise
``numpy.einsum(..., optimize=False)``), and of unit tensors, which are never
materialised inside a product: a δ ⊗ core value is written into the diagonal view of a
zero (or of a sum's) result.

Forms are chosen for stability where it matters: sigmoid as ``0.5 * (1 + tanh(x / 2))``
(no overflow), softplus as ``logaddexp(0, x)``, softmax, log-softmax and logsumexp with
the maximum subtracted, logdet through ``slogdet``. Which operations a node needs is
decided in :mod:`eincalc.codegen.planning`; which statements a program has, in
:mod:`eincalc.codegen.program`.
"""

from __future__ import annotations

import base64
import itertools
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from eincalc._types import IndexTuple
from eincalc.algebra import symbols
from eincalc.codegen.gathers import GatherTerm, added_gather, scatter_of, windows_to_lower, without_window
from eincalc.codegen.numpy_windows import WindowPrinting
from eincalc.codegen.planning import Plan, Step, plan_einsum, spec_of
from eincalc.codegen.printer import (
    ATOM,
    POWER,
    PRODUCT,
    SUM,
    UNARY,
    Context,
    Expr,
    Printer,
    align,
    binary,
    call,
    literal,
    transpose,
)
from eincalc.errors import UnsupportedNodeError
from eincalc.expr import Add, Array, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var, Window
from eincalc.functions import get_elementwise, get_unary

LITERAL_ENTRIES = 64
"""Constant arrays up to this many entries are written out as literals; larger ones packed."""

NESTING_LIMIT = 72
"""A planned step whose code grows longer than this gets its own temporary."""

UNARY_CODE: dict[str, str] = {
    "inv": "_unary_inv",
    "det": "_unary_det",
    "adjugate": "_unary_adjugate",
    "logdet": "_unary_logdet",
    "softmax": "_unary_softmax",
    "log_softmax": "_unary_log_softmax",
    "logsumexp": "_unary_logsumexp",
    "max": "_unary_max",
    "prod": "_unary_prod",
    "triu": "_unary_triu",
    "tril": "_unary_tril",
}
"""The NumPyPrinter method that prints each general function of :data:`eincalc.functions.UNARY`."""


@dataclass(frozen=True)
class Diagonal:
    """A value kept as δ ⊗ core: ``labels`` per axis (equal labels share a δ).

    The code of the node is its core, whose axes are ``core_idx`` (a subset of
    ``unique``, the distinct labels in order).
    """

    labels: IndexTuple
    unique: IndexTuple
    core_idx: IndexTuple


TRAILING_TERMS = 16
"""A reduction over at most this many trailing entries (a pooling tile) is folded over slices."""


def _small_trailing(dims: tuple, axis: object, ctx: Context) -> list[tuple[int, ...]] | None:
    """The entries of ``axis`` when it is the last axes of ``dims``, of fixed small size, over a large rest.

    NumPy reduces a few trailing entries (``x.max(axis=(4, 5))`` over 2×2 tiles) an
    order of magnitude slower than it combines the strided slices ``x[..., 0, 0]``, ….
    """
    axes = (axis,) if isinstance(axis, int) else axis
    if not isinstance(axes, tuple) or not axes:
        return None
    axes = tuple(sorted(a % len(dims) for a in axes))
    if axes != tuple(range(len(dims) - len(axes), len(dims))) or len(axes) == len(dims):
        return None
    reduced = dims[len(dims) - len(axes) :]
    if not all(str(d).isdigit() for d in reduced) or not 2 <= math.prod(int(d) for d in reduced) <= TRAILING_TERMS:
        return None
    rest = math.prod(int(d) if str(d).isdigit() else ctx.sizes.get(d, 1) for d in dims[: len(dims) - len(axes)])
    if rest < 64 * TRAILING_TERMS:
        return None  # small arrays: the reduction reads better and costs nothing
    return list(itertools.product(*(range(int(d)) for d in reduced)))


def _spread_array(node: Node) -> int | None:
    """The position of the one array in ``node`` when it is that array spread over ones, or None.

    ``einsum('c,bcij->bcij', c1, ones(...))`` is ``c1`` broadcast: nothing summed, no
    diagonal, no scale.
    """
    if not isinstance(node, Einsum) or node.coef != 1.0:
        return None
    arrays = [k for k, op in enumerate(node.operands) if not (isinstance(op, Const) and op.value == 1.0)]
    if len(arrays) != 1 or isinstance(node.operands[arrays[0]], (Delta, Shift, Window, Const)):
        return None
    (k,) = arrays
    idx = node.in_idx[k]
    if len(set(idx)) < len(idx) or not set(idx) <= set(node.out_idx) or len(idx) == len(node.out_idx):
        return None
    return k


def _full_term(term: Node, ctx: Context) -> bool:
    """True when the printed value of a sum's term has the sum's full shape."""
    return not isinstance(term, Const) and id(term) not in ctx.embeds and _spread_array(term) is None


def _product_code(sizes: list[str]) -> str:
    """Code for the product of sizes, the numbers folded: ``X.shape[0] * 54``."""
    number = math.prod(int(z) for z in sizes if z.isdigit())
    symbols = [z for z in sizes if not z.isdigit()]
    return " * ".join(symbols + ([str(number)] if number != 1 or not symbols else []))


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


def _axes_text(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


_UFUNC_CALL = re.compile(r"numpy\.(\w+)\(([^()]*)\)(?:\.astype\(float\))?")


def _ufunc_into(code: str) -> str | None:
    """``code`` with an ``out=`` slot (``numpy.tanh({0}, out={out})``) when it is one NumPy ufunc call, else None.

    A comparison cast to float (``numpy.greater({0}, 0.0).astype(float)``) writes its
    0/1 straight into the float array: ``out=`` casts.
    """
    m = _UFUNC_CALL.fullmatch(code)
    if m is None or not isinstance(getattr(np, m[1], None), np.ufunc):
        return None
    return f"numpy.{m[1]}({m[2]}, out={{out}})"


def _last_reader(node: Node, arg: Node, ctx: Context) -> bool:
    """True when ``node`` reads ``arg`` once and is its last reader.

    The other readers must be element-wise functions printed already: they made fresh
    arrays of their own (relu after relu′ of one pre-activation), so none holds a view.
    """
    uses = ctx.uses(arg)
    return sum(u is node for u in uses) == 1 and all(
        u is node or (isinstance(u, Elementwise) and id(u) in ctx.values) for u in uses
    )


SUM_TERMS = 64
"""Most terms one generated statement adds (longer sums continue with ``+=``)."""


def _signed_sum(expr: Expr | None, signed: list[tuple[str, Expr]]) -> Expr | None:
    """``expr`` followed by ``± term`` for each signed term (a leading ``-`` if ``expr`` is None)."""
    for sign, e in signed:
        if expr is None:
            expr = e if sign == "+" else Expr(f"-{e.operand(UNARY, 'neg', False)}", UNARY, "neg", owned=True)
        else:
            expr = binary(expr, sign, e, SUM)
    return expr


class NumPyPrinter(WindowPrinting, Printer):
    """Prints nodes as NumPy code; see the module docstring for the forms used."""

    def __init__(self) -> None:
        super().__init__()
        self._constant_names: dict[tuple, str] = {}

    name = "numpy"
    numpy = "numpy"
    in_place = True
    """Arrays may be written in place (``a += b``, ``out=``)."""
    permute = "transpose"
    """The array method permuting axes (``x.transpose(0, 2, 1)``)."""

    def np(self, member: str) -> str:
        """``numpy.<member>``, recording the import."""
        return self.module(f"{self.numpy}.{member}")

    # -- leaves -------------------------------------------------------------------------
    def _print_Var(self, node: Var, ctx: Context) -> Expr:
        return Expr(ctx.params.get(node.name, node.name), inline=True)

    def _print_Const(self, node: Const, ctx: Context) -> Expr | None:
        if not node.dims:
            return literal(node.value)
        if not ctx.needs_value(node):
            return None  # einsum factors and sum terms use the value itself
        return self._filled(node, ctx)

    def _filled(self, node: Const, ctx: Context) -> Expr:
        """A new array of ``node``'s dims holding its value."""
        shape = ctx.shape(node.dims)
        if node.value == 0.0:
            return self.creation("zeros", shape)
        if node.value == 1.0:
            return self.creation("ones", shape)
        return self.creation("full", shape, repr(node.value))

    def _print_Array(self, node: Array, ctx: Context) -> Expr:
        # a module-level constant, built once: never written through, and copied when returned
        name = self.constant(node.data)
        if ctx.is_root(node):
            return Expr(f"{name}.copy()", owned=True)
        return Expr(name, readonly=True, inline=True)

    def constant(self, data: np.ndarray) -> str:
        """The module-level name of a constant array (equal data: one name).

        Up to :data:`LITERAL_ENTRIES` entries it is written out (``numpy.array([[1.0, 0.0], …])``);
        a larger one is its float64 bytes, zlib-compressed and base64-encoded in the source
        (a 0/1 merge or mask tensor shrinks to a few lines), so the module stays one
        standalone file that needs only the standard library besides NumPy.
        """
        key = (data.shape, data.dtype.str, data.tobytes())
        name = self._constant_names.get(key)
        if name is not None:
            return name
        name = self._constant_names[key] = f"_c{len(self._constant_names)}"
        shape = ", ".join(map(str, data.shape))
        if data.size <= LITERAL_ENTRIES:
            self.constant_lines.append(f"{name} = {self.np('array')}({data.tolist()!r})")
            return name
        packed = base64.b64encode(zlib.compress(np.ascontiguousarray(data, dtype="<f8").tobytes(), 9)).decode()
        chunks = [f'    "{packed[k : k + 100]}"' for k in range(0, len(packed), 100)]
        decode = f"{self.module('zlib.decompress')}({self.module('base64.b64decode')}("
        self.constant_lines += [
            f"{name} = {self.np('frombuffer')}(  # a ({shape}) constant, {data.size:,} entries",
            f"    {decode}",
            *[f"    {c}" for c in chunks],
            "    )), dtype='<f8'",
            f").reshape(({shape}{',' if data.ndim == 1 else ''}))",
        ]
        return name

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

    def _print_Delta(self, node: Delta, ctx: Context) -> Expr | None:
        k = len(node.base)
        unique = symbols(k)
        info = Diagonal(unique + unique, unique, ())
        if ctx.needs_value(node):
            if k == 1:
                return self.creation("eye", ctx.size(node.base[0]))
            ctx.after(lambda name: self._diag_write(name, info, literal(1.0), "="))
            return self.creation("zeros", ctx.shape(node.dims))
        if any(isinstance(u, Add) for u in ctx.uses(node)):
            ctx.embeds[id(node)] = info  # the sums add 1 on their diagonal
            return literal(1.0)
        return None  # only an einsum factor: the plan merges its indices

    # -- products -----------------------------------------------------------------------
    def _print_Einsum(self, node: Einsum, ctx: Context) -> Expr:
        spread = _spread_array(node)
        if spread is not None and ctx.only_added(node) and id(node) not in ctx.scaled_of:
            if all(any(_full_term(t, ctx) for t in use.terms) for use in ctx.uses(node)):
                # a bias added to full arrays: NumPy broadcasts it (X @ W + b), no broadcast_to
                aligned = align(ctx.arg(node.operands[spread]), node.in_idx[spread], node.out_idx, self.permute)
                return replace(aligned, inline=True, readonly=True)
        low = self.lowering(node) if any(isinstance(op, Shift) for op in node.operands) else None
        if low is not None:
            return self.print_windowed(node, low, node.coef, ctx)
        if self._added_gather(node, ctx):
            ctx.embeds[id(node)] = added_gather(node)
            return None
        kinds = []
        for op in node.operands:
            if isinstance(op, Delta):
                kinds.append("delta")
            elif isinstance(op, Const) and op.value == 1.0:
                kinds.append("ones")
            elif isinstance(op, Const):  # pragma: no cover - algebra folds constants into coef
                raise UnsupportedNodeError(f"einsum with a non-unit constant operand {op.value!r}")
            else:
                kinds.append("array")
        index_dim = {i: d for op, idx in zip(node.operands, node.in_idx) for i, d in zip(idx, op.dims)}
        uses = ctx.uses(node)
        # A negative term used by exactly one sum is computed positive and subtracted
        # there: `a - b` instead of `a + -1.0 * b`, one pass over the data fewer.
        negate = (
            node.coef < 0
            and "delta" not in kinds
            and not ctx.is_root(node)
            and len(uses) == 1
            and isinstance(uses[0], Add)
        )
        coef = -node.coef if negate else node.coef
        if negate:
            ctx.negated.add(id(node))
        base = ctx.scaled_of.get(id(node))
        if base is not None:
            return self._print_scaled(node, base, coef, kinds, index_dim, ctx)
        operands = [
            ctx.arg(op) if k != "delta" and not (isinstance(op, Const)) and id(op) in ctx.values else None
            for op, k in zip(node.operands, kinds)
        ]
        kinds, in_idx, operands = self._lower_windows(node, kinds, operands, ctx)
        scatter = scatter_of(node)
        if scatter is not None:
            return self._print_scatter(node, scatter, coef, kinds, in_idx, operands, index_dim, ctx)
        flip = id(node) in ctx.transpose and "delta" not in kinds
        plan = plan_einsum(kinds, in_idx, node.out_idx[::-1] if flip else node.out_idx, coef, index_dim, ctx.sizes)
        core = self.render_plan(plan, [operands[k] for k in plan.inputs], ctx)  # type: ignore[misc]
        if flip:
            ctx.transposed.add(id(node))  # its readers' order; the name holds the transpose
        if plan.embed is None:
            return core
        core_idx = plan.value_idx[plan.result] if plan.result is not None else ()
        info = Diagonal(plan.embed.labels, plan.embed.unique, core_idx)
        if ctx.only_added(node):
            ctx.embeds[id(node)] = info  # stays compressed: each sum writes it into its diagonal
            return replace(core, note="core of ")
        if len(info.labels) == 2 and core_idx == info.unique:
            return call(self.np("diag"), core.text)
        ctx.after(lambda name: self._diag_write(name, info, core, "="))
        return self.creation("zeros", ctx.shape(node.dims))

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

    def _print_scaled(
        self, node: Einsum, base: Node, coef: float, kinds: list[str], index_dim: dict, ctx: Context
    ) -> Expr:
        """``coef · base`` where the product ``base`` (coefficient 1) is shared with other nodes.

        ``U @ V.T`` and ``-2.0 * (U @ V.T)`` are different nodes; the product is computed
        once (by whichever comes first) and the others scale its value.
        """
        known = ctx.values.get(id(base)) or ctx.shared.get(id(base))
        if node is base:
            return (
                known
                if known is not None
                else self.render_plan(
                    plan_einsum(kinds, node.in_idx, node.out_idx, 1.0, index_dim, ctx.sizes),
                    [ctx.arg(op) for op, k in zip(node.operands, kinds) if k == "array"],
                    ctx,
                )
            )
        if known is None:
            plan = plan_einsum(kinds, node.in_idx, node.out_idx, 1.0, index_dim, ctx.sizes)
            core = self.render_plan(plan, [ctx.arg(node.operands[k]) for k in plan.inputs], ctx)
            known = ctx.temp(core, ctx.describe(base)) if not core.inline else core
            ctx.shared[id(base)] = known
        if coef == 1.0:
            return known
        if coef == -1.0:
            return Expr(f"-{known.operand(UNARY, 'neg', False)}", UNARY, "neg", owned=True)
        return binary(literal(coef), "*", known)

    def _diag_write(self, target: str, info: Diagonal, core: Expr, op: str) -> str:
        """``numpy.einsum('abac->abc', target)[...] op core``: writes through a diagonal view."""
        spec = spec_of([info.labels], info.unique)
        value = align(core, info.core_idx, info.unique, self.permute)
        return f"{self.np('einsum')}({spec!r}, {target})[...] {op} {value.text}"

    # -- integer gathers and scatters (hooks: each library has its own spelling) ----------
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

    # -- sums ---------------------------------------------------------------------------
    def _print_Add(self, node: Add, ctx: Context) -> Expr:
        positive: list[Expr] = []
        negative: list[Expr] = []
        diagonals: list[tuple[Diagonal, Expr]] = []
        constant = 0.0
        gathers: list[GatherTerm] = []
        for term in node.terms:
            if isinstance(term, Const):
                constant += term.value
            elif isinstance(ctx.embeds.get(id(term)), GatherTerm):
                gathers.append(ctx.embeds[id(term)])  # type: ignore[arg-type]
            elif id(term) in ctx.embeds:
                diagonals.append((ctx.embeds[id(term)], ctx.arg(term)))  # type: ignore[arg-type]
            elif id(term) in ctx.negated:
                negative.append(ctx.arg(term))
            else:
                positive.append(ctx.arg(term))
        arrays = len(positive) + len(negative)
        if not diagonals and not gathers and self.in_place and arrays == (1 if constant else 2):
            into = self._add_in_place(node, constant, ctx)
            if into is not None:
                return into
        expr: Expr | None = None
        total = constant
        if not positive and constant > 0:  # 1.0 - x reads better than -x + 1.0
            expr, constant = literal(constant), 0.0
        signed = [("+", e) for e in positive] + [("-", e) for e in negative]
        # one statement adds at most SUM_TERMS terms (thousands in one expression overflow
        # CPython's compiler); the rest are added in place to that fresh array
        for start in range(SUM_TERMS, len(signed), SUM_TERMS):
            chunk = _signed_sum(None, signed[start : start + SUM_TERMS])
            ctx.after(lambda name, chunk=chunk: f"{name} += {chunk.text}")
        expr = _signed_sum(expr, signed[:SUM_TERMS])
        if constant:
            if expr is None:
                expr = literal(constant)
            else:
                expr = binary(expr, "-" if constant < 0 else "+", literal(abs(constant)), SUM)
        if not diagonals and not gathers:
            assert expr is not None, "a sum has at least one term that is not constant"
            return expr
        # δ ⊗ core terms are added into the diagonal of a fresh array holding the rest.
        dense = [t for t in node.terms if not isinstance(t, Const) and id(t) not in ctx.embeds]
        if not dense:
            shape = ctx.shape(node.dims)
            base = self.creation("full", shape, repr(total)) if total else self.creation("zeros", shape)
        elif len(dense) == 1 and not constant and id(dense[0]) not in ctx.negated:
            (term,) = dense
            e = ctx.arg(term)
            # a fresh array nobody else reads can take the writes itself; anything else is copied
            reusable = (
                e.owned
                and len(ctx.uses(term)) == 1
                and not ctx.is_root(term)
                and id(term) not in ctx.scaled_of  # its value may be read by rescaled copies
            )
            base = e if reusable else self.copy_of(e)
        else:
            assert expr is not None
            base = expr
        for info, core in diagonals:
            ctx.after(lambda name, info=info, core=core: self._diag_write(name, info, core, "+="))
        for g in gathers:
            ctx.after(lambda name, g=g: self.add_at_rows(name, g, ctx))
        return replace(base, owned=True)

    def _add_in_place(self, node: Add, constant: float, ctx: Context) -> Expr | None:
        """``a + b`` as ``a += b`` and ``1.0 - a`` as ``numpy.subtract(1.0, a, out=a)``, or None.

        Only when ``a`` is a fresh full array nothing else reads. No new array: on large
        activations (a convolution's output plus its bias, the ``1 - h²`` of a tanh layer)
        the allocation costs as much as the addition.
        """
        terms = [t for t in node.terms if not isinstance(t, Const)]
        pairs = [(terms[0], None)] if constant else [(terms[0], terms[1]), (terms[1], terms[0])]
        for target, other in pairs:
            negated = id(target) in ctx.negated
            if (negated and other is not None) or not _full_term(target, ctx):
                continue
            e = ctx.arg(target)
            if not e.owned or len(ctx.uses(target)) != 1 or ctx.is_root(target) or id(target) in ctx.scaled_of:
                continue
            if other is not None:
                statement = f"{e.text} {'-=' if id(other) in ctx.negated else '+='} {ctx.arg(other).text}"
            elif negated:  # a 0-d result is a NumPy scalar, which takes no out=
                statement = self._subtract_from_in_place(constant, e.text) if node.dims else None
            else:
                statement = f"{e.text} {'+=' if constant > 0 else '-='} {literal(abs(constant)).text}"
            if statement is None:
                return None
            comment = ctx.describe(node)
            ctx.lines.append(statement + (f"  # {comment}" if comment else ""))
            ctx.in_place.add(id(node))
            return replace(e, inline=True)  # the sum's value now, still a fresh array
        return None

    def _subtract_from_in_place(self, constant: float, name: str) -> str | None:
        """The statement replacing the array ``name`` by ``constant - name``, or None where the library has none."""
        return f"{self.np('subtract')}({literal(constant).text}, {name}, out={name})"

    # -- functions ----------------------------------------------------------------------
    def _print_Elementwise(self, node: Elementwise, ctx: Context) -> Expr:
        if node.fn == "pow":
            assert node.param is not None
            return self._pow(self._function_arg(node.arg, ctx), node.param)
        entry = get_elementwise(node.fn)
        # constant arguments are scalars NumPy broadcasts: maximum(x, 0.0), where(c, x, 0.0);
        # when all are constant (a value the algebra left unfolded: sin(0) ** -1), a NumPy scalar
        args = [literal(a.value) if isinstance(a, Const) else ctx.arg(a) for a in node.args]
        if all(isinstance(a, Const) for a in node.args):
            args[0] = self._function_arg(node.args[0], ctx)
        for m in entry.imports:
            self.module(m)
        if self.in_place:
            into = self._elementwise_in_place(node, args, ctx)
            if into is not None:
                return into
        if entry.in_place and not all(isinstance(a, Const) for a in node.args):
            start, finish = entry.in_place
            ctx.after(lambda name: finish.format(out=name))
            return Expr(start.format(*(a.text for a in args)), owned=True)
        if entry.code_prec == "atom":  # the arguments sit inside call parentheses
            return Expr(entry.code.format(*(a.text for a in args)), owned=True)
        prec = PRODUCT if entry.code_prec == "product" else SUM
        return Expr(entry.code.format(*(a.atom for a in args)), prec, "*" if prec == PRODUCT else "", owned=True)

    def _elementwise_in_place(self, node: Elementwise, args: list[Expr], ctx: Context) -> Expr | None:
        """``numpy.tanh(z, out=z)`` when an argument is a fresh full array nothing later reads, else None.

        No new array: the allocation of a fresh activation costs as much as a cheap
        function's pass (its pages are faulted in on first write).
        """
        entry = get_elementwise(node.fn)
        first = _ufunc_into(entry.in_place[0] if entry.in_place else entry.code)
        if first is None or not node.dims:  # a 0-d result is a NumPy scalar, which takes no out=
            return None
        for arg, e in zip(node.args, args):
            if (
                not isinstance(arg, Const)
                and e.owned
                and arg.dims == node.dims
                and _last_reader(node, arg, ctx)
                and not ctx.is_root(arg)
                and id(arg) not in ctx.scaled_of
            ):
                break
        else:
            return None
        comment = ctx.describe(node)
        ctx.lines.append(first.format(*(a.text for a in args), out=e.text) + (f"  # {comment}" if comment else ""))
        if entry.in_place:
            ctx.lines.append(entry.in_place[1].format(out=e.text))
        ctx.in_place.add(id(node))
        return replace(e, inline=True)  # the function's value now, still a fresh array

    def _pow(self, x: Expr, p: float) -> Expr:
        """``x ** p`` with the cheap forms for common exponents."""
        base = x.atom
        if p == 2.0:
            return Expr(f"{base} * {base}", PRODUCT, "*", owned=True)
        if p == 3.0:
            return Expr(f"{base} * {base} * {base}", PRODUCT, "*", owned=True)
        if p == -1.0:
            return Expr(f"1.0 / {base}", PRODUCT, "/", owned=True)
        if p == -2.0:
            return Expr(f"1.0 / ({base} * {base})", PRODUCT, "/", owned=True)
        if p == 0.5:
            return call(self.np("sqrt"), x.text)
        if p == -0.5:
            return Expr(f"1.0 / {self.np('sqrt')}({x.text})", PRODUCT, "/", owned=True)
        return Expr(f"{base} ** {p!r}", POWER, "**", owned=True)

    def _print_Unary(self, node: Unary, ctx: Context) -> Expr:
        method = UNARY_CODE.get(node.fn)
        code = get_unary(node.fn).code
        if method is None and code is not None:
            return code(self, node, self._function_arg(node.arg, ctx), ctx)
        if method is None:
            raise UnsupportedNodeError(f"the {self.name} printer has no code for the function {node.fn!r}")
        if node.fn == "max" and self.in_place:
            corners = _small_trailing(node.arg.dims, node.axis, ctx)
            if corners is not None:  # max pooling: the maximum of strided slices
                slices = [f"{ctx.arg(node.arg).atom}[..., {', '.join(map(str, c))}]" for c in corners]
                m = ctx.temp(call(self.np("maximum"), slices[0], slices[1]), ctx.describe(node))
                for more in slices[2:]:
                    ctx.lines.append(f"{self.np('maximum')}({m.text}, {more}, out={m.text})")
                return replace(m, owned=True, inline=True)
        return getattr(self, method)(self._function_arg(node.arg, ctx), node.axis, ctx)

    def _function_arg(self, node: Node, ctx: Context) -> Expr:
        """The argument of a function: a scalar constant becomes a NumPy scalar.

        With a Python float, ``0.0 ** -1.0`` raises ZeroDivisionError and ``3.0.max()``
        fails; NumPy gives ``inf`` (as ``evaluate`` does) and has the array methods.
        """
        if isinstance(node, Const) and not node.dims:
            return call(self.np("float64"), literal(node.value).text)
        if isinstance(node, Const):  # log(zeros(n)): the function of an array of the dims
            return ctx.values.get(id(node)) or self._filled(node, ctx)
        return ctx.arg(node)

    def _unary_inv(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        return call(self.np("linalg.inv"), x.text)

    def _unary_det(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        return call(self.np("linalg.det"), x.text)

    def _unary_adjugate(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        # det(x) inv(x) without inverting: from x = U S Vᵀ, det(U) det(Vᵀ) V diag(Π_{j≠i} s_j) Uᵀ
        svd = ctx.temp(call(self.np("linalg.svd"), x.text), "U, S, Vᵀ of the adjugate's argument")
        u, s, vt = (f"{svd.text}[{k}]" for k in range(3))
        cat, prod = self.np("concatenate"), self.np("cumprod")
        before = ctx.temp(Expr(f"{prod}({cat}(([1.0], {s})))[:-1]"), "products of the singular values before each")
        after = ctx.temp(Expr(f"{prod}({cat}(([1.0], {s}[::-1])))[-2::-1]"), "and after each")
        others = Expr(f"({before.text} * {after.text})")
        det = self.np("linalg.det")
        return Expr(f"{det}({u}) * {det}({vt}) * ({vt}.T * {others.text}) @ {u}.T", PRODUCT, "*", owned=True)

    def _unary_logdet(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        # log|det x| without overflow; the sign is not part of the value
        return Expr(f"{self.np('linalg.slogdet')}({x.text})[1]", owned=True)

    def _shifted(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        return ctx.temp(
            Expr(f"{x.atom} - {self._reduce_max(x, axis, True)}", SUM, "-", owned=True),
            "minus the max, for stability",
        )

    def _reduce_max(self, x: Expr, axis: object, keepdims: bool, identity: bool = True) -> str:
        """``x.max(axis=…, keepdims=True, initial=-inf)``; ``identity``: -inf over a size-0 axis."""
        args = [] if axis is None else [f"axis={axis}"]
        args += ["keepdims=True"] if keepdims else []
        args += [self._no_identity()] if identity else []
        return f"{x.atom}.max({', '.join(args)})"

    def _exp_in_place(self, name: str) -> str:
        """The statement replacing the array ``name`` by its exponential (in place: no new array)."""
        return f"{self.np('exp')}({name}, out={name})"

    def copy_of(self, e: Expr) -> Expr:
        """A fresh, writeable copy of the array ``e``."""
        return Expr(f"{e.atom}.copy()", owned=True)

    def creation(self, member: str, *args: str) -> Expr:
        """A new float array: ``numpy.zeros(shape)``, ``full``, ``ones``, ``eye``, ``array(data)``."""
        return call(self.np(member), *args)

    def as_float(self, code: str) -> str:
        """``code`` (an atom: a boolean array) as a float array."""
        return f"{code}.astype(float)"

    def _no_identity(self) -> str:
        """The ``max`` argument that makes a size-0 axis give -inf (its log-sum-exp) instead of an error."""
        return f"initial=-{self.np('inf')}"

    def _unary_softmax(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        z = self._shifted(x, axis, ctx)
        ctx.lines.append(self._exp_in_place(z.text))
        return Expr(f"{z.text} / {z.text}.sum(axis={axis}, keepdims=True)", PRODUCT, "/", owned=True)

    def _unary_log_softmax(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        z = self._shifted(x, axis, ctx)
        lse = f"{self.np('log')}({self.np('exp')}({z.text}).sum(axis={axis}, keepdims=True))"
        return Expr(f"{z.text} - {lse}", SUM, "-", owned=True)

    def _unary_logsumexp(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        if axis is None:
            m = ctx.temp(Expr(self._reduce_max(x, None, False)), "the max, for stability")
            return Expr(
                f"{self.np('log')}({self.np('exp')}({x.atom} - {m.text}).sum()) + {m.text}", SUM, "+", owned=True
            )
        m = ctx.temp(Expr(self._reduce_max(x, axis, True)), "the max, for stability")
        body = f"{self.np('log')}({self.np('exp')}({x.atom} - {m.text}).sum(axis={axis}))"
        return Expr(f"{body} + {m.text}.squeeze(axis={axis})", SUM, "+", owned=True)

    def _unary_max(self, x: Expr, axis: object, ctx: Context) -> Expr:
        return Expr(self._reduce_max(x, axis, False, identity=False), owned=True)

    def _unary_triu(self, x: Expr, k: object, ctx: Context) -> Expr:
        return call(self.np("triu"), x.text, *([f"k={k}"] if k else []))

    def _unary_tril(self, x: Expr, k: object, ctx: Context) -> Expr:
        return call(self.np("tril"), x.text, *([f"k={k}"] if k else []))

    def _unary_prod(self, x: Expr, axis: object, ctx: Context) -> Expr:
        return Expr(f"{x.atom}.prod({'' if axis is None else f'axis={axis}'})", owned=True)

    # -- plans --------------------------------------------------------------------------
    def render_plan(self, plan: Plan, operands: list[Expr], ctx: Context) -> Expr:
        """Code computing a planned einsum, given the code of its array operands.

        Intermediate values are nested into one expression while it stays short (each
        is used once), and get a temporary beyond :data:`NESTING_LIMIT` characters.
        """
        values: list[Expr] = []
        for v, e in enumerate(operands):
            values.append(self._scaled(e, plan, ctx) if v == plan.scale_at else e)
        for s, step in enumerate(plan.steps):
            v = len(operands) + s
            e = self._step(step, [values[a] for a in step.args], [plan.value_idx[a] for a in step.args], plan, ctx)
            if v == plan.scale_at:
                e = self._scaled(e, plan, ctx)
            last = v == plan.result
            if not last and len(e.text) > NESTING_LIMIT:
                e = ctx.temp(e)
            values.append(e)
        if plan.result is not None:
            return values[plan.result]
        scalar = self._scale_text(plan.coef, plan, ctx)  # no array factor: a constant
        if plan.embed is None and plan.out:
            return self.creation("full", ctx.shape(tuple(plan.index_dim[i] for i in plan.out)), scalar.text)
        return scalar

    @staticmethod
    def _size_of(plan: Plan, ctx: Context) -> Callable[[IndexTuple], str]:
        """Code for the number of entries over some axes of a plan: ``X.shape[0] * 54``."""
        return lambda axes: _product_code([ctx.size(plan.index_dim[i]) for i in axes])

    def _grouped_matmul(self, step: Step, args: list[Expr], idx: list[IndexTuple], plan: Plan, ctx: Context) -> Expr:
        """``K.reshape(o, s) @ X.reshape(p, s, q)``, reshaped to the step's axes (see ``"groups"``)."""
        summed_first, n_lead, n_summed = step.axes
        (si, bi), (small, big) = idx, args
        size = self._size_of(plan, ctx)
        lead, group, tail = bi[:n_lead], bi[n_lead : n_lead + n_summed], bi[n_lead + n_summed :]
        free = tuple(i for i in si if i not in group)
        if summed_first:
            left = Expr(f"{small.atom}.reshape({size(group)}, {size(free)}).T", ATOM)
        else:
            left = Expr(f"{small.atom}.reshape({size(free)}, {size(group)})", ATOM)
        right = Expr(f"{big.atom}.reshape({', '.join(ctx.size(plan.index_dim[i]) for i in lead)}, "
                     f"{size(group)}, {size(tail)})", ATOM)  # fmt: skip
        product = binary(left, "@", right)
        return Expr(f"({product.text}).reshape{ctx.shape(tuple(plan.index_dim[i] for i in step.out))}", owned=True)

    def _summed_batches(self, step: Step, args: list[Expr], idx: list[IndexTuple], plan: Plan, ctx: Context) -> Expr:
        """``(A.reshape(p, f, q) @ B.reshape(p, g, q).transpose(0, 2, 1)).sum(axis=0)`` (see ``"groups_summed"``)."""
        n_lead, n_tail = step.axes
        size = self._size_of(plan, ctx)

        def as_3d(e: Expr, ix: IndexTuple) -> str:
            lead, free, tail = ix[:n_lead], ix[n_lead : len(ix) - n_tail], ix[len(ix) - n_tail :]
            return f"{e.atom}.reshape({size(lead)}, {size(free)}, {size(tail)})"

        product = f"({as_3d(args[0], idx[0])} @ {as_3d(args[1], idx[1])}.{self.permute}(0, 2, 1)).sum(axis=0)"
        return Expr(f"{product}.reshape{ctx.shape(tuple(plan.index_dim[i] for i in step.out))}", owned=True)

    def _scale_text(self, coef: float, plan: Plan, ctx: Context) -> Expr:
        """The coefficient times the sizes of the summed constant indices."""
        factor = coef
        symbolic = []
        for dim in plan.counts:
            if dim.isdigit():
                factor *= int(dim)
            else:
                symbolic.append(ctx.size(dim))
        if not symbolic:
            return literal(factor)
        if factor == 1.0 and plan.result is not None:  # an array carries the float type
            return Expr(" * ".join(symbolic), PRODUCT if len(symbolic) > 1 else ATOM, "*" if len(symbolic) > 1 else "")
        return Expr(" * ".join([repr(float(factor)), *symbolic]), PRODUCT, "*")

    def _scaled(self, e: Expr, plan: Plan, ctx: Context) -> Expr:
        factor = self._scale_text(plan.coef, plan, ctx)
        if factor.text == "-1.0":
            return Expr(f"-{e.operand(UNARY, 'neg', False)}", UNARY, "neg", owned=True)
        return binary(factor, "*", e)

    def _step(self, step: Step, args: list[Expr], idx: list[IndexTuple], plan: Plan, ctx: Context) -> Expr:
        out = step.out
        if step.op == "diagonal":
            return Expr(f"{self.np('einsum')}({spec_of(idx, out)!r}, {args[0].text})")
        if step.op == "sum":
            dims = tuple(plan.index_dim[i] for i in idx[0])
            corners = _small_trailing(dims, step.axes, ctx)
            if corners is not None:  # a sum over tiles: the sum of strided slices
                terms = [f"{args[0].atom}[..., {', '.join(map(str, c))}]" for c in corners]
                return Expr(" + ".join(terms), SUM, "+", owned=True)
            axes = "" if len(step.axes) == len(idx[0]) else f"axis={_axes_text(step.axes)}"
            return Expr(f"{args[0].atom}.sum({axes})", owned=True)
        if step.op == "transpose":
            return transpose(args[0], step.axes, self.permute)
        if step.op == "matmul":
            left, right = (transpose(a, perm, self.permute) if perm else a for a, perm in zip(args, step.axes))
            return binary(left, "@", right)
        if step.op == "vdot":
            return call(self.np("vdot"), args[0].text, args[1].text)
        if step.op == "tensordot":
            axes = f"axes=({_axes_text(step.axes[0])}, {_axes_text(step.axes[1])})"
            return call(self.np("tensordot"), args[0].text, args[1].text, axes)
        if step.op == "groups":
            return self._grouped_matmul(step, args, idx, plan, ctx)
        if step.op == "groups_summed":
            return self._summed_batches(step, args, idx, plan, ctx)
        if step.op == "multiply":
            if len(idx[0]) == 1 and len(idx[1]) == 1 and out == idx[0] + idx[1] and idx[0] != idx[1]:
                return call(self.np("outer"), args[0].text, args[1].text)
            left, right = (align(a, i, out, self.permute) for a, i in zip(args, idx))
            return binary(left, "*", right)
        if step.op == "einsum":
            return call(self.np("einsum"), repr(spec_of(idx, out)), args[0].text, args[1].text, "optimize=False")
        if step.op == "broadcast":
            shape = ctx.shape(tuple(plan.index_dim[i] for i in out))
            aligned = align(args[0], idx[0], out, self.permute)
            return Expr(f"{self.np('broadcast_to')}({aligned.text}, {shape})", readonly=True)
        raise UnsupportedNodeError(f"the {self.name} printer cannot render a {step.op!r} step")  # pragma: no cover
