"""Logistic regression on a design matrix larger than memory: eincalc's code on Dask arrays.

X (m rows × 100 features, float64) is never materialised: each row chunk is generated
on demand from its own seed, and the compiled value, gradient and Hessian-vector
product stream through the chunks (the sums over rows are reductions Dask does chunk
by chunk). The same compiled function runs on a Dask cluster: create a
``distributed.Client(address)`` first and ``dask.compute`` uses it.

    python examples/out_of_core.py                          # 160 MB of X: a quick look
    python examples/out_of_core.py --rows 2000000 --budget-mb 200   # 1.5 GiB of X under 200 MB

The last line printed is a JSON summary (sizes, seconds, peak memory growth); the
script checks the result on a subsample against NumPy in memory, and with
``--budget-mb`` that the peak resident memory grew by less than that while computing.
"""

import argparse
import json
import resource
import sys
import time

import dask
import dask.array as da
import numpy as np

import eincalc as ec

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=200_000, help="m, the number of rows of X")
parser.add_argument("--chunk", type=int, default=25_000, help="rows per chunk")
parser.add_argument("--features", type=int, default=100)
parser.add_argument("--budget-mb", type=float, default=None, help="fail if the peak memory grows by more")
args = parser.parse_args()
m, n, rows = args.rows, args.features, args.chunk


def memory_mb(field: str) -> float:
    """The process's resident memory now (``VmRSS``) or at its peak (``VmHWM``), in MB.

    Linux's /proc; elsewhere the peak from ``getrusage`` (which a child inherits from its
    parent across exec, so it can overstate).
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def reset_peak() -> None:
    """Start the peak (``VmHWM``) afresh from the current resident memory, where Linux allows it."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def chunk_of_x(block_info=None):
    """Rows [start, stop) of X, the same every time they are asked for (seeded by their position)."""
    (start, stop), _ = block_info[None]["array-location"]
    return np.random.default_rng(start).standard_normal((stop - start, n))


sizes = (rows,) * (m // rows) + ((m % rows,) if m % rows else ())
X = da.map_blocks(chunk_of_x, chunks=(sizes, (n,)), dtype=np.float64)  # lazy: nothing generated yet
y = da.sign(X[:, 0] - 0.5 * X[:, 1] + 0.1)  # labels computed from the same chunks

f = ec.parse("sum(log(1 + exp(-y * (X @ w)))) + 0.5 * lam * (w @ w)", X="m n", w="n", y="m", lam="")
fn = ec.compile([f, ec.grad(f, "w"), ec.hvp(f, "w", "v")], backend="dask")
print(fn.source)

w = np.linspace(-1.0, 1.0, n) / 10
v = np.cos(np.arange(n))
lam = 1e-2

# The full run: threads scheduler (Dask's default for arrays); the peak memory is measured during it
reset_peak()
before = memory_mb("VmRSS")
start = time.perf_counter()
value, gradient, hvp = dask.compute(*fn(X=X, w=w, y=y, v=v, lam=lam))
seconds = time.perf_counter() - start
peak = memory_mb("VmHWM")
growth = peak - before
print(f"X: {m:,} × {n} float64 = {X.nbytes / 2**30:.2f} GiB in {X.numblocks[0]} chunks of {rows:,} rows")
print(f"value {value:.6e}, |gradient| {np.linalg.norm(gradient):.6e}, |H v| {np.linalg.norm(hvp):.6e}")
print(f"{seconds:.1f} s; peak resident memory {peak:.0f} MB, grew by {growth:.0f} MB while computing")
print(f"(X alone would need {X.nbytes / 2**20:,.0f} MB)")

# On a subsample (the first two chunks, in memory), the Dask result equals NumPy's
k = min(m, 2 * rows)
small = [r.compute() for r in fn(X=X[:k], w=w, y=y[:k], v=v, lam=lam)]
Xk, yk = X[:k].compute(), y[:k].compute()
for got, want in zip(small, ec.compile([f, ec.grad(f, "w"), ec.hvp(f, "w", "v")])(X=Xk, w=w, y=yk, v=v, lam=lam)):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-8)
del Xk, yk, small
assert np.isfinite(value) and np.all(np.isfinite(gradient)) and np.all(np.isfinite(hvp))
if args.budget_mb is not None:
    assert growth < args.budget_mb, f"peak memory grew by {growth:.0f} MB, over the {args.budget_mb:.0f} MB budget"
summary = dict(rows=m, features=n, chunk=rows, gib=X.nbytes / 2**30, seconds=seconds)
print(json.dumps({**summary, "peak_rss_mb": peak, "peak_growth_mb": growth, "value": float(value)}))
