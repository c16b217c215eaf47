"""The same generated program on torch, JAX and Dask arrays: derivatives right on each library.

Each installed backend runs a representative set of the derivative cases of
``test_diff.py`` (first and second derivatives, checked against central differences of
the function, as there), the network gradients of ``test_networks.py`` (against the
hand-written backward pass) and the CNN gradients of ``test_convolution.py`` (against
differences). A backend whose library is absent is skipped; CuPy (no GPU here) is
checked only for its clear error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import subprocess
import sys
import types

import numpy as np
import pytest
from test_convolution import CNN_DECLS, CNN_TEXT, cnn_arrays, ref_conv2d
from test_diff import CASES, contract_trailing, make_arrays, mixed_difference
from test_networks import arrays as mlp_arrays
from test_networks import backward_pass, mlp_text

import eincalc as ec
from eincalc.codegen.backends import BACKENDS
from eincalc.errors import BackendUnavailableError, UnknownNameError
from eincalc.testing import check_close

NUMPY = re.compile(r"(?<![\w.])numpy\b")
LIBRARIES = {"torch": "torch", "jax": "jax.numpy", "dask": "dask.array"}


def _installed(name: str) -> bool:
    return importlib.util.find_spec(LIBRARIES[name].split(".")[0]) is not None


BACKEND_PARAMS = [
    pytest.param(b, marks=pytest.mark.skipif(not _installed(b), reason=f"{b} not installed")) for b in LIBRARIES
]


def to_library(backend: str, value: np.ndarray | float):
    """``value`` as the library's array (what a user of that library passes)."""
    if backend == "torch":
        import torch

        return torch.as_tensor(np.asarray(value))  # a Python float would become float32
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(value)
    import dask.array as da

    value = np.asarray(value)
    return da.from_array(value, chunks=tuple(max(1, (s + 1) // 2) for s in value.shape))  # several chunks


def to_numpy(backend: str, value) -> np.ndarray:
    """A result back in NumPy, checking it is the library's array first."""
    assert BACKENDS[backend].owns(value), f"{backend} returned {type(value).__name__}"
    if backend == "torch":
        return value.detach().cpu().numpy()
    if backend == "dask":
        return np.asarray(value.compute())
    return np.asarray(value)


@contextlib.contextmanager
def float64(backend: str):
    """JAX computes in float32 unless 64-bit types are enabled (the tests compare with float64 differences)."""
    if backend == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


REPRESENTATIVE = [
    "quadratic form",
    "trace XAXt",
    "logistic",
    "matrix factorisation",
    "softmax",
    "log_softmax",
    "logsumexp axis",
    "cross entropy",
    "inv quadratic",
    "diag of vector",
    "index only in operand",
    "norm2",
    "mlp",
    "elementwise zoo",
    "broadcast bias",
    "scalar vars",
]
BY_NAME = {c[0]: c for c in CASES}


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("name", REPRESENTATIVE)
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_derivatives_on_each_backend_against_differences(backend, name, order, rng):
    _, text, decls, wrt = BY_NAME[name]
    f = ec.parse(text, **decls)
    arrays = make_arrays(decls, rng)
    d = ec.derivative(f, wrt, order=order, mode="reverse")
    fn = ec.compile(d, backend=backend)
    assert not NUMPY.search(fn.source.split('"""')[2])  # the code uses the library alone
    with float64(backend):
        got = to_numpy(backend, fn(**{k: to_library(backend, v) for k, v in arrays.items() if k in fn.arg_names}))
    assert got.dtype == np.float64
    directions = [rng.normal(size=np.shape(arrays[wrt])) for _ in range(order)]

    def value(x):
        return ec.evaluate(f, **{**arrays, wrt: x})

    h = {1: 1e-6, 2: 1e-4}[order]
    expected = mixed_difference(value, arrays[wrt], directions, h)
    scale = max(1.0, float(np.max(np.abs(expected))))
    tol = 1e-5 * 10 ** (order - 1)
    np.testing.assert_allclose(contract_trailing(got, directions), expected, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_network_gradients_on_each_backend_equal_the_backward_pass(backend, rng):
    widths, act, loss, batch = [6, 10, 7, 3], "tanh", "xent", 7
    depth = len(widths) - 1
    text, decls = mlp_text(depth, act, loss, batch)
    f = ec.parse(text, **decls)
    params = [p for k in range(1, depth + 1) for p in (f"W{k}", f"b{k}")]
    fn = ec.compile([f, *(ec.grad(f, p) for p in params)], backend=backend)
    a = mlp_arrays(widths, batch, loss, rng)
    with float64(backend):
        value, *grads = fn(**{k: to_library(backend, v) for k, v in a.items()})
    want = backward_pass(a, depth, act, loss, batch)
    for p, g in zip(params, grads):
        check_close(to_numpy(backend, g), want[p], what=f"{backend} gradient w.r.t. {p}")
    assert np.isfinite(to_numpy(backend, value))


@pytest.mark.parametrize("wrt", ["K1", "X"])
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_cnn_gradients_on_each_backend_against_differences(backend, wrt, rng):
    f = ec.parse(CNN_TEXT, **CNN_DECLS)
    a = cnn_arrays(rng)
    fn = ec.compile(ec.grad(f, wrt), backend=backend)
    with float64(backend):
        got = to_numpy(backend, fn(**{k: to_library(backend, v) for k, v in a.items()}))
    direction = rng.normal(size=a[wrt].shape)
    expected = mixed_difference(lambda x: ec.evaluate(f, **{**a, wrt: x}), a[wrt], [direction], 1e-6)
    np.testing.assert_allclose(np.sum(got * direction), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), ((1, 2), (0, 1), 1)])
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_conv2d_and_its_input_gradient_on_each_backend(backend, stride, padding, dilation, rng):
    X, K = ec.tensor("X", "b 3 9 8"), ec.tensor("K", "4 3 3 2")
    y = ec.conv2d(X, K, stride=stride, padding=padding, dilation=dilation)
    V = ec.tensor("V", y.dims)
    x, k = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 2))
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    want = ref_conv2d(x, k, pair(stride), pair(padding), pair(dilation))
    v = rng.normal(size=want.shape)
    fn = ec.compile([y, ec.grad(ec.sum(y * V), "X")], backend=backend)
    with float64(backend):
        value, grad = fn(X=to_library(backend, x), K=to_library(backend, k), V=to_library(backend, v))
    check_close(to_numpy(backend, value), want)
    # the input gradient is the adjoint of the convolution: <grad, d> = <v, conv(d, K)>
    d = rng.normal(size=x.shape)
    conv_d = ref_conv2d(d, k, pair(stride), pair(padding), pair(dilation))
    check_close(np.sum(to_numpy(backend, grad) * d), np.sum(v * conv_d))


