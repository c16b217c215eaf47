"""eincalc.optim: each update against a closed form written by hand, and against torch.optim step by step."""

from __future__ import annotations

import math

import numpy as np
import pytest

import eincalc as ec
from eincalc import optim

STEPS = 7


def _run(opt, grad_of, steps=STEPS):
    for _ in range(steps):
        opt.step({name: grad_of(name, p) for name, p in opt.params.items()})
    return opt.params


# ---- closed forms (no torch) -------------------------------------------------------------


def test_sgd_weight_decay_on_half_square_norm_is_geometric():
    # f = ½|x|², grad x; with decay λ the step is x(1 - lr(1 + λ)), so x_t = x_0 (1 - lr(1 + λ))^t
    x0 = np.array([1.0, -2.0, 3.0])
    params = _run(optim.SGD({"x": x0}, lr=0.1, weight_decay=0.5), lambda _, p: p)
    np.testing.assert_allclose(params["x"], x0 * (1 - 0.1 * 1.5) ** STEPS, rtol=1e-14)
    np.testing.assert_array_equal(x0, [1.0, -2.0, 3.0])  # the caller's array is not changed


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_on_a_constant_gradient(nesterov):
    # buffer b_t = g(1 - μ^t)/(1 - μ); the step uses b_t, or g + μ b_t = g(1 - μ^{t+1})/(1 - μ) for Nesterov
    g, mu, lr = np.array([0.5, -1.0]), 0.9, 0.01
    k = np.arange(1, STEPS + 1) + (1 if nesterov else 0)
    expected = 1.0 - lr * g * np.sum((1 - mu**k) / (1 - mu))
    params = _run(optim.SGD({"x": np.ones(2)}, lr=lr, momentum=mu, nesterov=nesterov), lambda *_: g)
    np.testing.assert_allclose(params["x"], expected, rtol=1e-13)


def test_sgd_dampening_scales_later_buffers():
    # b_1 = g, b_t = μ b_{t-1} + (1 - τ) g; two steps: x = x0 - lr(g + μg + (1 - τ)g)
    g, mu, tau, lr = np.array([2.0]), 0.5, 0.25, 0.1
    params = _run(optim.SGD({"x": np.zeros(1)}, lr=lr, momentum=mu, dampening=tau), lambda *_: g, steps=2)
    np.testing.assert_allclose(params["x"], -lr * (g + mu * g + (1 - tau) * g), rtol=1e-15)


def test_adam_on_a_constant_gradient_moves_lr_per_step():
    # bias correction makes m̂ = g and v̂ = g² exactly, so every step is lr g/(|g| + eps)
    g, lr, eps = np.array([3.0, -0.25, 1e-3]), 0.01, 1e-8
    params = _run(optim.Adam({"x": np.zeros(3)}, lr=lr, eps=eps), lambda *_: g)
    np.testing.assert_allclose(params["x"], -STEPS * lr * g / (np.abs(g) + eps), rtol=1e-12)


def test_adamw_on_a_constant_gradient_is_an_affine_recurrence():
    # x_t = a x_{t-1} - c with a = 1 - lr λ, c = lr g/(|g| + eps): x_t = a^t x_0 - c(1 - a^t)/(1 - a)
    g, lr, wd, eps = np.array([1.0, -2.0]), 0.1, 0.3, 1e-8
    x0 = np.array([5.0, 5.0])
    a, c = 1 - lr * wd, lr * g / (np.abs(g) + eps)
    params = _run(optim.AdamW({"x": x0}, lr=lr, weight_decay=wd, eps=eps), lambda *_: g)
    np.testing.assert_allclose(params["x"], a**STEPS * x0 - c * (1 - a**STEPS) / (1 - a), rtol=1e-13)


