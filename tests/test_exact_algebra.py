"""Exact algebra on products (issue 10, part 1): powers of one factor combine.

Oracles: the closed forms of the literature (∇‖W‖² = 2W, ∇ log det X = X^{-T}),
central differences, and the unsimplified expression evaluated where it is finite.
"""

from __future__ import annotations

import numpy as np
import pytest

import eincalc as ec
from eincalc import algebra
from eincalc.expr import Elementwise, Unary
from eincalc.graph import topo_order
from eincalc.testing import numeric_jacobian


def test_w_over_w_is_one():
    f = ec.parse("w / w", w="n")
    assert f is algebra.const(1.0, ("n",))
    np.testing.assert_array_equal(ec.evaluate(f, w=np.array([2.0, -3.0]), n=2), [1.0, 1.0])


def test_powers_of_one_factor_add_their_exponents():
    x = ec.vector("x", "n")
    assert x**2 * x**3 is x**5
    assert x**2 * x**-2 * x is x
    assert ec.sqrt(x) * ec.sqrt(x) is x
    assert ec.sqrt(x) ** 2 is x


def test_gradient_of_squared_norm_is_two_w_and_finite_at_zero():
    f = ec.parse("norm2(W) ** 2", W="m n")
    g = ec.grad(f, "W")
    assert g is 2 * ec.matrix("W", "m n")
    assert ec.parse("norm2(W) ** 2", W="m n") is ec.parse("sum(W * W)", W="m n")
    np.testing.assert_array_equal(ec.evaluate(g, W=np.zeros((2, 3))), np.zeros((2, 3)))
    for mode in ("forward", "cross_country"):
        np.testing.assert_array_equal(ec.evaluate(ec.derivative(f, "W", mode=mode), W=np.zeros((2, 3))), 0.0)


def test_gradient_of_log_det_is_inverse_transpose():
    f = ec.parse("log(det(X))", X="n n")
    g = ec.grad(f, "X")
    X = ec.matrix("X", "n n")
    assert g is ec.transpose(ec.inv(X))
    assert ec.to_numpy_syntax(g) == "inv(X).T"
    assert ec.latex(g) == r"X^{-\top}"
    # a large well-conditioned matrix: det overflows, the gradient must not
    rng = np.random.default_rng(0)
    A = 10 * np.eye(400) + rng.normal(size=(400, 400))
    value = ec.evaluate(g, X=A)
    np.testing.assert_allclose(value, np.linalg.inv(A).T, rtol=1e-10, atol=1e-12)
    code = ec.compile(g)
    np.testing.assert_allclose(code(X=A), np.linalg.inv(A).T, rtol=1e-10, atol=1e-12)


def test_adjugate_kept_where_the_determinant_is_not_divided():
    # ∇ det X = adj(X)ᵀ stays finite at a singular matrix (no inverse introduced)
    g = ec.grad(ec.parse("det(X)", X="n n"), "X")
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    np.testing.assert_allclose(ec.evaluate(g, X=singular), [[4.0, -2.0], [-2.0, 1.0]])


def test_bce_gradient_has_no_reciprocal_times_itself():
    f = ec.parse("-sum(y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z)))", y="n", z="n")
    g = ec.grad(f, "z")
    for node in topo_order([g]):
        if isinstance(node, Elementwise) and node.fn == "pow":
            assert node.param is None or node.param > 0, str(g)
    z = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    value = ec.evaluate(g, y=y, z=z)
    assert np.all(np.isfinite(value))
    np.testing.assert_allclose(value, 1 / (1 + np.exp(-np.clip(z, -500, 500))) - y, atol=1e-15)


def _evaluate_quiet(node, **arrays):
    with np.errstate(all="ignore"):
        return np.asarray(ec.evaluate(node, **arrays), dtype=float)


@pytest.mark.parametrize("seed", range(40))
def test_collected_powers_agree_with_the_unsimplified_product_where_it_is_finite(seed):
    rng = np.random.default_rng(seed)
    exponents = rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0, 3.0], size=rng.integers(2, 5))
    x = rng.choice([-2.0, -0.5, 0.0, 0.25, 1.5, 3.0], size=6)
    combined = ec.parse(" * ".join(f"x ** {e}" for e in exponents), x="n")
    with np.errstate(all="ignore"):
        unsimplified = np.prod([np.power(x, e) for e in exponents], axis=0)
    value = _evaluate_quiet(combined, x=x)
    finite = np.isfinite(unsimplified)
    np.testing.assert_allclose(value[finite], unsimplified[finite], rtol=1e-12, atol=1e-300)


