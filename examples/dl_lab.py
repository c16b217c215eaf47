# %% [markdown]
# # The deep-learning lab, with eincalc
#
# The exercises of an introductory deep-learning lab, done with eincalc's exact derivatives
# and `eincalc.optim`:
#
# 1. the gradient and Hessian of $3x^3 - y^2$;
# 2. $\sin(x)e^x$: analytic derivative vs eincalc vs finite differences as the step shrinks;
# 3. gradient descent on generated functions of growing dimension;
# 4. momentum and Nesterov momentum vs plain gradient descent;
# 5. a cross-entropy (with clipped probabilities) trained with clipped gradients;
# 6. a scaled mean squared error, and how the scale changes training.
#
# Set `EINCALC_QUICK=1` for a short run (dimensions up to 100 in part 3; the tests do). Run as
# a script, this saves its figures next to itself.

# %%
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes, load_digits

import eincalc as ec
from eincalc import optim


def save(fig, name):
    """Save a figure next to this script when it runs as one (a notebook shows it inline instead)."""
    if "inline" not in matplotlib.get_backend():
        folder = os.environ.get("EINCALC_FIGURES", os.path.dirname(os.path.abspath(__file__)))
        fig.savefig(os.path.join(folder, name), dpi=80, bbox_inches="tight")


# %% [markdown]
# ## 1. $f(x, y) = 3x^3 - y^2$
#
# $\nabla f = (9x^2, -2y)$ and $\nabla^2 f = \mathrm{diag}(18x, -2)$: a saddle at the origin
# along $y$, flat along $x$.

# %%
f = ec.parse("3 * x**3 - y**2", x="", y="")
print("∂f/∂x =", ec.grad(f, "x"), "  ∂f/∂y =", ec.grad(f, "y"))
derivatives = ec.compile([*ec.grad(f, ["x", "y"]), ec.derivative(f, "x", order=2), ec.derivative(f, "y", order=2)])
for px, py in [(1.0, 2.0), (-0.5, 3.0), (2.0, -1.5)]:
    gx, gy, hxx, hyy = (float(v) for v in derivatives(px, py))
    assert (gx, gy, hxx, hyy) == (9 * px**2, -2 * py, 18 * px, -2.0)
mixed = float(ec.evaluate(ec.derivative(f, ["x", "y"]), x=1.0, y=2.0))
assert mixed == 0.0
print("gradient (9x², -2y) and Hessian diag(18x, -2) at three points: exact")

grid = np.linspace(-1.5, 1.5, 21)
GX, GY = np.meshgrid(grid, grid)
# the same function summed over n points: its gradient is the gradient at every point at once
field = ec.compile(ec.grad(ec.parse("sum(3 * x**3 - y**2)", x="n", y="n"), ["x", "y"]))
U, V = (component.reshape(GX.shape) for component in field(GX.ravel(), GY.ravel()))
fig, ax = plt.subplots(figsize=(5, 4))
ax.contour(GX, GY, 3 * GX**3 - GY**2, levels=20, cmap="viridis")
ax.quiver(GX, GY, U, V, angles="xy", color="0.3")
ax.set_title("3x³ − y² and its gradient field")
save(fig, "dl_lab_saddle.png")

# %% [markdown]
# ## 2. $\sin(x)e^x$: analytic, eincalc and finite differences
#
# The analytic derivative is $e^x(\sin x + \cos x)$. eincalc's is exact up to rounding;
# finite differences trade truncation error ($O(h)$ forward, $O(h^2)$ central) for rounding
# error ($O(\varepsilon/h)$), so their error is smallest at a middle step.

# %%
g = ec.parse("sin(x) * exp(x)", x="n")
dg = ec.compile(ec.grad(ec.sum(g), "x"))  # the derivative at every point of a vector at once
xs = np.linspace(-3, 3, 201)
analytic = np.exp(xs) * (np.sin(xs) + np.cos(xs))


def rmse(a):
    return float(np.sqrt(np.mean((a - analytic) ** 2)))


def sin_exp(z):
    return np.sin(z) * np.exp(z)


