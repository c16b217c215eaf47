"""Convolutional rows of the network bench: small CNNs, LeNet-5 and a VGG-style network, each against a
hand-written im2col backward pass (channels last), PyTorch and JAX."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from network_rows import (
    close,
    jax,
    jnp,
    live,
    on_libraries,
    row,
    torch,
    torch_xent_grads,
    typed,
)

import eincalc as ec


def _kernel_grads(g: np.ndarray, k: int, c: int, o: int) -> np.ndarray:
    """A kernel gradient of channels-last im2col rows ((u, v, c), o) in eincalc's (o, c, u, v) layout."""
    return g.reshape(k, k, c, o).transpose(3, 2, 0, 1)


def _im2col(x: np.ndarray, k: int, pad: int | None = None) -> np.ndarray:
    """(b, h, w, c) padded by ``pad`` (default k // 2: same size) → (b, h', w', k·k·c) patches.

    Offsets major, channels minor; ``pad=0`` is a valid convolution (h' = h - k + 1) and skips the padded copy.
    """
    p = k // 2 if pad is None else pad
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
    b, h, w, c = xp.shape
    oh, ow = h - k + 1, w - k + 1
    return np.concatenate([xp[:, u : u + oh, v : v + ow, :] for u in range(k) for v in range(k)], axis=3)


def _col2im(cols: np.ndarray, k: int, c: int, pad: int | None = None) -> np.ndarray:
    """The adjoint of :func:`_im2col`: patches added back into a (b, h, w, c) array."""
    b, oh, ow, _ = cols.shape
    p = k // 2 if pad is None else pad
    h, w = oh + k - 1, ow + k - 1  # the padded input's size
    out = np.zeros((b, h, w, c))
    for n, (u, v) in enumerate((u, v) for u in range(k) for v in range(k)):
        out[:, u : u + oh, v : v + ow, :] += cols[:, :, :, n * c : (n + 1) * c]
    return out[:, p : h - p, p : w - p, :]


