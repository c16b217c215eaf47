# %% [markdown]
# # A CNN trained with eincalc's gradients (the Julia CNN study)
#
# conv 3×3 → ReLU → conv 3×3 → ReLU → max-pool 2 → dense → ReLU → dense, softmax
# cross-entropy, trained with Adam from `eincalc.optim` on gradients that eincalc derives
# and compiles (one function: the loss and all eight parameter gradients, its code a
# backward pass with window views and scatters for the convolutions). Two data sets, both
# made here, nothing downloaded:
#
# * scikit-learn's 8×8 digits (1 797 images);
# * a 28×28 set generated from them: each digit enlarged to a 20×20 box (bicubic zoom, as
#   MNIST centres its digits in a 20×20 box), rotated by up to ±12° and placed in a 28×28
#   frame at a random offset of up to ±2 pixels.
#
# The same network, start, batches and optimiser in PyTorch (when installed) give the same
# loss curve to rounding; so do eincalc's derivatives compiled for PyTorch
# (`backend="torch"`: the same program on PyTorch's kernels). The table compares accuracy,
# time per epoch and peak memory.
#
# Set `EINCALC_QUICK=1` for a short run on subsets (the tests do). Run as a script, this
# saves its figures next to itself.

# %%
import ctypes
import os
import sys
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

import eincalc as ec
from eincalc import optim

try:
    import torch
    import torch.nn.functional as tf
except ImportError:  # PyTorch is optional: its column of the comparison is left out
    torch = None

QUICK = os.environ.get("EINCALC_QUICK") == "1"
threadpool_limits(1)  # both frameworks on one thread: the comparison is of the code, not of the cores
if torch is not None:
    torch.set_num_threads(1)


def save(fig, name):
    """Save a figure next to this script when it runs as one (a notebook shows it inline instead)."""
    if "inline" not in matplotlib.get_backend():
        folder = os.environ.get("EINCALC_FIGURES", os.path.dirname(os.path.abspath(__file__)))
        fig.savefig(os.path.join(folder, name), dpi=80, bbox_inches="tight")


# %% [markdown]
# ## The network, in eincalc's NumPy syntax
#
# The first convolution pads by one, the second does not, so the 8×8 images become 6×6
# maps and 3×3 after pooling, the 28×28 ones 26×26 and 13×13. The dense layer reads the
# pooled maps with one einsum (no reshape needed).

# %%
C1, C2, HIDDEN, BATCH = 6, 12, 32, 32
PARAMS = ["K1", "b1", "K2", "b2", "W3", "b3", "W4", "b4"]
FEATURES = (
    "relu(einsum('bcij,cijh->bh', max_pool2d(relu(conv2d(relu(conv2d(X, K1, padding=1) + b1[:, None, None]), K2)"
    " + b2[:, None, None]), size=2), W3) + b3) @ W4 + b4"
)


def network(side):
    """The logits and the mean cross-entropy for ``side``×``side`` images, and the parameter shapes."""
    pooled = (side - 2) // 2
    shapes = dict(K1=(C1, 1, 3, 3), b1=(C1,), K2=(C2, C1, 3, 3), b2=(C2,), W3=(C2, pooled, pooled, HIDDEN),
                  b3=(HIDDEN,), W4=(HIDDEN, 10), b4=(10,))  # fmt: skip
    dims = {name: " ".join(map(str, shape)) for name, shape in shapes.items()}
    logits = ec.parse(FEATURES, X=f"b 1 {side} {side}", **dims)
    loss = ec.parse(
        f"-mean(sum(Y * log_softmax({FEATURES}, axis=1), axis=1))", X=f"b 1 {side} {side}", Y="b 10", **dims
    )
    return logits, loss, shapes


def start(shapes, seed=0):
    """He-initialised weights, zero biases."""
    rng = np.random.default_rng(seed)
    fan_in = dict(K1=9, K2=9 * C1, W3=np.prod(shapes["W3"][:3]), W4=HIDDEN)
    return {
        name: rng.normal(size=shape) * np.sqrt(2 / fan_in[name]) if name in fan_in else np.zeros(shape)
        for name, shape in shapes.items()
    }


logits8, loss8, shapes8 = network(8)
print(ec.signature(loss8))
step8 = ec.compile(ec.value_and_grad(loss8, PARAMS))
print(step8.source[: step8.source.index("import numpy")])  # the docstring: outputs, flops, largest temporary

# %% [markdown]
# ## The data

# %%
digits = load_digits()
rng = np.random.default_rng(0)


