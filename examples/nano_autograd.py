# %% [markdown]
# # Nano-AutoGrad's training stack, with eincalc
#
# MLPs on scikit-learn's two moons (binary cross-entropy, mean squared error, Huber) and on
# its 8×8 digits (negative log-likelihood), trained by SGD with weight decay, momentum and a
# linear learning-rate schedule from `eincalc.optim`; the loss curves equal PyTorch's `SGD` +
# `LinearLR` on the same network to 1e-12 (when PyTorch is installed). Loss and accuracy
# curves per epoch, and the decision boundary on the moons. The Einstein-calculus chapter is
# its own study (`einstein_calculus`).
#
# Set `EINCALC_QUICK=1` for a short run (half the epochs; the tests do). Run as a script, this
# saves its figures next to itself.

# %%
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits, make_moons

import eincalc as ec
from eincalc import optim

try:
    import torch
    import torch.nn.functional as tf

    torch.set_num_threads(1)  # small problems: threads only contend for the cores
except ImportError:  # PyTorch is optional: the side-by-side check is skipped
    torch = None


def save(fig, name):
    """Save a figure next to this script when it runs as one (a notebook shows it inline instead)."""
    if "inline" not in matplotlib.get_backend():
        folder = os.environ.get("EINCALC_FIGURES", os.path.dirname(os.path.abspath(__file__)))
        fig.savefig(os.path.join(folder, name), dpi=80, bbox_inches="tight")


# %% [markdown]
# ## The networks and losses
#
# Two ReLU hidden layers of 16; the output is one logit (moons) or ten (digits). The same
# losses are written for eincalc (text) and for PyTorch (its library functions), so the
# comparison checks eincalc's derivatives against PyTorch's autograd, not against itself.

# %%
QUICK = os.environ.get("EINCALC_QUICK") == "1"
MOONS_EPOCHS, DIGITS_EPOCHS = (150, 100) if QUICK else (300, 200)
HIDDEN = "relu(relu(X @ W1 + b1) @ W2 + b2)"
LOSSES = {  # name: (eincalc text over the logits z, PyTorch loss of logits and labels)
    "BCE": ("mean(softplus(z) - y * z)", lambda z, y: tf.binary_cross_entropy_with_logits(z, y)),
    "MSE": ("mean((sigmoid(z) - y) ** 2)", lambda z, y: tf.mse_loss(torch.sigmoid(z), y)),
    "Huber": (
        "mean(where(abs(z - (2 * y - 1)) <= 1, 0.5 * (z - (2 * y - 1)) ** 2, abs(z - (2 * y - 1)) - 0.5))",
        lambda z, y: tf.huber_loss(z, 2 * y - 1, delta=1.0),
    ),
}
NLL = f"-mean(sum(Y * log_softmax({HIDDEN} @ W3 + b3, axis=1), axis=1))"
PARAMS = ["W1", "b1", "W2", "b2", "W3", "b3"]
DIMS = dict(X="b d", W1="d h", b1="h", W2="h g", b2="g")


def start(d, outputs, seed=0):
    rng = np.random.default_rng(seed)
    shape3 = (16, outputs) if outputs > 1 else (16,)
    return dict(
        W1=rng.normal(size=(d, 16)) * np.sqrt(2 / d),
        b1=np.zeros(16),
        W2=rng.normal(size=(16, 16)) * np.sqrt(2 / 16),
        b2=np.zeros(16),
        W3=rng.normal(size=shape3) * np.sqrt(1 / 16),
        b3=np.zeros(outputs) if outputs > 1 else np.array(0.0),
    )


def train(loss_text, dims, data, params, epochs, lr, accuracy):
    """Full-batch SGD (momentum 0.9, weight decay 1e-4) with the learning rate falling linearly to a tenth.

    Returns the loss before each step, the training ``accuracy(params)`` after each epoch and the parameters.
    """
    step = ec.compile(ec.value_and_grad(ec.parse(loss_text, **DIMS, **dims), PARAMS))
    opt = optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    schedule = optim.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=epochs)
    history, accuracies = [], []
    for epoch in range(epochs):
        history.append(float(opt.step(step, **data)))  # data by name: the signature starts with X, W1, …
        schedule.step()
        accuracies.append(accuracy(opt.params))
        if epoch % 100 == 0:
            print(f"  epoch {epoch:3d}: loss {history[-1]:.5f}, accuracy {accuracies[-1]:.3f}")
    return np.array(history), np.array(accuracies), opt.params


