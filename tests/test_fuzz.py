"""Fuzzing: hostile text in both dialects and on the command line, invariants of what parses.

Random strings and grammar-made expressions with random edits must parse to a node or
raise an ``EincalcError`` (nothing else, no warning); what parses has only declared or
inferred dims, prints as text that parses back to the same node, and compiles to code
that agrees with ``evaluate``. Building the same expressions from 8 threads gives the
same nodes. Bounded for CI (about a minute); ``python -m pytest tests/test_fuzz.py --fuzz``
runs 50 times as many examples (the ``fuzz`` hypothesis profile in ``conftest.py``).
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import eincalc as ec
from eincalc.cli import main as cli_main
from eincalc.dims import FRESH_PREFIX, parse_dims
from eincalc.graph import topo_order
from eincalc.parser import MAX_LEAVES
from eincalc.testing import check_close, random_expr

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SCALE = FUZZ.max_examples / 100  # 1 in CI, 50 with --fuzz


def _examples(ci: int) -> settings:
    """``FUZZ`` with ``ci`` examples in CI, scaled up under ``--fuzz``."""
    return settings(FUZZ, max_examples=max(1, int(ci * SCALE)))


DECLARED = {"x": "n", "y": "n", "A": "n n", "s": ""}
MC_DECLARED = {"x": "n", "y": "n", "A": "n n"}
SIZES = {"n": 3}

# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
CHARS = "xyAs0123456789.eE+-*/@^'()[],:;_ \t\n\"λｘ~!%&|<>=?{}#$\\`" + "\u0000\u202e\ufeff"
TOKENS = ["x", "y", "A", "s", "A.T", "x'", "1e400", "9" * 40, "0", "-", "**", "^", ".*", "./", "@", "*", "(", ")",
          "exp(", "log(", "sum(", "tanh(", "inv(", "det(", "softmax(", "logsumexp(", "einsum('ij,j->i', ",
          "axis=0", ",", "eye('n')", "vector(1)", "matrix(1)", "tr(", "norm2(", "lambda:", "__import__",
          "dialect", "self", "numpy", "ｎｕｍｐｙ", "ｘ", "1 if x else 0", "x[0]", "x is 1"]  # fmt: skip


def _grammar(dialect: str) -> st.SearchStrategy[str]:
    leaves = st.sampled_from(["x", "y", "s", "A @ x", "x @ y", "2", "0.5", "A.T @ y"])
    if dialect == "mc":
        leaves = st.sampled_from(["x", "y", "A*x", "x'*y", "2", "0.5", "A'*y", "x'*A*x"])

    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        operators = ["+", "-", "*", "/"] if dialect == "numpy" else ["+", "-", ".*", "./"]
        functions = ["exp", "log", "tanh", "sin", "sqrt", "abs"]
        return st.one_of(
            st.tuples(inner, st.sampled_from(operators), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(functions), inner).map(lambda t: f"{t[0]}({t[1]})"),
            inner.map(lambda e: f"-({e})"),
            inner.map(lambda e: f"({e}) ** 2" if dialect == "numpy" else f"({e}).^2"),
            inner.map(lambda e: f"sum({e})"),
        )

    return st.recursive(leaves, grow, max_leaves=12)


@st.composite
def _mutated(draw: st.DrawFn, dialect: str) -> str:
    """A grammar-made expression with a few random edits (cut, insert, duplicate, swap)."""
    text = draw(_grammar(dialect))
    for _ in range(draw(st.integers(0, 4))):
        n = len(text)
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, min(n, a + 6)))
        edit = draw(st.sampled_from(["cut", "insert", "duplicate", "swap", "token"]))
        if edit == "cut":
            text = text[:a] + text[b:]
        elif edit == "insert":
            text = text[:a] + draw(st.text(CHARS, min_size=1, max_size=3)) + text[a:]
        elif edit == "duplicate":
            text = text[:b] + text[a:b] + text[b:]
        elif edit == "swap" and b > a:
            text = text[:a] + text[b - 1] + text[a + 1 : b - 1] + text[a] + text[b:] if b - a > 1 else text
        else:
            text = text[:a] + draw(st.sampled_from(TOKENS)) + text[a:]
    return text


hostile = st.one_of(st.text(CHARS, max_size=40), st.lists(st.sampled_from(TOKENS), max_size=10).map(" ".join))


# --------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------
def _parse(text: str, dialect: str) -> ec.Node | None:
    """Parse, allowing only EincalcError (and no warnings at all)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return ec.parse(text, dialect=dialect, **(DECLARED if dialect == "numpy" else MC_DECLARED))
        except ec.EincalcError:
            return None


def _check_result(f: ec.Node, same_node: bool = True) -> None:
    for node in topo_order(f):
        for d in node.dims:
            assert not d.startswith(FRESH_PREFIX), (str(f), node.dims)
            assert parse_dims((d,)) == (d,)  # a valid dim name or size
    declarations = {v: " ".join(dims) for v, dims in f.variables().items()}
    try:
        back = ec.parse(str(f), declarations=declarations)
    except ec.ParseError as err:
        assert "MAX_LEAVES" in str(err), (str(f), str(err))  # a printed derivative may pass the work limit
        return
    if _capped(f) or not same_node:  # canonical (one node) only within MAX_INLINE factors; else values agree
        _check_compiled(back, expected=f)
    else:
        assert back is f, (str(f), str(back))
    _check_compiled(f)


