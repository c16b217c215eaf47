"""Convolution and pooling: values against explicit loops, derivatives against differences and PyTorch.

The value oracle is a plain loop over output positions (the definition, written
independently of eincalc); derivatives are checked with central differences in every
mode to second order, and a LeNet-style network's gradients against PyTorch's autograd
when it is installed. The generated code must use window views and scatters, never the
dense 0/1 window tensor.
"""

from __future__ import annotations

import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_diff import MODES, check_derivative

import eincalc as ec
from eincalc.codegen import windows
from eincalc.testing import check_close, numeric_jacobian

COVERED = {"shift", "conv1d", "conv2d", "windows", "avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d"}
"""Functions of the NumPy dialect whose values this module checks (see test_ops_eval)."""


# --------------------------------------------------------------------------------------
# independent references: loops over output positions
# --------------------------------------------------------------------------------------
def ref_conv2d(x, k, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    b, c, h, w = x.shape
    d, _, kh, kw = k.shape
    xp = np.zeros((b, c, h + 2 * padding[0], w + 2 * padding[1]))
    xp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + w] = x
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((b, d, oh, ow))
    for p in range(oh):
        for q in range(ow):
            for u in range(kh):
                for v in range(kw):
                    patch = xp[:, :, p * stride[0] + u * dilation[0], q * stride[1] + v * dilation[1]]  # (b, c)
                    out[:, :, p, q] += patch @ k[:, :, u, v].T
    return out


def ref_conv2d_input_gradient(g, k, side, stride=1, padding=0):
    """Σ_d g[b, d, p, q] k[d, c, u, v] added into position (p·stride + u − padding, q·stride + v − padding)."""
    b, _, oh, ow = g.shape
    _, c, kh, kw = k.shape
    out = np.zeros((b, c, side + 2 * padding, side + 2 * padding))
    for p in range(oh):
        for q in range(ow):
            for u in range(kh):
                for v in range(kw):
                    out[:, :, p * stride + u, q * stride + v] += g[:, :, p, q] @ k[:, :, u, v]
    return out[:, :, padding : padding + side, padding : padding + side]


def ref_avg_pool2d(x, size, stride, padding):
    ones = np.ones((1, 1, size, size)) / size**2
    b, c, h, w = x.shape
    return ref_conv2d(x.reshape(b * c, 1, h, w), ones, (stride, stride), (padding, padding)).reshape(
        b, c, -1, ((w + 2 * padding - size) // stride + 1)
    )


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), (2, 0, 2), ((1, 2), (0, 1), 1)])
def test_conv2d_equals_the_definition_evaluated_and_compiled(stride, padding, dilation, rng):
    X, K = ec.tensor("X", "b 3 9 8"), ec.tensor("K", "4 3 3 2")
    y = ec.conv2d(X, K, stride=stride, padding=padding, dilation=dilation)
    x, k = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 2))
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    want = ref_conv2d(x, k, pair(stride), pair(padding), pair(dilation))
    check_close(ec.evaluate(y, X=x, K=k), want)
    check_close(ec.compile(y)(X=x, K=k), want)


def test_parsed_forms_print_back_and_evaluate(rng):
    decls = dict(X="b 2 6 6", K="3 2 3 3", v="b 1 10", w="2 1 3")
    x, k = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(3, 2, 3, 3))
    cases = {
        "conv2d(X, K, padding=1)": ref_conv2d(x, k, padding=(1, 1)),
        "conv2d(X, K, stride=2)": ref_conv2d(x, k, stride=(2, 2)),
        "avg_pool2d(X, size=2)": ref_avg_pool2d(x, 2, 2, 0),
        "avg_pool2d(X, size=3, stride=1, padding=1)": ref_avg_pool2d(x, 3, 1, 1),
    }
    for text, want in cases.items():
        f = ec.parse(text, **decls)
        assert ec.parse(str(f), **decls) is f, text
        arrays = {name: v for name, v in dict(X=x, K=k).items() if name in f.variables()}
        check_close(ec.evaluate(f, **arrays), want, what=text)
    v, w = rng.normal(size=(2, 1, 10)), rng.normal(size=(2, 1, 3))
    f = ec.parse("conv1d(v, w, padding=1, dilation=2)", **decls)
    assert ec.parse(str(f), **decls) is f
    want = ref_conv2d(v[:, :, None, :], w[:, :, None, :], padding=(0, 1), dilation=(1, 2))[:, :, 0, :]
    check_close(ec.evaluate(f, v=v, w=w), want)
    check_close(ec.compile(f)(v=v, w=w), want)
    pooled = ec.parse("avg_pool1d(v, size=2)", **decls)
    check_close(ec.evaluate(pooled, v=v), v.reshape(2, 1, 5, 2).mean(axis=3))


def test_windows_and_shift(rng):
    x = rng.normal(size=(2, 5, 4))
    win = ec.evaluate(ec.parse("windows(X, size=2, stride=1)", X="b 5 4"), X=x)
    assert win.shape == (2, 4, 3, 2, 2)
    check_close(win[:, 1, 2], x[:, 1:3, 2:4])
    s = ec.parse("shift(size=6, kernel=3, stride=2, padding=1)")
    dense = ec.evaluate(s)
    for i, kk, o in np.argwhere(dense):
        assert i == 2 * o + kk - 1
    assert dense.sum() == sum(1 for o in range(3) for kk in range(3) if 0 <= 2 * o + kk - 1 < 6)


# --------------------------------------------------------------------------------------
# derivatives
# --------------------------------------------------------------------------------------
CNN_DECLS = dict(X="b 1 6 6", K1="2 1 3 3", K2="3 2 2 2", W="3 2 2 4", Y="b 4")
CNN_TEXT = (
    "-sum(Y * log_softmax(einsum('bcij,cije->be', "
    "tanh(avg_pool2d(tanh(conv2d(tanh(conv2d(X, K1, padding=1)), K2, stride=1)), size=2, stride=2)), W), axis=1))"
)


