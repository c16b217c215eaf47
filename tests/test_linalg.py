"""cholesky, eigh/eigvalsh, pinv and kron: values against NumPy, derivatives in every mode to
second order against central differences (the reshapes of test_reshape.py too), code,
printed syntax and LaTeX."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_diff import MODES, check_derivative, spd
from test_reshape import CASES as RESHAPE_CASES

import eincalc as ec
from eincalc import dims as dimsmod

SIZES = {"n": 4, "m": 3}


def _arrays(rng, decls: dict) -> dict:
    out = {}
    for name, spec in decls.items():
        dims = spec.split()
        sizes = dimsmod.with_derived(SIZES, dims)  # m*n, n-1
        shape = tuple(int(d) if d.isdigit() else sizes[d] for d in dims)
        out[name] = spd(rng, shape[0]) if name == "S" else rng.normal(size=shape)
    return out


def _signed(v: np.ndarray) -> np.ndarray:
    return v * np.sign(v[np.abs(v).argmax(axis=0), np.arange(v.shape[1])])


# (text, declarations, wrt, NumPy reference); S is symmetric positive definite
CASES = [
    ("cholesky(S)", dict(S="n n"), "S", lambda d: np.linalg.cholesky(d["S"])),
    ("np.linalg.cholesky(S) @ x", dict(S="n n", x="n"), "S", lambda d: np.linalg.cholesky(d["S"]) @ d["x"]),
    ("eigvalsh(S)", dict(S="n n"), "S", lambda d: np.linalg.eigvalsh(d["S"])),
    ("np.linalg.eigh(S)[0] @ x", dict(S="n n", x="n"), "S", lambda d: np.linalg.eigh(d["S"])[0] @ d["x"]),
    ("eigh(S)[1]", dict(S="n n"), "S", lambda d: _signed(np.linalg.eigh(d["S"])[1])),
    ("eigh(S + X.T @ X)[1] @ x", dict(S="n n", X="m n", x="n"), "X", None),
    ("pinv(X)", dict(X="m n"), "X", lambda d: np.linalg.pinv(d["X"])),
    ("np.linalg.pinv(X.T) @ x", dict(X="m n", x="n"), "X", lambda d: np.linalg.pinv(d["X"].T) @ d["x"]),
    ("kron(Y, Z)", dict(Y="2 3", Z="3 2"), "Y", lambda d: np.kron(d["Y"], d["Z"])),
    ("sum(kron(Y, Y) ** 2)", dict(Y="2 3"), "Y", lambda d: np.sum(np.kron(d["Y"], d["Y"]) ** 2)),
    ("kron(v, Z)", dict(v="3", Z="1 2"), "v", lambda d: np.kron(d["v"], d["Z"])),
    ("kron(X, S)", dict(X="m n", S="n n"), "X", lambda d: np.kron(d["X"], d["S"])),
    ("kron(S, x)", dict(S="n n", x="m"), "S", lambda d: np.kron(d["S"], d["x"])),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_value_code_and_printed_syntax(case, rng):
    text, decls, _, reference = case
    f = ec.parse(text, **decls)
    arrays = _arrays(rng, decls)
    value = ec.evaluate(f, arrays)
    if reference is not None:
        np.testing.assert_allclose(value, reference(arrays), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ec.compile(f)(**arrays), value, rtol=1e-10, atol=1e-12)
    assert ec.parse(str(f), **decls) is f


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES + RESHAPE_CASES, ids=[c[0] for c in CASES + RESHAPE_CASES])
def test_derivatives_match_central_differences(case, mode, order, rng):
    """The linear-algebra cases and the reshapes and slices of test_reshape.py."""
    text, decls, wrt, _ = case
    f = ec.parse(text, **decls)
    check_derivative(f, wrt, _arrays(rng, decls), order, mode, rng, sizes=SIZES)


def test_compiled_gradient_matches_interpreter(rng):
    f = ec.parse("sum(eigh(S)[1] * B) + sum(cholesky(S)) + x @ pinv(X) @ y", S="n n", B="n n", X="m n", x="n", y="m")
    arrays = _arrays(rng, dict(S="n n", B="n n", X="m n", x="n", y="m"))
    for wrt in ("S", "X"):
        g = ec.grad(f, wrt)
        np.testing.assert_allclose(ec.compile(g)(**arrays), ec.evaluate(g, arrays), rtol=1e-9, atol=1e-12)


def test_symmetric_part_convention(rng):
    """cholesky and eigh read (X + Xᵀ)/2 (JAX's convention), so any direction is a valid test direction."""
    a = spd(rng, 4)
    skew = rng.normal(size=(4, 4))
    skew -= skew.T
    for text in ("cholesky(X)", "eigvalsh(X)", "eigh(X)[1]"):
        f = ec.parse(text, X="n n")
        np.testing.assert_allclose(ec.evaluate(f, X=a + skew), ec.evaluate(f, X=a), rtol=1e-12, atol=1e-12)


def test_eigenvectors_are_unit_columns_with_positive_largest_entry(rng):
    a = spd(rng, 5)
    v = ec.evaluate(ec.eigh(ec.matrix("A", "n n"))[1], A=a)
    np.testing.assert_allclose(v.T @ v, np.eye(5), atol=1e-12)
    assert np.all(v[np.abs(v).argmax(axis=0), np.arange(5)] > 0)
    lam = np.linalg.eigvalsh(a)
    np.testing.assert_allclose(a @ v, v * lam, atol=1e-10)


def test_repeated_eigenvalue_gives_ieee_values_not_an_exception():
    f = ec.parse("sum(eigh(A)[1] * B)", A="n n", B="n n")
    g = ec.grad(f, "A")
    with np.errstate(invalid="ignore"):
        value = ec.evaluate(g, A=np.eye(3), B=np.ones((3, 3)))
    assert not np.all(np.isfinite(value))
    eig = ec.evaluate(ec.grad(ec.parse("sum(eigvalsh(A))", A="n n"), "A"), A=np.eye(3))
    np.testing.assert_allclose(eig, np.eye(3), atol=1e-12)  # d trace / dA: finite at ties


def test_latex():
    a, x = ec.matrix("A", "m n"), ec.matrix("S", "n n")
    assert ec.latex(ec.pinv(a)) == "A^{+}"
    assert ec.latex(ec.cholesky(x)) == r"\operatorname{chol}(S)"
    assert ec.latex(ec.eigvalsh(x)) == r"\lambda(S)"
    assert ec.latex(ec.eigh(x)[1]) == r"\operatorname{eigvec}(S)"


def test_python_api_dims():
    a = ec.matrix("A", "m n")
    assert ec.pinv(a).dims == ("n", "m")
    assert ec.eigvalsh(ec.matrix("S", "n n")).dims == ("n",)


@pytest.mark.parametrize(
    ("text", "decls", "message"),
    [
        ("cholesky(X)", dict(X="m n"), "square"),
        ("eigvalsh(x)", dict(x="n"), "square"),
        ("pinv(x)", dict(x="n"), "needs a matrix"),
        ("eigh(S)[2]", dict(S="n n"), r"eigh\(A\)\[0\] \(the eigenvalues\)"),
        ("eigh(S)", dict(S="n n"), "eigh"),
    ],
)
def test_errors(text, decls, message):
    with pytest.raises(ec.EincalcError, match=message):
        ec.parse(text, **decls)


# -- properties: random sizes and matrices with a known spectrum ----------------------------


def _with_spectrum(seed: int, rows: int, cols: int, low: float, gap: float) -> np.ndarray:
    """Q₁ diag(s) Q₂ with singular values (or, square, eigenvalues) low, low + gap, …: well conditioned."""
    r = np.random.default_rng(seed)
    k = min(rows, cols)
    q1, _ = np.linalg.qr(r.normal(size=(rows, rows)))
    q2, _ = np.linalg.qr(r.normal(size=(cols, cols)))
    s = np.zeros((rows, cols))
    s[np.arange(k), np.arange(k)] = low + gap * r.permutation(k)
    return q1 @ s @ (q1.T if rows == cols else q2)


PROPERTIES = [
    ("eigvalsh(S) @ x", "S"),
    ("sum(eigh(S)[1] * B)", "S"),
    ("sum(cholesky(S) * B)", "S"),
    ("sum(pinv(P) * C)", "P"),
]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    case=st.sampled_from(PROPERTIES),
    n=st.integers(2, 4),
    m=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    mode=st.sampled_from(MODES),
    order=st.sampled_from([1, 2]),
)
def test_random_matrices_derivatives_match_central_differences(case, n, m, seed, mode, order):
    text, wrt = case
    decls = dict(S="n n", x="n", B="n n", P="m n", C="n m")
    f = ec.parse(text, **{k: v for k, v in decls.items() if k in text})
    r = np.random.default_rng(seed)
    arrays = {
        "S": _with_spectrum(seed, n, n, 1.0, 0.7),
        "P": _with_spectrum(seed + 1, m, n, 1.0, 0.5),
        "x": r.normal(size=n),
        "B": r.normal(size=(n, n)),
        "C": r.normal(size=(n, m)),
    }
    arrays = {k: v for k, v in arrays.items() if k in f.variables()}
    check_derivative(f, wrt, arrays, order, mode, r, sizes={"n": n, "m": m})
