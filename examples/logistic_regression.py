"""Logistic regression solved with SciPy's trust-exact, using eincalc's exact gradient and Hessian."""

import numpy as np
import scipy.optimize

import eincalc as ec

f = ec.parse("sum(log(1 + exp(-y * (X @ w)))) + 0.5 * lam * (w @ w)", X="m n", w="n", y="m", lam="")
print("loss     :", f)
print("gradient :", ec.grad(f, "w"))
print("Hessian  :", ec.hessian(f, "w"))

rng = np.random.default_rng(0)
m, n = 2000, 50
X = rng.normal(size=(m, n))
y = np.sign(X @ rng.normal(size=n) + 0.5 * rng.normal(size=m))

obj = ec.objective(f, "w", dict(X=X, y=y, lam=1e-2))
res = scipy.optimize.minimize(obj.fun, np.zeros(n), jac=obj.jac, hess=obj.hess, method="trust-exact")
print(f"\ntrust-exact: {res.nit} iterations, loss {res.fun:.6f}, |grad| = {np.linalg.norm(obj.jac(res.x)):.2e}")
print(f"training accuracy: {np.mean(np.sign(X @ res.x) == y):.3f}")