@pytest.mark.skipif(not _installed("torch"), reason="torch not installed")
@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), ((1, 2), (0, 1), 1)])
def test_convolutions_on_torch_are_torch_convolution_kernels(stride, padding, dilation, rng):
    """A convolution, its input and its kernel gradient are torch's conv2d, conv2d_input and
    conv2d_weight calls, not windows and matrix products; each checked against a loop
    definition (the gradients through their adjoint identities)."""
    X, K = ec.tensor("X", "b 3 9 8"), ec.tensor("K", "4 3 3 2")
    y = ec.conv2d(X, K, stride=stride, padding=padding, dilation=dilation)
    V = ec.tensor("V", y.dims)
    x, k = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 2))
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    conv = lambda x, k: ref_conv2d(x, k, pair(stride), pair(padding), pair(dilation))  # noqa: E731
    v = rng.normal(size=conv(x, k).shape)
    fn = ec.compile([y, ec.grad(ec.sum(y * V), "X"), ec.grad(ec.sum(y * V), "K")], backend="torch")
    for call in ("torch.nn.functional.conv2d(", "torch.nn.grad.conv2d_input(", "torch.nn.grad.conv2d_weight("):
        assert fn.source.count(call) == 1, call
    assert ".unfold(" not in fn.source
    value, gx, gk = (to_numpy("torch", r) for r in fn(X=to_library("torch", x), K=to_library("torch", k),
                                                      V=to_library("torch", v)))  # fmt: skip
    check_close(value, conv(x, k))
    dx, dk = rng.normal(size=x.shape), rng.normal(size=k.shape)
    check_close(np.sum(gx * dx), np.sum(v * conv(dx, k)))  # <∂/∂X, dX> = <V, conv(dX, K)>
    check_close(np.sum(gk * dk), np.sum(v * conv(x, dk)))  # <∂/∂K, dK> = <V, conv(X, dK)>


