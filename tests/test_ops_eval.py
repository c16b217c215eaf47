"""Every construct of the NumPy dialect, evaluated with ``ec.evaluate``, against direct NumPy.

The oracle for each case is written with NumPy (and ``scipy.special`` for the stable
functions) straight from the meaning of the text, never through eincalc. Sizes are all
different (m=3, n=4, k=2, p=5) so a transposition bug cannot hide behind equal sizes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special
from test_convolution import COVERED as CONVOLUTION_COVERED
from test_linalg import CASES as LINALG_CASES

import eincalc as ec
from eincalc.language import FUNCTIONS
from eincalc.testing import check_close

DECLS = {
    "X": "m n",
    "Y": "m n",
    "P": "m n",  # positive entries
    "W": "n k",
    "b": "k",
    "A": "n n",
    "B": "n n",
    "S": "n n",  # symmetric positive definite
    "x": "n",
    "z": "n",
    "v": "m",
    "s": "",
    "T": "p m n",
    "U": "p n k",
}
SIZES = {"m": 3, "n": 4, "k": 2, "p": 5}


@pytest.fixture
def values(rng):
    def normal(*dims):
        return rng.standard_normal(tuple(SIZES[d] for d in dims))

    a = normal("n", "n")
    return {
        "X": normal("m", "n"),
        "Y": normal("m", "n"),
        "P": np.abs(normal("m", "n")) + 0.5,
        "W": normal("n", "k"),
        "b": normal("k"),
        "A": a,
        "B": normal("n", "n"),
        "S": a @ a.T + np.eye(4),
        "x": normal("n"),
        "z": normal("n"),
        "v": normal("m"),
        "s": np.array(rng.standard_normal()),
        "T": normal("p", "m", "n"),
        "U": normal("p", "n", "k"),
    }


def run(text, values, **extra_sizes):
    """Parse ``text`` with the shared declarations and evaluate it on ``values``."""
    used = {name: DECLS[name] for name in DECLS if name in _names(text)}
    expr = ec.parse(text, **used)
    arrays = {name: values[name] for name in expr.variables()}
    return ec.evaluate(expr, arrays, {**SIZES, **extra_sizes})


def _names(text):
    import ast

    return {n.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Name)}


def softplus(a):
    return np.log1p(np.exp(-np.abs(a))) + np.maximum(a, 0.0)


# (text, reference from the values dict)
CASES = [
    # arithmetic and broadcasting
    ("X + Y", lambda d: d["X"] + d["Y"]),
    ("X - Y", lambda d: d["X"] - d["Y"]),
    ("X * Y", lambda d: d["X"] * d["Y"]),
    ("X / P", lambda d: d["X"] / d["P"]),
    ("P ** 2", lambda d: d["P"] ** 2),
    ("P ** 0.5", lambda d: np.sqrt(d["P"])),
    ("P ** -1.5", lambda d: d["P"] ** -1.5),
    ("X ** 3", lambda d: d["X"] ** 3),
    ("2 ** X", lambda d: 2.0 ** d["X"]),
    ("-X", lambda d: -d["X"]),
    ("+X", lambda d: d["X"]),
    ("X.T", lambda d: d["X"].T),
    ("X.T.T", lambda d: d["X"]),
    ("T.T", lambda d: d["T"].T),
    ("X @ W", lambda d: d["X"] @ d["W"]),
    ("X @ x", lambda d: d["X"] @ d["x"]),
    ("v @ X", lambda d: d["v"] @ d["X"]),
    ("x @ z", lambda d: d["x"] @ d["z"]),
    ("X @ A @ X.T", lambda d: d["X"] @ d["A"] @ d["X"].T),
    ("T @ U", lambda d: d["T"] @ d["U"]),
    ("X @ W + b", lambda d: d["X"] @ d["W"] + d["b"]),
    ("b + X @ W", lambda d: d["b"] + d["X"] @ d["W"]),
    ("X - x", lambda d: d["X"] - d["x"]),
    ("x / X", lambda d: d["x"] / d["X"]),
    ("X * x", lambda d: d["X"] * d["x"]),
    ("T + X", lambda d: d["T"] + d["X"]),
    ("T * x", lambda d: d["T"] * d["x"]),
    ("X + 1", lambda d: d["X"] + 1),
    ("1 - X", lambda d: 1 - d["X"]),
    ("2 * X", lambda d: 2 * d["X"]),
    ("X / 2", lambda d: d["X"] / 2),
    ("1 / P", lambda d: 1 / d["P"]),
    ("s * X", lambda d: d["s"] * d["X"]),
    ("X * s + s", lambda d: d["X"] * d["s"] + d["s"]),
    ("X / (s * s + 1)", lambda d: d["X"] / (d["s"] ** 2 + 1)),
    ("(1 + 2) * X - 3 ** 2", lambda d: 3 * d["X"] - 9),
    ("matmul(X, W)", lambda d: d["X"] @ d["W"]),
    ("transpose(X)", lambda d: d["X"].T),
    # element-wise functions
    ("exp(X)", lambda d: np.exp(d["X"])),
    ("log(P)", lambda d: np.log(d["P"])),
    ("sin(X)", lambda d: np.sin(d["X"])),
    ("cos(X)", lambda d: np.cos(d["X"])),
    ("tan(X)", lambda d: np.tan(d["X"])),
    ("tanh(X)", lambda d: np.tanh(d["X"])),
    ("sigmoid(X)", lambda d: 1 / (1 + np.exp(-d["X"]))),
    ("relu(X)", lambda d: np.maximum(d["X"], 0)),
    ("abs(X)", lambda d: np.abs(d["X"])),
    ("sign(X)", lambda d: np.sign(d["X"])),
    ("step(X)", lambda d: (d["X"] > 0).astype(float)),
    ("sqrt(P)", lambda d: np.sqrt(d["P"])),
    ("softplus(X)", lambda d: np.log(1 + np.exp(d["X"]))),
    # reductions
    ("sum(X)", lambda d: np.sum(d["X"])),
    ("sum(X, axis=None)", lambda d: np.sum(d["X"])),
    ("sum(X, axis=0)", lambda d: d["X"].sum(axis=0)),
    ("sum(X, axis=1)", lambda d: d["X"].sum(axis=1)),
    ("sum(X, axis=-1)", lambda d: d["X"].sum(axis=-1)),
    ("sum(T, axis=(0, 2))", lambda d: d["T"].sum(axis=(0, 2))),
    ("sum(T, axis=(-1, 0))", lambda d: d["T"].sum(axis=(0, 2))),
    ("sum(s)", lambda d: d["s"]),
    ("mean(X)", lambda d: np.mean(d["X"])),
    ("mean(X, axis=0)", lambda d: d["X"].mean(axis=0)),
    ("mean(T, axis=1)", lambda d: d["T"].mean(axis=1)),
    ("mean(T, axis=(0, 1))", lambda d: d["T"].mean(axis=(0, 1))),
    ("trace(A)", lambda d: np.trace(d["A"])),
    ("trace(X @ X.T)", lambda d: np.sum(d["X"] ** 2)),
    ("diag(A)", lambda d: np.diag(d["A"])),
    ("diag(x)", lambda d: np.diag(d["x"])),
    ("diag(diag(A))", lambda d: np.diag(np.diag(d["A"]))),
    ("outer(x, v)", lambda d: np.outer(d["x"], d["v"])),
    ("outer(A, x)", lambda d: np.multiply.outer(d["A"], d["x"])),
    ("dot(x, z)", lambda d: np.dot(d["x"], d["z"])),
    ("dot(X, x)", lambda d: np.dot(d["X"], d["x"])),
    ("dot(X, A)", lambda d: np.dot(d["X"], d["A"])),
    ("dot(s, X)", lambda d: np.dot(d["s"], d["X"])),
    ("dot(T, W)", lambda d: np.dot(d["T"], d["W"])),
    ("dot(T, x)", lambda d: np.dot(d["T"], d["x"])),
    ("norm1(X)", lambda d: np.sum(np.abs(d["X"]))),
    ("norm2(X)", lambda d: np.linalg.norm(d["X"])),
    ("norm2(x)", lambda d: np.linalg.norm(d["x"])),
    # general functions
    ("det(A)", lambda d: np.linalg.det(d["A"])),
    ("det(S)", lambda d: np.linalg.det(d["S"])),
    ("adjugate(A)", lambda d: np.linalg.det(d["A"]) * np.linalg.inv(d["A"])),
    ("adjugate(S) @ x", lambda d: np.linalg.det(d["S"]) * np.linalg.solve(d["S"], d["x"])),
    ("logdet(S)", lambda d: np.log(np.linalg.det(d["S"]))),
    ("logdet(A)", lambda d: np.log(np.abs(np.linalg.det(d["A"])))),
    ("inv(S)", lambda d: np.linalg.inv(d["S"])),
    ("inv(A) @ x", lambda d: np.linalg.solve(d["A"], d["x"])),
    ("softmax(x)", lambda d: special.softmax(d["x"])),
    ("softmax(X)", lambda d: special.softmax(d["X"], axis=-1)),
    ("softmax(X, axis=0)", lambda d: special.softmax(d["X"], axis=0)),
    ("softmax(T, axis=1)", lambda d: special.softmax(d["T"], axis=1)),
    ("log_softmax(X)", lambda d: special.log_softmax(d["X"], axis=-1)),
    ("log_softmax(X, axis=0)", lambda d: special.log_softmax(d["X"], axis=0)),
    ("log_softmax(T, axis=-2)", lambda d: special.log_softmax(d["T"], axis=1)),
    ("logsumexp(x)", lambda d: special.logsumexp(d["x"])),
    ("logsumexp(X)", lambda d: special.logsumexp(d["X"])),
    ("logsumexp(X, axis=None)", lambda d: special.logsumexp(d["X"])),
    ("logsumexp(X, axis=0)", lambda d: special.logsumexp(d["X"], axis=0)),
    ("logsumexp(X, axis=-1)", lambda d: special.logsumexp(d["X"], axis=1)),
    ("logsumexp(T, axis=1)", lambda d: special.logsumexp(d["T"], axis=1)),
    # einsum
    ("einsum('ij,jk->ik', X, W)", lambda d: d["X"] @ d["W"]),
    ("einsum('ij,jk', X, W)", lambda d: d["X"] @ d["W"]),
    ("einsum('ij,jk,kl->il', X, A, B)", lambda d: d["X"] @ d["A"] @ d["B"]),
    ("einsum('ij,jk,k,i->', X, W, b, v)", lambda d: d["v"] @ d["X"] @ d["W"] @ d["b"]),
    ("einsum('ij,ij->ij', X, Y)", lambda d: d["X"] * d["Y"]),
    ("einsum('ij,ij', X, Y)", lambda d: np.sum(d["X"] * d["Y"])),
    ("einsum('ji', X)", lambda d: d["X"].T),
    ("einsum('ij', X)", lambda d: d["X"]),
    ("einsum('ij->ji', X)", lambda d: d["X"].T),
    ("einsum('ii->', A)", lambda d: np.trace(d["A"])),
    ("einsum('ii', A)", lambda d: np.trace(d["A"])),
    ("einsum('ii->i', A)", lambda d: np.diag(d["A"])),
    ("einsum('ii,i->i', A, x)", lambda d: np.diag(d["A"]) * d["x"]),
    ("einsum('i,j->ij', x, v)", lambda d: np.outer(d["x"], d["v"])),
    ("einsum('i,j', x, v)", lambda d: np.outer(d["x"], d["v"])),
    ("einsum('j,i', x, v)", lambda d: np.outer(d["v"], d["x"])),
    ("einsum('ijk->kji', T)", lambda d: np.transpose(d["T"], (2, 1, 0))),
    ("einsum('bij,bjk->bik', T, U)", lambda d: d["T"] @ d["U"]),
    ("einsum('bij->', T)", lambda d: np.sum(d["T"])),
    ("einsum('ij,kj->ik', X, Y)", lambda d: d["X"] @ d["Y"].T),
    ("einsum('i,i,i->', x, x, z)", lambda d: np.sum(d["x"] ** 2 * d["z"])),
    ("einsum(' ij , jk -> ik ', X, W)", lambda d: d["X"] @ d["W"]),
    ("einsum('ij,->ij', X, s)", lambda d: d["X"] * d["s"]),
    # constants
    ("eye('n') + A", lambda d: np.eye(4) + d["A"]),
    ("A @ eye('n')", lambda d: d["A"]),
    ("ones('m n') * X", lambda d: d["X"]),
    ("ones('n') @ x", lambda d: np.sum(d["x"])),
    ("X + ones('m n')", lambda d: d["X"] + 1),
    ("zeros('m n') + X", lambda d: d["X"]),
    ("x + zeros('n')", lambda d: d["x"]),
]


@pytest.mark.parametrize("text,reference", CASES, ids=[c[0] for c in CASES])
def test_construct_matches_numpy(text, reference, values):
    check_close(run(text, values), reference(values), rtol=1e-10, atol=1e-12, what=text)


@pytest.mark.parametrize(
    "text,sizes,expected",
    [
        ("eye('n')", {}, np.eye(4)),
        ("eye('n', 3)", {}, np.einsum("ik,jl->ijkl", np.eye(4), np.eye(3))),
        ("eye(3)", {}, np.eye(3)),
        ("ones('m n')", {}, np.ones((3, 4))),
        ("ones('m', 2)", {}, np.ones((3, 2))),
        ("zeros('k')", {}, np.zeros(2)),
        ("2.5 * ones('n')", {}, np.full(4, 2.5)),
        ("sum(ones('q'))", {"q": 7}, 7.0),
        ("trace(eye('q'))", {"q": 6}, 6.0),
        ("3.5", {}, 3.5),
    ],
)
def test_constant_tensors(text, sizes, expected):
    check_close(ec.evaluate(ec.parse(text), {}, {**SIZES, **sizes}), expected, what=text)


def test_every_function_is_covered():
    """Registering a function without a value test here fails this test."""
    covered = set()
    import ast

    for text, *_ in CASES + LANGUAGE_CASES + LINALG_CASES:  # linalg values against NumPy in test_linalg.py
        covered |= _names(text)
        covered |= {n.attr for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Attribute)}
    covered |= {"eye", "ones", "zeros"}
    covered |= CONVOLUTION_COVERED  # values checked against loops in test_convolution.py
    assert set(FUNCTIONS) <= covered, f"untested functions: {sorted(set(FUNCTIONS) - covered)}"


def test_step_is_zero_at_zero_as_in_pytorch_and_jax(values):
    x0 = np.array([-1.0, 0.0, 2.0, 0.0])
    check_close(run("step(x)", {**values, "x": x0}), np.array([0.0, 0.0, 1.0, 0.0]))
    check_close(run("sign(x)", {**values, "x": x0}), np.array([-1.0, 0.0, 1.0, 0.0]))
    check_close(run("relu(x)", {**values, "x": x0}), np.array([0.0, 0.0, 2.0, 0.0]))


def test_python_operators_build_what_the_parser_builds():
    X, W, b = ec.matrix("X", "m n"), ec.matrix("W", "n k"), ec.vector("b", "k")
    A, x = ec.matrix("A", "n n"), ec.vector("x", "n")
    assert ec.parse("X @ W + b", X="m n", W="n k", b="k") is X @ W + b
    assert ec.parse("sum(log(1 + exp(-(X @ x))))", X="m n", x="n") is ec.sum(ec.log(1 + ec.exp(-(X @ x))))
    assert ec.parse("2 / x - x.T @ A", x="n", A="n n") is 2 / x - x.T @ A
    assert ec.parse("softmax(X, axis=0)", X="m n") is ec.softmax(X, axis=0)
    assert ec.parse("x ** 3", x="n") is x**3
    assert ec.parse("einsum('ij,j->i', X, x)", X="m n", x="n") is ec.einsum("ij,j->i", X, x)


def test_python_api_transpose_with_axes(values):
    T = ec.tensor("T", "p m n")
    got = ec.evaluate(ec.transpose(T, (1, 0, 2)), T=values["T"])
    check_close(got, np.transpose(values["T"], (1, 0, 2)))


def test_evaluate_several_outputs_shares_one_binding(values):
    X, W = ec.matrix("X", "m n"), ec.matrix("W", "n k")
    first, second = ec.evaluate([X @ W, ec.sum(X)], X=values["X"], W=values["W"])
    check_close(first, values["X"] @ values["W"])
    check_close(second, np.sum(values["X"]))


def test_evaluate_accepts_a_mapping_and_sizes_as_keywords(values):
    x = ec.vector("x", "n")
    e = x + ec.sum(ec.ones("q"))
    check_close(ec.evaluate(e, {"x": values["x"]}, {"q": 3}), values["x"] + 3)
    check_close(ec.evaluate(e, x=values["x"], q=3), values["x"] + 3)


# --------------------------------------------------------------------------------------
# numerical stability at |x| = 1000
# --------------------------------------------------------------------------------------
BIG = np.array([1000.0, -1000.0, 999.0, 0.0])
BIG_MATRIX = np.array([[1000.0, -1000.0, 0.0, 998.0], [-1000.0, -999.0, 1000.0, 0.5], [3.0, 1000.0, -1000.0, 1000.0]])


def _stable(text, array, name):
    decl = "n" if array.ndim == 1 else "m n"
    expr = ec.parse(text, **{name: decl})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warnings either
        got = ec.evaluate(expr, **{name: array})
    assert np.all(np.isfinite(got)), f"{text} is not finite at |x| = 1000: {got}"
    return got


@pytest.mark.parametrize(
    "text,reference",
    [
        ("softmax(x)", lambda a: np.array([1 / (1 + np.exp(-1.0)), 0.0, np.exp(-1.0) / (1 + np.exp(-1.0)), 0.0])),
        ("log_softmax(x)", lambda a: a - (1000.0 + np.log1p(np.exp(-1.0)))),
        ("logsumexp(x)", lambda a: 1000.0 + np.log1p(np.exp(-1.0))),
        ("sigmoid(x)", lambda a: np.array([1.0, 0.0, 1.0, 0.5])),
        ("softplus(x)", lambda a: np.array([1000.0, 0.0, 999.0, np.log(2.0)])),
    ],
)
def test_stable_functions_at_large_magnitude(text, reference):
    got = _stable(text, BIG, "x")
    check_close(got, reference(BIG), rtol=1e-12, atol=1e-300, what=text)


@pytest.mark.parametrize(
    "text,reference",
    [
        ("softmax(X)", lambda a: special.softmax(a, axis=-1)),
        ("softmax(X, axis=0)", lambda a: special.softmax(a, axis=0)),
        ("log_softmax(X)", lambda a: special.log_softmax(a, axis=-1)),
        ("log_softmax(X, axis=0)", lambda a: special.log_softmax(a, axis=0)),
        ("logsumexp(X)", lambda a: special.logsumexp(a)),
        ("logsumexp(X, axis=0)", lambda a: special.logsumexp(a, axis=0)),
        ("logsumexp(X, axis=1)", lambda a: special.logsumexp(a, axis=1)),
        ("sigmoid(X)", lambda a: special.expit(a)),
        ("softplus(X)", softplus),
    ],
)
def test_stable_functions_along_axes_at_large_magnitude(text, reference):
    got = _stable(text, BIG_MATRIX, "X")
    check_close(got, reference(BIG_MATRIX), rtol=1e-12, atol=1e-300, what=text)


def test_log_one_plus_exp_is_stable():
    """evaluate applies compile's stable forms: log(1 + exp(x)) is softplus(x) (was inf at 1000)."""
    got = _stable("sum(log(1 + exp(X)))", BIG_MATRIX, "X")
    check_close(got, np.sum(softplus(BIG_MATRIX)), rtol=1e-12)


