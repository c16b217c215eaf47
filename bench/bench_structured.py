"""Structured Hessians against their hand-written forms, measured side by side in one run.

* the ridge-regularised matrix-factorisation Newton step, δ ⊗ (2VᵀV + 0.2 I): eincalc's
  compiled gradient and compressed Hessian with ``.solve`` against the same step written
  by hand (gradient, k×k solve), both checked against the closed form
  ``U = T V (VᵀV + 0.1 I)⁻¹`` (the dense Hessian would be (nk)² entries);
* the logistic-regression Hessian Xᵀ diag(s(1−s)) X against the hand-written scaled
  ``syrk`` form ``Xs.T @ Xs``;
* the softmax-regression Newton step (n samples, d features, c classes; n < dc): the
  structured Hessian (block-diagonal per class plus a rank-n Gram term, solved by
  Woodbury) against forming the dense (dc) × (dc) Hessian and solving it;
* the Newton step of ridge matrix least squares ‖AXB − C‖² + 0.1‖X‖², a Kronecker
  product plus a multiple of the identity, against the same eigenvector solve by hand.

Ratios are eincalc / hand-written (1.00 is the limit). Run: python bench/bench_structured.py [--quick]
"""

from __future__ import annotations

import sys

import numpy as np
from timing import best_time

import eincalc as ec

QUICK = "--quick" in sys.argv
BUDGET = 0.3 if QUICK else 1.0


def row(name: str, ours: float, theirs: float, what: str) -> None:
    print(f"{name:<44} eincalc {ours * 1e3:9.2f} ms   {what} {theirs * 1e3:9.2f} ms   ratio {ours / theirs:5.2f}")


def ridge_factorisation(rng: np.random.Generator) -> None:
    n, m, k = (20_000, 200, 10) if QUICK else (100_000, 200, 10)
    f = ec.parse("sum((T - U @ V.T) ** 2) + 0.1 * sum(U ** 2)", T="n m", U="n k", V="m k")
    code = ec.compile([ec.grad(f, "U"), ec.hessian(f, "U")])
    T, U, V = rng.normal(size=(n, m)), rng.normal(size=(n, k)), rng.normal(size=(m, k))

    def ours() -> np.ndarray:
        g, H = code(T=T, U=U, V=V)
        return U - H.solve(g)

    def hand() -> np.ndarray:  # the hand-written Newton step: the gradient, then the k×k solve
        g = 0.2 * U - 2.0 * ((T - U @ V.T) @ V)
        return U - np.linalg.solve(2.0 * (V.T @ V) + 0.2 * np.eye(k), g.T).T

    closed = np.linalg.solve(V.T @ V + 0.1 * np.eye(k), (T @ V).T).T  # T V (VᵀV + 0.1 I)⁻¹
    np.testing.assert_allclose(ours(), closed, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(hand(), closed, rtol=1e-8, atol=1e-10)
    dense_entries = (n * k) ** 2
    row(f"ridge factorisation Newton step n={n:,} k={k}", best_time(ours, BUDGET), best_time(hand, BUDGET), "by hand")
    print(f"{'':<44} (the dense Hessian would hold {dense_entries:.1e} entries, {dense_entries * 8 / 1e9:.0f} GB)")


def logistic_hessian(rng: np.random.Generator) -> None:
    m, n = (2000, 500) if QUICK else (5000, 1000)
    f = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", y="m", w="n")
    code = ec.compile(ec.hessian(f, "w"))
    X, y, w = rng.normal(size=(m, n)), np.sign(rng.normal(size=m)), 0.01 * rng.normal(size=n)

    def hand() -> np.ndarray:
        s = 1 / (1 + np.exp(-y * (X @ w)))
        Xs = X * np.sqrt(s * (1 - s))[:, None]
        return Xs.T @ Xs

    np.testing.assert_allclose(code(X=X, y=y, w=w), hand(), rtol=1e-9, atol=1e-9)
    ours = best_time(lambda: code(X=X, y=y, w=w), BUDGET)
    row(f"logistic Hessian {m}x{n}", ours, best_time(hand, BUDGET), "syrk form")


def softmax_regression(rng: np.random.Generator) -> None:
    n, d, c = (100, 100, 10) if QUICK else (200, 300, 10)
    f = ec.parse("-sum(Y * log_softmax(X @ W, axis=1)) + 0.05 * sum(W ** 2)", Y="n c", X="n d", W="d c")
    code = ec.compile([ec.grad(f, "W"), ec.hessian(f, "W")])
    X, W = rng.normal(size=(n, d)), 0.1 * rng.normal(size=(d, c))
    Y = np.eye(c)[rng.integers(0, c, n)]

    def ours() -> np.ndarray:
        g, H = code(X=X, W=W, Y=Y)
        return H.solve(g)

    def dense() -> np.ndarray:  # the hand-written Newton step: form Σ_s x xᵀ ⊗ (diag p − p pᵀ), solve
        z = X @ W
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = X.T @ (p - Y) + 0.1 * W
        L = (X[:, :, None] * p[:, None, :]).reshape(n, d * c)
        H = -(L.T @ L)
        blocks = np.einsum("sa,sc,sb->bac", X, X, p)
        H4 = H.reshape(d, c, d, c)
        for b in range(c):
            H4[:, b, :, b] += blocks[b] + 0.1 * np.eye(d)
        return np.linalg.solve(H, g.ravel()).reshape(d, c)

    np.testing.assert_allclose(ours(), dense(), rtol=1e-7, atol=1e-9)
    row(f"softmax regression Newton step n={n} d={d} c={c}", best_time(ours, BUDGET), best_time(dense, BUDGET), "dense")


def matrix_least_squares(rng: np.random.Generator) -> None:
    n, m, p, q = (100, 80, 150, 120) if QUICK else (300, 200, 400, 300)
    f = ec.parse("sum((A @ X @ B - C) ** 2) + 0.1 * sum(X ** 2)", A="p n", X="n m", B="m q", C="p q")
    code = ec.compile([ec.grad(f, "X"), ec.hessian(f, "X")])
    A, B, C = rng.normal(size=(p, n)), rng.normal(size=(m, q)), rng.normal(size=(p, q))
    X = rng.normal(size=(n, m))

    def ours() -> np.ndarray:
        g, H = code(A=A, X=X, B=B, C=C)
        return X - H.solve(g)

    def hand() -> np.ndarray:  # (2 AᵀA ⊗ BBᵀ + 0.2 I) vec(S) = vec(G) through the eigenvectors of AᵀA, BBᵀ
        g = 2 * A.T @ (A @ X @ B - C) @ B.T + 0.2 * X
        la, qa = np.linalg.eigh(A.T @ A)
        lb, qb = np.linalg.eigh(B @ B.T)
        return X - qa @ ((qa.T @ g @ qb) / (2 * np.multiply.outer(la, lb) + 0.2)) @ qb.T

    np.testing.assert_allclose(ours(), hand(), rtol=1e-7, atol=1e-9)
    row(f"matrix least squares Newton step {n}x{m}", best_time(ours, BUDGET), best_time(hand, BUDGET), "by hand")
    print(f"{'':<44} (the dense Hessian would hold {(n * m) ** 2:.1e} entries)")


def main() -> None:
    rng = np.random.default_rng(0)
    ridge_factorisation(rng)
    logistic_hessian(rng)
    softmax_regression(rng)
    matrix_least_squares(rng)


if __name__ == "__main__":
    main()
