"""Network code: gradients of MLPs compiled together are right and shaped like a backward pass.

Values are checked against a hand-written NumPy backward pass (an independent closed
form) and central differences; the shape of the code is checked through ``ec.cost``
(no temporary larger than the hand-written sweep's largest array) and the source
(each layer's signal computed once). Timings live in ``bench/bench_networks.py``.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import eincalc as ec
from eincalc.testing import check_close, numeric_jacobian


def mlp_text(depth: int, act: str = "tanh", loss: str = "xent", batch: int = 32) -> tuple[str, dict[str, str]]:
    decls = {"X": "b d0", "Y": f"b d{depth}"}
    h = "X"
    for k in range(1, depth + 1):
        decls[f"W{k}"], decls[f"b{k}"] = f"d{k - 1} d{k}", f"d{k}"
        z = f"{h} @ W{k} + b{k}"
        h = z if k == depth else f"{act}({z})"
    if loss == "xent":
        return f"-sum(Y * log_softmax({h}, axis=1)) / {batch}", decls
    return f"sum(({h} - Y) ** 2) / {batch}", decls


def mlp_expr(depth: int, batch: int) -> ec.Node:
    """The tanh MLP of :func:`mlp_text` with squared loss, built with operators (deep texts hit the parser's limits)."""
    h = ec.tensor("X", ("b", "d0"))
    for k in range(1, depth + 1):
        z = h @ ec.tensor(f"W{k}", (f"d{k - 1}", f"d{k}")) + ec.tensor(f"b{k}", (f"d{k}",))
        h = z if k == depth else ec.tanh(z)
    return ec.sum((h - ec.tensor("Y", ("b", f"d{depth}"))) ** 2) / batch


def arrays(widths: list[int], batch: int, loss: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {"X": rng.normal(size=(batch, widths[0]))}
    out["Y"] = (
        np.eye(widths[-1])[rng.integers(0, widths[-1], size=batch)]
        if loss == "xent"
        else rng.normal(size=(batch, widths[-1]))
    )
    for k in range(1, len(widths)):
        out[f"W{k}"] = rng.normal(size=(widths[k - 1], widths[k])) / np.sqrt(widths[k - 1])
        out[f"b{k}"] = 0.1 * rng.normal(size=widths[k])
    return out


def backward_pass(a: dict[str, np.ndarray], depth: int, act: str, loss: str, batch: int) -> dict[str, np.ndarray]:
    """The textbook reverse sweep, written by hand."""
    hs, pre = [a["X"]], []
    for k in range(1, depth + 1):
        z = hs[-1] @ a[f"W{k}"] + a[f"b{k}"]
        pre.append(z)
        hs.append(z if k == depth else (np.tanh(z) if act == "tanh" else np.maximum(z, 0.0)))
    if loss == "xent":
        z = hs[-1] - hs[-1].max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        d = (p * a["Y"].sum(axis=1, keepdims=True) - a["Y"]) / batch
    else:
        d = 2.0 * (hs[-1] - a["Y"]) / batch
    grads = {}
    for k in range(depth, 0, -1):
        grads[f"W{k}"], grads[f"b{k}"] = hs[k - 1].T @ d, d.sum(axis=0)
        if k > 1:
            d = (d @ a[f"W{k}"].T) * ((1.0 - hs[k - 1] ** 2) if act == "tanh" else (pre[k - 2] > 0))
    return grads


CASES = [
    ([6, 16, 12, 4], "tanh", "xent"),
    ([5, 8, 8, 8, 8, 3], "tanh", "mse"),
    ([6, 10, 7, 3], "relu", "mse"),
    ([4] * 9, "tanh", "mse"),
]


@pytest.mark.parametrize("widths,act,loss", CASES)
def test_all_gradients_equal_a_hand_written_backward_pass(widths, act, loss, rng):
    depth, batch = len(widths) - 1, 7
    text, decls = mlp_text(depth, act, loss, batch)
    f = ec.parse(text, **decls)
    params = [p for k in range(1, depth + 1) for p in (f"W{k}", f"b{k}")]
    fn = ec.compile([f, *(ec.grad(f, p) for p in params)])
    a = arrays(widths, batch, loss, rng)
    value, *grads = fn(**a)
    want = backward_pass(a, depth, act, loss, batch)
    for p, g in zip(params, grads):
        check_close(g, want[p], what=f"gradient w.r.t. {p}")
    # and the first weights against central differences of the compiled value
    value_only = ec.compile(f)
    numeric = numeric_jacobian(lambda w: value_only(**{**a, "W1": w}), a["W1"])
    check_close(grads[0], numeric.reshape(a["W1"].shape), rtol=1e-6, atol=1e-8, what="∂/∂W1 vs differences")
    assert np.isfinite(value)


def test_no_temporary_larger_than_the_backward_pass():
    # the 2-layer tanh MLP: a bias gradient once went through a 256×256×128 tensor
    text, decls = mlp_text(3, "tanh", "xent", 128)
    f = ec.parse(text, **decls)
    params = [p for k in range(1, 4) for p in (f"W{k}", f"b{k}")]
    sizes = dict(b=128, d0=64, d1=256, d2=256, d3=10)
    report = ec.cost([f, *(ec.grad(f, p) for p in params)], **sizes)
    hand_largest = 256 * 256  # W2, next to the batch × width signals (128 × 256)
    assert report.largest_intermediate <= 1.5 * hand_largest, report


def test_each_layer_signal_is_computed_once():
    text, decls = mlp_text(4, "tanh", "mse", 64)
    f = ec.parse(text, **decls)
    params = [p for k in range(1, 5) for p in (f"W{k}", f"b{k}")]
    fn = ec.compile([ec.grad(f, p) for p in params], sizes=dict(b=64, d0=32, d1=32, d2=32, d3=32, d4=32))
    body = fn.source.split("def f(")[1]
    # a backward pass multiplies by each of W2..W4 once (the signal) and forward by each W once
    for k in range(1, 5):
        code = [line.split("#")[0].replace(f"W{k}.shape", "") for line in body.splitlines()[1:]]
        reads = sum(line.count(f"W{k}") for line in code)
        assert reads == (1 if k == 1 else 2), (k, fn.source)


def test_hidden_bias_gradient_alone_follows_the_chain():
    # issue 14: a 5-operand einsum planned through a 131 072-entry temporary
    text, decls = mlp_text(3, "relu", "mse", 32)
    f = ec.parse(text, **decls)
    g = ec.grad(f, "b2")
    sizes = dict(b=32, d0=64, d1=128, d2=32, d3=10)
    assert ec.cost(g, **sizes).largest_intermediate <= 64 * 128
    a = arrays([64, 128, 32, 10], 32, "mse", np.random.default_rng(3))
    fn = ec.compile(g)
    check_close(fn(**{k: a[k] for k in fn.arg_names}), backward_pass(a, 3, "relu", "mse", 32)["b2"])


def test_relu_gradient_at_exactly_zero_matches_pytorch_convention():
    # PyTorch and JAX take relu'(0) = 0; an input with pre-activations exactly 0
    X, w = ec.matrix("X", "b d"), ec.vector("w", "d")
    f = ec.sum(ec.relu(X @ w))
    Xv = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 0.0]])
    wv = np.array([1.0, 1.0])  # pre-activations 0, 2, 0
    got = ec.compile(ec.grad(f, "w"))(X=Xv, w=wv)
    reference = Xv.T @ (Xv @ wv > 0).astype(float)  # PyTorch-style: mask strictly positive
    check_close(got, reference)
    check_close(ec.evaluate(ec.grad(f, "w"), X=Xv, w=wv), reference)
    torch = pytest.importorskip("torch")
    tw = torch.tensor(wv, requires_grad=True)
    torch.relu(torch.tensor(Xv) @ tw).sum().backward()
    check_close(got, tw.grad.numpy())


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "dask"])
def test_relu_gradient_at_nan_is_zero_as_in_jax(backend):
    """step(nan) = 0 (a comparison with nan is false), in the interpreter and on every backend, as jax.grad(relu)."""
    if backend != "numpy":
        pytest.importorskip(backend)
    x, v = ec.vector("x", "n"), ec.vector("v", "n")
    g = ec.grad(v @ ec.relu(x), "x")
    xv, vv = np.array([-1.0, 0.0, 2.0, np.nan]), np.array([1.0, 2.0, 3.0, 4.0])
    want = np.array([0.0, 0.0, 3.0, 0.0])
    np.testing.assert_array_equal(np.asarray(ec.compile(g, backend=backend)(x=xv, v=vv)), want)
    np.testing.assert_array_equal(ec.evaluate(g, x=xv, v=vv), want)
    if backend == "jax":
        import jax

        np.testing.assert_array_equal(np.asarray(jax.grad(lambda x: (vv * jax.nn.relu(x)).sum())(xv)), want)


