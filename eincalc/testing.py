"""Public test helpers: random expressions with NumPy references, finite differences, checks.

Used by eincalc's own test suites and available to users who extend eincalc (a new
element-wise function, a printer, a backend) and want the same fuzzing:

* :func:`random_expr` / :func:`random_case` build a random, well-formed expression over a
  few declared variables with random symbolic dims. :func:`random_case` also returns a
  *reference*: a plain NumPy function built alongside the expression, operation by
  operation, with no use of eincalc's interpreter, so it is an independent oracle.
* :func:`random_sizes` and :func:`random_arrays` give concrete sizes and values.
* :func:`numeric_jacobian` is a central-difference Jacobian in eincalc's layout
  (output dims first, then input dims).
* :func:`check_close` compares arrays and fails with a readable message.
* :func:`expressions` is a hypothesis strategy of :class:`RandomCase` (hypothesis is
  imported only when it is called).

Everything is deterministic for a given seed. Nothing here differentiates or simplifies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import eincalc as ec
from eincalc import algebra, language, ops
from eincalc import dims as dimsmod
from eincalc._types import Dim, Dims
from eincalc.expr import Node
from eincalc.functions import COMPARISONS, ELEMENTWISE

Values = Mapping[str, np.ndarray]
Reference = Callable[[Values], Any]
Pair = tuple[Node, Reference]

DIM_NAMES: tuple[str, ...] = ("m", "n", "k", "p", "q", "r")
"""Names the generator draws symbolic dims from."""

POWERS: tuple[float, ...] = (2.0, 3.0, -1.0, 0.5, -0.5, 1.5)
"""Exponents the generator uses for ``x ** c`` (always on a positive base)."""

DISCONTINUOUS: tuple[str, ...] = ("sign", "step", "arctan2")
"""Element-wise functions with a jump; their arguments are shifted by ``JUMP_OFFSET``.