def cnn_arrays(rng, b=3):
    return dict(
        X=rng.normal(size=(b, 1, 6, 6)),
        K1=rng.normal(size=(2, 1, 3, 3)) / 3,
        K2=rng.normal(size=(3, 2, 2, 2)) / 2,
        W=rng.normal(size=(3, 2, 2, 4)) / 3,
        Y=np.eye(4)[rng.integers(0, 4, size=b)],
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wrt", ["K1", "K2", "X"])
def test_cnn_gradients_against_differences(mode, wrt, rng):
    f = ec.parse(CNN_TEXT, **CNN_DECLS)
    check_derivative(f, wrt, cnn_arrays(rng), 1, mode, rng, sizes={"b": 3})


@pytest.mark.parametrize("mode", MODES)
def test_conv_second_derivatives_against_differences(mode, rng):
    f = ec.parse("sum(tanh(conv2d(X, K, stride=2, padding=1)) * V)", X="b 1 5 5", K="2 1 3 3", V="b 2 3 3")
    arrays = dict(X=rng.normal(size=(2, 1, 5, 5)), K=rng.normal(size=(2, 1, 3, 3)) / 2, V=rng.normal(size=(2, 2, 3, 3)))
    check_derivative(f, "K", arrays, 2, (mode, mode), rng, sizes={"b": 2})
    check_derivative(f, "X", arrays, 2, (mode, mode), rng, sizes={"b": 2})


def test_pooling_gradient_against_differences(rng):
    f = ec.parse("sum(sin(avg_pool2d(X, size=3, stride=2, padding=1)) * V)", X="b 2 7 7", V="b 2 4 4")
    arrays = dict(X=rng.normal(size=(2, 2, 7, 7)), V=rng.normal(size=(2, 2, 4, 4)))
    for mode in MODES:
        check_derivative(f, "X", arrays, 1, mode, rng, sizes={"b": 2})


def test_compiled_gradients_use_windows_not_the_dense_tensor(rng):
    f = ec.parse(CNN_TEXT, **CNN_DECLS)
    params = ["K1", "K2", "W"]
    fn = ec.compile([f, *(ec.grad(f, p) for p in params)])
    assert "sliding_window_view" in fn.source
    assert "arange" not in fn.source, fn.source  # the dense 0/1 fallback
    a = cnn_arrays(rng)
    value, *grads = fn(**a)
    for p, g in zip(params, grads):
        check_close(g, ec.evaluate(ec.grad(f, p), **a), what=f"∂/∂{p}")  # the reference interpreter (dense S)


def test_lenet_gradients_equal_pytorch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    decls = dict(X="b 1 12 12", K1="4 1 3 3", c1="4", K2="6 4 3 3", c2="6", W1="6 2 2 16", d1="16", W2="16 5", Y="b 5")
    text = (
        "-sum(Y * log_softmax(relu(einsum('bcij,cije->be', avg_pool2d(relu(conv2d(avg_pool2d(relu("
        "conv2d(X, K1, padding=1) + einsum('c,bcij->bcij', c1, ones('b 4 12 12'))), size=2) , K2) "
        "+ einsum('c,bcij->bcij', c2, ones('b 6 4 4'))), size=2), W1) + d1) @ W2, axis=1)) / 10"
    )
    f = ec.parse(text, **decls)
    params = ["K1", "c1", "K2", "c2", "W1", "d1", "W2"]
    fn = ec.compile([f, *(ec.grad(f, p) for p in params)])
    shapes = dict(K1=(4, 1, 3, 3), c1=(4,), K2=(6, 4, 3, 3), c2=(6,), W1=(6, 2, 2, 16), d1=(16,), W2=(16, 5))
    a = {p: rng.normal(size=s) / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 4) for p, s in shapes.items()}
    a["X"] = rng.normal(size=(10, 1, 12, 12))
    a["Y"] = np.eye(5)[rng.integers(0, 5, size=10)]
    value, *grads = fn(**a)
    t = {k: torch.tensor(v, requires_grad=k in params) for k, v in a.items()}
    h = F.avg_pool2d(F.relu(F.conv2d(t["X"], t["K1"], t["c1"], padding=1)), 2)
    h = F.avg_pool2d(F.relu(F.conv2d(h, t["K2"], t["c2"])), 2)
    z = F.relu(torch.einsum("bcij,cije->be", h, t["W1"]) + t["d1"]) @ t["W2"]
    loss = -(t["Y"] * torch.log_softmax(z, dim=1)).sum() / 10
    loss.backward()
    check_close(value, loss.item(), rtol=1e-12, atol=1e-12)
    for p, g in zip(params, grads):
        check_close(g, t[p].grad.numpy(), rtol=1e-10, atol=1e-10, what=f"∂/∂{p}")


def test_max_pool_equals_the_definition(rng):
    x = rng.normal(size=(2, 3, 6, 8))
    got = ec.evaluate(ec.parse("max_pool2d(X, size=2)", X="b 3 6 8"), X=x)
    check_close(got, x.reshape(2, 3, 3, 2, 4, 2).max(axis=(3, 5)))
    got = ec.evaluate(ec.parse("max_pool2d(X, size=3, stride=1)", X="b 3 6 8"), X=x)
    want = np.array([[[[x[b, c, p : p + 3, q : q + 3].max() for q in range(6)] for p in range(4)] for c in range(3)]
                     for b in range(2)])  # fmt: skip
    check_close(got, want)
    v = rng.normal(size=(2, 1, 9))
    check_close(ec.evaluate(ec.parse("max_pool1d(v, size=3)", v="b 1 9"), v=v), v.reshape(2, 1, 3, 3).max(axis=3))
    with pytest.raises(ec.ShapeError, match="more than half the window"):
        ec.max_pool2d(ec.tensor("X", "b 3 6 8"), 2, padding=2)


