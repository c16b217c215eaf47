"""``compile(…, backend="auto")``: one compiled function per array library, chosen by each call's arrays."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from eincalc.codegen.backends import backend_of
from eincalc.codegen.program import CompiledFunction
from eincalc.expr import Node


class AutoFunction:
    """Compiled functions of the same outputs for each array library met so far.

    A call runs the function of its arrays' library (torch tensors: the torch code;
    NumPy arrays or numbers: the NumPy code), compiled on first use. ``source``,
    ``save`` and the other attributes are those of the function last called (NumPy's
    before any call).
    """

    def __init__(self, outputs: Node | Sequence[Node], sizes: Mapping[str, int] | None, dense: bool, name: str) -> None:
        self._args = (outputs, sizes, dense, name)
        self._compiled: dict[str, CompiledFunction] = {}
        self._last = self._for("numpy")

    def _for(self, backend: str) -> CompiledFunction:
        fn = self._compiled.get(backend)
        if fn is None:
            outputs, sizes, dense, name = self._args
            fn = self._compiled[backend] = CompiledFunction(outputs, backend, sizes, dense, name)
        return fn

    def __call__(self, /, *arrays: object, **named_arrays: object) -> Any:
        self._last = self._for(backend_of([*arrays, *named_arrays.values()]))
        return self._last(*arrays, **named_arrays)

    @property
    def backend(self) -> str:
        """The backend of the last call."""
        return self._last.backend

    @property
    def source(self) -> str:
        return self._last.source

    def save(self, path: str | os.PathLike[str]) -> str:
        return self._last.save(path)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._last, name)

    def __repr__(self) -> str:
        return repr(self._last).replace(f"backend {self._last.backend}", f"backend auto ({self._last.backend})")
