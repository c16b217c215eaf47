# %% [markdown]
# # The automatic-differentiation lecture, with eincalc
#
# Three classic pieces of an AD course, reproduced and checked:
#
# 1. the reverse-accumulation trace of $f = xy + e^{xy}$ at $(1, 2)$;
# 2. a Jacobian built a column at a time by forward mode (`ec.jvp`) and a row at a time by
#    reverse mode (`ec.vjp`), and what each costs as inputs and outputs grow;
# 3. a small network trained with eincalc's gradients and `eincalc.optim`, side by side with
#    PyTorch (when installed): the loss curves are the same.
#
# Run as a script, this saves its figures next to itself.

# %%
import math
import os
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
from sklearn.datasets import make_moons

import eincalc as ec

try:
    import torch

    torch.set_num_threads(1)  # small problems: threads only contend for the cores
except ImportError:  # PyTorch is optional: the side-by-side run is skipped
    torch = None


def save(fig, name):
    """Save a figure next to this script when it runs as one (a notebook shows it inline instead)."""
    if "inline" not in matplotlib.get_backend():
        folder = os.environ.get("EINCALC_FIGURES", os.path.dirname(os.path.abspath(__file__)))
        fig.savefig(os.path.join(folder, name), dpi=80, bbox_inches="tight")


# %% [markdown]
# ## 1. The reverse sweep of $f(x, y) = xy + e^{xy}$ at $(1, 2)$
#
# The forward trace computes $v_2 = xy = 2$, $v_3 = e^{v_2}$, $f = v_3 + v_2 = 2 + e^2$; the
# reverse sweep seeds $\bar f = 1$ and pulls adjoints back: $\bar v_2 = 1 + e^2$, so
# $\partial f/\partial x = y\,\bar v_2 = 2 + 2e^2$ and $\partial f/\partial y = x\,\bar v_2 = 1 + e^2$.

# %%
f = ec.parse("x*y + exp(x*y)", x="", y="")
table = ec.trace_table(f, x=1.0, y=2.0)
print(table)
e2 = math.exp(2)
assert table.rows[-1].value == 2 + e2
assert table.adjoints == {"x": 2 + 2 * e2, "y": 1 + e2}  # exactly, not to a tolerance

# the same numbers from SymPy's symbolic derivative, and from eincalc's gradient expression
x, y = sp.symbols("x y")
fs = x * y + sp.exp(x * y)
assert sp.simplify(sp.diff(fs, x).subs({x: 1, y: 2}) - (2 + 2 * sp.E**2)) == 0
assert sp.simplify(sp.diff(fs, y).subs({x: 1, y: 2}) - (1 + sp.E**2)) == 0
gx, gy = (float(ec.evaluate(ec.grad(f, v), x=1.0, y=2.0)) for v in "xy")
assert math.isclose(gx, 2 + 2 * e2, rel_tol=1e-15) and math.isclose(gy, 1 + e2, rel_tol=1e-15)
print(f"∂f/∂x = 2 + 2e² = {gx:.12f}, ∂f/∂y = 1 + e² = {gy:.12f}")

# %% [markdown]
# ## 2. A Jacobian by columns (forward mode) and by rows (reverse mode)
#
# $F(x) = \sin(B \tanh(Ax))$ maps $\mathbb{R}^n \to \mathbb{R}^m$. One forward sweep seeded
# with $e_j$ gives column $j$ of $J$ (a JVP); one reverse sweep seeded with $e_i$ gives row
# $i$ (a VJP). Each sweep costs about the same as evaluating $F$, so the whole Jacobian costs
# $n$ forward sweeps or $m$ reverse ones: forward mode wins for few inputs, reverse mode for
# few outputs (a gradient is the case $m = 1$).

# %%
A, B, xv = ec.matrix("A", "h n"), ec.matrix("B", "m h"), ec.vector("x", "n")
F = ec.sin(B @ ec.tanh(A @ xv))
column = ec.compile(ec.jvp(F, xv, "v"))  # takes (A, B, x, v): J v
row = ec.compile(ec.vjp(F, xv, "u"))  # takes (A, B, x, u): uᵀ J
print(column.source)


def jacobian_by_columns(A_, B_, x_):
    return np.stack([column(A_, B_, x_, e) for e in np.eye(x_.size)], axis=1)


def jacobian_by_rows(A_, B_, x_):
    return np.stack([row(A_, B_, x_, e) for e in np.eye(B_.shape[0])], axis=0)


rng = np.random.default_rng(0)
hidden = 32
A0, B0, x0 = rng.normal(size=(hidden, 5)) / 3, rng.normal(size=(3, hidden)) / 6, rng.normal(size=5)
J_cols, J_rows = jacobian_by_columns(A0, B0, x0), jacobian_by_rows(A0, B0, x0)
J_dense = ec.evaluate(ec.jacobian(F, xv), A=A0, B=B0, x=x0)
assert J_cols.shape == (3, 5)
assert np.abs(J_cols - J_rows).max() < 1e-15 and np.abs(J_cols - J_dense).max() < 1e-15

# an independent oracle: central differences of F in NumPy
step = 1e-6
J_fd = np.stack(
    [
        (np.sin(B0 @ np.tanh(A0 @ (x0 + step * e))) - np.sin(B0 @ np.tanh(A0 @ (x0 - step * e)))) / (2 * step)
        for e in np.eye(5)
    ],
    axis=1,
)
assert np.abs(J_cols - J_fd).max() < 1e-9
print(f"columns = rows = dense Jacobian; max difference to central differences {np.abs(J_cols - J_fd).max():.1e}")

