"""Compiled eincalc code against hand-written NumPy closed forms, measured side by side.

For each problem: the hand-written gradient/Hessian, the compiled one, their ratio
(compiled / hand-written; 1.00 is the limit, below 1 is faster), the time to derive and
compile, and a check that both give the same numbers.

Run: python bench/bench_codegen.py [--quick]
"""

from __future__ import annotations

import sys
import time

import numpy as np
from timing import best_time

import eincalc as ec


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def problems(quick: bool):
    rng = np.random.default_rng(0)
    s = 4 if quick else 1

    n = 1000 // s
    A, x = rng.normal(size=(n, n)), rng.normal(size=n)
    yield (
        "x'Ax gradient",
        "x @ A @ x",
        dict(x="n", A="n n"),
        "x",
        1,
        dict(A=A, x=x),
        lambda: A @ x + A.T @ x,
    )
    yield (
        "x'Ax Hessian",
        "x @ A @ x",
        dict(x="n", A="n n"),
        "x",
        2,
        dict(A=A, x=x),
        lambda: A + A.T,
    )

    m, n = 5000 // s, 1000 // s
    X, w, y = rng.normal(size=(m, n)) / np.sqrt(n), rng.normal(size=n), np.sign(rng.normal(size=m))

    def logreg_grad():
        return -((y * sigmoid(-y * (X @ w))) @ X)

    def logreg_hess():
        p = sigmoid(y * (X @ w))
        return X.T @ (X * (p * (1 - p))[:, None])

    text = "sum(log(1 + exp(-y * (X @ w))))"
    decls = dict(X="m n", w="n", y="m")
    yield "logistic gradient", text, decls, "w", 1, dict(X=X, w=w, y=y), logreg_grad
    yield "logistic Hessian", text, decls, "w", 2, dict(X=X, w=w, y=y), logreg_hess

    m, n, k = 1000 // s, 1000 // s, 10
    T, U, V = rng.normal(size=(m, n)), rng.normal(size=(m, k)), rng.normal(size=(n, k))
    text, decls = "sum((T - U @ V.T) ** 2)", dict(T="m n", U="m k", V="n k")
    yield "factorisation gradient", text, decls, "U", 1, dict(T=T, U=U, V=V), lambda: 2 * (U @ (V.T @ V)) - 2 * (T @ V)
    yield "factorisation Hessian*", text, decls, "U", 2, dict(T=T, U=U, V=V), lambda: 2 * V.T @ V

    b, d, h, c = 256, 784, 128, 10
    Xb = rng.normal(size=(b, d))
    Y = np.eye(c)[rng.integers(0, c, size=b)]
    W1, b1, W2, b2 = rng.normal(size=(d, h)) / 28, np.zeros(h), rng.normal(size=(h, c)) / 11, np.zeros(c)

    def mlp_grads():
        H1 = np.tanh(Xb @ W1 + b1)
        Z = H1 @ W2 + b2
        Z = Z - Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        dZ = P * Y.sum(axis=1, keepdims=True) - Y
        dA = (dZ @ W2.T) * (1 - H1 * H1)
        return Xb.T @ dA, dA.sum(axis=0), H1.T @ dZ, dZ.sum(axis=0)

    text = "-sum(Y * log_softmax(tanh(X @ W1 + b1) @ W2 + b2))"
    decls = dict(X="b d", Y="b c", W1="d h", b1="h", W2="h c", b2="c")
    yield (
        "MLP 784-128-10 gradients",
        text,
        decls,
        ("W1", "b1", "W2", "b2"),
        1,
        dict(X=Xb, Y=Y, W1=W1, b1=b1, W2=W2, b2=b2),
        mlp_grads,
    )

    m, n = 2000 // s, 500 // s
    Xt, At = rng.normal(size=(m, n)), rng.normal(size=(n, n))
    yield (
        "trace(XAXᵀ) gradient",
        "trace(X @ A @ X.T)",
        dict(X="m n", A="n n"),
        "X",
        1,
        dict(X=Xt, A=At),
        lambda: Xt @ (At + At.T),
    )


def main() -> None:
    quick = "--quick" in sys.argv
    budget = 0.3 if quick else 1.5
    print(f"{'problem':<26} {'hand-written':>12} {'eincalc':>12} {'ratio':>7} {'derive+compile':>15}  check")
    for name, text, decls, wrt, order, arrays, hand in problems(quick):
        start = time.perf_counter()
        f = ec.parse(text, **decls)
        wrts = wrt if isinstance(wrt, tuple) else (wrt,)
        outputs = [ec.derivative(f, v, order=order) for v in wrts]
        sizes = {d: np.shape(arrays[v])[i] for v, spec in decls.items() for i, d in enumerate(spec.split())}
        fn = ec.compile(outputs, sizes=sizes)
        setup = time.perf_counter() - start
        args = {k: arrays[k] for k in fn.arg_names}
        got = fn(**args)
        got = got if isinstance(got, (list, tuple)) else (got,)
        want = hand()
        want = want if isinstance(want, tuple) else (want,)
        ok = all(
            np.allclose(g.core if isinstance(g, ec.StructuredTensor) else g, w, rtol=1e-8, atol=1e-8)
            for g, w in zip(got, want)
        )
        t_hand = best_time(hand, budget)
        t_ec = best_time(lambda fn=fn, args=args: fn(**args), budget)
        print(
            f"{name:<26} {1e3 * t_hand:>10.3f}ms {1e3 * t_ec:>10.3f}ms {t_ec / t_hand:>7.2f} "
            f"{1e3 * setup:>13.1f}ms  {'ok' if ok else 'MISMATCH'}"
        )
    print("* compressed: the k×k core 2VᵀV of the (mk)×(mk) Hessian 2 I⊗VᵀV; the call overhead dominates.")


if __name__ == "__main__":
    main()
