"""Code generation: expressions become readable, standalone NumPy (or torch, JAX, Dask, CuPy) functions.

``compile(outputs)`` returns a :class:`CompiledFunction` (call it, read ``.source``,
``.save()`` it). The printers and the contraction planner are importable for backends.
"""

from eincalc.codegen.backends import BACKENDS
from eincalc.codegen.numpy_functions import UNARY_CODE
from eincalc.codegen.numpy_printer import NumPyPrinter
from eincalc.codegen.planning import Plan, Step, plan_einsum
from eincalc.codegen.printer import Context, Expr, Printer
from eincalc.codegen.program import CompiledFunction, compile

__all__ = [
    "BACKENDS", "CompiledFunction", "Context", "Expr", "NumPyPrinter", "Plan", "Printer",
    "Step", "UNARY_CODE", "compile", "plan_einsum",
]  # fmt: skip
