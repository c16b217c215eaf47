"""The textbook table of automatic differentiation for scalar expressions of scalar inputs.

:func:`trace_table` lists every intermediate ``v_i`` of the DAG in topological order (the
forward trace: its expression in earlier ``v``'s, its value and its local partials
``∂v_i/∂v_j``) and runs the reverse sweep by hand: the adjoint ``v̄_j = ∂f/∂v_j`` is
the sum over the uses ``i`` of ``v_j`` of ``v̄_i · ∂v_i/∂v_j``, seeded with ``v̄_f = 1``.
It is a teaching and inspection view of what :mod:`eincalc.diff` does symbolically
for tensors; it does not build derivative expressions and handles only scalars.

Local partials come from the rules of the node kinds: a product's partial is the
coefficient times the other factors, a sum's is 1, an element-wise function's is its
registry derivative ``get_elementwise(fn).deriv`` evaluated at the argument, and a general
function's is its registry Jacobian evaluated at the point.
"""

from __future__ import annotations

import html
import math
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from eincalc.calling import nearest
from eincalc.errors import ArgumentError, ShapeError
from eincalc.expr import Add, Const, Einsum, Elementwise, Node, Unary, Var
from eincalc.functions import get_elementwise, get_unary
from eincalc.graph import topo_order

_BAR = "\u0304"  # combining macron: v̄


@dataclass(frozen=True)
class TraceRow:
    """One intermediate ``v_i`` of the trace.

    Attributes:
        index: ``i``; inputs come first (``v0``, ``v1``, … in order of first use).
        name: ``"v{i}"``.
        node: the DAG node this row computes.
        expression: how ``v_i`` is computed from earlier rows (an input shows its name).
        value: the value of ``v_i`` at the point.
        partials: ``(v_j name, ∂v_i/∂v_j)`` for each distinct operand ``v_j`` (summed over
            the positions where one operand occurs twice, as in ``v0 · v0``).
        adjoint: ``v̄_i = ∂f/∂v_i``.
        adjoint_terms: ``(v_k name, ∂v_k/∂v_i)`` for each use ``v_k`` of ``v_i``: the terms
            ``v̄_k · ∂v_k/∂v_i`` that the reverse sweep adds up into ``v̄_i``.
    """

    index: int
    name: str
    node: Node
    expression: str
    value: float
    partials: tuple[tuple[str, float], ...]
    adjoint: float
    adjoint_terms: tuple[tuple[str, float], ...]

    @property
    def is_input(self) -> bool:
        """True for a row that is a variable."""
        return isinstance(self.node, Var)


