"""eincalc: an Einstein-notation tensor calculus compiler.

Build tensor expressions (from NumPy-syntax strings, the MatrixCalculus.org language or
Python operators), differentiate them symbolically, and evaluate or compile them.
"""

__version__ = "0.1.0"  # first: submodules (codegen) read it while the package initialises

from eincalc.accumulation import TraceTable, trace_table
from eincalc.codegen import CompiledFunction, compile
from eincalc.costmodel import CostReport, cost
from eincalc.diff import ELIMINATION_ORDERS, derivative, grad, hessian, jacobian
from eincalc.errors import (
    EincalcError,
    IndexMismatchError,
    LimitError,
    NotDifferentiableError,
    ParseError,
    ShapeError,
    SizeError,
    UnknownNameError,
    UnsupportedNodeError,
)
from eincalc.expr import Add, Const, Delta, Einsum, Elementwise, Node, Unary, Var
from eincalc.graph import dump, topo_order
from eincalc.interpreter import evaluate
from eincalc.latex import latex
from eincalc.objective import Objective, objective
from eincalc.ops import (
    abs,
    adjugate,
    cos,
    det,
    diag,
    divide,
    dot,
    einsum,
    exp,
    eye,
    identity,
    inv,
    log,
    log_softmax,
    logdet,
    logsumexp,
    matmul,
    matrix,
    mean,
    multiply,
    norm1,
    norm2,
    ones,
    outer,
    relu,
    scalar,
    sigmoid,
    sign,
    sin,
    softmax,
    softplus,
    sqrt,
    step,
    sum,
    tan,
    tanh,
    tensor,
    trace,
    transpose,
    vector,
    zeros,
)
from eincalc.parser import parse
from eincalc.printing import einsum_form, to_numpy_syntax
from eincalc.rewrite import SimplifyOptions, simplify
from eincalc.structure import Compressed, StructuredTensor, compress
from eincalc.viz import draw, render_svg, to_dot, to_networkx

__all__ = [
    "Compressed", "CostReport", "ELIMINATION_ORDERS", "SimplifyOptions", "StructuredTensor", "compress", "cost",
    "derivative", "grad", "hessian", "jacobian", "simplify", "CompiledFunction", "compile", "Objective", "objective",
    "TraceTable", "draw", "latex", "render_svg", "to_dot", "to_networkx", "trace_table",
    "Add", "Const", "Delta", "EincalcError", "Einsum", "Elementwise", "IndexMismatchError", "LimitError", "Node",
    "NotDifferentiableError", "ParseError", "ShapeError", "SizeError", "Unary", "UnknownNameError",
    "UnsupportedNodeError", "Var", "abs", "adjugate", "cos", "det", "diag", "divide", "dot", "dump", "einsum",
    "einsum_form", "evaluate", "exp", "eye", "identity", "inv", "log", "log_softmax", "logdet",
    "logsumexp", "matmul", "matrix", "mean", "multiply", "norm1", "norm2", "ones", "outer", "parse",
    "relu", "scalar", "sigmoid", "sign", "sin", "softmax", "softplus", "sqrt", "step", "sum", "tan",
    "tanh", "tensor", "to_numpy_syntax", "topo_order", "trace", "transpose", "vector", "zeros",
]  # fmt: skip