@pytest.mark.skipif(not _installed("torch"), reason="torch not installed")
@pytest.mark.parametrize(
    "spec, decls, shapes",
    [  # two batch and two channel axes; no batch axis, two output-channel axes, strided and padded
        ("'pqcdi,ikj,ecdk->pqej', X, shift(size=9, kernel=3), K",
         dict(X="p q c d 9", K="e c d 3"), dict(X=(2, 3, 2, 2, 9), K=(4, 2, 2, 3))),
        ("'ci,ikj,efck->efj', X, shift(size=10, kernel=3, stride=2, padding=1), K",
         dict(X="c 10", K="e f c 3"), dict(X=(4, 10), K=(2, 3, 4, 3))),
    ],
)  # fmt: skip
def test_einsum_written_convolutions_on_torch_flatten_their_axes(spec, decls, shapes, rng):
    """A 1-D convolution written as an einsum with a window tensor, axes grouped any way:
    conv1d and its two gradients on flattened axes; the value against the reference
    interpreter, the gradients through their adjoint identities (the product is bilinear)."""
    f = ec.parse(f"einsum({spec})", **decls)
    V = ec.tensor("V", f.dims)
    fn = ec.compile([f, ec.grad(ec.sum(f * V), "X"), ec.grad(ec.sum(f * V), "K")], backend="torch")
    for call in ("functional.conv1d(", "grad.conv1d_input(", "grad.conv1d_weight("):
        assert call in fn.source, call
    a = {k: rng.normal(size=sh) for k, sh in shapes.items()}
    value = lambda x, k: ec.evaluate(f, X=x, K=k)  # noqa: E731
    a["V"] = rng.normal(size=value(a["X"], a["K"]).shape)
    got, gx, gk = (to_numpy("torch", r) for r in fn(**{k: to_library("torch", v) for k, v in a.items()}))
    check_close(got, value(a["X"], a["K"]))
    dx, dk = rng.normal(size=shapes["X"]), rng.normal(size=shapes["K"])
    check_close(np.sum(gx * dx), np.sum(a["V"] * value(dx, a["K"])))
    check_close(np.sum(gk * dk), np.sum(a["V"] * value(a["X"], dk)))


@pytest.mark.skipif(not _installed("torch"), reason="torch not installed")
@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_torch_code_takes_tensors_that_require_grad(network, rng):
    """Parameters that require grad (an nn.Parameter, say) are accepted, and torch's autograd
    differentiates the generated value code: its gradient equals eincalc's. In-place writes
    are the tensor methods autograd accepts (``z.tanh_()``), never ``out=`` (which it refuses)."""
    import torch

    if network == "mlp":
        text, decls = mlp_text(2, batch=16)
        f = ec.parse(text, **decls)
        a = mlp_arrays([5, 7, 3], 16, "xent", rng)
        wrt = "W1"
    else:
        # max pooling (its maxima written in place) and relu (a comparison into a new array)
        text = CNN_TEXT.replace("avg_pool2d", "max_pool2d").replace("tanh(conv2d(X", "relu(conv2d(X")
        f = ec.parse(text, **CNN_DECLS)
        a = cnn_arrays(rng)
        wrt = "K1"
    fn = ec.compile([f, ec.grad(f, wrt)], backend="torch")
    assert re.search(r"\.(tanh|exp)_\(\)", fn.source)
    assert not re.search(r"torch\.(tanh|exp|maximum)\([^)]*out=", fn.source)
    t = {k: torch.tensor(v, requires_grad=k == wrt) for k, v in a.items() if k in fn.arg_names}
    value, grad = fn(**t)
    (autograd,) = torch.autograd.grad(value, t[wrt])
    check_close(autograd.numpy(), grad.detach().numpy())
    check_close(value.item(), ec.evaluate(f, **a))