arctan2 jumps by 2π across y = 0 for x < 0, where -relu(w) gives -0.0 in one evaluation
order and +0.0 in another."""

JUMP_OFFSET = 0.1234567


def _expit(x: Any) -> Any:
    from scipy.special import expit

    return expit(x)


# Independent NumPy definitions of the element-wise functions (not eincalc's own table).
# A function registered later without an entry here falls back to its SymPy definition.
_REFERENCE_ELEMENTWISE: dict[str, Callable[..., Any]] = {
    "exp": lambda x, p: np.exp(x),
    "log": lambda x, p: np.log(x),
    "sin": lambda x, p: np.sin(x),
    "cos": lambda x, p: np.cos(x),
    "tan": lambda x, p: np.tan(x),
    "tanh": lambda x, p: np.tanh(x),
    "sigmoid": lambda x, p: _expit(x),
    "softplus": lambda x, p: np.logaddexp(0.0, x),
    "relu": lambda x, p: np.where(x > 0, x, 0.0),
    "step": lambda x, p: np.where(x > 0, 1.0, 0.0),
    "abs": lambda x, p: np.abs(x),
    "sign": lambda x, p: np.sign(x),
    "sqrt": lambda x, p: np.sqrt(x),
    "pow": lambda x, p: np.power(x, p),
    "log1p": lambda x, p: np.log(1.0 + x),
    "expm1": lambda x, p: np.exp(x) - 1.0,
    "sinh": lambda x, p: (np.exp(x) - np.exp(-x)) / 2,
    "cosh": lambda x, p: (np.exp(x) + np.exp(-x)) / 2,
    "arctan": lambda x, p: np.arctan(x),
    "arcsin": lambda x, p: np.arcsin(x),
    "arccos": lambda x, p: np.arccos(x),
    "arcsinh": lambda x, p: np.log(x + np.sqrt(x * x + 1.0)),
    "arctanh": lambda x, p: 0.5 * np.log((1.0 + x) / (1.0 - x)),
    "log2": lambda x, p: np.log(x) / np.log(2.0),
    "log10": lambda x, p: np.log(x) / np.log(10.0),
    "power": lambda x, y, p: np.exp(y * np.log(x)),
    "maximum": lambda a, b, p: np.where(a >= b, a, b),
    "minimum": lambda a, b, p: np.where(a <= b, a, b),
    "where": lambda c, a, b, p: np.where(c != 0, a, b),
    "arctan2": lambda y, x, p: np.angle(x + 1j * y),
    "greater": lambda a, b, p: np.asarray(a > b, dtype=float),
    "greater_equal": lambda a, b, p: np.asarray(a >= b, dtype=float),
    "less": lambda a, b, p: np.asarray(a < b, dtype=float),
    "less_equal": lambda a, b, p: np.asarray(a <= b, dtype=float),
    "equal": lambda a, b, p: np.asarray(a == b, dtype=float),
    "not_equal": lambda a, b, p: np.asarray(a != b, dtype=float),
}


def sample_domain(domain: str, rng: np.random.Generator, shape: tuple[int, ...] | int) -> np.ndarray:
    """Random points inside an element-wise function's domain (see ``ElementwiseFn.domain``).

    Points keep away from 0 (where abs, sign and relu have their kink) and from ±1 (where
    arcsin and arctanh end): ``real`` and ``nonzero`` draw ±[0.3, 2], ``positive`` [0.3, 2],
    ``unit`` ±[0.1, 0.8], ``condition`` 0 or 1.
    """
    if domain == "condition":
        return rng.integers(0, 2, size=shape).astype(float)
    if domain == "unit":
        return rng.uniform(0.1, 0.8, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    pts = rng.uniform(0.3, 2.0, size=shape)
    if domain == "positive":
        return pts
    return pts * rng.choice([-1.0, 1.0], size=shape)


def reference_elementwise(name: str) -> Callable[..., Any]:
    """A NumPy implementation of element-wise function ``name`` written independently of eincalc.

    Functions without a hand-written entry are lambdified from their SymPy definition in
    :data:`eincalc.functions.ELEMENTWISE`.
    """
    if name in _REFERENCE_ELEMENTWISE:
        return _REFERENCE_ELEMENTWISE[name]
    import sympy

    entry = ELEMENTWISE[name]
    ts = [sympy.Symbol(f"t{k}", real=True) for k in range(entry.arity)]

    def via_sympy(*args: Any) -> Any:
        *xs, p = args
        fn = sympy.lambdify(ts, entry.sympy(*ts, p), modules="numpy")
        return np.vectorize(lambda *v: float(fn(*v)))(*(np.asarray(x, dtype=float) for x in xs))

    return via_sympy


def _softmax(x: Any, axis: int) -> Any:
    from scipy.special import softmax

    return softmax(x, axis=axis)


def _log_softmax(x: Any, axis: int) -> Any:
    from scipy.special import log_softmax

    return log_softmax(x, axis=axis)


def _logsumexp(x: Any, axis: int | tuple[int, ...] | None = None) -> Any:
    from scipy.special import logsumexp

    return logsumexp(x, axis=axis)


# --------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RandomCase:
    """A random expression with everything needed to test it.

    Attributes:
        expr: the expression.
        variables: name -> dims of the variables ``expr`` depends on (what
            :func:`eincalc.evaluate` needs; folding such as ``x - x → 0`` can drop some).
        inputs: name -> dims of every variable used while building, a superset of
            ``variables``; ``reference`` reads these.
        reference: ``reference(values)`` computes the expression's value with plain NumPy
            from a mapping name -> array covering ``inputs``.
        dims: the dim names the expression was built over.
        seed: the seed it was built from, when known (to reproduce a failure).
    """

    expr: Node
    variables: dict[str, Dims]
    inputs: dict[str, Dims]
    reference: Reference = field(repr=False)
    dims: Dims = ()
    seed: int | None = None

    def declarations(self) -> dict[str, Dims]:
        """Keyword declarations for :func:`eincalc.parse` (``ec.parse(text, **case.declarations())``)."""
        return dict(self.variables)


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


class _Builder:
    """Builds (node, reference) pairs of requested dims, top-down, from a seeded generator."""

    def __init__(self, rng: np.random.Generator, pool: Dims, nonsmooth: bool, functions: Sequence[str] | None) -> None:
        self.rng = rng
        self.pool = pool
        self.nonsmooth = nonsmooth
        names = list(ELEMENTWISE) if functions is None else list(functions)
        for name in names:
            if name not in ELEMENTWISE:
                raise KeyError(f"unknown element-wise function {name!r}; known: {', '.join(ELEMENTWISE)}")
        # Comparisons (and where, whose condition is one) jump: where two sides tie to
        # rounding, eincalc and the reference may take different branches, an O(1)
        # difference. Dedicated tests cover them; random expressions leave them out.
        names = [n for n in names if n not in COMPARISONS and "condition" not in ELEMENTWISE[n].domains()]
        if not nonsmooth:
            names = [n for n in names if not (ELEMENTWISE[n].undefined_at and ELEMENTWISE[n].domain == "real")]
        self.functions = names
        self.vars: dict[str, Node] = {}
        self._declare()

    # -- randomness helpers -----------------------------------------------------------
    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def dim(self) -> Dim:
        return self.pick(self.pool)

    def lower(self, depth: int) -> int:
        """Depth of a secondary child: anything below ``depth``."""
        return int(self.rng.integers(0, depth)) if depth > 0 else 0

    # -- variables --------------------------------------------------------------------
    def _declare(self) -> None:
        """One vector per dim (so every leaf can be built), one or two matrices, maybe a scalar."""
        for name, d in zip(("u", "v", "w"), self.pool):
            self.vars[name] = ec.vector(name, d)
        for name in ("A", "B")[: 1 + int(self.rng.integers(2))]:
            self.vars[name] = ec.matrix(name, self.dim(), self.dim())
        if self.chance(0.5):
            self.vars["s"] = ec.scalar("s")

    def var(self, name: str) -> Pair:
        return self.vars[name], lambda v, name=name: v[name]

    def leaf(self, dims: Dims) -> Pair:
        """A variable (or a direct construction from variables) of ``dims``."""
        options: list[Callable[[], Pair]] = []
        for name, node in self.vars.items():
            if node.dims == dims:
                options.append(lambda name=name: self.var(name))
            elif len(dims) == 2 and node.dims == dims[::-1]:
                options.append(lambda name=name: self.transpose(self.var(name)))
        if len(dims) == 0:
            vectors = [n for n, node in self.vars.items() if node.ndim == 1]
            options.append(lambda: self.apply(ec.sum, np.sum, self.var(self.pick(vectors))))
            options.append(lambda: self.binary(ec.matmul, np.matmul, *(2 * [self.var(self.pick(vectors))])))
        if len(dims) == 2:
            options.append(lambda: self.binary(ec.outer, np.multiply.outer, self.leaf(dims[:1]), self.leaf(dims[1:])))
        return self.pick(options)()

    # -- combinators ------------------------------------------------------------------
    @staticmethod
    def apply(op: Callable[..., Node], ref: Callable[..., Any], x: Pair, **kw: Any) -> Pair:
        return op(x[0], **kw), lambda v: ref(x[1](v), **kw)

    @staticmethod
    def binary(op: Callable[..., Node], ref: Callable[..., Any], x: Pair, y: Pair) -> Pair:
        return op(x[0], y[0]), lambda v: ref(x[1](v), y[1](v))

    def transpose(self, x: Pair) -> Pair:
        return x[0].T, lambda v: np.transpose(x[1](v))

    def elementwise(self, name: str, x: Pair, param: float | None = None, *more: Pair) -> Pair:
        fn = reference_elementwise(name)
        xs = (x, *more)
        if name == "pow":
            node = ops.power(x[0], param)
        elif name in language.FUNCTIONS:
            node = language.FUNCTIONS[name].fn(*(p[0] for p in xs))
        else:  # registered after ops was imported: only the smart constructor knows it
            node = algebra.elementwise(name, [p[0] for p in xs], param)
        return node, lambda v: fn(*(p[1](v) for p in xs), param)

    def positive(self, x: Pair) -> Pair:
        """A positive function of ``x`` (for log, sqrt, pow, division)."""
        k = int(self.rng.integers(4))
        if k == 0:  # x*x + 1
            sq = self.binary(ec.multiply, np.multiply, x, x)
            return sq[0] + 1.0, lambda v: sq[1](v) + 1.0
        if k == 1:  # exp(tanh(x))
            return self.elementwise("exp", self.elementwise("tanh", x))
        if k == 2:  # softplus(x) + 1
            sp = self.elementwise("softplus", x)
            return sp[0] + 1.0, lambda v: sp[1](v) + 1.0
        sg = self.elementwise("sigmoid", x)  # sigmoid(x) + 0.5
        return sg[0] + 0.5, lambda v: sg[1](v) + 0.5

    def bounded(self, x: Pair) -> Pair:
        """A function of ``x`` with values in [-1, 1] (for exp and tan, which grow fast)."""
        return self.elementwise(self.pick(("tanh", "sin")), x)

    def spd(self, d: Dim, depth: int) -> Pair:
        """A symmetric positive definite matrix of dims (d, d): M Mᵀ + I, eigenvalues >= 1.

        Half the time M is first squashed with tanh (entries in (-1, 1)), which keeps the
        condition number small whatever the magnitude of M.
        """
        m = self.gen((d, self.dim()), depth)
        if self.chance(0.5):
            m = self.elementwise("tanh", m)
        mm = self.binary(ec.matmul, np.matmul, m, self.transpose(m))
        node = mm[0] + ec.eye(d)
        return node, lambda v: mm[1](v) + np.eye(np.shape(mm[1](v))[0])

    # -- the recursive generator --------------------------------------------------------
    def gen(self, dims: Dims, depth: int) -> Pair:
        """A random (node, reference) of ``dims`` about ``depth`` levels deep."""
        if depth <= 0:
            return self.leaf(dims)
        productions: list[tuple[float, Callable[[Dims, int], Pair | None]]] = [
            (3.0, self.p_elementwise),
            (1.5, self.p_hadamard),
            (1.0, self.p_scale),
            (2.0, self.p_add),
            (1.0, self.p_divide),
            (2.0, self.p_matmul),
            (0.7, self.p_transpose),
            (1.2, self.p_reduce),
            (0.6, self.p_trace_diag),
            (0.6, self.p_outer),
            (1.5, self.p_einsum),
            (1.5, self.p_general),
            (0.4, self.p_norm),
            (0.4, self.p_negate),
        ]
        weights = np.array([w for w, _ in productions])
        for _ in range(50):
            k = int(self.rng.choice(len(productions), p=weights / weights.sum()))
            found = productions[k][1](dims, depth)
            if found is not None:
                return found
        return self.leaf(dims)  # pragma: no cover - every rank has several productions

    def p_elementwise(self, dims: Dims, depth: int) -> Pair | None:
        if not self.functions:
            return None
        name = self.pick(self.functions)
        entry = ELEMENTWISE[name]
        param = self.pick(POWERS) if entry.has_param else None
        args = []
        for k, domain in enumerate(entry.domains()):
            x = self.gen(dims, depth - 1 if k == 0 else self.lower(depth))
            if domain == "positive":
                x = self.positive(x)
            elif domain == "nonzero" and not self.nonsmooth:
                x = self.positive(x)
                if self.chance(0.5):
                    x = self.apply(ops.negative, np.negative, x)
            elif domain == "unit":
                x = self.bounded(x)
                x = 0.9 * x[0], lambda v, x=x: 0.9 * x[1](v)
            elif domain == "condition":
                x = self.binary(ops.greater, lambda a, b: np.asarray(a > b, dtype=float), x, self.gen(dims, 0))
            elif name in DISCONTINUOUS or entry.arity > 1 and entry.undefined_at:
                # A sum of sign()s can be exactly 0 in one evaluation order and 1e-17 in another;
                # the odd offset keeps the argument away from the jump (and ties apart).
                offset = JUMP_OFFSET * (k + 1)
                x = x[0] + offset, lambda v, x=x, offset=offset: x[1](v) + offset
            elif name in ("exp", "tan", "sinh", "cosh", "expm1"):
                x = self.bounded(x)
            args.append(x)
        return self.elementwise(name, args[0], param, *args[1:])

    def p_hadamard(self, dims: Dims, depth: int) -> Pair | None:
        x = self.gen(dims, depth - 1)
        sub = dims[int(self.rng.integers(len(dims) + 1)) :] if self.chance(0.4) else dims
        y = self.gen(sub, self.lower(depth))
        return self.binary(ec.multiply, np.multiply, *((x, y) if self.chance(0.5) else (y, x)))

    def p_scale(self, dims: Dims, depth: int) -> Pair | None:
        x = self.gen(dims, depth - 1)
        c = float(self.pick((2.0, -0.5, 3.0, 0.25)))
        k = int(self.rng.integers(3))
        if k == 0:
            return c * x[0], lambda v: c * x[1](v)
        if k == 1:
            return x[0] / c, lambda v: x[1](v) / c
        return self.binary(ec.multiply, np.multiply, self.gen((), self.lower(depth)), x)

    def p_add(self, dims: Dims, depth: int) -> Pair | None:
        x = self.gen(dims, depth - 1)
        k = int(self.rng.integers(5))
        if k == 0:  # a number
            c = float(self.pick((1.0, -2.0, 0.5)))
            return x[0] + c, lambda v: x[1](v) + c
        if k == 1 and len(dims) == 2 and dims[0] == dims[1]:  # the identity
            return x[0] + ec.eye(dims[0]), lambda v: x[1](v) + np.eye(np.shape(x[1](v))[0])
        sub = dims[int(self.rng.integers(len(dims) + 1)) :] if k == 2 else dims  # broadcast (row-wise, scalar)
        y = self.gen(sub, self.lower(depth))
        pair = (x, y) if self.chance(0.5) else (y, x)
        if self.chance(0.4):
            return self.binary(ops.subtract, np.subtract, *pair)
        return self.binary(ops.add, np.add, *pair)

    def p_divide(self, dims: Dims, depth: int) -> Pair | None:
        x = self.gen(dims, depth - 1)
        sub = dims[int(self.rng.integers(len(dims) + 1)) :] if self.chance(0.4) else dims
        y = self.positive(self.gen(sub, self.lower(depth)))
        return self.binary(ec.divide, np.divide, x, y)

    def p_matmul(self, dims: Dims, depth: int) -> Pair | None:
        k = self.dim()
        if len(dims) == 2:
            left, right = (dims[0], k), (k, dims[1])
        elif len(dims) == 1:
            left, right = ((dims[0], k), (k,)) if self.chance(0.5) else ((k,), (k, dims[0]))
        else:
            left, right = (k,), (k,)
        x, y = self.gen(left, depth - 1), self.gen(right, self.lower(depth))
        op, ref = (ec.dot, np.dot) if self.chance(0.25) else (ec.matmul, np.matmul)
        return self.binary(op, ref, x, y)

    def p_transpose(self, dims: Dims, depth: int) -> Pair | None:
        if len(dims) != 2:
            return None
        x = self.gen(dims[::-1], depth - 1)
        if self.chance(0.3):
            return ec.transpose(x[0]), lambda v: np.transpose(x[1](v))
        return self.transpose(x)

    def p_reduce(self, dims: Dims, depth: int) -> Pair | None:
        op, ref = (ec.mean, np.mean) if self.chance(0.3) else (ec.sum, np.sum)
        if len(dims) == 2:
            return None
        if len(dims) == 0 and self.chance(0.5):
            rank = 1 + int(self.rng.integers(2))
            x = self.gen(tuple(self.dim() for _ in range(rank)), depth - 1)
            if rank == 2 and self.chance(0.5):
                return self.apply(op, ref, x, axis=(0, 1))
            return self.apply(op, ref, x)
        pos = int(self.rng.integers(len(dims) + 1))
        x = self.gen(dims[:pos] + (self.dim(),) + dims[pos:], depth - 1)
        axis = pos - (len(dims) + 1) if self.chance(0.3) else pos
        return self.apply(op, ref, x, axis=axis)

    def p_trace_diag(self, dims: Dims, depth: int) -> Pair | None:
        if len(dims) == 0:
            return self.apply(ec.trace, np.trace, self.gen((self.dim(),) * 2, depth - 1))
        if len(dims) == 1:
            return self.apply(ec.diag, np.diag, self.gen(dims * 2, depth - 1))
        if dims[0] == dims[1]:
            return self.apply(ec.diag, np.diag, self.gen(dims[:1], depth - 1))
        return None

    def p_outer(self, dims: Dims, depth: int) -> Pair | None:
        if len(dims) != 2:
            return None
        x, y = self.gen(dims[:1], depth - 1), self.gen(dims[1:], self.lower(depth))
        return self.binary(ec.outer, np.multiply.outer, x, y)

    def p_negate(self, dims: Dims, depth: int) -> Pair | None:
        return self.apply(ops.negative, np.negative, self.gen(dims, depth - 1))

    def p_norm(self, dims: Dims, depth: int) -> Pair | None:
        if dims:
            return None
        x = self.gen(tuple(self.dim() for _ in range(1 + int(self.rng.integers(2)))), depth - 1)
        if self.nonsmooth and self.chance(0.4):
            return self.apply(ec.norm1, lambda a: np.sum(np.abs(a)), x)
        return self.apply(ec.norm2, lambda a: np.sqrt(np.sum(a * a)), x)

    def p_einsum(self, dims: Dims, depth: int) -> Pair | None:
        """A random multi-operand einsum whose output has ``dims``."""
        letters = "abcdefgh"
        out = letters[: len(dims)]
        letter_dim = dict(zip(out, dims))
        for ch in letters[len(dims) : len(dims) + int(self.rng.integers(0 if dims else 1, 3))]:
            letter_dim[ch] = self.dim()
        alphabet = list(letter_dim)
        groups: list[str] = []
        for _ in range(1 + int(self.rng.integers(3))):
            rank = 1 + int(self.rng.integers(2))
            groups.append("".join(self.pick(alphabet) for _ in range(rank)))
        for ch in alphabet:  # every letter must occur in some operand
            if not any(ch in g for g in groups):
                short = [k for k, g in enumerate(groups) if len(g) < 2]
                if short:
                    groups[short[0]] += ch
                else:
                    groups.append(ch)
        counts = {ch: sum(g.count(ch) for g in groups) for ch in alphabet}
        implicit = "".join(sorted(ch for ch, c in counts.items() if c == 1))
        spec = ",".join(groups) + ("" if implicit == out and self.chance(0.5) else "->" + out)
        operands = [
            self.gen(tuple(letter_dim[ch] for ch in g), depth - 1 if k == 0 else self.lower(depth))
            for k, g in enumerate(groups)
        ]
        node = ec.einsum(spec, *(o[0] for o in operands))
        return node, lambda v: np.einsum(spec, *(o[1](v) for o in operands))

    def p_general(self, dims: Dims, depth: int) -> Pair | None:
        """softmax, log_softmax, logsumexp, inv, det, logdet; reductions over several axes."""
        k = int(self.rng.integers(5))
        if k == 0 and dims:  # softmax / log_softmax along an axis
            op, ref = (ec.softmax, _softmax) if self.chance(0.5) else (ec.log_softmax, _log_softmax)
            x = self.gen(dims, depth - 1)
            if self.chance(0.3):
                return op(x[0]), lambda v: ref(x[1](v), axis=-1)
            axis = int(self.rng.integers(-len(dims), len(dims)))
            return self.apply(op, ref, x, axis=axis)
        if k == 1 and len(dims) <= 1:  # logsumexp
            if not dims and self.chance(0.5):
                x = self.gen(tuple(self.dim() for _ in range(1 + int(self.rng.integers(2)))), depth - 1)
                return self.apply(ec.logsumexp, _logsumexp, x)
            pos = int(self.rng.integers(len(dims) + 1))
            x = self.gen(dims[:pos] + (self.dim(),) + dims[pos:], depth - 1)
            return self.apply(ec.logsumexp, _logsumexp, x, axis=pos)
        if k == 2 and len(dims) == 2 and dims[0] == dims[1]:  # inverse
            return self.apply(ec.inv, np.linalg.inv, self.spd(dims[0], depth - 1))
        if k == 3 and not dims:  # det / logdet
            m = self.spd(self.dim(), depth - 1)
            if self.chance(0.5):
                return self.apply(ec.det, np.linalg.det, m)
            return self.apply(ec.logdet, lambda a: np.linalg.slogdet(a)[1], m)
        if k == 4 and not dims:  # logsumexp, prod or max over both axes of a matrix (tuple axes)
            pos = int(self.rng.integers(len(dims) + 1))
            x = self.gen(dims[:pos] + (self.dim(), self.dim()) + dims[pos:], depth - 1)
            choices = [(ec.logsumexp, _logsumexp), (ec.prod, np.prod)]
            if self.nonsmooth:  # a tie of maxima is a kink
                choices.append((ec.max, np.max))
            op, ref = self.pick(choices)
            if op is ec.prod:
                x = self.bounded(x)  # a product of many entries grows fast
            return self.apply(op, ref, x, axis=(pos, pos + 1))
        return None


def _pool(rng: np.random.Generator, n_dims: int | None) -> Dims:
    n = int(rng.integers(2, 4)) if n_dims is None else n_dims
    if not 1 <= n <= 3:
        raise ValueError(f"n_dims must be 1, 2 or 3, got {n}")
    return tuple(str(d) for d in rng.choice(DIM_NAMES, size=n, replace=False))


def random_case(
    rng: np.random.Generator | int | None,
    depth: int = 4,
    *,
    rank: int | None = None,
    n_dims: int | None = None,
    nonsmooth: bool = True,
    functions: Sequence[str] | None = None,
) -> RandomCase:
    """A random well-formed expression with its independent NumPy reference.

    The expression mixes element-wise functions (kept in their domain: ``log``, ``sqrt``
    and powers get a positive argument such as ``x*x + 1``; ``exp`` and ``tan`` a bounded
    one), einsum products (matmul, dot, Hadamard, transposes, sums and means over axes,
    traces, diagonals, outer products, random multi-operand ``einsum`` specs, some with an
    implicit output), additions with broadcasting and numbers, and general functions
    (softmax, log_softmax, logsumexp, and inv/det/logdet of ``M @ M.T + eye``).

    Args:
        rng: a NumPy ``Generator`` or an int seed; the same seed gives the same expression.
        depth: nesting depth of the main path (secondary operands are shallower).
        rank: rank of the result (0, 1 or 2); random by default.
        n_dims: how many distinct dim names to use (1-3); random by default.
        nonsmooth: include ``relu``/``step`` and raw arguments of ``abs``/``sign``/``norm1``.
            Pass False for derivative tests: then every function is differentiable at
            the generated arguments (for inputs in general position).
        functions: element-wise functions to draw from (default: all of ``ELEMENTWISE``).

    Returns:
        A :class:`RandomCase`.

    Examples:
        >>> case = random_case(0, depth=2)
        >>> case.expr is random_case(0, depth=2).expr
        True
    """
    seed = rng if isinstance(rng, int) else None
    gen = _as_rng(rng)
    pool = _pool(gen, n_dims)
    builder = _Builder(gen, pool, nonsmooth, functions)
    out_rank = int(gen.integers(3)) if rank is None else rank
    if out_rank not in (0, 1, 2):
        raise ValueError(f"rank must be 0, 1 or 2, got {out_rank}")
    out_dims = tuple(builder.dim() for _ in range(out_rank))
    node, reference = builder.gen(out_dims, depth)
    inputs = {name: v.dims for name, v in builder.vars.items()}
    return RandomCase(node, node.variables(), inputs, reference, pool, seed)


def random_expr(
    rng: np.random.Generator | int | None,
    depth: int = 4,
    *,
    rank: int | None = None,
    n_dims: int | None = None,
    nonsmooth: bool = True,
    functions: Sequence[str] | None = None,
) -> tuple[Node, dict[str, Dims]]:
    """A random well-formed expression and the dims of its variables.

    See :func:`random_case` for the arguments; this drops the NumPy reference.

    Examples:
        >>> import numpy as np
        >>> expr, variables = random_expr(np.random.default_rng(1), depth=3)
        >>> set(variables) <= {"u", "v", "w", "A", "B", "s"}
        True
    """
    case = random_case(rng, depth, rank=rank, n_dims=n_dims, nonsmooth=nonsmooth, functions=functions)
    return case.expr, case.variables


def random_sizes(
    rng: np.random.Generator | int | None, dims: Sequence[Dim] | Mapping[str, Dims], low: int = 2, high: int = 5
) -> dict[Dim, int]:
    """Distinct random sizes in ``[low, high]`` for the named dims (fixed-size dims keep theirs).

    Distinct sizes make a transposition bug a shape error instead of a silent wrong value.
    ``dims`` is a sequence of dim names or a variables mapping name -> dims.
    """
    gen = _as_rng(rng)
    names = _dim_names(dims)
    fixed = {int(d) for d in names if dimsmod.is_literal(d)}
    free = [d for d in names if not dimsmod.is_literal(d)]
    choices = [s for s in range(low, high + 1) if s not in fixed]
    if len(choices) < len(free):
        choices = list(range(low, low + len(free) + len(fixed) + 1))
        choices = [s for s in choices if s not in fixed]
    picked = gen.choice(choices, size=len(free), replace=False)
    sizes = {d: int(s) for d, s in zip(free, picked)}
    sizes.update({d: int(d) for d in names if dimsmod.is_literal(d)})
    return sizes


def _dim_names(dims: Sequence[Dim] | Mapping[str, Dims]) -> list[Dim]:
    if isinstance(dims, Mapping):
        return list(dict.fromkeys(d for ds in dims.values() for d in ds))
    return list(dict.fromkeys(dims))


def random_arrays(
    rng: np.random.Generator | int | None,
    variables: Mapping[str, Dims],
    sizes: Mapping[str, int] | None = None,
    scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """Standard-normal arrays (times ``scale``) for ``variables`` (name -> dims).

    ``sizes`` maps dim names to sizes; missing ones are drawn with :func:`random_sizes`
    (fixed-size dims such as ``"3"`` always get their own size).
    """
    gen = _as_rng(rng)
    bound = dict(sizes or {})
    missing = [d for d in _dim_names(variables) if d not in bound]
    if missing:
        bound.update(random_sizes(gen, missing))
    return {
        name: scale * gen.standard_normal(tuple(int(d) if dimsmod.is_literal(d) else bound[d] for d in dims))
        for name, dims in variables.items()
    }


def expressions(depth: int = 4, **kwargs: Any) -> Any:
    """A hypothesis strategy of :class:`RandomCase`, drawn through an integer seed.

    Keyword arguments are those of :func:`random_case`. Hypothesis is imported here, so
    eincalc does not depend on it.

    Examples:
        >>> from hypothesis import given
        >>> @given(expressions(depth=2))
        ... def test(case):
        ...     assert case.expr.variables() == case.variables
    """
    from hypothesis import strategies as st

    return st.integers(min_value=0, max_value=2**32 - 1).map(lambda seed: random_case(seed, depth, **kwargs))


# --------------------------------------------------------------------------------------
# numerical checks
# --------------------------------------------------------------------------------------
def numeric_jacobian(f: Callable[[np.ndarray], Any], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference Jacobian of ``f`` at ``x``, shape ``f(x).shape + x.shape``.

    This is eincalc's derivative layout (output dims first), so a symbolic
    ``derivative(f, x)`` evaluated at ``x`` should be close to it. Truncation error is
    O(eps²) and rounding error O(1/eps); eps = 1e-6 suits float64 values of order one.

    Examples:
        >>> import numpy as np
        >>> J = numeric_jacobian(lambda x: x**2, np.array([1.0, 2.0]))
        >>> np.allclose(J, np.diag([2.0, 4.0]))
        True
    """
    x = np.array(x, dtype=float)
    f0 = np.asarray(f(x.copy()), dtype=float)
    jac = np.empty(f0.shape + x.shape)
    flat_x = x.reshape(-1)
    for k in range(flat_x.size):
        step = np.zeros_like(flat_x)
        step[k] = eps
        plus = np.asarray(f((flat_x + step).reshape(x.shape)), dtype=float)
        minus = np.asarray(f((flat_x - step).reshape(x.shape)), dtype=float)
        jac.reshape(f0.shape + (-1,))[..., k] = (plus - minus) / (2 * eps)
    return jac


