"""Reshapes that merge or split named dims, and slices of symbolic length (derived dims m*n, n-1)."""

from __future__ import annotations

import numpy as np
import pytest

import eincalc as ec
from eincalc import dims as dimsmod

SIZES = {"m": 3, "n": 4}

# (text, declarations, wrt, NumPy reference); their derivatives are checked in test_linalg.py
CASES = [
    ("X.reshape(-1)", dict(X="m n"), "X", lambda d: d["X"].reshape(-1)),
    ("np.reshape(X, -1) @ np.reshape(X.T, -1)", dict(X="m n"), "X", lambda d: d["X"].ravel() @ d["X"].T.ravel()),
    ("tanh(T.reshape(-1, 6)) @ w", dict(T="m 2 3", w="6"), "T", lambda d: np.tanh(d["T"].reshape(-1, 6)) @ d["w"]),
    (
        "sum(sin(reshape(v, 'm n')) * X)",
        dict(v="m*n", X="m n"),
        "v",
        lambda d: np.sum(np.sin(d["v"].reshape(3, 4)) * d["X"]),
    ),
    ("x[1:] - x[:-1]", dict(x="n"), "x", lambda d: d["x"][1:] - d["x"][:-1]),
    ("sum((X[:, 1:] - X[:, :-1]) ** 2)", dict(X="m n"), "X", lambda d: np.sum(np.diff(d["X"], axis=1) ** 2)),
    ("X[1:-1, 0] @ X[1:-1, 1]", dict(X="n m"), "X", lambda d: d["X"][1:-1, 0] @ d["X"][1:-1, 1]),
    ("sum(exp(x[2:]) * x[:-2])", dict(x="n"), "x", lambda d: np.sum(np.exp(d["x"][2:]) * d["x"][:-2])),
]


def _arrays(rng, decls):
    sizes = dimsmod.with_derived(SIZES, [d for spec in decls.values() for d in spec.split()])
    return {k: rng.normal(size=tuple(int(d) if d.isdigit() else sizes[d] for d in v.split())) for k, v in decls.items()}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_values_code_and_printed_syntax(case, rng):
    text, decls, _, reference = case
    f = ec.parse(text, **decls)
    arrays = _arrays(rng, decls)
    np.testing.assert_allclose(ec.evaluate(f, arrays), reference(arrays), rtol=1e-12)
    code = ec.compile(f)
    np.testing.assert_allclose(code(**arrays), reference(arrays), rtol=1e-12)
    assert "array(" not in code.source and "eye(" not in code.source  # views, no 0/1 matrices
    assert ec.parse(str(f), **decls) is f


def test_merged_dim_names_and_generated_code():
    x = ec.matrix("X", "m n")
    flat = x.reshape(-1)
    assert flat.dims == ("m*n",)
    assert ec.sum(flat * x.T.reshape(-1)).dims == ()  # m*n and n*m are one size
    code = ec.compile(ec.grad(ec.sum(ec.sin(flat)), "X")).source
    assert ".reshape(" in code and "array(" not in code
    assert ec.cost(flat, m=10, n=20).flops == 0  # a view
    assert ec.cost(ec.sin(flat), m=10, n=20).largest_intermediate == 200


def test_slice_code_is_a_view():
    x = ec.vector("x", "n")
    source = ec.compile(x[1:] - x[:-1]).source
    assert "x[1:]" in source and "x[:-1]" in source


def test_sizes_of_derived_dims_are_inferred_and_checked(rng):
    f = ec.parse("reshape(v, 'm n') @ w", v="m*n", w="n")
    np.testing.assert_allclose(ec.evaluate(f, v=np.arange(12.0), w=np.ones(4)), np.arange(12.0).reshape(3, 4).sum(1))
    with pytest.raises(ec.SizeError, match="negative size"):
        ec.evaluate(ec.vector("x", "n")[3:], x=np.ones(2))
    with pytest.raises(ec.ShapeError, match="do not hold equally many entries"):
        ec.parse("reshape(X, 'm m')", X="m n")
    with pytest.raises(ec.ShapeError, match="cannot reshape"):
        ec.parse("X.reshape(-1, 5)", X="m n")
