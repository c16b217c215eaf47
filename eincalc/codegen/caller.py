"""The calling side of a compiled function: from a call's arrays to the generated function's arguments.

:class:`Caller` binds a call as :func:`eincalc.calling.bind_arguments` does (the
function's signature, positionally or by keyword, dims sized by int keywords), asks the
program for the code variant of the bound sizes, passes zero-stride stand-ins for
arguments the call left out (the code reads at most their shape), and returns the
results in the arrays' float type. Calls with float64 arrays of shapes seen before skip
the checks: the shapes were checked the first time.

Not here: planning and generating the variants (:mod:`eincalc.codegen.program`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from eincalc._types import Dim, SizeDict
from eincalc.calling import Binding, Signature, bind_arguments, cast_result
from eincalc.expr import Node

_FLOAT64 = np.dtype(np.float64)
_FLOAT32 = np.dtype(np.float32)
_FLOAT_TYPES = (_FLOAT32, _FLOAT64)


def _shapes_key(shapes: Sequence[tuple[int, ...]], dtype: np.dtype) -> tuple:
    """The fast path's key of a NumPy call: the arguments' shapes (and "float32" for float32 calls)."""
    return tuple(shapes) if dtype == _FLOAT64 else (*shapes, "float32")


MAX_SHAPES = 64
"""Shape signatures remembered for the fast path (all are forgotten beyond this)."""

Variant = TypeVar("Variant")


class Caller(Generic[Variant]):
    """Binds calls to ``signature`` and runs the variant the program gives for their sizes.

    Args:
        signature: the arguments, in positional order.
        used: the names the code computes with (required in a call).
        dims: every dim the code needs a size for.
        fixed: sizes given at compile time.
        free_dims: keyword parameter of the generated function per dim no argument carries.
        caller: how messages name the function (``"f()"``).
        variant_for: the variant for a complete size assignment (planned and cached by the program).
        use: the generated function of a variant (the program notes it as the last one used).
        finish: turns the generated function's result into the caller's (structured tensors).
        single: whether the function has one output (else a tuple).
    """

    def __init__(
        self,
        signature: Signature,
        used: Sequence[str],
        dims: Sequence[Dim],
        fixed: SizeDict,
        free_dims: Mapping[Dim, str],
        caller: str,
        variant_for: Callable[[SizeDict], Variant],
        use: Callable[[Variant], Callable[..., Any]],
        finish: Callable[[Any], Any],
        single: bool,
        constants: Sequence[Node] = (),
    ) -> None:
        self.signature = signature
        self.names = signature.names
        self.used = tuple(used)
        self.dims = tuple(dims)
        self.fixed = fixed
        self.free_dims = dict(free_dims)
        self.caller = caller
        self._variant_for = variant_for
        self._use = use
        self._finish = finish
        self._single = single
        self.constants = tuple(constants)  # constant arrays and gathers: their data bind dims too
        self._by_shapes: dict[tuple, tuple[Variant, dict[str, int], dict[str, np.ndarray]]] = {}
        self._fast: dict[tuple, tuple[Variant, dict[str, int]]] = {}  # shapes (and type, device) -> variant

    def keep_only(self, variants: set[int]) -> None:
        """Forget the shapes that lead to variants (by ``id``) not in ``variants`` (dropped by the program)."""
        self._by_shapes = {shapes: hit for shapes, hit in list(self._by_shapes.items()) if id(hit[0]) in variants}
        self._fast = {shapes: hit for shapes, hit in list(self._fast.items()) if id(hit[0]) in variants}

    def _every_argument(self, arrays: tuple[object, ...], named_arrays: dict[str, object]) -> Sequence[object] | None:
        """The arguments in signature order when the call gives each (all positionally or all by name), else None."""
        names = self.names
        if not named_arrays and len(arrays) == len(names) and self.signature.ordered:
            return arrays
        if not arrays and len(named_arrays) == len(names):
            return [named_arrays.get(n) for n in names]
        return None

    def __call__(self, arrays: tuple[object, ...], named_arrays: dict[str, object]) -> Any:
        # Fastest path: every argument given (all positionally or all by name), float64 or
        # float32 arrays of shapes seen before: one dict look-up, no binding.
        full = self._every_argument(arrays, named_arrays)
        dtype = full[0].dtype if full and type(full[0]) is np.ndarray else None  # type: ignore[union-attr]
        # float32 calls too: training code runs in float32 (`dtype == None` holds: NumPy reads None as float64)
        if dtype is not None and dtype in _FLOAT_TYPES:
            shapes = []
            for a in full:  # type: ignore[union-attr]
                if type(a) is not np.ndarray or a.dtype != dtype:  # type: ignore[union-attr]
                    break
                shapes.append(a.shape)  # type: ignore[union-attr]
            else:
                fast = self._fast.get(_shapes_key(shapes, dtype))
                if fast is not None:
                    return self._in_type(self._finish(self._use(fast[0])(*full, **fast[1])), dtype)
        given = self._gather(arrays, named_arrays)
        hit = None
        if given is not None:
            for a in given.values():
                if type(a) is not np.ndarray or a.dtype != _FLOAT64:
                    break
            else:
                hit = self._by_shapes.get(tuple([(k, a.shape) for k, a in given.items()]))  # type: ignore[attr-defined]
        if hit is None:
            return self._call_checked(arrays, named_arrays, cache=given is not None)
        variant, free, stand_ins = hit
        args = [given[k] if k in given else stand_ins[k] for k in self.names]  # type: ignore[index,operator]
        return self._finish(self._use(variant)(*args, **free))

    def _gather(self, arrays: tuple[object, ...], named_arrays: dict[str, object]) -> dict[str, object] | None:
        """Arrays by name in signature order, or None unless the call is only arrays, all needed ones, each once."""
        if arrays and not self.signature.ordered or len(arrays) > len(self.names):
            return None
        if not named_arrays and len(arrays) == len(self.names):
            return dict(zip(self.names, arrays))
        given = dict(zip(self.names, arrays))
        for name in self.names[len(arrays) :]:
            if name in named_arrays:
                given[name] = named_arrays[name]
        if len(given) != len(arrays) + len(named_arrays) or any(n not in given for n in self.used):
            return None  # dim sizes, unknown names, arrays given twice or missing: the checked path says which
        return given

    def _call_checked(self, arrays: tuple[object, ...], named_arrays: dict[str, object], cache: bool) -> Any:
        bound = bind_arguments(
            self.signature, self.used, self.dims, arrays, named_arrays, self.fixed, self.caller, self.constants
        )
        variant = self._variant_for({d: bound.sizes[d] for d in self.dims})
        free = {code: bound.sizes[d] for d, code in self.free_dims.items()}
        stand_ins = self._stand_ins(bound)
        if cache and bound.dtype == _FLOAT64:  # the shapes alone now determine the sizes
            if len(self._by_shapes) >= MAX_SHAPES:
                self._by_shapes.clear()
            self._by_shapes[tuple((k, a.shape) for k, a in bound.arrays.items())] = (variant, free, stand_ins)
        if cache and not stand_ins and bound.dtype in _FLOAT_TYPES:
            self._remember(_shapes_key([bound.arrays[k].shape for k in self.names], bound.dtype), variant, free)
        args = [bound.arrays[k] if k in bound.arrays else stand_ins[k] for k in self.names]
        return self._in_type(self._finish(self._use(variant)(*args, **free)), bound.dtype)

    def _remember(self, key: tuple, variant: Variant, free: dict[str, int]) -> None:
        """The fast path's entry for calls of ``key`` (all are forgotten beyond :data:`MAX_SHAPES`)."""
        if len(self._fast) >= MAX_SHAPES:
            self._fast.clear()
        self._fast[key] = (variant, free)

    def _in_type(self, result: Any, dtype: np.dtype) -> Any:
        """The results in the call's float type (float32 stays float32)."""
        if dtype == _FLOAT64:
            return result
        if self._single:
            return cast_result(result, dtype)
        return tuple(cast_result(r, dtype) for r in result)

    def _stand_ins(self, bound: Binding) -> dict[str, np.ndarray]:
        """Zero-stride arrays of the bound sizes for the arguments not given (size 0 for dims no one needs)."""
        zero = np.zeros((), bound.dtype)
        return {
            v.name: np.broadcast_to(zero, tuple(bound.sizes.get(d, 0) for d in v.dims))
            for v in self.signature.variables
            if v.name not in bound.arrays
        }


