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

# The calling convention: a function and every derivative of it take the function's
# arrays, in declaration order (X, w, y: the order the variables were declared above),
# positionally or by keyword. ec.signature shows it.
print("signature of ∇²f:", ec.signature(H))
rng = np.random.default_rng(0)
Xv, wv, yv = rng.normal(size=(50, 3)), rng.normal(size=3), np.sign(rng.normal(size=50))
value, grad, hess = fn(Xv, wv, yv)
h = 1e-6  # an independent check: central differences of the value
fd = np.array([(fn(Xv, wv + h * e, yv)[0] - fn(Xv, wv - h * e, yv)[0]) / (2 * h) for e in np.eye(3)])
print(f"f = {value:.6f}, |∇f - finite differences| = {np.max(np.abs(grad - fd)):.1e}")
assert np.allclose(grad, fd, rtol=1e-6, atol=1e-8)
assert np.allclose(ec.compile(g)(X=Xv, w=wv, y=yv), grad)  # compiled alone: the same arrays, by keyword

# Several variables at once: value and both gradients in one function, in the order asked.
value_and_grads = ec.compile(ec.value_and_grad(mf, ["U", "V"]))
Tv, Uv, Vv = rng.normal(size=(40, 30)), rng.normal(size=(40, 4)), rng.normal(size=(30, 4))
loss, grad_u, grad_v = value_and_grads(Tv, Uv, Vv)
# The Hessian in U reads only V, yet takes (T, U, V) like its function: the m of δ(m) comes from U.
HU = ec.compile(ec.hessian(mf, "U"))(Tv, Uv, Vv)
newton = HU.solve(grad_u)  # a k×k solve; HU @ newton == grad_u
assert np.allclose(HU @ newton, grad_u)

# Directional derivatives are expressions too, and never form a Jacobian or a Hessian:
# forward mode builds the Jacobian a column at a time (jvp), reverse a row at a time (vjp).
layer = ec.parse("tanh(X @ W)", X="m n", W="n k")
sizes = dict(m=1000, n=300, k=20)
print("\nJacobian of tanh(X @ W) in W:", ec.cost(ec.jacobian(layer, "W"), **sizes))
print("J·P  (jvp):                 ", ec.cost(ec.jvp(layer, "W", "P"), **sizes))
print("G·J  (vjp):                 ", ec.cost(ec.vjp(layer, "W", "G"), **sizes))
hvp = ec.hvp(mf, "U", "P")  # ∇²f · P for Newton-CG: 2 P VᵀV
print("∇²f·P of ||T - U V'||²:", hvp)
assert np.allclose(ec.compile(hvp)(Tv, Uv, Vv, newton), grad_u)