def _padded_max_pool(x: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """The definition: -inf padding, then the max of each window (loops, no eincalc)."""
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    oh, ow = (padded.shape[2] - k) // s + 1, (padded.shape[3] - k) // s + 1
    out = np.empty(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = padded[:, :, i * s : i * s + k, j * s : j * s + k].max(axis=(2, 3))
    return out


@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 1), (3, 2, 1), (3, 1, 1), (4, 2, 2)])
def test_padded_max_pool_pads_with_minus_infinity(k, s, p, rng):
    x = -np.abs(rng.normal(size=(2, 3, 7, 6)))  # all negative: a zero pad would win every border window
    f = ec.parse(f"max_pool2d(X, size={k}, stride={s}, padding={p})", X="b 3 7 6")
    check_close(ec.evaluate(f, X=x), _padded_max_pool(x, k, s, p))
    check_close(ec.compile(f)(x), _padded_max_pool(x, k, s, p))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_padded_max_pool_derivative(mode, order, rng):
    f = ec.parse("sum(max_pool2d(X, size=3, stride=2, padding=1) ** 2)", X="b 2 5 5")
    check_derivative(f, "X", {"X": rng.normal(size=(2, 2, 5, 5))}, order, mode, rng, sizes={"b": 2})


def test_padded_max_pool_gradient_equals_pytorch(rng):
    torch = pytest.importorskip("torch")
    x, weights = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(2, 3, 4, 3))
    f = ec.sum(ec.max_pool2d(ec.tensor("X", "b 3 7 6"), 3, 2, 1) * weights)
    grad = ec.compile(ec.grad(f, "X"))(x)
    t = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.max_pool2d(t, 3, 2, 1) * torch.tensor(weights)).sum().backward()
    check_close(grad, t.grad.numpy(), rtol=1e-12, atol=1e-12)


LENET = (
    "-sum(Y * log_softmax(relu(einsum('bcij,cije->be', {pool}(relu(conv2d({pool}(relu("
    "conv2d(X, K1, padding=1) + einsum('c,bcij->bcij', c1, ones('b 4 {s} {s}'))), size=2), K2) "
    "+ einsum('c,bcij->bcij', c2, ones('b 6 {t} {t}'))), size=2), W1) + d1) @ W2, axis=1)) / {b}"
)


@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("side", [8, 28])
def test_lenet_on_digits_sized_inputs_equals_pytorch(pool, side, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    b, half = 16, side // 2
    t_side, out = half - 2, (half - 2) // 2
    decls = dict(X=f"b 1 {side} {side}", K1="4 1 3 3", c1="4", K2="6 4 3 3", c2="6", W1=f"6 {out} {out} 16",
                 d1="16", W2="16 10", Y="b 10")  # fmt: skip
    f = ec.parse(LENET.format(pool=pool, s=side, t=t_side, b=b), **decls)
    params = ["K1", "c1", "K2", "c2", "W1", "d1", "W2"]
    fn = ec.compile([f, *(ec.grad(f, p) for p in params)])
    shapes = dict(K1=(4, 1, 3, 3), c1=(4,), K2=(6, 4, 3, 3), c2=(6,), W1=(6, out, out, 16), d1=(16,), W2=(16, 10))
    a = {p: rng.normal(size=s) / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 4) for p, s in shapes.items()}
    if side == 8:
        datasets = pytest.importorskip("sklearn.datasets")
        digits = datasets.load_digits()
        a["X"] = digits.images[:b, None] / 16.0
        a["Y"] = np.eye(10)[digits.target[:b]]
    else:  # a 28×28 set generated here: blurred strokes, no download
        x = np.zeros((b, 1, 28, 28))
        for n in range(b):
            r = rng.integers(4, 24, size=2)
            x[n, 0, r[0] - 3 : r[0] + 3, 4:24] = 1.0
            x[n, 0, 4:24, r[1] - 2 : r[1] + 2] += 1.0
        a["X"] = x + 0.05 * rng.normal(size=x.shape)
        a["Y"] = np.eye(10)[rng.integers(0, 10, size=b)]
    value, *grads = fn(**a)
    assert "arange" not in fn.source  # no dense window tensor
    t = {k: torch.tensor(v, requires_grad=k in params) for k, v in a.items()}
    torch_pool = F.max_pool2d if pool == "max_pool2d" else F.avg_pool2d
    h = torch_pool(F.relu(F.conv2d(t["X"], t["K1"], t["c1"], padding=1)), 2)
    h = torch_pool(F.relu(F.conv2d(h, t["K2"], t["c2"])), 2)
    z = F.relu(torch.einsum("bcij,cije->be", h, t["W1"]) + t["d1"]) @ t["W2"]
    loss = -(t["Y"] * torch.log_softmax(z, dim=1)).sum() / b
    loss.backward()
    check_close(value, loss.item(), rtol=1e-12, atol=1e-12)
    for p, g in zip(params, grads):
        check_close(g, t[p].grad.numpy(), rtol=1e-10, atol=1e-10, what=f"∂/∂{p}")


# LeNet-5 (LeCun et al. 1998, with ReLU and max pooling): valid 5×5 convolutions, flattening as an einsum
LENET5_SHAPES = dict(K1=(6, 1, 5, 5), c1=(6,), K2=(16, 6, 5, 5), c2=(16,), W1=(16, 4, 4, 120), d1=(120,),
                     W2=(120, 84), d2=(84,), W3=(84, 10), d3=(10,))  # fmt: skip
