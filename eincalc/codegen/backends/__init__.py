"""Backends: which array library a compiled function's code is written for and runs on.

A :class:`Backend` names the library, the ``eincalc[<extra>]`` that installs it, the
printer that spells the program in its API and the few runtime operations the calling
side needs (is this one of its arrays, convert an argument, a stand-in of a shape). The
program itself (which statements, in which order, planned for which sizes) is the same
for every backend: :mod:`eincalc.codegen.program`.

``BACKENDS`` is the registry (``register_backend`` adds one); ``"auto"`` is no backend
but a choice made per call from the arrays passed (:func:`backend_of`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eincalc.codegen.backends.array_printer import ArrayLibraryPrinter
from eincalc.codegen.backends.cupy_backend import CuPyPrinter
from eincalc.codegen.backends.dask_backend import DaskPrinter
from eincalc.codegen.backends.jax_backend import JaxPrinter
from eincalc.codegen.backends.torch_backend import TorchPrinter
from eincalc.codegen.numpy_printer import NumPyPrinter
from eincalc.codegen.printer import Printer
from eincalc.errors import BackendUnavailableError, UnknownNameError

AUTO = "auto"


@dataclass(frozen=True)
class Backend:
    """An array library generated code can run on.

    Attributes:
        name: what ``compile(…, backend=name)`` takes.
        module: the module to import (its absence means the backend is unavailable).
        extra: the optional dependency group installing it (``pip install "eincalc[extra]"``).
        printer: the printer class spelling programs in the library's API.
        array_type: the dotted name of the library's array class (for ``"auto"``).
        dense: compressed δ ⊗ core results are returned dense (StructuredTensor is a NumPy class).
        reserved: names the generated code uses besides NumPy's (its modules): a variable so
            named is renamed in the code.
    """

    name: str
    module: str
    extra: str
    printer: type[Printer]
    array_type: str = ""
    dense: bool = True
    reserved: frozenset[str] = frozenset()
    _loaded: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def load(self) -> Any:
        """The library's module; :class:`BackendUnavailableError` naming the extra when it is not installed."""
        mod = self._loaded.get("module")
        if mod is None:
            try:
                mod = importlib.import_module(self.module)
            except ImportError as exc:
                raise BackendUnavailableError(
                    f"the {self.name} backend needs {self.module.split('.')[0]}, which is not installed "
                    f'({exc}); install it with: pip install "eincalc[{self.extra}]"'
                ) from None
            self._loaded["module"] = mod
        return mod

    def owns(self, value: object) -> bool:
        """True when ``value`` is one of this library's arrays (a library not imported yet has none)."""
        array_class = self._loaded.get("array_type")
        if array_class is not None:  # every call checks every argument: the class is looked up once
            return isinstance(value, array_class)
        module, _, cls = self.array_type.rpartition(".")
        if not module or module.split(".")[0] not in sys.modules:
            return False
        array_class = self._loaded.get("array_type")
        if array_class is None:
            try:
                array_class = self._loaded["array_type"] = getattr(importlib.import_module(module), cls)
            except ImportError:
                return False
        return isinstance(value, array_class)

    def dtype_of(self, value: object) -> np.dtype:
        """The NumPy dtype matching an array's element type (``torch.float32`` → ``float32``)."""
        return np.dtype(str(value.dtype).rpartition(".")[2])  # type: ignore[attr-defined]

    def convert(self, value: object, dtype: np.dtype, like: object = None) -> Any:
        """``value`` (this library's array, a NumPy array or a number) as this library's array of ``dtype``.

        ``like`` is an array of this library whose device a NumPy argument should join.
        """
        return _CONVERT[self.name](self.load(), value, dtype, like)

    def stand_in(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        """A zero-stride array of ``shape``: an argument the call left out (the code reads only its shape)."""
        xp = self.load()
        zero = self.convert(np.zeros((), dtype), dtype)
        return xp.broadcast_to(zero, shape)


def _convert_numpy(xp: Any, value: object, dtype: np.dtype, like: object) -> Any:
    return np.asarray(value, dtype=dtype)


def _convert_torch(torch: Any, value: object, dtype: np.dtype, like: object) -> Any:
    device = getattr(like, "device", None) if isinstance(like, torch.Tensor) else None
    return torch.as_tensor(value, dtype=getattr(torch, dtype.name), device=device)


def _convert_jax(jnp: Any, value: object, dtype: np.dtype, like: object) -> Any:
    return jnp.asarray(value, dtype=dtype)


def _convert_dask(da: Any, value: object, dtype: np.dtype, like: object) -> Any:
    if isinstance(value, da.Array):
        return value if value.dtype == dtype else value.astype(dtype)
    return da.from_array(np.asarray(value, dtype=dtype))


def _convert_cupy(cp: Any, value: object, dtype: np.dtype, like: object) -> Any:
    return cp.asarray(value, dtype=dtype)


_CONVERT: dict[str, Callable[[Any, object, np.dtype, object], Any]] = {
    "numpy": _convert_numpy,
    "torch": _convert_torch,
    "jax": _convert_jax,
    "dask": _convert_dask,
    "cupy": _convert_cupy,
}

BACKENDS: dict[str, Backend] = {}
"""Backends by name."""


def register_backend(backend: Backend, convert: Callable[[Any, object, np.dtype, object], Any]) -> None:
    """Add ``backend`` (with its argument conversion ``convert(module, value, dtype, like)``) to the registry.

    Raises:
        KeyError: when a backend of that name exists.
    """
    if backend.name in BACKENDS or backend.name == AUTO:
        raise KeyError(f"a backend named {backend.name!r} is already registered")
    BACKENDS[backend.name] = backend
    _CONVERT[backend.name] = convert


for _backend in (
    Backend("numpy", "numpy", "", NumPyPrinter, "numpy.ndarray", dense=False),
    Backend("torch", "torch", "torch", TorchPrinter, "torch.Tensor", reserved=frozenset({"torch"})),
    Backend("jax", "jax.numpy", "jax", JaxPrinter, "jax.Array", reserved=frozenset({"jax"})),
    # math and range (Dask's paired gathers) are reserved for every backend: program.RESERVED_NAMES
    Backend("dask", "dask.array", "dask", DaskPrinter, "dask.array.Array", reserved=frozenset({"dask"})),
    Backend("cupy", "cupy", "cupy", CuPyPrinter, "cupy.ndarray", reserved=frozenset({"cupy", "cupyx"})),
):
    BACKENDS[_backend.name] = _backend


def get_backend(name: str) -> Backend:
    """The backend called ``name``, its library imported.

    Raises:
        UnknownNameError: for a name no backend has.
        BackendUnavailableError: when its library is not installed (the message names the extra).
    """
    backend = BACKENDS.get(name) if isinstance(name, str) else None
    if backend is None:
        raise UnknownNameError(f"unknown backend {name!r}; known: {', '.join(sorted([*BACKENDS, AUTO]))}")
    backend.load()
    return backend


def backend_of(values: Iterable[object]) -> str:
    """The backend for a call with ``values`` (``"auto"``): the library of its arrays, NumPy for plain data.

    Raises:
        ArgumentError: for arrays of two different libraries in one call.
    """
    from eincalc.errors import ArgumentError

    found: dict[str, None] = {}
    for value in values:
        for backend in BACKENDS.values():
            if backend.name != "numpy" and backend.owns(value):
                found[backend.name] = None
    if len(found) > 1:
        raise ArgumentError(f"the arrays of one call belong to different libraries: {', '.join(found)}")
    return next(iter(found), "numpy")


__all__ = [
    "AUTO", "ArrayLibraryPrinter", "BACKENDS", "Backend", "CuPyPrinter", "DaskPrinter", "JaxPrinter", "TorchPrinter",
    "backend_of", "get_backend", "register_backend",
]  # fmt: skip
