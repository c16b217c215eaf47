"""Pictures of the expression DAG: a networkx graph, DOT text, Graphviz SVG, notebook display.

:func:`to_networkx` exports the DAG for analysis (depth, fan-out, shared nodes) with
plain attributes. :func:`to_dot` writes Graphviz DOT text, drawing each shared node
once; :func:`render_svg` runs the Graphviz ``dot`` program on it when it is installed
(and returns None when it is not); :func:`draw` wraps a DAG for display in a notebook.
:func:`repr_svg` is the body of ``Node._repr_svg_``.

Node ids are ``"v0"``, ``"v1"``, … in the order of :func:`eincalc.graph.topo_order`, the
same numbering as :func:`eincalc.printing.einsum_form` and :func:`eincalc.graph.dump`
use for one root. Formulas are :mod:`eincalc.latex` and :mod:`eincalc.printing`; this
module only draws.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from eincalc.errors import UnsupportedNodeError
from eincalc.expr import Add, Array, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var, Window
from eincalc.graph import topo_order

DEFAULT_TIMEOUT = 30.0
"""Seconds the ``dot`` program may run before :func:`render_svg` gives up."""

AUTO_DETAIL_LIMIT = 80
"""Above this many nodes, :func:`to_dot` drops dims lines and edge labels by default."""

SVG_REPR_LIMIT = 2000
"""Above this many nodes, notebook display skips the picture (layout would take too long)."""

# One style per node kind: inputs stand out, constants and unit tensors recede.
_STYLES: dict[str, dict[str, str]] = {
    "var": {"shape": "box", "style": "rounded,filled", "fillcolor": "#cfe2f3", "penwidth": "1.5"},
    "const": {"shape": "box", "style": "dashed", "color": "gray55", "fontcolor": "gray35"},
    "delta": {"shape": "box", "style": "dashed", "color": "gray55", "fontcolor": "gray35"},
    "einsum": {"shape": "ellipse", "fontname": "Courier"},
    "add": {"shape": "circle", "margin": "0.02"},
    "elementwise": {"shape": "ellipse", "style": "filled", "fillcolor": "#fff2cc"},
    "unary": {"shape": "box", "style": "filled", "fillcolor": "#fce5cd"},
}


def _roots(expr: Node | Iterable[Node]) -> list[Node]:
    roots = [expr] if isinstance(expr, Node) else list(expr)
    for r in roots:
        if not isinstance(r, Node):
            raise TypeError(f"expected eincalc expressions, got {type(r).__name__}")
    if not roots:
        raise ValueError("no expressions given")
    return roots


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else repr(float(value))


def node_label(node: Node) -> str:
    """A short human label for one node: a name, a number, a function or an einsum spec.

    Einsum labels are in ``*(s1,s2,s3)`` notation for two operands and
    ``*(s1,…->s0)`` otherwise, preceded by the coefficient when it is not 1.

    Examples:
        >>> import eincalc as ec
        >>> X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
        >>> node_label(X @ w), node_label(-ec.exp(w)), node_label(ec.ones("n"))
        ('*(ab,b,a)', '-1·*(a->a)', 'ones(n)')
    """
    if isinstance(node, Var):
        return node.name
    if isinstance(node, Array):
        return f"array({', '.join(node.dims)})"
    if isinstance(node, Window):
        return f"window({', '.join(node.dims)}, {'-' if node.from_end else ''}{node.start})"
    if isinstance(node, Const):
        if not node.dims:
            return _num(node.value)
        if node.value == 0.0:
            return f"zeros({', '.join(node.dims)})"
        ones = f"ones({', '.join(node.dims)})"
        return ones if node.value == 1.0 else f"{_num(node.value)}·{ones}"
    if isinstance(node, Delta):
        return f"δ({', '.join(node.base)})"
    if isinstance(node, Shift):
        return f"S({node.size}, {node.kernel})"
    if isinstance(node, Einsum):
        specs = ["".join(s) for s in node.in_idx]
        out = "".join(node.out_idx)
        body = f"*({specs[0]},{specs[1]},{out})" if len(specs) == 2 else f"*({','.join(specs)}->{out})"
        return body if node.coef == 1.0 else f"{_num(node.coef)}·{body}"
    if isinstance(node, Add):
        return "+"
    if isinstance(node, Elementwise):
        return node.fn if node.param is None else f"{node.fn} {_num(node.param)}"
    if isinstance(node, Unary):
        return node.fn if node.axis is None else f"{node.fn} axis={node.axis}"
    raise UnsupportedNodeError(f"no label for {type(node).__name__}")


# --------------------------------------------------------------------------------------
# networkx
# --------------------------------------------------------------------------------------
def to_networkx(expr: Node | Iterable[Node]) -> Any:
    """The DAG as a ``networkx.DiGraph``: one graph node per DAG node, edges operand → result.

    Graph nodes are ``"v0"``, ``"v1"``, … in :func:`eincalc.graph.topo_order` order
    (children before parents), so ``topo_order(expr)[k]`` is the node of ``"v{k}"``.
    Node attributes: ``kind``, ``label`` (see :func:`node_label`), ``dims`` (tuple),
    ``spec`` (einsum subscripts or None), ``coef`` (einsums), ``name`` (variables),
    ``value`` (constants), ``fn`` (functions), ``param``/``axis`` where they apply, and
    ``output``: the position of the node among the roots, or None. An operand used
    several times by one node (``x * x``) is one edge whose ``positions`` attribute lists
    every operand position; ``position`` is the first. ``graph.graph["outputs"]`` lists
    the root ids in the order given.

    Args:
        expr: an expression or a list of expressions sharing nodes.

    Returns:
        A ``networkx.DiGraph``.

    Examples:
        >>> import eincalc as ec, networkx as nx
        >>> x = ec.vector("x", "n")
        >>> g = to_networkx(ec.exp(x * x))
        >>> sorted(g.nodes), g.edges["v0", "v1"]["positions"], g.nodes["v2"]["output"]
        (['v0', 'v1', 'v2'], [0, 1], 0)
        >>> nx.dag_longest_path_length(g)
        2
    """
    import networkx as nx

    roots = _roots(expr)
    nodes = topo_order(roots)
    ids = {id(n): f"v{k}" for k, n in enumerate(nodes)}
    first_output: dict[int, int] = {}
    for k, r in enumerate(roots):
        first_output.setdefault(id(r), k)
    g = nx.DiGraph(outputs=[ids[id(r)] for r in roots])
    for n in nodes:
        attrs: dict[str, Any] = {
            "kind": n.kind,
            "label": node_label(n),
            "dims": tuple(n.dims),
            "spec": n.spec if isinstance(n, Einsum) else None,
            "output": first_output.get(id(n)),
        }
        if isinstance(n, Var):
            attrs["name"] = n.name
        elif isinstance(n, Const):
            attrs["value"] = n.value
        elif isinstance(n, Delta):
            attrs["base"] = tuple(n.base)
        elif isinstance(n, Shift):
            attrs.update(size=n.size, kernel=n.kernel, stride=n.stride, dilation=n.dilation, padding=n.padding)
        elif isinstance(n, Einsum):
            attrs["coef"] = n.coef
        elif isinstance(n, Elementwise):
            attrs["fn"], attrs["param"] = n.fn, n.param
        elif isinstance(n, Unary):
            attrs["fn"], attrs["axis"] = n.fn, n.axis
        g.add_node(ids[id(n)], **attrs)
    for n in nodes:
        for pos, c in enumerate(n.children):
            u, v = ids[id(c)], ids[id(n)]
            if g.has_edge(u, v):
                g.edges[u, v]["positions"].append(pos)
            else:
                g.add_edge(u, v, position=pos, positions=[pos])
    return g


# --------------------------------------------------------------------------------------
# DOT
# --------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    r"""A DOT double-quoted string; ``\n`` in ``text`` becomes a centred line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    return '"' + escaped.replace("\n", "\\n") + '"'