LENET5_TEXT = (
    "-sum(Y * log_softmax(relu(relu(einsum('bcij,cije->be', max_pool2d(relu(conv2d(max_pool2d(relu(conv2d(X, K1) "
    "+ einsum('c,bcij->bcij', c1, ones('b 6 24 24'))), size=2), K2) "
    "+ einsum('c,bcij->bcij', c2, ones('b 16 8 8'))), size=2), W1) + d1) @ W2 + d2) @ W3 + d3, axis=1)) / {b}"
)


def lenet5(rng, b=4):
    """LeNet-5's loss, all parameter gradients compiled together with it, and arrays for a batch of ``b``."""
    decls = {p: " ".join(map(str, s)) for p, s in LENET5_SHAPES.items()}
    f = ec.parse(LENET5_TEXT.format(b=b), **decls, X="b 1 28 28", Y="b 10")
    fn = ec.compile([f, *(ec.grad(f, p) for p in LENET5_SHAPES)], sizes={"b": b})
    fan_in = dict(K1=25, K2=150, W1=256, W2=120, W3=84)
    a = {p: rng.normal(size=s) / np.sqrt(fan_in[p]) if p in fan_in else 0.1 * rng.normal(size=s)
         for p, s in LENET5_SHAPES.items()}  # fmt: skip
    a["X"] = rng.normal(size=(b, 1, 28, 28))
    a["Y"] = np.eye(10)[rng.integers(0, 10, size=b)]
    return fn, a


def lenet5_loss(a) -> float:
    """The definition in NumPy: ``ref_conv2d``'s loops, pooling by a reshape, softmax cross-entropy."""

    def pool(h):
        b, c, side, _ = h.shape
        return h.reshape(b, c, side // 2, 2, side // 2, 2).max(axis=(3, 5))

    h = pool(np.maximum(ref_conv2d(a["X"], a["K1"]) + a["c1"][:, None, None], 0.0))
    h = pool(np.maximum(ref_conv2d(h, a["K2"]) + a["c2"][:, None, None], 0.0))
    h = np.maximum(h.reshape(len(h), -1) @ a["W1"].reshape(256, 120) + a["d1"], 0.0)
    z = np.maximum(h @ a["W2"] + a["d2"], 0.0) @ a["W3"] + a["d3"]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(a["Y"] * logp).sum() / len(z)


def test_lenet5_gradients_against_central_differences(rng):
    """All ten gradients of LeNet-5 (28×28, batch 4) at three random entries each, against central differences."""
    fn, a = lenet5(rng)
    value, *grads = fn(**a)
    check_close(value, lenet5_loss(a), rtol=1e-12, atol=1e-12)
    eps = 1e-6
    for p, g in zip(LENET5_SHAPES, grads):
        assert g.shape == a[p].shape
        for k in rng.choice(a[p].size, size=3, replace=False):
            moved = {q: v.copy() for q, v in a.items()}
            moved[p].flat[k] += eps
            plus = lenet5_loss(moved)
            moved[p].flat[k] -= 2 * eps
            diff = (plus - lenet5_loss(moved)) / (2 * eps)
            check_close(g.flat[k], diff, rtol=1e-6, atol=1e-8, what=f"∂/∂{p} at flat index {k}")


def test_lenet5_gradients_equal_pytorch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fn, a = lenet5(rng)
    value, *grads = fn(**a)
    t = {k: torch.tensor(v, requires_grad=k in LENET5_SHAPES) for k, v in a.items()}
    h = F.max_pool2d(F.relu(F.conv2d(t["X"], t["K1"], t["c1"])), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, t["K2"], t["c2"])), 2)
    z = F.relu(F.relu(torch.einsum("bcij,cije->be", h, t["W1"]) + t["d1"]) @ t["W2"] + t["d2"]) @ t["W3"] + t["d3"]
    loss = -(t["Y"] * torch.log_softmax(z, dim=1)).sum() / len(z)
    loss.backward()
    check_close(value, loss.item(), rtol=1e-12, atol=1e-12)
    for p, g in zip(LENET5_SHAPES, grads):
        check_close(g, t[p].grad.numpy(), rtol=1e-10, atol=1e-10, what=f"∂/∂{p}")