def check_close(actual: Any, expected: Any, rtol: float = 1e-7, atol: float = 1e-9, what: str = "value") -> None:
    """Assert ``|actual - expected| <= atol + rtol |expected|`` entry-wise, with a readable message.

    Shapes must match exactly (no broadcasting) and non-finite entries must agree
    (``inf`` with ``inf`` of the same sign, ``nan`` with ``nan``).

    Raises:
        AssertionError: naming ``what``, the shapes, the worst entry and how far off it is.

    Examples:
        >>> check_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-12]))
        >>> check_close(np.ones(2), np.ones(3))
        Traceback (most recent call last):
        ...
        AssertionError: value: shape (2,) does not match the expected shape (3,)
    """
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shape {a.shape} does not match the expected shape {e.shape}")
    same_nonfinite = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & (a == e))
    bad_nonfinite = (~np.isfinite(a) | ~np.isfinite(e)) & ~same_nonfinite
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(np.isfinite(a) & np.isfinite(e), np.abs(a - e), 0.0)
    tol = atol + rtol * np.where(np.isfinite(e), np.abs(e), 0.0)
    bad = bad_nonfinite | (err > tol)
    if not bad.any():
        return
    ratio = np.where(bad_nonfinite, np.inf, err / np.where(tol > 0, tol, np.finfo(float).tiny))
    worst = np.unravel_index(int(np.argmax(ratio)), a.shape) if a.shape else ()
    where = f" at index {tuple(int(i) for i in worst)}" if a.shape else ""
    raise AssertionError(
        f"{what}: {int(bad.sum())} of {a.size} entries differ (rtol={rtol}, atol={atol}); "
        f"worst{where}: got {a[worst]!r}, expected {e[worst]!r} (abs error {abs(a[worst] - e[worst]):.3g}); "
        f"max abs error {float(err.max()):.3g}"
    )
