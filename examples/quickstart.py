"""Quickstart: declare an expression, derive it, look at it, compile it, run it."""

import numpy as np

import eincalc as ec

# Three front ends, one DAG: Python operators, NumPy syntax, the MatrixCalculus.org language.
X = ec.matrix("X", "m", "n")
w = ec.vector("w", "n")
y = ec.vector("y", "m")
f = ec.sum(ec.log(1 + ec.exp(-y * (X @ w))))  # the logistic loss
assert f is ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")  # the same node
assert f is ec.parse("sum(log(exp(-y.*(X*w)) + vector(1)))", dialect="matrixcalculus", X="m n", w="n", y="m")

g = ec.grad(f, "w")
H = ec.hessian(f, "w")
print("f          =", f)
print("∇f         =", g)
print("∇²f        =", H)
print("∇²f, LaTeX =", ec.latex(H))
print("\nThe gradient's DAG, one node per line in *(s1,s2,s3) form:")
print(ec.einsum_form(g))

# Compressed Hessians: ||T - U Vᵀ||² has Hessian 2 δ ⊗ VᵀV in U, a k×k core.
mf = ec.parse("sum((T - U @ V.T) ** 2)", T="m n", U="m k", V="n k")
print("\nHessian of ||T - U V'||² in U:", repr(ec.hessian(mf, "U")))
print("cost at m=n=1000, k=10:", ec.cost(ec.hessian(mf, "U"), m=1000, n=1000, k=10))

# Compile value, gradient and Hessian into one function; shared work is computed once.
fn = ec.compile([f, g, H])
print("\nGenerated code:\n")
print(fn.source)

rng = np.random.default_rng(0)
Xv, wv, yv = rng.normal(size=(50, 3)), rng.normal(size=3), np.sign(rng.normal(size=50))
value, grad, hess = fn(X=Xv, w=wv, y=yv)
h = 1e-6  # an independent check: central differences of the value
fd = np.array([(fn(X=Xv, w=wv + h * e, y=yv)[0] - fn(X=Xv, w=wv - h * e, y=yv)[0]) / (2 * h) for e in np.eye(3)])
print(f"f = {value:.6f}, |∇f - finite differences| = {np.max(np.abs(grad - fd)):.1e}")
assert np.allclose(grad, fd, rtol=1e-6, atol=1e-8)
