"""Property tests on random expressions (depth >= 4, random dims and sizes).

Two oracles, neither of them ``ec.evaluate``:

* the NumPy reference that :func:`eincalc.testing.random_case` builds alongside the
  expression, operation by operation (``np.matmul``, ``scipy.special.softmax``, …): it
  knows nothing of the DAG, so it also checks flattening, canonical ordering, delta
  elimination and folding;
* :func:`walk`, a small evaluator of the DAG written here: its einsum multiplies
  broadcast operands and sums axes (no ``numpy.einsum``), its functions come from NumPy
  and SciPy directly. It checks the meaning of each node kind independently of
  :mod:`eincalc.interpreter`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special

import eincalc as ec
from eincalc.expr import Add, Const, Delta, Einsum, Elementwise, Node, Unary, Var
from eincalc.testing import (
    RandomCase,
    check_close,
    expressions,
    random_arrays,
    random_case,
    random_expr,
    random_sizes,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=2**32 - 1)
depths = st.integers(min_value=4, max_value=5)


# --------------------------------------------------------------------------------------
# an independent evaluator of the DAG
# --------------------------------------------------------------------------------------
def _on_letters(a: np.ndarray, idx: Sequence[str], sizes: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    """``a`` indexed by ``idx`` as an array over its distinct letters (a repeated letter is a diagonal)."""
    letters = list(dict.fromkeys(idx))
    grids = np.ix_(*[np.arange(sizes[i]) for i in letters]) if letters else ()
    return a[tuple(grids[letters.index(i)] for i in idx)], letters


def _expand(a: np.ndarray, have: list[str], want: list[str]) -> np.ndarray:
    """``a`` (axes named ``have``) with its axes in the order of ``want``, size 1 where missing."""
    a = np.transpose(a, [have.index(i) for i in want if i in have])
    return a.reshape([a.shape[[i for i in want if i in have].index(i)] if i in have else 1 for i in want])


def broadcast_einsum(
    in_idx: Sequence[Sequence[str]], out_idx: Sequence[str], arrays: Sequence[np.ndarray]
) -> np.ndarray:
    """Σ over the indices not in ``out_idx`` of the product of the operands, one operand at a time."""
    sizes = {i: n for idx, a in zip(in_idx, arrays) for i, n in zip(idx, np.shape(a))}
    acc, acc_letters = np.array(1.0), []
    for k, (idx, a) in enumerate(zip(in_idx, arrays)):
        part, part_letters = _on_letters(np.asarray(a), idx, sizes)
        letters = acc_letters + [i for i in part_letters if i not in acc_letters]
        acc = _expand(acc, acc_letters, letters) * _expand(part, part_letters, letters)
        needed = set(out_idx) | {i for later in in_idx[k + 1 :] for i in later}
        acc = acc.sum(axis=tuple(p for p, i in enumerate(letters) if i not in needed))
        acc_letters = [i for i in letters if i in needed]
    return np.transpose(acc, [acc_letters.index(i) for i in out_idx])


ELEMENTWISE = {
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "sigmoid": special.expit,
    "softplus": lambda a: np.logaddexp(0.0, a),
    "relu": lambda a: np.maximum(a, 0.0),
    "step": lambda a: (a > 0).astype(float),
    "abs": np.abs,
    "sign": np.sign,
    "sqrt": np.sqrt,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "arctan": np.arctan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arcsinh": np.arcsinh,
    "arctanh": np.arctanh,
    "erf": special.erf,
    "log2": np.log2,
    "log10": np.log10,
    "power": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "where": lambda c, a, b: np.where(c != 0, a, b),
    "arctan2": np.arctan2,
    "greater": lambda a, b: (a > b).astype(float),
    "greater_equal": lambda a, b: (a >= b).astype(float),
    "less": lambda a, b: (a < b).astype(float),
    "less_equal": lambda a, b: (a <= b).astype(float),
    "equal": lambda a, b: (a == b).astype(float),
    "not_equal": lambda a, b: (a != b).astype(float),
}
UNARY = {
    "inv": lambda a, axis: np.linalg.inv(a),
    "det": lambda a, axis: np.linalg.det(a),
    "adjugate": lambda a, axis: np.linalg.det(a) * np.linalg.inv(a),
    "logdet": lambda a, axis: np.linalg.slogdet(a)[1],
    "softmax": lambda a, axis: special.softmax(a, axis=axis),
    "log_softmax": lambda a, axis: special.log_softmax(a, axis=axis),
    "logsumexp": lambda a, axis: special.logsumexp(a, axis=axis),
    "max": lambda a, axis: np.amax(a, axis=axis),
    "prod": lambda a, axis: np.prod(a, axis=axis),
}


def walk(expr: Node, values: dict[str, np.ndarray], sizes: dict[str, int]) -> np.ndarray:
    """The value of ``expr``, node by node, memoised by identity."""
    memo: dict[int, np.ndarray] = {}
    for node in ec.topo_order(expr):
        args = [memo[id(c)] for c in node.children]
        shape = tuple(int(d) if d.isdigit() else sizes[d] for d in node.dims)
        if isinstance(node, Var):
            out = values[node.name]
        elif isinstance(node, Const):
            out = np.full(shape, node.value)
        elif isinstance(node, Delta):
            k = len(node.base)
            eyes = [np.eye(n) for n in shape[:k]]  # δ over (d1..dk) is Π_t eye(d_t)[i_t, j_t]
            rows, cols = [f"i{t}" for t in range(k)], [f"j{t}" for t in range(k)]
            out = broadcast_einsum(list(zip(rows, cols)), rows + cols, eyes)
        elif isinstance(node, Einsum):
            out = node.coef * broadcast_einsum(node.in_idx, node.out_idx, args)
        elif isinstance(node, Add):
            out = sum(args[1:], args[0])
        elif isinstance(node, Elementwise):
            fn = (lambda a, p=node.param: np.power(a, p)) if node.fn == "pow" else ELEMENTWISE[node.fn]
            out = fn(*args)
        elif isinstance(node, Unary):
            out = UNARY[node.fn](args[0], node.axis)
        else:  # pragma: no cover - the node set is closed
            raise TypeError(node)
        assert np.shape(out) == shape, f"{node!r}: shape {np.shape(out)}, dims say {shape}"
        memo[id(node)] = np.asarray(out, dtype=float)
    return memo[id(expr)]


def test_broadcast_einsum_agrees_with_numpy_einsum(rng):
    """The walker's einsum is checked once against numpy.einsum on hand-picked specs."""
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal((4, 4)), rng.standard_normal(4)
    for spec, ops in [
        ("ij,jk->ik", (a, b)), ("ii->", (b,)), ("ii->i", (b,)), ("ij,j,jj->i", (a, c, b)), ("i,j->ji", (c, c)),
        ("ij->", (a,)), (",ij->ji", (np.array(2.0), a)), ("ij,kj,k->ik", (a, b, c)),
    ]:  # fmt: skip
        ins, out = spec.split("->")
        check_close(broadcast_einsum(ins.split(","), out, ops), np.einsum(spec, *ops), what=spec)


