"""The benchmark problems shared by the bench scripts: expressions, sizes and data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import eincalc as ec


@dataclass(frozen=True)
class Problem:
    name: str
    text: str
    decls: dict
    wrt: str
    sizes: dict

    def expr(self) -> ec.Node:
        return ec.parse(self.text, **self.decls)

    def arrays(self, seed: int = 0) -> dict:
        rng = np.random.default_rng(seed)
        out = {}
        for name, spec in self.decls.items():
            shape = tuple(self.sizes[d] for d in spec.split())
            out[name] = rng.normal(size=shape) / np.sqrt(max(shape[-1:] or (1,)))
        if "y" in out and self.name.startswith("logistic"):
            out["y"] = np.sign(out["y"])
        if "Y" in out:
            labels = rng.integers(0, out["Y"].shape[1], size=out["Y"].shape[0])
            out["Y"] = np.eye(out["Y"].shape[1])[labels]
        return out


PROBLEMS = [
    Problem("quadratic x'Ax", "x @ A @ x", dict(x="n", A="n n"), "x", dict(n=1000)),
    Problem(
        "logistic regression", "sum(log(1 + exp(-y * (X @ w))))", dict(X="m n", w="n", y="m"), "w", dict(m=5000, n=1000)
    ),
    Problem(
        "matrix factorisation",
        "sum((T - U @ V.T) ** 2)",
        dict(T="m n", U="m k", V="n k"),
        "U",
        dict(m=1000, n=1000, k=10),
    ),
    Problem(
        "MLP layer",
        "-sum(Y * log_softmax(tanh(X @ W1 + b1) @ W2))",
        dict(X="b d", W1="d h", b1="h", W2="h c", Y="b c"),
        "W2",
        dict(b=256, d=784, h=128, c=10),
    ),
]