def enlarged(images, rng):
    """8×8 digits drawn on 28×28: zoomed to 20×20, rotated by up to ±12°, shifted by up to ±2 pixels."""
    out = np.zeros((len(images), 28, 28))
    for k, image in enumerate(images):
        big = ndimage.rotate(ndimage.zoom(image, 2.5, order=3), rng.uniform(-12, 12), reshape=False, order=1)
        dy, dx = rng.integers(-2, 3, size=2)
        out[k, 4 + dy : 24 + dy, 4 + dx : 24 + dx] = big
    return np.clip(out, 0.0, 1.0)


images8 = digits.images / 16.0
images28 = enlarged(images8, rng)
order = rng.permutation(len(digits.target))
train, test = order[:1500], order[1500:]
if QUICK:
    train, test = train[:384], test[:200]
labels = digits.target
onehot = np.eye(10)[labels]
fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
for k in range(10):
    axes[0, k].imshow(images8[k], cmap="gray_r")
    axes[1, k].imshow(images28[k], cmap="gray_r")
for ax in axes.ravel():
    ax.set_axis_off()
fig.suptitle("scikit-learn's 8×8 digits and the 28×28 set made from them")
save(fig, "cnn_study_data.png")

# %% [markdown]
# ## Training: eincalc and PyTorch from the same start, on the same batches
#
# Max pooling meets ties where an image is blank (equal activations in a window): eincalc
# splits the gradient evenly between the tied entries (as JAX does), PyTorch gives it to the
# first. The tied entries see equal input patches there, so the parameter gradients, and the
# loss curves, agree either way.


# %%
def batches(epoch):
    """The mini-batches of an epoch (the same for both frameworks)."""
    shuffled = np.random.default_rng(epoch).permutation(train)
    return [shuffled[k : k + BATCH] for k in range(0, len(shuffled) - BATCH + 1, BATCH)]


def fit(name, step, accuracy, epochs):
    """Train with ``step(batch) -> loss``; per epoch the test ``accuracy()`` and the seconds the steps took."""
    run = dict(losses=[], accuracy=[], seconds=[], step=step)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        values = [step(b) for b in batches(epoch)]
        run["seconds"].append(time.perf_counter() - t0)
        run["losses"] += values
        run["accuracy"].append(accuracy())
        print(f"  {name} epoch {epoch}: loss {np.mean(values):.4f}, test accuracy {run['accuracy'][-1]:.3f}, "
              f"{run['seconds'][-1]:.2f} s")  # fmt: skip
    run["losses"] = np.array(run["losses"])
    return run


def train_eincalc(images, logits, value_and_grad, params, epochs, lr, name="eincalc"):
    """Adam from eincalc.optim on eincalc's compiled value and gradients."""
    predict = ec.compile(logits)
    opt = optim.Adam(params, lr=lr)
    return fit(
        name, lambda b: float(opt.step(value_and_grad, X=images[b], Y=onehot[b])),
        lambda: np.mean(np.argmax(predict(X=images[test], **opt.params), axis=1) == labels[test]), epochs,
    )  # fmt: skip


def on_torch(loss):
    """The value and gradients compiled for PyTorch, called with NumPy arrays (shared, not copied)."""
    step = ec.compile(ec.value_and_grad(loss, PARAMS), backend="torch")

    def value_and_grad(**arrays):
        return [r.numpy() for r in step(**{k: torch.from_numpy(v) for k, v in arrays.items()})]

    return value_and_grad


def torch_logits(p, x):
    h = torch.relu(tf.conv2d(x, p["K1"], p["b1"], padding=1))
    h = tf.max_pool2d(torch.relu(tf.conv2d(h, p["K2"], p["b2"])), 2)
    return torch.relu(h.flatten(1) @ p["W3"].flatten(0, 2) + p["b3"]) @ p["W4"] + p["b4"]


def train_torch(images, params, epochs, lr):
    """The same network, start, batches and Adam in PyTorch."""
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adam(p.values(), lr=lr)
    X, Y = torch.tensor(images), torch.tensor(onehot)

    def step(b):
        opt.zero_grad()
        loss = -(Y[b] * torch.log_softmax(torch_logits(p, X[b]), dim=1)).sum(dim=1).mean()
        loss.backward()
        opt.step()
        return loss.item()

    def accuracy():
        with torch.no_grad():
            return np.mean(np.argmax(torch_logits(p, X[test]).numpy(), axis=1) == labels[test])

    return fit("PyTorch", step, accuracy, epochs)


# %% [markdown]
# ### 8×8 and 28×28 digits

