"""JAX: ``jax.numpy`` mirrors NumPy's API; its arrays are immutable.

So δ ⊗ core values are added as einsums with identity matrices and products with window
tensors use the dense 0/1 tensor (no sliding-window views). float64 needs
``jax.config.update("jax_enable_x64", True)``; without it JAX computes in float32.
"""

from __future__ import annotations

from eincalc.codegen.backends.array_printer import ArrayLibraryPrinter


class JaxPrinter(ArrayLibraryPrinter):
    """Prints programs for ``jax.numpy``."""

    name = "jax"
    numpy = "jax.numpy"
    in_place = False
    windows = False
    ELEMENTWISE = {"erf": ("jax.scipy.special.erf({0})", ("jax.scipy.special",))}
