"""Sign analysis and symmetric products (issue 10, part 4).

Oracles: sampled values (every proved bound must hold on random inputs), the closed
form Xᵀ diag(σ(z)(1−σ(z))) X of the logistic-regression Hessian.
"""

from __future__ import annotations

import numpy as np
import pytest

import eincalc as ec
from eincalc.signs import bounds, is_nonnegative

CASES = [
    ("sigmoid(z) * (1 - sigmoid(z))", True),
    ("y * y * exp(z)", True),
    ("1 - tanh(z)", True),
    ("softplus(z) + z ** 2", True),
    ("sqrt(abs(z)) - 2", False),
    ("z * exp(z)", False),
    ("-(exp(z))", False),
    ("maximum(z, 0) * sigmoid(y)", True),
    ("relu(z) - relu(y)", False),
    ("cosh(z) - 1", True),
    ("sum(y * y)", True),
    ("2 - sin(z) - cos(y)", True),
]


@pytest.mark.parametrize(("text", "nonnegative"), CASES)
def test_bounds_hold_on_samples_and_prove_what_they_should(text, nonnegative, rng):
    f = ec.parse(text, z="n", y="n")
    lo, hi = bounds(f)
    assert is_nonnegative(f) == nonnegative
    for scale in (0.1, 3.0, 30.0):
        z, y = scale * rng.normal(size=50), scale * rng.normal(size=50)
        with np.errstate(all="ignore"):
            value = np.asarray(ec.evaluate(f, **{k: v for k, v in {"z": z, "y": y}.items() if k in f.variables()}))
        value = value[np.isfinite(value)]
        assert np.all(value >= lo - 1e-12) and np.all(value <= hi + 1e-12), (text, lo, hi)


def test_logistic_hessian_is_a_gram_product_of_scaled_rows(rng):
    f = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", y="m", w="n")
    code = ec.compile(ec.hessian(f, "w"))
    body = code.source.split("def f(")[1]
    assert "numpy.sqrt(" in body
    last = [line.split("=")[1].split("#")[0].strip() for line in body.splitlines() if " @ " in line][-1]
    left, right = last.split(" @ ")
    assert left == right + ".T", last  # Xs.T @ Xs: NumPy runs it as syrk
    X, y, w = rng.normal(size=(40, 6)), np.sign(rng.normal(size=40)), rng.normal(size=6)
    z = y * (X @ w)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(code(X=X, y=y, w=w), X.T @ (X * (s * (1 - s))[:, None]), rtol=1e-12)


def test_weights_of_unknown_sign_stay_a_general_product(rng):
    f = ec.parse("X.T @ (X * d[:, None])", X="m n", d="m")
    code = ec.compile(f)
    assert "sqrt" not in code.source
    X, d = rng.normal(size=(7, 3)), rng.normal(size=7)
    np.testing.assert_allclose(code(X=X, d=d), X.T @ (X * d[:, None]), rtol=1e-12)


# --------------------------------------------------------------------------------------
# symmetric matrix variables: the symmetric convention
# --------------------------------------------------------------------------------------
SYMMETRIC_CASES = [
    ("log(det(X))", "numpy"),
    ("sum(a * (X @ b))", "numpy"),
    ("trace(X @ X @ A)", "numpy"),
    ("a @ inv(X) @ a", "numpy"),
    ("a' * X * b", "matrixcalculus"),
]


def _spd(rng, n):
    m = rng.normal(size=(n, n))
    return m @ m.T + n * np.eye(n)


def _sym(rng, n):
    m = rng.normal(size=(n, n))
    return (m + m.T) / 2


@pytest.mark.parametrize(("text", "dialect"), SYMMETRIC_CASES)
@pytest.mark.parametrize("mode", ["reverse", "forward", "cross_country"])
def test_gradient_of_a_symmetric_matrix_is_the_symmetric_convention(text, dialect, mode, rng):
    f = ec.parse(text, dialect=dialect, X="n n", A="n n", a="n", b="n", symmetric={"X"})
    arrays = {"X": _spd(rng, 4), "A": rng.normal(size=(4, 4)), "a": rng.normal(size=4), "b": rng.normal(size=4)}
    arrays = {k: v for k, v in arrays.items() if k in f.variables()}
    G = np.asarray(ec.evaluate(ec.derivative(f, "X", mode=mode), **arrays))
    np.testing.assert_allclose(G, G.T, rtol=1e-12, atol=1e-12)  # symmetric, as X is
    for _ in range(3):  # df = ⟨G, E⟩ along every symmetric direction E (central differences)
        E, h = _sym(rng, 4), 1e-5
        plus = ec.evaluate(f, **{**arrays, "X": arrays["X"] + h * E})
        minus = ec.evaluate(f, **{**arrays, "X": arrays["X"] - h * E})
        np.testing.assert_allclose(np.sum(G * E), (plus - minus) / (2 * h), rtol=1e-6, atol=1e-8)


def test_hessian_of_a_symmetric_matrix_pairs_symmetric_directions(rng):
    f = ec.parse("log(det(X))", X="n n", symmetric={"X"})
    X = _spd(rng, 3)
    H = np.asarray(ec.evaluate(ec.hessian(f, "X"), X=X))
    np.testing.assert_allclose(H, H.transpose(1, 0, 2, 3), atol=1e-12)
    np.testing.assert_allclose(H, H.transpose(0, 1, 3, 2), atol=1e-12)
    E1, E2, h = _sym(rng, 3), _sym(rng, 3), 1e-4

    def at(s, t):
        return ec.evaluate(f, X=X + s * E1 + t * E2)

    mixed = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4 * h * h)
    np.testing.assert_allclose(np.einsum("ij,ijkl,kl->", E1, H, E2), mixed, rtol=1e-5)
    # the closed form: d²(log det X)[E1, E2] = −tr(X⁻¹ E1 X⁻¹ E2)
    Xi = np.linalg.inv(X)
    np.testing.assert_allclose(np.einsum("ij,ijkl,kl->", E1, H, E2), -np.trace(Xi @ E1 @ Xi @ E2), rtol=1e-10)


def test_symmetric_declarations_are_checked():
    with pytest.raises(ec.ParseError, match="square"):
        ec.parse("sum(X)", X="m n", symmetric={"X"})
    with pytest.raises(ec.ParseError, match="declared dims"):
        ec.parse("sum(X)", symmetric={"X"})
    with pytest.raises(ec.ParseError, match="collection"):
        ec.parse("sum(X)", X="n n", symmetric="X")
    with pytest.raises(ec.ShapeError, match="square"):
        ec.matrix("Y", "m n", symmetric=True)


def test_symmetric_variable_is_its_own_node():
    plain = ec.parse("log(det(X))", X="n n")
    sym = ec.parse("log(det(X))", X="n n", symmetric={"X"})
    assert plain is not sym
    from eincalc.graph import topo_order

    (X,) = [n for n in topo_order(sym) if isinstance(n, ec.Var)]
    assert X is ec.matrix("X", "n n", symmetric=True) and X.symmetric