def test_cnn_trained_with_adam_follows_pytorch(rng):
    """conv → conv → max-pool → dense → dense (the CNN study's network), Adam from one start: same losses."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    features = (
        "relu(einsum('bcij,cijh->bh', max_pool2d(relu(conv2d(relu(conv2d(X, K1, padding=1) + b1[:, None, None]), K2)"
        " + b2[:, None, None]), size=2), W3) + b3) @ W4 + b4"
    )
    shapes = dict(K1=(3, 1, 3, 3), b1=(3,), K2=(4, 3, 3, 3), b2=(4,), W3=(4, 3, 3, 8), b3=(8,), W4=(8, 5), b4=(5,))
    dims = {name: " ".join(map(str, shape)) for name, shape in shapes.items()}
    loss = ec.parse(f"-mean(sum(Y * log_softmax({features}, axis=1), axis=1))", X="b 1 8 8", Y="b 5", **dims)
    step = ec.compile(ec.value_and_grad(loss, list(shapes)))
    start = {p: rng.normal(size=s) / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 4) for p, s in shapes.items()}
    X = np.maximum(rng.normal(size=(24, 1, 8, 8)), 0.0)  # many exact zeros, so pooling windows tie as in images
    Y = np.eye(5)[rng.integers(0, 5, size=24)]
    opt = ec.optim.Adam(start, lr=1e-2)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    topt = torch.optim.Adam(t.values(), lr=1e-2)
    for k in range(6):
        batch = slice(8 * (k % 3), 8 * (k % 3) + 8)
        value = opt.step(step, X=X[batch], Y=Y[batch])
        topt.zero_grad()
        h = F.relu(F.conv2d(torch.tensor(X[batch]), t["K1"], t["b1"], padding=1))
        h = F.max_pool2d(F.relu(F.conv2d(h, t["K2"], t["b2"])), 2)
        z = F.relu(h.flatten(1) @ t["W3"].flatten(0, 2) + t["b3"]) @ t["W4"] + t["b4"]
        expected = -(torch.tensor(Y[batch]) * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
        expected.backward()
        topt.step()
        check_close(value, expected.item(), rtol=1e-10, atol=1e-10, what=f"loss at step {k}")
    for p, array in opt.params.items():
        check_close(array, t[p].detach().numpy(), rtol=1e-10, atol=1e-10, what=f"{p} after 6 steps")


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
def test_errors_name_the_problem():
    with pytest.raises(ec.ShapeError, match="fixed spatial sizes"):
        ec.conv2d(ec.tensor("X", "b c h w"), ec.tensor("K", "d c 3 3"))
    with pytest.raises(ec.ShapeError, match="in channels"):
        ec.conv2d(ec.tensor("X", "b 2 8 8"), ec.tensor("K", "4 3 3 3"))
    with pytest.raises(ec.ShapeError, match="does not fit"):
        ec.conv2d(ec.tensor("X", "b 1 4 4"), ec.tensor("K", "4 1 5 5"))
    with pytest.raises(ec.ShapeError, match="stride"):
        ec.conv2d(ec.tensor("X", "b 1 8 8"), ec.tensor("K", "4 1 3 3"), stride=0)
    with pytest.raises(ec.ParseError, match="keyword"):
        ec.parse("conv2d(X, K, strid=2)", X="b 1 8 8", K="4 1 3 3")


@pytest.mark.parametrize(("stride", "padding"), [(2, 1), (2, 0), (1, 1), (3, 2)])
def test_strided_padded_kernel_gradient_compiles(stride, padding, rng):
    # a product whose output axis only a ones factor carries used to break the cost model (KeyError)
    f = ec.parse(f"sum(tanh(conv2d(X, K, stride={stride}, padding={padding})))", X="b 1 5 5", K="2 1 3 3")
    g = ec.grad(f, "K")
    X, K = rng.normal(size=(2, 1, 5, 5)), rng.normal(size=(2, 1, 3, 3))
    numeric = numeric_jacobian(lambda k: ec.evaluate(f, X=X, K=k), K)
    np.testing.assert_allclose(ec.compile(g)(X=X, K=K), numeric, rtol=1e-6, atol=1e-8)


def test_a_window_view_two_products_share_is_copied_once_in_their_order(rng):
    # the forward conv and the kernel gradient read one im2col copy (kept axes first)
    f = ec.parse("sum(tanh(conv2d(X, K, padding=1)) * Y)", X="b 2 6 6", K="3 2 3 3", Y="b 3 6 6")
    code = ec.compile([f, ec.grad(f, "K")], sizes={"b": 4})
    body = code.source.split("def f(")[1]
    assert body.count("ascontiguousarray(") == 1
    assert body.count("sliding_window_view(") == 1
    X, K, Y = rng.normal(size=(4, 2, 6, 6)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(4, 3, 6, 6))
    value, grad = code(X=X, K=K, Y=Y)
    np.testing.assert_allclose(value, ec.evaluate(f, X=X, K=K, Y=Y), rtol=1e-12)
    numeric = numeric_jacobian(lambda k: ec.evaluate(f, X=X, K=k, Y=Y), K)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("size", "side"), [(2, 6), (3, 6), (2, 8)])
def test_average_pooling_is_a_sum_of_strided_slices(size, side, rng):
    f = ec.parse(f"avg_pool2d(X, size={size})", X=f"b c {side} {side}")
    code = ec.compile(f)
    assert f"0::{size}, 0::{size}]" in code.source and ".sum(" not in code.source.split("def f(")[1]
    X = rng.normal(size=(2, 3, side, side))
    m = side // size
    np.testing.assert_allclose(code(X=X), X.reshape(2, 3, m, size, m, size).mean(axis=(3, 5)), rtol=1e-13)
    g = ec.grad(ec.sum(ec.tanh(f)), "X")  # its gradient (a scatter) is unchanged, checked numerically
    numeric = numeric_jacobian(lambda x: ec.evaluate(ec.sum(ec.tanh(f)), X=x), X)
    np.testing.assert_allclose(ec.compile(g)(X=X), numeric, rtol=1e-6, atol=1e-8)


def _check_against_differences(loss, x, k, gx, gk, rng, h=1e-6):
    """``gx``, ``gk`` against central differences of ``loss(x, k)`` along a random direction each."""
    d = rng.normal(size=x.shape)
    check_close(np.vdot(gx, d), (loss(x + h * d, k) - loss(x - h * d, k)) / (2 * h), rtol=1e-6, atol=1e-8)
    d = rng.normal(size=k.shape)
    check_close(np.vdot(gk, d), (loss(x, k + h * d) - loss(x, k - h * d)) / (2 * h), rtol=1e-6, atol=1e-8)


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize(
    ("stride", "padding", "dilation"), [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 2), ((1, 2), (0, 1), 1)]
)
def test_large_convolution_gradients_against_differences_of_the_loop(stride, padding, dilation, rng):
    """Images large enough for grouped products (``K.reshape(o, s) @ g.reshape(b, s, y·x)``) and the joint col2im."""
    x, k = rng.normal(size=(2, 3, 20, 20)), rng.normal(size=(4, 3, 3, 3)) / 3
    geometry = (_pair(stride), _pair(padding), _pair(dilation))
    v = rng.normal(size=ref_conv2d(x, k, *geometry).shape)
    text = f"sum(tanh(conv2d(X, K, stride={stride!r}, padding={padding!r}, dilation={dilation!r})) * V)"
    f = ec.parse(text, X="b 3 20 20", K="4 3 3 3", V="b 4 {} {}".format(*v.shape[2:]))
    fn = ec.compile([ec.grad(f, "X"), ec.grad(f, "K")])
    assert "arange" not in fn.source, fn.source  # no dense 0/1 window tensor
    gx, gk = fn(X=x, K=k, V=v)

    def loss(x, k):
        return float(np.sum(np.tanh(ref_conv2d(x, k, *geometry)) * v))

    _check_against_differences(loss, x, k, gx, gk, rng)


def test_pooling_over_large_batches_folds_slices_and_splits_ties(rng):
    """Max pooling of a large array is a maximum of strided slices; its gradient splits ties evenly (JAX's rule)."""
    f = ec.parse("sum(max_pool2d(X, size=2) * V)", X="b 3 8 8", V="b 3 4 4")
    fn = ec.compile([f, ec.grad(f, "X")], sizes={"b": 200})
    assert "[..., 0, 0]" in fn.source and ".max(" not in fn.source, fn.source
    x = rng.integers(0, 3, size=(200, 3, 8, 8)).astype(float)  # many ties
    v = rng.normal(size=(200, 3, 4, 4))
    value, grad = fn(X=x, V=v)
    tiles = x.reshape(200, 3, 4, 2, 4, 2)
    peak = tiles.max(axis=(3, 5), keepdims=True)
    hits = (tiles == peak).astype(float)
    want_grad = (hits / hits.sum(axis=(3, 5), keepdims=True) * v[:, :, :, None, :, None]).reshape(x.shape)
    check_close(value, np.sum(peak[:, :, :, 0, :, 0] * v), rtol=1e-12)
    check_close(grad, want_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("side", "kernel", "stride", "padding", "batch_last"),
    [(12, 5, 1, 0, True), (8, 3, 1, 1, True), (17, 3, 2, 0, True), (6, 5, 1, 2, True), (20, 5, 1, 0, False)],
)
def test_col2im_of_short_rows_puts_the_batch_innermost(side, kernel, stride, padding, batch_last, rng):
    """Maps with rows of at most 15 (LeNet's 8×8): one product for all images, adds over (row, batch) runs."""
    x = rng.normal(size=(5, 6, side, side))
    k = rng.normal(size=(16, 6, kernel, kernel))
    v = rng.normal(size=ref_conv2d(x, k, (stride, stride), (padding, padding)).shape)
    f = ec.parse(
        f"sum(conv2d(X, K, stride={stride}, padding={padding}) * V)",
        X=f"b 6 {side} {side}", K=f"16 6 {kernel} {kernel}", V="b 16 {} {}".format(*v.shape[2:]),
    )  # fmt: skip
    fn = ec.compile(ec.grad(f, "X"), sizes={"b": 5})
    padded = side + 2 * padding
    zeros = re.search(r"numpy\.zeros\(\((.*)\), dtype=\w+\.dtype\)", fn.source).group(1)
    if batch_last:
        assert re.fullmatch(rf"6, {padded}, {padded}, \w+\.shape\[0\]", zeros), fn.source
        assert "numpy.ascontiguousarray(V.transpose(1, 2, 3, 0))" in fn.source, fn.source
    else:
        assert re.fullmatch(rf"\w+\.shape\[0\], 6, {padded}, {padded}", zeros), fn.source
    want = ref_conv2d_input_gradient(v, k, side, stride, padding)
    np.testing.assert_allclose(fn(X=x, K=k, V=v), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, 1, 1), (1, 0, 2), ((1, 2), (2, 0), 1)])
