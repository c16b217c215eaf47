"""Dask: ``dask.array`` mirrors NumPy's API on chunked arrays; the code builds a lazy graph.

A compiled function called with Dask arrays returns Dask arrays: nothing is computed
until ``dask.compute(...)`` (on the threads scheduler, or a ``distributed.Client``'s
cluster). Sums over a chunked axis (``X.T @ r`` over row chunks) are reductions Dask
does chunk by chunk, so a design matrix larger than memory streams through. Dask arrays
are not written through views: δ ⊗ core values are added as einsums with identities.
Determinants, log-determinants and SVDs (``dask.array.linalg`` has none) are refused.
"""

from __future__ import annotations

from eincalc.codegen.backends.array_printer import ArrayLibraryPrinter
from eincalc.codegen.printer import Expr


class DaskPrinter(ArrayLibraryPrinter):
    """Prints programs for ``dask.array``."""

    name = "dask"
    numpy = "dask.array"
    in_place = False
    NAMES = {"float64": "numpy.float64", "heaviside": "numpy.heaviside"}  # a NumPy ufunc maps over Dask chunks
    UNSUPPORTED = frozenset({"linalg.det", "linalg.slogdet", "linalg.svd"})
    ELEMENTWISE = {
        "erf": (
            "dask.array.map_blocks(numpy.vectorize(math.erf, otypes=[float]), {0})",
            ("dask.array", "math", "numpy"),
        )
    }

    def _reduce_max(self, x: Expr, axis: object, keepdims: bool, identity: bool = True) -> str:
        return super()._reduce_max(x, axis, keepdims, identity=False)  # dask's max has no initial