# %%
EPOCHS, LR = ({8: 3, 28: 1} if QUICK else {8: 8, 28: 3}), 3e-3
runs = {}


def study(side, images, logits, loss, value_and_grad, shapes):
    print(f"{side}×{side} digits")
    data = f"{side}×{side}"
    runs[data, "eincalc"] = train_eincalc(images[:, None], logits, value_and_grad, start(shapes), EPOCHS[side], LR)
    if torch is not None:
        runs[data, "eincalc→torch"] = train_eincalc(images[:, None], logits, on_torch(loss), start(shapes),
                                                    EPOCHS[side], LR, name="eincalc→torch")  # fmt: skip
        runs[data, "PyTorch"] = train_torch(images[:, None], start(shapes), EPOCHS[side], LR)
        for framework in ("eincalc", "eincalc→torch"):
            gap = np.abs(runs[data, framework]["losses"] - runs[data, "PyTorch"]["losses"]).max()
            print(f"largest difference of the loss curves, {framework} and PyTorch: {gap:.1e}")
            assert gap < 1e-10  # the same iterates: eincalc's gradients are PyTorch's to rounding


study(8, images8, logits8, loss8, step8, shapes8)
assert runs["8×8", "eincalc"]["accuracy"][-1] > (0.5 if QUICK else 0.94)

# %%
logits28, loss28, shapes28 = network(28)
study(28, images28, logits28, loss28, ec.compile(ec.value_and_grad(loss28, PARAMS)), shapes28)
assert runs["28×28", "eincalc"]["accuracy"][-1] > (0.2 if QUICK else 0.85)

# %% [markdown]
# ## Peak memory of a training step
#
# The growth of the resident set during one step: Linux's high-water mark (`VmHWM`), reset
# just before. So that it counts what the step allocates, glibc first returns its free
# memory to the system (`malloc_trim`) and maps every allocation over 64 KiB on its own,
# so that freed arrays leave the resident set (`mallopt`; set after the timings, which it
# would change). Both frameworks are measured the same way; off Linux the column is empty.

# %%
LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/clear_refs")


def resident_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def peak_mib(step):
    """The resident-set growth (MiB) while ``step`` takes one training step."""
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the high-water mark to the current resident set
    before = resident_kib("VmRSS")
    step(batches(0)[0])
    return (resident_kib("VmHWM") - before) / 1024


if LINUX:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD, fixed: large frees unmap
for run in runs.values():
    run["memory"] = max(peak_mib(run["step"]) for _ in range(3)) if LINUX else None

# %% [markdown]
# ## Results
#
# Float64, one thread each; time per epoch is the median over the epochs.

# %%
print(f"{'data':<6} {'framework':<13} {'test accuracy':>13} {'s / epoch':>9} {'peak MiB / step':>15}")
for (data, framework), run in runs.items():
    memory = "—" if run["memory"] is None else f"{run['memory']:.1f}"
    print(f"{data:<6} {framework:<13} {run['accuracy'][-1]:>13.3f} {np.median(run['seconds']):>9.2f} {memory:>15}")

LINES = {"eincalc": "-", "eincalc→torch": ":", "PyTorch": "--"}
COLORS = {"eincalc": "C0", "eincalc→torch": "C2", "PyTorch": "C1"}
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
for (data, framework), run in runs.items():
    style = dict(ls=LINES[framework], marker="o" if data == "8×8" else "s")
    smooth = np.convolve(run["losses"], np.ones(10) / 10, mode="valid")  # a running mean over 10 batches
    epochs = (np.arange(len(smooth)) + 10) * EPOCHS[int(data.split("×")[0])] / len(run["losses"])
    axes[0].plot(epochs, smooth, label=f"{data}, {framework}", lw=1.2, ls=style["ls"])
    axes[1].plot(np.arange(1, len(run["accuracy"]) + 1), run["accuracy"], label=f"{data}, {framework}", **style)
axes[0].set_yscale("log")
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("training loss (mean of 10 batches)")
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("test accuracy")
for ax in axes[:2]:
    ax.legend(fontsize=8)
ticks = [f"{data}\n{framework}" for data, framework in runs]
colors = [COLORS[framework] for _, framework in runs]
axes[2].bar(ticks, [np.median(run["seconds"]) for run in runs.values()], color=colors)
axes[2].set_ylabel("seconds per epoch")
axes[3].bar(ticks, [run["memory"] or 0 for run in runs.values()], color=colors)
axes[3].set_ylabel("peak memory of a step [MiB]")
fig.tight_layout()
save(fig, "cnn_study.png")
