"""keep_freed_memory: glibc keeps a freed array's memory for the next one (checked in fresh processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import eincalc as ec

# Frees a 16 MiB array and reports how many free bytes the heap then holds (mallinfo2).
PROBE = """
import ctypes, ctypes.util, sys
import numpy as np
import eincalc as ec
kept = ec.keep_freed_memory() if sys.argv[1] == "keep" else None
FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in FIELDS]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
a = np.ones(2 * 2**20)
del a
print(kept, libc.mallinfo2().fordblks)
"""


def _probe(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120, check=True)
    kept, free = out.stdout.split()
    return kept, int(free)


def _has_mallinfo2() -> bool:
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc ≥ 2.33 (mallinfo2)")
def test_freed_array_stays_in_the_heap_only_when_asked():
    kept, free = _probe("keep")
    assert kept == "True"
    assert free >= 16 * 2**20  # the array came from the heap and was not trimmed
    kept, free = _probe("default")
    assert kept == "None" and free < 16 * 2**20  # a fresh process maps it and unmaps it on free


@pytest.mark.parametrize("limit", [0, -5, 2**31, 1.5, True, "256M"])
def test_limit_must_be_a_positive_int_below_2_gib(limit):
    with pytest.raises(ValueError, match="keep_freed_memory: limit"):
        ec.keep_freed_memory(limit)
