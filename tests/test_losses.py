"""Textbook losses written as people write them: stable and exact at |z| = 1000.

Each loss is parsed from the text a user would write (``log(1 - sigmoid(z))``, a
hand-written softmax, ``log(mean(exp(x)))``, …). Its compiled value and its gradient in
every mode must be finite, without a floating-point warning, and equal to a reference
written with SciPy's stable functions (``log_expit``, ``logsumexp``, ``softmax``); the
reference gradient is a central difference of that reference.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special

import eincalc as ec

Z = np.array([1000.0, -1000.0, 3.0, -2.0, 999.5])
Y = np.array([1.0, 0.0, 0.0, 1.0, 0.0])
X = np.array([[1000.0, -1000.0, 0.5], [2.0, 999.0, -3.0]])
W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])


def _bce(d):
    return -np.sum(d["y"] * special.log_expit(d["z"]) + (1 - d["y"]) * special.log_expit(-d["z"]))


def _focal(d):
    p, q = special.expit(d["z"]), special.expit(-d["z"])
    return -np.sum(d["y"] * q**2 * special.log_expit(d["z"]) + (1 - d["y"]) * p**2 * special.log_expit(-d["z"]))


def _huber(d, delta=1.0):
    r = np.abs(d["z"] - d["y"])
    return np.sum(np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)))


def _smooth_l1(d, beta=0.5):
    r = np.abs(d["z"] - d["y"])
    return np.sum(np.where(r < beta, 0.5 * r**2 / beta, r - 0.5 * beta))


# (name, text, declarations, variable, reference)
LOSSES = [
    ("binary cross-entropy", "-sum(y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z)))", "zy", "z", _bce),
    ("log(1 - sigmoid)", "sum(log(1 - sigmoid(z)))", "z", "z", lambda d: np.sum(special.log_expit(-d["z"]))),
    ("logistic by hand", "sum(y / (1 + exp(-z)))", "zy", "z", lambda d: d["y"] @ special.expit(d["z"])),
    ("softmax by hand", "sum(y * exp(z) / sum(exp(z)))", "zy", "z", lambda d: d["y"] @ special.softmax(d["z"])),
    (
        "row softmax by hand",
        "sum(W * (exp(X) / sum(exp(X), axis=1, keepdims=True)))",
        "XW",
        "X",
        lambda d: np.sum(d["W"] * special.softmax(d["X"], axis=1)),
    ),
    (
        "cross-entropy by hand",
        "-sum(W * log(exp(X) / sum(exp(X), axis=1, keepdims=True)))",
        "XW",
        "X",
        lambda d: -np.sum(d["W"] * special.log_softmax(d["X"], axis=1)),
    ),
    ("log mean exp", "log(mean(exp(z)))", "z", "z", lambda d: special.logsumexp(d["z"]) - np.log(d["z"].size)),
    ("logsumexp over all axes", "log(sum(exp(X)))", "X", "X", lambda d: special.logsumexp(d["X"])),
    (
        "logsumexp over several axes",
        "sum(log(sum(exp(X), axis=(0, 1))))",
        "X",
        "X",
        lambda d: special.logsumexp(d["X"], axis=(0, 1)),
    ),
    ("logsumexp function", "sum(logsumexp(X, axis=(0, 1)))", "X", "X", lambda d: special.logsumexp(d["X"])),
    (
        "clipped cross-entropy",
        "-sum(y * log(clip(sigmoid(z), 1e-7, 1 - 1e-7)))",
        "zy",
        "z",
        lambda d: -np.sum(d["y"] * np.log(np.clip(special.expit(d["z"]), 1e-7, 1 - 1e-7))),
    ),
    ("Huber", "sum(where(abs(z - y) <= 1.0, 0.5 * (z - y) ** 2, abs(z - y) - 0.5))", "zy", "z", _huber),
    ("smooth L1", "sum(where(abs(z - y) < 0.5, (z - y) ** 2, abs(z - y) - 0.25))", "zy", "z", _smooth_l1),
    ("hinge", "sum(maximum(0, 1 - y * z))", "zy", "z", lambda d: np.sum(np.maximum(0, 1 - d["y"] * d["z"]))),
    (
        "squared hinge",
        "mean(np.maximum(0.0, 1.0 - (2 * y - 1) * z) ** 2)",
        "zy",
        "z",
        lambda d: np.mean(np.maximum(0, 1 - (2 * d["y"] - 1) * d["z"]) ** 2),
    ),
    (
        "focal (gamma 2)",
        "-sum(y * (1 - sigmoid(z)) ** 2 * log(sigmoid(z)) + (1 - y) * sigmoid(z) ** 2 * log(1 - sigmoid(z)))",
        "zy",
        "z",
        _focal,
    ),
]

DECLS = {"z": "n", "y": "n", "X": "m k", "W": "m k"}
VALUES = {"z": Z, "y": Y, "X": X, "W": W}


def _numeric_gradient(f, values, wrt, h=1e-6):
    x0 = values[wrt]
    grad = np.zeros_like(x0)
    for i in np.ndindex(x0.shape):
        e = np.zeros_like(x0)
        e[i] = h
        grad[i] = (f({**values, wrt: x0 + e}) - f({**values, wrt: x0 - e})) / (2 * h)
    return grad


@pytest.mark.parametrize("name,text,names,wrt,reference", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_is_stable_and_exact_at_large_magnitude(name, text, names, wrt, reference):
    f = ec.parse(text, **{n: DECLS[n] for n in names})
    values = {n: VALUES[n] for n in names}
    expected = reference(values)
    expected_grad = _numeric_gradient(reference, values, wrt)
    atol = 1e-8 * max(1.0, abs(expected))  # the difference quotient's rounding error grows with |f|
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no invalid value, no division by zero
        for mode in ("reverse", "forward", "cross_country"):
            g = ec.derivative(f, wrt, mode=mode)
            value, grad = ec.compile([f, g])(**values)
            assert np.isfinite(value) and np.all(np.isfinite(grad)), (mode, value, grad)
            np.testing.assert_allclose(value, expected, rtol=1e-12, err_msg=name)
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=atol, err_msg=f"{name} {mode}")
            interpreted = ec.evaluate(g, {n: values[n] for n in g.variables()}, {"n": Z.size, "m": 2, "k": 3})
            np.testing.assert_allclose(interpreted, expected_grad, rtol=1e-6, atol=atol, err_msg=f"{name} {mode}")