def test_collected_powers_differentiate_correctly():
    f = ec.parse("sum(x ** 1.5 * x ** -0.5 * sqrt(x) + exp(x) / exp(x) * x)", x="n")
    x = np.array([0.5, 1.2, 2.0])
    for mode in ("reverse", "forward", "cross_country"):
        g = ec.derivative(f, "x", mode=mode)
        numeric = numeric_jacobian(lambda v: ec.evaluate(f, x=v), x)
        np.testing.assert_allclose(ec.evaluate(g, x=x), numeric, rtol=1e-7)


def test_hadamard_of_different_indices_is_not_a_power():
    A = ec.matrix("A", "n n")
    p = ec.einsum("ij,ji->ij", A, A)  # A ∘ Aᵀ, not A²
    assert not any(isinstance(n, Elementwise) and n.fn == "pow" for n in topo_order([p]))
    a = np.arange(4.0).reshape(2, 2)
    np.testing.assert_allclose(ec.evaluate(p, A=a), a * a.T)


def test_no_unary_inverse_without_a_division():
    g = ec.grad(ec.parse("det(X) * sum(X)", X="n n"), "X")
    assert not any(isinstance(n, Unary) and n.fn == "inv" for n in topo_order([g]))


NESTED = [
    ("sqrt(x ** 2)", lambda x: np.sqrt(x**2)),
    ("(x ** 2) ** 1.5", lambda x: (x**2) ** 1.5),
    ("sqrt(exp(x) ** 2)", lambda x: np.sqrt(np.exp(x) ** 2)),
    ("(x ** 4) ** 0.25", lambda x: (x**4) ** 0.25),
    ("sqrt(x) ** 3", lambda x: np.sqrt(x) ** 3),
    ("(x ** 3) ** (1 / 3)", lambda x: (x**3) ** (1 / 3)),
    ("(x ** 0.5) ** -2 * x", lambda x: (x**0.5) ** -2 * x),
    ("(sigmoid(x) ** 2) ** 0.5", lambda x: ((1 / (1 + np.exp(-x))) ** 2) ** 0.5),
]


@pytest.mark.parametrize(("text", "reference"), NESTED, ids=[t for t, _ in NESTED])
def test_powers_of_powers_keep_values_where_defined(text, reference):
    x = np.array([-3.0, -1.0, -0.2, 0.0, 0.3, 1.0, 2.5])
    f = ec.parse(text, x="n")
    with np.errstate(all="ignore"):
        expected = reference(x)
    value = _evaluate_quiet(f, x=x)
    finite = np.isfinite(expected)
    np.testing.assert_allclose(value[finite], expected[finite], rtol=1e-12)
    if "x" not in f.variables():  # x / x: a constant
        return
    inside = x[np.abs(x) > 0.1]
    with np.errstate(all="ignore"):
        keep = np.isfinite(reference(inside - 1e-4)) & np.isfinite(reference(inside + 1e-4))
    for mode in ("reverse", "forward"):
        g = ec.derivative(ec.sum(f), "x", mode=mode)
        with np.errstate(all="ignore"):
            numeric = (reference(inside + 1e-6) - reference(inside - 1e-6)) / 2e-6
        np.testing.assert_allclose(_evaluate_quiet(g, x=inside)[keep], numeric[keep], rtol=1e-6)


def test_sqrt_of_a_square_is_the_absolute_value():
    x = ec.vector("x", "n")
    assert ec.sqrt(x**2) is ec.abs(x)
    assert ec.sqrt(ec.exp(x) ** 2) is ec.exp(x)  # exp(x) ≥ 0: no abs needed


def test_a_sum_minus_itself_is_zero():
    f = ec.parse("sum((T - U @ V.T) ** 2) + sum(U * U)", T="m n", U="m k", V="n k")
    assert algebra.is_zero(f - f)
    g = ec.parse("x @ A @ x + sum(exp(x) * x)", x="n", A="n n")
    assert algebra.is_zero(2 * g - g - g)
    x = np.linspace(-1, 1, 4)
    a = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(ec.evaluate(3 * g - g, x=x, A=a), 2 * ec.evaluate(g, x=x, A=a))
