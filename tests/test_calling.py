"""The calling convention (eincalc/calling.py) and the derivative APIs built on it.

Every derivative is checked against central differences of the function itself
(``eincalc.testing.numeric_jacobian``), never against another eincalc derivative.
"""

from __future__ import annotations

import numpy as np
import pytest

import eincalc as ec
from eincalc.testing import numeric_jacobian

MF_TEXT = "sum((T - U @ V.T) ** 2)"


@pytest.fixture
def mf():
    # dims of their own: nodes are shared process-wide, and other test modules build
    # δ(m) ⊗ 2VᵀV by hand, which would otherwise be the same node as this Hessian
    return ec.parse(MF_TEXT, T="p q", U="p r", V="q r")


def mf_value(T, U, V):
    return float(np.sum((T - U @ V.T) ** 2))


# --------------------------------------------------------------------------------------
# signatures: declaration order, remembered by derivatives
# --------------------------------------------------------------------------------------
def test_function_gradient_and_hessian_take_the_declaration_order(mf) -> None:
    assert ec.signature(mf).names == ("T", "U", "V")
    for expr in [mf, ec.grad(mf, "U"), ec.grad(mf, "V"), ec.hessian(mf, "U"), ec.simplify(mf)]:
        assert ec.compile(expr).arg_names == ("T", "U", "V")
    assert ec.compile([ec.grad(mf, "V"), mf]).arg_names == ("T", "U", "V")


def test_positional_calls_with_square_data_are_right(mf, rng) -> None:
    # square data: a wrong order would run and return a wrong number
    T, U, V = (rng.normal(size=(3, 3)) for _ in range(3))
    value = ec.compile(mf)(T, U, V)
    assert value == pytest.approx(mf_value(T, U, V))
    gU = ec.compile(ec.grad(mf, "U"))(T, U, V)
    np.testing.assert_allclose(gU, numeric_jacobian(lambda u: mf_value(T, u, V), U), rtol=1e-6, atol=1e-7)
    both = ec.compile([mf, ec.grad(mf, "U"), ec.grad(mf, "V")])
    v, gU2, gV = both(T, U, V)
    assert v == pytest.approx(value)
    np.testing.assert_allclose(gU2, gU)
    np.testing.assert_allclose(gV, numeric_jacobian(lambda w: mf_value(T, U, w), V), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ec.evaluate(ec.grad(mf, "V"), T, U, V), gV)


def test_operator_built_expressions_take_creation_order(rng) -> None:
    Z = ec.matrix("Z_calling", "m n")
    a = ec.vector("a_calling", "n")
    b = ec.vector("b_calling", "m")
    f = ec.sum(b * (Z @ a))
    g = ec.grad(f, a)
    assert ec.compile(f).arg_names == ec.compile(g).arg_names == ("Z_calling", "a_calling", "b_calling")
    Zv, av, bv = rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(ec.compile(g)(Zv, av, bv), numeric_jacobian(lambda x: bv @ Zv @ x, av), rtol=1e-6)


def test_a_derivative_takes_its_functions_arrays_or_only_those_it_reads(rng) -> None:
    f = ec.parse("x_h @ A_h @ x_h", x_h="n", A_h="n n")  # names of its own: other tests parse x @ A @ x
    x, A = rng.normal(size=4), rng.normal(size=(4, 4))
    H = ec.hessian(f, "x_h")
    expected = numeric_jacobian(lambda z: numeric_jacobian(lambda y: y @ A @ y, z, 1e-4), x, 1e-4)
    for call in (
        lambda fn: fn(x_h=x, A_h=A),
        lambda fn: fn(x, A),
        lambda fn: fn(A_h=A),
        lambda fn: fn(x, A_h=A),
    ):
        np.testing.assert_allclose(np.asarray(call(ec.compile(H))), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ec.evaluate(H, x_h=x, A_h=A), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ec.evaluate(H, x, A), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ec.evaluate(H, A_h=A), expected, rtol=1e-5, atol=1e-6)


