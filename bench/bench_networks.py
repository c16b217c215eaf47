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

import numpy as np
from network_cnns import bench_cnn, bench_lenet, bench_vgg
from network_rows import DTYPE, HEADER, close, jax, jnp, live, on_libraries, row, sizes_of, torch, typed

import eincalc as ec


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
        ("VGG", lambda: bench_vgg(budget)),
        ("HVP", lambda: bench_hvp(budget)),
        ("layer Hessian", lambda: bench_layer_hessian(budget)),
        ("derivation", lambda: bench_derivation([2, 8, 40] if quick else [2, 8, 40, 160])),
    ]
    slow = {"residual 32", "CNN 28x28 avg", "CNN 28x28 max", "LeNet", "VGG"}
    # --only WORD runs the rows whose name contains WORD (case-insensitive), e.g. --only lenet
    only = sys.argv[sys.argv.index("--only") + 1].lower() if "--only" in sys.argv else None
    for name, run in rows:
        if (only is None and not (quick and name in slow)) or (only is not None and only in name.lower()):
            run()
    print("\nratio = eincalc / hand-written backward pass (side by side, best of repeats);")
    print("temp ec/hand = largest temporary of the compiled program over the hand-written sweep's largest array.")


if __name__ == "__main__":
    main()
