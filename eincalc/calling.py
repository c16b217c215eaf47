"""The calling convention: which arrays an expression takes, in which order, and binding them.

A function's *signature* is its variables (names and dims) in declaration order: the
keywords of :func:`eincalc.parse` first, then undeclared names in order of appearance;
for expressions built with Python operators, the order in which the variables were
created (``X, w = ec.matrix(...), ec.vector(...)`` declares X before w). A derivative
remembers the signature of the function it came from, with the variables that
simplification dropped (the Hessian of ``x @ A @ x`` no longer reads ``x``): so
``evaluate``, ``compile`` and the generated callables take the function's own arrays,
in its order, positionally or by keyword, for the function and all its derivatives.

Binding (:func:`bind_arguments`): positional arrays bind to the signature in order,
keywords by name, an int keyword named after a dim gives that dim's size. The arrays
the expression reads are required, the others optional; every array given binds the
sizes of its dims (so ``H(T, U, V)`` knows the m that only ``U`` carried). Anything
else is an :class:`~eincalc.errors.ArgumentError` (a ``TypeError``): a missing or
unknown name (with the nearest known one), too many arrays, an array given twice, a
complex or non-numeric array. Sizes that disagree are a
:class:`~eincalc.errors.SizeError`.

Arrays are computed in float64, or in float32 when every floating array given is
float32 (Python numbers do not count): float32 in, float32 out.

Not here: the generated code (:mod:`eincalc.codegen`), differentiation
(:mod:`eincalc.diff`, which records signatures through :func:`remember`).
"""

from __future__ import annotations

import difflib
import functools
import threading
import weakref
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from eincalc import dims as dimsmod
from eincalc._types import Dim, SizeDict
from eincalc.errors import ArgumentError, ShapeError, SizeError
from eincalc.expr import Array, Node, Var, Window
from eincalc.graph import topo_order

_REMEMBERED: weakref.WeakKeyDictionary[Node, Signature] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Signature:
    """The variables a function takes, in order.

    ``ordered`` is False when one expression was reached from functions that order their
    variables differently (the gradient of two losses can be the same node): then only
    keyword calls are accepted, positional ones would be a guess.
    """

    variables: tuple[Var, ...]
    ordered: bool = True

    def __post_init__(self) -> None:
        seen: dict[str, Var] = {}
        for v in self.variables:
            other = seen.setdefault(v.name, v)
            if other is not v:
                raise ShapeError(
                    f"the name {v.name!r} is a variable with dims {dimsmod.fmt(other.dims)} and one with dims "
                    f"{dimsmod.fmt(v.dims)}: one name can only be one argument"
                )

    @property
    def names(self) -> tuple[str, ...]:
        """The argument names, in order."""
        return tuple(v.name for v in self.variables)

    @functools.cached_property
    def _by_name(self) -> dict[str, Var]:
        return {v.name: v for v in self.variables}

    @functools.cached_property
    def _variable_set(self) -> frozenset[Var]:
        return frozenset(self.variables)

    def get(self, name: str) -> Var | None:
        """The variable called ``name``, or None."""
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.variables)

    def __str__(self) -> str:
        return "(" + ", ".join(f"{v.name}: {dimsmod.fmt(v.dims)}" for v in self.variables) + ")"


def _union(signatures: Iterable[Signature]) -> Signature:
    """All variables of ``signatures``, first occurrence first (a name with two dims raises)."""
    found: dict[str, Var] = {}
    clashes: list[Var] = []
    ordered = True
    # a signature met again adds nothing (the gradients of one function share theirs)
    for sig in {id(sig): sig for sig in signatures}.values():
        ordered = ordered and sig.ordered
        for v in sig.variables:
            if found.setdefault(v.name, v) is not v:
                clashes.append(v)  # Signature() names both dims
    return Signature((*found.values(), *clashes), ordered)


def declared(variables: Sequence[Var]) -> Signature:
    """The signature of the variables in the order given (a name with two dims raises)."""
    return Signature(tuple(dict.fromkeys(variables)))


def remember(node: Node, sig: Signature) -> Node:
    """Record that ``node`` takes the arrays of ``sig``; returns ``node``.

    Nodes are shared (equal structure is one object: a gradient that is just ``V``), so
    a node may be reached from several functions. It then takes the arrays of all of
    them by keyword (the latest function's first), and positional calls only while their
    orders agree; where two of them give one name different dims, the latest function's
    signature wins, for keyword calls only. A node that reads no variable (a zero, a
    constant: shared by every function with that value) takes the latest function's.
    """
    used = _variables_below(node)
    missing = used - sig._variable_set  # one name is one variable in a signature
    full = _union([sig, _by_creation(missing)]) if missing else sig
    with _LOCK:
        old = _REMEMBERED.get(node)
        if old is None or old == full or not used:
            _REMEMBERED[node] = full
            return node
        common = [n for n in full.names if old.get(n) is not None]
        same_order = common == [n for n in old.names if full.get(n) is not None]
        try:
            merged = _union([full, old])
        except ShapeError:
            merged, same_order = full, False
        _REMEMBERED[node] = Signature(merged.variables, merged.ordered and same_order)
    return node