@pytest.mark.parametrize("batch", [64, 13, 1, 0])
def test_convolutions_over_large_batches_run_in_chunks_of_images(stride, padding, dilation, batch, rng):
    """The forward pass, the kernel gradient and the input gradient, each a loop over cache-sized chunks of images.

    Planned for 64 images (im2col matrices of up to 2.2 M entries; rows longer than the
    batch-innermost col2im takes); called with 64, with 13 (a last chunk shorter than the
    others), with 1 (fewer than one chunk) and with none (no chunk: the loop's names are
    never assigned, and nothing deletes them).
    """
    geometry = (_pair(stride), _pair(padding), _pair(dilation))
    oh, ow = ref_conv2d(np.zeros((1, 3, 36, 36)), np.zeros((4, 3, 3, 3)), *geometry).shape[2:]
    text = f"sum(tanh(conv2d(X, K, stride={stride!r}, padding={padding!r}, dilation={dilation!r})) * V)"
    f = ec.parse(text, X="b 3 36 36", K="4 3 3 3", V=f"b 4 {oh} {ow}")
    fn = ec.compile([f, ec.grad(f, "X"), ec.grad(f, "K")], sizes={"b": 64})
    loops = re.findall(r"for (_r\d+) in range\(0, X\.shape\[0\], (\d+)\):", fn.source)
    assert len(loops) == 3, fn.source  # forward, input gradient, kernel gradient
    assert all(1 < int(step) < 64 for _, step in loops), loops
    assert "arange" not in fn.source, fn.source  # no dense 0/1 window tensor
    x, k = rng.normal(size=(batch, 3, 36, 36)), rng.normal(size=(4, 3, 3, 3)) / 3
    v = rng.normal(size=(batch, 4, oh, ow))
    module: dict = {}
    exec(fn.source, module)  # the code alone: planned for 64 images, right for any number
    value, gx, gk = module["f"](X=x, K=k, V=v)

    def loss(x, k):
        return float(np.sum(np.tanh(ref_conv2d(x, k, *geometry)) * v))

    check_close(value, loss(x, k), rtol=1e-12)
    _check_against_differences(loss, x, k, gx, gk, rng)


