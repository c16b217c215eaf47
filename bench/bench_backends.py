"""One compiled program on each backend: NumPy, PyTorch, JAX and Dask, measured side by side.

For each problem of ``problems.py`` (value and gradient compiled together): the NumPy
backend's time, then for each installed library the same program compiled for it
(``ec.compile(..., backend=b)``), its ratio to NumPy (below 1 is faster), and the
library's own autodiff on the same value function where it has one (torch.autograd on
the eager torch code; ``jax.jit(jax.value_and_grad(...))``), with the ratio eincalc /
autodiff. Dask runs on the arrays split into four row chunks (threads scheduler; the
time includes building and running its graph). Every result is checked against NumPy's.

Last, the memory figure of the out-of-core run (``examples/out_of_core.py``): a
logistic value, gradient and Hessian-vector product over X generated chunk by chunk.

JAX is shown eager and under ``jax.jit`` (the compiled function traces).

Run: python bench/bench_backends.py [--quick]
On a loaded machine set OMP_NUM_THREADS=1: torch's thread pool otherwise waits about 10 ms
per operation here (all torch rows then measure the wake-ups, not the code).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
from problems import PROBLEMS
from timing import best_time, optional

import eincalc as ec

torch = optional("torch")
jax = optional("jax")
dask = optional("dask")
if dask is not None:
    import dask.array as da
if torch is not None and os.environ.get("OMP_NUM_THREADS"):
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # the same thread budget as NumPy's BLAS
if jax is not None:
    jax.config.update("jax_enable_x64", True)  # float64 like the NumPy side


def converted(backend: str, arrays: dict) -> dict:
    if backend == "torch":
        return {k: torch.as_tensor(v) for k, v in arrays.items()}
    if backend == "jax":
        return {k: jax.numpy.asarray(v) for k, v in arrays.items()}
    return {k: da.from_array(v, chunks=(max(1, -(-v.shape[0] // 4)), *v.shape[1:])) for k, v in arrays.items()}


def runner(backend: str, fn, args: dict):
    if backend == "torch":
        return lambda: fn(**args)
    if backend == "jax":
        return lambda: jax.block_until_ready(fn(**args))
    return lambda: dask.compute(*fn(**args))


def as_numpy(value) -> np.ndarray:
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return np.asarray(value)


def autodiff(backend: str, value_fn, args: dict, wrt: str):
    """The library's own gradient of the (eincalc-generated) value code, or None."""
    if backend == "torch":

        def run():
            p = args[wrt].detach().requires_grad_(True)
            v = value_fn(**{**args, wrt: p})
            return v.detach(), torch.autograd.grad(v, p)[0]

        return run
    if backend == "jax":
        others = {k: v for k, v in args.items() if k != wrt}  # arguments, not constants XLA would fold
        step = jax.jit(jax.value_and_grad(lambda x, rest: value_fn(**rest, **{wrt: x})))
        return lambda: jax.block_until_ready(step(args[wrt], others))
    return None


def main() -> None:
    quick = "--quick" in sys.argv
    budget = 0.3 if quick else 1.5
    backends = [b for b, mod in (("torch", torch), ("jax", jax), ("dask", dask)) if mod is not None]
    print(f"backends installed: numpy, {', '.join(backends) or 'no other'}")
    header = f"{'problem':24} {'backend':8} {'time':>10} {'/ numpy':>8} {'autodiff':>10} {'/ autodiff':>10}"
    print(header)
    print("-" * len(header))
    for p in PROBLEMS:
        sizes = {d: max(2, s // 4) for d, s in p.sizes.items()} if quick else p.sizes
        problem = type(p)(p.name, p.text, p.decls, p.wrt, sizes)
        f = problem.expr()
        arrays = problem.arrays()
        outputs = [f, ec.grad(f, problem.wrt)]
        reference = ec.compile(outputs)
        want = reference(**arrays)
        t_numpy = best_time(lambda: reference(**arrays), budget)  # noqa: B023 - used within the iteration
        print(f"{problem.name:24} {'numpy':8} {t_numpy * 1e3:8.3f}ms {1.0:8.2f}")
        for backend in backends:
            fn = ec.compile(outputs, backend=backend)
            args = converted(backend, arrays)
            run = runner(backend, fn, args)
            for got, expected in zip(run(), want):
                np.testing.assert_allclose(as_numpy(got), expected, rtol=1e-8, atol=1e-8)
            t = best_time(run, budget)
            peer = autodiff(backend, ec.compile(f, backend=backend), args, problem.wrt)
            if peer is not None:
                got_value, got_grad = peer()
                np.testing.assert_allclose(as_numpy(got_grad), want[1], rtol=1e-8, atol=1e-8)
                t_peer = best_time(peer, budget)
                extra = f"{t_peer * 1e3:8.3f}ms {t / t_peer:10.2f}"
            else:
                extra = f"{'—':>10} {'':>10}"
            print(f"{'':24} {backend:8} {t * 1e3:8.3f}ms {t / t_numpy:8.2f} {extra}")
            if backend == "jax":  # the compiled function traces: jax.jit(fn) fuses the whole program
                jitted = jax.jit(fn)
                run = runner(backend, jitted, args)
                for got, expected in zip(run(), want):
                    np.testing.assert_allclose(as_numpy(got), expected, rtol=1e-8, atol=1e-8)
                t = best_time(run, budget)
                extra = f"{t_peer * 1e3:8.3f}ms {t / t_peer:10.2f}"
                print(f"{'':24} {'jax.jit':8} {t * 1e3:8.3f}ms {t / t_numpy:8.2f} {extra}")
    if dask is not None:
        rows = 400_000 if quick else 2_000_000
        script = pathlib.Path(__file__).parent.parent / "examples" / "out_of_core.py"
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, str(script), "--rows", str(rows)], capture_output=True, text=True, check=True
        )
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"\nout of core (Dask, threads): X {summary['rows']:,} × {summary['features']} float64 = "
            f"{summary['gib']:.2f} GiB in chunks of {summary['chunk']:,} rows; value, gradient and Hv in "
            f"{summary['seconds']:.1f} s; peak RSS {summary['peak_rss_mb']:.0f} MB, grew by "
            f"{summary['peak_growth_mb']:.0f} MB while computing (whole run {time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
