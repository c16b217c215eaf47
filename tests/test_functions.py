"""The function registries against SymPy: values and first to third derivatives.

The oracle is ``sympy.diff`` of each entry's SymPy definition, evaluated numerically; the
entry's own derivative expression is differentiated again by eincalc for orders 2 and 3.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import eincalc as ec
from eincalc.diff import derivative
from eincalc.functions import ELEMENTWISE

PARAMS = {"pow": [3.0, -1.0, 0.5, 2.5]}


def sample_points(domain: str, rng) -> np.ndarray:
    pts = rng.uniform(0.3, 2.0, size=5)
    if domain == "real":
        pts = pts * rng.choice([-1.0, 1.0], size=5)
    elif domain == "nonzero":
        pts = pts * np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    return pts


CASES = [(name, p) for name, fn in ELEMENTWISE.items() for p in (PARAMS.get(name, [None]))]


@pytest.mark.parametrize("name,param", CASES, ids=[f"{n}-{p}" for n, p in CASES])
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_elementwise_against_sympy(name, param, order, rng):
    entry = ELEMENTWISE[name]
    t = sympy.Symbol("t", real=True)
    exact = sympy.diff(entry.sympy(t, param), t, order) if order else entry.sympy(t, param)
    # Away from the kinks (sampled points avoid 0) the Dirac deltas of relu/abs/sign vanish.
    exact = exact.replace(sympy.DiracDelta, lambda *args: sympy.Integer(0))
    exact_fn = sympy.lambdify(t, exact, "numpy")
    x = ec.scalar("x")
    node = ec.algebra.elementwise(name, x, param)
    d = derivative(node, x, order=order, mode="reverse") if order else node
    for point in sample_points(entry.domain, rng):
        got = ec.evaluate(d, {"x": point} if d.variables() else {})
        want = float(exact_fn(point))
        assert np.isclose(got, want, rtol=1e-10, atol=1e-12), (name, param, order, point, got, want)


def test_every_elementwise_function_is_reachable_from_text():
    from eincalc.ops import FUNCTIONS

    assert set(ELEMENTWISE) - {"pow"} <= set(FUNCTIONS)