def carry_signature(source: Node, target: Node) -> Node:
    """``target`` remembering ``source``'s signature, if ``source`` has one recorded (a rewrite of one function)."""
    sig = _REMEMBERED.get(source)
    return target if sig is None or target is source else remember(target, sig)


_VARIABLES_BELOW: weakref.WeakKeyDictionary[Node, frozenset[Var]] = weakref.WeakKeyDictionary()


def _used(node: Node | Sequence[Node]) -> list[Var]:
    """The variables ``node`` reads, in creation order.

    Remembered per node: the derivatives of one function share most of their DAG, and
    walking it for each would cost O(depth²).
    """
    return sorted(_variables_below(node), key=lambda v: v.serial)


def used_variables(exprs: Node | Sequence[Node]) -> frozenset[Var]:
    """The variables ``exprs`` read (remembered per node: no walk once a signature is known)."""
    return _variables_below(exprs)


def _variables_below(node: Node | Sequence[Node]) -> frozenset[Var]:
    """The variables ``node`` reads, as a set (see :func:`_used`)."""
    roots = [node] if isinstance(node, Node) else list(node)
    with _LOCK:
        for n in topo_order(roots, stop=_VARIABLES_BELOW.__contains__):
            if n not in _VARIABLES_BELOW:
                _VARIABLES_BELOW[n] = (
                    frozenset((n,)) if isinstance(n, Var) else _union_of([_VARIABLES_BELOW[c] for c in n.children])
                )
        return _union_of([_VARIABLES_BELOW[r] for r in roots])


def _union_of(sets: list[frozenset[Var]]) -> frozenset[Var]:
    """The union of ``sets``: the largest itself when it holds the others (shared, not copied).

    Along a deep chain each node reads (nearly) what its widest child reads; copying that
    set at every node cost O(nodes × variables).
    """
    if not sets:
        return frozenset()
    widest = max(sets, key=len)
    if all(s is widest or s <= widest for s in sets):
        return widest
    return widest.union(*sets)


def _by_creation(variables: Iterable[Var]) -> Signature:
    return declared(sorted(set(variables), key=lambda v: v.serial))


def signature(exprs: Node | Sequence[Node]) -> Signature:
    """The arrays ``exprs`` take: each expression's signature, in order, then unrecorded variables.

    An expression remembers the signature it was parsed with or derived from; other
    expressions take their variables in the order they were created.

    Examples:
        >>> import eincalc as ec
        >>> f = ec.parse("sum((T - U @ V.T) ** 2)", T="m n", U="m k", V="n k")
        >>> print(ec.signature(ec.hessian(f, "U")))
        (T: (m, n), U: (m, k), V: (n, k))
    """
    roots = [exprs] if isinstance(exprs, Node) else list(exprs)
    parts = []
    for r in roots:
        sig = _REMEMBERED.get(r)
        if sig is None:
            sig = _CREATION_ORDER.get(r)
            if sig is None:  # the variables below a node never change: computed once
                sig = _CREATION_ORDER[r] = _by_creation(_used(r))
        parts.append(sig)
    return parts[0] if len(parts) == 1 else _union(parts)


_CREATION_ORDER: weakref.WeakKeyDictionary[Node, Signature] = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------------------
# binding arrays
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binding:
    """Arrays bound to a signature: ``arrays`` (every one given, converted), ``sizes``, ``dtype``."""

    arrays: dict[str, np.ndarray]
    sizes: SizeDict
    dtype: np.dtype