def test_adam_coupled_weight_decay_enters_the_gradient():
    # one step: the gradient is g + λx0 and Adam's first step is lr·sign of it (up to eps)
    x0, g, lr, wd = np.array([1.0, -1.0]), np.array([-0.5, 0.5]), 0.1, 1.0
    params = _run(optim.Adam({"x": x0}, lr=lr, weight_decay=wd, eps=0.0), lambda *_: g, steps=1)
    np.testing.assert_allclose(params["x"], x0 - lr * np.sign(g + wd * x0), rtol=1e-15)


def _lrs(make, epochs=9):
    opt = optim.SGD({"x": np.zeros(1)}, lr=1.0)
    schedule = make(opt)
    return [opt.lr] + [schedule.step() for _ in range(epochs)]


def test_schedules_closed_forms():
    assert _lrs(lambda o: optim.StepLR(o, step_size=3, gamma=0.5)) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    np.testing.assert_allclose(
        _lrs(lambda o: optim.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=3)),
        [0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 1, 1],
        rtol=1e-15,
    )
    half = (1 + math.cos(math.pi / 4)) / 2
    cosine = [1, half, 0.5, 1 - half, 0, 1 - half, 0.5, half, 1, half]  # cos keeps going after T_max
    np.testing.assert_allclose(_lrs(lambda o: optim.CosineAnnealingLR(o, T_max=4)), cosine, atol=1e-15)


def test_step_calls_a_compiled_value_and_gradient_function():
    loss = ec.parse("sum((X @ w + b - y) ** 2) / 2", X="m n", w="n", b="", y="m")
    fn = ec.compile(ec.value_and_grad(loss, ["w", "b"]))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=5)
    w0 = rng.normal(size=3)
    opt = optim.SGD({"w": w0, "b": np.array(0.0)}, lr=0.05)
    value = opt.step(fn, X, y=y)
    r = X @ w0 - y
    assert value == pytest.approx(0.5 * r @ r, rel=1e-14)
    np.testing.assert_allclose(opt.params["w"], w0 - 0.05 * X.T @ r, rtol=1e-14)
    np.testing.assert_allclose(opt.params["b"], -0.05 * r.sum(), rtol=1e-14)


def test_clip_grad_norm_scales_to_the_bound_and_leaves_small_gradients():
    big = [np.array([[3.0, 0.0]]), np.array([0.0, 4.0, 0.0])]  # joint norm 5
    clipped, norm = optim.clip_grad_norm(big, 2.0)
    assert norm == 5.0
    factor = 2.0 / (5.0 + 1e-6)
    for c, g in zip(clipped, big):
        np.testing.assert_allclose(c, g * factor, rtol=1e-15)
    small, norm = optim.clip_grad_norm(big, 10.0)
    assert norm == 5.0 and all(np.array_equal(c, g) for c, g in zip(small, big))
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm(big, 0.0)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=(4, 3)), rng.normal(size=5)]
    ts = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(ts, grads):
        t.grad = torch.tensor(g)
    total = torch.nn.utils.clip_grad_norm_(ts, 0.7)
    clipped, norm = optim.clip_grad_norm(grads, 0.7)
    assert abs(norm - float(total)) < 1e-14
    for c, t in zip(clipped, ts):
        np.testing.assert_allclose(c, t.grad.numpy(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: optim.Adam(p, lr=0.1)])
def test_float32_parameters_stay_float32_and_integers_become_float64(make):
    opt = make({"w": np.ones(3, dtype=np.float32), "n": np.array([1, 2])})
    opt.step({"w": np.full(3, 0.5, dtype=np.float32), "n": np.array([1.0, 1.0])})
    opt.step({"w": np.full(3, 0.5), "n": np.array([1.0, 1.0])})  # a float64 gradient does not promote w
    assert opt.params["w"].dtype == np.float32 and opt.params["n"].dtype == np.float64
    assert np.all(opt.params["w"] < 1) and np.all(opt.params["n"] < [1, 2])


