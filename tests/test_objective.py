"""ec.objective with SciPy: convergence, packing, hessp against a dense Hessian from finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

import eincalc as ec


def logistic_problem(rng, m=400, n=10):
    X = rng.normal(size=(m, n))
    y = np.sign(X @ rng.normal(size=n) + 0.5 * rng.normal(size=m))
    return X, y


def test_logistic_regression_newton_converges_quadratically():
    # What eincalc controls is the exactness of the derivatives; with an exact Hessian,
    # Newton's method converges quadratically near the optimum. (SciPy's trust-exact
    # stopping rule and iteration count vary between SciPy releases, so they are not asserted.)
    f = ec.parse("sum(log(1 + exp(-y * (X @ w)))) + 0.5 * lam * (w @ w)", X="m n", w="n", y="m", lam="")
    X, y = logistic_problem(np.random.default_rng(2))
    obj = ec.objective(f, "w", dict(X=X, y=y, lam=1e-2))
    w, norms = np.zeros(10), []
    for _ in range(20):
        g = obj.jac(w)
        norms.append(np.linalg.norm(g))
        if norms[-1] < 1e-10:
            break
        w = w - np.linalg.solve(obj.hess(w), g)
    assert norms[-1] < 1e-10, norms
    # quadratic convergence: once the gradient is small, the next one is about its square
    tail = [(a, b) for a, b in zip(norms, norms[1:]) if a < 0.1 and b > 1e-13]
    assert len(tail) >= 2 and all(b < a**2 for a, b in tail), norms
    # independent check of the optimum: the closed-form gradient vanishes there
    s = 1 / (1 + np.exp(y * (X @ w)))
    assert np.linalg.norm(-X.T @ (y * s) + 1e-2 * w) < 1e-9


def test_logistic_regression_with_scipy_trust_exact():
    f = ec.parse("sum(log(1 + exp(-y * (X @ w)))) + 0.5 * lam * (w @ w)", X="m n", w="n", y="m", lam="")
    X, y = logistic_problem(np.random.default_rng(2))
    obj = ec.objective(f, "w", dict(X=X, y=y, lam=1e-2))
    res = scipy.optimize.minimize(
        obj.fun, np.zeros(10), jac=obj.jac, hess=obj.hess, method="trust-exact", options=dict(gtol=1e-6)
    )
    assert np.linalg.norm(obj.jac(res.x)) < 1e-5


def numeric_grad(fun, x, h=1e-6):
    return np.array([(fun(x + h * e) - fun(x - h * e)) / (2 * h) for e in np.eye(len(x))])


def test_several_variables_packed_and_hessp(rng):
    f = ec.parse("sum((T - U @ V.T) ** 2) + 0.1 * sum(U * U)", T="m n", U="m k", V="n k")
    T = rng.normal(size=(5, 4))
    obj = ec.objective(f, ["U", "V"], dict(T=T), sizes=dict(k=2))
    assert obj.size == 5 * 2 + 4 * 2
    x = rng.normal(size=obj.size)
    U, V = x[:10].reshape(5, 2), x[10:].reshape(4, 2)
    assert np.isclose(obj.fun(x), np.sum((T - U @ V.T) ** 2) + 0.1 * np.sum(U * U))
    np.testing.assert_allclose(obj.jac(x), numeric_grad(obj.fun, x), rtol=1e-6, atol=1e-6)
    dense = np.array([numeric_grad(lambda z, i=i: obj.jac(z)[i], x) for i in range(obj.size)])
    np.testing.assert_allclose(obj.hess(x), dense, rtol=1e-5, atol=1e-5)
    p = rng.normal(size=obj.size)
    np.testing.assert_allclose(obj.hessp(x, p), dense @ p, rtol=1e-5, atol=1e-5)


def test_objective_errors(rng):
    f = ec.parse("sum((A @ x - b) ** 2)", A="m n", x="n", b="m")
    with pytest.raises(ec.UnknownNameError, match="not a variable"):
        ec.objective(f, "z", dict(A=np.eye(2), b=np.ones(2)))
    with pytest.raises(ec.ArgumentError, match="no array for b"):
        ec.objective(f, "x", dict(A=np.eye(2)))
    with pytest.raises(ec.ArgumentError, match="the array for b is complex"):
        ec.objective(f, "x", dict(A=np.eye(2), b=np.ones(2) + 1j))
    obj = ec.objective(f, "x", dict(A=np.eye(2), b=np.ones(2)))
    with pytest.raises(ec.ShapeError, match="flat vector of 2"):
        obj.fun(np.zeros(3))
    with pytest.raises(ec.ShapeError, match="scalar"):
        ec.objective(ec.parse("A @ x", A="m n", x="n"), "x", dict(A=np.eye(2)))


def test_objective_is_not_stale_after_its_data_change(rng):
    f = ec.parse("sum((A @ x - b) ** 2)", A="m n", x="n", b="m")
    A, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    obj = ec.objective(f, "x", dict(A=A, b=b))
    x = rng.normal(size=3)
    assert obj.fun(x) == pytest.approx(np.sum((A @ x - b) ** 2))
    obj.data["b"] = b2 = rng.normal(size=5)  # a new array
    assert obj.fun(x) == pytest.approx(np.sum((A @ x - b2) ** 2))
    np.testing.assert_allclose(obj.jac(x), 2 * A.T @ (A @ x - b2))
    obj.data["A"][0, 0] += 1.0  # changed in place
    assert obj.fun(x) == pytest.approx(np.sum((obj.data["A"] @ x - b2) ** 2))


def test_objective_of_a_function_with_a_dropped_variable(rng):
    f = ec.parse("sum((A @ x - b) ** 2) + sum(z ** 0)", A="m n", x="n", b="m", z="n")  # z only adds n
    A, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    obj = ec.objective(f, "x", dict(A=A, b=b))
    x = rng.normal(size=3)
    assert obj.fun(x) == pytest.approx(np.sum((A @ x - b) ** 2) + 3)
    np.testing.assert_allclose(obj.jac(x), 2 * A.T @ (A @ x - b))
    np.testing.assert_allclose(obj.hess(x), 2 * A.T @ A)
