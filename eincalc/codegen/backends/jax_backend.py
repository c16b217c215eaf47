"""JAX: ``jax.numpy`` mirrors NumPy's API; its arrays are immutable.

So δ ⊗ core values are added as einsums with identity matrices, sliding windows are
gathers (``jax.numpy.take`` of window positions: an im2col copy, which XLA makes anyway)
and the scatters of transposed convolutions and integer gathers are ``.at[…].add`` (or
``.set``) on zeros. JAX indexes with arrays, never lists: a gather's positions are
``jax.numpy.asarray([0, 2, 1])``. float64 needs ``jax.config.update("jax_enable_x64", True)``;
without it JAX computes in float32.
"""

from __future__ import annotations

from eincalc.codegen.backends.array_printer import ArrayLibraryPrinter
from eincalc.codegen.gathers import GatherTerm
from eincalc.codegen.printer import ATOM, Context, Expr, literal
from eincalc.codegen.windows import exact_tiling
from eincalc.expr import Shift


class JaxPrinter(ArrayLibraryPrinter):
    """Prints programs for ``jax.numpy``."""

    name = "jax"
    numpy = "jax.numpy"
    in_place = False
    ELEMENTWISE = {"erf": ("jax.scipy.special.erf({0})", ("jax.scipy.special",))}

    def _window(self, e: Expr, axes: list[int], ndim: int, shifts: list[Shift], ctx: Context) -> Expr:
        """``e`` with each axis of ``axes`` turned into window starts, window offsets appended in that order.

        ``moveaxis(take(pad(X), starts[:, None] + offsets, axis=2), 3, -1)`` per axis, where
        NumPy takes a strided view; exact tilings (pooling) stay reshapes.
        """
        if exact_tiling(shifts):
            return self._tiles(e, axes, ndim, shifts, ctx)
        view = self._padded(e, axes, ndim, shifts)
        arange = self.np("arange")
        for a, s in zip(axes, shifts):
            starts = f"{arange}({s.out})[:, None]" + (f" * {s.stride}" if s.stride != 1 else "")
            offsets = f"{arange}({s.kernel})" + (f" * {s.dilation}" if s.dilation != 1 else "")
            view = f"{self.np('moveaxis')}({self.np('take')}({view}, {starts} + {offsets}, axis={a}), {a + 1}, -1)"
        return ctx.temp(Expr(view, ATOM, owned=True))

    def add_into(self, target: str, subscript: str, value: str) -> str:
        return f"{target} = {target}.at[{subscript}].add({value})"

    # -- integer gathers and scatters ------------------------------------------------------
    def index_list(self, rows: tuple[int, ...]) -> str:
        return f"{self.np('asarray')}({list(rows)!r})"  # JAX refuses a list as a subscript

    def scatter_rows(self, shape: str, axis: int, rows: tuple[int, ...], core: Expr, ctx: Context) -> Expr:
        """``zeros(shape).at[:, rows].add(core)``: a new array; ``.set`` when the rows are distinct."""
        at = ", ".join([":"] * axis + [self.index_list(rows)])
        method = "set" if len(set(rows)) == len(rows) else "add"
        return Expr(f"{self.creation('zeros', shape).text}.at[{at}].{method}({core.text})", owned=True)

    def add_at_rows(self, name: str, term: GatherTerm, ctx: Context) -> str:
        rows = f"{self.np('arange')}({ctx.size(term.window.dims[0])}), {self.index_list(term.window.rows or ())}"
        return self.add_into(name, rows, literal(term.coef).text)
