"""The MatrixCalculus.org language front end: ``ec.parse(text, dialect="matrixcalculus")``.

This module owns the MatrixCalculus (MC) language: its tokenizer, a recursive-descent
parser into a small syntax tree, and the builder that turns the tree into DAG nodes with
MC's meaning. It does *not* own node construction (every node comes from
:mod:`eincalc.ops`), the two-pass dim inference (:func:`eincalc.parser._infer_and_build`
drives it; this module only asks ``ctx.fresh`` for unknown dims), differentiation or
printing. Nothing here evaluates text: the tokenizer accepts a fixed set of characters
and anything else is a :class:`~eincalc.errors.ParseError` pointing at its column.

The language, loosest binding first (as on matrixcalculus.org, MATLAB-like)::

    a + b    a - b                  sums; a scalar broadcasts, otherwise shapes must agree
    a .* b   a ./ b                 element-wise product and quotient (left to right)
    a * b    a / s                  matrix product (or scaling), division by a scalar
    -a       +a                     unary sign (binds looser than ^ and ')
    a ^ c    a .^ b                 power: constant exponent (a^b of scalars is exp(b log a));
                                    for a matrix only A^-1 (inverse) and A^2 (A*A); .^ takes
                                    a tensor exponent of the base's shape too
    a'       a.'                    transpose (a vector becomes a row vector)
    f(x)     (x)   3.5   name       calls, parentheses, numbers, variables

Functions: ``vector(c)``, ``matrix(c)`` (filled with the scalar ``c``, dims inferred),
``eye`` (identity, dims inferred), ``sum``, ``mean``, ``norm1``, ``norm2``, ``tr``,
``det``, ``logdet``, ``inv``, ``diag``, ``softmax``, ``logsumexp`` and every element-wise
function of one argument in :data:`eincalc.functions.ELEMENTWISE` (``exp log sin cos tan
tanh abs sign relu sqrt sigmoid softplus …``).

Default types of undeclared names follow MC: an initial ``a``–``g`` is a scalar,
``h``–``z`` a vector, ``A``–``Z`` a matrix, a Greek name (``alpha``, ``lambda``, …) a
scalar; their dims are inferred by unification. Declared names (``A="n n"``) override
the convention. ``lambda`` is a Python keyword, so its variable is named ``lambda_``.

Rank-1 tensors in the DAG have no orientation, so the builder carries a *row* flag on each
built value; ``*`` dispatches on it: row·column is the inner product, column·row the outer
product, matrix·column and row·matrix are matrix-vector products, and a scalar on either
side scales. A row vector that is the final result is just a vector.

Examples:
    >>> import eincalc as ec
    >>> f = ec.parse("0.5*x'*A*x", dialect="matrixcalculus", x="n", A="n n")
    >>> f is ec.parse("0.5 * x @ A @ x", x="n", A="n n")
    True
    >>> ec.parse("x'*A*x", dialect="mc").variables()
    {'x': ('n_x',), 'A': ('n_x', 'n_x')}
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from eincalc import dims as dimsmod
from eincalc import ops
from eincalc._types import Dims
from eincalc.errors import ParseError
from eincalc.expr import Const, Node
from eincalc.functions import ELEMENTWISE
from eincalc.language import suggest
from eincalc.parser import MAX_DEPTH, MAX_LEAVES, BuildContext, register_dialect, too_many_leaves

# Parentheses, calls and unary signs deeper than MAX_DEPTH are refused with a ParseError
# instead of running into Python's recursion limit (each level costs ~7 stack frames);
# both dialects share the limits of eincalc.parser.

# --------------------------------------------------------------------------------------
# functions of the language
# --------------------------------------------------------------------------------------
_ELEMENTWISE: dict[str, Callable[[object], Node]] = {
    name: getattr(ops, name) for name, entry in ELEMENTWISE.items() if entry.arity == 1 and not entry.has_param
}
_ELEMENTWISE["softmax"] = ops.softmax  # of a vector: keeps its shape (and orientation)
_REDUCTIONS: dict[str, Callable[[object], Node]] = {
    "sum": ops.sum,
    "mean": ops.mean,
    "norm1": ops.norm1,
    "norm2": ops.norm2,
    "logsumexp": ops.logsumexp,
}
GREEK: frozenset[str] = frozenset(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon "
    "phi chi psi omega".split()
)
"""Greek letter names: scalars by default, as on MatrixCalculus.org."""
_SQUARE: dict[str, Callable[[object], Node]] = {"tr": ops.trace, "det": ops.det, "logdet": ops.logdet, "inv": ops.inv}
_OTHER = {"vector", "matrix", "eye", "diag"}
FUNCTIONS: tuple[str, ...] = tuple(sorted({*_ELEMENTWISE, *_REDUCTIONS, *_SQUARE, *_OTHER}))
_ARITY = {name: 0 if name == "eye" else 1 for name in FUNCTIONS}


# --------------------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------------------
class _Token(NamedTuple):
    kind: str  # "num", "name", "op" or "end"
    text: str
    pos: int


# A dot right after the digits belongs to the number unless it starts an element-wise
# operator or .' (MATLAB reads `1./x` as 1 ./ x, not 1. / x).
_NUMBER = re.compile(r"(?:[0-9]+(?:\.(?![*/^'])[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_OPERATORS = (".*", "./", ".^", ".'", "+", "-", "*", "/", "^", "'", "(", ")", ",")
_WHITESPACE = " \t\r\n"
_CHAR_HINTS = {
    "@": "; use * for matrix products",
    "_": "; names start with a letter",
    ".": "; MatrixCalculus has no attribute access (element-wise operators are .*, ./, .^)",
    '"': "; the language has no strings",
    "[": "; the language has no indexing or literal arrays",
}


def tokenize(text: str) -> list[_Token]:
    """Split ``text`` into tokens; a character outside the language is a ParseError.

    Examples:
        >>> [t.text for t in tokenize("0.5*x'*A")]
        ['0.5', '*', 'x', "'", '*', 'A', '']
        >>> [t.text for t in tokenize("1./x")]
        ['1', './', 'x', '']
    """
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
            continue
        m = _NUMBER.match(text, i)
        if m:
            tokens.append(_Token("num", m.group(), i))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            tokens.append(_Token("name", m.group(), i))
            i = m.end()
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(_Token("op", op, i))
                i += len(op)
                break
        else:
            raise ParseError(f"unexpected character {ch!r}{_CHAR_HINTS.get(ch, '')}", text, i)
    tokens.append(_Token("end", "", n))
    return tokens


# --------------------------------------------------------------------------------------
# the syntax tree (positions are 0-based columns into the text; ``end`` is exclusive)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    """A number literal."""

    start: int
    end: int
    value: float


@dataclass(frozen=True)
class Name:
    """A variable (or ``eye``, the identity)."""

    start: int
    end: int
    name: str


@dataclass(frozen=True)
class Call:
    """``name(args)`` of a function in :data:`FUNCTIONS`."""

    start: int
    end: int
    name: str
    args: tuple[Tree, ...]


@dataclass(frozen=True)
class Sign:
    """Unary ``-operand`` or ``+operand``; the sign is at ``start``."""

    start: int
    end: int
    op: str
    operand: Tree


@dataclass(frozen=True)
class Transpose:
    """``operand'``; ``pos`` is the column of the quote."""

    start: int
    end: int
    operand: Tree
    pos: int