steps = np.logspace(-1, -13, 25)
central = [rmse((sin_exp(xs + h) - sin_exp(xs - h)) / (2 * h)) for h in steps]
forward = [rmse((sin_exp(xs + h) - sin_exp(xs)) / h) for h in steps]
exact = rmse(dg(xs))
best = steps[int(np.argmin(central))]
print(f"eincalc RMSE {exact:.1e}; central differences best {min(central):.1e} at h = {best:.0e}")
print(f"forward differences best {min(forward):.1e} at h = {steps[int(np.argmin(forward))]:.0e}")
assert exact < 1e-14
assert 1e-7 < best < 1e-3 and min(central) > 100 * exact  # no step gets close to the exact derivative
assert central[0] > 1e-3 and central[-1] > 1e-4  # truncation at large steps, rounding at small ones
assert min(forward) > min(central)

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(steps, central, "o-", label="central differences")
ax.loglog(steps, forward, "s-", label="forward differences")
ax.axhline(max(exact, 1e-16), color="k", ls="--", label=f"eincalc (RMSE {exact:.0e}, no step)")
ax.invert_xaxis()
ax.set_xlabel("step h")
ax.set_ylabel("RMSE vs eˣ(sin x + cos x) on [−3, 3]")
ax.legend()
ax.set_title("d/dx sin(x)eˣ")
save(fig, "dl_lab_finite_differences.png")

# %% [markdown]
# ## 3. Gradient descent on generated functions of growing dimension
#
# $f(x) = \tfrac12 x^\top A x - b^\top x + \sum_i \log\cosh x_i$ with $A$ a random symmetric
# positive definite matrix of condition number 20, for $n = 2 \ldots 1000$. One compiled
# gradient serves every $n$ (dims are symbolic). The step is $1/L$ with $L = \lambda_{\max}(A) + 1$;
# convergence is checked against the optimality condition $Ax + \tanh x = b$ in plain NumPy.

# %%
quadratic = ec.parse("0.5 * x @ A @ x - b @ x + sum(log(cosh(x)))", A="n n", b="n", x="n")
value_grad = ec.compile(ec.value_and_grad(quadratic, ["x"]))
rng = np.random.default_rng(0)
dimensions = [2, 10, 100] if os.environ.get("EINCALC_QUICK") == "1" else [2, 10, 100, 1000]
curves = {}
for n in dimensions:
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eigenvalues = np.linspace(1, 20, n)
    A = (Q * eigenvalues) @ Q.T
    b = rng.normal(size=n)
    descent = optim.SGD({"x": np.zeros(n)}, lr=1 / (eigenvalues[-1] + 1))
    curves[n] = [float(descent.step(value_grad, A, b)) for _ in range(250)]
    x = descent.params["x"]
    residual = np.linalg.norm(A @ x + np.tanh(x) - b) / np.linalg.norm(b)
    print(f"n = {n:4d}: f = {curves[n][-1]: .6f}, relative residual of Ax + tanh x = b: {residual:.1e}")
    assert residual < 1e-8

fig, ax = plt.subplots(figsize=(6, 4))
for n, curve in curves.items():
    gap = np.array(curve) - curve[-1]
    ax.semilogy(np.where(gap > 1e-13, gap, np.nan), label=f"n = {n}")  # below 1e-13: rounding noise
ax.set_xlabel("iteration")
ax.set_ylabel("f(x_k) − f(x_final)")
ax.legend()
ax.set_title("gradient descent, step 1/L, condition number 20")
save(fig, "dl_lab_dimensions.png")

# %% [markdown]
# ## 4. Momentum and Nesterov vs plain gradient descent
#
# On an ill-conditioned quadratic (condition number $\kappa = 1000$), plain descent with step
# $1/L$ shrinks the error by $1 - 1/\kappa$ per step; heavy-ball momentum with
# $\mu = ((\sqrt\kappa - 1)/(\sqrt\kappa + 1))^2$ and step $(2/(\sqrt L + \sqrt m))^2$ by about
# $(\sqrt\kappa - 1)/(\sqrt\kappa + 1)$; Nesterov's momentum with step $1/L$ sits between.

