"""Compressed derivatives: δ ⊗ core structure, asserted structurally and numerically.

Oracles: closed forms from the literature (the Hessian of ‖T − UVᵀ‖² is 2 I ⊗ VᵀV, of
xᵀAx is A + Aᵀ, of logistic regression Xᵀ diag(σ(z)(1−σ(z))) X) and numpy.linalg.solve
on the dense matrix.
"""

from __future__ import annotations

import numpy as np
import pytest

import eincalc as ec
from eincalc.expr import Delta, Einsum


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def mf():
    return ec.parse("sum((T - U @ V.T) ** 2)", T="m n", U="m k", V="n k")


@pytest.mark.parametrize("mode", ["reverse", "forward", "cross_country", "auto"])
def test_matrix_factorisation_hessian_is_delta_times_kxk_core(mf, mode, rng):
    H = ec.hessian(mf, "U", mode=mode)
    assert H.dims == ("m", "k", "m", "k")
    c = ec.compress(H)
    assert c.is_compressed
    assert [d for lab, d in c.label_dims.items() if lab in c.core_labels] == ["k", "k"]
    assert sum(isinstance(op, Delta) for op in H.operands) == 1  # δ over the rows of U
    report = ec.cost(H, m=1000, n=1000, k=10)
    assert report.largest_intermediate <= 10 * 10  # no (mk)x(mk), no m x m
    V = rng.normal(size=(4, 3))
    closed = 2 * np.einsum("ij,ab->iajb", np.eye(5), V.T @ V)
    dense = ec.evaluate(H, V=V, m=5)
    np.testing.assert_allclose(dense, closed, rtol=1e-12)
    structured = c.evaluate(V=V, m=5)
    np.testing.assert_allclose(structured.dense(), closed, rtol=1e-12)
    assert structured.core.shape == (3, 3)


def test_structured_solve_matches_dense_solve(mf, rng):
    H = ec.hessian(mf, "U")
    V = rng.normal(size=(4, 3))
    s = ec.compress(H).evaluate(V=V, m=5)
    b = rng.normal(size=(5, 3))
    expected = np.linalg.solve(s.dense().reshape(15, 15), b.reshape(15)).reshape(5, 3)
    np.testing.assert_allclose(s.solve(b), expected, rtol=1e-10)
    np.testing.assert_allclose(s.matvec(expected), b, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(s), s.dense())


def test_structured_tensor_takes_flat_vectors_and_matmul(mf, rng):
    # an optimiser's step: g and the answer are flat vectors of length m·k
    s = ec.compress(ec.hessian(mf, "U")).evaluate(V=rng.normal(size=(4, 3)), m=5)
    dense = s.dense().reshape(15, 15)
    g = rng.normal(size=15)
    np.testing.assert_allclose(s @ g, dense @ g, rtol=1e-12)
    np.testing.assert_allclose(s.matvec(g), dense @ g, rtol=1e-12)
    np.testing.assert_allclose(s.solve(g), np.linalg.solve(dense, g), rtol=1e-10)
    np.testing.assert_allclose(s @ g.reshape(5, 3), (dense @ g).reshape(5, 3), rtol=1e-12)
    with pytest.raises(ec.ShapeError, match="does not fit"):
        s.solve(rng.normal(size=14))
    with pytest.raises(ec.ShapeError, match="does not fit"):
        s @ rng.normal(size=(3, 5))


def test_diagonal_hessian_of_elementwise_sum(rng):
    x = ec.vector("x", "n")
    H = ec.hessian(ec.sum(ec.exp(x) + ec.sin(x)), x)
    c = ec.compress(H)
    assert c.is_compressed and len(c.core_labels) == 1  # a diagonal: n numbers, not n²
    xv = rng.normal(size=6)
    s = c.evaluate(x=xv)
    np.testing.assert_allclose(s.dense(), np.diag(np.exp(xv) - np.sin(xv)), rtol=1e-12)
    b = rng.normal(size=6)
    np.testing.assert_allclose(s.solve(b), b / (np.exp(xv) - np.sin(xv)), rtol=1e-12)


