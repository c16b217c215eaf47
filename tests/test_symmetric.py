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