@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_pooling_gradients_over_a_large_batch_on_each_backend(backend, pool, rng):
    """Pooling over many images (folded slices, untiled gradients; max pooling's ties compare entries)."""
    f = ec.parse(f"sum(tanh({pool}(X, size=2)) * V)", X="b 3 8 8", V="b 3 4 4")
    g = ec.grad(f, "X")
    x = rng.integers(0, 3, size=(100, 3, 8, 8)).astype(float)  # ties
    v = rng.normal(size=(100, 3, 4, 4))
    want = ec.evaluate(g, X=x, V=v)  # the reference interpreter
    fn = ec.compile(g, backend=backend, sizes={"b": 100})
    with float64(backend):
        got = fn(X=to_library(backend, x), V=to_library(backend, v))
    check_close(to_numpy(backend, got), want)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_float32_in_float32_out(backend, rng):
    f = ec.parse("sum(log(1 + exp(-y * (X @ w)))) + 0.5 * w @ w", X="m n", w="n", y="m")
    fn = ec.compile([f, ec.grad(f, "w"), ec.hessian(f, "w")], backend=backend)
    a = {"X": rng.normal(size=(5, 3)), "w": rng.normal(size=3), "y": np.sign(rng.normal(size=5))}
    results = fn(**{k: to_library(backend, v.astype(np.float32)) for k, v in a.items()})
    want = ec.compile([f, ec.grad(f, "w"), ec.hessian(f, "w")], dense=True)(**a)
    for r, expected in zip(results, want):
        r = to_numpy(backend, r)
        assert r.dtype == np.float32
        check_close(r, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_calls_with_shapes_seen_before_skip_the_checks(backend, rng, monkeypatch):
    """The library's arrays of one float type, shapes seen before: no binding (it cost more than
    a small network's whole gradient on torch). New shapes, another float type or NumPy
    arrays still go through the checks, and every result is right."""
    import eincalc.codegen.caller as caller

    f = ec.parse("sum(tanh(X @ w))", X="m n", w="n")
    fn = ec.compile(ec.grad(f, "w"), backend=backend)
    a = {"X": rng.normal(size=(5, 3)), "w": rng.normal(size=3)}

    def want(X, w):
        return X.T @ (1.0 - np.tanh(X @ w) ** 2)

    with float64(backend):
        lib = {k: to_library(backend, v) for k, v in a.items()}
        check_close(to_numpy(backend, fn(**lib)), want(**a))
        checked = []
        real_bind = caller.bind_arguments
        monkeypatch.setattr(caller, "bind_arguments", lambda *args: checked.append(1) or real_bind(*args))
        check_close(to_numpy(backend, fn(**lib)), want(**a))
        check_close(to_numpy(backend, fn(lib["X"], lib["w"])), want(**a))
        assert checked == []
        b = {"X": rng.normal(size=(4, 3)), "w": a["w"]}
        check_close(to_numpy(backend, fn(**{k: to_library(backend, v) for k, v in b.items()})), want(**b))
        assert len(checked) == 1
        check_close(to_numpy(backend, fn(lib["X"], a["w"])), want(**a))  # a NumPy array among them
        assert len(checked) == 2
        x32 = {k: to_library(backend, v.astype(np.float32)) for k, v in a.items()}
        got = to_numpy(backend, fn(**x32))
        assert got.dtype == np.float32 and len(checked) == 3
        check_close(got, want(**a), rtol=1e-5, atol=1e-5)
        with pytest.raises(ec.SizeError, match="size 3 from axis 1 of X but size 4 from axis 0 of w"):
            fn(X=lib["X"], w=to_library(backend, rng.normal(size=4)))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_numpy_arrays_given_to_a_library_backend_are_converted(backend, rng):
    x = ec.vector("x", "n")
    fn = ec.compile(ec.hessian(ec.sum(ec.exp(x)) + x @ x, "x"), backend=backend)  # δ ⊗ core results come dense
    v = rng.normal(size=4)
    with float64(backend):
        got = to_numpy(backend, fn(v))
    check_close(got, np.diag(np.exp(v)) + 2 * np.eye(4))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_auto_picks_the_library_of_the_arrays(backend, rng):
    f = ec.parse("tanh(X @ w)", X="m n", w="n")
    fn = ec.compile(f, backend="auto")
    a = {"X": rng.normal(size=(3, 2)), "w": rng.normal(size=2)}
    assert isinstance(fn(**a), np.ndarray) and fn.backend == "numpy"
    with float64(backend):
        got = fn(**{k: to_library(backend, v) for k, v in a.items()})
    assert fn.backend == backend
    check_close(to_numpy(backend, got), np.tanh(a["X"] @ a["w"]))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_saved_module_runs_without_eincalc(backend, tmp_path, rng):
    f = ec.parse("sum(softmax(W @ x) * y)", W="k n", x="n", y="k")
    fn = ec.compile([f, ec.grad(f, "W")], backend=backend)
    again = ec.compile([f, ec.grad(f, "W")], backend=backend)
    assert fn.source == again.source  # deterministic
    path = fn.save(tmp_path / "generated.py")
    script = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import generated\n"
        "assert 'eincalc' not in sys.modules\n"
        f"import {LIBRARIES[backend]} as xp\n"
        "W, x, y = (xp.asarray(np.linspace(-1, 1, s).reshape(sh)) for s, sh in ((6, (3, 2)), (2, (2,)), (3, (3,))))\n"
        "value, grad = generated.f(W, x, y)\n"
        "print(type(grad).__module__.split('.')[0], tuple(grad.shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    library, *shape = out.stdout.split()
    assert library.startswith(backend) and shape == ["(3,", "2)"], (path, out.stdout)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_a_variable_named_like_the_library_does_not_shadow_it(backend, rng):
    name = LIBRARIES[backend].split(".")[0]
    f = ec.parse(f"sum(exp({name} * x))", **{name: "n", "x": "n"})
    fn = ec.compile(ec.grad(f, "x"), backend=backend)
    assert f"def f({name}_, x):" in fn.source
    a, x = rng.normal(size=3), rng.normal(size=3)
    with float64(backend):
        got = to_numpy(backend, fn(**{name: to_library(backend, a), "x": to_library(backend, x)}))
    check_close(got, a * np.exp(a * x))


def test_jax_jit_traces_the_compiled_function(rng):
    jax = pytest.importorskip("jax")
    f = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
    fn = ec.compile([ec.grad(f, "w"), ec.hessian(f, "w")], backend="jax")
    a = {"X": rng.normal(size=(6, 3)), "w": rng.normal(size=3), "y": np.sign(rng.normal(size=6))}
    want = ec.compile([ec.grad(f, "w"), ec.hessian(f, "w")], dense=True)(**a)
    with jax.enable_x64(True):
        got = jax.jit(fn)(**{k: jax.numpy.asarray(v) for k, v in a.items()})
        for g, w in zip(got, want):
            check_close(np.asarray(g), w)


def test_unknown_and_absent_backends_are_clear_errors(monkeypatch):
    X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
    with pytest.raises(UnknownNameError, match="known: auto, cupy, dask, jax, numpy, torch"):
        ec.compile(X @ w, backend="tensorflow")
    if importlib.util.find_spec("cupy") is None:
        with pytest.raises(BackendUnavailableError, match=r'pip install "eincalc\[cupy\]"'):
            ec.compile(X @ w, backend="cupy")
    # any backend without its library: the same error, naming its extra
    monkeypatch.setitem(sys.modules, "dask.array", None)
    monkeypatch.delitem(BACKENDS["dask"]._loaded, "module", raising=False)
    with pytest.raises(BackendUnavailableError, match=r'pip install "eincalc\[dask\]"') as err:
        ec.compile(X @ w, backend="dask")
    assert isinstance(err.value, ImportError)


def test_cupy_code_is_numpy_code_spelled_for_cupy(monkeypatch):
    """No GPU here: the CuPy printer's program, checked as text against NumPy's."""
    from eincalc.codegen.backends import CuPyPrinter

    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))  # pretend cupy is installed
    monkeypatch.delitem(BACKENDS["cupy"]._loaded, "module", raising=False)
    f = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
    source = ec.compile([f, ec.grad(f, "w")], backend="cupy").source
    assert "import cupy" in source and not NUMPY.search(source.split('"""')[2])
    assert "cupy.logaddexp(0.0, _t0)" in source
    assert CuPyPrinter.in_place


def test_numpy_code_is_unchanged_by_the_backend_layer():
    f = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
    source = ec.compile([f, ec.grad(f, "w")]).source
    assert "import numpy\n" in source and "numpy.logaddexp(0.0, _t0)" in source


def test_gather_gradient_on_torch_scatters_into_float64_zeros(rng):
    """The reverse rule of x[rows] writes into zeros of the arguments' dtype (torch.zeros alone is float32)."""
    torch = pytest.importorskip("torch")
    f = ec.parse("sum(tanh(x[[0, 2, 1]]) * v)", x="n", v="3")
    x, v = rng.normal(size=5), rng.normal(size=3)
    got = ec.compile(ec.grad(f, "x"), backend="torch")(x=torch.from_numpy(x), v=torch.from_numpy(v))
    want = np.zeros(5)
    want[[0, 2, 1]] = (1 - np.tanh(x[[0, 2, 1]]) ** 2) * v  # d/dx of Σ tanh(x[rows]) v
    assert got.dtype == torch.float64
    check_close(got.numpy(), want)
