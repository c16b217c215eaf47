"""Quickstart: declare an expression, look at it, evaluate it."""

import numpy as np

import eincalc as ec

X = ec.matrix("X", "m", "n")
w = ec.vector("w", "n")
y = ec.vector("y", "m")
f = ec.sum(ec.log(1 + ec.exp(-y * (X @ w))))  # logistic loss

g = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
assert g is f  # the same DAG node: structural sharing

print("f =", f)
print("\nThe DAG, one node per line in *(s1,s2,s3) form:")
print(ec.einsum_form(f))

rng = np.random.default_rng(0)
Xv, wv, yv = rng.normal(size=(5, 3)), rng.normal(size=3), np.sign(rng.normal(size=5))
print("\nf(X, w, y) =", ec.evaluate(f, X=Xv, w=wv, y=yv))
