"""Freed memory kept in the process, so NumPy temporaries reuse pages instead of faulting them in.

NumPy allocates every array with ``malloc``. glibc's ``malloc`` hands large blocks back to
the system (``munmap``, or trimming the heap) once they are freed and not yet worth
keeping by its dynamic thresholds; the next call's arrays then fault their pages in
again, at some microseconds per 4 KiB page. A compiled gradient (or a hand-written NumPy
backward pass) of a convolutional network allocates megabytes per call, so in a process
whose thresholds are still low it can run 1.6× slower than in one that has raised them
by freeing a large array earlier. :func:`keep_freed_memory` fixes the thresholds high,
as ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do at start-up: the process
keeps up to ``limit`` bytes of freed memory for reuse (its resident size stays at its
peak). It changes the whole process, so it is the caller's decision: nothing in eincalc
calls it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter numbers (``malloc.h``)."""

MMAP_THRESHOLD_MAX = 32 * 2**20
"""The largest ``M_MMAP_THRESHOLD`` every 64-bit glibc accepts; larger arrays stay ``mmap``-ed."""


def keep_freed_memory(limit: int = 256 * 2**20) -> bool:
    """Keep up to ``limit`` bytes of freed memory in the process (glibc's ``malloc`` only).

    Arrays up to ``min(limit, 32 MiB)`` come from the heap, and the heap is returned to
    the system only when more than ``limit`` bytes at its top are free. Call it once, at
    the start of a training loop; it affects every allocation of the process (PyTorch's
    too).

    Returns:
        True when glibc took both settings; False elsewhere (macOS, Windows, musl), where
        nothing is changed.

    Raises:
        ValueError: ``limit`` is not a positive number of bytes below 2 GiB (``mallopt``
            takes an ``int``).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit < 2**31:
        raise ValueError(f"keep_freed_memory: limit must be a number of bytes in 1 … 2**31 - 1, got {limit!r}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, min(limit, MMAP_THRESHOLD_MAX))) and bool(mallopt(M_TRIM_THRESHOLD, limit))


def _mallopt():  # noqa: ANN202 - a ctypes function or None
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: no glibc tunables
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt
