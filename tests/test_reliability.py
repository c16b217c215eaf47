"""Reliability regressions: the node table, threads, work bounds, caches, constants, names, edges.

Each test is built from a defect found by fuzzing (issue 13) and failed before its fix.
"""

from __future__ import annotations

import gc
import linecache
import math
import signal
import subprocess
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import eincalc as ec
from eincalc import parser
from eincalc.algebra import MAX_INLINE, MAX_OPERANDS, _least_order
from eincalc.codegen.program import MAX_VARIANTS
from eincalc.dims import FRESH_PREFIX
from eincalc.graph import topo_order
from eincalc.testing import check_close, numeric_jacobian

_ROOT = Path(__file__).resolve().parent.parent


def _placeholder_dims(node: ec.Node) -> set[str]:
    return {d for n in topo_order(node) for d in n.dims if d.startswith(FRESH_PREFIX)}


# --------------------------------------------------------------------------------------
# 1. the MatrixCalculus dialect must not leak placeholder dims into the node table
# --------------------------------------------------------------------------------------
def test_mc_parse_result_has_no_placeholder_dims():
    f = ec.parse("vector(a).*y", dialect="mc", y="n")
    assert f.dims == ("n",)
    assert not _placeholder_dims(f)


def test_placeholder_dims_do_not_reach_an_unrelated_parse():
    f = ec.parse("vector(a).*y", dialect="mc", y="n")
    g = ec.parse("a*y", a="", y="n")
    assert g.dims == ("n",)
    assert not _placeholder_dims(g)
    fn = ec.compile(f)  # was `def f(y, a, *, ?0):`, a SyntaxError
    a, y = 3.0, np.arange(4.0)
    np.testing.assert_allclose(fn(y=y, a=a), a * y)


