"""What every row of the network bench shares: the peers, the float type, the checks and the printed row.

``network_rows.row`` measures the hand-written pass, eincalc's code and the peers side by
side and prints one line; ``on_libraries`` compiles the same derivatives for PyTorch and
JAX. Used by :mod:`bench_networks` (dense networks, Hessians, derivation time) and
:mod:`network_cnns` (convolutional networks).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from timing import best_time, optional

import eincalc as ec

torch = optional("torch")
jax = optional("jax")
if torch is not None and os.environ.get("OMP_NUM_THREADS"):
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # the same thread budget as NumPy's BLAS
jnp = None  # jax.numpy, when JAX is installed
if jax is not None:
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp


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


def torch_xent_grads(a: dict[str, np.ndarray], params: list[str], logits: Callable, batch: int) -> Callable:
    """PyTorch autograd's gradients of the mean cross-entropy of ``logits(arrays, leaves)`` w.r.t. ``params``."""
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    leaves = [t[p].clone().requires_grad_(True) for p in params]

    def run() -> list:
        loss = -(t["Y"] * torch.log_softmax(logits(t, leaves), dim=1)).sum() / batch
        return list(torch.autograd.grad(loss, leaves))

    return run