def _xent_signal(z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The gradient of the mean cross-entropy ``-Σ Y log softmax(z) / batch`` w.r.t. the logits ``z``."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True) * Y.sum(axis=1, keepdims=True) - Y) / len(z)


def _max_pool(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2×2 max-pool of (b, h, w, c) by a reshape, and each entry's share of its window's gradient."""
    b, side, _, c = h.shape
    tiles = h.reshape(b, side // 2, 2, side // 2, 2, c)
    pooled = tiles.max(axis=(2, 4))
    hits = tiles == pooled[:, :, None, :, None, :]
    return pooled, hits / hits.sum(axis=(2, 4), keepdims=True)  # ties split evenly, as eincalc and JAX do


def _unpool(g: np.ndarray, share: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`_max_pool`: each pooled gradient shared among its window's maxima."""
    b, half, _, c = g.shape
    return (share * g.reshape(b, half, 1, half, 1, c)).reshape(b, 2 * half, 2 * half, c)


def bench_cnn(side: int, budget: float, batch: int = 100, pool: str = "avg") -> None:
    """conv 1→6 (3×3), relu, conv 6→16 (3×3), relu, avg- or max-pool 2, dense 64, relu, dense 10; cross-entropy."""
    half = side // 2
    decls = dict(X=f"b 1 {side} {side}", K1="6 1 3 3", c1="6", K2="16 6 3 3", c2="16", W1=f"16 {half} {half} 64",
                 d1="64", W2="64 10", Y="b 10")  # fmt: skip
    text = (
        f"-sum(Y * log_softmax(relu(einsum('bcij,cije->be', avg_pool2d(relu(conv2d(relu(conv2d(X, K1, padding=1) "
        f"+ einsum('c,bcij->bcij', c1, ones('b 6 {side} {side}'))), K2, padding=1) "
        f"+ einsum('c,bcij->bcij', c2, ones('b 16 {side} {side}'))), size=2), W1) + d1) @ W2, axis=1)) / {batch}"
    ).replace("avg_pool2d", f"{pool}_pool2d")
    params = ["K1", "c1", "K2", "c2", "W1", "d1", "W2"]
    rng = np.random.default_rng(0)
    shapes = dict(K1=(6, 1, 3, 3), c1=(6,), K2=(16, 6, 3, 3), c2=(16,), W1=(16, half, half, 64), d1=(64,), W2=(64, 10))
    a = {p: rng.normal(size=sh) / np.sqrt(np.prod(sh[1:]) if len(sh) > 1 else 8) for p, sh in shapes.items()}
    a["X"] = rng.normal(size=(batch, 1, side, side))
    a["Y"] = np.eye(10)[rng.integers(0, 10, size=batch)]
    typed(a)
    start = time.perf_counter()
    f = ec.parse(text, **decls)
    grads = [ec.grad(f, p) for p in params]
    fn = ec.compile(grads, sizes={"b": batch})
    setup = time.perf_counter() - start

    def hand() -> list[np.ndarray]:
        """An im2col backward pass, channels last, as one would write it by hand."""
        x = a["X"].transpose(0, 2, 3, 1)
        k1 = a["K1"].transpose(2, 3, 1, 0).reshape(9, 6)
        k2 = a["K2"].transpose(2, 3, 1, 0).reshape(54, 16)
        cols1 = _im2col(x, 3)
        a1 = np.maximum(cols1 @ k1 + a["c1"], 0.0)
        cols2 = _im2col(a1, 3)
        z2 = cols2 @ k2 + a["c2"]
        a2 = np.maximum(z2, 0.0)
        tiles = a2.reshape(batch, half, 2, half, 2, 16)
        if pool == "avg":
            pooled = tiles.mean(axis=(2, 4))  # (b, h/2, w/2, 16)
        else:
            pooled = tiles.max(axis=(2, 4))
            hits = tiles == pooled[:, :, None, :, None, :]
            share = hits / hits.sum(axis=(2, 4), keepdims=True)  # ties split evenly, as eincalc and JAX do
        w1 = a["W1"].transpose(1, 2, 0, 3).reshape(-1, 64)
        flat = pooled.reshape(batch, -1)
        z3 = flat @ w1 + a["d1"]
        h3 = np.maximum(z3, 0.0)
        z = h3 @ a["W2"]
        dz = _xent_signal(z, a["Y"])
        gW2 = h3.T @ dz
        dz3 = (dz @ a["W2"].T) * (z3 > 0)
        gW1, gd1 = flat.T @ dz3, dz3.sum(axis=0)
        dpool = (dz3 @ w1.T).reshape(batch, half, 1, half, 1, 16)
        if pool == "avg":
            dtiles = np.broadcast_to(dpool / 4.0, (batch, half, 2, half, 2, 16))
        else:
            dtiles = share * dpool
        dz2 = dtiles.reshape(batch, side, side, 16) * (z2 > 0)
        gK2, gc2 = cols2.reshape(-1, 54).T @ dz2.reshape(-1, 16), dz2.sum(axis=(0, 1, 2))
        da1 = _col2im(dz2 @ k2.T, 3, 6) * (a1 > 0)
        gK1, gc1 = cols1.reshape(-1, 9).T @ da1.reshape(-1, 6), da1.sum(axis=(0, 1, 2))
        return [
            _kernel_grads(gK1, 3, 1, 6), gc1, _kernel_grads(gK2, 3, 6, 16), gc2,
            gW1.reshape(half, half, 16, 64).transpose(2, 0, 1, 3), gd1, gW2,
        ]  # fmt: skip

    peers = on_libraries(grads, a, sizes={"b": batch})
    if torch is not None:
        F = torch.nn.functional

        def logits(t: dict, leaves: list) -> object:
            K1, c1, K2, c2, W1, d1, W2 = leaves
            h = F.relu(F.conv2d(F.relu(F.conv2d(t["X"], K1, c1, padding=1)), K2, c2, padding=1))
            h = F.avg_pool2d(h, 2) if pool == "avg" else F.max_pool2d(h, 2)
            return F.relu(torch.einsum("bcij,cije->be", h, W1) + d1) @ W2

        peers["torch"] = torch_xent_grads(a, params, logits, batch)
    if jax is not None:

        def jloss(K1, c1, K2, c2, W1, d1, W2, X, Y):
            dn = ("NCHW", "OIHW", "NCHW")
            conv = jax.lax.conv_general_dilated
            h = jax.nn.relu(conv(X, K1, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn) + c1[:, None, None])
            h = jax.nn.relu(conv(h, K2, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn) + c2[:, None, None])
            h = h.reshape(batch, 16, half, 2, half, 2)
            h = h.mean(axis=(3, 5)) if pool == "avg" else h.max(axis=(3, 5))
            z = jax.nn.relu(jnp.einsum("bcij,cije->be", h, W1) + d1) @ W2
            return -(Y * jax.nn.log_softmax(z, axis=1)).sum() / batch

        jg = jax.jit(jax.grad(jloss, argnums=tuple(range(7))))
        jargs = [jnp.asarray(a[k]) for k in (*params, "X", "Y")]
        peers["jax"] = lambda: [g.block_until_ready() for g in jg(*jargs)]
    want = hand()
    ok = close(fn(**a), want) and all(close([np.asarray(x) for x in run()], want) for run in live(peers))
    sizes = {"b": batch}
    temp = ec.cost(grads, **sizes).largest_intermediate
    hand_temp = batch * side * side * 54  # the second layer's im2col matrix
    row(f"CNN {side}×{side} b{batch} ({pool}-pool)", hand, lambda: fn(**a), setup, budget, peers,
        f"{temp / hand_temp:.2f}", ok)  # fmt: skip


def _compiled_network(
    text: str, shapes: dict[str, tuple[int, ...]], image: tuple[int, ...], fan_in: dict[str, int], batch: int
) -> tuple[dict[str, np.ndarray], list[str], list[ec.Node], Callable, float]:
    """A classifier's arrays (weights scaled by their fan-in, biases small), its parameters, the gradients of its
    loss ``text`` compiled together, and the seconds derivation and compilation took."""
    decls = {p: " ".join(map(str, sh)) for p, sh in shapes.items()}
    decls.update(X="b " + " ".join(map(str, image)), Y="b 10")
    params = list(shapes)
    rng = np.random.default_rng(0)
    # fan-in scaling: a conv kernel's fan-in is c·k·k (its trailing axes), a dense weight's its leading axes
    a = {p: rng.normal(size=sh) / np.sqrt(fan_in[p]) if p in fan_in else 0.1 * rng.normal(size=sh)
         for p, sh in shapes.items()}  # fmt: skip
    a["X"] = rng.normal(size=(batch, *image))
    a["Y"] = np.eye(10)[rng.integers(0, 10, size=batch)]
    typed(a)
    start = time.perf_counter()
    f = ec.parse(text.format(batch=batch), **decls)
    grads = [ec.grad(f, p) for p in params]
    fn = ec.compile(grads, sizes={"b": batch})
    return a, params, grads, fn, time.perf_counter() - start


def _jax_grads(jloss: Callable, a: dict[str, np.ndarray], params: list[str]) -> Callable:
    """``jax.jit(jax.grad(jloss))`` w.r.t. ``params`` (called with the parameters, then X and Y)."""
    jg = jax.jit(jax.grad(jloss, argnums=tuple(range(len(params)))))
    jargs = [jnp.asarray(a[k]) for k in (*params, "X", "Y")]
    return lambda: [g.block_until_ready() for g in jg(*jargs)]


def _checked_row(
    name: str, hand: Callable, fn: Callable, grads: list[ec.Node], a: dict, peers: dict, hand_temp: int,
    setup: float, budget: float,
) -> None:  # fmt: skip
    """Every framework's gradients checked against the hand-written pass, then the row measured and printed."""
    want = hand()
    ok = close(fn(**a), want) and all(close([np.asarray(x) for x in run()], want) for run in live(peers))
    temp = ec.cost(grads, b=len(a["X"])).largest_intermediate
    row(name, hand, lambda: fn(**a), setup, budget, peers, f"{temp / hand_temp:.2f}", ok)


LENET_TEXT = (
    "-sum(Y * log_softmax(relu(relu(einsum('bcij,cije->be', max_pool2d(relu(conv2d(max_pool2d(relu(conv2d(X, K1) "
    "+ einsum('c,bcij->bcij', c1, ones('b 6 24 24'))), size=2), K2) "
    "+ einsum('c,bcij->bcij', c2, ones('b 16 8 8'))), size=2), W1) + d1) @ W2 + d2) @ W3 + d3, axis=1)) / {batch}"
)
LENET_SHAPES = dict(K1=(6, 1, 5, 5), c1=(6,), K2=(16, 6, 5, 5), c2=(16,), W1=(16, 4, 4, 120), d1=(120,),
                    W2=(120, 84), d2=(84,), W3=(84, 10), d3=(10,))  # fmt: skip


def bench_lenet(budget: float, batch: int = 64) -> None:
    """LeNet-5 on 28×28: conv 5×5 1→6, relu, max-pool 2, conv 5×5 6→16, relu, max-pool 2, dense 120-84-10."""
    fan_in = dict(K1=25, K2=150, W1=256, W2=120, W3=84)
    a, params, grads, fn, setup = _compiled_network(LENET_TEXT, LENET_SHAPES, (1, 28, 28), fan_in, batch)

    def hand() -> list[np.ndarray]:
        """An im2col backward pass, channels last, one matrix product per layer."""
        k1 = a["K1"].transpose(2, 3, 1, 0).reshape(25, 6)  # (offset, channel) rows, as _im2col lays out patches
        k2 = a["K2"].transpose(2, 3, 1, 0).reshape(150, 16)
        w1 = a["W1"].transpose(1, 2, 0, 3).reshape(256, 120)  # rows in the channels-last flattening order
        cols1 = _im2col(a["X"].transpose(0, 2, 3, 1), 5, pad=0)  # (b, 24, 24, 25)
        z1 = cols1 @ k1 + a["c1"]
        p1, share1 = _max_pool(np.maximum(z1, 0.0))  # (b, 12, 12, 6)
        cols2 = _im2col(p1, 5, pad=0)  # (b, 8, 8, 150)
        z2 = cols2 @ k2 + a["c2"]
        p2, share2 = _max_pool(np.maximum(z2, 0.0))  # (b, 4, 4, 16)
        flat = p2.reshape(batch, 256)
        z3 = flat @ w1 + a["d1"]
        h3 = np.maximum(z3, 0.0)
        z4 = h3 @ a["W2"] + a["d2"]
        h4 = np.maximum(z4, 0.0)
        z = h4 @ a["W3"] + a["d3"]
        dz = _xent_signal(z, a["Y"])
        gW3, gd3 = h4.T @ dz, dz.sum(axis=0)
        dz4 = (dz @ a["W3"].T) * (z4 > 0)
        gW2, gd2 = h3.T @ dz4, dz4.sum(axis=0)
        dz3 = (dz4 @ a["W2"].T) * (z3 > 0)
        gW1, gd1 = flat.T @ dz3, dz3.sum(axis=0)
        dz2 = _unpool((dz3 @ w1.T).reshape(batch, 4, 4, 16), share2) * (z2 > 0)
        gK2, gc2 = cols2.reshape(-1, 150).T @ dz2.reshape(-1, 16), dz2.sum(axis=(0, 1, 2))
        dz1 = _unpool(_col2im(dz2 @ k2.T, 5, 6, pad=0), share1) * (z1 > 0)
        gK1, gc1 = cols1.reshape(-1, 25).T @ dz1.reshape(-1, 6), dz1.sum(axis=(0, 1, 2))
        return [
            _kernel_grads(gK1, 5, 1, 6), gc1, _kernel_grads(gK2, 5, 6, 16), gc2,
            gW1.reshape(4, 4, 16, 120).transpose(2, 0, 1, 3), gd1, gW2, gd2, gW3, gd3,
        ]  # fmt: skip

    peers = on_libraries(grads, a, sizes={"b": batch})
    if torch is not None:
        F = torch.nn.functional

        def logits(t: dict, leaves: list) -> object:
            K1, c1, K2, c2, W1, d1, W2, d2, W3, d3 = leaves
            h = F.max_pool2d(F.relu(F.conv2d(t["X"], K1, c1)), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, K2, c2)), 2)
            return F.relu(F.relu(torch.einsum("bcij,cije->be", h, W1) + d1) @ W2 + d2) @ W3 + d3

        peers["torch"] = torch_xent_grads(a, params, logits, batch)
    if jax is not None:

        def jloss(K1, c1, K2, c2, W1, d1, W2, d2, W3, d3, X, Y):
            dn = ("NCHW", "OIHW", "NCHW")
            conv = jax.lax.conv_general_dilated

            def pool(h):
                b, c, side, _ = h.shape
                return h.reshape(b, c, side // 2, 2, side // 2, 2).max(axis=(3, 5))

            h = pool(jax.nn.relu(conv(X, K1, (1, 1), "VALID", dimension_numbers=dn) + c1[:, None, None]))
            h = pool(jax.nn.relu(conv(h, K2, (1, 1), "VALID", dimension_numbers=dn) + c2[:, None, None]))
            z = jax.nn.relu(jax.nn.relu(jnp.einsum("bcij,cije->be", h, W1) + d1) @ W2 + d2) @ W3 + d3
            return -(Y * jax.nn.log_softmax(z, axis=1)).sum() / batch

        peers["jax"] = _jax_grads(jloss, a, params)
    hand_temp = batch * max(24 * 24 * 25, 8 * 8 * 150)  # the larger im2col matrix (the first layer's)
    _checked_row(f"LeNet-5 28×28 b{batch} (max-pool)", hand, fn, grads, a, peers, hand_temp, setup, budget)


VGG_TEXT = (
    "-sum(Y * log_softmax(relu(einsum('bcij,cije->be', max_pool2d(relu(conv2d(max_pool2d(relu(conv2d(relu(conv2d("
    "X, K1, padding=1) + c1[:, None, None]), K2, padding=1) + c2[:, None, None]), size=2), K3, padding=1) "
    "+ c3[:, None, None]), size=2), W1) + d1) @ W2 + d2, axis=1)) / {batch}"
)
VGG_SHAPES = dict(K1=(16, 3, 3, 3), c1=(16,), K2=(16, 16, 3, 3), c2=(16,), K3=(32, 16, 3, 3), c3=(32,),
                  W1=(32, 8, 8, 64), d1=(64,), W2=(64, 10), d2=(10,))  # fmt: skip


def bench_vgg(budget: float, batch: int = 64) -> None:
    """A VGG-style network on 32×32×3 (CIFAR's shape): two 3×3 convolutions 3→16→16, max-pool, 3×3 16→32, max-pool,
    dense 64, dense 10; ReLU, padding 1 (layers with as many output channels as input ones, as VGG's and ResNet's)."""
    fan_in = dict(K1=27, K2=144, K3=144, W1=2048, W2=64)
    a, params, grads, fn, setup = _compiled_network(VGG_TEXT, VGG_SHAPES, (3, 32, 32), fan_in, batch)

    def hand() -> list[np.ndarray]:
        """An im2col backward pass, channels last, one matrix product per layer."""
        k1, k2, k3 = (a[k].transpose(2, 3, 1, 0).reshape(-1, a[k].shape[0]) for k in ("K1", "K2", "K3"))
        w1 = a["W1"].transpose(1, 2, 0, 3).reshape(2048, 64)  # rows in the channels-last flattening order
        cols1 = _im2col(a["X"].transpose(0, 2, 3, 1), 3)  # (b, 32, 32, 27)
        z1 = cols1 @ k1 + a["c1"]
        h1 = np.maximum(z1, 0.0)
        cols2 = _im2col(h1, 3)  # (b, 32, 32, 144)
        z2 = cols2 @ k2 + a["c2"]
        p2, share2 = _max_pool(np.maximum(z2, 0.0))  # (b, 16, 16, 16)
        cols3 = _im2col(p2, 3)  # (b, 16, 16, 144)
        z3 = cols3 @ k3 + a["c3"]
        p3, share3 = _max_pool(np.maximum(z3, 0.0))  # (b, 8, 8, 32)
        flat = p3.reshape(batch, 2048)
        z4 = flat @ w1 + a["d1"]
        h4 = np.maximum(z4, 0.0)
        z = h4 @ a["W2"] + a["d2"]
        dz = _xent_signal(z, a["Y"])
        gW2, gd2 = h4.T @ dz, dz.sum(axis=0)
        dz4 = (dz @ a["W2"].T) * (z4 > 0)
        gW1, gd1 = flat.T @ dz4, dz4.sum(axis=0)
        dz3 = _unpool((dz4 @ w1.T).reshape(batch, 8, 8, 32), share3) * (z3 > 0)
        gK3, gc3 = cols3.reshape(-1, 144).T @ dz3.reshape(-1, 32), dz3.sum(axis=(0, 1, 2))
        dz2 = _unpool(_col2im(dz3 @ k3.T, 3, 16), share2) * (z2 > 0)
        gK2, gc2 = cols2.reshape(-1, 144).T @ dz2.reshape(-1, 16), dz2.sum(axis=(0, 1, 2))
        dz1 = _col2im(dz2 @ k2.T, 3, 16) * (z1 > 0)
        gK1, gc1 = cols1.reshape(-1, 27).T @ dz1.reshape(-1, 16), dz1.sum(axis=(0, 1, 2))
        return [
            _kernel_grads(gK1, 3, 3, 16), gc1, _kernel_grads(gK2, 3, 16, 16), gc2, _kernel_grads(gK3, 3, 16, 32), gc3,
            gW1.reshape(8, 8, 32, 64).transpose(2, 0, 1, 3), gd1, gW2, gd2,
        ]  # fmt: skip

    peers = on_libraries(grads, a, sizes={"b": batch})
    if torch is not None:
        F = torch.nn.functional

        def logits(t: dict, leaves: list) -> object:
            K1, c1, K2, c2, K3, c3, W1, d1, W2, d2 = leaves
            h = F.relu(F.conv2d(F.relu(F.conv2d(t["X"], K1, c1, padding=1)), K2, c2, padding=1))
            h = F.max_pool2d(F.relu(F.conv2d(F.max_pool2d(h, 2), K3, c3, padding=1)), 2)
            return F.relu(torch.einsum("bcij,cije->be", h, W1) + d1) @ W2 + d2

        peers["torch"] = torch_xent_grads(a, params, logits, batch)
    if jax is not None:

        def jloss(K1, c1, K2, c2, K3, c3, W1, d1, W2, d2, X, Y):
            dn = ("NCHW", "OIHW", "NCHW")
            same = ((1, 1), (1, 1))

            def conv(h, K, c):
                return jax.nn.relu(
                    jax.lax.conv_general_dilated(h, K, (1, 1), same, dimension_numbers=dn) + c[:, None, None]
                )

            def pool(h):
                b, ch, side, _ = h.shape
                return h.reshape(b, ch, side // 2, 2, side // 2, 2).max(axis=(3, 5))

            h = pool(conv(pool(conv(conv(X, K1, c1), K2, c2)), K3, c3))
            z = jax.nn.relu(jnp.einsum("bcij,cije->be", h, W1) + d1) @ W2 + d2
            return -(Y * jax.nn.log_softmax(z, axis=1)).sum() / batch

        peers["jax"] = _jax_grads(jloss, a, params)
    hand_temp = batch * 32 * 32 * 144  # the second layer's im2col matrix
    _checked_row(f"VGG-style 32×32×3 b{batch} (max-pool)", hand, fn, grads, a, peers, hand_temp, setup, budget)
