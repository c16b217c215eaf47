"""Optimisers and learning-rate schedules for dicts of NumPy arrays.

A training loop is a compiled value-and-gradient function, a dict of parameters and an
optimiser that updates that dict:

    >>> import numpy as np, eincalc as ec
    >>> loss = ec.parse("sum((X @ w - y) ** 2) / 4", X="b n", y="b", w="n")
    >>> fn = ec.compile(ec.value_and_grad(loss, ["w"]))
    >>> X, y = np.eye(4, 2), np.array([1.0, 2.0, 0.0, 0.0])
    >>> opt = ec.optim.SGD({"w": np.zeros(2)}, lr=0.5, momentum=0.5)
    >>> for _ in range(60):
    ...     value = opt.step(fn, X, y)
    >>> np.round(opt.params["w"], 6)
    array([1., 2.])

The updates are PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``; ``StepLR``,
``LinearLR``, ``CosineAnnealingLR``), written out in NumPy: the same hyperparameters give
the same iterates. Parameters are replaced by new arrays, never changed in place, so
arrays the caller still holds keep their values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "SGD", "Adam", "AdamW", "Optimizer", "Schedule", "StepLR", "LinearLR", "CosineAnnealingLR", "clip_grad_norm",
]  # fmt: skip


def clip_grad_norm(grads: Sequence[np.ndarray], max_norm: float) -> tuple[list[np.ndarray], float]:
    """Scale gradients down so that their joint 2-norm is at most about ``max_norm`` (PyTorch's ``clip_grad_norm_``).

    The factor is ``min(1, max_norm / (norm + 1e-6))``, ``norm`` the 2-norm of all entries together.

    Args:
        grads: the gradient arrays (e.g. what a value-and-gradient function returns after the value).
        max_norm: the largest norm let through.

    Returns:
        The scaled gradients (new arrays) and the norm before scaling.

    Examples:
        >>> import numpy as np
        >>> clipped, norm = clip_grad_norm([np.array([3.0]), np.array([4.0])], 1.0)
        >>> norm, [np.round(g, 6) for g in clipped]
        (5.0, [array([0.6]), array([0.8])])
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    grads = [np.asarray(g, dtype=float) for g in grads]
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    factor = min(1.0, max_norm / (norm + 1e-6))
    return [g * factor for g in grads], norm


def _floating(a) -> np.ndarray:
    """An array of floats: float32 stays float32 (as in eincalc's compiled functions), integers become float64."""
    a = np.asarray(a)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(float)


class Optimizer:
    """The shared part of every optimiser: the parameters, the learning rate, the step count.

    Attributes:
        params: the dict of parameter arrays, updated by :meth:`step` (its order is the
            order of the gradients a value-and-gradient function returns).
        lr: the learning rate of the next step (schedules change it).
        steps: the number of steps taken.
    """

    def __init__(self, params: Mapping[str, np.ndarray], lr: float) -> None:
        if lr < 0:
            raise ValueError(f"the learning rate must be >= 0, got {lr}")
        self.params: dict[str, np.ndarray] = {k: _floating(v) for k, v in params.items()}
        self.lr = float(lr)
        self.steps = 0

    def step(self, grads: Mapping[str, np.ndarray] | Sequence[np.ndarray] | Callable[..., Any], *args, **kwargs):
        """Take one step.

        Args:
            grads: the gradients, as a dict by parameter name or a sequence in the order of
                ``params``; or a compiled value-and-gradient function, called as
                ``grads(*args, **kwargs, **params)`` and expected to return
                ``(value, *gradients)`` with the gradients in the order of ``params``.
            *args: data arrays passed to that function, positionally.
            **kwargs: data arrays passed to it by keyword.

        Returns:
            The value the function returned (before the step), or ``None`` for given gradients.
        """
        value = None
        if callable(grads):
            value, *grads = grads(*args, **kwargs, **self.params)
        named = self._named(grads)
        self.steps += 1
        for name, g in named.items():
            p = self.params[name]
            self.params[name] = self._update(name, p, _floating(g)).astype(p.dtype, copy=False)  # keep float32
        return value

    def _named(self, grads) -> dict[str, np.ndarray]:
        if isinstance(grads, Mapping):
            unknown = sorted(set(grads) - set(self.params))
            if unknown:
                raise KeyError(f"gradients for unknown parameters {unknown}; the parameters are {list(self.params)}")
            return dict(grads)
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters {list(self.params)}")
        return dict(zip(self.params, grads))

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with weight decay, momentum (heavy ball) and Nesterov momentum.

    With ``d = g + weight_decay * p``: ``b ← d`` on the first step, then
    ``b ← momentum * b + (1 - dampening) * d``; the step is ``p ← p - lr * d'`` with
    ``d' = d + momentum * b`` (Nesterov), ``b`` (momentum) or ``d`` (none).
    """

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and no dampening")
        self.momentum, self.weight_decay, self.nesterov, self.dampening = momentum, weight_decay, nesterov, dampening
        self.buffers: dict[str, np.ndarray] = {}

    def _update(self, name, p, g):
        d = g + self.weight_decay * p if self.weight_decay else g
        if self.momentum:
            b = self.buffers.get(name)
            b = d if b is None else self.momentum * b + (1 - self.dampening) * d
            self.buffers[name] = b
            d = d + self.momentum * b if self.nesterov else b
        return p - self.lr * d


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` adds ``weight_decay * p`` to the gradient.

    ``m ← β₁m + (1-β₁)g``, ``v ← β₂v + (1-β₂)g²``, ``p ← p - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + eps)``.
    """

    decoupled = False

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.first: dict[str, np.ndarray] = {}
        self.second: dict[str, np.ndarray] = {}

    def _update(self, name, p, g):
        b1, b2 = self.betas
        if self.weight_decay and self.decoupled:
            p = p * (1 - self.lr * self.weight_decay)
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m = b1 * self.first.get(name, 0.0) + (1 - b1) * g
        v = b2 * self.second.get(name, 0.0) + (1 - b2) * g * g
        self.first[name], self.second[name] = m, v
        t = self.steps
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + self.eps
        return p - self.lr / (1 - b1**t) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p ← p(1 - lr·weight_decay)`` before the Adam step."""

    decoupled = True

    def __init__(
        self, params: Mapping[str, np.ndarray], lr: float = 1e-3, weight_decay: float = 1e-2, **adam_options: Any
    ) -> None:
        """Like :class:`Adam` (``betas``, ``eps`` by keyword), with PyTorch's default decay 1e-2."""
        super().__init__(params, lr, weight_decay=weight_decay, **adam_options)


class Schedule:
    """A learning rate that depends on the epoch: ``step()`` moves to the next epoch and sets ``optimizer.lr``.

    Attributes:
        optimizer: the optimiser whose ``lr`` is set.
        base_lr: its learning rate when the schedule was made (epoch 0).
        epoch: the current epoch.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, epoch: int) -> float:
        """The learning rate at ``epoch`` (closed form)."""
        raise NotImplementedError

    def step(self) -> float:
        """Move to the next epoch; returns its learning rate."""
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr


class StepLR(Schedule):
    """``base_lr · gamma^⌊epoch / step_size⌋``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class LinearLR(Schedule):
    """``base_lr`` times a factor going linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` epochs."""

    def __init__(
        self, optimizer: Optimizer, start_factor: float = 1 / 3, end_factor: float = 1.0, total_iters: int = 5
    ) -> None:
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError(f"factors must be in (0, 1] and [0, 1], got {start_factor} and {end_factor}")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer)

    def lr_at(self, epoch):
        done = min(epoch, self.total_iters) / self.total_iters
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * done)


class CosineAnnealingLR(Schedule):
    """``eta_min + (base_lr - eta_min)(1 + cos(π·epoch/T_max))/2`` (SGDR without restarts)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803 (PyTorch's name)
        if T_max < 1:
            raise ValueError(f"T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
