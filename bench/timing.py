"""Timing helpers shared by the bench scripts: best-of-repeats and optional peers."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from types import ModuleType


def best_time(fn: Callable[[], object], budget: float) -> float:
    """Best of repeated runs (seconds), spending about ``budget`` seconds (at least 3 runs)."""
    fn()  # warm up (allocations, BLAS threads, JIT compilation)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def optional(name: str) -> ModuleType | None:
    """The module ``name`` if it is installed (a peer to compare with), else None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
