"""eincalc: an Einstein-notation tensor calculus compiler.

Build tensor expressions (from NumPy-syntax strings, the MatrixCalculus.org language or
Python operators), differentiate them symbolically, and evaluate or compile them.
"""

__version__ = "0.1.0"  # first: submodules (codegen) read it while the package initialises

from eincalc.accumulation import TraceTable, trace_table
from eincalc.calling import Signature, signature
from eincalc.codegen import CompiledFunction, compile
from eincalc.costmodel import CostReport, cost
from eincalc.diff import ELIMINATION_ORDERS, derivative, grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp
from eincalc.errors import (
    ArgumentError,
    EincalcError,
    IndexMismatchError,
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
    "abs", "Add", "ArgumentError", "compile", "CompiledFunction", "compress", "Compressed", "Const", "cos", "cost",
    "CostReport", "Delta", "derivative", "det", "diag", "divide", "dot", "draw", "dump", "EincalcError", "Einsum",
    "einsum", "einsum_form", "Elementwise", "ELIMINATION_ORDERS", "evaluate", "exp", "eye", "grad", "hessian",
    "hvp", "identity", "IndexMismatchError", "inv", "jacobian", "jvp", "latex", "log", "log_softmax", "logdet",
    "logsumexp", "matmul", "matrix", "mean", "multiply", "Node", "norm1", "norm2", "NotDifferentiableError",
    "Objective", "objective", "ones", "outer", "parse", "ParseError", "relu", "render_svg", "scalar", "ShapeError",
    "sigmoid", "sign", "signature", "Signature", "simplify", "SimplifyOptions", "sin", "SizeError", "softmax",
    "softplus", "sqrt", "step", "StructuredTensor", "sum", "tan", "tanh", "tensor", "to_dot", "to_networkx",
    "to_numpy_syntax", "topo_order", "trace", "trace_table", "TraceTable", "transpose", "Unary", "UnknownNameError",
    "UnsupportedNodeError", "value_and_grad", "Var", "vector", "vjp", "zeros",
]  # fmt: skip

