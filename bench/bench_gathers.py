"""Integer gathers: compiled gradients against hand-written NumPy, and against the one-hot form.

Two problems users write with labels: softmax cross-entropy ``-sum(log_softmax(Z)[arange(b),
labels])`` (its gradient subtracts 1 at the labels) and an embedding lookup
``sum(tanh(E[tokens] @ w) * y)`` (its gradient scatters rows back into the table). For each,
printed side by side in one run: the hand-written NumPy gradient, eincalc's compiled
gradient, the same gradient computed through a dense one-hot matrix (what the generated
code did before the scatter lowering), and the ratios. All three must agree.

Run: python bench/bench_gathers.py [--quick]
"""

from __future__ import annotations

import sys

import numpy as np
from timing import best_time

import eincalc as ec


def cross_entropy(b: int, k: int, budget: float) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, size=b)
    z = rng.normal(size=(b, k))
    logits = ec.matrix("Z", f"{b} k")
    grad = ec.compile(ec.grad(-ec.sum(ec.log_softmax(logits, axis=1)[np.arange(b), labels]), "Z"))

    def by_hand() -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        g = e / e.sum(axis=1, keepdims=True)
        g[np.arange(b), labels] -= 1.0
        return g

    def one_hot() -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True) - np.eye(k)[labels]

    _report(f"cross-entropy b={b} k={k}", by_hand, lambda: grad(z), one_hot, budget)


def embedding(vocab: int, b: int, d: int, budget: float) -> None:
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, vocab, size=b)
    table, w, y = rng.normal(size=(vocab, d)), rng.normal(size=d), rng.normal(size=b)
    loss = ec.sum(ec.tanh(ec.matrix("E", "v d")[tokens] @ ec.vector("w", "d")) * ec.vector("y", f"{b}"))
    grad = ec.compile(ec.grad(loss, "E"))

    def signal() -> np.ndarray:
        return y * (1.0 - np.tanh(table[tokens] @ w) ** 2)

    def by_hand() -> np.ndarray:
        g = np.zeros_like(table)
        np.add.at(g, tokens, np.outer(signal(), w))
        return g

    def one_hot() -> np.ndarray:
        return np.eye(vocab)[tokens].T @ np.outer(signal(), w)

    _report(f"embedding v={vocab} b={b} d={d}", by_hand, lambda: grad(E=table, w=w, y=y), one_hot, budget)


def _report(name: str, by_hand, compiled, one_hot, budget: float) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(compiled(), by_hand(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one_hot(), by_hand(), rtol=1e-10, atol=1e-12)
    t_hand, t_ec, t_dense = (best_time(f, budget) for f in (by_hand, compiled, one_hot))
    print(
        f"{name:34s} hand {t_hand * 1e3:8.3f} ms   eincalc {t_ec * 1e3:8.3f} ms ({t_ec / t_hand:5.2f}x)   "
        f"one-hot {t_dense * 1e3:8.3f} ms ({t_dense / t_hand:5.2f}x)"
    )


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    budget = 0.2 if quick else 1.0
    cross_entropy(256, 1000 if quick else 10_000, budget)
    embedding(5000 if quick else 50_000, 256, 32, budget)