def test_cli_with_inferred_dims_emits_code():
    out = subprocess.run(
        [sys.executable, "-m", "eincalc.cli", "derive", "(matrix(1)*x).*y", "--dialect", "mc"]
        + ["--var", "x:n", "--var", "y:n", "--emit", "numpy"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert FRESH_PREFIX not in out.stdout
    compile(out.stdout, "<cli output>", "exec")  # the emitted module is valid Python


def test_many_mc_parses_never_leave_placeholders():
    texts = ["vector(a).*y", "(matrix(1)*x).*y", "x'*vector(1)", "sum(vector(b).*x)", "matrix(1)*x + y"]
    for text in texts * 3:
        for decl in ({"x": "n", "y": "n"}, {"y": "n"}, {"x": "n"}, {}):
            try:
                f = ec.parse(text, dialect="mc", **decl)
            except ec.EincalcError:
                continue
            assert not _placeholder_dims(f), (text, decl, f.dims)


# --------------------------------------------------------------------------------------
# 2. building nodes is thread-safe: equal structure is the same object in every thread
# --------------------------------------------------------------------------------------
def _build(k: int) -> ec.Node:
    v = ec.vector(f"v{k}", "n")
    A = ec.matrix("A", "n n")
    return ec.sum(ec.tanh(A @ v + v) * v) + ec.sum(v * v)


def test_concurrent_construction_yields_identical_nodes():
    n_threads, n_exprs = 8, 400
    results: list[list[ec.Node]] = [[] for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        barrier.wait()
        results[t] = [_build(k) for k in range(n_exprs)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke races
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    for k in range(n_exprs):
        first = results[0][k]
        assert all(results[t][k] is first for t in range(n_threads)), k
    # and the shared table still works: like terms collect and gradients build
    f = results[3][7]
    assert (f + results[5][7]) is (f + f)
    g = ec.grad(f, "v7")
    assert g.dims == ("n",)


# --------------------------------------------------------------------------------------
# 3. canonical ordering and deep chains cost polynomial work
# --------------------------------------------------------------------------------------
@contextmanager
def _hang_guard(seconds: int):
    """Fail instead of hanging: the cases below took minutes before their fix (not a timing test)."""

    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_least_order_of_a_long_chain_needs_no_recursion():
    # _least_order recursed once per factor: RecursionError at about 990 factors
    n = 1500
    A = ec.matrix("A", "n n")
    chain = [(A, (f"#{k}", f"#{k + 1}")) for k in range(n)]
    order = _least_order([chain], ("#0", f"#{n}"))
    assert order == list(range(n))


def test_equal_factors_are_canonical_whatever_the_association():
    A = ec.matrix("A", "n n")
    k = MAX_INLINE - 1  # products below MAX_INLINE operands are flat, hence canonical
    left = right = A
    for _ in range(k - 1):
        left, right = left @ A, A @ right
    assert left is right
    assert ec.parse("@".join(["A"] * k), A="n n") is left
    mid = ec.parse("(" + "@".join(["A"] * (k // 2)) + ")@(" + "@".join(["A"] * (k - k // 2)) + ")", A="n n")
    assert mid is left


def test_long_chains_of_equal_factors_build_quickly_and_evaluate_right():
    # 64 factors took 0.6 s, 128 more than 20 s (the canonical order was super-polynomial)
    n = parser.MAX_LEAVES - 2
    with _hang_guard(60):
        f = ec.parse("x @ " + "@".join(["A"] * n) + " @ x", A="n n", x="n")
        g = ec.grad(f, "x")
        fn = ec.compile([f, g])
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 3)) / 2.5
    x = rng.standard_normal(3)
    P = np.linalg.matrix_power(A, n)
    value, grad = fn(A=A, x=x)
    np.testing.assert_allclose(value, x @ P @ x, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(grad, (P + P.T) @ x, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("mode", ["reverse", "forward", "cross_country", "auto"])
def test_hessian_of_a_deep_tanh_chain(mode):
    # a depth-100 chain took more than 60 s in reverse-over-reverse and cross-country
    depth = 100
    x, W = ec.vector("x", "n"), ec.matrix("W", "n n")
    h = x
    for _ in range(depth):
        h = ec.tanh(W @ h)
    f = ec.sum(h)
    with _hang_guard(60):
        H = ec.hessian(f, "x", mode=mode)
    assert H.dims == ("n", "n")
    rng = np.random.default_rng(1)
    Wv, xv = rng.standard_normal((3, 3)), rng.standard_normal(3)

    def value(point: np.ndarray) -> float:
        return float(ec.evaluate(f, W=Wv, x=point))

    expected = numeric_jacobian(lambda p: numeric_jacobian(value, p, 1e-5), xv, 1e-4)
    check_close(ec.evaluate(H, W=Wv, x=xv), expected, rtol=1e-4, atol=1e-6, what=f"{mode} Hessian")


def test_products_past_the_operand_limit_are_refused_by_name():
    v = ec.vector("v", "n")
    with pytest.raises(ec.LimitError, match="MAX_OPERANDS"):
        ec.einsum(",".join(["a"] * (MAX_OPERANDS + 1)) + "->a", *([v] * (MAX_OPERANDS + 1)))


# --------------------------------------------------------------------------------------
# 4. caches are bounded: size variants, their functions and their linecache entries
# --------------------------------------------------------------------------------------
def _generated_lines() -> set[str]:
    return {name for name in linecache.cache if name.startswith("<eincalc ")}


def test_variants_and_linecache_are_bounded_over_many_sizes():
    X, w = ec.matrix("X", "b n"), ec.vector("w", "n")
    fn = ec.compile(ec.tanh(X @ w) * 2.0, name="batch")
    before = _generated_lines()
    rng = np.random.default_rng(0)
    w_val = rng.standard_normal(3)
    for b in range(1, 3 * MAX_VARIANTS):
        x_val = rng.standard_normal((b, 3))
        np.testing.assert_allclose(fn(X=x_val, w=w_val), 2.0 * np.tanh(x_val @ w_val))
    assert len(fn.variants) <= MAX_VARIANTS
    assert len(fn._functions) <= MAX_VARIANTS + 1
    assert len(_generated_lines() - before) <= MAX_VARIANTS + 1
    # the most recently used signature is kept, the least recently used went first
    sizes = [dict(key)["b"] for key in fn.variants]
    assert sizes[-1] == 3 * MAX_VARIANTS - 1 and 1 not in sizes


def test_a_variant_in_use_is_not_evicted():
    X, w = ec.matrix("X", "b n"), ec.vector("w", "n")
    fn = ec.compile(ec.sum(X @ w), name="lru")
    w_val = np.ones(3)
    hot = np.ones((1, 3))
    for b in range(2, 2 * MAX_VARIANTS):
        fn(X=np.ones((b, 3)), w=w_val)
        assert fn(X=hot, w=w_val) == 3.0  # keeps b = 1 recently used
    assert (("b", 1), ("n", 3)) in fn.variants


def test_discarded_compiles_leave_no_linecache_entries():
    before = _generated_lines()
    x = ec.vector("x", "n")
    for k in range(20):
        fn = ec.compile(ec.sum(ec.exp(x) * float(k + 2)), name=f"gone{k}")
        fn(x=np.arange(3.0))
    del fn
    gc.collect()
    assert _generated_lines() <= before


# --------------------------------------------------------------------------------------
# 5. constants: no inf or nan enters as a number; what stays symbolic prints and compiles
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["numpy", "mc"])
@pytest.mark.parametrize("literal", ["1e400", "9" * 400])
def test_overflowing_literals_are_parse_errors(dialect, literal):
    with pytest.raises(ec.ParseError, match="too large for a float64"):
        ec.parse(f"x * {literal}", dialect=dialect, x="n")


def test_power_with_an_overflowing_exponent_is_refused():
    # printed `x ** inf`, which neither parses back nor compiles (NameError: inf)
    with pytest.raises(ec.ParseError, match="too large"):
        ec.parse("x ** 1e400", x="n")
    with pytest.raises(ec.ShapeError, match="finite"):
        ec.vector("x", "n") ** float("inf")


@pytest.mark.parametrize("text", ["x * 1e300 * 1e300", "1e300 * x * 1e300", "x + 1e308 + 1e308", "x * (1e300 * 1e300)"])
def test_constant_folding_that_overflows_is_refused(text):
    # gave `inf * x` and `nan * x`, which do not parse back
    with pytest.raises(ec.EincalcError, match="overflows a float64"):
        ec.parse(text, x="n")


def test_division_by_a_folded_zero_compiles_like_evaluate():
    f = ec.parse("x / sin(0)", x="n")
    assert ec.parse(str(f), x="n") is f  # `0.0 ** -1.0 * x` parses back
    x = np.array([0.5, -2.0])
    expected = ec.evaluate(f, x=x)
    assert np.all(np.isinf(expected))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(ec.compile(f)(x=x), expected)  # raised ZeroDivisionError


@pytest.mark.parametrize("text", ["logsumexp(3)", "logsumexp(-1.5) * 2", "det(eye(1) * 3)"])
def test_general_functions_of_scalar_constants_compile(text):
    f = ec.parse(text)
    np.testing.assert_allclose(ec.compile(f)(), ec.evaluate(f))  # was `3.0.max()`: AttributeError


def test_non_finite_elementwise_constants_stay_symbolic_and_round_trip():
    # `sum(2 + 2) ** 1e41` printed `4.0 ** 1e+41`, whose folding then failed to parse back
    for text in ["log(0.0) * x", "exp(1000.0) * x", "log(-1.0) * x", "10.0 ** 400 * x", "sum(2 + 2) ** 1e41 * x"]:
        f = ec.parse(text, x="n")
        assert ec.parse(str(f), x="n") is f
        x = np.array([1.0, 2.0])
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(ec.compile(f)(x=x), ec.evaluate(f, x=x))


# --------------------------------------------------------------------------------------
# 6. names: look-alikes, reserved names, literal dims, keyword parameters
# --------------------------------------------------------------------------------------
def test_fullwidth_look_alike_is_the_same_variable():
    # 'ｙ' compared unequal to 'y' but Python read both as y in generated code
    y, q = ec.vector("y", "n"), ec.vector("\uff59", "n")
    assert q is y
    f = ec.exp(y) + q
    v = np.array([0.5, -1.0])
    np.testing.assert_allclose(ec.compile(f)(y=v), np.exp(v) + v)
    assert ec.parse("exp(\uff59) + y", **{"\uff59": "n"}) is f
    np.testing.assert_allclose(ec.evaluate(f, **{"\uff59": v}), np.exp(v) + v)


def test_look_alike_of_numpy_does_not_shadow_the_module():
    numpy_like = ec.vector("\uff4e\uff55\uff4d\uff50\uff59", "n")  # ｎｕｍｐｙ
    fn = ec.compile(ec.exp(numpy_like) * 2.0)
    v = np.array([0.0, 1.0])
    np.testing.assert_allclose(fn(v), 2.0 * np.exp(v))
    assert "def f(numpy_)" in fn.source


def _builtin_shadowing_cases():
    rng = np.random.default_rng(0)
    x, k = rng.normal(size=(2, 1, 6, 6)), rng.normal(size=(2, 1, 3, 3))
    m = rng.normal(size=(3, 4))

    def conv_grad(x, k):  # d/dx sum(conv2d(x, k, padding=1)**2), written with loops
        p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        y = np.zeros((2, 2, 6, 6))
        for u in range(3):
            for v in range(3):
                y += np.einsum("oc,bcij->boij", k[:, :, u, v], p[:, :, u : u + 6, v : v + 6])
        g = np.zeros_like(p)
        for u in range(3):
            for v in range(3):
                g[:, :, u : u + 6, v : v + 6] += np.einsum("oc,boij->bcij", k[:, :, u, v], 2.0 * y)
        return g[:, :, 1:7, 1:7]

    gathered = np.zeros_like(m)
    for i in [0, 2, 0]:
        gathered[:, i] += 1.0 - np.tanh(m[:, i]) ** 2
    v = np.array([-1.5, 0.5, 2.0])
    return [
        ("float", "sum(where(float > 0, float, 0.0))", {"float": "n"}, {"float": v}, (v > 0).astype(float)),
        ("range", "sum(conv2d(range, K, padding=1) ** 2)", {"range": "b 1 6 6", "K": "2 1 3 3"},
         {"range": x, "K": k}, conv_grad(x, k)),
        ("slice", None, None, {"slice": m}, gathered),
    ]  # fmt: skip


@pytest.mark.parametrize("case", _builtin_shadowing_cases(), ids=lambda c: c[0])
def test_variables_named_like_builtins_the_code_calls(case):
    # range (col2im loops), slice (scatter along a later axis) and float (.astype(float))
    # were parameters of the generated function, shadowing the builtins it calls
    name, text, decls, arrays, want = case
    if text is None:
        x = ec.matrix(name, "k n")
        f = ec.sum(ec.tanh(x[:, np.array([0, 2, 0])]))
    else:
        f = ec.parse(text, **decls)
    np.testing.assert_allclose(ec.compile(ec.grad(f, name))(**arrays), want, rtol=1e-10, atol=1e-12)
    assert f"{name}_" in ec.compile(ec.grad(f, name)).source


def test_variable_named_math_keeps_erf_working():
    v = np.array([-0.5, 0.25])
    fn = ec.compile(ec.parse("erf(math)", math="n"))
    np.testing.assert_allclose(fn(math=v), [math.erf(t) for t in v], rtol=1e-15)


def test_literal_dims_with_leading_zeros_compile():
    A = ec.matrix("A", "007 n")
    assert A.dims == ("7", "n")
    fn = ec.compile(ec.sum(A, axis=0) * 2.0)  # generated `007`, a SyntaxError
    a = np.arange(14.0).reshape(7, 2)
    np.testing.assert_allclose(fn(A=a), 2.0 * a.sum(axis=0))


@pytest.mark.parametrize("name", ["self", "dialect", "f", "declarations", "text", "arrays"])
def test_variables_named_like_keyword_parameters(name):
    v = ec.vector(name, "n")
    f = ec.sum(v * v)
    fn = ec.compile(f)
    x = np.array([1.0, 2.0])
    assert fn(**{name: x}) == 5.0  # collided with `self` of __call__
    assert ec.parse(f"sum({name} * {name})", declarations={name: "n"}) is f  # collided with `dialect`
    s = ec.scalar(name)
    table = ec.trace_table(ec.exp(s) * s, **{name: 1.5})  # collided with `f`
    assert table.adjoints[name] == pytest.approx(np.exp(1.5) * 2.5)


def test_numpy_dialect_reads_flat_chains_without_recursion(monkeypatch):
    # stopped at about 980 flat terms ("nested too deeply") while the mc dialect read 50 000
    monkeypatch.setattr(parser, "MAX_LEAVES", 5_000)
    f = ec.parse(" + ".join(["x"] * 1500), x="n")
    assert f is ec.parse("1500 * x", x="n")


@pytest.mark.parametrize("dialect", ["numpy", "mc"])
def test_text_past_the_leaf_limit_is_refused_by_name(dialect):
    text = " + ".join(["x"] * (parser.MAX_LEAVES + 1))
    with pytest.raises(ec.ParseError, match="MAX_LEAVES") as info:
        ec.parse(text, dialect=dialect, x="n")
    assert len(str(info.value)) < 400  # the message shows a window of the text, not all of it


# --------------------------------------------------------------------------------------
# 7. edges
# --------------------------------------------------------------------------------------
def test_evaluate_applies_the_stable_forms_of_compile():
    x = ec.vector("x", "n")
    f = ec.sum(ec.log(1 + ec.exp(x)))
    big = np.array([1000.0, -1000.0])
    np.testing.assert_allclose(ec.evaluate(f, x=big), 1000.0)  # was inf
    np.testing.assert_allclose(ec.compile(f)(x=big), ec.evaluate(f, x=big))


@pytest.mark.parametrize(
    "build,expected",
    [
        (lambda x: ec.softmax(x), np.zeros(0)),
        (lambda x: ec.log_softmax(x), np.zeros(0)),
        (lambda x: ec.logsumexp(x), -np.inf),
    ],
)
def test_softmax_family_over_a_size_0_dim(build, expected):
    # raised NumPy's "zero-size array to reduction operation maximum"
    x = ec.vector("x", "n")
    f = build(x)
    empty = np.zeros(0)
    np.testing.assert_array_equal(ec.evaluate(f, x=empty), expected)
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(ec.compile(f)(x=empty), expected)


def test_a_sum_of_thousands_of_terms_compiles():
    # CPython's compiler overflowed (RecursionError) on one 3 000-term expression
    vs = [ec.vector(f"v{k}", "n") for k in range(3000)]
    s = ec.sum(sum((ec.exp(v) * (1.0 if k % 3 else -2.0) for k, v in enumerate(vs[1:], 1)), ec.exp(vs[0])))
    values = {f"v{k}": np.full(2, 1e-3 * k) for k in range(3000)}
    expected = sum(np.exp(values[f"v{k}"]).sum() * (1.0 if k % 3 else -2.0) for k in range(1, 3000))
    expected += np.exp(values["v0"]).sum()
    np.testing.assert_allclose(ec.compile(s)(**values), expected, rtol=1e-10)


def test_evaluate_einsums_with_more_than_52_indices():
    from opt_einsum import get_symbol

    from eincalc.algebra import einsum

    vs = [ec.vector(f"u{k}", "3") for k in range(60)]
    e = einsum(vs, [(get_symbol(k),) for k in range(60)], ())
    values = {f"u{k}": np.array([1.0, 0.5, 0.25]) for k in range(60)}
    np.testing.assert_allclose(ec.evaluate(e, **values), 1.75**60)  # numpy.einsum has 52 letters


@pytest.mark.parametrize("text", ["x is 1", "1(x)", "'\\d' + x"])
def test_no_syntax_warnings_reach_stderr(text):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ec.ParseError):
            ec.parse(text, x="n")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eincalc.cli", *args], capture_output=True, text=True, timeout=60, cwd=_ROOT
    )


@pytest.mark.parametrize(
    "args,expected",
    [
        (["derive", "-x @ y", "--var", "x:n", "--var", "y:n", "--wrt", "x"], "-y"),
        (["derive", "--var", "x:n", "-sum(x * x)", "--wrt", "x"], "-2.0 * x"),
        (["derive", "--var=x:n", "-x @ x", "--wrt=x"], "-2.0 * x"),
    ],
)
def test_cli_takes_an_expression_starting_with_minus(args, expected):
    out = _cli(*args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


@pytest.mark.parametrize("text", ["x * " + "9" * 400, "'\\d' + x"])
def test_cli_errors_are_one_line_without_traceback(text):
    out = _cli("derive", text, "--var", "x:n")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "Warning" not in out.stderr
    assert out.stderr.startswith("eincalc: error: ") and out.stderr.count("\n") == 1


def test_gradient_of_det_at_a_singular_matrix_is_the_adjugate():
    # raised LinAlgError (det(X) inv(X)ᵀ); the adjugate is finite
    X = ec.matrix("X", "n n")
    g = ec.grad(ec.det(X), "X")
    singular = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.5, -1.0, 2.0]])
    # closed form: cofactor matrix C with C[i,j] = (-1)^(i+j) det(minor(i,j)); ∂det/∂X = C
    cof = np.array(
        [
            [(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(singular, i, 0), j, 1)) for j in range(3)]
            for i in range(3)
        ]
    )
    check_close(ec.evaluate(g, X=singular), cof, atol=1e-12)
    check_close(ec.compile(g)(X=singular), cof, atol=1e-12)
    assert ec.parse(str(g), X="n n") is g
    regular = np.random.default_rng(3).standard_normal((4, 4))
    value = lambda m: float(ec.evaluate(ec.det(X), X=m))  # noqa: E731
    check_close(ec.evaluate(g, X=regular), numeric_jacobian(value, regular), rtol=1e-6, atol=1e-8)
    H = ec.hessian(ec.det(X), "X")  # the adjugate's own derivative (at regular matrices)
    grad_num = lambda m: ec.evaluate(g, X=m)  # noqa: E731
    check_close(ec.evaluate(H, X=regular), numeric_jacobian(grad_num, regular), rtol=1e-6, atol=1e-6)


def test_one_compiled_function_called_from_8_threads_over_many_sizes():
    X, w = ec.matrix("X", "b n"), ec.vector("w", "n")
    fn = ec.compile(ec.tanh(X @ w), name="shared")
    w_val = np.ones(3)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for b in range(1, 40):
                size = 1 + (b * 7 + t * 13) % (2 * MAX_VARIANTS)
                np.testing.assert_allclose(fn(X=np.ones((size, 3)), w=w_val), np.tanh(np.full(size, 3.0)))
        except BaseException as err:  # noqa: BLE001 - reported below with the thread's failure
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[0]
    assert len(fn.variants) <= MAX_VARIANTS


@pytest.mark.xfail(
    strict=True,
    reason="found by tests/test_fuzz.py, also on main: with 7 equal factors x the canonical-order "
    "search runs out of budget (7! orders tie on x) and keeps a non-least order",
)
def test_gradient_with_many_equal_factors_prints_back_to_itself():
    f = ec.parse("sum(((x'*A*x .* x'*A*x)).^2)", dialect="mc", x="n", A="n n")
    g = ec.grad(f, "x")
    assert ec.parse(str(g), x="n", A="n n") is g


def test_function_of_a_constant_tensor_keeps_its_dims():
    # found by the fuzz suite: log(x - x) is log of a zero vector, not of the number 0
    f = ec.parse("(sum(log((x - x)))) ** 2", x="n")
    assert ec.parse(str(f), x="n") is f
    g = ec.parse("log(x - x)", x="n")
    assert ec.parse(str(g), x="n") is g
    with np.errstate(all="ignore"):
        assert ec.compile(g)(n=3).shape == (3,)
        assert np.asarray(ec.evaluate(g, n=3)).shape == (3,)


@pytest.mark.parametrize(
    ("text", "n"),
    [("sum(x[1:3] * 2.0)", 2), ("sum(x[1:3] * 2.0)", 1), ("sum(x[-3:-1])", 2), ("x[1:3] * y", 2)],
)
def test_a_slice_past_the_end_of_its_dim_is_a_size_error(text, n):
    # x[1:3] with n = 2: NumPy's slice stops at the end (one entry), so the sum was x[1]
    # and x[1:3] * y broadcast that one entry over y, silently
    f = ec.parse(text, x="n", y="2")
    args = {"x": np.arange(float(n)), "y": np.ones(2)}
    args = {k: v for k, v in args.items() if k in f.variables()}
    with pytest.raises(ec.SizeError, match="past the end of dim 'n'"):
        ec.compile(f)(**args)
    with pytest.raises(ec.SizeError, match="past the end of dim 'n'"):
        ec.evaluate(f, **args)


def test_slices_within_their_dim_still_run():
    f = ec.parse("sum(x[1:3]) + sum(x[-2:])", x="n")
    v = np.arange(4.0)
    assert ec.compile(f)(x=v) == v[1:3].sum() + v[-2:].sum() == ec.evaluate(f, x=v)