# --------------------------------------------------------------------------------------
# the language people write (issue 8): values, derivatives in every mode, round trips
# --------------------------------------------------------------------------------------
# (text, reference, variable to differentiate by or None for a value-only check)
LANGUAGE_CASES = [
    ("log1p(P)", lambda d: np.log1p(d["P"]), "P"),
    ("expm1(X)", lambda d: np.expm1(d["X"]), "X"),
    ("square(X)", lambda d: np.square(d["X"]), "X"),
    ("reciprocal(P)", lambda d: 1 / d["P"], "P"),
    ("power(P, X)", lambda d: np.power(d["P"], d["X"]), "X"),
    ("P ** X", lambda d: d["P"] ** d["X"], "P"),
    ("P ** x", lambda d: d["P"] ** d["x"], "x"),
    ("arctan(X)", lambda d: np.arctan(d["X"]), "X"),
    ("arcsin(Q)", lambda d: np.arcsin(d["Q"]), "Q"),
    ("arccos(Q)", lambda d: np.arccos(d["Q"]), "Q"),
    ("arctan2(X, Y)", lambda d: np.arctan2(d["X"], d["Y"]), "Y"),
    ("erf(X)", lambda d: special.erf(d["X"]), "X"),
    ("sinh(X)", lambda d: np.sinh(d["X"]), "X"),
    ("cosh(X)", lambda d: np.cosh(d["X"]), "X"),
    ("arcsinh(X)", lambda d: np.arcsinh(d["X"]), "X"),
    ("arctanh(Q)", lambda d: np.arctanh(d["Q"]), "Q"),
    ("log2(P)", lambda d: np.log2(d["P"]), "P"),
    ("log10(P)", lambda d: np.log10(d["P"]), "P"),
    ("expit(X)", lambda d: special.expit(d["X"]), "X"),
    ("maximum(X, Y)", lambda d: np.maximum(d["X"], d["Y"]), "X"),
    ("minimum(X, 0.5)", lambda d: np.minimum(d["X"], 0.5), "X"),
    ("maximum(X, x)", lambda d: np.maximum(d["X"], d["x"]), "x"),
    ("clip(X, -0.5, 0.5)", lambda d: np.clip(d["X"], -0.5, 0.5), "X"),
    ("clip(X, Y, P)", lambda d: np.minimum(np.maximum(d["X"], d["Y"]), d["P"]), "P"),
    ("where(X > Y, X * Y, exp(Y))", lambda d: np.where(d["X"] > d["Y"], d["X"] * d["Y"], np.exp(d["Y"])), "Y"),
    ("where(X < 0, 0.0, X)", lambda d: np.where(d["X"] < 0, 0.0, d["X"]), "X"),
    ("X * (X >= Y)", lambda d: d["X"] * (d["X"] >= d["Y"]), "X"),
    ("(X <= 0.1) + (X == X) + (X != Y)", lambda d: (d["X"] <= 0.1) + 1.0 + (d["X"] != d["Y"]), None),
    ("greater(X, Y) + greater_equal(X, Y) - less(X, Y)", lambda d: 2.0 * (d["X"] > d["Y"]) - (d["X"] < d["Y"]), None),
    ("less_equal(X, Y) * equal(X, X) * not_equal(X, Y)", lambda d: 1.0 * (d["X"] < d["Y"]), None),
    ("max(X)", lambda d: np.max(d["X"]), "X"),
    ("max(X, axis=1)", lambda d: np.max(d["X"], axis=1), "X"),
    ("max(T, axis=(0, 2))", lambda d: np.max(d["T"], axis=(0, 2)), "T"),
    ("min(X, axis=0)", lambda d: np.min(d["X"], axis=0), "X"),
    ("amax(X, 0) + amin(X, 0)", lambda d: np.max(d["X"], 0) + np.min(d["X"], 0), "X"),
    ("X.max(axis=1, keepdims=True) - X", lambda d: d["X"].max(axis=1, keepdims=True) - d["X"], "X"),
    ("prod(P, axis=0)", lambda d: np.prod(d["P"], axis=0), "P"),
    ("P.prod()", lambda d: np.prod(d["P"]), "P"),
    ("var(X)", lambda d: np.var(d["X"]), "X"),
    ("var(X, axis=0, ddof=1)", lambda d: np.var(d["X"], axis=0, ddof=1), "X"),
    ("std(X, axis=1)", lambda d: np.std(d["X"], axis=1), "X"),
    ("X.std(axis=0, keepdims=True)", lambda d: d["X"].std(axis=0, keepdims=True), "X"),
    ("X.var()", lambda d: d["X"].var(), "X"),
    # syntax: prefixes, methods, keepdims, positional axes, tuple axes
    ("np.sum(np.exp(X))", lambda d: np.sum(np.exp(d["X"])), "X"),
    ("numpy.linalg.inv(S) @ x", lambda d: np.linalg.solve(d["S"], d["x"]), "S"),
    (
        "np.linalg.slogdet(A)[1] + slogdet(S)[0]",
        lambda d: np.linalg.slogdet(d["A"])[1] + np.linalg.slogdet(d["S"])[0],
        "A",
    ),
    ("triu(X) + tril(X, k=-1) * X", lambda d: np.triu(d["X"]) + np.tril(d["X"], k=-1) * d["X"], "X"),
    ("sum(np.triu(A @ A.T, k=1))", lambda d: np.sum(np.triu(d["A"] @ d["A"].T, k=1)), "A"),
    (
        "np.linalg.solve(S, x) @ solve(S, A)",
        lambda d: np.linalg.solve(d["S"], d["x"]) @ np.linalg.solve(d["S"], d["A"]),
        "S",
    ),
    ("np.linalg.det(S) * np.pi + np.e", lambda d: np.linalg.det(d["S"]) * np.pi + np.e, "S"),
    ("X.sum()", lambda d: d["X"].sum(), "X"),
    ("X.sum(axis=0)", lambda d: d["X"].sum(axis=0), "X"),
    ("X.mean(axis=1)", lambda d: d["X"].mean(axis=1), "X"),
    ("X.dot(W)", lambda d: d["X"].dot(d["W"]), "X"),
    ("X.T.dot(v)", lambda d: d["X"].T.dot(d["v"]), "X"),
    ("A.transpose()", lambda d: d["A"].T, "A"),
    ("X.clip(-0.3, 0.3)", lambda d: d["X"].clip(-0.3, 0.3), "X"),
    ("A.trace()", lambda d: np.trace(d["A"]), "A"),
    ("sum(X, 1)", lambda d: np.sum(d["X"], 1), "X"),
    ("X - X.mean(axis=0, keepdims=True)", lambda d: d["X"] - d["X"].mean(axis=0, keepdims=True), "X"),
    ("X / sum(X * X, axis=1, keepdims=True)", lambda d: d["X"] / np.sum(d["X"] ** 2, axis=1, keepdims=True), "X"),
    ("softmax(T, axis=(1, 2))", lambda d: special.softmax(d["T"], axis=(1, 2)), "T"),
    ("log_softmax(T, axis=(0, 2))", lambda d: special.log_softmax(d["T"], axis=(0, 2)), "T"),
    ("logsumexp(T, axis=(0, 2))", lambda d: special.logsumexp(d["T"], axis=(0, 2)), "T"),
    ("logsumexp(X, axis=1, keepdims=True)", lambda d: special.logsumexp(d["X"], axis=1, keepdims=True), "X"),
    ("T @ x", lambda d: d["T"] @ d["x"], "T"),
    ("T @ W", lambda d: d["T"] @ d["W"], "W"),
    ("v @ T", lambda d: d["v"] @ d["T"], "T"),
    ("X @ U", lambda d: d["X"] @ d["U"], "U"),
    ("einsum('...ij,j->...i', T, x)", lambda d: np.einsum("...ij,j->...i", d["T"], d["x"]), "T"),
    ("einsum('...j,...j', X, Y)", lambda d: np.einsum("...j,...j", d["X"], d["Y"]), "X"),
    ("einsum('i->ii', x)", lambda d: np.diag(d["x"]), "x"),
    ("einsum('ij->iij', X)", lambda d: np.einsum("ij,ik->ikj", d["X"], np.eye(3)), "X"),
    # constant arrays and subscripts
    ("einsum('ij,jk->ik', X, array([[1, 0], [0, 1], [2, -1], [0.5, 0]]))", lambda d: d["X"] @ FIXED, "X"),
    ("sum(X * X * np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0]]))", lambda d: np.sum(d["X"] ** 2 * MASK), "X"),
    ("x[:, None] * z[None, :]", lambda d: np.outer(d["x"], d["z"]), "x"),
    ("X - X.mean(axis=1)[:, None]", lambda d: d["X"] - d["X"].mean(axis=1)[:, None], "X"),
    ("T[..., None] * X[:, np.newaxis]", lambda d: d["T"][..., None] * d["X"][:, np.newaxis], "T"),
    ("expand_dims(x, 0) @ A", lambda d: np.expand_dims(d["x"], 0) @ d["A"], "A"),
    (
        "-sum(log_softmax(X, axis=1)[np.arange(3), [0, 3, 1]])",
        lambda d: -np.sum(special.log_softmax(d["X"], axis=1)[np.arange(3), [0, 3, 1]]),
        "X",
    ),
    ("x[[3, 0, 0]] * z[[1, 1, 2]]", lambda d: d["x"][[3, 0, 0]] * d["z"][[1, 1, 2]], "x"),
    ("X[:, [1, 0]] * X[:, [3, 3]]", lambda d: d["X"][:, [1, 0]] * d["X"][:, [3, 3]], "X"),
    ("X[[2, 2, 0, 1], :]", lambda d: d["X"][[2, 2, 0, 1], :], "X"),
    ("einsum('ab,ab->a', window('m n', rows=[0, 3, 1]), X)", lambda d: d["X"][np.arange(3), [0, 3, 1]], "X"),
    ("x.reshape(-1, 1) * z.reshape(1, -1)", lambda d: d["x"].reshape(-1, 1) * d["z"].reshape(1, -1), "x"),
    ("reshape(x, (1, -1)) @ A", lambda d: d["x"].reshape(1, 4) @ d["A"], "x"),
    ("F.reshape(6).reshape(3, 2) @ F", lambda d: d["F"].reshape(3, 2) @ d["F"], "F"),
    ("np.linalg.norm(X) + np.absolute(x).sum()", lambda d: np.linalg.norm(d["X"]) + np.abs(d["x"]).sum(), "X"),
    (
        "np.divide(np.add(X, Y), np.multiply(P, 2)) - np.subtract(X, np.negative(Y))",
        lambda d: (d["X"] + d["Y"]) / (2 * d["P"]) - (d["X"] + d["Y"]),
        "P",
    ),
    ("x[0] * x[-1] + x[1]", lambda d: d["x"][0] * d["x"][-1] + d["x"][1], "x"),
    ("X[:, 1] @ X[:, 1:3]", lambda d: d["X"][:, 1] @ d["X"][:, 1:3], "X"),
    ("einsum('ab,b->a', window('2 n', 1), x)", lambda d: d["x"][1:3], "x"),
    ("X[-1, -2] * X[..., 0]", lambda d: d["X"][-1, -2] * d["X"][..., 0], "X"),
    ("sum(x[:2] * x[-2:])", lambda d: np.sum(d["x"][:2] * d["x"][-2:]), "x"),
    ("T[:, 0, 1:3]", lambda d: d["T"][:, 0, 1:3], "T"),
    ("stack([x, z]) @ A", lambda d: np.stack([d["x"], d["z"]]) @ d["A"], "x"),
    ("np.stack((X, Y * X), axis=-1)", lambda d: np.stack((d["X"], d["Y"] * d["X"]), axis=-1), "X"),
    (
        "concatenate([X[:, :2], exp(X[:, 1:3])], axis=1)",
        lambda d: np.concatenate([d["X"][:, :2], np.exp(d["X"][:, 1:3])], axis=1),
        "X",
    ),
    (
        "asarray([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]]) @ x - x",
        lambda d: np.roll(d["x"], -1) - d["x"],
        "x",
    ),
]
FIXED = np.array([[1, 0], [0, 1], [2, -1], [0.5, 0]])
MASK = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0]])