def test_chunked_convolutions_keep_float32_and_hold_one_chunk(rng):
    """float32 images give float32 chunks; the cost model counts one chunk of the im2col matrix, not the batch's."""
    f = ec.parse("sum(relu(conv2d(X, K, padding=1)) * V)", X="b 6 28 28", K="16 6 3 3", V="b 16 28 28")
    grads = [ec.grad(f, "X"), ec.grad(f, "K")]
    fn = ec.compile(grads, sizes={"b": 100})
    assert fn.source.count("in range(0, X.shape[0], ") == 3, fn.source
    im2col = 100 * 54 * 784
    assert ec.cost(grads, b=100).largest_intermediate < im2col / 3
    x = rng.normal(size=(100, 6, 28, 28)).astype(np.float32)
    k = rng.normal(size=(16, 6, 3, 3)).astype(np.float32)
    v = rng.normal(size=(100, 16, 28, 28)).astype(np.float32)
    gx, gk = fn(X=x, K=k, V=v)
    assert gx.dtype == gk.dtype == np.float32
    x64, k64 = x.astype(float), k.astype(float)
    signal = (ref_conv2d(x64, k64, padding=(1, 1)) > 0) * v  # the gradient reaching the convolution's output
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x64, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), (2, 3))
    check_close(gx, ref_conv2d_input_gradient(signal, k64, 28, padding=1), rtol=1e-4, atol=1e-4)
    check_close(gk, np.einsum("boyx,bcyxuv->ocuv", signal, windows), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(("padding", "dilation"), [(1, 1), (0, 1), (2, 1), (2, 2), (0, 2), (3, 2)])
@pytest.mark.parametrize("batch", [40, 3])
def test_input_gradient_with_as_many_channels_is_a_correlation_with_the_flipped_kernel(padding, dilation, batch, rng):
    """8 → 8 channels: the input gradient is the padded signal's windows times the reversed kernel, not col2im.

    Checked against the loop definition of the transposed convolution and, for every
    geometry, central differences of the loss; planned for 40 images (chunks), run on 40
    and on 3.
    """
    side = 14
    oh = side + 2 * padding - dilation * 2
    f = ec.parse(
        f"sum(tanh(conv2d(X, K, padding={padding}, dilation={dilation})) * V)",
        X=f"b 8 {side} {side}", K="8 8 3 3", V=f"b 8 {oh} {oh}",
    )  # fmt: skip
    fn = ec.compile([ec.grad(f, "X"), ec.grad(f, "K")], sizes={"b": 40})
    assert "K[:, :, ::-1, ::-1]" in fn.source, fn.source
    assert "in range(3):" not in fn.source, fn.source  # no col2im loop over kernel offsets
    x, k = rng.normal(size=(batch, 8, side, side)), rng.normal(size=(8, 8, 3, 3)) / 5
    v = rng.normal(size=(batch, 8, oh, oh))
    module: dict = {}
    exec(fn.source, module)
    gx, gk = module["f"](X=x, K=k, V=v)
    geometry = ((1, 1), (padding, padding), (dilation, dilation))

    def loss(x, k):
        return float(np.sum(np.tanh(ref_conv2d(x, k, *geometry)) * v))

    if dilation == 1:
        signal = (1 - np.tanh(ref_conv2d(x, k, *geometry)) ** 2) * v
        check_close(gx, ref_conv2d_input_gradient(signal, k, side, padding=padding), rtol=1e-10, atol=1e-12)
    _check_against_differences(loss, x, k, gx, gk, rng)


@pytest.mark.parametrize(("channels_in", "correlation"), [(16, True), (3, False)])
def test_col2im_stays_where_the_signal_has_many_more_channels(channels_in, correlation, rng):
    """16 → 16: a correlation; 3 → 16 (the signal's im2col 5× the col2im values): col2im adds."""
    c = channels_in
    f = ec.parse("sum(conv2d(X, K, padding=1) * V)", X=f"b {c} 20 20", K=f"16 {c} 3 3", V="b 16 20 20")
    fn = ec.compile(ec.grad(f, "X"), sizes={"b": 8})
    assert ("::-1" in fn.source) == correlation, fn.source
    assert ("in range(3):" in fn.source) != correlation, fn.source
    k, v = rng.normal(size=(16, channels_in, 3, 3)), rng.normal(size=(8, 16, 20, 20))
    want = ref_conv2d_input_gradient(v, k, 20, padding=1)
    check_close(fn(X=np.zeros((8, channels_in, 20, 20)), K=k, V=v), want, rtol=1e-12, atol=1e-12)


@st.composite
def _geometries(draw):
    """A 1-D or 2-D convolution's sizes and geometry with at least one output position."""
    k, stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 2))
    side = draw(st.integers(max(1, dilation * (k - 1) + 1 - 2 * padding), 9))
    return dict(b=draw(st.integers(0, 5)), c=draw(st.integers(1, 4)), o=draw(st.integers(1, 4)), side=side, k=k,
                stride=stride, padding=padding, dilation=dilation, axes=draw(st.sampled_from([1, 2])))  # fmt: skip


