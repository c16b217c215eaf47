"""Derivatives in every mode against central finite differences of the function itself.

The oracle never involves eincalc's own derivatives: a k-th derivative contracted with
k directions is compared with the k-th mixed central difference of ``f`` along them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import eincalc as ec
from eincalc import dims as dims_module
from eincalc.diff import ELIMINATION_ORDERS, cross_country_jacobian, derivative

MODES = ["reverse", "forward", "cross_country"]


def mixed_difference(f, x0: np.ndarray, directions: list[np.ndarray], h: float) -> np.ndarray:
    """Σ over sign patterns of f(x0 + h Σ ±dᵢ) · Π ±1 / (2h)^k: the k-th mixed derivative."""
    k = len(directions)
    total = 0.0
    for signs in itertools.product((1.0, -1.0), repeat=k):
        point = x0 + h * sum(s * d for s, d in zip(signs, directions))
        total = total + np.prod(signs) * np.asarray(f(point))
    return total / (2 * h) ** k


SIZES = {"n": 4, "m": 3, "k": 2, "h": 3}
SMALL = {"n": 3, "m": 2, "k": 2, "h": 2}


def evaluate_dense(expr, arrays: dict, sizes: dict) -> np.ndarray:
    """Evaluate with only the arrays the expression uses (a derivative may drop some)."""
    used = expr.variables()
    needed = {b for n in ec.topo_order(expr) for d in n.dims for b in (d, *dims_module.base_dims(d))}  # m*n needs m, n
    return ec.evaluate(
        expr, {k: v for k, v in arrays.items() if k in used}, {d: s for d, s in sizes.items() if d in needed}
    )


def contract_trailing(value: np.ndarray, directions: list[np.ndarray]) -> np.ndarray:
    for d in reversed(directions):
        value = np.tensordot(value, d, axes=d.ndim)
    return value


def check_derivative(expr, wrt: str, arrays: dict, order: int, mode, rng, rtol=1e-5, atol=1e-6, sizes=SIZES):
    d = derivative(expr, wrt, order=order, mode=mode)
    var = [n for n in ec.topo_order(expr) if isinstance(n, ec.Var) and n.name == wrt][0]
    assert d.dims == expr.dims + var.dims * order
    value = evaluate_dense(d, arrays, sizes)
    x0 = arrays[wrt]
    directions = [rng.normal(size=np.shape(x0)) for _ in range(order)]

    def f(x):
        return ec.evaluate(expr, **{**arrays, wrt: x})

    h = {1: 1e-6, 2: 1e-4, 3: 2e-3}[order]
    expected = mixed_difference(f, x0, directions, h)
    got = contract_trailing(value, directions)
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(got, expected, rtol=rtol * (10 ** (order - 1)), atol=atol * scale * (10 ** (order - 1)))


def spd(rng, n):
    a = rng.normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


# (name, expression text, declarations, wrt, array maker)
CASES = [
    ("quadratic form", "x @ A @ x", dict(x="n", A="n n"), "x"),
    ("quadratic form wrt A", "x @ A @ x", dict(x="n", A="n n"), "A"),
    ("trace XAXt", "trace(X @ A @ X.T)", dict(X="m n", A="n n"), "X"),
    ("logistic", "sum(log(1 + exp(-y * (X @ w))))", dict(X="m n", w="n", y="m"), "w"),
    ("matrix factorisation", "sum((T - U @ V.T) ** 2)", dict(T="m n", U="m k", V="n k"), "U"),
    ("matrix factorisation V", "sum((T - U @ V.T) ** 2)", dict(T="m n", U="m k", V="n k"), "V"),
    ("softmax", "softmax(x)", dict(x="n"), "x"),
    ("softmax axis 0", "softmax(X, axis=0)", dict(X="m n"), "X"),
    ("log_softmax", "log_softmax(X)", dict(X="m n"), "X"),
    ("logsumexp", "logsumexp(x)", dict(x="n"), "x"),
    ("logsumexp axis", "logsumexp(X, axis=1)", dict(X="m n"), "X"),
    ("cross entropy", "-sum(y * log_softmax(W @ x))", dict(W="k n", x="n", y="k"), "W"),
    ("det", "det(A)", dict(A="n n"), "A"),
    ("logdet", "logdet(A)", dict(A="n n"), "A"),
    ("inv", "inv(A)", dict(A="n n"), "A"),
    ("inv quadratic", "x @ inv(A) @ x", dict(x="n", A="n n"), "A"),
    ("trace only", "trace(A)", dict(A="n n"), "A"),
    ("diag of matrix", "sum(diag(A) ** 2)", dict(A="n n"), "A"),
    ("diag of vector", "diag(x) @ A @ diag(x)", dict(x="n", A="n n"), "x"),
    ("index only in operand", "einsum('ij,j->j', A, x)", dict(A="n n", x="n"), "A"),
    ("same variable several times", "sum(x * x * x) + x @ x", dict(x="n"), "x"),
    ("norm2", "norm2(A @ x - y)", dict(A="m n", x="n", y="m"), "x"),
    ("mlp", "sum(softplus(W2 @ tanh(W1 @ x + b1)))", dict(W1="h n", W2="k h", x="n", b1="h"), "W1"),
    (
        "elementwise zoo",
        "sum(sin(x) * cos(x) + tanh(x) + sigmoid(x) + sqrt(exp(x)) + x ** 3 + tan(x / 4))",
        dict(x="n"),
        "x",
    ),
    ("outer", "outer(x, x)", dict(x="n"), "x"),
    ("mean", "mean((X @ w) ** 2)", dict(X="m n", w="n"), "w"),
    ("broadcast bias", "sum(tanh(X @ W + b))", dict(X="m n", W="n h", b="h"), "b"),
    ("scalar vars", "x * y + exp(x * y)", dict(x="", y=""), "x"),
]


def make_arrays(decls: dict, rng, sizes=SIZES) -> dict:
    out = {}
    for name, spec in decls.items():
        dims = spec.split()
        shape = tuple(sizes[d] for d in dims)
        if name == "A" and len(dims) == 2 and dims[0] == dims[1]:
            out[name] = spd(rng, shape[0])
        else:
            out[name] = rng.normal(size=shape) if shape else float(rng.normal())
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_first_derivative(case, mode, rng):
    name, text, decls, wrt = case
    f = ec.parse(text, **decls)
    check_derivative(f, wrt, make_arrays(decls, rng), 1, mode, rng)


SECOND = [c for c in CASES if c[0] not in ("inv",)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", SECOND, ids=[c[0] for c in SECOND])
def test_second_derivative(case, mode, rng):
    name, text, decls, wrt = case
    f = ec.parse(text, **decls)
    check_derivative(f, wrt, make_arrays(decls, rng), 2, mode, rng)


THIRD = ["quadratic form", "det", "softmax", "logistic", "elementwise zoo", "logdet", "scalar vars"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", THIRD)
def test_third_derivative(name, mode, rng):
    _, text, decls, wrt = next(c for c in CASES if c[0] == name)
    f = ec.parse(text, **decls)
    check_derivative(f, wrt, make_arrays(decls, rng, SMALL), 3, mode, rng, sizes=SMALL)


@pytest.mark.parametrize("order_name", sorted(ELIMINATION_ORDERS))
def test_elimination_orders_agree(order_name, rng):
    f = ec.parse("sum(softplus(W2 @ tanh(W1 @ x + b1)))", W1="h n", W2="k h", x="n", b1="h")
    arrays = make_arrays(dict(W1="h n", W2="k h", x="n", b1="h"), rng)
    x = f.variables()
    var = [n for n in ec.topo_order(f) if isinstance(n, ec.Var) and n.name == "W1"][0]
    d = cross_country_jacobian(f, var, order=order_name)
    reference = evaluate_dense(derivative(f, "W1", mode="reverse"), arrays, SIZES)
    np.testing.assert_allclose(evaluate_dense(d, arrays, SIZES), reference, rtol=1e-10, atol=1e-12)
    assert x