def test_relu_derivative_is_one_comparison_written_into_a_dead_pre_activation(rng):
    """relu′ is numpy.greater (no sign pass); of a pre-activation nothing later reads, written into it."""
    X, w, v = ec.matrix("X", "b d"), ec.vector("w", "d"), ec.vector("v", "b")
    fn = ec.compile(ec.grad(v @ ec.relu(X @ w), "w"), sizes={"b": 50, "d": 4})
    assert re.search(r"numpy\.greater\((_t\d+), 0\.0, out=\1\)", fn.source) and "sign" not in fn.source
    Xv, wv, vv = rng.normal(size=(50, 4)), rng.normal(size=4), rng.normal(size=50)
    check_close(fn(X=Xv, w=wv, v=vv), Xv.T @ (vv * (Xv @ wv > 0)), rtol=1e-12)


def test_gradients_of_a_deep_network_share_their_derivation():
    # depth 40: asking for 80 gradients one by one must not redo the reverse sweep each time
    f = mlp_expr(40, 8)
    grads = [ec.grad(f, p) for k in range(1, 41) for p in (f"W{k}", f"b{k}")]
    a = arrays([3] * 41, 8, "mse", np.random.default_rng(5))
    a = {k: v for k, v in a.items()}
    got = ec.compile(grads)(**a)
    want = backward_pass(a, 40, "tanh", "mse", 8)
    for k in (1, 20, 40):
        check_close(got[2 * (k - 1)], want[f"W{k}"], what=f"W{k}")
        check_close(got[2 * (k - 1) + 1], want[f"b{k}"], what=f"b{k}")