@dataclass(frozen=True)
class Power:
    """``base ^ exponent`` or ``base .^ exponent``; ``pos`` is the operator's column."""

    start: int
    end: int
    base: Tree
    op: str
    exponent: Tree
    pos: int


@dataclass(frozen=True)
class Chain:
    """A left-associative run ``first op1 x1 op2 x2 …`` of one precedence level.

    ``rest`` holds ``(operator, operator column, operand)``. Kept flat (not nested binary
    nodes) so a long sum costs no recursion depth when it is built.
    """

    start: int
    end: int
    first: Tree
    rest: tuple[tuple[str, int, Tree], ...]


@dataclass(frozen=True)
class Paren:
    """``(inner)``: kept so messages can quote the parentheses the user wrote."""

    start: int
    end: int
    inner: Tree


Tree = Num | Name | Call | Sign | Transpose | Power | Chain | Paren


class _Parser:
    """Recursive descent over the token list; one method per precedence level."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        leaves = [
            tok
            for tok, after in zip(self.tokens, self.tokens[1:])
            if tok.kind == "num" or (tok.kind == "name" and after.text != "(")  # not a call
        ]
        if len(leaves) > MAX_LEAVES:
            raise too_many_leaves(text, leaves[MAX_LEAVES].pos)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _is(self, *ops_: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops_

    def _advance(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _end_of_previous(self) -> int:
        prev = self.tokens[self.i - 1]
        return prev.pos + len(prev.text)

    def _error(self, message: str, pos: int) -> ParseError:
        return ParseError(message, self.text, pos)

    def _nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._error(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", pos)

    def parse(self) -> Tree:
        if self.tok.kind == "end":
            raise self._error("empty expression", 0)
        tree = self._sum()
        if self.tok.kind != "end":
            if self._is(")"):
                raise self._error("unmatched ')'", self.tok.pos)
            raise self._error(
                f"unexpected {_show(self.tok)} after a complete expression (missing operator?)", self.tok.pos
            )
        return tree

    def _chain(self, operators: tuple[str, ...], operand: Callable[[], Tree]) -> Tree:
        first = operand()
        rest: list[tuple[str, int, Tree]] = []
        while self._is(*operators):
            op = self._advance()
            rest.append((op.text, op.pos, operand()))
        if not rest:
            return first
        return Chain(first.start, rest[-1][2].end, first, tuple(rest))

    def _sum(self) -> Tree:
        self._nest(self.tok.pos)
        tree = self._chain(("+", "-"), self._product)
        self.depth -= 1
        return tree

    def _product(self) -> Tree:
        # `.*` and `./` bind looser than `*` and `/`, as on MatrixCalculus.org: sin(x).*A*x
        # is sin(x) .* (A*x), the only reading in which the shapes fit
        return self._chain((".*", "./"), self._matrix_product)

    def _matrix_product(self) -> Tree:
        return self._chain(("*", "/"), self._unary)

    def _unary(self) -> Tree:
        if self._is("-", "+"):
            sign = self._advance()
            self._nest(sign.pos)
            operand = self._unary()
            self.depth -= 1
            return Sign(sign.pos, operand.end, sign.text, operand)
        return self._power()

    def _power(self) -> Tree:
        base = self._postfix(self._primary())
        if not self._is("^", ".^"):
            return base
        op = self._advance()
        exponent = self._exponent()
        tree = self._postfix(Power(base.start, exponent.end, base, op.text, exponent, op.pos))
        if self._is("^", ".^"):
            # MATLAB reads a^b^c as (a^b)^c, mathematics as a^(b^c): refuse to guess.
            raise self._error("chained powers are ambiguous; add parentheses, e.g. (a^b)^c or a^(b^c)", self.tok.pos)
        return tree

    def _exponent(self) -> Tree:
        # A sign may follow ^ directly (A^-1); the exponent binds tighter than a
        # following transpose, so A^2' is (A^2)'.
        if self._is("-", "+"):
            sign = self._advance()
            self._nest(sign.pos)
            operand = self._exponent()
            self.depth -= 1
            return Sign(sign.pos, operand.end, sign.text, operand)
        return self._primary()

    def _postfix(self, tree: Tree) -> Tree:
        while self._is("'", ".'"):
            quote = self._advance()
            tree = Transpose(tree.start, quote.pos + len(quote.text), tree, quote.pos)
        return tree

    def _primary(self) -> Tree:
        tok = self.tok
        if tok.kind == "num":
            self._advance()
            value = float(tok.text)
            if not math.isfinite(value):
                shown = tok.text if len(tok.text) <= 24 else tok.text[:21] + "..."
                raise self._error(f"number {shown} is too large for a float64 (at most about 1.8e308)", tok.pos)
            return Num(tok.pos, tok.pos + len(tok.text), value)
        if tok.kind == "name":
            self._advance()
            if self._is("("):
                return self._call(tok)
            if keyword.iskeyword(tok.text) and tok.text != "lambda":
                raise self._error(f"{tok.text!r} is a reserved word and cannot name a variable", tok.pos)
            return Name(tok.pos, tok.pos + len(tok.text), tok.text)
        if self._is("("):
            self._advance()
            inner = self._sum()
            self._close(tok)
            return Paren(tok.pos, self._end_of_previous(), inner)
        if tok.kind == "end":
            raise self._error(f"expected an operand after {_show(self.tokens[self.i - 1])}, found the end", tok.pos)
        hint = ""
        if self._is("*") and self.i > 0 and self.tokens[self.i - 1].text == "*":
            hint = "; ** is not an operator here, use ^ or .^ for powers"
        raise self._error(f"expected an operand, found {_show(tok)}{hint}", tok.pos)

    def _call(self, name: _Token) -> Call:
        if name.text not in FUNCTIONS:
            hint = suggest(name.text, FUNCTIONS)
            raise self._error(
                f"unknown function {name.text!r}{hint}; known functions: {', '.join(FUNCTIONS)}", name.pos
            )
        opening = self._advance()
        self._nest(opening.pos)
        args: list[Tree] = []
        if not self._is(")"):
            args.append(self._sum())
            while self._is(","):
                self._advance()
                args.append(self._sum())
        self._close(opening)
        self.depth -= 1
        want = _ARITY[name.text]
        if len(args) != want:
            got = f"got {len(args)}"
            raise self._error(f"{name.text} takes {want} argument{'s' if want != 1 else ''}, {got}", name.pos)
        return Call(name.pos, self._end_of_previous(), name.text, tuple(args))

    def _close(self, opening: _Token) -> None:
        if self._is(")"):
            self._advance()
            return
        if self.tok.kind == "end":
            raise self._error("'(' is never closed", opening.pos)
        raise self._error(
            f"unexpected {_show(self.tok)}; expected ')' to close the '(' at column {opening.pos + 1}", self.tok.pos
        )


def _show(tok: _Token) -> str:
    if tok.kind == "end":
        return "the end"
    if tok.kind == "name":
        return f"name {tok.text!r}"
    if tok.kind == "num":
        return f"number {tok.text}"
    return repr(tok.text)


def parse_syntax(text: str) -> Tree:
    """Tokenize and parse ``text`` into a syntax tree (no nodes are built).

    Raises:
        ParseError: with the 0-based column of the first problem.

    Examples:
        >>> tree = parse_syntax("x'*y")
        >>> tree.first
        Transpose(start=0, end=2, operand=Name(start=0, end=1, name='x'), pos=1)
        >>> tree.rest
        (('*', 2, Name(start=3, end=4, name='y')),)
    """
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise ParseError("expression is nested too deeply", text, 0) from None


# --------------------------------------------------------------------------------------
# building nodes
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Value:
    """A built value: a node (or a folded Python number) and whether it is a row vector."""

    x: Node | float
    row: bool = False

    @property
    def ndim(self) -> int:
        return 0 if isinstance(self.x, float) else self.x.ndim

    @property
    def dims(self) -> Dims:
        return () if isinstance(self.x, float) else self.x.dims

    def describe(self) -> str:
        return {0: "a scalar", 1: "a row vector" if self.row else "a column vector", 2: "a matrix"}.get(
            self.ndim, f"a rank-{self.ndim} tensor"
        )

    def constant(self) -> float | None:
        """The value if this is a scalar constant (a number or a folded scalar Const)."""
        if isinstance(self.x, float):
            return self.x
        if isinstance(self.x, Const) and self.x.ndim == 0:
            return self.x.value
        return None


def _axis_name(v: _Value, axis: int) -> str:
    if v.ndim == 1:
        return "length"
    return "number of rows" if axis == 0 else "number of columns"


class _Builder:
    """Walks one syntax tree and builds nodes through :mod:`eincalc.ops`."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.text = ctx.text

    def src(self, tree: Tree | tuple[int, int]) -> str:
        """The source of ``tree`` for messages, whitespace collapsed and shortened."""
        start, end = (tree.start, tree.end) if not isinstance(tree, tuple) else tree
        s = " ".join(self.text[start:end].split())
        return s if len(s) <= 40 else s[:37] + "..."

    def value(self, tree: Tree) -> _Value:
        if isinstance(tree, Num):
            return _Value(tree.value)
        if isinstance(tree, Name):
            return self.name(tree)
        if isinstance(tree, Paren):
            return self.value(tree.inner)
        if isinstance(tree, Chain):
            return self.chain(tree)
        if isinstance(tree, Sign):
            return self.sign(tree)
        if isinstance(tree, Transpose):
            return self.transpose(tree)
        if isinstance(tree, Power):
            return self.power(tree)
        if isinstance(tree, Call):
            return self.call(tree)
        raise AssertionError(f"unknown syntax tree node {tree!r}")

    # -- leaves ------------------------------------------------------------------------
    def name(self, tree: Name) -> _Value:
        if tree.name in FUNCTIONS and tree.name not in self.ctx.declared:
            if tree.name == "eye":
                return self.identity(tree.start)
            raise self.ctx.error(f"{tree.name!r} is a function; call it as {tree.name}(...)", tree.start)
        name = "lambda_" if tree.name == "lambda" else tree.name  # a keyword cannot name a variable
        with self.ctx.at(tree.start):
            return _Value(self.ctx.var(name, tree.start))

    def identity(self, pos: int) -> _Value:
        d = self.ctx.fresh("n_eye", f"the size of eye at column {pos + 1}")
        with self.ctx.at(pos):
            # ops.eye validates dim names and would refuse the unifier's placeholders;
            # diag of a ones vector is the same Delta node.
            return _Value(ops.diag(ops.broadcast_to(ops.as_node(1.0), (d,))))

    # -- operators ---------------------------------------------------------------------
    def chain(self, tree: Chain) -> _Value:
        acc = self.value(tree.first)
        left_end = tree.first.end
        for op, pos, operand in tree.rest:
            right = self.value(operand)
            left_src, right_src = self.src((tree.start, left_end)), self.src(operand)
            with self.ctx.at(pos):
                acc = self.binary(op, acc, right, left_src, right_src, pos)
            left_end = operand.end
        return acc

    def binary(self, op: str, a: _Value, b: _Value, a_src: str, b_src: str, pos: int) -> _Value:
        if isinstance(a.x, float) and isinstance(b.x, float):
            return _Value(self.fold(op, a.x, b.x, pos))
        if op in ("/", "./") and b.constant() == 0.0:
            raise self.ctx.error(f"division by zero ({b_src} is the constant 0)", pos)
        if op == "*":
            return self.product(a, b, a_src, b_src, pos)
        if op == "/":
            if b.ndim != 0:
                raise self.ctx.error(
                    f"/ divides by a scalar, but {b_src} is {b.describe()}; use ./ for element-wise division"
                    + (" or inv() for a matrix inverse" if b.ndim == 2 else ""),
                    pos,
                )
            return _Value(ops.divide(a.x, b.x), a.row)
        self.require_same_shape(op, a, b, a_src, b_src, pos)
        fn = {"+": ops.add, "-": ops.subtract, ".*": ops.multiply, "./": ops.divide}[op]
        return _Value(fn(a.x, b.x), a.row if a.ndim else b.row)

    def fold(self, op: str, a: float, b: float, pos: int) -> float:
        try:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op in ("*", ".*"):
                return a * b
            return a / b
        except ZeroDivisionError:
            raise self.ctx.error("division by zero", pos) from None

    def require_same_shape(self, op: str, a: _Value, b: _Value, a_src: str, b_src: str, pos: int) -> None:
        """Element-wise operands: equal shapes, or one scalar (which broadcasts)."""
        if a.ndim == 0 or b.ndim == 0:
            return
        if a.ndim != b.ndim or a.row != b.row:
            hint = "; transpose one of them with '" if a.ndim == b.ndim == 1 else ""
            raise self.ctx.error(
                f"{op} needs operands of the same shape (or a scalar): {a_src} is {a.describe()} "
                f"but {b_src} is {b.describe()}{hint}",
                pos,
            )
        for k, (p, q) in enumerate(zip(a.dims, b.dims)):
            dimsmod.require_same(
                p, q, f"{a_src} {op} {b_src}: the {_axis_name(a, k)} of {a_src} must equal that of {b_src}"
            )

    def product(self, a: _Value, b: _Value, a_src: str, b_src: str, pos: int) -> _Value:
        """``a * b``: scaling, inner, outer, matrix-vector or matrix-matrix product."""
        if a.ndim == 0 or b.ndim == 0:
            return _Value(ops.multiply(a.x, b.x), a.row or b.row)
        if a.ndim > 2 or b.ndim > 2:
            big_src, big = (a_src, a) if a.ndim > 2 else (b_src, b)
            raise self.ctx.error(
                f"* multiplies scalars, vectors and matrices, but {big_src} is {big.describe()}; "
                "use .* for an element-wise product",
                pos,
            )
        kinds = (_kind(a), _kind(b))
        if kinds == ("row", "col"):  # xᵀy: the inner product
            self.require_inner(a, 0, b, 0, a_src, b_src)
            return _Value(ops.matmul(a.x, b.x))
        if kinds == ("col", "row"):  # xyᵀ: the outer product
            return _Value(ops.outer(a.x, b.x))
        if kinds == ("mat", "col"):
            self.require_inner(a, 1, b, 0, a_src, b_src)
            return _Value(ops.matmul(a.x, b.x))
        if kinds == ("row", "mat"):  # xᵀA is the vector x @ A, still a row
            self.require_inner(a, 0, b, 0, a_src, b_src)
            return _Value(ops.matmul(a.x, b.x), row=True)
        if kinds == ("mat", "mat"):
            self.require_inner(a, 1, b, 0, a_src, b_src)
            return _Value(ops.matmul(a.x, b.x))
        hints = {
            ("col", "col"): f"; did you mean {a_src}'*{b_src} (inner product) or .* (element-wise)?",
            ("row", "row"): "; did you mean .* (element-wise)?",
            ("col", "mat"): f"; did you mean ({a_src})'*{b_src}?",
            ("mat", "row"): f"; did you mean {b_src[:-1] if b_src.endswith(chr(39)) else b_src} without the transpose?",
        }
        raise self.ctx.error(
            f"cannot multiply {a_src} ({a.describe()}) by {b_src} ({b.describe()}) with *{hints.get(kinds, '')}", pos
        )

    def require_inner(self, a: _Value, i: int, b: _Value, j: int, a_src: str, b_src: str) -> None:
        # Checked here, before ops.matmul, so the message names both operands by their
        # source text and never shows the unifier's placeholder dims.
        dimsmod.require_same(
            a.dims[i],
            b.dims[j],
            f"{a_src} * {b_src}: the {_axis_name(a, i)} of {a_src} ({a.describe()}) must equal "
            f"the {_axis_name(b, j)} of {b_src} ({b.describe()})",
        )

    def sign(self, tree: Sign) -> _Value:
        v = self.value(tree.operand)
        if tree.op == "+":
            return v
        if isinstance(v.x, float):
            return _Value(-v.x)
        with self.ctx.at(tree.start):
            return _Value(ops.negative(v.x), v.row)

    def transpose(self, tree: Transpose) -> _Value:
        v = self.value(tree.operand)
        if v.ndim <= 1:
            return _Value(v.x, not v.row and v.ndim == 1)
        if v.ndim > 2:
            raise self.ctx.error(
                f"' transposes vectors and matrices, but {self.src(tree.operand)} is {v.describe()}", tree.pos
            )
        with self.ctx.at(tree.pos):
            return _Value(ops.transpose(v.x))

    def power(self, tree: Power) -> _Value:
        base, exponent = self.value(tree.base), self.value(tree.exponent)
        b_src, e_src = self.src(tree.base), self.src(tree.exponent)
        c = exponent.constant()
        with self.ctx.at(tree.pos):
            if isinstance(base.x, float) and c is not None:
                return _Value(self.fold_power(base.x, c, tree.pos))
            if c is not None:
                if base.ndim == 0 or tree.op == ".^":
                    return _Value(ops.power(base.x, c), base.row)
                if base.ndim == 2 and c == -1.0:
                    return _Value(ops.inv(base.x))
                if base.ndim == 2 and c == 2.0:
                    self.require_inner(base, 1, base, 0, b_src, b_src)
                    return _Value(ops.matmul(base.x, base.x))
                allowed = "only ^-1 (inverse) and ^2 are defined for a matrix" if base.ndim == 2 else "^ needs a scalar"
                raise self.ctx.error(
                    f"{b_src}^{e_src}: {allowed}, and {b_src} is {base.describe()}; use .^ for an element-wise power",
                    tree.pos,
                )
            if tree.op == ".^" and base.ndim and exponent.ndim in (0, base.ndim):
                return _Value(ops.power(base.x, exponent.x), base.row)  # x.^y entry-wise
            if base.ndim == 0 and (exponent.ndim == 0 or tree.op == ".^"):
                return _Value(self.scalar_power(base, exponent, b_src, e_src, tree.pos), exponent.row)
            if base.ndim == 0:
                raise self.ctx.error(
                    f"{b_src}^{e_src}: ^ needs a scalar exponent, but {e_src} is {exponent.describe()}; "
                    "use .^ for an element-wise power",
                    tree.pos,
                )
            raise self.ctx.error(
                f"{b_src}{tree.op}{e_src}: the exponent of {base.describe()} must be a constant, "
                f"but {e_src} is {exponent.describe()}",
                tree.pos,
            )

    def fold_power(self, a: float, b: float, pos: int) -> float:
        try:
            value = a**b
        except (ZeroDivisionError, OverflowError) as err:
            raise self.ctx.error(f"constant arithmetic failed: {err}", pos) from None
        if isinstance(value, complex) or not math.isfinite(value):
            raise self.ctx.error(f"{a}^{b} is not a finite real number", pos)
        return float(value)

    def scalar_power(self, base: _Value, exponent: _Value, b_src: str, e_src: str, pos: int) -> Node:
        """Scalar ``a`` to a non-constant ``b`` (``b`` a tensor with ``.^``): ``exp(b·log a)``, for ``a > 0``."""
        if isinstance(base.x, float):
            if base.x <= 0:
                raise self.ctx.error(f"{b_src}^{e_src}: a non-constant exponent needs a positive base", pos)
            return ops.power(base.x, exponent.x)
        return ops.exp(ops.multiply(exponent.x, ops.log(base.x)))

    # -- functions ---------------------------------------------------------------------
    def call(self, tree: Call) -> _Value:
        name, pos = tree.name, tree.start
        if name == "eye":
            return self.identity(pos)
        v = self.value(tree.args[0])
        arg_src = self.src(tree.args[0])
        with self.ctx.at(pos):
            if name in _ELEMENTWISE:
                return _Value(_ELEMENTWISE[name](v.x), v.row)
            if name in _REDUCTIONS:
                return _Value(_REDUCTIONS[name](v.x))
            if name in _SQUARE:
                if v.ndim != 2:
                    raise self.ctx.error(f"{name} needs a square matrix, but {arg_src} is {v.describe()}", pos)
                dimsmod.require_same(
                    v.dims[0],
                    v.dims[1],
                    f"{name}({arg_src}) needs a square matrix: its number of rows must equal its number of columns",
                )
                return _Value(_SQUARE[name](v.x))
            if name == "diag":
                if v.ndim not in (1, 2):
                    raise self.ctx.error(f"diag needs a vector or a matrix, but {arg_src} is {v.describe()}", pos)
                if v.ndim == 2:
                    dimsmod.require_same(v.dims[0], v.dims[1], f"diag({arg_src}) needs a square matrix")
                return _Value(ops.diag(v.x))
            # vector(c) / matrix(c): a constant-filled tensor whose dims unification finds
            if v.ndim != 0:
                raise self.ctx.error(f"{name}(c) needs a scalar c, but {arg_src} is {v.describe()}", pos)
            where = f"{name}(...) at column {pos + 1}"
            if name == "vector":
                dims: Dims = (self.ctx.fresh("n_vec", f"the length of {where}"),)
            else:
                dims = (
                    self.ctx.fresh("m_mat", f"the number of rows of {where}"),
                    self.ctx.fresh("n_mat", f"the number of columns of {where}"),
                )
            # broadcast_to, not ops.ones: ones() validates dim names and refuses placeholders
            return _Value(ops.broadcast_to(ops.as_node(v.x), dims))


