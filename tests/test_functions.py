"""The function registries against SymPy: values and derivatives up to third order.

The oracle is ``sympy.diff`` of each entry's SymPy definition, evaluated numerically; the
entry's own derivative expressions are differentiated again by eincalc for higher
orders. Functions of several arguments are checked along every argument and for the
mixed second derivatives. Every entry is also printed (NumPy syntax, LaTeX) and parsed back.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy

import eincalc as ec
from eincalc import algebra
from eincalc.diff import derivative
from eincalc.functions import ELEMENTWISE
from eincalc.testing import sample_domain

PARAMS = {"pow": [3.0, -1.0, 0.5, 2.5]}

CASES = [(name, p) for name, fn in ELEMENTWISE.items() for p in (PARAMS.get(name, [None]))]
IDS = [f"{n}-{p}" for n, p in CASES]


def _lambdified(expr, symbols):
    # Away from the kinks (sampled points avoid them) the Dirac deltas of relu/abs/sign vanish.
    expr = expr.replace(sympy.DiracDelta, lambda *args: sympy.Integer(0))
    return sympy.lambdify(symbols, expr, "numpy")


@pytest.mark.parametrize("name,param", CASES, ids=IDS)
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_elementwise_against_sympy(name, param, order, rng):
    entry = ELEMENTWISE[name]
    symbols = [sympy.Symbol(f"t{k}", real=True) for k in range(entry.arity)]
    variables = [ec.scalar(f"x{k}") for k in range(entry.arity)]
    node = algebra.elementwise(name, variables, param)
    definition = entry.sympy(*symbols, param)
    # every sequence of arguments to differentiate along (all of them for order <= 2)
    sequences = list(itertools.product(range(entry.arity), repeat=order))
    if order == 3:
        sequences = [s for s in sequences if len(set(s)) == 1]
    for seq in sequences:
        exact = definition
        d = node
        for k in seq:
            if entry.domains()[k] == "condition":
                break  # the condition of where is not differentiated (0/1 values)
            exact = sympy.diff(exact, symbols[k])
            d = derivative(d, variables[k], mode="reverse")
        else:
            exact_fn = _lambdified(exact, symbols)
            for _ in range(4):
                point = [float(sample_domain(dom, rng, ())) for dom in entry.domains()]
                arrays = {f"x{k}": v for k, v in enumerate(point) if f"x{k}" in d.variables()}
                got = ec.evaluate(d, arrays)
                want = float(exact_fn(*point))
                assert np.isclose(got, want, rtol=1e-10, atol=1e-12), (name, param, seq, point, got, want)


@pytest.mark.parametrize("name,param", CASES, ids=IDS)
def test_elementwise_prints_back_and_has_latex(name, param):
    entry = ELEMENTWISE[name]
    args = [ec.matrix(f"X{k}", "m n") for k in range(entry.arity)]
    node = algebra.elementwise(name, args, param)
    declarations = {f"X{k}": "m n" for k in range(entry.arity)}
    assert ec.parse(str(node), **declarations) is node
    # nested in an arithmetic context, so precedence is exercised too
    outer = 2.0 * node + ec.sum(node) - node * args[0]
    assert ec.parse(str(outer), **declarations) is outer
    tex = ec.latex(node)
    assert "X_{0}" in tex or "X0" in tex.replace("_{", "").replace("}", "")


def test_every_elementwise_function_is_reachable_from_text():
    from eincalc.language import FUNCTIONS

    assert set(ELEMENTWISE) - {"pow"} <= set(FUNCTIONS)


def test_non_differentiable_points_follow_the_conventions():
    """relu'(0) = 0, abs'(0) = 0, maximum splits a tie ½/½ (JAX), nothing raises."""
    x, y = ec.scalar("x"), ec.scalar("y")
    assert ec.evaluate(ec.grad(ec.relu(x), x), x=0.0) == 0.0
    assert ec.evaluate(ec.grad(ec.abs(x), x), x=0.0) == 0.0
    m = ec.maximum(x, y)
    assert ec.evaluate(ec.grad(m, x), x=1.5, y=1.5) == 0.5
    assert ec.evaluate(ec.grad(m, y), x=1.5, y=1.5) == 0.5
    assert ec.evaluate(ec.grad(ec.minimum(x, y), x), x=1.5, y=1.5) == 0.5
    c = ec.clip(x, -1.0, 1.0)
    assert [float(ec.evaluate(ec.grad(c, x), x=v)) for v in (-2.0, -1.0, 0.0, 1.0, 2.0)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    with np.errstate(all="raise"):  # IEEE values, not exceptions, at the edges of a domain
        assert np.isinf(ec.evaluate(ec.grad(ec.sqrt(x), x), x=0.0))
        assert np.isinf(ec.evaluate(ec.grad(ec.log(x), x), x=0.0))
