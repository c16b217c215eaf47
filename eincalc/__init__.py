"""eincalc: an Einstein-notation tensor calculus compiler.

Build tensor expressions (from NumPy-syntax strings, the MatrixCalculus.org language or
Python operators), differentiate them symbolically, and evaluate or compile them.
"""

__version__ = "0.1.0"  # first: submodules (codegen) read it while the package initialises

from eincalc import optim
from eincalc.accumulation import TraceTable, trace_table
from eincalc.calling import Signature, signature
from eincalc.codegen import CompiledFunction, compile
from eincalc.convolution import avg_pool1d, avg_pool2d, conv1d, conv2d, max_pool1d, max_pool2d, shift, windows
from eincalc.costmodel import CostReport, cost
from eincalc.diff import ELIMINATION_ORDERS, derivative, grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp
from eincalc.errors import (
    ArgumentError,
    DomainError,
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
from eincalc.expr import Add, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var
from eincalc.graph import dump, topo_order
from eincalc.indexing import concatenate, expand_dims, stack
from eincalc.interpreter import evaluate
from eincalc.latex import latex
from eincalc.linalg import cholesky, eigh, eigvalsh, kron, pinv
from eincalc.memory import keep_freed_memory
from eincalc.objective import Objective, objective
from eincalc.ops import (
    abs,
    adjugate,
    arccos,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    array,
    broadcast_to,
    clip,
    cos,
    cosh,
    det,
    diag,
    divide,
    dot,
    einsum,
    equal,
    erf,
    exp,
    expm1,
    eye,
    greater,
    greater_equal,
    identity,
    inv,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    log_softmax,
    logdet,
    logsumexp,
    matmul,
    matrix,
    maximum,
    mean,
    minimum,
    multiply,
    norm1,
    norm2,
    not_equal,
    ones,
    outer,
    power,
    reciprocal,
    relu,
    scalar,
    sigmoid,
    sign,
    sin,
    sinh,
    softmax,
    softplus,
    solve,
    sqrt,
    square,
    step,
    sum,
    tan,
    tanh,
    tensor,
    trace,
    transpose,
    tril,
    triu,
    vector,
    where,
    zeros,
)
from eincalc.parser import parse
from eincalc.printing import einsum_form, to_numpy_syntax
from eincalc.reductions import max, min, prod, std, var  # noqa: A004 - NumPy's names
from eincalc.rewrite import SimplifyOptions, simplify
from eincalc.structure import (
    Compressed,
    CompressedSum,
    Kronecker,
    LowRank,
    StructuredSum,
    StructuredTensor,
    compress,
)
from eincalc.viz import draw, render_svg, to_dot, to_networkx

__all__ = [
    "Compressed", "CompressedSum", "Kronecker", "LowRank", "StructuredSum", "CostReport", "ELIMINATION_ORDERS",
    "SimplifyOptions", "StructuredTensor", "compress", "cost",
    "derivative", "grad", "hessian", "jacobian", "simplify", "CompiledFunction", "compile", "Objective",
    "objective", "TraceTable", "draw", "latex", "render_svg", "to_dot", "to_networkx", "trace_table", "Add",
    "Const", "Delta", "DomainError", "EincalcError", "Einsum", "Elementwise", "IndexMismatchError", "Node",
    "NotDifferentiableError", "ParseError", "ShapeError", "SizeError", "Unary", "UnknownNameError",
    "UnsupportedNodeError", "Var", "abs", "cos", "det", "diag", "divide", "dot", "dump", "einsum", "einsum_form",
    "evaluate", "exp", "eye", "identity", "inv", "log", "log_softmax", "logdet", "logsumexp", "matmul", "matrix",
    "mean", "multiply", "norm1", "norm2", "ones", "outer", "parse", "relu", "scalar", "sigmoid", "sign", "sin",
    "softmax", "softplus", "sqrt", "step", "sum", "tan", "tanh", "tensor", "to_numpy_syntax", "topo_order", "trace",
    "transpose", "vector", "zeros", "arccos", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "clip", "cosh",
    "equal", "erf", "expm1", "greater", "greater_equal", "less", "less_equal", "log10", "log1p", "log2", "max",
    "maximum", "min", "minimum", "not_equal", "power", "prod", "reciprocal", "sinh", "square", "std", "var",
    "where", "broadcast_to", "concatenate", "expand_dims", "stack", "array", "solve", "tril", "triu",
    "hvp", "jvp", "value_and_grad", "vjp", "Signature", "signature", "ArgumentError",
    "Shift", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "max_pool1d", "max_pool2d", "shift", "windows",
    "LimitError", "adjugate", "optim", "cholesky", "eigh", "eigvalsh", "kron", "pinv", "keep_freed_memory",
]  # fmt: skip