def test_logistic_regression_hessian_is_one_contraction(rng):
    f = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
    H = ec.hessian(f, "w")
    assert isinstance(H, Einsum)
    assert sum(op.dims == ("m", "n") for op in H.operands) == 2  # X ... X
    assert not any(isinstance(op, Delta) for op in H.operands)  # no m x m diagonal
    assert ec.cost(H, m=5000, n=1000).largest_intermediate <= 5000 * 1000
    X, w, y = rng.normal(size=(7, 3)), rng.normal(size=3), np.sign(rng.normal(size=7))
    s = sigmoid(y * (X @ w))
    closed = X.T @ np.diag(s * (1 - s) * y * y) @ X
    np.testing.assert_allclose(ec.evaluate(H, X=X, w=w, y=y), closed, rtol=1e-10)


def test_quadratic_form_hessian_closed_form(rng):
    x, A = ec.vector("x", "n"), ec.matrix("A", "n n")
    H = ec.hessian(x @ A @ x, x)
    Av = rng.normal(size=(4, 4))
    np.testing.assert_allclose(ec.evaluate(H, A=Av), Av + Av.T)
    assert str(H) in ("A + A.T", "A.T + A")


def test_seed_slides_worked_example():
    """f(x, y) = xy + e^{xy} at (1, 2): ∂f/∂x = 2 + 2e², ∂f/∂y = 1 + e²."""
    f = ec.parse("x * y + exp(x * y)", x="", y="")
    for mode in ("reverse", "forward", "cross_country"):
        gx, gy = ec.derivative(f, "x", mode=mode), ec.derivative(f, "y", mode=mode)
        assert np.isclose(ec.evaluate(gx, x=1.0, y=2.0), 2 + 2 * np.e**2, rtol=1e-14)
        assert np.isclose(ec.evaluate(gy, x=1.0, y=2.0), 1 + np.e**2, rtol=1e-14)
        # the printed expression parses back and evaluates to the same numbers
        again = ec.parse(str(gx), x="", y="")
        assert np.isclose(ec.evaluate(again, x=1.0, y=2.0), 2 + 2 * np.e**2, rtol=1e-14)


@pytest.mark.parametrize(
    "text,decls",
    [
        ("softmax(x)", dict(x="n")),
        ("logsumexp(x)", dict(x="n")),
        ("log_softmax(x)", dict(x="n")),
        ("sum(log(1 + exp(x)))", dict(x="n")),
        ("log(sum(exp(x)))", dict(x="n")),
        ("log(softmax(x))", dict(x="n")),
        ("sum(log(sigmoid(x)))", dict(x="n")),
    ],
)
def test_stable_at_large_magnitude(text, decls):
    """Values, gradients/Jacobians and Hessians stay finite at |x| = 1000."""
    f = ec.parse(text, **decls)
    xv = np.array([1000.0, -1000.0, 2.0])
    for expr in (ec.simplify(f), ec.derivative(f, "x"), ec.derivative(f, "x", 2)):
        value = ec.evaluate(expr, x=xv) if expr.variables() else ec.evaluate(expr, n=3)
        assert np.all(np.isfinite(value)), (text, str(expr))


def test_variable_not_in_expression_gives_zero():
    x, z = ec.vector("x", "n"), ec.vector("z", "k")
    d = ec.derivative(ec.sum(ec.exp(x)), z, order=2)
    assert d.dims == ("k", "k") and isinstance(d, ec.Const) and d.value == 0.0


def test_higher_order_dims():
    A = ec.matrix("A", "n n")
    D3 = ec.derivative(ec.det(A), "A", order=3, mode="cross_country")
    assert D3.dims == ("n",) * 6


def test_generated_modules_carry_the_whole_runtime_class():
    import inspect

    from eincalc import runtime

    classes = (runtime.StructuredTensor, runtime.LowRank, runtime.Kronecker, runtime.StructuredSum)
    assert runtime.structured_source() == "\n\n\n".join(inspect.getsource(c).rstrip("\n") for c in classes)
    namespace: dict = {"numpy": np}
    exec(runtime.structured_source(), namespace)  # our own source: it needs only numpy
    t = namespace["StructuredTensor"](np.array([2.0, 3.0]), "a", "aa", (2, 2))
    np.testing.assert_allclose(t.dense(), np.diag([2.0, 3.0]))
    np.testing.assert_allclose(t.solve(np.array([2.0, 3.0])), [1.0, 1.0])


