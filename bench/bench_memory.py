"""Resident memory over many distinct expressions and many size signatures (issue 13).

Builds, differentiates and drops 100 000 distinct expressions, then calls one compiled
function with 20 000 batch sizes, and prints the RSS after each block: it must stay
flat (the node table is weak, size variants and their linecache entries are bounded).

Run: python bench/bench_memory.py [--quick]
"""

from __future__ import annotations

import gc
import linecache
import resource
import sys

import numpy as np

import eincalc as ec


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def distinct_expressions(n: int, report_every: int) -> list[float]:
    x, A = ec.vector("x", "n"), ec.matrix("A", "n n")
    seen = []
    for k in range(n):
        f = ec.sum(ec.tanh(A @ x * float(k + 1)) + x * float(k) ** 0.5)
        ec.grad(f, "x")
        if (k + 1) % report_every == 0:
            gc.collect()
            seen.append(rss_mb())
            print(f"  {k + 1:7d} expressions: RSS {seen[-1]:7.1f} MB", flush=True)
    return seen


def size_signatures(n: int, report_every: int) -> list[float]:
    X, w = ec.matrix("X", "b n"), ec.vector("w", "n")
    fn = ec.compile(ec.tanh(X @ w) * 2.0)
    w_val = np.ones(3)
    seen = []
    for b in range(1, n + 1):
        fn(np.ones((b % 5000 + 1 + 5000 * (b // 5000), 3)), w_val)
        if b % report_every == 0:
            gc.collect()
            entries = sum(1 for name in linecache.cache if name.startswith("<eincalc "))
            seen.append(rss_mb())
            print(f"  {b:7d} size signatures: RSS {seen[-1]:7.1f} MB, linecache entries {entries}", flush=True)
    return seen


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    n_expr, n_sizes = (10_000, 2_000) if quick else (100_000, 20_000)
    print(f"start: RSS {rss_mb():.1f} MB")
    a = distinct_expressions(n_expr, n_expr // 10)
    b = size_signatures(n_sizes, n_sizes // 10)
    print(f"growth after the first tenth: expressions {a[-1] - a[0]:+.1f} MB, size signatures {b[-1] - b[0]:+.1f} MB")