# --------------------------------------------------------------------------------------
# the properties
# --------------------------------------------------------------------------------------
def _draw(case: RandomCase, seed: int) -> tuple[dict[str, np.ndarray], dict[str, int], np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = random_sizes(rng, case.dims)
    values = random_arrays(rng, case.inputs, sizes)
    with np.errstate(all="ignore"):
        expected = np.asarray(case.reference(values), dtype=float)
    return values, sizes, expected


def _tolerances(expected: np.ndarray) -> dict[str, float]:
    scale = max(1.0, float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0)))
    return {"rtol": 1e-6, "atol": 1e-9 * scale}


@SETTINGS
@given(seed=seeds, depth=depths)
def test_evaluate_matches_the_numpy_reference(seed, depth):
    case = random_case(seed, depth)
    values, sizes, expected = _draw(case, seed)
    got = ec.evaluate(case.expr, {k: values[k] for k in case.variables}, sizes)
    check_close(got, expected, **_tolerances(expected), what=f"seed={seed} depth={depth}: {case.expr}")


@SETTINGS
@given(seed=seeds, depth=depths)
def test_the_dag_means_what_was_built(seed, depth):
    """The independent walker on the DAG agrees with the construction-level reference."""
    case = random_case(seed, depth)
    values, sizes, expected = _draw(case, seed)
    with np.errstate(all="ignore"):
        got = walk(case.expr, values, sizes)
    check_close(got, expected, **_tolerances(expected), what=f"seed={seed} depth={depth}: {case.expr}")


@SETTINGS
@given(seed=seeds, depth=depths)
def test_print_then_parse_is_the_same_node(seed, depth):
    case = random_case(seed, depth)
    assert ec.parse(str(case.expr), **case.declarations()) is case.expr


@SETTINGS
@given(seed=seeds)
def test_smooth_cases_avoid_kinks(seed):
    case = random_case(seed, 4, nonsmooth=False)
    kinds = {n.fn for n in ec.topo_order(case.expr) if isinstance(n, Elementwise)}
    assert not kinds & {"relu", "step"}


@settings(max_examples=20, deadline=None)
@given(case=expressions(depth=4, rank=0))
def test_strategy_gives_scalar_cases_on_request(case):
    assert case.expr.dims == ()
    assert case.expr.variables() == case.variables
    assert set(case.variables) <= set(case.inputs)


def test_generator_is_deterministic_for_a_seed():
    for seed in range(20):
        first, second = random_case(seed, 4), random_case(seed, 4)
        assert first.expr is second.expr
        assert first.inputs == second.inputs
        values = random_arrays(seed, first.inputs, random_sizes(seed, first.dims))
        with np.errstate(all="ignore"):
            check_close(first.reference(values), second.reference(values), rtol=0, atol=0)
    exprs = {random_case(seed, 4).expr for seed in range(20)}
    assert len(exprs) > 15  # seeds do give different expressions
    assert random_case(np.random.default_rng(7), 4).expr is random_case(7, 4).expr


def test_random_expr_returns_the_expression_and_its_variables():
    expr, variables = random_expr(3, depth=4)
    assert expr is random_case(3, 4).expr
    assert variables == expr.variables()