# %%
n, kappa = 50, 1000.0
Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
eigenvalues = np.geomspace(1, kappa, n)
A, b = (Q * eigenvalues) @ Q.T, rng.normal(size=n)
ill = ec.compile(ec.value_and_grad(ec.parse("0.5 * x @ A @ x - b @ x", A="n n", b="n", x="n"), ["x"]))
f_star = -0.5 * b @ np.linalg.solve(A, b)
root = np.sqrt(kappa)
methods = {
    "plain": optim.SGD({"x": np.zeros(n)}, lr=1 / kappa),
    "momentum": optim.SGD(
        {"x": np.zeros(n)}, lr=(2 / (np.sqrt(kappa) + 1)) ** 2, momentum=((root - 1) / (root + 1)) ** 2
    ),
    "Nesterov": optim.SGD({"x": np.zeros(n)}, lr=1 / kappa, momentum=(root - 1) / (root + 1), nesterov=True),
}
gaps = {name: np.array([float(opt.step(ill, A, b)) - f_star for _ in range(400)]) for name, opt in methods.items()}
for name, gap in gaps.items():
    print(f"{name:>9}: f - f* after 100 steps {gap[100]:.1e}, after 400 {gap[-1]:.1e}")
assert gaps["momentum"][-1] < 1e-10 < gaps["plain"][-1] * 1e-3
assert gaps["Nesterov"][-1] < 1e-3 * gaps["plain"][-1]

fig, ax = plt.subplots(figsize=(6, 4))
for name, gap in gaps.items():
    ax.semilogy(np.where(gap > 1e-13, gap, np.nan), label=name)
ax.set_xlabel("iteration")
ax.set_ylabel("f(x_k) − f*")
ax.legend()
ax.set_title(f"quadratic with condition number {kappa:.0f}")
save(fig, "dl_lab_momentum.png")

# %% [markdown]
# ## 5. A cross-entropy with clipped gradients
#
# Softmax regression on scikit-learn's 8×8 digits, "clipped" in the two senses labs use:
#
# * **clipped probabilities** (Keras's cross-entropy): $-\sum Y \log \mathrm{clip}(p, 10^{-7}, 1 - 10^{-7})$.
#   eincalc differentiates through `clip` (slope zero outside the range). The catch: an
#   example the model gets confidently wrong ($p < 10^{-7}$) then contributes *no gradient at
#   all*, so a large learning rate can strand the model. The stable `log_softmax` form has no
#   such dead zone.
# * **clipped gradient norms** (PyTorch's `clip_grad_norm_`, here `optim.clip_grad_norm`):
#   each step is at most `lr · max_norm` long, whatever the gradient.

# %%
digits = load_digits()
X = digits.data / 16.0
Y = np.eye(10)[digits.target]
m = X.shape[0]
losses = {
    "clipped probabilities": ec.parse(
        f"-sum(Y * log(clip(softmax(X @ W + c, axis=1), 1e-7, 1 - 1e-7))) / {m}", X="b d", Y="b k", W="d k", c="k"
    ),
    "log_softmax": ec.parse(f"-sum(Y * log_softmax(X @ W + c, axis=1)) / {m}", X="b d", Y="b k", W="d k", c="k"),
}
ce_grads = {name: ec.compile(ec.value_and_grad(loss, ["W", "c"])) for name, loss in losses.items()}


def numpy_loss(W, c):
    """The clipped-probability cross-entropy in plain NumPy: the finite-difference oracle."""
    z = X @ W + c
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return -np.sum(Y * np.log(np.clip(p, 1e-7, 1 - 1e-7))) / m


W0, c0 = 0.1 * rng.normal(size=(64, 10)), np.zeros(10)
_, weight_grad, _ = ce_grads["clipped probabilities"](X, Y, W0, c0)
for i, j in [(3, 4), (20, 0), (40, 9)]:
    E = np.zeros_like(W0)
    E[i, j] = 1e-6
    fd = (numpy_loss(W0 + E, c0) - numpy_loss(W0 - E, c0)) / 2e-6
    assert abs(fd - weight_grad[i, j]) < 1e-8
print("the clipped cross-entropy's gradient agrees with central differences")


def train_digits(name, lr, max_norm=None, steps=150):
    opt = optim.SGD({"W": np.zeros((64, 10)), "c": np.zeros(10)}, lr=lr)
    values, norms = [], []
    for _ in range(steps):
        value, *grads = ce_grads[name](X, Y, **opt.params)
        if max_norm is not None:
            grads, norm = optim.clip_grad_norm(grads, max_norm)
        else:
            norm = float(np.sqrt(sum(np.sum(g * g) for g in grads)))
        before = dict(opt.params)
        opt.step(grads)
        step_length = np.sqrt(sum(np.sum((opt.params[k] - before[k]) ** 2) for k in before))
        assert max_norm is None or step_length <= lr * max_norm * (1 + 1e-12)
        values.append(float(value))
        norms.append(norm)
    accuracy = np.mean(np.argmax(X @ opt.params["W"] + opt.params["c"], axis=1) == digits.target)
    return values, norms, accuracy


