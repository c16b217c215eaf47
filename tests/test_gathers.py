"""Integer gathers and their reverse rules in generated code: indexing and scatters, no one-hot matrices."""

from __future__ import annotations

import numpy as np
import pytest

import eincalc as ec

LABELS = np.array([2, 0, 1, 2, 1])


def test_cross_entropy_gradient_subtracts_one_at_the_labels(rng):
    logp = ec.matrix("logp", "5 k")
    loss = -ec.sum(ec.log_softmax(logp, axis=1)[np.arange(5), LABELS])
    grad = ec.grad(loss, "logp")
    code = ec.compile(grad)
    assert "eye(" not in code.source
    assert "[numpy.arange(5), [2, 0, 1, 2, 1]] -= 1.0" in code.source
    x = rng.normal(size=(5, 7))
    expected = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    expected[np.arange(5), LABELS] -= 1.0
    np.testing.assert_allclose(code(x), expected, atol=1e-14)
    # the cost counts one number per label, not a 5 × k one-hot matrix
    assert ec.cost(grad, k=100_000).flops < 10 * 5 * 100_000


@pytest.mark.parametrize(
    ("rows", "form"),
    [([3, 0, 1, 2, 4], "[[3, 0, 1, 2, 4]] = "), ([2, 0, 1, 2, 1], "numpy.add.at(")],
    ids=["distinct rows", "repeated rows"],
)
def test_gather_cotangent_is_a_scatter(rows, form, rng):
    x, y, w = ec.matrix("X", "n k"), ec.vector("y", "5"), ec.vector("w", "k")
    loss = y @ ec.tanh(x[np.array(rows)] @ w)
    grad = ec.grad(loss, "X")
    code = ec.compile(grad)
    assert "eye(" not in code.source and form in code.source
    values = dict(X=rng.normal(size=(6, 3)), y=rng.normal(size=5), w=rng.normal(size=3))
    expected = np.zeros((6, 3))
    np.add.at(expected, rows, np.outer(values["y"] * (1 - np.tanh(values["X"][rows] @ values["w"]) ** 2), values["w"]))
    np.testing.assert_allclose(code(**values), expected, rtol=1e-12)
    np.testing.assert_allclose(ec.evaluate(grad, values), expected, rtol=1e-12)
    assert ec.cost(grad, n=100_000, k=3).flops < 1_000


def test_scatter_along_a_later_axis(rng):
    x = ec.matrix("X", "k n")
    loss = ec.sum(ec.sin(x[:, np.array([1, 1, 0])]))
    code = ec.compile(ec.grad(loss, "X"))
    assert "eye(" not in code.source and "numpy.add.at(" in code.source and "(slice(None), [1, 1, 0])" in code.source
    value = rng.normal(size=(2, 4))
    expected = np.zeros((2, 4))
    np.add.at(expected, (slice(None), [1, 1, 0]), np.cos(value[:, [1, 1, 0]]))
    np.testing.assert_allclose(code(value), expected, rtol=1e-12)


def test_row_sums_of_a_window_are_ones():
    """Σᵢ W[o, i] = 1 for a gather or a slice: the product keeps no one-hot factor."""
    s = ec.matrix("S", "5 k")
    w = ec.algebra.window("5", "k", rows=tuple(LABELS))
    assert ec.einsum("ac,ab->ab", w, s) is s