def test_residual_network_sums_extend_the_previous_sum(rng):
    """h_{k+1} = h_k + tanh(h_k W_k + b_k) U_k: gradients equal a hand-written pass; no sum re-adds earlier terms."""
    from eincalc.codegen.rewriting import program_roots, sized_roots
    from eincalc.expr import Add
    from eincalc.graph import topo_order

    depth, batch = 8, 16
    h = ec.tensor("X", ("b", "w"))
    params = []
    for k in range(depth):
        W, b, U = ec.tensor(f"W{k}", ("w", "v")), ec.tensor(f"b{k}", ("v",)), ec.tensor(f"U{k}", ("v", "w"))
        h = h + ec.tanh(h @ W + b) @ U
        params += [f"W{k}", f"b{k}", f"U{k}"]
    f = ec.sum((h - ec.tensor("Y", ("b", "w"))) ** 2) / batch
    grads = [ec.grad(f, p) for p in params]
    sizes = {"b": batch, "w": 6, "v": 5}
    roots, _ = program_roots(grads)
    widest = max(len(n.terms) for n in topo_order(sized_roots(roots, sizes)) if isinstance(n, Add))
    assert widest <= 3, widest  # flat, the last signal would add depth + 1 terms
    a = {"X": rng.normal(size=(batch, 6)), "Y": rng.normal(size=(batch, 6))}
    for k in range(depth):
        a[f"W{k}"], a[f"U{k}"] = rng.normal(size=(6, 5)) / 2, rng.normal(size=(5, 6)) / 2
        a[f"b{k}"] = rng.normal(size=5) / 4
    hs, ts = [a["X"]], []
    for k in range(depth):
        ts.append(np.tanh(hs[-1] @ a[f"W{k}"] + a[f"b{k}"]))
        hs.append(hs[-1] + ts[-1] @ a[f"U{k}"])
    d, want = 2.0 / batch * (hs[-1] - a["Y"]), {}
    for k in reversed(range(depth)):
        want[f"U{k}"] = ts[k].T @ d
        dt = (d @ a[f"U{k}"].T) * (1 - ts[k] ** 2)
        want[f"W{k}"], want[f"b{k}"] = hs[k].T @ dt, dt.sum(axis=0)
        d = d + dt @ a[f"W{k}"].T
    for p, g in zip(params, ec.compile(grads, sizes={"b": batch})(**a)):
        check_close(g, want[p], what=f"∂/∂{p}")