def test_bad_arguments_are_clear():
    opt = optim.SGD({"w": np.zeros(2)}, lr=0.1)
    with pytest.raises(KeyError, match="unknown parameters"):
        opt.step({"v": np.zeros(2)})
    with pytest.raises(ValueError, match="2 gradients for 1 parameters"):
        opt.step([np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD({"w": np.zeros(2)}, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam({"w": np.zeros(2)}, lr=-1.0)


# ---- against torch.optim ------------------------------------------------------------------


def _problem():
    """A tanh layer with squared loss: eincalc's compiled gradient and the same loss in torch."""
    loss = ec.parse("sum((tanh(X @ W + b) - Y) ** 2) / 8", X="m n", W="n k", b="k", Y="m k")
    fn = ec.compile(ec.value_and_grad(loss, ["W", "b"]))
    rng = np.random.default_rng(1)
    data = dict(X=rng.normal(size=(8, 4)), Y=rng.normal(size=(8, 3)))
    start = dict(W=0.5 * rng.normal(size=(4, 3)), b=0.1 * rng.normal(size=3))
    return fn, data, start


def _torch_run(torch, make_opt, make_schedule, data, start, steps):
    X, Y = (torch.tensor(data[k]) for k in ("X", "Y"))
    W, b = (torch.tensor(start[k], requires_grad=True) for k in ("W", "b"))
    opt = make_opt([W, b])
    schedule = make_schedule(opt) if make_schedule else None
    for _ in range(steps):
        opt.zero_grad()
        (((torch.tanh(X @ W + b) - Y) ** 2).sum() / 8).backward()
        opt.step()
        if schedule:
            schedule.step()
    return {"W": W.detach().numpy(), "b": b.detach().numpy()}


CASES = {
    "sgd_wd_momentum_nesterov": (
        lambda p: optim.SGD(p, lr=0.2, momentum=0.9, weight_decay=0.01, nesterov=True),
        lambda torch, p: torch.optim.SGD(p, lr=0.2, momentum=0.9, weight_decay=0.01, nesterov=True),
    ),
    "sgd_momentum_dampening": (
        lambda p: optim.SGD(p, lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.05),
        lambda torch, p: torch.optim.SGD(p, lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.05),
    ),
    "adam": (
        lambda p: optim.Adam(p, lr=0.05, betas=(0.8, 0.99), weight_decay=0.02),
        lambda torch, p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), weight_decay=0.02),
    ),
    "adamw": (
        lambda p: optim.AdamW(p, lr=0.05, weight_decay=0.1, betas=(0.85, 0.995), eps=1e-7),
        lambda torch, p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1, betas=(0.85, 0.995), eps=1e-7),
    ),
}

SCHEDULES = {
    "none": (None, None),
    "linear": (
        lambda o: optim.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=5),
        lambda torch, o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=5),
    ),
    "step": (
        lambda o: optim.StepLR(o, step_size=3, gamma=0.3),
        lambda torch, o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.3),
    ),
    "cosine": (
        lambda o: optim.CosineAnnealingLR(o, T_max=6, eta_min=0.01),
        lambda torch, o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6, eta_min=0.01),
    ),
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_optim(case, schedule):
    torch = pytest.importorskip("torch")
    ours, theirs = CASES[case]
    our_schedule, their_schedule = SCHEDULES[schedule]
    fn, data, start = _problem()
    steps = 10
    opt = ours(start)
    sched = our_schedule(opt) if our_schedule else None
    for _ in range(steps):
        opt.step(fn, **data)
        if sched:
            sched.step()
    expected = _torch_run(
        torch,
        lambda p: theirs(torch, p),
        (lambda o: their_schedule(torch, o)) if their_schedule else None,
        data,
        start,
        steps,
    )
    for name in ("W", "b"):
        assert not np.allclose(opt.params[name], start[name])  # training moved the parameters
        np.testing.assert_allclose(opt.params[name], expected[name], rtol=0, atol=1e-12)
