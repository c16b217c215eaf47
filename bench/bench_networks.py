"""Network code: eincalc's compiled gradients against a hand-written NumPy backward pass.

Each problem is measured side by side in one run: the hand-written backward pass, the
code eincalc generates for all requested derivatives compiled together, their ratio
(eincalc / hand-written; 1.00 is the limit), PyTorch eager and JAX (jit) where installed,
the time to derive and compile, and a check that all agree. The largest temporary of the
compiled program (``ec.cost``) is printed next to the hand-written sweep's. The run
calls ``ec.keep_freed_memory()`` first (``--default-malloc``: not), so every row sees the
same malloc thresholds. The same derivatives compiled for PyTorch and for JAX (under
``jax.jit``) are the ec→torch and ec→jax columns. ``--float32`` runs every row in float32
(every framework), ``--only WORD`` the rows whose name contains WORD.

Run: python bench/bench_networks.py [--quick] [--default-malloc] [--float32] [--only WORD]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from timing import best_time, optional

import eincalc as ec

torch = optional("torch")
jax = optional("jax")
if torch is not None and os.environ.get("OMP_NUM_THREADS"):
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # the same thread budget as NumPy's BLAS
if jax is not None:
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp


# --------------------------------------------------------------------------------------
# networks as eincalc text, NumPy forward/backward passes and peer losses
# --------------------------------------------------------------------------------------
@dataclass
class Net:
    """A dense network: ``widths[0]`` inputs, hidden layers, ``widths[-1]`` outputs."""

    widths: list[int]
    batch: int
    act: str = "tanh"  # or "relu"
    loss: str = "xent"  # softmax cross-entropy, or "mse"

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    def decls(self) -> dict[str, str]:
        d = {"X": "b d0", "Y": f"b d{self.depth}"}
        for k in range(1, self.depth + 1):
            d[f"W{k}"], d[f"b{k}"] = f"d{k - 1} d{k}", f"d{k}"
        return d

    def params(self) -> list[str]:
        return [p for k in range(1, self.depth + 1) for p in (f"W{k}", f"b{k}")]

    def text(self) -> str:
        h = "X"
        for k in range(1, self.depth + 1):
            z = f"{h} @ W{k} + b{k}"
            h = z if k == self.depth else f"{self.act}({z})"
        if self.loss == "xent":
            return f"-sum(Y * log_softmax({h}, axis=1)) / {self.batch}"
        return f"sum(({h} - Y) ** 2) / {self.batch}"

    def expr(self) -> ec.Node:
        """The loss built with operators (deep networks exceed the text parser's nesting limit)."""
        h = ec.tensor("X", ("b", "d0"))
        for k in range(1, self.depth + 1):
            z = h @ ec.tensor(f"W{k}", (f"d{k - 1}", f"d{k}")) + ec.tensor(f"b{k}", (f"d{k}",))
            h = z if k == self.depth else (ec.tanh(z) if self.act == "tanh" else ec.relu(z))
        y = ec.tensor("Y", ("b", f"d{self.depth}"))
        if self.loss == "xent":
            return -ec.sum(y * ec.log_softmax(h, axis=1)) / self.batch
        return ec.sum((h - y) ** 2) / self.batch

    def sizes(self) -> dict[str, int]:
        """The size of every dim: the batch and each layer's width."""
        return {"b": self.batch, **{f"d{k}": w for k, w in enumerate(self.widths)}}

    def arrays(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {"X": rng.normal(size=(self.batch, self.widths[0]))}
        if self.loss == "xent":
            out["Y"] = np.eye(self.widths[-1])[rng.integers(0, self.widths[-1], size=self.batch)]
        else:
            out["Y"] = rng.normal(size=(self.batch, self.widths[-1]))
        for k in range(1, self.depth + 1):
            out[f"W{k}"] = rng.normal(size=(self.widths[k - 1], self.widths[k])) / np.sqrt(self.widths[k - 1])
            out[f"b{k}"] = 0.1 * rng.normal(size=self.widths[k])
        return out

    def hand_grads(self, a: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The hand-written backward pass: each layer's signal once, shared by W and b."""
        hs, pre = [a["X"]], []
        for k in range(1, self.depth + 1):
            z = hs[-1] @ a[f"W{k}"] + a[f"b{k}"]
            pre.append(z)
            hs.append(z if k == self.depth else (np.tanh(z) if self.act == "tanh" else np.maximum(z, 0.0)))
        if self.loss == "xent":
            z = hs[-1] - hs[-1].max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            d = (p * a["Y"].sum(axis=1, keepdims=True) - a["Y"]) / self.batch
        else:
            d = (2.0 / self.batch) * (hs[-1] - a["Y"])
        grads: dict[str, np.ndarray] = {}
        for k in range(self.depth, 0, -1):
            grads[f"W{k}"], grads[f"b{k}"] = hs[k - 1].T @ d, d.sum(axis=0)
            if k > 1:
                d = d @ a[f"W{k}"].T
                d *= (1.0 - hs[k - 1] ** 2) if self.act == "tanh" else (pre[k - 2] > 0)
        return [grads[p] for p in self.params()]

    def largest_hand_temporary(self) -> int:
        """The largest array the hand-written pass holds: a batch of signals or a weight gradient."""
        return max(max(self.batch * w for w in self.widths), max(a * b for a, b in zip(self.widths, self.widths[1:])))

    def peer_loss(self, lib: str) -> Callable:
        """The loss written for PyTorch (``"torch"``) or JAX (``"jax"``), parameters in ``params()`` order."""
        m = torch if lib == "torch" else jnp
        act = (
            (m.tanh if lib == "torch" else jnp.tanh)
            if self.act == "tanh"
            else (torch.relu if lib == "torch" else jax.nn.relu)
        )
        log_softmax = (
            (lambda z: torch.log_softmax(z, dim=1)) if lib == "torch" else (lambda z: jax.nn.log_softmax(z, axis=1))
        )

        def loss(X, Y, *ps):
            h = X
            for k in range(self.depth):
                h = h @ ps[2 * k] + ps[2 * k + 1]
                if k < self.depth - 1:
                    h = act(h)
            if self.loss == "xent":
                return -(Y * log_softmax(h)).sum() / self.batch
            return ((h - Y) ** 2).sum() / self.batch

        return loss


def torch_grads(net: Net, a: dict[str, np.ndarray]) -> Callable[[], list]:
    loss = net.peer_loss("torch")
    X, Y = torch.from_numpy(a["X"]), torch.from_numpy(a["Y"])
    ps = [torch.from_numpy(a[p]).requires_grad_(True) for p in net.params()]

    def run() -> list:
        return list(torch.autograd.grad(loss(X, Y, *ps), ps))

    return run


def jax_grads(net: Net, a: dict[str, np.ndarray]) -> Callable[[], list]:
    loss = net.peer_loss("jax")
    n = len(net.params())
    g = jax.jit(jax.grad(loss, argnums=tuple(range(2, 2 + n))))
    X, Y = jnp.asarray(a["X"]), jnp.asarray(a["Y"])
    ps = [jnp.asarray(a[p]) for p in net.params()]

    def run() -> list:
        return [x.block_until_ready() for x in g(X, Y, *ps)]

    return run


# --------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------
DTYPE = np.dtype(np.float32 if "--float32" in sys.argv else np.float64)
"""Every row's arrays (and so every framework's computation) in this float type; ``--float32`` for training's."""


def typed(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays in :data:`DTYPE` (the dict itself, converted in place)."""
    for k, v in a.items():
        a[k] = v.astype(DTYPE, copy=False)
    return a


def close(got, want) -> bool:
    got = got if isinstance(got, (list, tuple)) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    rtol, atol = (1e-7, 1e-10) if DTYPE == np.float64 else (2e-3, 1e-4)
    return all(np.allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol) for g, w in zip(got, want))


HEADER = (
    f"{'problem':<40} {'hand':>9} {'eincalc':>9} {'ratio':>6} {'ec→torch':>9} {'torch':>9} {'ec→jax':>9} {'jax':>9} "
    f"{'derive+compile':>14} {'temp ec/hand':>13}  check"
)


def on_libraries(outputs: ec.Node | list[ec.Node], a: dict[str, np.ndarray], **options: Any) -> dict[str, Callable]:
    """The same outputs compiled for PyTorch (``backend="torch"``, called on tensors) and for JAX
    (``backend="jax"`` under ``jax.jit``), for the libraries that are installed."""
    runs = {}
    if torch is not None:
        fn = ec.compile(outputs, backend="torch", **options)
        t = {k: torch.from_numpy(v) for k, v in a.items() if k in fn.arg_names}
        runs["ec→torch"] = lambda: fn(**t)
    if jax is not None:
        jfn = ec.compile(outputs, backend="jax", **options)
        traced = jax.jit(jfn)
        j = {k: jnp.asarray(v) for k, v in a.items() if k in jfn.arg_names}
        runs["ec→jax"] = lambda: jax.block_until_ready(traced(**j))
    return runs


def live(peers: dict[str, Callable | None]) -> list[Callable]:
    """The peers that are installed."""
    return [run for run in peers.values() if run is not None]


def row(name: str, hand: Callable, fn: Callable, setup: float, budget: float, peers: dict, temps: str, ok: bool):
    t_hand = best_time(hand, budget)
    t_ec = best_time(fn, budget)
    cells = []
    for lib in ("ec→torch", "torch", "ec→jax", "jax"):
        run = peers.get(lib)
        cells.append(f"{1e3 * best_time(run, budget):>7.3f}ms" if run is not None else f"{'-':>9}")
    print(
        f"{name:<40} {1e3 * t_hand:>7.3f}ms {1e3 * t_ec:>7.3f}ms {t_ec / t_hand:>6.2f} {' '.join(cells)} "
        f"{1e3 * setup:>12.1f}ms {temps:>13}  {'ok' if ok else 'MISMATCH'}",
        flush=True,
    )


def sizes_of(decls: dict[str, str], arrays: dict[str, np.ndarray]) -> dict[str, int]:
    return {d: arrays[v].shape[i] for v, spec in decls.items() for i, d in enumerate(spec.split())}


def bench_gradients(name: str, net: Net, budget: float) -> None:
    start = time.perf_counter()
    f = net.expr()
    grads = [ec.grad(f, p) for p in net.params()]
    a = typed(net.arrays())
    sizes = sizes_of(net.decls(), a)
    fn = ec.compile(grads, sizes=sizes)
    setup = time.perf_counter() - start
    want = net.hand_grads(a)
    peers = on_libraries(grads, a, sizes=sizes)
    if torch is not None:
        peers["torch"] = torch_grads(net, a)
    if jax is not None:
        peers["jax"] = jax_grads(net, a)
    ok = close(fn(**a), want) and all(close([np.asarray(x) for x in run()], want) for run in live(peers))
    temp = ec.cost(grads, **sizes).largest_intermediate
    row(name, lambda: net.hand_grads(a), lambda: fn(**a), setup, budget, peers,
        f"{temp / net.largest_hand_temporary():.2f}", ok)  # fmt: skip


def bench_hidden_bias(budget: float) -> None:
    """A hidden bias's gradient alone (3-layer ReLU MLP): once one einsum through a 131 072-entry temporary."""
    net = Net([64, 128, 32, 10], batch=32, act="relu", loss="mse")
    start = time.perf_counter()
    f = ec.parse(net.text(), **net.decls())
    g = ec.grad(f, "b2")
    a = typed(net.arrays())
    sizes = sizes_of(net.decls(), a)
    fn = ec.compile(g, sizes=sizes)
    setup = time.perf_counter() - start
    k = net.params().index("b2")
    ok = close(fn(**a), net.hand_grads(a)[k])
    temp = ec.cost(g, **sizes).largest_intermediate
    peers = on_libraries(g, a, sizes=sizes)
    ok = ok and all(close(np.asarray(run()), net.hand_grads(a)[k]) for run in live(peers))
    row("ReLU MLP 64-128-32-10 b32: ∂/∂b2", lambda: net.hand_grads(a)[k], lambda: fn(**a), setup, budget, peers,
        f"{temp / net.largest_hand_temporary():.2f}", ok)  # fmt: skip


def bench_residual(depth: int, budget: float, width: int = 64, hidden: int = 128, batch: int = 256) -> None:
    """A residual MLP, h ← h + tanh(h W + b) U per block, squared loss: all gradients."""
    params = [f"{p}{k}" for k in range(depth) for p in ("W", "b", "U")]
    rng = np.random.default_rng(0)
    a = {"X": rng.normal(size=(batch, width)), "Y": rng.normal(size=(batch, width))}
    for k in range(depth):
        a[f"W{k}"] = rng.normal(size=(width, hidden)) / np.sqrt(width)
        a[f"b{k}"] = 0.1 * rng.normal(size=hidden)
        a[f"U{k}"] = rng.normal(size=(hidden, width)) / np.sqrt(hidden * depth)
    typed(a)
    start = time.perf_counter()
    h = ec.tensor("X", ("b", "w"))
    for k in range(depth):
        W, b, U = ec.tensor(f"W{k}", ("w", "v")), ec.tensor(f"b{k}", ("v",)), ec.tensor(f"U{k}", ("v", "w"))
        h = h + ec.tanh(h @ W + b) @ U
    f = ec.sum((h - ec.tensor("Y", ("b", "w"))) ** 2) / batch
    grads = [ec.grad(f, p) for p in params]
    sizes = {"b": batch, "w": width, "v": hidden}
    fn = ec.compile(grads, sizes=sizes)
    setup = time.perf_counter() - start

    def hand() -> list[np.ndarray]:
        hs, ts = [a["X"]], []
        for k in range(depth):
            ts.append(np.tanh(hs[-1] @ a[f"W{k}"] + a[f"b{k}"]))
            hs.append(hs[-1] + ts[-1] @ a[f"U{k}"])
        d, g = (2.0 / batch) * (hs[-1] - a["Y"]), {}
        for k in reversed(range(depth)):
            g[f"U{k}"] = ts[k].T @ d
            dt = (d @ a[f"U{k}"].T) * (1.0 - ts[k] ** 2)
            g[f"W{k}"], g[f"b{k}"] = hs[k].T @ dt, dt.sum(axis=0)
            d = d + dt @ a[f"W{k}"].T
        return [g[p] for p in params]

    def peer_loss(m, tanh):
        def loss(X, Y, *ps):
            h = X
            for k in range(depth):
                h = h + tanh(h @ ps[3 * k] + ps[3 * k + 1]) @ ps[3 * k + 2]
            return ((h - Y) ** 2).sum() / batch

        return loss

    peers = on_libraries(grads, a, sizes=sizes)
    if torch is not None:
        tloss = peer_loss(torch, torch.tanh)
        tX, tY = torch.from_numpy(a["X"]), torch.from_numpy(a["Y"])
        tps = [torch.from_numpy(a[p]).requires_grad_(True) for p in params]
        peers["torch"] = lambda: list(torch.autograd.grad(tloss(tX, tY, *tps), tps))
    if jax is not None:
        jg = jax.jit(jax.grad(peer_loss(jnp, jnp.tanh), argnums=tuple(range(2, 2 + len(params)))))
        jX, jY, jps = jnp.asarray(a["X"]), jnp.asarray(a["Y"]), [jnp.asarray(a[p]) for p in params]
        peers["jax"] = lambda: [x.block_until_ready() for x in jg(jX, jY, *jps)]
    want = hand()
    ok = close(fn(**a), want) and all(close([np.asarray(x) for x in run()], want) for run in live(peers))
    temp = ec.cost(grads, **sizes).largest_intermediate
    row(f"residual tanh MLP depth {depth} (64-128) b{batch}", hand, lambda: fn(**a), setup, budget, peers,
        f"{temp / (batch * hidden):.2f}", ok)  # fmt: skip


def bench_hvp(budget: float) -> None:
    """Hessian-vector product w.r.t. W1 of a 2-layer tanh MLP loss (no Hessian formed)."""
    net = Net([64, 256, 10], batch=256)
    decls = {**net.decls(), "V": "d0 d1"}
    start = time.perf_counter()
    f = ec.parse(net.text(), **decls)
    hv = ec.grad(ec.sum(ec.grad(f, "W1") * ec.parse("V", V="d0 d1")), "W1")
    a = net.arrays()
    a["V"] = np.random.default_rng(1).normal(size=a["W1"].shape)
    typed(a)
    sizes = sizes_of(decls, a)
    fn = ec.compile(hv, sizes=sizes)
    setup = time.perf_counter() - start
    X, Y, W1, b1, W2, b2, V = (a[k] for k in ("X", "Y", "W1", "b1", "W2", "b2", "V"))
    B = net.batch

    def hand() -> np.ndarray:
        # Pearlmutter's R-operator through the forward and backward pass
        h = np.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        s = Y.sum(axis=1, keepdims=True)
        dz = (p * s - Y) / B
        ra = X @ V
        one = 1.0 - h * h
        rh = one * ra
        rz = rh @ W2
        rdz = s * p * (rz - (p * rz).sum(axis=1, keepdims=True)) / B
        return X.T @ ((rdz @ W2.T) * one - 2.0 * (dz @ W2.T) * h * rh)

    peers = on_libraries(hv, a, sizes=sizes)
    if jax is not None:
        loss = net.peer_loss("jax")
        args = [jnp.asarray(a[p]) for p in ("X", "Y", *net.params())]

        def jloss(w1):
            return loss(args[0], args[1], w1, *args[3:])

        jhvp = jax.jit(lambda w1, v: jax.jvp(jax.grad(jloss), (w1,), (v,))[1])
        jw1, jv = jnp.asarray(W1), jnp.asarray(V)
        peers["jax"] = lambda: jhvp(jw1, jv).block_until_ready()
    if torch is not None:
        tloss = net.peer_loss("torch")
        targs = [torch.from_numpy(a[p]) for p in ("X", "Y", *net.params())]
        tV = torch.from_numpy(V)

        def torch_hvp() -> object:
            w1 = targs[2].clone().requires_grad_(True)
            (g,) = torch.autograd.grad(tloss(targs[0], targs[1], w1, *targs[3:]), w1, create_graph=True)
            return torch.autograd.grad((g * tV).sum(), w1)[0]

        peers["torch"] = torch_hvp
    ok = close(fn(**{k: a[k] for k in fn.arg_names}), hand())
    ok = ok and all(close(np.asarray(run()), hand()) for run in live(peers))
    temp = ec.cost(hv, **sizes).largest_intermediate
    row("tanh MLP 64-256-10 b256: H(W1)·V", hand, lambda: fn(**{k: a[k] for k in fn.arg_names}), setup, budget, peers,
        f"{temp / (B * 256):.2f}", ok)  # fmt: skip


def bench_layer_hessian(budget: float) -> None:
    """Dense Hessian w.r.t. W1 of -sum(Y * log_softmax(tanh(X @ W1) @ W2)), 20-32-10, batch 64, default mode."""
    text = "-sum(Y * log_softmax(tanh(X @ W1) @ W2, axis=1))"
    decls = dict(X="b d", W1="d h", W2="h c", Y="b c")
    rng = np.random.default_rng(0)
    a = dict(X=rng.normal(size=(64, 20)), W1=rng.normal(size=(20, 32)) / 4, W2=rng.normal(size=(32, 10)) / 6,
             Y=np.eye(10)[rng.integers(0, 10, size=64)])  # fmt: skip
    typed(a)
    sizes = sizes_of(decls, a)
    start = time.perf_counter()
    f = ec.parse(text, **decls)
    H = ec.hessian(f, "W1", sizes=sizes)
    fn = ec.compile(H, sizes=sizes, dense=True)
    setup = time.perf_counter() - start
    X, W1, W2, Y = a["X"], a["W1"], a["W2"], a["Y"]

    def hand() -> np.ndarray:
        # H = Σ_b x_b x_bᵀ ⊗ [s_b D_b W2 (diag p_b − p_b p_bᵀ) W2ᵀ D_b + diag(−2 h_b ⊙ (1−h_b²) ⊙ g_b)],
        # D_b = diag(1 − h_b²), s_b = Σ Y_b, g_b = ∂loss/∂h_b
        h = np.tanh(X @ W1)
        z = h @ W2
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        s = Y.sum(axis=1)
        one = 1.0 - h * h
        g = (p * s[:, None] - Y) @ W2.T  # ∂loss/∂h per sample
        A = one[:, :, None] * W2[None]  # (b, h, c): D_b W2
        Ap = A @ p[:, :, None]  # (b, h, 1): D_b W2 p_b
        M = s[:, None, None] * ((A * p[:, None, :]) @ A.transpose(0, 2, 1) - Ap @ Ap.transpose(0, 2, 1))
        M[:, np.arange(h.shape[1]), np.arange(h.shape[1])] += -2.0 * h * one * g
        return np.einsum("bi,bj,bhk->ihjk", X, X, M, optimize=True)

    peers = on_libraries(H, a, sizes=sizes, dense=True)
    if jax is not None:
        args = [jnp.asarray(a[k]) for k in ("X", "W2", "Y")]

        def jloss(w1):
            return -(args[2] * jax.nn.log_softmax(jnp.tanh(args[0] @ w1) @ args[1], axis=1)).sum()

        jh = jax.jit(jax.hessian(jloss))
        jw1 = jnp.asarray(W1)
        peers["jax"] = lambda: jh(jw1).block_until_ready()
    if torch is not None:
        tX, tW2, tY, tW1 = (torch.from_numpy(a[k]) for k in ("X", "W2", "Y", "W1"))

        def tloss(w1):
            return -(tY * torch.log_softmax(torch.tanh(tX @ w1) @ tW2, dim=1)).sum()

        peers["torch"] = lambda: torch.autograd.functional.hessian(tloss, tW1)
    ok = close(fn(**a), hand()) and all(close(np.asarray(run()), hand()) for run in live(peers))
    row("MLP layer Hessian 20-32-10 b64 (dense)", hand, lambda: fn(**a), setup, budget, peers, "-", ok)


def _torch_xent_grads(a: dict[str, np.ndarray], params: list[str], logits: Callable, batch: int) -> Callable:
    """PyTorch autograd's gradients of the mean cross-entropy of ``logits(arrays, leaves)`` w.r.t. ``params``."""
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    leaves = [t[p].clone().requires_grad_(True) for p in params]

    def run() -> list:
        loss = -(t["Y"] * torch.log_softmax(logits(t, leaves), dim=1)).sum() / batch
        return list(torch.autograd.grad(loss, leaves))

    return run


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
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        dz = (p * a["Y"].sum(axis=1, keepdims=True) - a["Y"]) / batch
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

        peers["torch"] = _torch_xent_grads(a, params, logits, batch)
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


LENET_TEXT = (
    "-sum(Y * log_softmax(relu(relu(einsum('bcij,cije->be', max_pool2d(relu(conv2d(max_pool2d(relu(conv2d(X, K1) "
    "+ einsum('c,bcij->bcij', c1, ones('b 6 24 24'))), size=2), K2) "
    "+ einsum('c,bcij->bcij', c2, ones('b 16 8 8'))), size=2), W1) + d1) @ W2 + d2) @ W3 + d3, axis=1)) / {batch}"
)
LENET_SHAPES = dict(K1=(6, 1, 5, 5), c1=(6,), K2=(16, 6, 5, 5), c2=(16,), W1=(16, 4, 4, 120), d1=(120,),
                    W2=(120, 84), d2=(84,), W3=(84, 10), d3=(10,))  # fmt: skip


def bench_lenet(budget: float, batch: int = 64) -> None:
    """LeNet-5 on 28×28: conv 5×5 1→6, relu, max-pool 2, conv 5×5 6→16, relu, max-pool 2, dense 120-84-10."""
    decls = {p: " ".join(map(str, sh)) for p, sh in LENET_SHAPES.items()}
    decls.update(X="b 1 28 28", Y="b 10")
    params = list(LENET_SHAPES)
    rng = np.random.default_rng(0)
    # fan-in scaling: a conv kernel's fan-in is c·k·k (its trailing axes), a dense weight's its leading axes
    fan_in = dict(K1=25, K2=150, W1=256, W2=120, W3=84)
    a = {p: rng.normal(size=sh) / np.sqrt(fan_in[p]) if p in fan_in else 0.1 * rng.normal(size=sh)
         for p, sh in LENET_SHAPES.items()}  # fmt: skip
    a["X"] = rng.normal(size=(batch, 1, 28, 28))
    a["Y"] = np.eye(10)[rng.integers(0, 10, size=batch)]
    typed(a)
    start = time.perf_counter()
    f = ec.parse(LENET_TEXT.format(batch=batch), **decls)
    grads = [ec.grad(f, p) for p in params]
    fn = ec.compile(grads, sizes={"b": batch})
    setup = time.perf_counter() - start

    def max_pool(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """2×2 max-pool of (b, h, w, c) by a reshape, and each entry's share of its window's gradient."""
        b, side, _, c = h.shape
        tiles = h.reshape(b, side // 2, 2, side // 2, 2, c)
        pooled = tiles.max(axis=(2, 4))
        hits = tiles == pooled[:, :, None, :, None, :]
        return pooled, hits / hits.sum(axis=(2, 4), keepdims=True)  # ties split evenly, as eincalc and JAX do

    def unpool(g: np.ndarray, share: np.ndarray) -> np.ndarray:
        b, half, _, c = g.shape
        return (share * g.reshape(b, half, 1, half, 1, c)).reshape(b, 2 * half, 2 * half, c)

    def hand() -> list[np.ndarray]:
        """An im2col backward pass, channels last, one matrix product per layer."""
        k1 = a["K1"].transpose(2, 3, 1, 0).reshape(25, 6)  # (offset, channel) rows, as _im2col lays out patches
        k2 = a["K2"].transpose(2, 3, 1, 0).reshape(150, 16)
        w1 = a["W1"].transpose(1, 2, 0, 3).reshape(256, 120)  # rows in the channels-last flattening order
        cols1 = _im2col(a["X"].transpose(0, 2, 3, 1), 5, pad=0)  # (b, 24, 24, 25)
        z1 = cols1 @ k1 + a["c1"]
        p1, share1 = max_pool(np.maximum(z1, 0.0))  # (b, 12, 12, 6)
        cols2 = _im2col(p1, 5, pad=0)  # (b, 8, 8, 150)
        z2 = cols2 @ k2 + a["c2"]
        p2, share2 = max_pool(np.maximum(z2, 0.0))  # (b, 4, 4, 16)
        flat = p2.reshape(batch, 256)
        z3 = flat @ w1 + a["d1"]
        h3 = np.maximum(z3, 0.0)
        z4 = h3 @ a["W2"] + a["d2"]
        h4 = np.maximum(z4, 0.0)
        z = h4 @ a["W3"] + a["d3"]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        dz = (p * a["Y"].sum(axis=1, keepdims=True) - a["Y"]) / batch
        gW3, gd3 = h4.T @ dz, dz.sum(axis=0)
        dz4 = (dz @ a["W3"].T) * (z4 > 0)
        gW2, gd2 = h3.T @ dz4, dz4.sum(axis=0)
        dz3 = (dz4 @ a["W2"].T) * (z3 > 0)
        gW1, gd1 = flat.T @ dz3, dz3.sum(axis=0)
        dz2 = unpool((dz3 @ w1.T).reshape(batch, 4, 4, 16), share2) * (z2 > 0)
        gK2, gc2 = cols2.reshape(-1, 150).T @ dz2.reshape(-1, 16), dz2.sum(axis=(0, 1, 2))
        dz1 = unpool(_col2im(dz2 @ k2.T, 5, 6, pad=0), share1) * (z1 > 0)
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

        peers["torch"] = _torch_xent_grads(a, params, logits, batch)
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

        jg = jax.jit(jax.grad(jloss, argnums=tuple(range(len(params)))))
        jargs = [jnp.asarray(a[k]) for k in (*params, "X", "Y")]
        peers["jax"] = lambda: [g.block_until_ready() for g in jg(*jargs)]
    want = hand()
    ok = close(fn(**a), want) and all(close([np.asarray(x) for x in run()], want) for run in live(peers))
    temp = ec.cost(grads, b=batch).largest_intermediate
    hand_temp = batch * max(24 * 24 * 25, 8 * 8 * 150)  # the larger im2col matrix (the first layer's)
    row(f"LeNet-5 28×28 b{batch} (max-pool)", hand, lambda: fn(**a), setup, budget, peers,
        f"{temp / hand_temp:.2f}", ok)  # fmt: skip


def bench_derivation(depths: list[int]) -> None:
    """Derivation + compile time of all gradients of a tanh MLP (width 64, squared loss) vs depth, per mode."""
    print(f"\n{'derivation + compile of all gradients':<40} " + " ".join(f"{'depth ' + str(d):>11}" for d in depths))
    for mode in ("auto", "reverse", "forward", "cross_country"):
        cells = []
        for depth in depths:
            if mode != "auto" and mode != "reverse" and depth > 20:
                cells.append(f"{'-':>11}")  # forward and cross-country carry a tangent per weight entry
                continue
            net = Net([64] * (depth + 1), batch=256, loss="mse")
            start = time.perf_counter()
            f = net.expr()
            grads = [ec.grad(f, p, mode=mode) for p in net.params()]
            ec.compile(grads, sizes=net.sizes())
            cells.append(f"{1e3 * (time.perf_counter() - start):>9.0f}ms")
        print(f"{mode:<40} " + " ".join(cells), flush=True)


def main() -> None:
    quick = "--quick" in sys.argv
    budget = 0.2 if quick else 1.0
    # Every row, NumPy's and PyTorch's alike, under the same malloc thresholds: without
    # this the first rows run in a fresh process whose thresholds the later rows raise.
    kept = "--default-malloc" not in sys.argv and ec.keep_freed_memory()
    print(f"peers: torch {'yes' if torch else 'not installed'}, jax {'yes' if jax else 'not installed'}; "
          f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {DTYPE}; "
          f"malloc: {'ec.keep_freed_memory()' if kept else 'default'}")  # fmt: skip
    print(HEADER)
    nets = [
        ("tanh MLP 64-256-256-10 b128 (xent)", Net([64, 256, 256, 10], 128)),
        ("tanh MLP 64-64-64-64-10 b256 (xent)", Net([64, 64, 64, 64, 10], 256)),
        ("tanh MLP depth 8 width 64 b256 (mse)", Net([64] * 9, 256, loss="mse")),
        ("tanh MLP 784-1024-10 b1024 (xent)", Net([784, 1024, 10], 1024)),
        ("ReLU MLP 64-128-32-10 b32 (mse)", Net([64, 128, 32, 10], 32, act="relu", loss="mse")),
    ]
    if quick:
        nets = nets[:3]
    rows: list[tuple[str, Callable[[], None]]] = [
        (name, lambda name=name, net=net: bench_gradients(name, net, budget)) for name, net in nets
    ]
    rows += [
        ("hidden bias", lambda: bench_hidden_bias(budget)),
        ("residual 8", lambda: bench_residual(8, budget)),
        ("residual 32", lambda: bench_residual(32, budget)),
        ("CNN 8x8", lambda: bench_cnn(8, budget)),
        ("CNN 28x28 avg", lambda: bench_cnn(28, budget)),
        ("CNN 28x28 max", lambda: bench_cnn(28, budget, pool="max")),
        ("LeNet", lambda: bench_lenet(budget)),
        ("HVP", lambda: bench_hvp(budget)),
        ("layer Hessian", lambda: bench_layer_hessian(budget)),
        ("derivation", lambda: bench_derivation([2, 8, 40] if quick else [2, 8, 40, 160])),
    ]
    slow = {"residual 32", "CNN 28x28 avg", "CNN 28x28 max", "LeNet"}
    # --only WORD runs the rows whose name contains WORD (case-insensitive), e.g. --only lenet
    only = sys.argv[sys.argv.index("--only") + 1].lower() if "--only" in sys.argv else None
    for name, run in rows:
        if (only is None and not (quick and name in slow)) or (only is not None and only in name.lower()):
            run()
    print("\nratio = eincalc / hand-written backward pass (side by side, best of repeats);")
    print("temp ec/hand = largest temporary of the compiled program over the hand-written sweep's largest array.")


if __name__ == "__main__":
    main()
