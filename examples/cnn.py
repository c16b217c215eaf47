"""A small CNN trained on scikit-learn's 8×8 digits with eincalc's compiled gradients.

conv 1→8 (3×3, padding 1) → relu → max-pool 2 → conv 8→16 (3×3, padding 1) → relu →
avg-pool 2 → dense 10, softmax cross-entropy; plain SGD with momentum. The gradients of
all parameters come from one compiled function whose code is a backward pass (window
views and scatters for the convolutions). Without scikit-learn the script says so and
stops.
"""

import sys
import time

import numpy as np

import eincalc as ec

try:
    from sklearn.datasets import load_digits
except ImportError:
    print("this example needs scikit-learn (pip install scikit-learn)")
    sys.exit(0)

BATCH = 64
decls = dict(X="b 1 8 8", K1="8 1 3 3", c1="8", K2="16 8 3 3", c2="16", W="16 2 2 10", d="10", Y="b 10")
loss = ec.parse(
    "-sum(Y * log_softmax(einsum('bcij,cije->be', avg_pool2d(relu(conv2d(max_pool2d(relu("
    "conv2d(X, K1, padding=1) + einsum('c,bcij->bcij', c1, ones('b 8 8 8'))), size=2), K2, padding=1)"
    f" + einsum('c,bcij->bcij', c2, ones('b 16 4 4'))), size=2), W) + d, axis=1)) / {BATCH}",
    **decls,
)
params = ["K1", "c1", "K2", "c2", "W", "d"]
step = ec.compile([loss, *(ec.grad(loss, p) for p in params)])

digits = load_digits()
X = digits.images[:, None] / 16.0
labels = digits.target
train, test = np.arange(1500), np.arange(1500, len(labels))
rng = np.random.default_rng(0)
shapes = dict(K1=(8, 1, 3, 3), c1=(8,), K2=(16, 8, 3, 3), c2=(16,), W=(16, 2, 2, 10), d=(10,))
values = {p: rng.normal(size=s) / np.sqrt(np.prod(s[1:])) if len(s) > 1 else np.zeros(s) for p, s in shapes.items()}
velocity = {p: np.zeros_like(v) for p, v in values.items()}


def predict(images: np.ndarray) -> np.ndarray:
    """Class scores with NumPy only (an independent forward pass)."""
    import numpy.lib.stride_tricks as st

    def conv(x, k, c):
        windows = st.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
        return np.einsum("bchwij,dcij->bdhw", windows, k) + c[:, None, None]

    h = np.maximum(conv(images, values["K1"], values["c1"]), 0.0)
    h = h.reshape(len(images), 8, 4, 2, 4, 2).max(axis=(3, 5))
    h = np.maximum(conv(h, values["K2"], values["c2"]), 0.0)
    h = h.reshape(len(images), 16, 2, 2, 2, 2).mean(axis=(3, 5))
    return np.einsum("bcij,cije->be", h, values["W"]) + values["d"]


start = time.perf_counter()
for epoch in range(6):
    order = rng.permutation(train)
    total = 0.0
    for k in range(0, len(order) - BATCH + 1, BATCH):
        batch = order[k : k + BATCH]
        value, *grads = step(X=X[batch], Y=np.eye(10)[labels[batch]], **values)
        total += float(value)
        for p, g in zip(params, grads):
            velocity[p] = 0.9 * velocity[p] - 0.1 * g
            values[p] = values[p] + velocity[p]
    accuracy = np.mean(np.argmax(predict(X[test]), axis=1) == labels[test])
    print(f"epoch {epoch}: mean loss {total / (len(order) // BATCH):.4f}, test accuracy {accuracy:.3f}")
print(f"{time.perf_counter() - start:.1f} s of training")
assert accuracy > 0.85, accuracy
