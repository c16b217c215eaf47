"""Gradient code for Linear → tanh → Linear → softmax cross-entropy, used to train a small MLP."""

import numpy as np

import eincalc as ec

loss = ec.parse(
    "-sum(Y * log_softmax(tanh(X @ W1 + b1) @ W2 + b2)) / 256",
    X="b d",
    Y="b c",
    W1="d h",
    b1="h",
    W2="h c",
    b2="c",
)
params = ["W1", "b1", "W2", "b2"]
fn = ec.compile(ec.value_and_grad(loss, params))  # the loss, then its gradients in this order
print(fn.source)

# a synthetic 3-class problem: points around three centres in 8 dimensions
rng = np.random.default_rng(0)
centres = 2.0 * rng.normal(size=(3, 8))
labels = rng.integers(0, 3, size=256)
X = centres[labels] + rng.normal(size=(256, 8))
Y = np.eye(3)[labels]
values = dict(W1=0.3 * rng.normal(size=(8, 16)), b1=np.zeros(16), W2=0.3 * rng.normal(size=(16, 3)), b2=np.zeros(3))

for epoch in range(201):
    value, *grads = fn(X, Y, **values)  # declaration order: X, Y, then the parameters
    for p, g in zip(params, grads):
        values[p] = values[p] - 0.5 * g
    if epoch % 50 == 0:
        print(f"epoch {epoch:3d}: loss {float(value):.4f}")
accuracy = np.mean(np.argmax(np.tanh(X @ values["W1"] + values["b1"]) @ values["W2"], axis=1) == labels)
print(f"training accuracy {accuracy:.3f}")
