"""Integer gathers and their reverse rules in generated code: indexing and scatters, no one-hot matrices."""

from __future__ import annotations

import numpy as np
import pytest

import eincalc as ec
from eincalc.testing import check_close

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


# -- every backend: gathers, scatters and added gathers against closed forms ----------------
#
# The oracle of each case is a closed form written with NumPy indexing and Python loops
# (``_scatter_add``), never eincalc's own code: the NumPy backend is checked against it in
# the same test, like torch, JAX and Dask.

BACKENDS = ["numpy", "torch", "jax", "dask"]
LIBRARY = {"torch": "torch", "jax": "jax", "dask": "dask.array"}


def _scatter_add(shape: tuple[int, ...], rows: list[int], values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Zeros of ``shape`` with ``values[.., o, ..]`` added at ``rows[o]`` along ``axis``, one row at a time."""
    out = np.zeros(shape)
    for o, r in enumerate(rows):
        out[(slice(None),) * axis + (r,)] += values[(slice(None),) * axis + (o,)]
    return out


def _softmax(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _run(backend: str, nodes, arrays: dict[str, np.ndarray]):
    """Compile ``nodes`` for ``backend``, call it on the library's arrays, the results back in NumPy."""
    if backend != "numpy":
        pytest.importorskip(LIBRARY[backend])
    from test_backends import NUMPY, float64, to_library, to_numpy

    fn = ec.compile(nodes, backend=backend)
    if backend == "numpy":
        return fn(**arrays)
    assert not NUMPY.search(fn.source.split('"""')[2]), fn.source  # the library alone
    with float64(backend):
        got = fn(**{k: to_library(backend, v) for k, v in arrays.items()})
    return [to_numpy(backend, g) for g in got] if isinstance(got, tuple) else to_numpy(backend, got)


def _tanh_gather(rows: list[int], rng):
    """``Σ tanh(x[rows]) v``: its value and gradient (a scatter of ``(1 - tanh²) v``), closed forms."""
    f = ec.parse(f"sum(tanh(x[{rows}]) * v)", x="n", v=str(len(rows)))
    x, v = rng.normal(size=6), rng.normal(size=len(rows))
    t = np.tanh(x[rows])
    return f, "x", dict(x=x, v=v), np.sum(t * v), _scatter_add((6,), rows, (1 - t**2) * v)


def _matrix_gather(rows: list[int], rng):
    """``y @ tanh(X[rows] @ w)``: the scatter's core is a matrix (an outer product)."""
    f = ec.parse(f"y @ tanh(X[{rows}] @ w)", X="n k", y=str(len(rows)), w="k")
    x, y, w = rng.normal(size=(6, 3)), rng.normal(size=len(rows)), rng.normal(size=3)
    t = np.tanh(x[rows] @ w)
    return f, "X", dict(X=x, y=y, w=w), y @ t, _scatter_add((6, 3), rows, np.outer(y * (1 - t**2), w))


def _later_axis(rows: list[int], rng):
    """``Σ sin(X[:, rows])``: rows along axis 1."""
    f = ec.parse(f"sum(sin(X[:, {rows}]))", X="k n")
    x = rng.normal(size=(2, 5))
    return f, "X", dict(X=x), np.sin(x[:, rows]).sum(), _scatter_add((2, 5), rows, np.cos(x[:, rows]), axis=1)


GATHERS = {
    "vector, distinct rows": lambda rng: _tanh_gather([0, 2, 1], rng),
    "vector, repeated rows": lambda rng: _tanh_gather([0, 2, 0, 5, 0], rng),
    "matrix, distinct rows": lambda rng: _matrix_gather([3, 0, 1, 2, 4], rng),
    "matrix, repeated rows": lambda rng: _matrix_gather([2, 0, 1, 2, 1], rng),
    "later axis, distinct rows": lambda rng: _later_axis([1, 4, 0], rng),
    "later axis, repeated rows": lambda rng: _later_axis([1, 1, 0], rng),
}


@pytest.mark.parametrize("case", GATHERS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gather_value_and_scatter_gradient_on_each_backend(backend, case, rng):
    f, wrt, arrays, value, gradient = GATHERS[case](rng)
    got_value, got_gradient = _run(backend, [f, ec.grad(f, wrt)], arrays)
    check_close(got_value, value, what=f"{backend} value")
    check_close(got_gradient, gradient, what=f"{backend} gradient")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gathered_array_itself_on_each_backend(backend, rng):
    """``x[[0, 2, 0]]`` returned, and its Jacobian: the gather matrix itself, ``eye(n)[rows]``."""
    x = ec.vector("x", "n")
    g = x[np.array([0, 2, 0])]
    value = rng.normal(size=4)
    got, jacobian = _run(backend, [g, ec.derivative(g, x)], dict(x=value))
    check_close(got, value[[0, 2, 0]])
    check_close(jacobian, np.eye(4)[[0, 2, 0]])


@pytest.mark.parametrize("rows", [[0, 2, 1], [0, 2, 0]], ids=["distinct rows", "repeated rows"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gather_hessian_on_each_backend(backend, rows, rng):
    """d²/dx² Σ tanh(x[rows]) v = Σ_o e_{rows[o]} e_{rows[o]}ᵀ v_o tanh''(x[rows[o]]): the gather matrix twice."""
    f = ec.parse(f"sum(tanh(x[{rows}]) * v)", x="n", v="3")
    x, v = rng.normal(size=4), rng.normal(size=3)
    t = np.tanh(x[rows])
    want = np.zeros((4, 4))
    for o, r in enumerate(rows):
        want[r, r] += v[o] * -2 * t[o] * (1 - t[o] ** 2)
    check_close(_run(backend, ec.hessian(f, "x"), dict(x=x, v=v)), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_with_integer_labels_on_each_backend(backend, rng):
    """``-mean(log_softmax(Z)[arange(m), labels])``: a paired gather, its gradient softmax minus the one-hot labels."""
    logits = ec.matrix("Z", "5 k")
    picked = ec.log_softmax(logits, axis=1)[np.arange(5), LABELS]
    loss = -ec.mean(picked)
    z = rng.normal(size=(5, 4)) * 10
    logp = np.log(_softmax(z, axis=1))
    onehot = np.zeros((5, 4))
    onehot[np.arange(5), LABELS] = 1.0
    got_picked, got_loss, got_grad = _run(backend, [picked, loss, ec.grad(loss, logits)], dict(Z=z))
    check_close(got_picked, logp[np.arange(5), LABELS], what=f"{backend} log-probabilities of the labels")
    check_close(got_loss, -logp[np.arange(5), LABELS].mean(), what=f"{backend} loss")
    check_close(got_grad, (_softmax(z, axis=1) - onehot) / 5, what=f"{backend} gradient")


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_over_a_leading_batch_axis_on_each_backend(backend, rng):
    """``Z[:, arange(5), labels]``: the paired axes follow a full slice (result axes stay in place)."""
    f = ec.parse("-sum(log_softmax(Z, axis=2)[:, arange(5), [2, 0, 1, 2, 1]])", Z="b 5 k")
    picked = ec.parse("log_softmax(Z, axis=2)[:, arange(5), [2, 0, 1, 2, 1]]", Z="b 5 k")
    z = rng.normal(size=(3, 5, 4))
    logp = np.log(_softmax(z, axis=2))
    onehot = np.zeros((5, 4))
    onehot[np.arange(5), LABELS] = 1.0
    got_picked, got_grad = _run(backend, [picked, ec.grad(f, "Z")], dict(Z=z))
    check_close(got_picked, logp[:, np.arange(5), LABELS])
    check_close(got_grad, _softmax(z, axis=2) - onehot)


def test_jax_jit_traces_gathers_and_scatters(rng):
    jax = pytest.importorskip("jax")
    f, wrt, arrays, value, gradient = _tanh_gather([0, 2, 0, 5, 0], rng)
    loss = -ec.sum(ec.log_softmax(ec.matrix("Z", "5 k"), axis=1)[np.arange(5), LABELS])
    fn = ec.compile([f, ec.grad(f, wrt), ec.grad(loss, "Z")], backend="jax")
    z = rng.normal(size=(5, 4))
    onehot = np.eye(4)[LABELS]
    with jax.enable_x64(True):
        got = jax.jit(fn)(**{k: jax.numpy.asarray(v) for k, v in {**arrays, "Z": z}.items()})
    for g, want in zip(got, [value, gradient, _softmax(z, axis=1) - onehot]):
        check_close(np.asarray(g), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_gathered_position_summed_alone_is_a_number(backend, rng):
    """``sum(x[[2]])`` is ``x[2]``, no axis of length 1 left (the gather's result axis is summed alone)."""
    x = rng.normal(size=4)
    check_close(_run(backend, ec.parse("sum(x[[2]])", x="n"), dict(x=x)), x[2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_positions_past_the_end_are_a_size_error_on_each_backend(backend):
    """JAX would clamp x[7] to the last entry and drop its scatter; every backend refuses the call instead."""
    if backend != "numpy":
        pytest.importorskip(LIBRARY[backend])
    from test_backends import float64

    f = ec.parse("sum(tanh(x[[0, 2, 7]]) * v)", x="n", v="3")
    fn = ec.compile([f, ec.grad(f, "x")], backend=backend)
    with float64(backend), pytest.raises(ec.SizeError, match="position 7 is out of range for dim 'n' of size 4"):
        fn(x=np.ones(4), v=np.ones(3))
    with float64(backend):
        assert len(fn(x=np.ones(8), v=np.ones(3))) == 2


def test_a_variable_named_range_does_not_shadow_dask_positions(rng):
    """Dask's paired gather calls ``range``: a variable of that name is renamed in the code."""
    pytest.importorskip("dask.array")
    f = ec.parse("sum(log_softmax(range, axis=1)[arange(5), [2, 0, 1, 2, 1]])", range="5 k")
    fn = ec.compile(f, backend="dask")
    assert "def f(range_):" in fn.source and ".vindex[range(5), " in fn.source
    z = rng.normal(size=(5, 3))
    check_close(np.asarray(fn(range=z).compute()), np.log(_softmax(z, axis=1))[np.arange(5), LABELS].sum())