def test_dims_only_dropped_variables_carried_come_from_their_arrays(mf, rng) -> None:
    T, U, V = rng.normal(size=(5, 4)), rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    H = ec.compile(ec.hessian(mf, "U"))
    dense = np.asarray(H(T, U, V))  # m comes from U (or T): neither is read
    assert dense.shape == (5, 2, 5, 2)
    expected = numeric_jacobian(lambda u: numeric_jacobian(lambda z: mf_value(T, z, V), u, 1e-4), U, 1e-4)
    np.testing.assert_allclose(dense, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(H(V=V, p=5)), dense)  # only what it reads, and the size
    np.testing.assert_allclose(np.asarray(H(U=U, V=V)), dense)
    np.testing.assert_allclose(np.asarray(ec.evaluate(ec.hessian(mf, "U"), T, U, V)), dense)
    with pytest.raises(ec.SizeError, match=r"no size for dim\(s\) p: pass the array of T or U or p=<size>"):
        H(V=V)


def test_generated_code_takes_the_functions_arrays_too(mf, rng) -> None:
    # the source alone (a saved module, the CLI's output) keeps the calling convention
    T, U, V = rng.normal(size=(5, 4)), rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    fn = ec.compile(ec.hessian(mf, "U"))
    assert "def f(T, U, V):" in fn.source and "T, U only give sizes" in fn.source
    namespace: dict = {}
    exec(fn.source, namespace)  # generated code only
    H = namespace["f"](T, U, V)
    assert type(H).__name__ == "StructuredTensor" and not isinstance(H, ec.StructuredTensor)
    expected = numeric_jacobian(lambda u: numeric_jacobian(lambda z: mf_value(T, z, V), u, 1e-4), U, 1e-4)
    np.testing.assert_allclose(H.dense(), expected, rtol=1e-5, atol=1e-5)
    g = rng.normal(size=10)
    np.testing.assert_allclose(H @ g, expected.reshape(10, 10) @ g, rtol=1e-5, atol=1e-5)


def test_typos_are_rejected_with_a_suggestion(mf, rng) -> None:
    T, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    fn = ec.compile(ec.grad(mf, "U"))
    with pytest.raises(ec.ArgumentError, match=r"f\(\) has no argument 'VV'; did you mean 'V'\?"):
        fn(T=T, U=U, VV=V)
    with pytest.raises(ec.ArgumentError, match="did you mean 'U'"):
        ec.evaluate(mf, T=T, u=U, V=V)
    with pytest.raises(ec.UnknownNameError, match="did you mean 'V'"):
        ec.grad(mf, "VV")
    with pytest.raises(TypeError):  # ArgumentError is a TypeError, as Python's own call errors
        fn(T, U, V, V)


def test_a_size_keyword_must_be_an_int(mf, rng) -> None:
    H = ec.compile(ec.hessian(mf, "U"))
    with pytest.raises(ec.ArgumentError, match="p is a dim of f"):
        H(V=rng.normal(size=(4, 2)), p=rng.normal(size=3))


def test_same_function_parsed_in_two_orders_refuses_positional_calls(rng) -> None:
    text = "sum(p_sig * q_sig) + sum(p_sig ** 3)"
    f1 = ec.parse(text, p_sig="n", q_sig="n")
    f2 = ec.parse(text, q_sig="n", p_sig="n")
    assert f1 is f2  # one object: it cannot have two argument orders
    p, q = rng.normal(size=3), rng.normal(size=3)
    fn = ec.compile(f1)
    assert fn(p_sig=p, q_sig=q) == pytest.approx(p @ q + np.sum(p**3))
    with pytest.raises(ec.ArgumentError, match="order their arguments differently"):
        fn(p, q)


def test_a_shared_zero_takes_the_latest_functions_arrays() -> None:
    # both derivatives are the scalar zero, one interned node (shared by every function
    # with a zero derivative); x_zero has dims (n) in one function and () in the other
    first = ec.derivative(ec.parse("step(s_zero) + sum(x_zero)", x_zero="n", s_zero=""), "s_zero")
    assert ec.evaluate(first, np.ones(3), 2.0) == 0.0
    second = ec.derivative(ec.parse("step(x_zero)", x_zero=""), "x_zero")
    assert second is first and ec.signature(second).names == ("x_zero",)
    assert ec.evaluate(second, 2.0) == ec.evaluate(second, x_zero=2.0) == ec.compile(second)(2.0) == 0.0