def test_hessian_vector_product_stores_products_in_their_readers_order(rng):
    """H(W1)·V of a tanh MLP: equal to Pearlmutter's R-operator written by hand, and the
    tangent X·V, multiplied entry by entry with the (b, hidden) activations, is stored
    (b, hidden) — no element-wise pass reads it against its memory order."""
    text, decls = mlp_text(2, batch=16)
    decls["V"] = "d0 d1"
    f = ec.parse(text, **decls)
    hv = ec.grad(ec.sum(ec.grad(f, "W1") * ec.parse("V", V="d0 d1")), "W1")
    a = arrays([5, 7, 3], 16, "xent", rng)
    a["V"] = rng.normal(size=(5, 7))
    fn = ec.compile(hv, sizes={"b": 16, "d0": 5, "d1": 7, "d2": 3})
    X, Y, W1, b1, W2, b2, V = (a[k] for k in ("X", "Y", "W1", "b1", "W2", "b2", "V"))
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    s = Y.sum(axis=1, keepdims=True)
    dz = (p * s - Y) / 16
    rh = (1.0 - h * h) * (X @ V)
    rz = rh @ W2
    rdz = s * p * (rz - (p * rz).sum(axis=1, keepdims=True)) / 16
    want = X.T @ ((rdz @ W2.T) * (1.0 - h * h) - 2.0 * (dz @ W2.T) * h * rh)
    check_close(fn(**{k: a[k] for k in fn.arg_names}), want, rtol=1e-10, atol=1e-12)
    assert re.search(r"^ +_t\d+ = X @ V($|  #)", fn.source, re.MULTILINE)
    code = [line.split("  #")[0] for line in fn.source.splitlines()]
    assert not [line for line in code if "@" not in line and (".T *" in line or ".T)" in line)]


def test_a_transpose_of_a_transpose_prints_as_the_array():
    from eincalc.codegen.printer import Expr, transpose

    assert transpose(Expr("_t8.T"), (1, 0)).text == "_t8"
    assert transpose(Expr("_t8"), (1, 0)).text == "_t8.T"
    assert transpose(Expr("(a + b).T"), (1, 0)).text == "(a + b)"


def test_one_minus_a_fresh_square_is_written_into_it(rng):
    """``1 - h²`` of a tanh layer takes no array of its own: h*h is fresh and read once."""
    text, decls = mlp_text(2, batch=16)
    fn = ec.compile(ec.grad(ec.parse(text, **decls), "W1"), sizes={"b": 16, "d0": 5, "d1": 7, "d2": 3})
    assert re.search(r"numpy\.subtract\(1\.0, (_t\d+), out=\1\)", fn.source)
    a = arrays([5, 7, 3], 16, "xent", rng)
    check_close(fn(**{k: a[k] for k in fn.arg_names}), backward_pass(a, 2, "tanh", "xent", 16)["W1"], rtol=1e-10)


