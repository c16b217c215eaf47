"""The registry of element-wise functions (``ELEMENTWISE``): one entry per function.

An entry is everything eincalc knows about a function: its NumPy evaluation, its SymPy
definition (the oracle for tests), its partial derivatives *as expressions* (so
derivatives of every order follow from the rules of the node kinds, the JAX ``defjvp``
pattern), and how it is spelled as generated NumPy code, in LaTeX and in the NumPy
dialect (``syntax``, which the parser reads back). Adding a function is one entry here;
the printers, the parser's function table and the registry-parametrised tests pick it up.

Most functions take one argument; ``maximum``, ``minimum``, ``where``, ``arctan2``,
``power`` and the comparisons take several (of equal dims; :mod:`eincalc.ops` broadcasts).

Subgradient conventions at points where a function is not differentiable (those of
PyTorch and JAX, so that results agree with theirs; they are conventions, not maths):

* ``relu'(0) = 0`` and ``abs'(0) = sign(0) = 0``;
* ``maximum(a, b)`` and ``minimum(a, b)`` split a tie evenly: each argument gets ½ (JAX's
  ``lax.max``), so ``clip`` (built from them) does too;
* ``step(0) = 0`` (so ``relu' = step``); the comparisons, ``sign`` and ``step`` have
  derivative 0 everywhere (the jump is ignored);
* ``where(c, a, b)`` passes the derivative to the branch ``c`` selects, never through ``c``.

Non-differentiable points give IEEE values (``inf``, ``nan``) and never raise.
General (not entry-wise) functions live in :mod:`eincalc.tensor_functions`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from eincalc.errors import NotDifferentiableError, UnknownNameError
from eincalc.expr import Node


def _ops() -> Any:
    from eincalc import ops

    return ops


def _alg() -> Any:
    from eincalc import algebra

    return algebra


@dataclass(frozen=True)
class ElementwiseFn:
    r"""An entry-wise function of ``arity`` arguments.

    Attributes:
        name: the registry key and the function's name in the NumPy dialect.
        numpy: ``numpy(*args, param)``, the reference evaluation.
        sympy: ``sympy(*args, param)``, the SymPy definition (test oracle).
        deriv: ``deriv(*args, param)``: f'(x) as an expression for one argument, the
            tuple of partials ∂f/∂argₖ for several.
        arity: the number of arguments.
        code: generated NumPy code, ``{0}``, ``{1}`` … standing for the arguments
            (default ``numpy.<name>({0}, …)``); ``code_prec`` is its precedence, one of
            ``atom`` (arguments appear inside call parentheses), ``product``, ``compare``.
        imports: the modules ``code`` uses.
        latex: LaTeX, same placeholders (default ``\operatorname{<name>}({0}, …)``);
            ``latex_prec`` as ``code_prec`` (plus ``power``).
        syntax: NumPy-dialect text, same placeholders (default ``<name>({0}, …)``);
            ``syntax_prec`` as ``code_prec``.
        has_param: the function takes a number (``pow``'s exponent).
        domain: where tests may sample each argument: ``real``, ``positive``, ``nonzero``,
            ``unit`` (-1 < x < 1) or ``condition`` (0 or 1); one string for all arguments
            or one per argument.
        undefined_at: points where the derivative is mathematically undefined (a
            convention is used there; finite differences must keep away). For several
            arguments, ``(0.0,)`` means "where the arguments are equal".
        image: bounds ``(lo, hi)`` of the values for any real arguments where defined
            (sigmoid: ``(0, 1)``); :mod:`eincalc.signs` proves signs with them.
    """

    name: str
    numpy: Callable[..., Any]
    sympy: Callable[..., Any]
    deriv: Callable[..., Any]
    arity: int = 1
    code: str = ""
    code_prec: str = "atom"
    imports: tuple[str, ...] = ("numpy",)
    latex: str = ""
    latex_prec: str = "atom"
    syntax: str = ""
    syntax_prec: str = "atom"
    has_param: bool = False
    domain: str | tuple[str, ...] = "real"
    undefined_at: tuple[float, ...] = ()
    image: tuple[float, float] = (-math.inf, math.inf)

    def __post_init__(self) -> None:
        slots = ", ".join(f"{{{k}}}" for k in range(self.arity))
        if not self.code:
            object.__setattr__(self, "code", f"numpy.{self.name}({slots})")
        if not self.latex:
            name = self.name.replace("_", r"\_")
            object.__setattr__(self, "latex", rf"\operatorname{{{{{name}}}}}({slots})")  # {{ }}: format-escaped
        if not self.syntax:
            object.__setattr__(self, "syntax", f"{self.name}({slots})")

    def partials(self, args: tuple[Node, ...], param: float | None = None) -> tuple[Node, ...]:
        """∂f/∂argₖ for every argument, each of the arguments' dims."""
        found = self.deriv(*args, param)
        return (found,) if self.arity == 1 else tuple(found)

    def domains(self) -> tuple[str, ...]:
        """The sampling domain of each argument."""
        return (self.domain,) * self.arity if isinstance(self.domain, str) else tuple(self.domain)

    def evaluate(self, args: Any, param: float | None = None) -> Any:
        """The NumPy value for the argument arrays ``args``, as floats, without warnings."""
        with np.errstate(all="ignore"):
            return np.asarray(self.numpy(*args, param), dtype=float)


def _sigmoid(x: Any) -> Any:
    # Two branches so that neither exp overflows (stable at |x| = 1000).
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x, dtype=float)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _np(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` in the ``(*args, param)`` signature of the registry (for functions without a parameter)."""
    return lambda *a: fn(*a[:-1])


_sp = _np  # the same adapter, named for SymPy entries so each row reads "NumPy, SymPy, derivative"
_d = _np  # and for derivative rules


def _one_minus_sq(y: Node) -> Node:
    return 1 - y * y


def _tie_split(a: Node, b: Node) -> Node:
    """1 where a > b, 0 where a < b, ½ at a tie: ``(1 + sign(a - b)) / 2`` (sign(0) = 0 everywhere)."""
    return 0.5 + 0.5 * _ops().sign(a - b)


def _zero(*args: Node) -> Any:
    zeros = tuple(_alg().zeros(args[0].dims) for _ in args)
    return zeros[0] if len(args) == 1 else zeros


def _indicator(condition: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """NumPy 0/1 values of a comparison."""
    return lambda a, b, p: np.asarray(condition(a, b), dtype=float)


def _sympy_indicator(relation: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    return lambda a, b, p: sympy.Piecewise((1, relation(a, b)), (0, True))


_erf_np = np.vectorize(math.erf, otypes=[float])
_LN2, _LN10 = math.log(2.0), math.log(10.0)

ELEMENTWISE: dict[str, ElementwiseFn] = {}


def register_elementwise(fn: ElementwiseFn) -> None:
    """Add an element-wise function; a name can be registered once."""
    if fn.name in ELEMENTWISE:
        raise KeyError(f"element-wise function {fn.name!r} is already registered")
    ELEMENTWISE[fn.name] = fn


def _fn(
    name: str, numpy: Callable[[Any], Any], sym: Callable[[Any], Any], deriv: Callable[[Node], Any], **kw: Any
) -> ElementwiseFn:
    """An entry of one argument without a parameter (most of the table)."""
    return ElementwiseFn(name, _np(numpy), _sp(sym), _d(deriv), **kw)


def _comparison(name: str, relation: Callable[[Any, Any], Any], symbol: str, latex: str) -> ElementwiseFn:
    return ElementwiseFn(
        name,
        _indicator(relation),
        _sympy_indicator(relation),
        lambda a, b, p: _zero(a, b),
        arity=2,
        code=f"numpy.{name}({{0}}, {{1}}).astype(float)",
        latex=rf"[{{0}} {latex} {{1}}]",
        latex_prec="atom",
        syntax=f"{{0}} {symbol} {{1}}",
        syntax_prec="compare",
        undefined_at=(0.0,),
        image=(0.0, 1.0),
    )


for _entry in [
    _fn("exp", np.exp, sympy.exp, lambda x: _ops().exp(x), latex=r"\exp({0})", image=(0.0, math.inf)),
    _fn("log", np.log, sympy.log, lambda x: x**-1, latex=r"\log({0})", domain="positive"),
    _fn("sin", np.sin, sympy.sin, lambda x: _ops().cos(x), latex=r"\sin({0})", image=(-1.0, 1.0)),
    _fn("cos", np.cos, sympy.cos, lambda x: -_ops().sin(x), latex=r"\cos({0})", image=(-1.0, 1.0)),
    _fn("tan", np.tan, sympy.tan, lambda x: 1 + _ops().tan(x) ** 2, latex=r"\tan({0})"),
    _fn("tanh", np.tanh, sympy.tanh, lambda x: _one_minus_sq(_ops().tanh(x)), latex=r"\tanh({0})", image=(-1.0, 1.0)),
    _fn(
        "sigmoid",
        _sigmoid,
        lambda x: 1 / (1 + sympy.exp(-x)),
        lambda x: _ops().sigmoid(x) * (1 - _ops().sigmoid(x)),
        # tanh never overflows; as fast as 1 / (1 + exp(-x)) and without its warnings
        code="0.5 * (1.0 + numpy.tanh(0.5 * {0}))",
        code_prec="product",
        latex=r"\sigma({0})",
        image=(0.0, 1.0),
    ),
    _fn(
        "softplus",
        lambda x: np.logaddexp(0.0, x),
        lambda x: sympy.log(1 + sympy.exp(x)),
        lambda x: _ops().sigmoid(x),
        code="numpy.logaddexp(0.0, {0})",
        image=(0.0, math.inf),
    ),
    _fn(
        "relu",
        lambda x: np.maximum(x, 0.0),
        lambda x: sympy.Max(x, 0),
        lambda x: _ops().step(x),  # relu'(0) = step(0) = 0, as in PyTorch and JAX
        code="numpy.maximum({0}, 0.0)",
        undefined_at=(0.0,),
        image=(0.0, math.inf),
    ),
    _fn(
        "step",
        # 1 where x > 0, else 0; nan gives 0 (a comparison with nan is false), as JAX's relu
        # gradient does. One comparison pass: heaviside (which keeps nan) is 3× slower, and
        # sign then maximum 2.5×, on a convolution's pre-activations.
        lambda x: np.greater(x, 0.0).astype(float),
        lambda x: sympy.Heaviside(x, 0),
        _zero,
        code="numpy.greater({0}, 0.0).astype(float)",
        undefined_at=(0.0,),
        image=(0.0, 1.0),
    ),
    _fn(
        "abs",
        np.abs,
        sympy.Abs,
        lambda x: _ops().sign(x),
        latex=r"\lvert {0} \rvert",
        domain="nonzero",
        undefined_at=(0.0,),
        image=(0.0, math.inf),
    ),
    _fn(
        "sign",
        np.sign,
        sympy.sign,
        _zero,
        latex=r"\operatorname{{sign}}({0})",
        domain="nonzero",
        undefined_at=(0.0,),
        image=(-1.0, 1.0),
    ),
    _fn(
        "sqrt",
        np.sqrt,
        sympy.sqrt,
        lambda x: 0.5 / _ops().sqrt(x),
        latex=r"\sqrt{{{0}}}",
        domain="positive",
        image=(0.0, math.inf),
    ),
    _fn(
        "log1p",
        np.log1p,
        lambda x: sympy.log(1 + x),
        lambda x: (1 + x) ** -1,
        latex=r"\log(1 + {0})",
        latex_prec="atom",
        domain="positive",
    ),
    _fn(
        "expm1",
        np.expm1,
        lambda x: sympy.exp(x) - 1,
        lambda x: _ops().exp(x),
        latex=r"(\exp({0}) - 1)",
        image=(-1.0, math.inf),
    ),
    _fn("sinh", np.sinh, sympy.sinh, lambda x: _ops().cosh(x), latex=r"\sinh({0})"),
    _fn("cosh", np.cosh, sympy.cosh, lambda x: _ops().sinh(x), latex=r"\cosh({0})", image=(1.0, math.inf)),
    _fn(
        "arctan",
        np.arctan,
        sympy.atan,
        lambda x: (1 + x * x) ** -1,
        latex=r"\arctan({0})",
        image=(-math.pi / 2, math.pi / 2),
    ),
    _fn(
        "arcsin",
        np.arcsin,
        sympy.asin,
        lambda x: (1 - x * x) ** -0.5,
        latex=r"\arcsin({0})",
        domain="unit",
        image=(-math.pi / 2, math.pi / 2),
    ),
    _fn(
        "arccos",
        np.arccos,
        sympy.acos,
        lambda x: -((1 - x * x) ** -0.5),
        latex=r"\arccos({0})",
        domain="unit",
        image=(0.0, math.pi),
    ),
    _fn("arcsinh", np.arcsinh, sympy.asinh, lambda x: (1 + x * x) ** -0.5, latex=r"\operatorname{{arsinh}}({0})"),
    _fn(
        "arctanh",
        np.arctanh,
        sympy.atanh,
        lambda x: (1 - x * x) ** -1,
        latex=r"\operatorname{{artanh}}({0})",
        domain="unit",
    ),
    _fn(
        "erf",
        _erf_np,
        sympy.erf,
        lambda x: (2 / math.sqrt(math.pi)) * _ops().exp(-(x * x)),
        # math.erf is exact and NumPy has no erf; SciPy is not a dependency of generated code
        code="numpy.vectorize(math.erf, otypes=[float])({0})",
        imports=("math", "numpy"),
        latex=r"\operatorname{{erf}}({0})",
        image=(-1.0, 1.0),
    ),
    _fn(
        "log2",
        np.log2,
        lambda x: sympy.log(x, 2),
        lambda x: (1 / _LN2) * x**-1,
        latex=r"\log_2({0})",
        domain="positive",
    ),
    _fn(
        "log10",
        np.log10,
        lambda x: sympy.log(x, 10),
        lambda x: (1 / _LN10) * x**-1,
        latex=r"\log_{{10}}({0})",
        domain="positive",
    ),
    ElementwiseFn(
        "pow",
        lambda x, p: np.power(x, p),
        lambda x, p: x ** (sympy.Integer(int(p)) if p is not None and float(p).is_integer() else sympy.Float(p)),
        lambda x, p: p * _alg().elementwise("pow", x, p - 1),
        code="",  # depends on the exponent: the printers special-case it
        has_param=True,
        domain="positive",
    ),
    ElementwiseFn(
        "power",
        lambda x, y, p: np.power(x, y),
        lambda x, y, p: x**y,
        lambda x, y, p: (y * _ops().power(x, y - 1), _ops().log(x) * _ops().power(x, y)),
        arity=2,
        latex="{0}^{{{1}}}",
        latex_prec="power",
        syntax="{0} ** {1}",
        syntax_prec="power",
        domain=("positive", "real"),
    ),
    ElementwiseFn(
        "maximum",
        lambda a, b, p: np.maximum(a, b),
        lambda a, b, p: sympy.Max(a, b),
        # a tie splits the derivative evenly, as JAX's lax.max does
        lambda a, b, p: (_tie_split(a, b), _tie_split(b, a)),
        arity=2,
        latex=r"\max({0}, {1})",
        undefined_at=(0.0,),
    ),
    ElementwiseFn(
        "minimum",
        lambda a, b, p: np.minimum(a, b),
        lambda a, b, p: sympy.Min(a, b),
        lambda a, b, p: (_tie_split(b, a), _tie_split(a, b)),
        arity=2,
        latex=r"\min({0}, {1})",
        undefined_at=(0.0,),
    ),
    ElementwiseFn(
        "where",
        lambda c, a, b, p: np.where(c != 0, a, b),
        lambda c, a, b, p: sympy.Piecewise((a, sympy.Ne(c, 0)), (b, True)),
        lambda c, a, b, p: (
            _alg().zeros(c.dims),
            _ops().where(c, 1.0, 0.0),
            _ops().where(c, 0.0, 1.0),
        ),
        arity=3,
        code="numpy.where({0}, {1}, {2})",
        latex=r"\begin{{cases}} {1} & \text{{if }} {0} \\ {2} & \text{{otherwise}} \end{{cases}}",
        domain=("condition", "real", "real"),
    ),
    ElementwiseFn(
        "arctan2",
        lambda y, x, p: np.arctan2(y, x),
        lambda y, x, p: sympy.atan2(y, x),
        lambda y, x, p: (x * (x * x + y * y) ** -1, -y * (x * x + y * y) ** -1),
        arity=2,
        latex=r"\operatorname{{atan2}}({0}, {1})",
        domain=("nonzero", "nonzero"),
    ),
    _comparison("greater", lambda a, b: a > b, ">", ">"),
    _comparison("greater_equal", lambda a, b: a >= b, ">=", r"\geq"),
    _comparison("less", lambda a, b: a < b, "<", "<"),
    _comparison("less_equal", lambda a, b: a <= b, "<=", r"\leq"),
    _comparison("equal", lambda a, b: sympy.Eq(a, b) if isinstance(a, sympy.Basic) else np.equal(a, b), "==", "="),
    _comparison(
        "not_equal", lambda a, b: sympy.Ne(a, b) if isinstance(a, sympy.Basic) else np.not_equal(a, b), "!=", r"\neq"
    ),
]:
    register_elementwise(_entry)

COMPARISONS: tuple[str, ...] = ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")
"""The comparison entries: 0/1 values, derivative 0."""


def get_elementwise(name: str) -> ElementwiseFn:
    """The registry entry ``name``, or an error listing the known names."""
    try:
        return ELEMENTWISE[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown element-wise function {name!r}; known: {', '.join(sorted(ELEMENTWISE))}"
        ) from None


def not_differentiable(what: str, mode: str) -> NotDifferentiableError:
    """The error for a node kind without a rule in ``mode``."""
    return NotDifferentiableError(f"no {mode}-mode derivative rule for {what}")


from eincalc.tensor_functions import UNARY, UnaryFn, get_unary, register_unary  # noqa: E402 - re-exported

__all__ = [
    "COMPARISONS", "ELEMENTWISE", "ElementwiseFn", "UNARY", "UnaryFn", "get_elementwise", "get_unary",
    "not_differentiable", "register_elementwise", "register_unary",
]  # fmt: skip