def test_a_node_with_variables_reached_from_two_orders_takes_keywords_only(rng) -> None:
    g1 = ec.grad(ec.parse("sum(a_two * b_two * c_two)", a_two="n", b_two="n", c_two="n"), "c_two")
    g2 = ec.grad(ec.parse("sum(b_two * a_two * c_two) + c_two @ c_two", b_two="n", a_two="n", c_two="n"), "a_two")
    a, b, c = rng.normal(size=(3, 4))
    assert ec.evaluate(g1, a, b, c) == pytest.approx(a * b)  # its own order
    assert g1 is ec.grad(ec.parse("sum(b_two * c_two * a_two)", b_two="n", c_two="n", a_two="n"), "c_two")
    np.testing.assert_allclose(ec.evaluate(g1, a_two=a, b_two=b, c_two=c), a * b)
    with pytest.raises(ec.ArgumentError, match="order their arguments differently"):
        ec.compile(g1)(a, b, c)
    np.testing.assert_allclose(ec.evaluate(g2, b, a, c), b * c)  # a different node: unaffected


def test_same_name_with_two_dims_is_rejected_at_compile_time() -> None:
    f = ec.parse("sum(x_dims)", x_dims="n")
    g = ec.parse("sum(x_dims)", x_dims="m")
    with pytest.raises(ec.ShapeError, match=r"'x_dims' is a variable with dims \(n\) and one with dims \(m\)"):
        ec.compile([f, g])


# --------------------------------------------------------------------------------------
# zero derivatives for variables simplification dropped
# --------------------------------------------------------------------------------------
ZERO_CASES = [
    ("X**0", dict(X="q k"), "numpy", "X", (3, 2)),
    ("sum(x*y) - sum(y*x) + sum(y**2)", dict(x="n", y="n"), "numpy", "x", (4,)),
    ("x'*A*x - x'*A'*x", {}, "matrixcalculus", "A", (4, 4)),
]


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse", "cross_country"])
@pytest.mark.parametrize("text,decl,dialect,wrt,shape", ZERO_CASES, ids=[c[0] for c in ZERO_CASES])
def test_dropped_variable_has_a_zero_derivative(text, decl, dialect, wrt, shape, mode, rng) -> None:
    f = ec.parse(text, dialect=dialect, **decl)
    d = ec.derivative(f, wrt, mode=mode)
    sig = ec.signature(f)
    assert d.dims == f.dims + sig.get(wrt).dims
    arrays = {}
    sizes = {}
    for v in sig.variables:
        for dim, s in zip(v.dims, shape if v.name == wrt else shape[: v.ndim]):
            sizes.setdefault(dim, s)
        arrays[v.name] = rng.normal(size=tuple(sizes[dim] for dim in v.dims))

    def value(x):
        return ec.evaluate(f, **{**arrays, wrt: x})

    expected = numeric_jacobian(value, arrays[wrt])
    np.testing.assert_allclose(expected, 0.0, atol=1e-6)  # the oracle agrees that it is zero
    got = ec.evaluate(d, **arrays)
    assert np.shape(got) == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ec.compile(d)(*arrays.values())), expected, atol=1e-6)


def test_dropped_variable_in_sequences_and_directional_derivatives(rng) -> None:
    f = ec.parse("sum(x*y) - sum(y*x) + sum(y**2)", x="n", y="n")
    x, y, v = rng.normal(size=(3, 4))
    gx, gy = ec.grad(f, ["x", "y"])
    np.testing.assert_allclose(ec.evaluate(gx, x, y), np.zeros(4))
    np.testing.assert_allclose(ec.evaluate(gy, x, y), numeric_jacobian(lambda z: np.sum(z**2), y), rtol=1e-6)
    blocks = ec.hessian(f, ["x", "y"])
    np.testing.assert_allclose(ec.evaluate(blocks[0][1], x, y), np.zeros((4, 4)))
    np.testing.assert_allclose(np.asarray(ec.evaluate(blocks[1][1], x, y)), 2 * np.eye(4))
    for e in (ec.jvp(f, "x", "v"), ec.hvp(f, "x", "v")):
        np.testing.assert_allclose(ec.compile(e)(x, y, v), np.zeros([4] * e.ndim))
    np.testing.assert_allclose(ec.compile(ec.vjp(ec.parse("x ** 0 * y", x="n", y="n"), "x", "u"))(x, y, v), 0.0)