def test_relu_after_its_derivative_writes_into_the_pre_activation(rng):
    """The pre-activation's last reader (relu, after relu′ made its own array) takes no new array."""
    text, decls = mlp_text(2, act="relu", loss="mse", batch=16)
    f = ec.parse(text, **decls)
    params = ["W1", "b1", "W2", "b2"]
    fn = ec.compile([ec.grad(f, p) for p in params], sizes={"b": 16, "d0": 5, "d1": 7, "d2": 3})
    assert re.search(r"numpy\.maximum\((_t\d+), 0\.0, out=\1\)  # relu\(", fn.source)
    a = arrays([5, 7, 3], 16, "mse", rng)
    want = backward_pass(a, 2, "relu", "mse", 16)
    for got, p in zip(fn(**{k: a[k] for k in fn.arg_names}), params):
        check_close(got, want[p], rtol=1e-10)


def layer_gradient(X, W1, W2, Y) -> np.ndarray:
    """∂/∂W1 of -Σ Y ⊙ log_softmax(tanh(X W1) W2), by hand: Xᵀ ((s p − Y) W2ᵀ ⊙ (1 − h²)), s = Σ Y per row."""
    h = np.tanh(X @ W1)
    z = h @ W2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return X.T @ (((p * Y.sum(axis=1, keepdims=True) - Y) @ W2.T) * (1.0 - h * h))


@pytest.mark.parametrize("m, n, h, k", [(16, 5, 7, 3), (64, 20, 32, 10)])
def test_layer_hessian_adds_its_diagonal_into_the_fresh_product(m, n, h, k, rng):
    """The dense Hessian of an MLP layer equals differences of the gradient; its δ ⊗ core term is added
    into the (transposed) product that holds the rest — no copy of the 4-index result, not
    even a negated one (the product's sign goes to its smallest factor)."""
    f = ec.parse("-sum(Y * log_softmax(tanh(X @ W1) @ W2, axis=1))", X="b d", W1="d h", W2="h c", Y="b c")
    sizes = {"b": m, "d": n, "h": h, "c": k}
    fn = ec.compile(ec.hessian(f, "W1", sizes=sizes), sizes=sizes, dense=True)
    X, W1, W2 = rng.normal(size=(m, n)), rng.normal(size=(n, h)) / 2, rng.normal(size=(h, k)) / 2
    Y = np.eye(k)[rng.integers(0, k, size=m)]
    # the oracle: central differences of the hand-written gradient, entry by entry of W1
    want = numeric_jacobian(lambda w: layer_gradient(X, w, W2, Y), W1).reshape(n, h, n, h)
    check_close(fn(X=X, W1=W1, W2=W2, Y=Y), want, rtol=1e-6, atol=1e-7)
    assert ".copy()" not in fn.source
    assert not re.search(r"= -_t\d+$", fn.source, re.MULTILINE)  # nor a negated copy


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_float32_gradients_are_computed_in_float32(act, rng, monkeypatch):
    """Training runs in float32: the generated code itself returns float32 (its 0/1 masks and
    new arrays take the arguments' dtype; a float64 one would promote everything after it),
    equal to the float64 backward pass to float32 precision; calls with float32 arrays of
    shapes seen before skip the checks, as float64 calls do."""
    import eincalc.codegen.caller as caller

    text, decls = mlp_text(3, act=act, loss="xent", batch=16)
    f = ec.parse(text, **decls)
    params = ["W1", "b1", "W2", "b2", "W3", "b3"]
    fn = ec.compile([ec.grad(f, p) for p in params], sizes={"b": 16, "d0": 5, "d1": 7, "d2": 6, "d3": 3})
    a = arrays([5, 7, 6, 3], 16, "xent", rng)
    a32 = {k: v.astype(np.float32) for k, v in a.items()}
    namespace: dict = {}
    exec(fn.source, namespace)  # the generated function alone, without the caller's cast
    raw = namespace["f"](**{k: a32[k] for k in fn.arg_names})
    assert [g.dtype for g in raw] == [np.float32] * len(params)
    want = backward_pass(a, 3, act, "xent", 16)
    for got, p in zip(fn(**a32), params):
        check_close(got, want[p], rtol=2e-4, atol=1e-5, what=p)
    checked = []
    real_bind = caller.bind_arguments
    monkeypatch.setattr(caller, "bind_arguments", lambda *args: checked.append(1) or real_bind(*args))
    assert all(g.dtype == np.float32 for g in fn(**a32))
    assert checked == []