runs = {
    "clipped probabilities, lr 30": train_digits("clipped probabilities", 30.0),
    "log_softmax, lr 30": train_digits("log_softmax", 30.0),
    "log_softmax, lr 30, norm ≤ 0.5": train_digits("log_softmax", 30.0, max_norm=0.5),
}
for label, (values, norms, accuracy) in runs.items():
    print(f"{label:>32}: final loss {values[-1]:.3f}, accuracy {accuracy:.3f}, largest gradient norm {max(norms):.2f}")
stranded, stable, clipped = runs.values()
assert stranded[0][-1] > 1.0 and stranded[2] < 0.8  # stuck: the dead zone of the clipped log
assert stranded[1][-1] < 0.01  # ... because its gradient vanished, not because it converged
assert stable[0][-1] < 0.1 and stable[2] > 0.97 and clipped[0][-1] < 0.1 and clipped[2] > 0.97

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for label, (values, norms, accuracy) in runs.items():
    axes[0].semilogy(values, label=f"{label} (accuracy {accuracy:.2f})")
    axes[1].semilogy(np.maximum(norms, 1e-16), label=label)
axes[0].set_ylabel("cross-entropy")
axes[1].set_ylabel("gradient norm (before clipping)")
for ax in axes:
    ax.set_xlabel("iteration")
axes[0].legend(fontsize=8)
fig.suptitle("softmax regression on digits, SGD with learning rate 30")
save(fig, "dl_lab_clipping.png")

# %% [markdown]
# ## 6. A scaled MSE: how the scale changes training
#
# Multiplying a loss by $s$ multiplies its gradient by $s$. For SGD that is the same as
# multiplying the learning rate by $s$ (checked to 1e-12 below); Adam divides the scale out
# and trains the same whatever $s$ is (up to its $\varepsilon$). A tanh network on
# scikit-learn's diabetes data.

# %%
diabetes = load_diabetes()
Xd = (diabetes.data - diabetes.data.mean(0)) / diabetes.data.std(0)
yd = (diabetes.target - diabetes.target.mean()) / diabetes.target.std()
scaled = ec.parse("s * mean((tanh(X @ W1 + b1) @ w2 - y) ** 2)", s="", X="b d", y="b", W1="d h", b1="h", w2="h")
scaled_grad = ec.compile(ec.value_and_grad(scaled, ["W1", "b1", "w2"]))
init = np.random.default_rng(2)
start = dict(W1=0.3 * init.normal(size=(10, 16)), b1=np.zeros(16), w2=0.3 * init.normal(size=16))
scales = [0.1, 1.0, 10.0]


def train(make, scale, epochs=200):
    opt = make(start)
    return [float(opt.step(scaled_grad, scale, Xd, yd)) / scale for _ in range(epochs)], opt.params


runs = {}
for scale in scales:
    runs["SGD", scale] = train(lambda p: optim.SGD(p, lr=0.02), scale)
    runs["Adam", scale] = train(lambda p: optim.Adam(p, lr=0.01), scale)

# SGD on s·loss with learning rate lr is SGD on loss with learning rate s·lr
same, same_params = train(lambda p: optim.SGD(p, lr=0.02 * 10.0), 1.0)
assert np.abs(np.array(same) - np.array(runs["SGD", 10.0][0])).max() < 1e-12
# Adam hardly notices the scale
adam_spread = max(np.abs(np.array(runs["Adam", s][0]) - np.array(runs["Adam", 1.0][0])).max() for s in scales)
sgd_spread = np.abs(np.array(runs["SGD", 0.1][0]) - np.array(runs["SGD", 1.0][0])).max()
print(f"largest difference between MSE curves across scales: Adam {adam_spread:.1e}, SGD {sgd_spread:.1e}")
assert adam_spread < 1e-4 < sgd_spread

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, name in zip(axes, ("SGD", "Adam")):
    for scale in scales:
        ax.semilogy(runs[name, scale][0], label=f"s = {scale:g}")
    ax.set_title(f"{name} on s · MSE")
    ax.set_xlabel("epoch")
axes[0].set_ylabel("MSE (unscaled)")
axes[0].legend()
save(fig, "dl_lab_scaled_mse.png")
