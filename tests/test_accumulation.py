"""The AD trace table against closed forms and central differences in plain Python."""

import math
import xml.etree.ElementTree as ET

import pytest

import eincalc as ec
from eincalc.accumulation import trace_table

E2 = math.exp(2.0)


@pytest.fixture
def table():
    f = ec.parse("x*y + exp(x*y)", x="", y="")
    return trace_table(f, x=1.0, y=2.0)


def test_adjoints_closed_form(table):
    # f = xy + e^{xy}: ∂f/∂x = y(1 + e^{xy}), ∂f/∂y = x(1 + e^{xy}) at (1, 2)
    assert table.adjoints["x"] == pytest.approx(2 + 2 * E2, abs=1e-12, rel=0)
    assert table.adjoints["y"] == pytest.approx(1 + E2, abs=1e-12, rel=0)
    assert table.value == pytest.approx(2 + E2, abs=1e-12, rel=0)


def test_rows_are_the_shared_dag(table):
    # x, y, the one shared product xy, its exp, the sum: xy appears once
    assert [r.name for r in table.rows] == ["v0", "v1", "v2", "v3", "v4"]
    assert [r.expression for r in table.rows] == ["x", "y", "v0 · v1", "exp(v2)", "v3 + v2"]
    values = [r.value for r in table.rows]
    assert values == pytest.approx([1.0, 2.0, 2.0, E2, 2.0 + E2], abs=1e-12, rel=0)
    assert table.rows[0].is_input and not table.rows[2].is_input


def test_local_partials(table):
    product, expo, total = table.rows[2], table.rows[3], table.rows[4]
    assert dict(product.partials) == pytest.approx({"v0": 2.0, "v1": 1.0})  # ∂(v0 v1) = (v1, v0)
    assert dict(expo.partials) == pytest.approx({"v2": E2}, abs=1e-12)  # exp' = exp
    assert dict(total.partials) == {"v3": 1.0, "v2": 1.0}
    assert table.rows[0].partials == ()


def test_reverse_sweep_sums_over_uses(table):
    shared = table.row("v2")
    # v2 is used by the sum (partial 1) and by exp (partial e²)
    assert sorted(k for k, _ in shared.adjoint_terms) == ["v3", "v4"]
    assert shared.adjoint == pytest.approx(1 + E2, abs=1e-12, rel=0)
    assert table.row("v4").adjoint == 1.0 and table.row("v4").adjoint_terms == ()
    assert table.row("x").adjoint == table.adjoints["x"]


def test_repeated_operand_partial_is_summed():
    t = trace_table(ec.parse("x*x", x=""), x=3.0)
    assert dict(t.rows[1].partials) == {"v0": 6.0}
    assert t.adjoints == {"x": 6.0}


CASES = [
    ("sin(x)*cos(y) + tanh(x*y)", lambda x, y: math.sin(x) * math.cos(y) + math.tanh(x * y)),
    ("log(x) / y + sqrt(x*y) - x**3", lambda x, y: math.log(x) / y + math.sqrt(x * y) - x**3),
    ("sigmoid(x - y) * softplus(2*y)", lambda x, y: 1 / (1 + math.exp(-(x - y))) * math.log1p(math.exp(2 * y))),
    ("abs(x - 3*y) + exp(-x*x) * y", lambda x, y: abs(x - 3 * y) + math.exp(-x * x) * y),
    ("relu(x) + tan(y) + logsumexp(x*y)", lambda x, y: max(x, 0) + math.tan(y) + x * y),
]


@pytest.mark.parametrize(("text", "fn"), CASES, ids=[c[0] for c in CASES])
def test_adjoints_match_central_differences(text, fn):
    x0, y0, h = 0.7, 0.4, 1e-6
    t = trace_table(ec.parse(text, x="", y=""), x=x0, y=y0)
    assert t.value == pytest.approx(fn(x0, y0), rel=1e-12)
    dx = (fn(x0 + h, y0) - fn(x0 - h, y0)) / (2 * h)
    dy = (fn(x0, y0 + h) - fn(x0, y0 - h)) / (2 * h)
    assert t.adjoints["x"] == pytest.approx(dx, rel=1e-6, abs=1e-8)
    assert t.adjoints["y"] == pytest.approx(dy, rel=1e-6, abs=1e-8)


def test_text_table_is_aligned(table):
    text = str(table)
    lines = text.splitlines()
    assert lines[0].startswith("v ") and set(lines[1]) <= {"-", " "}
    body = lines[2:7]
    assert [ln.split()[0] for ln in body] == ["v0", "v1", "v2", "v3", "v4"]
    # the "value" column starts at the same place on every row
    col = lines[0].index("value")
    assert [ln[col:].split()[0] for ln in body] == ["1", "2", "2", "7.3890561", "9.3890561"]
    assert "∂f/∂x = 16.778112" in text


def test_html_table_is_well_formed(table):
    root = ET.fromstring(table._repr_html_())
    assert root.tag == "table"
    assert len(root.findall(".//tr")) == 1 + len(table.rows)


def test_only_scalars():
    x = ec.vector("x", "n")
    with pytest.raises(ec.ShapeError, match="scalar"):
        trace_table(ec.sum(x), x=1.0)


def test_missing_and_extra_values():
    f = ec.parse("x*y", x="", y="")
    with pytest.raises(ec.ArgumentError, match="no value given for y"):
        trace_table(f, x=1.0)
    with pytest.raises(ec.ArgumentError, match="given for Y, which the expression does not use; did you mean 'y'"):
        trace_table(f, x=1.0, Y=2.0)
    with pytest.raises(ec.ArgumentError, match="z"):
        trace_table(f, x=1.0, y=2.0, z=3.0)


def test_input_alone():
    t = trace_table(ec.scalar("x"), x=4.0)
    assert t.adjoints == {"x": 1.0} and t.value == 4.0
