"""Property test: random expressions, gradients/Jacobians and Hessians in all three modes.

Expressions come from :func:`eincalc.testing.random_case` (depth 4, mixed element-wise,
einsum and general functions, smooth only). The oracle is a mixed central difference of
the case's *independent NumPy reference* — eincalc's interpreter evaluates only the
derivative itself.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eincalc as ec
from eincalc.testing import random_arrays, random_case, random_sizes

MODES = ("reverse", "forward", "cross_country")


def mixed_difference(f, x0, directions, h):
    total = 0.0
    for signs in itertools.product((1.0, -1.0), repeat=len(directions)):
        point = x0 + h * sum(s * d for s, d in zip(signs, directions))
        total = total + np.prod(signs) * np.asarray(f(point), dtype=float)
    return total / (2 * h) ** len(directions)


def contract(value, directions):
    for d in reversed(directions):
        value = np.tensordot(value, d, axes=d.ndim)
    return value


def evaluate_used(expr, values, sizes):
    used = expr.variables()
    dims = {d for n in ec.topo_order(expr) for d in n.dims}
    return ec.evaluate(
        expr, {k: v for k, v in values.items() if k in used}, {d: s for d, s in sizes.items() if d in dims}
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), order=st.sampled_from([1, 2]))
def test_random_expression_derivatives_match_finite_differences(seed, order):
    case = random_case(seed, depth=4, nonsmooth=False)
    if not case.variables:
        return  # everything folded away: nothing to differentiate
    rng = np.random.default_rng(seed)
    sizes = random_sizes(rng, case.dims, low=2, high=4)
    values = random_arrays(rng, case.inputs, sizes, scale=0.5)
    wrt = sorted(case.variables)[seed % len(case.variables)]
    directions = [rng.standard_normal(values[wrt].shape) for _ in range(order)]

    def f(x):
        return case.reference({**values, wrt: x})

    base = np.asarray(f(values[wrt]), dtype=float)
    if not np.all(np.isfinite(base)) or np.max(np.abs(base), initial=0.0) > 1e6:
        return  # an ill-conditioned draw (e.g. near-singular): finite differences say nothing
    # Richardson extrapolation of the central difference: error O(h⁴), not O(h²), which
    # matters for high-degree polynomials such as det(sin(v⊗v⊗v ⊙ v) …)
    h = 1e-4 if order == 1 else 2e-3
    coarse = mixed_difference(f, values[wrt], directions, h)
    fine = mixed_difference(f, values[wrt], directions, h / 2)
    expected = (4 * fine - coarse) / 3
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    for mode in MODES:
        d = ec.derivative(case.expr, wrt, order=order, mode=mode)
        got = contract(np.asarray(evaluate_used(d, values, sizes), dtype=float), directions)
        np.testing.assert_allclose(
            got,
            expected,
            rtol=1e-4 * order,
            atol=1e-5 * scale * order**2,
            err_msg=f"seed={seed} mode={mode} expr={case.expr}",
        )