# %% [markdown]
# The cost as one side grows with the other fixed at 8: flops from eincalc's cost model
# (exact counts of the generated code) and measured time.

# %%
sizes = [2, 4, 8, 16, 32, 64, 128, 256]
fixed = 8


def sweep_flops(expr, **sizes_):
    return ec.cost(expr, **sizes_).flops


def best_time(fn, *args, repeats=3):
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


growing = {"inputs n (m = 8)": [], "outputs m (n = 8)": []}
for size in sizes:
    for label, (n, m) in (("inputs n (m = 8)", (size, fixed)), ("outputs m (n = 8)", (fixed, size))):
        A_, B_, x_ = rng.normal(size=(hidden, n)), rng.normal(size=(m, hidden)), rng.normal(size=n)
        growing[label].append(
            dict(
                forward_flops=n * sweep_flops(ec.jvp(F, xv, "v"), h=hidden, n=n, m=m),
                reverse_flops=m * sweep_flops(ec.vjp(F, xv, "u"), h=hidden, n=n, m=m),
                forward_time=best_time(jacobian_by_columns, A_, B_, x_),
                reverse_time=best_time(jacobian_by_rows, A_, B_, x_),
            )
        )

for label, runs in growing.items():
    print(
        f"{label:>18}: "
        + "  ".join(f"{s}: fwd {r['forward_flops']:.0e} rev {r['reverse_flops']:.0e}" for s, r in zip(sizes, runs))
    )
# forward mode pays per input, reverse mode per output
many_inputs, many_outputs = growing["inputs n (m = 8)"][-1], growing["outputs m (n = 8)"][-1]
assert many_inputs["forward_flops"] > 10 * many_inputs["reverse_flops"]
assert many_outputs["reverse_flops"] > 10 * many_outputs["forward_flops"]

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, (label, runs) in zip(axes, growing.items()):
    ax.loglog(sizes, [1e3 * r["forward_time"] for r in runs], "o-", label="columns by jvp (forward)")
    ax.loglog(sizes, [1e3 * r["reverse_time"] for r in runs], "s-", label="rows by vjp (reverse)")
    ax.set_xlabel(label)
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel("time to build J (ms)")
axes[0].legend()
fig.suptitle("Jacobian of sin(B tanh(Ax)): n forward sweeps vs m reverse sweeps")
save(fig, "ad_lecture_jacobian.png")

# %% [markdown]
# ## 3. A small network, trained with eincalc and with PyTorch
#
# A 2-16-1 tanh network with the logistic loss (written stably as softplus) on scikit-learn's
# two moons, SGD with momentum and a cosine learning-rate schedule from `eincalc.optim`.

# %%
X, labels = make_moons(200, noise=0.2, random_state=0)
Y = labels.astype(float)
logits = "(tanh(X @ W1 + b1) @ w2 + b2)"
loss = ec.parse(f"mean(softplus({logits}) - y * {logits})", X="b d", y="b", W1="d h", b1="h", w2="h", b2="")
params = ["W1", "b1", "w2", "b2"]
train_step = ec.compile(ec.value_and_grad(loss, params))
init_rng = np.random.default_rng(1)
start = dict(W1=init_rng.normal(size=(2, 16)), b1=np.zeros(16), w2=init_rng.normal(size=16) / 4, b2=np.array(0.0))
epochs = 300

opt = ec.optim.SGD(start, lr=0.5, momentum=0.9)
schedule = ec.optim.CosineAnnealingLR(opt, T_max=epochs)
ours = []
for epoch in range(epochs):
    ours.append(float(opt.step(train_step, X, Y)))
    schedule.step()
    if epoch % 100 == 0:
        print(f"epoch {epoch:3d}: loss {ours[-1]:.5f}")
ours = np.array(ours)
W = opt.params
accuracy = np.mean(((np.tanh(X @ W["W1"] + W["b1"]) @ W["w2"] + W["b2"]) > 0) == labels)
print(f"eincalc: final loss {ours[-1]:.5f}, training accuracy {accuracy:.3f}")
assert ours[-1] < 0.1 * ours[0] and accuracy > 0.95

if torch is not None:
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    topt = torch.optim.SGD(tp.values(), lr=0.5, momentum=0.9)
    tschedule = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=epochs)
    theirs = []
    for _ in range(epochs):
        topt.zero_grad()
        z = torch.tanh(Xt @ tp["W1"] + tp["b1"]) @ tp["w2"] + tp["b2"]
        tloss = torch.nn.functional.binary_cross_entropy_with_logits(z, Yt)
        tloss.backward()
        theirs.append(tloss.item())
        topt.step()
        tschedule.step()
    theirs = np.array(theirs)
    gap = np.abs(ours - theirs).max()
    print(f"PyTorch: final loss {theirs[-1]:.5f}; largest difference between the loss curves {gap:.1e}")
    assert gap < 1e-12

fig, ax = plt.subplots(figsize=(6, 3.8))
ax.semilogy(ours, lw=3, label="eincalc + ec.optim")
if torch is not None:
    ax.semilogy(theirs, "--", color="k", label="PyTorch autograd + torch.optim")
ax.set_xlabel("epoch")
ax.set_ylabel("logistic loss")
ax.legend()
ax.set_title("2-16-1 tanh network on two moons: the same loss curve")
save(fig, "ad_lecture_training.png")