def bind_arguments(
    sig: Signature,
    used: Collection[str],
    dims: Collection[Dim],
    args: Sequence[object] = (),
    kwargs: Mapping[str, object] | None = None,
    fixed: Mapping[Dim, int] | None = None,
    caller: str = "the expression",
    constants: Sequence[Node] = (),
) -> Binding:
    """Bind ``args`` (positional, in ``sig`` order) and ``kwargs`` (by name) to ``sig``.

    Args:
        sig: the signature.
        used: the names whose arrays the computation reads (required).
        dims: every dim the computation needs a size for; an int keyword may name one.
        args: arrays in signature order.
        kwargs: arrays by variable name, and dim sizes by dim name.
        fixed: sizes already bound (compile's ``sizes``); arrays must agree.
        caller: how messages name the callee (``"f"``).
        constants: constant leaves whose data bind dims as a variable's array does
            (:class:`~eincalc.expr.Array`, gathering :class:`~eincalc.expr.Window`).

    Raises:
        ArgumentError: missing, unknown, extra, doubly given or non-real arrays.
        SizeError: ranks that do not fit, disagreeing sizes, dims without a size.
    """
    kwargs = dict(kwargs or {})
    if not all(isinstance(k, str) and k.isascii() for k in kwargs):  # names are NFKC, as variables' are
        from eincalc.algebra import normalise_name

        kwargs = {normalise_name(k) if isinstance(k, str) else k: v for k, v in kwargs.items()}
    names = sig.names
    if len(args) > len(names):
        raise ArgumentError(f"{caller} takes {len(names)} array(s) ({', '.join(names)}) but {len(args)} were given")
    if args and not sig.ordered:
        raise ArgumentError(
            f"{caller} was reached from functions that order their arguments differently; "
            f"pass its arrays by name ({', '.join(names)})"
        )
    given: dict[str, object] = dict(zip(names, args))
    sizes: dict[Dim, int] = {}
    size_dims = {d for v in sig.variables for d in v.dims} | set(dims)
    size_dims |= {b for d in size_dims if dimsmod.is_derived(d) for b in dimsmod.base_dims(d)}
    for key, value in kwargs.items():
        if key in given:
            raise ArgumentError(f"array {key!r} given both by position and by name")
        if sig.get(key) is not None:
            given[key] = value
        elif key in size_dims and not dimsmod.is_literal(key):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ArgumentError(f"{key} is a dim of {caller}: give its size as a non-negative int, not {value!r}")
            sizes[key] = int(value)
        else:
            raise ArgumentError(_unknown(key, names, sorted(d for d in size_dims if not dimsmod.is_literal(d)), caller))
    missing = [n for n in names if n in used and n not in given]
    if missing:
        raise ArgumentError(f"no array given for {', '.join(missing)} ({caller} takes {', '.join(names)})")
    arrays = {n: given[n] for n in names if n in given}  # signature order
    dtype = _compute_dtype(arrays)
    values: dict[str, np.ndarray] = {}
    bound: SizeDict = {}
    source: dict[Dim, str] = {}
    for d, s in {**(fixed or {}), **sizes}.items():
        _bind(bound, source, d, s, "the sizes given")
    for name, raw in arrays.items():
        var = sig.get(name)
        assert var is not None
        value = np.asarray(raw, dtype=dtype)
        if value.ndim != var.ndim:
            raise SizeError(
                f"{name} has dims {dimsmod.fmt(var.dims)} (rank {var.ndim}) but the array has shape {value.shape}"
            )
        for axis, (d, s) in enumerate(zip(var.dims, value.shape)):
            _bind(bound, source, d, int(s), f"axis {axis} of {name}")
        values[name] = value
    for n in constants:
        if isinstance(n, Array):
            for axis, (d, s) in enumerate(zip(n.dims, n.data.shape)):
                _bind(bound, source, d, int(s), f"axis {axis} of a constant array of shape {n.data.shape}")
        elif isinstance(n, Window) and n.rows is not None:
            _bind(bound, source, n.dims[0], len(n.rows), f"the {len(n.rows)} gathered positions")
    for d in dims:
        if d not in bound and dimsmod.is_literal(d):
            bound[d] = int(d)
    for d in [d for d in bound if "*" in d]:  # an array of dim m*n and the size of n give m
        unknown = [f for f in dimsmod.factors(d) if not dimsmod.is_literal(f) and f not in bound]
        if len(unknown) == 1:
            rest = dimsmod.derived_size(d, {**bound, unknown[0]: 1})
            if rest and bound[d] % rest == 0:
                _bind(bound, source, unknown[0], bound[d] // rest, f"dim {d!r} of size {bound[d]}")
    for d in dims:  # m*n, n-1: from their base dims
        size = dimsmod.derived_size(d, bound) if dimsmod.is_derived(d) else None
        if size is not None:
            if size < 0:
                raise SizeError(f"dim {d!r} would have the negative size {size}")
            _bind(bound, source, d, size, f"its dims ({', '.join(dimsmod.base_dims(d))})")
    unbound = sorted(
        {b for d in set(dims) if d not in bound for b in (dimsmod.base_dims(d) if dimsmod.is_derived(d) else (d,))}
        - set(bound)
    )
    if unbound:
        carriers = [v.name for v in sig.variables if v.name not in given and any(d in v.dims for d in unbound)]
        hint = f"pass the array of {' or '.join(carriers)} or" if carriers else "pass"
        raise SizeError(f"no size for dim(s) {', '.join(unbound)}: {hint} {unbound[0]}=<size>")
    for n in constants:
        if isinstance(n, Window) and n.dims[1] in bound:
            _check_window(n, bound)
    return Binding(values, bound, dtype)


def _check_window(w: Window, bound: SizeDict) -> None:
    """A selection that reaches past the end of its dim is a SizeError, not a shorter result.

    Past the end, NumPy and torch raise IndexError for a gather but JAX clamps its
    positions; every library cuts a slice short (``x[1:3]`` of two entries is one entry,
    which then broadcasts), so the answer would be silently wrong.
    """
    size = bound[w.dims[1]]
    if w.rows is not None:
        last = max(w.rows)
        if last >= size:
            raise SizeError(f"position {last} is out of range for dim {w.dims[1]!r} of size {size}")
        return
    length = bound.get(w.dims[0])
    if length is None:
        return
    needed = w.start if w.from_end else w.start + length  # from the end: positions size - start, …
    if size < needed:
        where = f"{w.start} from the end" if w.from_end else f"position {w.start}"
        raise SizeError(
            f"a slice of {length} entries from {where} runs past the end of dim {w.dims[1]!r} "
            f"of size {size} (it needs at least {needed})"
        )


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` is most likely a typo of (same letters in another case first), or None."""
    known = list(known)
    same = [k for k in known if k.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, known, n=1)
    return close[0] if close else None


def check_sizes(sizes: Mapping[Dim, int] | None, dims: Sequence[Dim]) -> SizeDict:
    """``sizes`` given ahead of a call (``compile(..., sizes=)``), checked against the ``dims`` used."""
    if sizes is None:
        return {}
    if not isinstance(sizes, Mapping):
        raise ArgumentError(f"sizes must be a dict of dim -> int, got {type(sizes).__name__}")
    fixed: SizeDict = {}
    for d, s in sizes.items():
        if d not in dims:
            near = nearest(str(d), dims)
            hint = f"; did you mean {near!r}?" if near else ""
            raise ArgumentError(
                f"sizes given for {d}, which the expressions do not use{hint} (dims: {', '.join(dims) or 'none'})"
            )
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ArgumentError(f"size of dim {d!r} must be a non-negative int, got {s!r}")
        if dimsmod.is_literal(d) and int(d) != s:
            raise SizeError(f"dim {d!r} is fixed to {d} but sizes gives {s}")
        fixed[d] = int(s)
    return fixed


def _unknown(key: str, names: Sequence[str], dims: Sequence[str], caller: str) -> str:
    near = nearest(key, [*names, *dims])
    hint = f"; did you mean {near!r}?" if near else ""
    takes = ", ".join(names) or "no arrays"
    sized = f", and the sizes of dims {', '.join(dims)}" if dims else ""
    return f"{caller} has no argument {key!r}{hint} (it takes {takes}{sized})"


def real_array(name: str, value: object) -> np.ndarray:
    """``value`` as a float64 array; complex or non-numeric values raise :class:`ArgumentError`."""
    _compute_dtype({name: value})
    return np.asarray(value, dtype=float)


def _compute_dtype(arrays: Mapping[str, object]) -> np.dtype:
    """float32 when every floating array is float32, else float64; complex and non-numbers refused."""
    kinds = []
    for name, value in arrays.items():
        if isinstance(value, (bool, int, float)):
            continue  # a Python number adapts, as in NumPy
        dtype = getattr(value, "dtype", None)
        if dtype is None:
            dtype = np.asarray(value).dtype
        if dtype.kind == "c":
            raise ArgumentError(
                f"the array for {name} is complex ({dtype}); eincalc computes with real numbers: "
                "pass the real and imaginary parts as two arrays"
            )
        if dtype.kind not in "biuf":
            raise ArgumentError(f"the array for {name} holds {dtype} values, not numbers")
        kinds.append(dtype)
    return np.dtype(np.float32) if kinds and np.result_type(*kinds) == np.float32 else np.dtype(np.float64)


def _bind(bound: SizeDict, source: dict[Dim, str], dim: Dim, size: int, where: str) -> None:
    if dimsmod.is_literal(dim) and int(dim) != size:
        raise SizeError(f"{where} has size {size} but its dim is fixed to {dim}")
    if dim in bound and bound[dim] != size:
        raise SizeError(f"dim {dim!r} has size {bound[dim]} from {source[dim]} but size {size} from {where}")
    bound.setdefault(dim, size)
    source.setdefault(dim, where)


def cast_result(value: object, dtype: np.dtype) -> object:
    """``value`` (an array, a scalar or a structured tensor) in ``dtype`` when that is float32."""
    if dtype != np.float32:
        return value
    if isinstance(value, np.ndarray):
        return value.astype(dtype, copy=False)
    if isinstance(value, (float, np.floating)):
        return dtype.type(value)
    core = getattr(value, "core", None)
    if isinstance(core, np.ndarray):
        value.core = core.astype(dtype, copy=False)  # type: ignore[attr-defined]
    return value
