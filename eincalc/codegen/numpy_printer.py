"""The NumPy backend: how each node kind and each planned step is spelled in NumPy.

This module owns the NumPy spelling of products, sums, constants and unit tensors, and
the rendering of contraction plans (BLAS ``@``/``tensordot``/``vdot``, broadcasting ``*``
with ``[:, None]`` reshapes, ``.sum(axis=…)``, diagonal views ``numpy.einsum('ii->i',
a)``, pairwise ``numpy.einsum(..., optimize=False)``). Unit tensors are never
materialised inside a product: a δ ⊗ core value is written into the diagonal view of a
zero (or of a sum's) result. Writes go into fresh arrays nothing else reads where NumPy
allows (``z += b``, ``numpy.subtract(1.0, t, out=t)``).

The rest is in mix-ins, one job each: functions (:mod:`eincalc.codegen.numpy_functions`:
the element-wise registry's code and the general functions, in stable forms), gathers,
slices and scatters (:mod:`eincalc.codegen.numpy_gathers`) and window tensors
(:mod:`eincalc.codegen.numpy_windows`: convolutions and pooling). Which operations a node
needs is decided in :mod:`eincalc.codegen.planning`; which statements a program has, in
:mod:`eincalc.codegen.program`.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from eincalc._types import IndexTuple
from eincalc.algebra import symbols
from eincalc.codegen.gathers import GatherTerm, added_gather, scatter_of
from eincalc.codegen.numpy_functions import FunctionPrinting, small_trailing
from eincalc.codegen.numpy_gathers import GatherPrinting
from eincalc.codegen.numpy_windows import WindowPrinting
from eincalc.codegen.planning import Plan, Step, plan_einsum, spec_of
from eincalc.codegen.printer import (
    ATOM,
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
from eincalc.expr import Add, Array, Const, Delta, Einsum, Node, Shift, Var, Window

LITERAL_ENTRIES = 64
"""Constant arrays up to this many entries are written out as literals; larger ones packed."""

NESTING_LIMIT = 72
"""A planned step whose code grows longer than this gets its own temporary."""


@dataclass(frozen=True)
class Diagonal:
    """A value kept as δ ⊗ core: ``labels`` per axis (equal labels share a δ).

    The code of the node is its core, whose axes are ``core_idx`` (a subset of
    ``unique``, the distinct labels in order).
    """

    labels: IndexTuple
    unique: IndexTuple
    core_idx: IndexTuple


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
    if len(set(idx)) < len(idx) or len(idx) == len(node.out_idx):
        return None
    # nothing summed: ones summed over an index are a count that scales the array
    return k if all(set(ix) <= set(node.out_idx) for ix in node.in_idx) else None


def _full_term(term: Node, ctx: Context) -> bool:
    """True when the printed value of a sum's term has the sum's full shape.

    Decided from the node, not only from what is printed so far: a δ ⊗ core term or a
    gather added at rows printed after the asking term is written into the sum's array too
    (it is no array of its own that a broadcast term could be added to).
    """
    if isinstance(term, Const) or id(term) in ctx.embeds or _spread_array(term) is not None:
        return False
    return not _written_into_sums(term)


def _subtracts_from_another_term(add: Add, term: Node) -> bool:
    """Whether ``add`` has a dense term besides ``term``: one it can print ``other - term`` against.

    Constants count (``1.0 - term``); δ ⊗ core terms and gathers added at rows do not —
    they are written into the array holding the rest.
    """
    return any(other is not term and not _written_into_sums(other) for other in add.terms)


def _written_into_sums(term: Node) -> bool:
    """A δ ⊗ core term, an identity or a gather added at rows: a sum writes it into the array holding its other terms.

    An identity a sum reads is written as 1s on that array's diagonal (``_print_Delta``);
    one that is also returned is an array of its own, which this answer only makes
    slower, never wrong (a broadcast term then fills the sum's array itself).
    """
    if isinstance(term, Delta) or (isinstance(term, Einsum) and any(isinstance(op, Delta) for op in term.operands)):
        return True
    return added_gather(term) is not None


def _product_code(sizes: list[str]) -> str:
    """Code for the product of sizes, the numbers folded: ``X.shape[0] * 54``."""
    number = math.prod(int(z) for z in sizes if z.isdigit())
    symbols = [z for z in sizes if not z.isdigit()]
    return " * ".join(symbols + ([str(number)] if number != 1 or not symbols else []))


def _axes_text(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


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


class NumPyPrinter(FunctionPrinting, GatherPrinting, WindowPrinting, Printer):
    """Prints nodes as NumPy code; see the module docstring for the forms used."""

    def __init__(self) -> None:
        super().__init__()
        self._constant_names: dict[tuple, str] = {}
        self.reference: str | None = None  # a parameter whose dtype new arrays take (set by the program)

    name = "numpy"
    numpy = "numpy"
    in_place = True
    """Arrays may be written in place (``a += b``, ``out=``)."""
    permute = "transpose"
    """The array method permuting axes (``x.transpose(0, 2, 1)``)."""
    chunks = True
    """Convolutions over large batches run in cache-sized chunks of images (:func:`.windows.chunking`)."""

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
        # there: `a - b` instead of `a + -1.0 * b`, one pass over the data fewer — when
        # the sum has another dense term to subtract it from (else `-b` is the pass).
        negate = (
            node.coef < 0
            and "delta" not in kinds
            and not ctx.is_root(node)
            and len(uses) == 1
            and isinstance(uses[0], Add)
            and _subtracts_from_another_term(uses[0], node)
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
        flip = id(node) in ctx.transpose  # only plain matrix products are chosen (codegen/layouts.py)
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
            return None if statement is None else ctx.written_in_place(node, statement, e)
        return None

    def _subtract_from_in_place(self, constant: float, name: str) -> str | None:
        """The statement replacing the array ``name`` by ``constant - name``, or None where the library has none."""
        return f"{self.np('subtract')}({literal(constant).text}, {name}, out={name})"

    # -- new arrays (hooks: each library has its own spelling) ------------------------
    def copy_of(self, e: Expr) -> Expr:
        """A fresh, writeable copy of the array ``e``."""
        return Expr(f"{e.atom}.copy()", owned=True)

    def dtype(self) -> str:
        """Code for the float type of the computation: the reference argument's dtype.

        The caller hands every array over in the call's float type (float32 when all are),
        so new arrays and 0/1 masks take it: float32 code stays float32, at its speed.
        """
        return f"{self.reference}.dtype" if self.reference is not None else self.np("float64")

    def creation(self, member: str, *args: str) -> Expr:
        """A new float array: ``numpy.zeros(shape, dtype=X.dtype)``, ``full``, ``ones``, ``eye``, ``array(data)``."""
        if self.reference is None:
            return call(self.np(member), *args)
        return call(self.np(member), *args, f"dtype={self.dtype()}")

    def as_float(self, code: str) -> str:
        """``code`` (an atom: a boolean array) as an array of the computation's float type."""
        return f"{code}.astype({self.dtype() if self.reference is not None else 'float'})"

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
            if step.op == "transpose" and step.args[0] >= len(operands) and values[step.args[0]].owned:
                # a view of an intermediate only this plan holds: writing through it is safe
                # (a δ ⊗ core term added into a transposed product needs no copy)
                e = replace(e, owned=True)
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
            corners = small_trailing(dims, step.axes, ctx)
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