# --------------------------------------------------------------------------------------
# sequences of variables: mixed partials, several gradients, blocks
# --------------------------------------------------------------------------------------
def test_grad_of_several_variables_in_order(mf, rng) -> None:
    T, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    gU, gV = ec.grad(mf, ["U", "V"])
    np.testing.assert_allclose(ec.evaluate(gU, T, U, V), numeric_jacobian(lambda u: mf_value(T, u, V), U), rtol=1e-6)
    np.testing.assert_allclose(ec.evaluate(gV, T, U, V), numeric_jacobian(lambda v: mf_value(T, U, v), V), rtol=1e-6)
    value, gU2, gV2 = ec.compile(ec.value_and_grad(mf, ["U", "V"]))(T, U, V)
    assert value == pytest.approx(mf_value(T, U, V))
    np.testing.assert_allclose(gU2, ec.evaluate(gU, T, U, V))
    np.testing.assert_allclose(gV2, ec.evaluate(gV, T, U, V))
    v1, g1 = ec.value_and_grad(mf, "U")
    assert g1 is gU and ec.signature(v1).names == ("T", "U", "V")


def test_mixed_partial_against_central_differences(mf, rng) -> None:
    T, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    d = ec.derivative(mf, ["U", "V"])
    assert d.dims == ("p", "r", "q", "r")
    expected = numeric_jacobian(lambda v: numeric_jacobian(lambda u: mf_value(T, u, v), U, 1e-4), V, 1e-4)
    np.testing.assert_allclose(ec.evaluate(d, T, U, V), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ec.compile(d)(T, U, V)), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        ec.derivative(mf, ["U", "V"], order=2)


def test_block_hessian_against_central_differences(mf, rng) -> None:
    T, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    blocks = ec.hessian(mf, ["U", "V"])
    arrays = {"U": U, "V": V}
    fn = ec.compile([b for row in blocks for b in row], dense=True)
    values = fn(T, U, V)

    def value(**changed):
        return mf_value(T, **{**arrays, **changed})

    for i, a in enumerate("UV"):
        for j, b in enumerate("UV"):

            def grad_a(xb, a=a, b=b):
                return numeric_jacobian(lambda xa: value(**{b: xb, a: xa}), {**arrays, b: xb}[a], 1e-4)

            expected = numeric_jacobian(grad_a, arrays[b], 1e-4)
            np.testing.assert_allclose(values[2 * i + j], expected, rtol=1e-5, atol=1e-5, err_msg=f"block {a}{b}")


# --------------------------------------------------------------------------------------
# jvp, vjp, hvp: right values, and no Jacobian-sized temporary
# --------------------------------------------------------------------------------------
@pytest.fixture
def layer():
    return ec.parse("tanh(X @ W)", X="m n", W="n k")


def test_jacobians_of_several_variables(layer, rng) -> None:
    X, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    JX, JW = ec.jacobian(layer, ["X", "W"])
    assert JX.dims == ("m", "k", "m", "n") and JW.dims == ("m", "k", "n", "k")
    np.testing.assert_allclose(ec.evaluate(JX, X, W), numeric_jacobian(lambda x: np.tanh(x @ W), X), rtol=1e-6)
    np.testing.assert_allclose(ec.evaluate(JW, X, W), numeric_jacobian(lambda w: np.tanh(X @ w), W), rtol=1e-6)
    with pytest.raises(ec.NotDifferentiableError, match="use jacobian"):
        ec.grad(layer, ["X", "W"])