@pytest.fixture
def language_values(values, rng):
    return {**values, "Q": rng.uniform(-0.8, 0.8, size=(3, 4)), "F": rng.standard_normal((2, 3))}


LANGUAGE_DECLS = {**DECLS, "Q": "m n", "F": "2 3"}


def _parse(text):
    return ec.parse(text, **{n: LANGUAGE_DECLS[n] for n in LANGUAGE_DECLS if n in _names(text)})


@pytest.mark.parametrize("text,reference,wrt", LANGUAGE_CASES, ids=[c[0] for c in LANGUAGE_CASES])
def test_language_values_round_trips_and_latex(text, reference, wrt, language_values):
    expr = _parse(text)
    arrays = {name: language_values[name] for name in expr.variables()}
    check_close(ec.evaluate(expr, arrays, SIZES), reference(language_values), what=text)
    assert _parse(str(expr)) is expr, str(expr)
    assert ec.latex(expr)
    compiled = ec.compile(expr)
    check_close(compiled(**arrays), reference(language_values), what=f"compiled {text}")


def _mixed_difference(f, x0, directions, h):
    total = 0.0
    for signs in np.ndindex(*(2,) * len(directions)):
        s = [1.0 - 2.0 * k for k in signs]
        total = total + np.prod(s) * np.asarray(f(x0 + h * sum(c * d for c, d in zip(s, directions))))
    return total / (2 * h) ** len(directions)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize(
    "text,reference,wrt", [c for c in LANGUAGE_CASES if c[2]], ids=[c[0] for c in LANGUAGE_CASES if c[2]]
)
def test_language_derivatives_in_every_mode(text, reference, wrt, order, language_values, rng):
    expr = _parse(text)
    x0 = language_values[wrt]
    directions = [rng.standard_normal(np.shape(x0)) for _ in range(order)]

    def f(x):
        return reference({**language_values, wrt: x})

    h = 1e-5 if order == 1 else 1e-4  # small: a difference across a kink of clip or max would be wrong
    expected = _mixed_difference(f, x0, directions, h)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    for mode in ("reverse", "forward", "cross_country"):
        d = ec.derivative(expr, wrt, order=order, mode=mode)
        used = {name: language_values[name] for name in d.variables()}
        value = np.asarray(ec.evaluate(d, used, SIZES), dtype=float)
        for direction in reversed(directions):
            value = np.tensordot(value, direction, axes=direction.ndim)
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{text} {mode}")