# --------------------------------------------------------------------------------------
# sums of δ ⊗ cores (issue 10, part 2)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["reverse", "forward", "cross_country", "auto"])
def test_ridge_term_keeps_the_factorisation_hessian_compressed(mode, rng):
    f = ec.parse("sum((T - U @ V.T) ** 2) + 0.1 * sum(U ** 2)", T="m n", U="m k", V="n k")
    H = ec.hessian(f, "U", mode=mode)
    c = ec.compress(H)
    assert c.is_compressed
    assert [c.label_dims[lab] for lab in c.core_labels] == ["k", "k"]
    assert ec.cost(c.core, m=1000, n=1000, k=10).largest_intermediate <= 100
    V = rng.normal(size=(4, 3))
    closed = np.einsum("ij,ab->iajb", np.eye(5), 2 * V.T @ V + 0.2 * np.eye(3))  # δ ⊗ (2VᵀV + 0.2 I)
    structured = c.evaluate(V=V, m=5)
    np.testing.assert_allclose(structured.dense(), closed, rtol=1e-12)
    np.testing.assert_allclose(ec.evaluate(H, V=V, m=5), closed, rtol=1e-12)
    b = rng.normal(size=(5, 3))
    np.testing.assert_allclose(structured.solve(b), np.linalg.solve(closed.reshape(15, 15), b.ravel()).reshape(5, 3))
    np.testing.assert_allclose(structured @ b, np.tensordot(closed, b, 2), rtol=1e-12)


def test_ridge_factorisation_newton_step_from_compiled_code(rng):
    f = ec.parse("sum((T - U @ V.T) ** 2) + 0.1 * sum(U ** 2)", T="m n", U="m k", V="n k")
    step = ec.compile([ec.grad(f, "U"), ec.hessian(f, "U")])
    T, U, V = rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), rng.normal(size=(4, 2))
    g, H = step(T=T, U=U, V=V)
    assert H.core.shape == (2, 2)
    new_U = U - H.solve(g)
    # the ridge least-squares solution in closed form: U = T V (VᵀV + 0.1 I)⁻¹
    np.testing.assert_allclose(new_U, T @ V @ np.linalg.inv(V.T @ V + 0.1 * np.eye(2)), rtol=1e-10)


def test_sum_with_a_more_diagonal_term_keeps_only_the_shared_pattern(rng):
    # δ_ij δ_ab (full identity) + δ_ij C_ab (block) + a dense term: nothing is shared
    x = ec.vector("x", "n")
    A = ec.matrix("A", "n n")
    f = ec.sum(x * x) + x @ A @ x
    c = ec.compress(ec.hessian(f, "x"))
    assert not c.is_compressed
    a = rng.normal(size=(3, 3))
    np.testing.assert_allclose(np.asarray(c.evaluate(A=a)), 2 * np.eye(3) + a + a.T, rtol=1e-12)


# --------------------------------------------------------------------------------------
# δ ⊗ core plus low-rank Gram terms (issue 10, part 3): softmax regression
# --------------------------------------------------------------------------------------
SOFTMAX_REGRESSION = "-sum(Y * log_softmax(X @ W, axis=1)) + 0.05 * sum(W ** 2)"


def _softmax_case(rng, n, d, c):
    X, W = rng.normal(size=(n, d)), rng.normal(size=(d, c))
    Y = np.eye(c)[rng.integers(0, c, n)]
    return X, W, Y


def _softmax_hessian_closed_form(X, W, Y):
    """Σ_s (x_s x_sᵀ) ⊗ (diag(p_s) − p_s p_sᵀ) + 0.1 I, laid out (d, c, d, c)."""
    z = X @ W
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d, c = W.shape
    H = np.einsum("sa,sc,sb,bd->abcd", X, X, p, np.eye(c)) - np.einsum("sa,sc,sb,sd->abcd", X, X, p, p)
    return H + 0.1 * np.einsum("ac,bd->abcd", np.eye(d), np.eye(c))