def test_jvp_is_j_times_v(layer, rng) -> None:
    X, W, P = rng.normal(size=(5, 3)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    e = ec.jvp(layer, "W", "P")
    assert e.dims == ("m", "k") and ec.signature(e).names == ("X", "W", "P")
    J = numeric_jacobian(lambda w: np.tanh(X @ w), W)
    np.testing.assert_allclose(ec.compile(e)(X, W, P), np.tensordot(J, P, 2), rtol=1e-6, atol=1e-8)


def test_vjp_is_u_times_j(layer, rng) -> None:
    X, W, G = rng.normal(size=(5, 3)), rng.normal(size=(3, 2)), rng.normal(size=(5, 2))
    e = ec.vjp(layer, "W", "G")
    assert e.dims == ("n", "k")
    J = numeric_jacobian(lambda w: np.tanh(X @ w), W)
    np.testing.assert_allclose(ec.compile(e)(X, W, G), np.tensordot(G, J, 2), rtol=1e-6, atol=1e-8)


def test_hvp_is_h_times_v(mf, rng) -> None:
    T, U, V, P = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    e = ec.hvp(mf, "V", "P")
    H = numeric_jacobian(lambda v: numeric_jacobian(lambda z: mf_value(T, U, z), v, 1e-4), V, 1e-4)
    np.testing.assert_allclose(ec.compile(e)(T, U, V, P), np.tensordot(H, P, 2), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ec.evaluate(e, T=T, U=U, V=V, P=P), np.tensordot(H, P, 2), rtol=1e-5, atol=1e-5)


def test_directional_products_form_no_jacobian_sized_temporary(layer, mf) -> None:
    sizes = dict(m=1000, n=300, k=20, p=1000, q=300, r=20)
    jac_entries = sizes["m"] * sizes["k"] * sizes["n"] * sizes["k"]
    for e in (ec.jvp(layer, "W", "P"), ec.vjp(layer, "W", "G")):
        report = ec.cost(e, **sizes)
        assert report.largest_intermediate <= sizes["m"] * sizes["n"]
        assert report.largest_intermediate * 100 < jac_entries
    hessian_entries = (sizes["q"] * sizes["r"]) ** 2
    report = ec.cost(ec.hvp(mf, "V", "P"), **sizes)
    assert report.largest_intermediate <= sizes["p"] * sizes["q"] < hessian_entries
    assert ec.cost(ec.jacobian(layer, "W"), **sizes).largest_intermediate >= jac_entries // sizes["k"]


def test_directions_are_checked(layer) -> None:
    with pytest.raises(ec.ShapeError, match=r"tangent has dims \(m, k\) but needs \(n, k\)"):
        ec.jvp(layer, "W", ec.matrix("P", "m k"))
    with pytest.raises(ec.ArgumentError, match="name of an argument"):
        ec.jvp(layer, "W", "X")


# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------
def test_float32_in_gives_float32_out(mf, rng) -> None:
    T, U, V = (rng.normal(size=s).astype(np.float32) for s in [(3, 4), (3, 2), (4, 2)])
    fn = ec.compile([mf, ec.grad(mf, "U"), ec.hessian(mf, "U")])
    value, g, H = fn(T, U, V)
    assert value.dtype == g.dtype == H.core.dtype == np.float32
    assert np.asarray(H).dtype == np.float32
    assert ec.evaluate(ec.grad(mf, "U"), T, U, V).dtype == np.float32
    expected = numeric_jacobian(lambda u: mf_value(T.astype(float), u, V.astype(float)), U.astype(float))
    np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-4)
    # one float64 array (or an integer one) makes the computation float64, as in NumPy
    assert fn(T.astype(float), U, V)[1].dtype == np.float64
    assert ec.evaluate(mf, T, U, V.astype(np.int64)).dtype == np.float64


def test_complex_arrays_are_refused(mf, rng) -> None:
    T, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    with pytest.raises(ec.ArgumentError, match="the array for U is complex"):
        ec.compile(mf)(T, U + 1j, V)
    with pytest.raises(ec.ArgumentError, match="the array for U is complex"):
        ec.evaluate(mf, T, U + 1j, V)
    with pytest.raises(ec.ArgumentError, match="not numbers"):
        ec.evaluate(mf, T, np.array([["a"]]), V)