def torch_train(loss_fn, X, target, params, epochs, lr):
    """The same network, loss, optimiser and schedule in PyTorch."""
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt, Tt = torch.tensor(X), torch.tensor(target)
    opt = torch.optim.SGD(tp.values(), lr=lr, momentum=0.9, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=epochs)
    history = []
    for _ in range(epochs):
        opt.zero_grad()
        h = torch.relu(torch.relu(Xt @ tp["W1"] + tp["b1"]) @ tp["W2"] + tp["b2"])
        value = loss_fn(h @ tp["W3"] + tp["b3"], Tt)
        value.backward()
        history.append(value.item())
        opt.step()
        schedule.step()
    return np.array(history)


def logits(params, X):
    h = np.maximum(np.maximum(X @ params["W1"] + params["b1"], 0) @ params["W2"] + params["b2"], 0)
    return h @ params["W3"] + params["b3"]


# %% [markdown]
# ## Two moons: BCE, MSE and Huber

# %%
X, labels = make_moons(300, noise=0.15, random_state=0)
y = labels.astype(float)
moons = {}
for name, (text, torch_loss) in LOSSES.items():
    print(name)
    loss_text = text.replace("z", f"({HIDDEN} @ W3 + b3)")
    history, accuracies, params = train(
        loss_text, dict(y="b", W3="g", b3=""), dict(X=X, y=y), start(2, 1), epochs=MOONS_EPOCHS, lr=0.1,
        accuracy=lambda p: np.mean((logits(p, X) > 0) == labels),
    )  # fmt: skip
    accuracy = accuracies[-1]
    moons[name] = (history, accuracies, params)
    print(f"  final loss {history[-1]:.4f}, training accuracy {accuracy:.3f}")
    assert accuracy > (0.85 if QUICK else 0.97)
    if torch is not None:
        gap = np.abs(history - torch_train(torch_loss, X, y, start(2, 1), MOONS_EPOCHS, lr=0.1)).max()
        print(f"  largest difference to PyTorch's loss curve {gap:.1e}")
        assert gap < 1e-12

# %% [markdown]
# ## Digits: negative log-likelihood

# %%
digits = load_digits()
Xd, Yd = digits.data / 16.0, np.eye(10)[digits.target]
print("NLL")
nll_dims = dict(Y="b k", W3="g k", b3="k")
nll_history, nll_accuracies, nll_params = train(
    NLL, nll_dims, dict(X=Xd, Y=Yd), start(64, 10), epochs=DIGITS_EPOCHS, lr=0.1,
    accuracy=lambda p: np.mean(np.argmax(logits(p, Xd), axis=1) == digits.target),
)  # fmt: skip
nll_accuracy = nll_accuracies[-1]
print(f"  final loss {nll_history[-1]:.4f}, training accuracy {nll_accuracy:.3f}")
assert nll_accuracy > (0.85 if QUICK else 0.97)
if torch is not None:

    def torch_nll(z, labels_t):
        return tf.nll_loss(torch.log_softmax(z, dim=1), labels_t)

    gap = np.abs(nll_history - torch_train(torch_nll, Xd, digits.target, start(64, 10), DIGITS_EPOCHS, lr=0.1)).max()
    print(f"  largest difference to PyTorch's loss curve {gap:.1e}")
    assert gap < 1e-12

# %% [markdown]
# ## Curves and the decision boundary

# %%
fig, axes = plt.subplots(1, 4, figsize=(20, 4))
for name, (history, accuracies, _) in moons.items():
    axes[0].semilogy(history, label=f"moons, {name}")
    axes[1].plot(accuracies, label=f"moons, {name} (final {accuracies[-1]:.3f})")
axes[0].semilogy(nll_history, label="digits, NLL")
axes[1].plot(nll_accuracies, label=f"digits, NLL (final {nll_accuracy:.3f})")
axes[0].set_ylabel("training loss")
axes[0].set_title("SGD + momentum + weight decay, LinearLR")
axes[1].set_ylabel("training accuracy")
axes[1].set_ylim(0.5, 1.005)
for ax in axes[:2]:
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
grid = np.linspace(-2, 3, 200), np.linspace(-1.5, 2, 160)
GX, GY = np.meshgrid(*grid)
for ax, name in zip(axes[2:], ("BCE", "Huber")):
    z = logits(moons[name][2], np.column_stack([GX.ravel(), GY.ravel()])).reshape(GX.shape)
    ax.contourf(GX, GY, z > 0, alpha=0.3, cmap="coolwarm")
    ax.contour(GX, GY, z, levels=[0], colors="k")
    ax.scatter(X[:, 0], X[:, 1], c=labels, cmap="coolwarm", s=8)
    ax.set_title(f"decision boundary, {name}")
save(fig, "nano_autograd.png")