def _kind(v: _Value) -> str:
    if v.ndim == 1:
        return "row" if v.row else "col"
    return "mat"


# --------------------------------------------------------------------------------------
# the dialect
# --------------------------------------------------------------------------------------
class MatrixCalculusDialect:
    """The MatrixCalculus.org language as an :class:`eincalc.parser.Dialect`."""

    name = "matrixcalculus"

    def syntax(self, text: str) -> Tree:
        """Tokenize and parse ``text``; any bad input is a ParseError with its column."""
        return parse_syntax(text)

    def build(self, tree: Tree, ctx: BuildContext) -> Node:
        """Build the DAG node of ``tree`` (every node made through :mod:`eincalc.ops`)."""
        result = _Builder(ctx).value(tree)
        return ops.as_node(result.x)

    def default_dims(self, name: str, ctx: BuildContext) -> Dims | None:
        """MC's default types: a–g scalars, h–z vectors, A–Z matrices, dims to be inferred.

        The hints name dims that nothing else fixes: ``n_x`` for vector ``x``, ``m_A`` and
        ``n_A`` for the rows and columns of matrix ``A``.
        """
        first = name[:1]
        if name.rstrip("_0123456789") in GREEK or "a" <= first <= "g":
            return ()
        if "h" <= first <= "z":
            return (ctx.fresh(f"n_{name}", f"the length of vector {name}"),)
        if "A" <= first <= "Z":
            return (
                ctx.fresh(f"m_{name}", f"the number of rows of matrix {name}"),
                ctx.fresh(f"n_{name}", f"the number of columns of matrix {name}"),
            )
        return None


register_dialect(MatrixCalculusDialect())

__all__ = ["FUNCTIONS", "MatrixCalculusDialect", "parse_syntax", "tokenize"]
