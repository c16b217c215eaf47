"""networkx export, DOT text and Graphviz SVG of the expression DAG."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
import pytest

import eincalc as ec
import eincalc.algebra as alg
from eincalc import viz

X = ec.matrix("X", "m n")
w = ec.vector("w", "n")
y = ec.vector("y", "m")
V = ec.matrix("V", "n k")
LOGISTIC = ec.sum(ec.log(1 + ec.exp(-y * (X @ w))))
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' is not installed")


# --------------------------------------------------------------------------------------
# networkx
# --------------------------------------------------------------------------------------
def test_logistic_loss_graph():
    g = viz.to_networkx(LOGISTIC)
    # X, y, w, -y*(X@w), exp, ones(m), +, log, sum: counted by hand
    assert g.number_of_nodes() == 9
    assert g.number_of_edges() == 8
    kinds = sorted(d["kind"] for _, d in g.nodes(data=True))
    assert kinds == sorted(["var"] * 3 + ["einsum", "elementwise", "const", "add", "elementwise", "einsum"])
    assert nx.is_directed_acyclic_graph(g)
    # longest chain: X -> product -> exp -> + -> log -> sum
    assert nx.dag_longest_path_length(g) == 5
    names = {d["name"] for _, d in g.nodes(data=True) if d["kind"] == "var"}
    assert names == {"X", "y", "w"}
    (ones,) = [d for _, d in g.nodes(data=True) if d["kind"] == "const"]
    assert ones["value"] == 1.0 and ones["dims"] == ("m",) and ones["spec"] is None


def test_ids_follow_topological_order():
    g = viz.to_networkx(LOGISTIC)
    assert set(g.nodes) == {f"v{k}" for k in range(9)}
    for u, v in g.edges:
        assert int(u[1:]) < int(v[1:])  # operands come before results
    (root,) = [n for n in g.nodes if g.out_degree(n) == 0]
    assert g.nodes[root]["output"] == 0 and g.graph["outputs"] == [root]
    assert all(g.nodes[n]["output"] is None for n in g.nodes if n != root)


def test_shared_node_appears_once():
    f = ec.parse("x*y + exp(x*y)", x="", y="")
    g = viz.to_networkx(f)
    # x, y, xy (shared), exp, +
    assert g.number_of_nodes() == 5 and g.number_of_edges() == 5
    (product,) = [n for n, d in g.nodes(data=True) if d["kind"] == "einsum"]
    assert g.out_degree(product) == 2 and g.in_degree(product) == 2
    assert g.nodes[product]["dims"] == ()


def test_repeated_operand_is_one_edge_with_positions():
    x = ec.vector("x", "n")
    g = viz.to_networkx(ec.exp(x * x))
    (u, v) = [(a, b) for a, b in g.edges if g.nodes[b]["kind"] == "einsum"][0]
    assert g.edges[u, v]["positions"] == [0, 1] and g.edges[u, v]["position"] == 0


def test_einsum_attributes_are_a_valid_numpy_spec(rng):
    g = viz.to_networkx(X @ w)
    (node,) = [d for _, d in g.nodes(data=True) if d["kind"] == "einsum"]
    Xv, wv = rng.normal(size=(3, 4)), rng.normal(size=4)
    np.testing.assert_allclose(node["coef"] * np.einsum(node["spec"], Xv, wv), Xv @ wv)
    assert node["label"] == "*(ab,b,a)" and node["dims"] == ("m",)


def test_several_outputs_share_nodes():
    f = ec.sum(X @ w)
    g2 = X @ w
    g = viz.to_networkx([f, g2, f])
    assert g.number_of_nodes() == 4  # X, w, X@w, sum
    outputs = g.graph["outputs"]
    assert outputs[0] == outputs[2] != outputs[1]
    assert g.nodes[outputs[0]]["output"] == 0 and g.nodes[outputs[1]]["output"] == 1


def test_delta_and_function_attributes():
    H = alg.einsum([alg.delta(("m",)), V.T @ V], ["ij", "ab"], "iajb", 2.0)
    g = viz.to_networkx([H, ec.softmax(X, axis=0)])
    by_kind = {d["kind"]: d for _, d in g.nodes(data=True)}
    assert by_kind["delta"]["base"] == ("m",) and by_kind["delta"]["label"] == "δ(m)"
    assert by_kind["einsum"]["coef"] == 2.0 and by_kind["einsum"]["label"].startswith("2·*(")
    assert by_kind["unary"]["fn"] == "softmax" and by_kind["unary"]["axis"] == 0


def test_bad_input():
    with pytest.raises(TypeError):
        viz.to_networkx([X, 3])
    with pytest.raises(ValueError):
        viz.to_networkx([])


# --------------------------------------------------------------------------------------
# DOT
# --------------------------------------------------------------------------------------
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|->|[{}\[\];=,]|[^\s{}\[\];=,"]+')


def _parse_dot(text):
    """A small DOT reader: statements of a single digraph -> (node ids, edges, attributes)."""
    tokens = _TOKEN.findall(text)
    assert "".join(tokens).replace(" ", "") == re.sub(r"\s+", "", text), "untokenisable text"
    assert tokens[0] == "digraph" and tokens[2] == "{" and tokens[-1] == "}"
    depth = 0
    for tok in tokens:
        depth += {"{": 1, "}": -1}.get(tok, 0)
        assert depth >= 0
    assert depth == 0
    nodes, edges, attrs = {}, [], {}
    body = tokens[3:-1]
    statements, current = [], []
    for tok in body:
        if tok == ";":
            statements.append(current)
            current = []
        else:
            current.append(tok)
    assert current == [], "statement without ';'"

    def unquote(tok):
        assert tok.startswith('"') and tok.endswith('"'), tok
        return re.sub(r"\\([\"\\])", r"\1", tok[1:-1])  # keep DOT escapes such as \n

    def read_attrs(toks):
        assert toks[0] == "[" and toks[-1] == "]"
        out, inner = {}, toks[1:-1]
        for k in range(0, len(inner), 4):
            key, eq, value = inner[k : k + 3]
            assert eq == "=" and (k + 3 == len(inner) or inner[k + 3] == ",")
            out[key] = unquote(value)
        return out

    for st in statements:
        if st[0] in ("graph", "node", "edge"):
            attrs[st[0]] = read_attrs(st[1:])
        elif len(st) >= 3 and st[1] == "->":
            edges.append((unquote(st[0]), unquote(st[2]), read_attrs(st[3:]) if len(st) > 3 else {}))
        else:
            nodes[unquote(st[0])] = read_attrs(st[1:])
    return tokens[1], nodes, edges, attrs


def test_dot_matches_the_graph():
    text = viz.to_dot(LOGISTIC)
    _, nodes, edges, attrs = _parse_dot(text)
    g = viz.to_networkx(LOGISTIC)
    assert set(nodes) == set(g.nodes)
    assert {(u, v) for u, v, _ in edges} == set(g.edges)
    for u, v, _ in edges:  # every endpoint is declared
        assert u in nodes and v in nodes
    assert attrs["graph"]["rankdir"] == "BT"
    for nid, a in nodes.items():
        assert a["label"].split("\\n")[0] == g.nodes[nid]["label"] or a["label"].endswith("…")


def test_dot_styles_by_kind():
    H = alg.einsum([alg.delta(("m",)), V.T @ V], ["ij", "ab"], "iajb", 2.0)
    _, nodes, _, _ = _parse_dot(viz.to_dot([H, LOGISTIC]))
    g = viz.to_networkx([H, LOGISTIC])
    for nid, a in nodes.items():
        kind = g.nodes[nid]["kind"]
        if kind in ("const", "delta"):
            assert "dashed" in a["style"] and "gray" in a["color"]
        elif kind == "var":
            assert "filled" in a["style"]
        if g.nodes[nid]["output"] is not None:
            assert a["peripheries"] == "2"
    delta = next(a for nid, a in nodes.items() if g.nodes[nid]["kind"] == "delta")
    assert delta["label"] == "δ(m)"


def test_dot_repeated_operand_drawn_once_with_positions():
    x = ec.vector("x", "n")
    _, nodes, edges, _ = _parse_dot(viz.to_dot(ec.exp(x * x)))
    assert len(nodes) == 3 and len(edges) == 2
    labels = sorted(a.get("label", "") for _, _, a in edges)
    assert labels == ["", "0,1"]


def test_dot_escapes_quotes_and_unicode():
    theta = ec.vector("θ", "n")
    text = viz.to_dot(ec.exp(theta), name='my "graph" \\ test')
    name, nodes, _, _ = _parse_dot(text)
    assert name == r'"my \"graph\" \\ test"'
    assert any(a["label"].startswith("θ") for a in nodes.values())


def test_large_dag_is_compact_by_default():
    x = ec.vector("x", "n")
    e = x
    for k in range(100):
        e = ec.sin(e) if k % 2 else ec.exp(e)
    _, nodes, edges, _ = _parse_dot(viz.to_dot(e))
    assert len(nodes) == 101 and len(edges) == 100
    assert all("\\n" not in a["label"] for a in nodes.values())  # no dims line
    _, nodes_detail, _, _ = _parse_dot(viz.to_dot(e, detail=True, rankdir="LR", max_label=3))
    assert any("\\n(n)" in a["label"] for a in nodes_detail.values())


def test_long_labels_are_shortened():
    T = ec.tensor("T", "a b c d e f")
    big = ec.einsum("abcdef,abcdef,abcdef->fedcba", T, ec.exp(T), ec.sin(T))
    _, nodes, _, _ = _parse_dot(viz.to_dot(big, max_label=12, detail=False))
    assert any(a["label"].endswith("…") and len(a["label"]) == 12 for a in nodes.values())


def test_bad_rankdir():
    with pytest.raises(ValueError, match="rankdir"):
        viz.to_dot(X, rankdir="sideways")


# --------------------------------------------------------------------------------------
# SVG
# --------------------------------------------------------------------------------------
def _svg_root(svg):
    # dot writes an XML prolog and a DOCTYPE; ElementTree reads both
    return ET.fromstring(svg.encode("utf-8"))


@needs_dot
def test_svg_is_well_formed_and_complete():
    H = alg.einsum([alg.delta(("m",)), V.T @ V], ["ij", "ab"], "iajb", 2.0)
    svg = viz.render_svg([H, LOGISTIC])
    root = _svg_root(svg)
    assert root.tag.endswith("svg")
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = root.findall(".//s:g", ns)
    g = viz.to_networkx([H, LOGISTIC])
    assert sum(1 for e in groups if e.get("class") == "node") == g.number_of_nodes()
    assert sum(1 for e in groups if e.get("class") == "edge") == g.number_of_edges()
    assert "δ(m)" in svg


@needs_dot
def test_svg_repr_and_drawing():
    assert _svg_root(viz.repr_svg(X @ w)).tag.endswith("svg")
    d = viz.draw([LOGISTIC, X @ w], rankdir="LR")
    assert _svg_root(d._repr_svg_()).tag.endswith("svg")
    assert "Drawing of" in repr(d) and 'rankdir="LR"' in d.dot


def test_no_graphviz_gives_none(monkeypatch):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    assert viz.render_svg(X @ w) is None
    assert viz.repr_svg(X @ w) is None
    assert viz.draw(X @ w)._repr_svg_() is None


def test_dot_is_run_without_a_shell(monkeypatch):
    calls = []

    def fake_run(args, **kwargs):
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, 0, stdout=b"<svg/>", stderr=b"")

    monkeypatch.setattr(viz.shutil, "which", lambda name: "/opt/bin/dot")
    monkeypatch.setattr(viz.subprocess, "run", fake_run)
    assert viz.render_svg(X @ w, timeout=3.0) == "<svg/>"
    ((args, kwargs),) = calls
    assert args == ["/opt/bin/dot", "-Tsvg"]
    assert not kwargs.get("shell") and kwargs["timeout"] == 3.0
    assert kwargs["input"].decode("utf-8").startswith("digraph")


def test_dot_failure_and_timeout(monkeypatch):
    monkeypatch.setattr(viz.shutil, "which", lambda name: "/opt/bin/dot")

    def failing(args, **kwargs):
        return subprocess.CompletedProcess(args, 1, stdout=b"", stderr=b"syntax error in line 1")

    monkeypatch.setattr(viz.subprocess, "run", failing)
    with pytest.raises(RuntimeError, match="syntax error"):
        viz.render_svg(X @ w)
    assert viz.repr_svg(X @ w) is None

    def slow(args, **kwargs):
        raise subprocess.TimeoutExpired(args, kwargs["timeout"])

    monkeypatch.setattr(viz.subprocess, "run", slow)
    with pytest.raises(RuntimeError, match="longer than"):
        viz.render_svg(X @ w, timeout=0.5)
    assert viz.repr_svg(X @ w) is None