def _capped(f: ec.Node) -> bool:
    """True if a product holds another product: MAX_INLINE stopped the flattening there."""
    return any(isinstance(n, ec.Einsum) and any(isinstance(op, ec.Einsum) for op in n.operands) for n in topo_order(f))


def _check_compiled(f: ec.Node, expected: ec.Node | None = None) -> None:
    """``compile(f)`` agrees with ``evaluate(expected)`` (``f`` itself by default)."""
    rng = np.random.default_rng(0)
    arrays = {
        v: rng.uniform(0.5, 1.5, tuple(SIZES.get(d, int(d) if d.isdigit() else 2) for d in dims))
        for v, dims in f.variables().items()
    }
    sizes = {d: SIZES.get(d, 2) for n in topo_order(f) for d in n.dims if not d.isdigit()}
    extra = {d: s for d, s in sizes.items() if not any(d in dims for dims in f.variables().values())}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            want = ec.evaluate(f if expected is None else expected, arrays, extra)
            got = ec.compile(f, sizes=extra or None)(**arrays)
        except np.linalg.LinAlgError:
            return  # a singular matrix reached inv: NumPy's error, in both
    if isinstance(got, ec.StructuredTensor):
        # off its diagonals a δ ⊗ core is 0 by construction, where the interpreter's
        # eye(n) * core gives 0 · nan = nan for an undefined core entry (log of a negative)
        support = ec.StructuredTensor(np.ones_like(got.core), got.core_labels, got.labels, got.shape).dense()
        want = np.where(support != 0, want, 0.0)
        got = got.dense()
    # where both are undefined or overflow the order of the operations decides which
    # (inf + -inf is nan, summed the other way -inf): a non-finite entry matches one
    undefined = ~np.isfinite(np.asarray(got, dtype=float)) & ~np.isfinite(np.asarray(want, dtype=float))
    got, want = np.where(undefined, 0.0, got), np.where(undefined, 0.0, want)
    check_close(got, want, rtol=1e-7, atol=1e-9, what=str(f))


# --------------------------------------------------------------------------------------
# the properties
# --------------------------------------------------------------------------------------
@_examples(300)
@given(hostile, st.sampled_from(["numpy", "mc"]))
def test_random_text_parses_or_raises_eincalc_errors(text, dialect):
    f = _parse(text, dialect)
    if f is not None:
        _check_result(f)


@_examples(150)
@given(st.sampled_from(["numpy", "mc"]).flatmap(lambda d: st.tuples(st.just(d), _mutated(d))))
@example(("mc", "(sum(-((0.5).^2)))^.2"))  # a folded constant power without a real value
def test_mutated_expressions_parse_or_raise_eincalc_errors(case):
    dialect, text = case
    f = _parse(text, dialect)
    if f is not None:
        _check_result(f)


@_examples(30)
@given(st.sampled_from(["numpy", "mc"]).flatmap(lambda d: st.tuples(st.just(d), _grammar(d))))
@example(("numpy", "-((log(-(x))) ** 2)"))  # nan core entries inside a δ ⊗ core Jacobian
@example(("mc", "-(((sum(A*x) + exp(A*x))).^2)"))  # a spread term summed with a δ ⊗ core term only
@example(("numpy", "sum(-(((x - s) / (x - x))))"))  # inf - inf: nan or -inf by the order of the sum
def test_grammar_expressions_keep_every_invariant(case):
    dialect, text = case
    f = _parse(text, dialect)
    if f is not None:
        _check_result(f)
        for wrt in f.variables():
            g = ec.grad(f, wrt) if not f.dims else ec.jacobian(f, wrt)
            # the canonical order of many equal factors can miss the least one (see
            # test_reliability.py::test_gradient_with_many_equal_factors_prints_back_to_itself)
            _check_result(g, same_node=False)


@_examples(20)
@given(st.one_of(hostile, _mutated("numpy"), _mutated("mc")), st.sampled_from(["numpy", "mc"]))
def test_cli_answers_or_reports_one_line(text, dialect):
    out, err = io.StringIO(), io.StringIO()
    args = ["derive", text, "--dialect", dialect, "--var", "x:n", "--var", "y:n", "--wrt", "x", "--emit", "numpy"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            status = cli_main(args)
        except SystemExit as exit_:  # argparse usage errors
            status = exit_.code
    assert status in (0, 2), (text, status)
    if status == 0:
        compile(out.getvalue(), "<cli output>", "exec")
    else:
        assert "Traceback" not in err.getvalue()


@_examples(3)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=20, max_size=40))
def test_concurrent_construction_from_8_threads_is_identical(seeds):
    results: list[list[ec.Node]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        barrier.wait()
        results[t] = [random_expr(seed, depth=4)[0] for seed in seeds]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in range(len(seeds)):
        assert all(results[t][k] is results[0][k] for t in range(8)), seeds[k]


@pytest.mark.parametrize(
    "text", ["x @ " + "A @ " * 60 + "x", "tanh(" * 60 + "x" + ")" * 60, "x" + " + x" * (MAX_LEAVES - 1)]
)
def test_inputs_at_the_limits_parse(text):
    assert _parse(text, "numpy") is not None
