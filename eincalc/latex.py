r"""LaTeX view of expressions: matrix notation where one exists, index notation otherwise.

:func:`latex` owns the LaTeX reading of every node kind. It follows the pattern
recognition of :mod:`eincalc.printing` (the same single-operand, Hadamard, broadcast,
``diag``, outer and matrix-product readings, and the same "split one operand off an
n-ary product" search), read in column-vector convention (``x @ A`` is ``A^\top x``),
and adds what a formula needs that NumPy syntax does not have:

* chains and cycles of matrices and vectors as one product (``x^\top A x``,
  ``\operatorname{tr}(X A X^\top)``),
* the compressed ``δ ⊗ core`` structure of :mod:`eincalc.structure` as a Kronecker
  product ``I_{m} \otimes (\ldots)`` (or ``\delta`` index notation when the layout is
  not a Kronecker layout),
* scalar fractions and powers, ``\sum``, and index notation
  (``\sum_{j} X_{ij} w_{j}``) for the products no matrix notation fits.

Output is deterministic (it depends only on the interned structure). Shared
sub-expressions are written out at each use: this is a formula, not code. Nothing here
evaluates, simplifies or differentiates.
"""

from __future__ import annotations

from typing import NamedTuple

from eincalc import algebra as alg
from eincalc.errors import UnsupportedNodeError
from eincalc.expr import Add, Array, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var, Window
from eincalc.functions import get_elementwise, get_unary
from eincalc.graph import topo_order
from eincalc.printing import one_and_rest

# Precedence levels: a child whose level is too low for its context gets parentheses.
# Juxtaposition (matrix and scalar products) binds tighter than ⊙, ⊗ and ∘, whose
# operands are parenthesised when they are products themselves.
ATOM, POWER, PRODUCT, HADAMARD, NEG, SUM = 100, 90, 70, 65, 60, 50

# Display names for einsum indices in index notation; output indices come first, so
# the free indices of a result read i, j, k in axis order.
_INDEX_LETTERS = "ijklpqrstuvwxyzabcdefgh"

_GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi rho "
    "sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi "
    "Omega".split()
)


_TOP = r"^\top"


class Entry(NamedTuple):
    r"""A printed sub-expression: its text, its precedence level and its free indices.

    ``free`` is non-empty for index notation with free indices (``\sum_{j} X_{ij}
    w_{j}`` has ``free == "i"``). Such text is only meaningful on its own, so a parent
    uses it as the bracketed tensor ``\left[\ldots\right]_{i}``.
    """

    text: str
    prec: int
    free: str = ""


_Memo = dict[int, tuple[Node, Entry]]


def latex(expr: Node) -> str:
    r"""``expr`` in LaTeX (without ``$`` delimiters).

    Matrix notation where a pattern is recognised: ``X^\top``, matrix products by
    juxtaposition (vectors are columns), ``\odot`` for Hadamard products,
    ``\operatorname{diag}``, ``\operatorname{tr}``, ``\det``, ``^{-1}``, ``\sum``,
    fractions of scalars, and ``I_{m} \otimes C`` for compressed ``δ ⊗ core`` results;
    index notation otherwise.

    Args:
        expr: the expression to print.

    Returns:
        The LaTeX source of the formula.

    Raises:
        UnsupportedNodeError: for a node kind this printer has no rule for.

    Examples:
        >>> import eincalc as ec
        >>> A, x = ec.matrix("A", "n n"), ec.vector("x", "n")
        >>> latex(x.T @ A @ x)
        'x^\\top A x'
        >>> latex(ec.trace(ec.inv(A)))
        '\\operatorname{tr}(A^{-1})'
        >>> X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
        >>> latex(ec.einsum("ij,j->i", X, w))
        'X w'
        >>> latex(ec.sum(ec.exp(X), axis=0))
        '\\exp(X)^\\top \\mathbf{1}'
    """
    if not isinstance(expr, Node):
        raise TypeError(f"latex needs an eincalc expression, got {type(expr).__name__}")
    return _entry(expr, {}).text