# --------------------------------------------------------------------------------------
# random networks: every code-shaping rule (sharing, in-place writes, layouts, residual
# sums, factoring) against the reference interpreter
# --------------------------------------------------------------------------------------
ACTIVATIONS = ["tanh", "relu", "sigmoid", "softplus"]
"""Bounded or linear growth: chains of ``exp`` overflow float32 and reach 1e9, where summation order alone moves a
Hessian's entries past any fixed tolerance."""


@st.composite
def _networks(draw):
    depth = draw(st.integers(1, 4))
    widths = [draw(st.integers(1, 5)) for _ in range(depth + 1)]
    layers = []
    for k in range(depth):
        residual = k < depth - 1 and widths[k] == widths[k + 1] and draw(st.booleans())
        layers.append((draw(st.sampled_from(ACTIVATIONS)), draw(st.booleans()), residual))
    return dict(widths=widths, layers=layers, loss=draw(st.sampled_from(["xent", "mse", "sum"])),
                batch=draw(st.integers(1, 4)), hvp=draw(st.booleans()), hessian=draw(st.booleans()),
                float32=draw(st.booleans()))  # fmt: skip


BACKENDS = ["numpy"] + [b for b in ("torch",) if importlib.util.find_spec(b) is not None]


@given(_networks(), st.sampled_from(BACKENDS))
def test_random_networks_compile_to_the_interpreters_gradients(net, backend):
    """Value and all parameter gradients of a random MLP (activations, optional biases, residual blocks, three
    losses) compiled together, with a Hessian-vector product and the dense Hessian w.r.t. the first weights, against
    the interpreter;
    NumPy code and, where installed, PyTorch code called with NumPy arrays."""
    widths, depth = net["widths"], len(net["layers"])
    decls = {"X": f"b {widths[0]}", "Y": f"b {widths[-1]}"}
    h = "X"
    for k, (act, bias, residual) in enumerate(net["layers"], 1):
        decls[f"W{k}"] = f"{widths[k - 1]} {widths[k]}"
        z = f"{h} @ W{k}"
        if bias:
            decls[f"c{k}"] = str(widths[k])
            z += f" + c{k}"
        if k < depth:
            h = f"({h} + {act}({z}))" if residual else f"{act}({z})"
        else:
            h = z
    text = {
        "xent": f"-sum(Y * log_softmax({h}, axis=1))",
        "mse": f"sum(({h} - Y) ** 2) / 2",
        "sum": f"sum(tanh({h}) * Y)",
    }[net["loss"]]
    f = ec.parse(text, **decls)
    params = [v for v in decls if v not in ("X", "Y")]
    outputs = [f, *(ec.grad(f, p) for p in params)]
    if net["hvp"]:
        decls["V"] = decls["W1"]
        outputs.append(ec.hvp(f, "W1", ec.tensor("V", tuple(decls["V"].split()))))
    rng = np.random.default_rng(sum(widths) * 13 + depth)
    arrays = {v: rng.normal(size=tuple(net["batch"] if d == "b" else int(d) for d in spec.split())) / 2
              for v, spec in decls.items()}  # fmt: skip
    if net["hessian"]:
        outputs.append(ec.hessian(f, "W1"))  # δ ⊗ core terms and their factoring
    fn = ec.compile(outputs, sizes={"b": net["batch"]}, backend=backend, dense=True)
    given = {v: a.astype(np.float32) if net["float32"] else a for v, a in arrays.items() if v in fn.arg_names}
    got = fn(**given)  # a constant loss may drop some arrays
    for value, node in zip(got, outputs):
        value = value.numpy() if backend == "torch" else np.asarray(value)
        want = ec.evaluate(node, **{v: a for v, a in arrays.items() if v in node.variables()})
        if not net["float32"]:
            check_close(value, want, rtol=1e-9, atol=1e-11)
            continue
        assert value.dtype == np.float32, (backend, str(node))  # computed in float32, nothing promoted
        np.testing.assert_allclose(value, want, rtol=1e-2, atol=1e-3 * (1 + np.abs(want).max()))
