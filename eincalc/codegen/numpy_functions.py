"""NumPy spelling of functions: the element-wise registry's code and the general functions.

A mix-in of :class:`~eincalc.codegen.numpy_printer.NumPyPrinter`. Element-wise functions
print their registry entry's code (:data:`eincalc.functions.ELEMENTWISE`), written into a
fresh argument nothing later reads (``numpy.tanh(z, out=z)``) where NumPy allows it; the
general functions (:data:`UNARY_CODE`) have a method each, in stable forms: softmax,
log-softmax and logsumexp with the maximum subtracted, logdet through ``slogdet``, a max
over a few trailing entries as strided slices.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace

import numpy as np

from eincalc.codegen.printer import POWER, PRODUCT, SUM, Context, Expr, call, literal
from eincalc.errors import UnsupportedNodeError
from eincalc.expr import Const, Elementwise, Node, Unary
from eincalc.functions import get_elementwise, get_unary

TRAILING_TERMS = 16
"""A reduction over at most this many trailing entries (a pooling tile) is folded over slices."""

_UFUNC_CALL = re.compile(r"numpy\.(\w+)\(([^()]*)\)(?:\.astype\(float\))?")


def ufunc_into(code: str) -> str | None:
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


def small_trailing(dims: tuple, axis: object, ctx: Context) -> list[tuple[int, ...]] | None:
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


class FunctionPrinting:
    """Printer methods for :class:`~eincalc.expr.Elementwise` and :class:`~eincalc.expr.Unary` nodes."""

    def np(self, member: str) -> str:  # provided by NumPyPrinter
        raise NotImplementedError

    reference: str | None  # provided by NumPyPrinter

    def dtype(self) -> str:  # provided by NumPyPrinter
        raise NotImplementedError

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
            into = self._elementwise_in_place(node, entry.code, args, ctx)
            if into is not None:
                return into
        code = self.spelled(entry.code)
        if entry.code_prec == "atom":  # the arguments sit inside call parentheses
            return Expr(code.format(*(a.text for a in args)), owned=True)
        prec = PRODUCT if entry.code_prec == "product" else SUM
        return Expr(code.format(*(a.atom for a in args)), prec, "*" if prec == PRODUCT else "", owned=True)

    def _elementwise_in_place(self, node: Elementwise, code: str, args: list[Expr], ctx: Context) -> Expr | None:
        """``code`` as ``numpy.tanh(z, out=z)`` when an argument is a fresh full array nothing later reads, else None.

        No new array: the allocation of a fresh activation costs as much as a cheap
        function's pass (its pages are faulted in on first write).
        """
        into = ufunc_into(code)
        if into is None or not node.dims:  # a 0-d result is a NumPy scalar, which takes no out=
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
        statement = self.written_into(into, args, e)
        return None if statement is None else ctx.written_in_place(node, statement, e)

    def spelled(self, code: str) -> str:
        """NumPy code of the element-wise registry in this printer's library: 0/1 masks in the call's float type."""
        if ".astype(float)" in code and self.reference is not None:
            return code.replace(".astype(float)", f".astype({self.dtype()})")
        return code

    def written_into(self, into: str, args: list[Expr], out: Expr) -> str | None:
        """The statement computing ``into`` (a ufunc call with an ``out=`` slot) into ``out``, or None."""
        return into.format(*(a.text for a in args), out=out.text)

    def maximum_into(self, target: str, other: str) -> str:
        """The statement replacing ``target`` by the entry-wise maximum of it and ``other``."""
        return f"{self.np('maximum')}({target}, {other}, out={target})"

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
            corners = small_trailing(node.arg.dims, node.axis, ctx)
            if corners is not None:  # max pooling: the maximum of strided slices
                slices = [f"{ctx.arg(node.arg).atom}[..., {', '.join(map(str, c))}]" for c in corners]
                m = ctx.temp(call(self.np("maximum"), slices[0], slices[1]), ctx.describe(node))
                for more in slices[2:]:
                    ctx.lines.append(self.maximum_into(m.text, more))
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