class LibraryCaller(Caller[Variant]):
    """A :class:`Caller` for another array library's code: arrays stay that library's arrays.

    The call is checked and sized exactly as for NumPy, on zero-stride NumPy stand-ins of
    the arrays' shapes (a several-GB Dask array is never read); the generated function
    then gets the arrays themselves, converted to the library (NumPy arrays and numbers
    given to a torch function become tensors, on the device of the tensors passed) and
    to the call's float type: float32 when every floating array is float32.
    """

    def __init__(self, backend: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = backend

    @classmethod
    def for_backend(cls, backend: Any) -> Callable[..., LibraryCaller[Any]]:
        """A constructor taking :class:`Caller`'s arguments, for ``backend`` (a ``Backend``)."""
        return lambda *args, **kwargs: cls(backend, *args, **kwargs)

    def _fast_key(self, full: Sequence[object]) -> tuple | None:
        """The key of a call whose arrays need no conversion, or None.

        That is every argument the library's array, all of one float type (float32 or
        float64) and, where arrays have a device, on one device: the generated function
        then gets them as they are, and the shapes alone determine the variant.
        """
        backend = self.backend
        first = full[0]
        if not backend.owns(first) or backend.dtype_of(first) not in _FLOAT_TYPES:
            return None
        dtype, device = first.dtype, getattr(first, "device", None)  # type: ignore[attr-defined]
        shapes = []
        for a in full:
            if not backend.owns(a) or a.dtype != dtype or getattr(a, "device", None) != device:  # type: ignore[attr-defined]
                return None
            shapes.append(tuple(a.shape))  # type: ignore[attr-defined]
        return (*shapes, dtype, device)

    def __call__(self, arrays: tuple[object, ...], named_arrays: dict[str, object]) -> Any:
        # Fast path, as for NumPy: the library's arrays of one float type and shapes seen before
        full = self._every_argument(arrays, named_arrays)
        key = None if full is None else self._fast_key(full)
        if key is not None:
            fast = self._fast.get(key)
            if fast is not None:
                return self._finish(self._use(fast[0])(*full, **fast[1]))
        backend = self.backend
        values = [*arrays, *(v for k, v in named_arrays.items() if k in self.names)]
        # Python numbers do not count (as for NumPy): a float32 tensor and a float stay float32
        kinds = [backend.dtype_of(v) if backend.owns(v) else np.asarray(v).dtype for v in values if not _number(v)]
        floats = [k for k in kinds if k.kind == "f"]
        dtype = np.dtype(np.float32) if floats and all(k == np.float32 for k in floats) else _FLOAT64

        def shadow(value: object) -> object:
            if backend.owns(value):
                return np.broadcast_to(np.zeros((), dtype), tuple(int(s) for s in value.shape))  # type: ignore[attr-defined]
            return value

        bound = bind_arguments(
            self.signature,
            self.used,
            self.dims,
            tuple(shadow(a) for a in arrays),
            {k: shadow(v) for k, v in named_arrays.items()},
            self.fixed,
            self.caller,
            self.constants,
        )
        variant = self._variant_for({d: bound.sizes[d] for d in self.dims})
        free = {code: bound.sizes[d] for d, code in self.free_dims.items()}
        real = {**dict(zip(self.names, arrays)), **{k: v for k, v in named_arrays.items() if k in self.names}}
        like = next((v for v in values if backend.owns(v)), None)
        args = []
        for v in self.signature.variables:
            if v.name in bound.arrays:
                args.append(backend.convert(real.get(v.name, bound.arrays[v.name]), bound.dtype, like))
            else:
                args.append(backend.stand_in(tuple(bound.sizes.get(d, 0) for d in v.dims), bound.dtype))
        if key is not None:  # every argument given and converted to itself: checked once per shapes
            self._remember(key, variant, free)
        return self._finish(self._use(variant)(*args, **free))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
