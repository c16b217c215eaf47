"""Text views of expressions: NumPy syntax (parses back), ``*(s1,s2,s3)`` form, node lines.

:func:`to_numpy_syntax` prints matrix notation where a pattern is recognised
(``A @ B``, ``X.T``, ``a * b``, ``sum(x, axis=0)``, ``trace``, ``diag``, ``outer``) and
``einsum('…', …)`` otherwise; parsing the text back (with the same declarations) gives
the same node. LaTeX lives in :mod:`eincalc.latex`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator

from eincalc import dims as dimsmod
from eincalc.errors import UnsupportedNodeError
from eincalc.expr import Add, Array, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var, Window
from eincalc.functions import get_elementwise, get_unary
from eincalc.graph import topo_order

# Python precedence levels used to decide parentheses.
ATOM, POWER, UNARY, PRODUCT, SUM, COMPARE, LOWEST = 100, 90, 80, 70, 60, 50, 0
_LEVELS = {"atom": ATOM, "power": POWER, "product": PRODUCT, "compare": COMPARE}

# Products with more operands print as one einsum call: reading them as `X @ (rest)`
# builds and prints many sub-products, and beyond sixteen factors the matrix notation
# stops being easier to read than the einsum anyway.
MAX_SPLIT_OPERANDS = 16


def _num(value: float) -> str:
    return repr(float(value))


def _dims_literal(dims: tuple[str, ...]) -> str:
    return repr(" ".join(dims))


def to_numpy_syntax(node: Node) -> str:
    """``node`` in NumPy syntax; ``parse`` of the result is ``node`` again.

    Shared sub-expressions are printed in full at each use (this is a formula, not code;
    see :mod:`eincalc.codegen` for code that computes them once).

    Examples:
        >>> import eincalc as ec
        >>> X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
        >>> to_numpy_syntax(2 * ec.exp(X @ w))
        '2.0 * exp(X @ w)'
    """
    return _entry(node)[0]


# Printed text of nodes, shared by every nested _entry call of one top-level print. The
# n-ary einsum printer prints candidate sub-products over and over; without this memo
# printing was factorial in the number of operands (a chain of 8 matrix products took
# seconds, 10 took minutes). Keys are nodes (identity hash), held strongly while printing.
_MEMO: contextvars.ContextVar[dict[Node, tuple[str, int]] | None] = contextvars.ContextVar(
    "eincalc_print_memo", default=None
)


def _entry(node: Node) -> tuple[str, int]:
    shared = _MEMO.get()
    if shared is None:
        token = _MEMO.set({})
        try:
            return _entry(node)
        finally:
            _MEMO.reset(token)
    if node in shared:
        return shared[node]
    memo: dict[int, tuple[str, int]] = {}
    for n in topo_order(node):
        entry = shared.get(n)
        if entry is None:
            entry = shared[n] = _print(n, memo)
        memo[id(n)] = entry
    return memo[id(node)]


def _wrap(entry: tuple[str, int], minimum: int) -> str:
    text, prec = entry
    return text if prec >= minimum else f"({text})"


def _print(node: Node, memo: dict[int, tuple[str, int]]) -> tuple[str, int]:
    child = [memo[id(c)] for c in node.children]
    if isinstance(node, Var):
        return node.name, ATOM
    if isinstance(node, Const):
        if not node.dims:
            return (_num(node.value), ATOM) if node.value >= 0 else (_num(node.value), UNARY)
        if node.value == 0.0:
            return f"zeros({_dims_literal(node.dims)})", ATOM
        ones = f"ones({_dims_literal(node.dims)})"
        return (ones, ATOM) if node.value == 1.0 else (f"{_num(node.value)} * {ones}", PRODUCT)
    if isinstance(node, Delta):
        return f"eye({_dims_literal(node.base)})", ATOM
    if isinstance(node, Shift):
        return shift_syntax(node), ATOM
    if isinstance(node, Window):
        if node.rows is not None:
            return f"window({_dims_literal(node.dims)}, rows={list(node.rows)!r})", ATOM
        end = ", from_end=True" if node.from_end else ""
        return f"window({_dims_literal(node.dims)}, {node.start}{end})", ATOM
    if isinstance(node, Array):
        literal = repr(node.data.tolist())
        if all(dimsmod.is_literal(d) for d in node.dims):
            return f"array({literal})", ATOM
        return f"array({literal}, dims={_dims_literal(node.dims)})", ATOM
    if isinstance(node, Elementwise):
        if node.fn == "pow":
            exponent = _num(node.param if node.param is not None else 1.0)
            return f"{_wrap(child[0], ATOM)} ** {exponent}", POWER
        entry = get_elementwise(node.fn)
        prec = _LEVELS[entry.syntax_prec]
        # a constant argument is a number that broadcasts: maximum(x, 0.0) parses back the
        # same; when every argument is constant, one keeps its dims (log(zeros('n')))
        broadcast = not all(isinstance(a, Const) for a in node.args) or not node.dims
        child = [
            (_num(a.value), ATOM if a.value >= 0 else UNARY) if isinstance(a, Const) and (broadcast or k) else c
            for k, (a, c) in enumerate(zip(node.args, child))
        ]
        parts = [c[0] if prec == ATOM else _wrap(c, prec + 1) for c in child]
        return entry.syntax.format(*parts), prec
    if isinstance(node, Unary):
        return get_unary(node.fn).printed(child[0][0], node.arg.dims, node.axis), ATOM
    if isinstance(node, Add):
        parts: list[str] = []
        for k, (term, entry) in enumerate(zip(node.terms, child)):
            negative = isinstance(term, Einsum) and term.coef < 0 or isinstance(term, Const) and term.value < 0
            if negative and k > 0:
                positive = (
                    _print_einsum(term, [memo[id(c)] for c in term.children], -term.coef)
                    if isinstance(term, Einsum)
                    else (_num(-term.value), ATOM)
                )  # type: ignore[union-attr]
                parts.append(f"- {_wrap(positive, SUM + 1)}")
            else:
                text = _num(term.value) if isinstance(term, Const) else _wrap(entry, SUM + 1 if k else SUM)
                parts.append(text if k == 0 else f"+ {text}")
        return " ".join(parts), SUM
    if isinstance(node, Einsum):
        return _print_einsum(node, child, node.coef)
    raise UnsupportedNodeError(f"no NumPy-syntax printer for {type(node).__name__}")


def _print_einsum(node: Einsum, child: list[tuple[str, int]], coef: float) -> tuple[str, int]:
    body = _einsum_body(node, child)
    if coef == 1.0:
        return body
    if coef == -1.0:
        return f"-{_wrap(body, UNARY)}", UNARY
    return f"{_num(coef)} * {_wrap(body, PRODUCT + 1)}", PRODUCT


def _einsum_body(node: Einsum, child: list[tuple[str, int]]) -> tuple[str, int]:
    ops, ins, out = node.operands, node.in_idx, node.out_idx
    if len(ops) == 1:
        (s,), x = ins, child[0]
        distinct = len(set(s)) == len(s)
        if distinct and out == s:
            return x
        if distinct and len(s) >= 2 and out == tuple(reversed(s)):
            return f"{_wrap(x, ATOM)}.T", ATOM
        if distinct and not out and s:
            return f"sum({x[0]})", ATOM
        if distinct and out and set(out) < set(s) and list(out) == [i for i in s if i in out]:
            axes = [k for k, i in enumerate(s) if i not in out]
            axis = str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"
            return f"sum({x[0]}, axis={axis})", ATOM
        if len(s) == 2 and s[0] == s[1] and ops[0].ndim == 2:
            if not out:
                return f"trace({x[0]})", ATOM
            if out == (s[0],):
                return f"diag({x[0]})", ATOM
    if len(ops) >= 2 and all(idx == out for idx in ins):
        return " * ".join(_wrap(c, PRODUCT + 1) for c in child), PRODUCT
    if len(ops) == 2:
        pattern = _binary_pattern(node.operands, node.in_idx, out, child)
        if pattern is not None:
            return pattern
    if 3 <= len(ops) <= MAX_SPLIT_OPERANDS:
        split = _split_off_one(node, child)
        if split is not None:
            return split
    args = ", ".join(c[0] for c in child)
    return f"einsum({node.spec!r}, {args})", ATOM


def one_and_rest(node: Einsum) -> Iterator[tuple[int, Node, tuple[str, ...], Node, tuple[str, ...]]]:
    """Each reading of an n-ary product as ``operand k`` times ``the rest`` (a node of its own).

    Yields ``(k, operand, its indices, rest, rest's indices)``; the rest keeps the indices
    it shares with the output or with operand k. Shared by the NumPy and LaTeX printers.
    """
    from eincalc import algebra

    for k, (op, idx) in enumerate(zip(node.operands, node.in_idx)):
        others = [j for j in range(len(node.operands)) if j != k]
        rest_idx = {i for j in others for i in node.in_idx[j]}
        keep = tuple(dict.fromkeys([i for i in node.out_idx if i in rest_idx] + [i for i in idx if i in rest_idx]))
        rest = algebra.einsum([node.operands[j] for j in others], [node.in_idx[j] for j in others], keep)
        if rest.ndim == len(keep) and not isinstance(rest, Const):
            yield k, op, idx, rest, keep


def _split_off_one(node: Einsum, child: list[tuple[str, int]]) -> tuple[str, int] | None:
    """Print an n-ary product as ``X op (rest)`` when a binary pattern fits.

    The rest is built as its own einsum node; parsing the text back flattens it into
    ``node`` again, so the round trip holds.
    """
    candidates: list[tuple[str, int]] = []
    for k, op, idx, rest, keep in one_and_rest(node):
        if _binary_pattern((op, rest), (idx, keep), node.out_idx, [child[k], ("", ATOM)]) is None:
            continue  # decide on the pattern before printing the rest (which recurses)
        found = _binary_pattern((op, rest), (idx, keep), node.out_idx, [child[k], _entry(rest)])
        if found is not None:
            candidates.append(found)
    # prefer the reading with the fewest transposes and parentheses
    return min(candidates, key=lambda c: (c[0].count(".T") + c[0].count("("), len(c[0])), default=None)


def _binary_pattern(
    operands: tuple[Node, ...], ins: tuple[tuple[str, ...], ...], out: tuple[str, ...], child: list[tuple[str, int]]
) -> tuple[str, int] | None:
    (a, b), (sa, sb) = operands, ins
    ca, cb = child
    if sa == out and sb == out:
        return f"{_wrap(ca, PRODUCT + 1)} * {_wrap(cb, PRODUCT + 1)}", PRODUCT
    if len(set(sa)) != len(sa) or len(set(sb)) != len(sb):
        return None
    for (_, sx, cx), (y, sy, cy) in (((a, sa, ca), (b, sb, cb)), ((b, sb, cb), (a, sa, ca))):
        if not sx and sy == out:  # scalar times tensor
            return f"{_wrap(cx, PRODUCT)} * {_wrap(cy, PRODUCT + 1)}", PRODUCT
        if sx == out and len(sy) < len(sx) and sx[len(sx) - len(sy) :] == sy and sy:  # broadcast
            return f"{_wrap(cx, PRODUCT)} * {_wrap(cy, PRODUCT + 1)}", PRODUCT
        if isinstance(y, Delta) and len(sx) == 1 and sy == out and sx[0] == sy[0]:
            return f"diag({cx[0]})", ATOM
    shared = set(sa) & set(sb)
    if not shared and out == sa + sb and sa and sb:
        return f"outer({ca[0]}, {cb[0]})", ATOM
    if len(shared) == 1 and len(sa) <= 2 and len(sb) <= 2 and not (shared & set(out)):
        (j,) = shared
        fa = tuple(i for i in sa if i != j)
        fb = tuple(i for i in sb if i != j)
        for (sx, cx, fx), (sy, cy, fy) in (((sa, ca, fa), (sb, cb, fb)), ((sb, cb, fb), (sa, ca, fa))):
            if out != fx + fy:
                continue
            left = _wrap(cx, PRODUCT) if sx[-1] == j else f"{_wrap(cx, ATOM)}.T"
            right_ok = sy[0] == j
            right = _wrap(cy, PRODUCT + 1) if right_ok else f"{_wrap(cy, ATOM)}.T"
            return f"{left} @ {right}", PRODUCT
    return None


def shift_syntax(node: Shift) -> str:
    """``shift(size=…, kernel=…)`` with the non-default options; parses back."""
    options = [f"size={node.size}", f"kernel={node.kernel}"]
    for name, default in (("stride", 1), ("dilation", 1), ("padding", 0)):
        if getattr(node, name) != default:
            options.append(f"{name}={getattr(node, name)}")
    return f"shift({', '.join(options)})"


def node_line(node: Node, names: list[str]) -> str:
    """One node in ``*(s1,s2,s3)`` form, with its children given by ``names``."""
    if isinstance(node, Var):
        return node.name
    if isinstance(node, Const):
        if not node.dims:
            return _num(node.value)
        return (
            f"ones({', '.join(node.dims)})"
            if node.value == 1.0
            else f"{_num(node.value)} * ones({', '.join(node.dims)})"
        )
    if isinstance(node, Delta):
        return f"δ({', '.join(node.base)})"
    if isinstance(node, Shift):
        return shift_syntax(node)
    if isinstance(node, Array):
        return f"array({', '.join(node.dims)})"
    if isinstance(node, Window):
        return f"window({', '.join(node.dims)}, {'-' if node.from_end else ''}{node.start})"
    if isinstance(node, Elementwise):
        return f"{names[0]} ** {_num(node.param or 0)}" if node.fn == "pow" else f"{node.fn}({', '.join(names)})"
    if isinstance(node, Unary):
        return f"{node.fn}({names[0]}{'' if node.axis is None else f', axis={node.axis}'})"
    if isinstance(node, Add):
        return " + ".join(names)
    if isinstance(node, Einsum):
        prefix = "" if node.coef == 1.0 else f"{_num(node.coef)} · "
        specs = ["".join(s) for s in node.in_idx]
        if len(names) == 2:
            return f"{prefix}{names[0]} *({specs[0]},{specs[1]},{''.join(node.out_idx)}) {names[1]}"
        return f"{prefix}*({','.join(specs)}->{''.join(node.out_idx)})({', '.join(names)})"
    raise UnsupportedNodeError(f"no printer for {type(node).__name__}")


def einsum_form(roots: Node | list[Node]) -> str:
    """Every node of the DAG on its own line in ``*(s1,s2,s3)`` notation.

    Examples:
        >>> import eincalc as ec
        >>> X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
        >>> print(einsum_form(X @ w))
        v0 = X                    : (m, n)
        v1 = w                    : (n)
        v2 = v0 *(ab,b,a) v1      : (m)
    """
    nodes = topo_order(roots)
    names = {id(n): f"v{i}" for i, n in enumerate(nodes)}
    lines = []
    for n in nodes:
        body = node_line(n, [names[id(c)] for c in n.children])
        lines.append(f"{names[id(n)]} = {body:<20} : ({', '.join(n.dims)})")
    return "\n".join(lines)
