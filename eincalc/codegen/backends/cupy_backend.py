"""CuPy: NumPy's API on an NVIDIA GPU, in-place writes and sliding-window views included.

Untested here (no GPU): the code is NumPy's with ``cupy`` for ``numpy`` and new arrays in
the arguments' float type.
"""

from __future__ import annotations

from eincalc.codegen.backends.array_printer import ArrayLibraryPrinter


class CuPyPrinter(ArrayLibraryPrinter):
    """Prints programs for ``cupy``."""

    name = "cupy"
    numpy = "cupy"
    ELEMENTWISE = {"erf": ("cupyx.scipy.special.erf({0})", ("cupyx.scipy.special",))}