@given(_geometries(), st.sampled_from([8, 1 << 17]))
def test_random_geometries_compile_to_the_interpreters_value(g, chunk_entries):
    """Value, input and kernel gradient of ``sum(tanh(conv) * V)`` in 1-D and 2-D: compiled (chunks forced or not;
    col2im or correlation as the channels decide) against the reference interpreter, which multiplies the dense
    0/1 windows."""
    geometry = f"stride={g['stride']}, padding={g['padding']}, dilation={g['dilation']}"
    oh = (g["side"] + 2 * g["padding"] - g["dilation"] * (g["k"] - 1) - 1) // g["stride"] + 1
    n = g["axes"]
    x_shape = (g["b"], g["c"], *[g["side"]] * n)
    k_shape = (g["o"], g["c"], *[g["k"]] * n)
    v_shape = (g["b"], g["o"], *[oh] * n)

    def decl(shape, batch=True):
        return " ".join(["b"] * batch + [str(d) for d in shape[batch:]])

    f = ec.parse(f"sum(tanh(conv{n}d(X, K, {geometry})) * V)", X=decl(x_shape), K=decl(k_shape, False), V=decl(v_shape))
    outputs = [f, ec.grad(f, "X"), ec.grad(f, "K")]
    rng = np.random.default_rng(g["side"] * 7 + g["k"])
    arrays = dict(X=rng.normal(size=x_shape), K=rng.normal(size=k_shape), V=rng.normal(size=v_shape))
    with mock.patch.object(windows, "CHUNK_ENTRIES", chunk_entries):
        got = ec.compile(outputs, sizes={"b": 4})
    module: dict = {}
    exec(got.source, module)  # planned for 4 images, run on 0 to 5
    for value, node in zip(module["f"](**arrays), outputs):
        check_close(value, ec.evaluate(node, **arrays), rtol=1e-10, atol=1e-12)


@st.composite
def _pools(draw):
    """A pooling (max or mean) of a convolution's output: window, stride and padding at most half the window."""
    size = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, size // 2))
    side = draw(st.integers(max(1, size - 2 * padding), 8))
    return dict(kind=draw(st.sampled_from(["max", "avg"])), size=size, stride=stride, padding=padding, side=side,
                b=draw(st.integers(1, 4)), c=draw(st.integers(1, 3)), axes=draw(st.sampled_from([1, 2])))  # fmt: skip
    # no empty batch: padded max pooling pads with min(x) - 1, which NumPy refuses for no entries


@given(_pools(), st.sampled_from([8, 1 << 17]))
@example(dict(kind="max", size=2, stride=1, padding=1, side=2, b=1, c=2, axes=2), 8)  # a constant and a chunk loop
def test_random_pools_of_convolutions_compile_to_the_interpreters_value(g, chunk_entries):
    """``sum(pool(relu(conv(X, K, padding=1))) * V)`` and its gradients for random pooling geometries (tiles,
    overlapping and padded windows; ties where ReLU gives zeros), chunks forced or not, against the interpreter."""
    n, side = g["axes"], g["side"]
    out = (side + 2 * g["padding"] - g["size"]) // g["stride"] + 1
    pool = f"{g['kind']}_pool{n}d(relu(conv{n}d(X, K, padding=1)), size={g['size']}, stride={g['stride']}, "
    pool += f"padding={g['padding']})"
    dims = " ".join([str(side)] * n)
    f = ec.parse(
        f"sum({pool} * V)", X=f"b {g['c']} {dims}", K=f"{g['c']} {g['c']} " + " ".join(["3"] * n),
        V=f"b {g['c']} " + " ".join([str(out)] * n),
    )  # fmt: skip
    outputs = [f, ec.grad(f, "X"), ec.grad(f, "K")]
    rng = np.random.default_rng(side * 5 + g["size"])
    arrays = dict(
        X=rng.normal(size=(g["b"], g["c"], *[side] * n)),
        K=rng.normal(size=(g["c"], g["c"], *[3] * n)),
        V=rng.normal(size=(g["b"], g["c"], *[out] * n)),
    )
    with mock.patch.object(windows, "CHUNK_ENTRIES", chunk_entries):
        got = ec.compile(outputs, sizes={"b": 3})
    module: dict = {}
    exec(got.source, module)
    for value, node in zip(module["f"](**arrays), outputs):
        check_close(value, ec.evaluate(node, **arrays), rtol=1e-10, atol=1e-12)


@given(_geometries())
def test_random_geometries_on_torch_equal_the_interpreter(g):
    """The same random convolutions compiled for PyTorch (its conv kernels, or NumPy's lowering where they do not
    apply), called with NumPy arrays, against the reference interpreter."""
    pytest.importorskip("torch")
    geometry = f"stride={g['stride']}, padding={g['padding']}, dilation={g['dilation']}"
    oh = (g["side"] + 2 * g["padding"] - g["dilation"] * (g["k"] - 1) - 1) // g["stride"] + 1
    n = g["axes"]
    shapes = dict(
        X=(g["b"], g["c"], *[g["side"]] * n), K=(g["o"], g["c"], *[g["k"]] * n), V=(g["b"], g["o"], *[oh] * n)
    )
    decls = {v: " ".join(["b"] * (v != "K") + [str(d) for d in shape[v != "K" :]]) for v, shape in shapes.items()}
    f = ec.parse(f"sum(tanh(conv{n}d(X, K, {geometry})) * V)", **decls)
    outputs = [f, ec.grad(f, "X"), ec.grad(f, "K")]
    rng = np.random.default_rng(g["side"] * 11 + g["k"])
    arrays = {v: rng.normal(size=shape) for v, shape in shapes.items()}
    got = ec.compile(outputs, backend="torch")(**arrays)
    for value, node in zip(got, outputs):
        check_close(value.numpy(), ec.evaluate(node, **arrays), rtol=1e-10, atol=1e-12)


def test_the_cost_model_holds_what_batch_last_col2im_holds():
    """Short image rows: col2im with the batch innermost runs whole (no chunk loop), and ``ec.cost`` counts its
    values whole (it counted one chunk of them, a product the code never splits)."""
    f = ec.parse("sum(conv2d(X, K) * V)", X="b 6 12 12", K="16 6 5 5", V="b 16 8 8")
    g = ec.grad(f, "X")
    source = ec.compile(g, sizes={"b": 64}).source
    assert "for _r" not in source and "numpy.ascontiguousarray(V.transpose(1, 2, 3, 0))" in source, source
    assert ec.cost(g, b=64).largest_intermediate == 64 * 6 * 5 * 5 * 8 * 8  # K.T @ V over all images, one array
