"""Dask: ``dask.array`` mirrors NumPy's API on chunked arrays; the code builds a lazy graph.

A compiled function called with Dask arrays returns Dask arrays: nothing is computed
until ``dask.compute(...)`` (on the threads scheduler, or a ``distributed.Client``'s
cluster). Sums over a chunked axis (``X.T @ r`` over row chunks) are reductions Dask
does chunk by chunk, so a design matrix larger than memory streams through. Dask arrays
are not written through views: δ ⊗ core values are added as einsums with identities.
Dask's item assignment writes rows (``out[rows] = core``) but neither adds (no
``add.at``) nor takes two index arrays, so a gather's reverse rule with repeated rows
first sums the rows that coincide, ``logp[arange(n), labels]`` is a ``vindex`` and the
cross-entropy's ``g[arange(m), labels] -= 1`` subtracts a 0/1 matrix of ``g``'s shape.
Determinants, log-determinants and SVDs (``dask.array.linalg`` has none) are refused.
"""

from __future__ import annotations

from eincalc.codegen.backends.array_printer import ArrayLibraryPrinter
from eincalc.codegen.gathers import GatherTerm
from eincalc.codegen.printer import Context, Expr


class DaskPrinter(ArrayLibraryPrinter):
    """Prints programs for ``dask.array``."""

    name = "dask"
    numpy = "dask.array"
    in_place = False
    NAMES = {"float64": "numpy.float64"}
    UNSUPPORTED = frozenset({"linalg.det", "linalg.slogdet", "linalg.svd"})
    ELEMENTWISE = {
        "erf": (
            "dask.array.map_blocks(numpy.vectorize(math.erf, otypes=[float]), {0})",
            ("dask.array", "math", "numpy"),
        )
    }

    def _reduce_max(self, x: Expr, axis: object, keepdims: bool, identity: bool = True) -> str:
        return super()._reduce_max(x, axis, keepdims, identity=False)  # dask's max has no initial

    # -- integer gathers and scatters ------------------------------------------------------
    def paired_gather(self, target: Expr, axis: int, paired: int, size: str, rows: tuple[int, ...]) -> Expr:
        """``target.vindex[:, range(size), rows]``, the paired axis moved from the front to where NumPy puts it.

        vindex takes positions, not Dask arrays (``range``, not ``dask.array.arange``).
        """
        keys = [f"range({size})", repr(list(rows))]
        if paired > axis:
            keys.reverse()
        first = min(axis, paired)
        picked = f"{target.atom}.vindex[{', '.join([':'] * first + keys)}]"
        return Expr(f"{self.np('moveaxis')}({picked}, 0, {first})" if first else picked, owned=True)

    def scatter_rows(self, shape: str, axis: int, rows: tuple[int, ...], core: Expr, ctx: Context) -> Expr:
        """Repeated rows summed into the distinct ones first, then written as distinct rows.

        ``S[u, o] = [rows[o] == distinct[u]]`` is a 0/1 matrix of (distinct rows) × (rows)
        entries; ``tensordot(S, core)`` adds the entries of the core that go to one row.
        """
        distinct = tuple(sorted(set(rows)))
        if len(distinct) == len(rows):
            return super().scatter_rows(shape, axis, rows, core, ctx)
        positions = f"({self.np('asarray')}({list(distinct)!r})[:, None] == {self.np('asarray')}({list(rows)!r}))"
        sums = ctx.temp(Expr(self.as_float(positions), owned=True), "which rows add into each distinct row")
        summed = f"{self.np('tensordot')}({sums.text}, {core.text}, axes=(1, {axis}))"
        if axis:
            summed = f"{self.np('moveaxis')}({summed}, 0, {axis})"
        return super().scatter_rows(shape, axis, distinct, Expr(summed, owned=True), ctx)

    def add_at_rows(self, name: str, term: GatherTerm, ctx: Context) -> str:
        """``g = g - (arange(n) == labels[:, None])``: the gather matrix itself, of the sum's shape."""
        rows = f"{self.np('asarray')}({list(term.window.rows or ())!r})"
        matrix = self.as_float(f"({self.np('arange')}({ctx.size(term.window.dims[1])}) == {rows}[:, None])")
        scaled = matrix if abs(term.coef) == 1.0 else f"{abs(term.coef)!r} * {matrix}"
        return f"{name} = {name} {'-' if term.coef < 0 else '+'} {scaled}"
