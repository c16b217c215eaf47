"""Executing generated source, with its lines in :mod:`linecache` only while it is used.

Tracebacks through generated code show its lines because the source is registered in
``linecache`` under a name derived from its hash. Registrations are counted: a
:class:`~eincalc.codegen.program.CompiledFunction` releases a function's entry when it
drops the size variant that used it or is garbage-collected, and the entry goes when no
holder is left (entries used to stay forever: 20 000 size signatures left 20 000).
"""

from __future__ import annotations

import builtins
import hashlib
import linecache
import threading
from collections.abc import Callable, Iterable
from typing import Any

_HOLDERS: dict[str, int] = {}  # linecache file name -> number of loads not yet released
_LOCK = threading.Lock()


def load(source: str, name: str) -> tuple[Callable[..., Any], str]:
    """Execute ``source`` in a fresh namespace; its function ``name`` and the linecache file name.

    Every call must be matched by one :func:`release` of the returned file name.
    """
    filename = f"<eincalc {name} {hashlib.blake2b(source.encode(), digest_size=6).hexdigest()}>"
    code = builtins.compile(source, filename, "exec")
    namespace: dict[str, Any] = {"__name__": "eincalc_generated"}
    exec(code, namespace)  # noqa: S102 - generated code only; user text enters as validated identifiers
    with _LOCK:
        _HOLDERS[filename] = _HOLDERS.get(filename, 0) + 1
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return namespace[name], filename


def release(filenames: Iterable[str]) -> None:
    """Give up one hold on each of ``filenames``; an entry nobody holds leaves linecache."""
    with _LOCK:
        for filename in filenames:
            left = _HOLDERS.get(filename, 0) - 1
            if left > 0:
                _HOLDERS[filename] = left
            else:
                _HOLDERS.pop(filename, None)
                linecache.cache.pop(filename, None)


def release_all(functions: dict[str, tuple[Callable[..., Any], str]]) -> None:
    """Release every function of a ``source -> (function, file name)`` table and empty it."""
    release([filename for _, filename in functions.values()])
    functions.clear()