# --------------------------------------------------------------------------------------
# walking and entries
# --------------------------------------------------------------------------------------
def _entry(node: Node, memo: _Memo) -> Entry:
    """The raw entry of ``node``; every node of its DAG is printed once (memoised)."""
    for n in topo_order(node):
        if id(n) not in memo:
            # the memo keeps the node alive, so its id cannot be reused by a new node
            memo[id(n)] = (n, _print(n, memo))
    return memo[id(node)][1]


def _used(entry: Entry) -> Entry:
    """``entry`` as an operand of a larger formula: free-index notation gets bracketed."""
    if entry.free:
        return Entry(rf"\left[{entry.text}\right]_{{{entry.free}}}", ATOM)
    return entry


def _child(node: Node, memo: _Memo) -> Entry:
    return _used(_entry(node, memo))


def _wrap(entry: Entry, minimum: int) -> str:
    """The text of ``entry``, parenthesised if its level is below ``minimum``."""
    entry = _used(entry)
    return entry.text if entry.prec >= minimum else f"({entry.text})"


def _juxtapose(parts: list[str]) -> str:
    return " ".join(p for p in parts if p)


# --------------------------------------------------------------------------------------
# leaves and names
# --------------------------------------------------------------------------------------
def _num(value: float) -> str:
    r"""A number as LaTeX: ``2``, ``0.5``, ``1.5 \cdot 10^{-8}``."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \cdot 10^{{{int(exponent)}}}"
    return text


def _escape_text(text: str) -> str:
    return text.replace("_", r"\_")


def _symbol(name: str) -> str:
    r"""An identifier as a math symbol: ``x``, ``\theta``, ``\mathit{loss}``."""
    if name in _GREEK:
        return "\\" + name
    if len(name) == 1:
        return name
    return rf"\mathit{{{_escape_text(name)}}}"


def _name(name: str) -> str:
    """A variable name: the part after the first underscore becomes a subscript (``x_1``)."""
    if name.endswith("_") and name[:-1] in _GREEK:  # lambda_: the MatrixCalculus dialect's lambda
        name = name[:-1]
    base, sep, sub = name.partition("_")
    if sep and base and sub:
        return f"{_symbol(base)}_{{{_symbol(sub) if sub in _GREEK else _escape_text(sub)}}}"
    stem = name.rstrip("0123456789")
    if stem and stem != name and (len(stem) == 1 or stem in _GREEK):  # u0, x12, theta2: a subscript
        return f"{_symbol(stem)}_{{{name[len(stem) :]}}}"
    return _symbol(name)


def _dim(d: str) -> str:
    return d if len(d) == 1 or d.isdigit() else rf"\mathit{{{_escape_text(d)}}}"


def _dims_sub(dims: tuple[str, ...]) -> str:
    return r" \times ".join(_dim(d) for d in dims)


def _identity(base: tuple[str, ...]) -> Entry:
    parts = [f"I_{{{_dim(d)}}}" for d in base]
    return Entry(r" \otimes ".join(parts), ATOM if len(parts) == 1 else HADAMARD)


def _array(node: Array) -> Entry:
    """A small constant vector or matrix written out; a larger one as a named constant."""
    data = node.data
    if data.ndim <= 2 and data.size <= 16:
        rows = data.reshape(-1, 1) if data.ndim == 1 else data
        body = r" \\ ".join(" & ".join(_num(v) for v in row) for row in rows)
        return Entry(rf"\begin{{bmatrix}} {body} \end{{bmatrix}}", ATOM)
    return Entry(rf"\mathbf{{C}}_{{{_dims_sub(node.dims)}}}", ATOM)


def _print(node: Node, memo: _Memo) -> Entry:
    if isinstance(node, Var):
        return Entry(_name(node.name), ATOM)
    if isinstance(node, Const):
        if not node.dims:
            return Entry(_num(node.value), ATOM if node.value >= 0 else NEG)
        if node.value == 0.0:
            return Entry(rf"\mathbf{{0}}_{{{_dims_sub(node.dims)}}}", ATOM)
        ones = rf"\mathbf{{1}}_{{{_dims_sub(node.dims)}}}"
        if node.value == 1.0:
            return Entry(ones, ATOM)
        return Entry(f"{_num(node.value)} {ones}", PRODUCT if node.value > 0 else NEG)
    if isinstance(node, Delta):
        return _identity(node.base)
    if isinstance(node, Shift):  # the window tensor S[i, k, o] of a convolution
        options = (
            ""
            if (node.stride, node.dilation, node.padding) == (1, 1, 0)
            else (f";{node.stride},{node.dilation},{node.padding}")
        )
        return Entry(rf"\mathbf{{S}}_{{{node.size},{node.kernel}{options}}}", ATOM)
    if isinstance(node, Array):
        return _array(node)
    if isinstance(node, Window) and node.rows is not None:
        shown = ", ".join(map(str, node.rows[:6])) + (r", \ldots" if len(node.rows) > 6 else "")
        return Entry(rf"\operatorname{{onehot}}_{{{_dim(node.dims[1])}}}({shown})", ATOM)
    if isinstance(node, Window):
        first = f"{_dim(node.dims[1])} - {node.start}" if node.from_end else str(node.start)
        return Entry(rf"S^{{{_dim(node.dims[0])} \times {_dim(node.dims[1])}}}_{{{first}}}", ATOM)
    if isinstance(node, Elementwise):
        return _print_elementwise(node, memo)
    if isinstance(node, Unary):
        return _print_unary(node, memo)
    if isinstance(node, Add):
        return _print_add(node, memo)
    if isinstance(node, Einsum):
        return _print_einsum(node, memo)
    raise UnsupportedNodeError(f"no LaTeX printer for {type(node).__name__}")


def _print_elementwise(node: Elementwise, memo: _Memo) -> Entry:
    arg = _child(node.arg, memo)
    if node.fn == "pow":
        p = float(node.param if node.param is not None else 1.0)
        if node.arg.ndim:
            # an entry-wise power of a tensor is not a matrix power: Hadamard power notation
            return Entry(rf"{_wrap(arg, ATOM)}^{{\odot {_num(p)}}}", POWER)
        if p == 0.5:
            return Entry(rf"\sqrt{{{arg.text}}}", ATOM)
        if p < 0:
            den = arg.text if p == -1.0 else f"{_wrap(arg, ATOM)}^{{{_num(-p)}}}"
            return Entry(rf"\frac{{1}}{{{den}}}", POWER)
        return Entry(f"{_wrap(arg, ATOM)}^{{{_num(p)}}}", POWER)
    entry = get_elementwise(node.fn)
    args = [
        Entry(_num(a.value), ATOM if a.value >= 0 else NEG) if isinstance(a, Const) else _child(a, memo)
        for a in node.args
    ]
    if entry.latex_prec == "power":  # the base is wrapped; exponents sit in braces
        parts = [_wrap(args[0], ATOM)] + [a.text for a in args[1:]]
        return Entry(entry.latex.format(*parts), POWER)
    if entry.latex_prec == "product":
        return Entry(entry.latex.format(*(_wrap(a, PRODUCT + 1) for a in args)), PRODUCT)
    return Entry(entry.latex.format(*(a.text for a in args)), ATOM)


def _print_unary(node: Unary, memo: _Memo) -> Entry:
    """From the registry entry: ``arg^{…}`` (``latex_power``), else ``name(arg, axis=…)``."""
    arg = _child(node.arg, memo)
    entry = get_unary(node.fn)
    if entry.latex_power is not None:
        return Entry(f"{_wrap(arg, ATOM)}^{{{entry.latex_power}}}", POWER)
    keyword = entry.keyword(node.arg.dims, node.axis)
    axis = rf", \mathrm{{{keyword[2:].split('=')[0]}}}={keyword.split('=')[1]}" if keyword else ""
    if "{0}" in entry.latex:  # a template: \log\lvert\det({0})\rvert
        return Entry(entry.latex.replace("{0}", arg.text + axis), ATOM)
    name = entry.latex or rf"\operatorname{{{_escape_text(node.fn)}}}"
    return Entry(rf"{name}({arg.text}{axis})", ATOM)


def _print_add(node: Add, memo: _Memo) -> Entry:
    # Constants first: "1 + \exp(x)" is how a formula is usually written.
    terms = [t for t in node.terms if isinstance(t, Const)] + [t for t in node.terms if not isinstance(t, Const)]
    parts: list[str] = []
    for k, term in enumerate(terms):
        negative = isinstance(term, Einsum) and term.coef < 0 or isinstance(term, Const) and term.value < 0
        if k and negative:
            positive = Const.make(-term.value, term.dims) if isinstance(term, Const) else alg.scale(term, -1.0)
            parts.append(f"- {_wrap(_entry(positive, memo), SUM + 1)}")
            continue
        text = _num(term.value) if isinstance(term, Const) else _wrap(_entry(term, memo), SUM + 1 if k else NEG)
        parts.append(text if k == 0 else f"+ {text}")
    return Entry(" ".join(parts), SUM)


# --------------------------------------------------------------------------------------
# einsum
# --------------------------------------------------------------------------------------
def _print_einsum(node: Einsum, memo: _Memo) -> Entry:
    if any(isinstance(op, Delta) for op in node.operands):
        found = _compressed(node, memo)
        if found is not None:
            return found
    scalars = [op for op, idx in zip(node.operands, node.in_idx) if not idx]
    tensors = [(op, idx) for op, idx in zip(node.operands, node.in_idx) if idx]
    if scalars:
        # Scalar operands are factors in front, like the coefficient (and may divide).
        body = None
        if tensors:
            rest = alg.einsum([op for op, _ in tensors], [idx for _, idx in tensors], node.out_idx)
            body = _entry(rest, memo)
        return _scaled(node.coef, scalars, body, memo)
    return _with_coef(node.coef, _einsum_body(node, memo))


def _prefixed(head: str, negative: bool, body: Entry) -> Entry:
    """``head body`` (and a leading minus): a scalar factor in front of ``body``."""
    sign = "-" if negative else ""
    if body.free:  # index notation takes the factor inside: "2 \sum_{j} X_{ij}"
        return Entry(sign + _juxtapose([head, body.text]), NEG if negative else PRODUCT, body.free)
    text = sign + _juxtapose([head, _wrap(body, HADAMARD)])
    return Entry(text, NEG if negative else min(PRODUCT, _used(body).prec))


def _with_coef(coef: float, body: Entry) -> Entry:
    if coef == 1.0:
        return body
    return _prefixed("" if abs(coef) == 1.0 else _num(abs(coef)), coef < 0, body)


def _scaled(coef: float, scalars: list[Node], body: Entry | None, memo: _Memo) -> Entry:
    """``coef · Π scalars · body``; negative powers of scalars go below a fraction bar."""
    num: dict[int, tuple[Node, float]] = {}
    den: dict[int, tuple[Node, float]] = {}
    for s in scalars:
        if isinstance(s, Elementwise) and s.fn == "pow" and s.param is not None and s.param < 0:
            base, power, side = s.arg, -s.param, den
        else:
            base, power, side = s, 1.0, num
        side[id(base)] = (base, side.get(id(base), (base, 0.0))[1] + power)

    def factors(side: dict[int, tuple[Node, float]]) -> list[str]:
        out = []
        for base, power in side.values():
            entry = _child(base, memo)
            out.append(_wrap(entry, POWER + 1) if power == 1.0 else f"{_wrap(entry, ATOM)}^{{{_num(power)}}}")
        return sorted(out, key=lambda f: (len(f), f))  # simplest first, independent of digest order

    top = [t for t in ["" if abs(coef) == 1.0 else _num(abs(coef)), *factors(num)] if t]
    # POWER, not ATOM: "s^{2}" or a fraction needs parentheses as the base of a power
    if den:
        head, prec = rf"\frac{{{_juxtapose(top) or '1'}}}{{{_juxtapose(factors(den))}}}", POWER
    else:
        head, prec = _juxtapose(top), POWER if len(top) == 1 else PRODUCT
    if body is not None:
        return _prefixed(head, coef < 0, body)
    return Entry(f"-{head}", NEG) if coef < 0 else Entry(head, prec)


# Splitting an n-ary product tries every "one operand times the rest" reading, and the
# rests recurse: exponential in n. Longer products read better in index notation anyway.
MAX_SPLIT_OPERANDS = 8


def _einsum_body(node: Einsum, memo: _Memo) -> Entry:
    ops, ins, out = node.operands, node.in_idx, node.out_idx
    child = [_child(op, memo) for op in ops]
    if len(ops) == 1:
        found = _single(ops[0], ins[0], out, child[0])
        if found is not None:
            return found
    if len(ops) >= 2 and all(idx == out for idx in ins):
        return _hadamard(child, out)
    if len(ops) == 2:
        found = _binary(ops, ins, out, child)
        if found is not None:
            return found
    if len(ops) >= 3:
        found = _chain(ops, ins, out, child)
        if found is not None:
            return found
    if 2 <= len(ops) <= MAX_SPLIT_OPERANDS:
        # printing splits only n >= 3; two operands with a repeated index ('ii,i->i')
        # read as one operand times a single-operand reading of the other
        found = _split_off_one(node, child, memo)
        if found is not None:
            return found
    return _index_notation(ops, ins, out, child)


def _hadamard(child: list[Entry], out: tuple[str, ...]) -> Entry:
    # Commutative, so the factors go simplest first (y ⊙ (X w)): the formula then does not
    # depend on the digest order of the operands.
    ordered = sorted((_used(c) for c in child), key=lambda c: (-c.prec, len(c.text), c.text))
    if not out:
        return Entry(_juxtapose([_wrap(c, POWER + 1) for c in ordered]), PRODUCT)
    return Entry(r" \odot ".join(_wrap(c, PRODUCT + 1) for c in ordered), HADAMARD)


def _transposed(x: Entry) -> str:
    r"""``x^\top``; the transposed inverse as ``X^{-\top}``, as the Matrix Cookbook writes it."""
    if x.prec == POWER and x.text.endswith("^{-1}"):
        return x.text[: -len("^{-1}")] + r"^{-\top}"
    return f"{_wrap(x, ATOM)}{_TOP}"


def _single(op: Node, s: tuple[str, ...], out: tuple[str, ...], x: Entry) -> Entry | None:
    """One operand: identity, transpose, sums, trace and diagonal (as printing reads them)."""
    distinct = len(set(s)) == len(s)
    if distinct and out == s:
        return x
    if distinct and len(s) == 2 and out == tuple(reversed(s)):
        return Entry(_transposed(x), POWER)
    if distinct and not out and s:
        if isinstance(op, Const) and op.value == 1.0:  # Σ over ones is the entry count
            return Entry(_juxtapose([_dim(d) for d in op.dims]), ATOM if op.ndim == 1 else PRODUCT)
        return Entry(rf"\sum {_wrap(x, POWER)}", PRODUCT)
    if distinct and len(s) == 2 and len(out) == 1:
        # row sums X 1 and column sums Xᵀ 1 of a matrix
        return Entry(f"{_wrap(x, PRODUCT) if out[0] == s[0] else _wrap(x, ATOM) + _TOP} \\mathbf{{1}}", PRODUCT)
    if len(s) == 2 and s[0] == s[1] and op.ndim == 2:
        if not out:
            return Entry(rf"\operatorname{{tr}}({x.text})", ATOM)
        if out == (s[0],):
            return Entry(rf"\operatorname{{diag}}({x.text})", ATOM)
    return None


def _binary(
    operands: tuple[Node, ...], ins: tuple[tuple[str, ...], ...], out: tuple[str, ...], child: list[Entry]
) -> Entry | None:
    """The two-operand readings of :func:`eincalc.printing._binary_pattern`, plus chains."""
    (a, b), (sa, sb) = operands, ins
    ca, cb = child
    if sa == out and sb == out:
        return _hadamard([ca, cb], out)
    if len(set(sa)) != len(sa) or len(set(sb)) != len(sb):
        return None
    for (_, sx, cx), (y, sy, cy) in (((a, sa, ca), (b, sb, cb)), ((b, sb, cb), (a, sa, ca))):
        if not sx and sy == out:  # scalar times tensor
            return Entry(f"{_wrap(cx, POWER + 1)} {_wrap(cy, HADAMARD)}", min(PRODUCT, _used(cy).prec))
        if sx == out and len(sx) == 2 and len(sy) == 1 and sy[0] in sx:
            # broadcasting a vector along a matrix is a product with a diagonal matrix
            if sy[0] == sx[1]:
                return Entry(rf"{_wrap(cx, PRODUCT)} \operatorname{{diag}}({cy.text})", PRODUCT)
            return Entry(rf"\operatorname{{diag}}({cy.text}) {_wrap(cx, PRODUCT)}", PRODUCT)
        if isinstance(y, Delta) and len(sx) == 1 and sy == out and sx[0] in sy:
            return Entry(rf"\operatorname{{diag}}({cx.text})", ATOM)
    if not set(sa) & set(sb) and sa and sb:  # outer products, in either operand order
        for (sx, cx), (sy, cy) in (((sa, ca), (sb, cb)), ((sb, cb), (sa, ca))):
            if out == sx + sy and len(sx) == 1 and len(sy) == 1:
                return Entry(f"{_wrap(cx, PRODUCT)} {_wrap(cy, ATOM)}{_TOP}", PRODUCT)
            if out == sx + sy:
                return Entry(rf"{_wrap(cx, PRODUCT + 1)} \circ {_wrap(cy, PRODUCT + 1)}", HADAMARD)
    return _chain(operands, ins, out, child)


def _split_off_one(node: Einsum, child: list[Entry], memo: _Memo) -> Entry | None:
    """An n-ary product as ``X op (rest)`` when a binary reading fits (as printing does)."""
    candidates: list[Entry] = []
    for k, op, idx, rest, keep in one_and_rest(node):
        found = _binary((op, rest), (idx, keep), node.out_idx, [child[k], _child(rest, memo)])
        # a rest that needs index notation is clearer as index notation of the whole product
        if found is not None and not _entry(rest, memo).free:
            candidates.append(found)
    # the reading with the fewest transposes and parentheses, then the shortest
    return min(candidates, key=lambda c: (c.text.count(_TOP) + c.text.count("("), len(c.text), c.text), default=None)


# --------------------------------------------------------------------------------------
# chains and cycles of vectors and matrices
# --------------------------------------------------------------------------------------
def _chain(
    operands: tuple[Node, ...], ins: tuple[tuple[str, ...], ...], out: tuple[str, ...], child: list[Entry]
) -> Entry | None:
    r"""Products where every index joins exactly two slots: matrix chains and traces.

    Operands (vectors and matrices) and output axes are the vertices of a graph whose
    edges are the indices. When every index joins two slots, each connected piece is a
    path (``u^\top A B v``, ``A B``, ``A x``) or a cycle (``\operatorname{tr}(A B)``).
    The pieces without output axes are scalars and go in front of the one with them.
    """
    if len(out) > 2 or any(op.ndim not in (1, 2) or len(set(idx)) != len(idx) for op, idx in zip(operands, ins)):
        return None
    count: dict[str, int] = {}
    for i in [*(i for idx in ins for i in idx), *out]:
        count[i] = count.get(i, 0) + 1
    # An index summed in one operand only is a product with a ones vector: 1ᵀ X A Xᵀ 1.
    lonely = [i for i, c in count.items() if c == 1 and i not in out]
    ins = tuple(ins) + tuple((i,) for i in lonely)
    child = list(child) + [Entry(r"\mathbf{1}", ATOM)] * len(lonely)
    slots: dict[str, list[int]] = {}  # index -> its two vertices: operand k is k, output axis p is -1 - p
    for k, idx in enumerate(ins):
        for i in idx:
            slots.setdefault(i, []).append(k)
    for p, i in enumerate(out):
        slots.setdefault(i, []).append(-1 - p)
    if any(len(v) != 2 for v in slots.values()):
        return None

    def walk(start: int, entered: str | None) -> list[tuple[int, str | None]]:
        """The vertices from ``start`` on, each with the index it is entered through."""
        seq: list[tuple[int, str | None]] = []
        v = start
        while True:
            seq.append((v, entered))
            onward = [i for i in (ins[v] if v >= 0 else (out[-1 - v],)) if i != entered]
            if not onward:
                return seq  # the far end of a path
            v = next(w for w in slots[onward[0]] if w != v)
            entered = onward[0]
            if v == start:
                return seq  # round a cycle

    seen: set[int] = set()
    scalars: list[Entry] = []
    main: Entry | None = None
    terminals = [-1 - p for p in range(len(out))] + [k for k, idx in enumerate(ins) if len(idx) == 1]
    for v in terminals:  # open paths, from an output axis where there is one
        if v in seen:
            continue
        seq = walk(v, None)
        seen.update(w for w, _ in seq)
        if seq[0][0] < 0:
            if main is not None or (len(out) == 2 and (seq[0][0], seq[-1][0]) != (-1, -2)):
                return None  # output axes in two pieces: an outer product, not a chain
            main = _read(seq, ins, child, cycle=False)[0]
        else:  # both ends are vectors: a scalar, read in the better direction
            other = walk(seq[-1][0], None)
            scalars.append(min(_read(seq, ins, child, False), _read(other, ins, child, False), key=lambda r: r[1])[0])
    for v in range(len(ins)):  # what is left are cycles of matrices: traces
        if v in seen:
            continue
        members = [w for w, _ in walk(v, ins[v][0])]
        seen.update(members)
        readings = [_read(walk(s, via), ins, child, cycle=True) for s in members for via in ins[s]]
        best = min(readings, key=lambda r: r[1])[0]
        scalars.append(Entry(rf"\operatorname{{tr}}({best.text})", ATOM))
    if main is None and len(scalars) == 1:
        return scalars[0]
    if main is not None and not scalars:
        return main
    parts = [_wrap(s, POWER + 1) for s in scalars] + ([_wrap(main, PRODUCT)] if main is not None else [])
    return Entry(_juxtapose(parts), PRODUCT)


def _chain_factor(entry: Entry) -> str:
    """A factor of a juxtaposed product; a product inside needs no parentheses (associativity)."""
    entry = _used(entry)
    plain_product = entry.prec == PRODUCT and not (entry.text[0].isdigit() or entry.text.startswith(r"\frac"))
    return entry.text if plain_product else _wrap(entry, POWER)


def _read(
    seq: list[tuple[int, str | None]], ins: tuple[tuple[str, ...], ...], child: list[Entry], cycle: bool
) -> tuple[Entry, tuple]:
    r"""A walk as a product read left to right, and a sort key for choosing among readings.

    A matrix entered through its column index is transposed; a vector at the left end of
    a path is a row (``x^\top``). The key prefers fewer matrix transposes, then
    transposes late in the product (``X A X^\top`` rather than ``X^\top X A``).
    """
    steps = [(v, via) for v, via in seq if v >= 0]
    parts: list[str] = []
    late: list[int] = []
    for n, (v, via) in enumerate(steps):
        if len(ins[v]) == 1:
            transposed = n == 0 and not cycle and seq[0][0] >= 0
        else:
            transposed = via == ins[v][1]
            if transposed:
                late.append(-n)
        parts.append(_transposed(child[v]) if transposed else _chain_factor(child[v]))
    if len(parts) == 1 and not parts[0].endswith(_TOP):
        entry = child[steps[0][0]]
    else:
        entry = Entry(_juxtapose(parts), PRODUCT)
    return entry, (len(late), sorted(late), entry.text)


# --------------------------------------------------------------------------------------
# compressed δ ⊗ core and index notation
# --------------------------------------------------------------------------------------
def _compressed(node: Einsum, memo: _Memo) -> Entry | None:
    """An einsum with a surviving unit tensor: ``diag``, ``I ⊗ C`` or δ index notation."""
    from eincalc.structure import compress

    c = compress(node)
    if not c.is_compressed:
        return None
    labels, core_labels = c.labels, c.core_labels
    dims = c.label_dims
    core = _entry(c.core, memo)
    counts = {lab: labels.count(lab) for lab in labels}
    if len(labels) == 2 and labels[0] == labels[1] and core_labels == (labels[0],):
        return Entry(rf"\operatorname{{diag}}({_used(core).text})", ATOM)
    r = len(labels) // 2
    if len(labels) % 2 == 0 and all(n <= 2 for n in counts.values()):
        rows, cols = labels[:r], labels[r:]
        shared = {lab for lab, n in counts.items() if n == 2}
        if not shared & set(core_labels):
            for front in (True, False):
                t = len(shared)
                eye_rows, eye_cols = (rows[:t], cols[:t]) if front else (rows[r - t :], cols[r - t :])
                rest = (rows[t:] + cols[t:]) if front else (rows[: r - t] + cols[: r - t])
                if eye_rows != eye_cols or set(eye_rows) != shared or rest != core_labels:
                    continue
                eye = _identity(tuple(dims[lab] for lab in eye_rows))
                if not core_labels:  # a scalar times the identity
                    if isinstance(c.core, Const) and c.core.value == 1.0:
                        return eye
                    return Entry(f"{_wrap(core, POWER + 1)} {_wrap(eye, HADAMARD)}", min(PRODUCT, eye.prec))
                pieces = [_wrap(eye, HADAMARD + 1), _wrap(core, PRODUCT + 1)]
                return Entry(r" \otimes ".join(pieces if front else pieces[::-1]), HADAMARD)
    # index notation: one δ per pair of axes on a diagonal, the core indexed by label
    names = [_index_name(p) for p in range(len(labels))]
    first: dict[str, str] = {}
    deltas: list[str] = []
    for p, lab in enumerate(labels):
        if lab in first:
            deltas.append(rf"\delta_{{{first[lab]}{names[p]}}}")
        else:
            first[lab] = names[p]
    parts = deltas
    if core_labels or not (isinstance(c.core, Const) and c.core.value == 1.0):
        parts = [*deltas, _indexed(c.core, core, "".join(first[lab] for lab in core_labels))]
    return Entry(_juxtapose(parts), PRODUCT, "".join(names))


def _index_name(k: int) -> str:
    return _INDEX_LETTERS[k] if k < len(_INDEX_LETTERS) else f"i_{{{k}}}"


def _indexed(node: Node, entry: Entry, sub: str) -> str:
    """``node``'s entry at indices ``sub``: ``X_{ij}``, ``(A + B)_{ij}``."""
    if not sub:
        return _wrap(entry, POWER + 1)
    if isinstance(node, Var) and "_" not in node.name:
        return f"{entry.text}_{{{sub}}}"
    return f"{_wrap(entry, ATOM + 1)}_{{{sub}}}"


def _index_notation(
    ops: tuple[Node, ...], ins: tuple[tuple[str, ...], ...], out: tuple[str, ...], child: list[Entry]
) -> Entry:
    r"""``Σ_{summed} Π operand[idx]``, e.g. ``\sum_{j} X_{ij} w_{j}``."""
    order = list(dict.fromkeys([*out, *(i for idx in ins for i in idx)]))
    names = {i: _index_name(k) for k, i in enumerate(order)}
    summed = [i for i in order if i not in out]
    factors = []
    for op, idx, entry in zip(ops, ins, child):
        sub = "".join(names[i] for i in idx)
        if isinstance(op, Delta):
            factors.append(rf"\delta_{{{sub}}}")
        elif isinstance(op, Const) and op.value == 1.0:
            factors.append(rf"\mathbf{{1}}_{{{sub}}}")
        else:
            factors.append(_indexed(op, entry, sub))
    body = _juxtapose(factors)
    if summed:
        body = rf"\sum_{{{','.join(names[i] for i in summed)}}} {body}"
    return Entry(body, PRODUCT, "".join(names[i] for i in out))