def test_numpy_arrays_are_constant_operands(rng):
    """``ec.einsum("ij,j->i", np.eye(3), v)``: the array takes v's dim, checked when sizes bind."""
    v = ec.vector("v", "n")
    shift = np.eye(3, k=1)
    f = ec.einsum("ij,j->i", shift, v)
    v0 = rng.standard_normal(3)
    check_close(ec.evaluate(f, v=v0), shift @ v0)
    loss = ec.sum((f - v) ** 2) + ec.sum(np.triu(np.ones((3, 3))) * ec.outer(v, v))
    expected = (
        2 * (shift - np.eye(3)).T @ (shift @ v0 - v0) + (np.triu(np.ones((3, 3))) + np.tril(np.ones((3, 3)))) @ v0
    )
    for mode in ("reverse", "forward", "cross_country"):
        check_close(ec.evaluate(ec.derivative(loss, v, mode=mode), v=v0), expected, what=mode)
    check_close(ec.compile(ec.grad(loss, v))(v=v0), expected)
    check_close(ec.evaluate(ec.grad(v[0] * v[-1], v), v=v0), [v0[-1], 0.0, v0[0]])
    assert ec.parse(str(loss), v="n") is loss
    with pytest.raises(ec.SizeError, match="size 3 from axis 0 of a constant array"):
        ec.evaluate(f, v=np.ones(4))
    with pytest.raises(TypeError, match="NumPy array"):
        ec.einsum("i,i->", v, "abc")