def _attrs(attrs: dict[str, str]) -> str:
    return "[" + ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items()) + "]"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def to_dot(
    expr: Node | Iterable[Node],
    *,
    rankdir: str = "BT",
    detail: bool | None = None,
    max_label: int = 32,
    name: str = "eincalc",
) -> str:
    """The DAG as Graphviz DOT text.

    Each DAG node is drawn once however many nodes use it. Variables are filled boxes,
    constants and unit tensors (δ) dashed grey boxes, einsums ellipses labelled in
    ``*(s1,s2,s3)`` notation, functions filled; outputs have a double border. Edges go
    from operand to result and, when ``detail`` is on, carry the operand position(s)
    of multi-operand einsums (``0,1`` for ``x * x``). The tooltip of every node (shown
    on hover in SVG) is its ``*(s1,s2,s3)`` line with its dims.

    Args:
        expr: an expression or a list of expressions sharing nodes.
        rankdir: Graphviz layout direction; ``"BT"`` puts inputs at the bottom,
            ``"LR"`` suits shallow, wide DAGs.
        detail: show dims and edge positions; None (the default) shows them for DAGs of
            at most :data:`AUTO_DETAIL_LIMIT` nodes, so large DAGs stay readable.
        max_label: longer labels are cut and end in ``…``.
        name: the graph's name in the DOT text.

    Returns:
        DOT source text (UTF-8 characters such as δ are kept; Graphviz reads UTF-8).

    Examples:
        >>> import eincalc as ec
        >>> x = ec.vector("x", "n")
        >>> text = to_dot(ec.exp(x) * x)
        >>> text.splitlines()[0], text.count(" -> ")
        ('digraph "eincalc" {', 3)
    """
    from eincalc.printing import node_line

    if rankdir not in ("TB", "BT", "LR", "RL"):
        raise ValueError(f"rankdir must be one of TB, BT, LR, RL; got {rankdir!r}")
    roots = _roots(expr)
    nodes = topo_order(roots)
    if detail is None:
        detail = len(nodes) <= AUTO_DETAIL_LIMIT
    ids = {id(n): f"v{k}" for k, n in enumerate(nodes)}
    outputs: dict[int, list[int]] = {}
    for k, r in enumerate(roots):
        outputs.setdefault(id(r), []).append(k)

    lines = [
        f"digraph {_quote(name)} {{",
        f"  graph {_attrs({'rankdir': rankdir, 'nodesep': '0.25', 'ranksep': '0.35'})};",
        f"  node {_attrs({'fontname': 'Helvetica', 'fontsize': '11', 'height': '0.3', 'margin': '0.06,0.03'})};",
        f"  edge {_attrs({'arrowsize': '0.6', 'color': 'gray30', 'fontsize': '8', 'fontcolor': 'gray40'})};",
    ]
    for n in nodes:
        nid = ids[id(n)]
        label = _shorten(node_label(n), max_label)
        if detail and n.dims and not isinstance(n, (Const, Delta, Shift)):
            label += "\n(" + ", ".join(n.dims) + ")"
        style = dict(_STYLES.get(n.kind, {}))
        style["label"] = label
        line = node_line(n, [ids[id(c)] for c in n.children])
        style["tooltip"] = f"{nid} = {line} : ({', '.join(n.dims)})"
        if id(n) in outputs:
            style["peripheries"] = "2"
            style["xlabel"] = "out " + ",".join(str(k) for k in outputs[id(n)])
        lines.append(f"  {_quote(nid)} {_attrs(style)};")
    for n in nodes:
        positions: dict[int, list[int]] = {}
        for pos, c in enumerate(n.children):
            positions.setdefault(id(c), []).append(pos)
        label_edges = detail and isinstance(n, Einsum) and len(n.children) > 1
        for cid, pos_list in positions.items():
            attrs = {"label": ",".join(map(str, pos_list))} if label_edges else {}
            if len(pos_list) > 1 and not label_edges:
                attrs["penwidth"] = "2"  # used twice: drawn once, thicker
            suffix = f" {_attrs(attrs)}" if attrs else ""
            lines.append(f"  {_quote(ids[cid])} -> {_quote(ids[id(n)])}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(expr: Node | Iterable[Node], *, timeout: float = DEFAULT_TIMEOUT, **dot_options: Any) -> str | None:
    """The DAG as SVG text, laid out by Graphviz's ``dot`` program; None if it is not installed.

    Args:
        expr: an expression or a list of expressions sharing nodes.
        timeout: seconds ``dot`` may run.
        **dot_options: passed to :func:`to_dot` (``rankdir``, ``detail``, …).

    Returns:
        The SVG document, or None when no ``dot`` executable is on ``PATH``.

    Raises:
        RuntimeError: ``dot`` failed or ran longer than ``timeout``.

    Examples:
        >>> import eincalc as ec
        >>> svg = render_svg(ec.exp(ec.vector("x", "n")))
        >>> svg is None or "<svg" in svg
        True
    """
    dot = shutil.which("dot")
    if dot is None:
        return None
    text = to_dot(expr, **dot_options)
    try:
        # an argument list and stdin: no shell is involved and nothing is interpolated
        done = subprocess.run(
            [dot, "-Tsvg"], input=text.encode("utf-8"), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Graphviz dot took longer than {timeout} s; try to_dot(...) with detail=False") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"Graphviz dot failed (exit {done.returncode}): {message}")
    return done.stdout.decode("utf-8")


def repr_svg(node: Node) -> str | None:
    """The body of ``Node._repr_svg_``: the DAG picture, or None so Jupyter falls back.

    None when Graphviz is absent, the DAG is very large or ``dot`` fails: a notebook
    display must not raise.
    """
    if len(topo_order(node)) > SVG_REPR_LIMIT:
        return None
    try:
        return render_svg(node, timeout=10.0)
    except RuntimeError:
        return None


class Drawing:
    """A DAG picture for notebooks: ``ec.viz.draw(H)`` as the last line of a cell shows it.

    Jupyter prefers LaTeX over SVG, so an expression displays as its formula; a
    ``Drawing`` has only the picture (and the DOT text in ``.dot``).
    """

    def __init__(self, expr: Node | Sequence[Node], **dot_options: Any) -> None:
        self.expr = expr
        self.dot_options = dot_options
        self.dot = to_dot(expr, **dot_options)

    def svg(self) -> str | None:
        """The SVG text (None without Graphviz)."""
        return render_svg(self.expr, **self.dot_options)

    def _repr_svg_(self) -> str | None:
        try:
            return self.svg()
        except RuntimeError:
            return None

    def __repr__(self) -> str:
        count = len(topo_order(_roots(self.expr)))
        return f"<Drawing of {count} nodes; .dot has the DOT text, .svg() the picture>"


def draw(expr: Node | Sequence[Node], **dot_options: Any) -> Drawing:
    """A displayable picture of the DAG (see :class:`Drawing` and :func:`to_dot` options).

    Examples:
        >>> import eincalc as ec
        >>> d = draw(ec.exp(ec.vector("x", "n")), rankdir="LR")
        >>> d.dot.count("->")
        1
    """
    return Drawing(expr, **dot_options)