@dataclass(frozen=True)
class TraceTable:
    """The forward trace and reverse sweep of ``f`` at one point (see :func:`trace_table`).

    Attributes:
        rows: one :class:`TraceRow` per intermediate, in evaluation order.
        value: ``f`` at the point.
        adjoints: ``∂f/∂x`` by variable name (the gradient).
    """

    rows: tuple[TraceRow, ...]
    value: float
    adjoints: dict[str, float] = field(default_factory=dict)

    def row(self, name: str) -> TraceRow:
        """The row called ``name`` (``"v3"``) or of the variable ``name``."""
        for r in self.rows:
            if r.name == name or (isinstance(r.node, Var) and r.node.name == name):
                return r
        raise KeyError(f"no row {name!r}; rows are {', '.join(r.name for r in self.rows)}")

    def _cells(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            partials = ", ".join(f"∂/∂{j} = {_fmt(p)}" for j, p in r.partials)
            terms = " + ".join(f"v{_BAR}{k[1:]}·{_factor(p)}" for k, p in r.adjoint_terms)
            out.append([r.name, r.expression, _fmt(r.value), partials, terms or "seed", _fmt(r.adjoint)])
        return out

    def __str__(self) -> str:
        head = ["v", "expression", "value", "local partials ∂v_i/∂v_j", "reverse sweep Σ v̄_k·∂v_k/∂v_i", "adjoint v̄_i"]
        cells = [head, *self._cells()]
        widths = [max(_width(row[c]) for row in cells) for c in range(len(head))]

        def line(row: list[str]) -> str:
            return "  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(row, widths)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        grads = ", ".join(f"∂f/∂{k} = {_fmt(v)}" for k, v in self.adjoints.items())
        return "\n".join([line(head), rule, *(line(r) for r in cells[1:]), "", f"f = {_fmt(self.value)}; {grads}"])

    def __repr__(self) -> str:
        return f"<TraceTable of {len(self.rows)} rows; f = {_fmt(self.value)}>"

    def _repr_html_(self) -> str:
        def name(v: str, bar: bool = False) -> str:
            base = '<span style="text-decoration: overline">v</span>' if bar else "v"
            return f"{base}<sub>{html.escape(v[1:])}</sub>"

        head = [
            "",
            "expression",
            "value",
            "local partials ∂v<sub>i</sub>/∂v<sub>j</sub>",
            "reverse sweep",
            name("vi", bar=True) + " = ∂f/∂v<sub>i</sub>",
        ]
        rows = []
        for r in self.rows:
            partials = ", ".join(f"∂/∂{name(j)} = {_fmt(p)}" for j, p in r.partials)
            terms = " + ".join(f"{name(k, bar=True)}·{_factor(p)}" for k, p in r.adjoint_terms) or "seed"
            cells = [name(r.name), html.escape(r.expression), _fmt(r.value), partials, terms, _fmt(r.adjoint)]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        return (
            "<table><thead><tr>"
            + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
        )


def _fmt(x: float) -> str:
    return f"{x:.8g}"


def _factor(x: float) -> str:
    return f"({_fmt(x)})" if x < 0 else _fmt(x)


def _width(text: str) -> int:
    # combining characters (the bar of v̄) take no column of their own
    return sum(0 if unicodedata.combining(ch) else 1 for ch in text)


def trace_table(f: Node, /, **scalar_values: float) -> TraceTable:
    """The forward trace and reverse sweep of automatic differentiation for ``f`` at a point.

    Args:
        f: a scalar expression whose every node is a scalar (scalar variables, products,
            sums and functions of them).
        **scalar_values: a number for each variable of ``f``.

    Returns:
        A :class:`TraceTable`: ``rows`` (values, local partials, adjoints), ``adjoints``
        (the gradient by variable name), a text table as ``str(table)`` and an HTML
        table in notebooks.

    Raises:
        ShapeError: ``f`` has a node that is not a scalar.
        ArgumentError: a variable has no value, or a value is given for a name ``f`` does not use.

    Examples:
        >>> import eincalc as ec
        >>> f = ec.parse("x*y + exp(x*y)", x="", y="")
        >>> t = trace_table(f, x=1.0, y=2.0)
        >>> [r.expression for r in t.rows]
        ['x', 'y', 'v0 · v1', 'exp(v2)', 'v3 + v2']
        >>> round(t.adjoints["y"], 6), round(1 + math.exp(2), 6)
        (8.389056, 8.389056)
    """
    if not isinstance(f, Node):
        raise TypeError(f"trace_table needs an eincalc expression, got {type(f).__name__}")
    nodes = topo_order(f)
    for n in nodes:
        if n.dims:
            raise ShapeError(
                f"trace_table handles scalar expressions only; {n.kind} node {n} has dims ({', '.join(n.dims)})"
            )
    inputs = [n for n in nodes if isinstance(n, Var)]
    names = [v.name for v in inputs]
    extra = [k for k in scalar_values if k not in names]
    if extra:
        uses = ", ".join(names) or "no variables"
        near = nearest(extra[0], names)
        hint = f"; did you mean {near!r}?" if near else ""
        raise ArgumentError(
            f"value(s) given for {', '.join(extra)}, which the expression does not use{hint} (it uses {uses})"
        )
    missing = [v for v in names if v not in scalar_values]
    if missing:
        raise ArgumentError(f"no value given for {', '.join(missing)} (the expression needs {', '.join(names)})")

    # Inputs first, then the computed nodes; constants are not rows, they appear inline.
    order = inputs + [n for n in nodes if not isinstance(n, (Var, Const))]
    label = {id(n): f"v{k}" for k, n in enumerate(order)}
    value: dict[int, float] = {}
    for n in nodes:
        if isinstance(n, Var):
            value[id(n)] = float(scalar_values[n.name])
        elif isinstance(n, Const):
            value[id(n)] = n.value
        else:
            value[id(n)] = _value(n, [value[id(c)] for c in n.children])

    partials: dict[int, dict[int, float]] = {}
    for n in order:
        local: dict[int, float] = {}
        for pos, c in enumerate(n.children):
            if not isinstance(c, Const):
                local[id(c)] = local.get(id(c), 0.0) + _partial(n, pos, value, scalar_values)
        partials[id(n)] = local

    # Reverse sweep: every use of v_j has been visited before v_j itself.
    adjoint = {id(n): 0.0 for n in order}
    terms: dict[int, list[tuple[str, float]]] = {id(n): [] for n in order}
    if id(f) in adjoint:
        adjoint[id(f)] = 1.0
    for n in reversed(order):
        for cid, p in partials[id(n)].items():
            adjoint[cid] += adjoint[id(n)] * p
            terms[cid].append((label[id(n)], p))

    rows = tuple(
        TraceRow(
            index=k,
            name=label[id(n)],
            node=n,
            expression=_expression(n, label),
            value=value[id(n)],
            partials=tuple((label[c], p) for c, p in partials[id(n)].items()),
            adjoint=adjoint[id(n)],
            adjoint_terms=tuple(terms[id(n)]),
        )
        for k, n in enumerate(order)
    )
    grads = {v.name: adjoint[id(v)] for v in inputs}
    return TraceTable(rows=rows, value=value[id(f)], adjoints=grads)


def _value(n: Node, args: list[float]) -> float:
    """The value of one scalar node from the values of its operands."""
    if isinstance(n, Einsum):
        return n.coef * math.prod(args)
    if isinstance(n, Add):
        return math.fsum(args)
    with np.errstate(all="ignore"):
        if isinstance(n, Elementwise):
            return float(get_elementwise(n.fn).evaluate([np.asarray(a, dtype=float) for a in args], n.param))
        if isinstance(n, Unary):
            return float(get_unary(n.fn).numpy(np.asarray(args[0], dtype=float), n.axis))
    raise ShapeError(f"trace_table has no rule for {n.kind} nodes")


def _partial(n: Node, pos: int, value: dict[int, float], point: dict[str, float]) -> float:
    """∂n/∂(operand at ``pos``) at the point, from the rule of ``n``'s kind."""
    if isinstance(n, Einsum):  # c · Π a_k: the coefficient times the other factors
        return n.coef * math.prod(value[id(c)] for k, c in enumerate(n.children) if k != pos)
    if isinstance(n, Add):
        return 1.0
    if isinstance(n, Elementwise):
        deriv = get_elementwise(n.fn).partials(n.args, n.param)[pos]
    elif isinstance(n, Unary):
        deriv = get_unary(n.fn).jacobian(n)
    else:
        raise ShapeError(f"trace_table has no rule for {n.kind} nodes")
    return _evaluate_at(deriv, point)


def _evaluate_at(expr: Node, point: dict[str, float]) -> float:
    """The value of a scalar derivative expression (it may use any variable of f)."""
    from eincalc.interpreter import evaluate

    used = {name: np.float64(point[name]) for name in expr.variables()}
    return float(np.asarray(evaluate(expr, **used)))


def _operand_text(c: Node, label: dict[int, str]) -> str:
    if isinstance(c, Const):
        text = _fmt(c.value)
        return f"({text})" if c.value < 0 else text
    return label[id(c)]


def _expression(n: Node, label: dict[int, str]) -> str:
    args = [_operand_text(c, label) for c in n.children]
    if isinstance(n, Var):
        return n.name
    if isinstance(n, Einsum):
        factors = " · ".join(args)
        if n.coef == 1.0:
            return factors
        return f"-{factors}" if n.coef == -1.0 else f"{_fmt(n.coef)} · {factors}"
    if isinstance(n, Add):
        return " + ".join(args)
    if isinstance(n, Elementwise):
        if n.fn == "pow":
            return f"{args[0]} ** {_fmt(n.param if n.param is not None else 1.0)}"
        return f"{n.fn}({', '.join(args)})"
    if isinstance(n, Unary):
        return f"{n.fn}({args[0]})" if n.axis is None else f"{n.fn}({args[0]}, axis={n.axis})"
    raise ShapeError(f"trace_table has no rule for {n.kind} nodes")