@pytest.mark.parametrize("mode", ["reverse", "forward", "cross_country"])
def test_softmax_regression_hessian_is_block_diagonal_plus_low_rank(mode, rng):
    f = ec.parse(SOFTMAX_REGRESSION, Y="n c", X="n d", W="d c")
    H = ec.hessian(f, "W", mode=mode)
    c = ec.compress(H)
    assert c.is_compressed and isinstance(c, ec.CompressedSum)
    block, low = c.parts
    assert [block.label_dims[lab] for lab in block.core_labels] == ["d", "c", "d"]  # one d×d block per class
    assert low.factor.dims == ("n", "d", "c")
    # no n-dependent (dc)×(dc) work: the program's largest temporary is the factor or a block
    assert ec.cost(H, n=100, d=1000, c=10).largest_intermediate <= 10**7
    X, W, Y = _softmax_case(rng, 6, 4, 3)
    closed = _softmax_hessian_closed_form(X, W, Y)
    value = c.evaluate(X=X, W=W, Y=Y)
    np.testing.assert_allclose(value.dense(), closed, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize(("n", "d", "c"), [(5, 4, 3), (40, 3, 2)])  # rank below and above the size
def test_structured_sum_matvec_and_solve_agree_with_dense_algebra(n, d, c, rng):
    f = ec.parse(SOFTMAX_REGRESSION, Y="n c", X="n d", W="d c")
    code = ec.compile([ec.grad(f, "W"), ec.hessian(f, "W")])
    X, W, Y = _softmax_case(rng, n, d, c)
    g, H = code(X=X, W=W, Y=Y)
    closed = _softmax_hessian_closed_form(X, W, Y)
    assert isinstance(H, ec.StructuredSum)
    np.testing.assert_allclose(np.asarray(H), closed, rtol=1e-11, atol=1e-12)
    v = rng.normal(size=(d, c))
    np.testing.assert_allclose(H @ v, np.tensordot(closed, v, 2), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(H.matvec(v.ravel()), np.tensordot(closed, v, 2).ravel(), rtol=1e-11, atol=1e-12)
    step = H.solve(g)
    np.testing.assert_allclose(step, np.linalg.solve(closed.reshape(d * c, d * c), g.ravel()).reshape(d, c), rtol=1e-9)


def test_softmax_regression_newton_converges_quadratically(rng):
    f = ec.parse(SOFTMAX_REGRESSION, Y="n c", X="n d", W="d c")
    code = ec.compile([ec.grad(f, "W"), ec.hessian(f, "W")])
    X, W, Y = _softmax_case(rng, 30, 5, 3)
    W = np.zeros_like(W)
    norms = []
    for _ in range(8):
        g, H = code(X=X, W=W, Y=Y)
        norms.append(np.linalg.norm(g))
        W = W - H.solve(g)
    assert norms[-1] < 1e-10
    fast = [k for k in range(1, len(norms)) if norms[k - 1] < 1e-2 and norms[k] > 1e-13]
    assert all(norms[k] <= 10 * norms[k - 1] ** 2 for k in fast)


def test_saved_module_keeps_the_structured_sum(tmp_path, rng):
    f = ec.parse(SOFTMAX_REGRESSION, Y="n c", X="n d", W="d c")
    code = ec.compile(ec.hessian(f, "W"))
    path = code.save(tmp_path / "softmax_hessian.py")
    namespace: dict = {}
    exec(compile(open(path).read(), str(path), "exec"), namespace)  # noqa: S102 - our own generated module
    X, W, Y = _softmax_case(rng, 5, 4, 3)
    H = namespace["f"](Y, X, W)
    np.testing.assert_allclose(H.dense(), _softmax_hessian_closed_form(X, W, Y), rtol=1e-11, atol=1e-12)


# --------------------------------------------------------------------------------------
# Kronecker products, alone and shifted by a multiple of the identity
# --------------------------------------------------------------------------------------
MATRIX_LSQ = "sum((A @ X @ B - C) ** 2)"


@pytest.mark.parametrize("ridge", [0.0, 0.1])
@pytest.mark.parametrize("mode", ["reverse", "forward", "cross_country"])
def test_matrix_least_squares_hessian_is_a_kronecker_product(ridge, mode, rng):
    text = MATRIX_LSQ + (f" + {ridge} * sum(X ** 2)" if ridge else "")
    f = ec.parse(text, A="p n", X="n m", B="m q", C="p q")
    H = ec.hessian(f, "X", mode=mode)
    c = ec.compress(H)
    assert isinstance(c, ec.CompressedSum)
    (kron,) = [p for p in c.parts if isinstance(p, ec.structure.KroneckerTerm)]
    assert [k.dims for k in kron.factors] == [("n", "n"), ("m", "m")] and kron.positions == ((0,), (1,))
    assert ec.cost(H, n=300, m=300, p=400, q=400).largest_intermediate <= 300 * 300  # never (nm)²
    A, B, C, X = rng.normal(size=(6, 4)), rng.normal(size=(3, 5)), rng.normal(size=(6, 5)), rng.normal(size=(4, 3))
    # closed form: ∂²/∂X² ‖AXB − C‖² = 2 (AᵀA) ⊗ (BBᵀ), plus 2λ I
    closed = 2 * np.einsum("ik,jl->ijkl", A.T @ A, B @ B.T) + 2 * ridge * np.einsum("ik,jl->ijkl", np.eye(4), np.eye(3))
    code = ec.compile([ec.grad(f, "X"), H])
    g, S = code(A=A, X=X, B=B, C=C)
    np.testing.assert_allclose(S.dense(), closed, rtol=1e-12, atol=1e-12)
    v = rng.normal(size=(4, 3))
    np.testing.assert_allclose(S @ v, np.tensordot(closed, v, 2), rtol=1e-11, atol=1e-12)
    step = S.solve(g)
    np.testing.assert_allclose(step, np.linalg.solve(closed.reshape(12, 12), g.ravel()).reshape(4, 3), rtol=1e-9)
    # one Newton step solves the quadratic: the gradient vanishes after it
    g_after, _ = code(A=A, X=X - step, B=B, C=C)
    assert np.abs(g_after).max() < 1e-9


def test_runtime_kronecker_against_numpy_kron(rng):
    from eincalc import runtime

    a, b = rng.normal(size=(3, 3)) + 3 * np.eye(3), rng.normal(size=(2, 2)) + 3 * np.eye(2)
    k = runtime.Kronecker((a, b), ((0,), (1,)), 1.5, (3, 2, 3, 2))
    np.testing.assert_allclose(k.dense().reshape(6, 6), 1.5 * np.kron(a, b), rtol=1e-13)
    rhs = rng.normal(size=(3, 2, 4))
    np.testing.assert_allclose(
        k.solve_columns(rhs).reshape(6, 4), np.linalg.solve(1.5 * np.kron(a, b), rhs.reshape(6, 4)), rtol=1e-10
    )


@pytest.mark.parametrize(
    ("text", "decls", "wrt", "make"),
    [
        ("sum((T - U @ V.T) ** 2) + 0.1 * sum(U ** 2)", dict(T="m n", U="m k", V="n k"), "U",
         lambda r: dict(T=r.normal(size=(5, 4)), U=r.normal(size=(5, 3)), V=r.normal(size=(4, 3)))),
        (SOFTMAX_REGRESSION, dict(Y="n c", X="n d", W="d c"), "W",
         lambda r: dict(zip(("X", "W", "Y"), _softmax_case(r, 5, 4, 3)))),
        (MATRIX_LSQ + " + 0.1 * sum(X ** 2)", dict(A="p n", X="n m", B="m q", C="p q"), "X",
         lambda r: {k: r.normal(size=s) for k, s in dict(A=(6, 4), X=(4, 3), B=(3, 5), C=(6, 5)).items()}),
    ],
    ids=["ridge-factorisation", "softmax-regression", "matrix-least-squares"],
)  # fmt: skip
def test_structured_slogdet_agrees_with_the_dense_matrix(text, decls, wrt, make, rng):
    f = ec.parse(text, **decls)
    arrays = make(rng)
    H = ec.compile(ec.hessian(f, wrt))(**arrays)
    dense = np.asarray(H)
    n = int(np.prod(dense.shape[: dense.ndim // 2]))
    sign, log = np.linalg.slogdet(dense.reshape(n, n))
    got_sign, got_log = H.slogdet()
    assert got_sign == sign
    np.testing.assert_allclose(got_log, log, rtol=1e-10)