def test_integer_array_gather_from_python(rng):
    """``logp[np.arange(n), labels]``: the cross-entropy gradient is softmax minus the one-hot labels."""
    logits = ec.matrix("Z", "m k")
    labels = np.array([2, 0, 1, 2, 2])
    loss = -ec.mean(ec.log_softmax(logits, axis=1)[np.arange(5), labels])
    z0 = rng.standard_normal((5, 3)) * 100  # far from 0: stable forms
    expected = (special.softmax(z0, axis=1) - np.eye(3)[labels]) / 5
    for mode in ("reverse", "forward", "cross_country"):
        check_close(ec.evaluate(ec.derivative(loss, logits, mode=mode), Z=z0), expected, what=mode)
    check_close(ec.compile(ec.grad(loss, logits))(Z=z0), expected)
    with pytest.raises(ec.SizeError, match="gathered positions"):
        ec.evaluate(loss, Z=np.ones((4, 3)))
    with pytest.raises(ec.ShapeError, match="equal lengths"):
        logits[np.arange(2), labels]


@pytest.mark.parametrize(
    "text,subscript",
    [
        ("X[:, 1:3]", "X[:, 1:3]"),
        ("x[0] * x[-1]", "x[-1]"),
        ("x[-3:] @ x[:3]", "x[-3:]"),
        ("X[[2, 0]]", "X[[2, 0]]"),
        ("sum(X[np.arange(3), [0, 3, 1]])", "X[numpy.arange(X.shape[0]), [0, 3, 1]]"),
    ],
)
def test_indexing_compiles_to_subscripts_not_selection_matrices(text, subscript, values):
    expr = ec.parse(text, **{n: DECLS[n] for n in _names(text) if n in DECLS})
    f = ec.compile(expr)
    assert subscript in f.source and "eye(" not in f.source, f.source
    arrays = {name: values[name] for name in expr.variables()}
    check_close(f(**arrays), ec.evaluate(expr, arrays))
