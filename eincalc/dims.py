"""Named dimensions: validation, declaration parsing and unification.

A dim is a name (``"n"``) or a decimal literal (``"3"``, a fixed size). Node constructors
compare dims through :func:`require_same`. Normally that is plain equality; while a
:class:`Unifier` is active (the parsers use one to infer undeclared dims) unknown dims
created by :meth:`Unifier.fresh` are merged instead, and a conflict between two known
dims is a :class:`~eincalc.errors.ShapeError` naming both uses.

This module knows nothing about nodes.
"""

from __future__ import annotations

import contextvars
import keyword
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from eincalc._types import Dim, Dims
from eincalc.errors import ShapeError

_ATOM = r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)"
_DIM_RE = re.compile(rf"^(?:{_ATOM}(?:\*{_ATOM})*|[A-Za-z_][A-Za-z0-9_]*-[0-9]+)$")
FRESH_PREFIX = "?"


def is_literal(dim: Dim) -> bool:
    """True for a dim that is a fixed size such as ``"3"``."""
    return dim.isdigit()


# -- derived dims: sizes that are functions of other dims ---------------------------------
# ``"m*n"`` is the size m·n of merged axes (a reshape; fixed part first, names sorted);
# ``"n-1"`` is n − 1 (a slice ``x[1:]`` of a named dim). Their sizes are computed from the
# named dims they are made of; they are never arguments of generated code.


def is_derived(dim: Dim) -> bool:
    """True for a dim computed from others: ``"m*n"``, ``"n-1"``."""
    return "*" in dim or "-" in dim


def factors(dim: Dim) -> tuple[Dim, ...]:
    """The dims a product dim is made of (``"m*n"`` → ``("m", "n")``); a plain dim is its own factor."""
    return tuple(dim.split("*")) if "*" in dim else (dim,)


def product(dims: Dims) -> Dim:
    """The dim of axes ``dims`` merged: ``("m", "n")`` and ``("n", "m")`` → ``"m*n"``; fixed sizes multiply out.

    Size-1 factors drop out; a dim that is already a product contributes its factors.
    """
    parts = [f for d in dims for f in factors(d) if f != "1"]
    if not parts:
        return "1"
    if all(is_literal(f) for f in parts):
        total = 1
        for f in parts:
            total *= int(f)
        return str(total)
    if any(is_derived(f) for f in parts):
        raise ShapeError(f"cannot merge dims {fmt(dims)}: a dim like 'n-1' cannot be merged")
    # only the size counts (a reshape keeps its target dims): one spelling for m·n and n·m
    fixed = 1
    for f in parts:
        fixed *= int(f) if is_literal(f) else 1
    names = sorted(f for f in parts if not is_literal(f))
    return "*".join(([str(fixed)] if fixed != 1 else []) + names)


def minus(dim: Dim, k: int) -> Dim:
    """The dim ``dim − k`` (a slice that leaves k entries of ``dim`` out)."""
    if k == 0:
        return dim
    if is_literal(dim):
        return str(int(dim) - k)
    if is_derived(dim):
        raise ShapeError(f"a slice of the dim {dim!r} needs a fixed length")
    return f"{dim}-{k}"


def base_dims(dim: Dim) -> tuple[Dim, ...]:
    """The named dims a derived dim's size comes from (``"m*n"`` → m, n; ``"n-1"`` → n)."""
    if "-" in dim:
        return (dim.split("-")[0],)
    return tuple(f for f in factors(dim) if not is_literal(f))


def derived_size(dim: Dim, sizes: Mapping[Dim, int]) -> int | None:
    """The size of a derived dim from the sizes of its base dims (None while one is unknown)."""
    if "-" in dim:
        base, k = dim.split("-")
        return sizes[base] - int(k) if base in sizes else None
    total = 1
    for f in factors(dim):
        if is_literal(f):
            total *= int(f)
        elif f in sizes:
            total *= sizes[f]
        else:
            return None
    return total


def derived_code(dim: Dim, code: Mapping[Dim, str]) -> str:
    """How generated code spells a derived dim's size from its base dims' spellings."""
    if "-" in dim:
        base, k = dim.split("-")
        return f"({code[base]} - {k})"
    return "(" + " * ".join(f if is_literal(f) else code[f] for f in factors(dim)) + ")"


def same_size(a: Dims, b: Dims, what: str) -> None:
    """Check that axes ``a`` and ``b`` hold equally many entries (the same named factors, equal fixed parts)."""

    def parts(dims: Dims) -> tuple[int, list[Dim]]:
        fixed, named = 1, []
        for d in dims:
            if "-" in d:
                named.append(d)
                continue
            for f in factors(d):
                if is_literal(f):
                    fixed *= int(f)
                else:
                    named.append(f)
        return fixed, sorted(named)

    if parts(a) != parts(b):
        raise ShapeError(f"{what}: dims {fmt(a)} and {fmt(b)} do not hold equally many entries")


def with_derived(sizes: Mapping[Dim, int], dims: Iterable[Dim]) -> dict[Dim, int]:
    """``sizes`` completed with the size of every derived dim among ``dims`` whose bases are known."""
    out = dict(sizes)
    for d in dims:
        if d not in out and is_derived(d):
            size = derived_size(d, out)
            if size is not None:
                out[d] = size
    return out


def parse_dims(spec: object, what: str = "dims") -> Dims:
    """Turn a user's dims declaration into a tuple of dim names.

    Accepts a space- or comma-separated string (``"m n"``, ``"m,n"``, ``""`` for a scalar),
    an int (a fixed size) or a sequence of names and ints.

    Examples:
        >>> parse_dims("m n")
        ('m', 'n')
        >>> parse_dims(("k", 3))
        ('k', '3')
        >>> parse_dims("")
        ()
    """
    if isinstance(spec, str):
        parts: list[object] = spec.replace(",", " ").split()
    elif isinstance(spec, int) and not isinstance(spec, bool):
        parts = [spec]
    elif isinstance(spec, (tuple, list)):
        parts = list(spec)
    else:
        raise ShapeError(f"{what}: expected a string like 'm n', an int or a tuple of names, got {spec!r}")
    out: list[Dim] = []
    for p in parts:
        if isinstance(p, int) and not isinstance(p, bool):
            if p < 1:
                raise ShapeError(f"{what}: a fixed size must be positive, got {p}")
            out.append(str(p))
        elif isinstance(p, str) and _DIM_RE.match(p) and not keyword.iskeyword(p):
            out.append(str(int(p)) if p.isdigit() else p)  # '007' is the size 7 (and valid code)
        else:
            raise ShapeError(f"{what}: {p!r} is not a valid dim name (use an identifier such as 'n' or a size)")
    return tuple(out)


class Unifier:
    """Union-find over dims, used while a parser infers undeclared dims.

    Fresh dims are placeholders (``"?0"``, ``"?1"``, …) that unify with anything; two
    known dims unify only if equal. ``origin`` remembers a human description of where each
    fresh dim came from, so conflicts can name both uses.
    """

    def __init__(self) -> None:
        self.parent: dict[Dim, Dim] = {}
        self.origin: dict[Dim, str] = {}
        self._count = 0

    def fresh(self, origin: str) -> Dim:
        """A new unknown dim; ``origin`` says where it came from (for error messages)."""
        dim = f"{FRESH_PREFIX}{self._count}"
        self._count += 1
        self.parent[dim] = dim
        self.origin[dim] = origin
        return dim

    def find(self, dim: Dim) -> Dim:
        """The representative of ``dim``: a known dim when one has been unified with it."""
        root = dim
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(dim, dim) != root:  # path compression
            self.parent[dim], dim = root, self.parent[dim]
        return root

    def unify(self, a: Dim, b: Dim, context: str) -> None:
        """Make ``a`` and ``b`` the same dim, or raise naming both uses."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if ra.startswith(FRESH_PREFIX):
            self.parent[ra] = rb
        elif rb.startswith(FRESH_PREFIX):
            self.parent[rb] = ra
        else:
            raise ShapeError(f"{context}: dim {ra!r} does not match dim {rb!r}{self._describe(a, b)}")

    def _describe(self, a: Dim, b: Dim) -> str:
        uses = [self.origin[d] for d in (a, b) if d in self.origin]
        return f" (inferred from {' and '.join(uses)})" if uses else ""

    def resolve(self, dim: Dim) -> Dim:
        """The final name of ``dim`` (a fresh dim stays fresh if nothing fixed it)."""
        return self.find(dim)


_ACTIVE: contextvars.ContextVar[Unifier | None] = contextvars.ContextVar("eincalc_unifier", default=None)


@contextmanager
def unifying(unifier: Unifier) -> Iterator[Unifier]:
    """Activate ``unifier`` for :func:`require_same` within the block."""
    token = _ACTIVE.set(unifier)
    try:
        yield unifier
    finally:
        _ACTIVE.reset(token)


def require_same(a: Dim, b: Dim, context: str) -> None:
    """Check that dims ``a`` and ``b`` agree (or unify them while inferring)."""
    if a == b:
        return
    unifier = _ACTIVE.get()
    if unifier is not None:
        unifier.unify(a, b, context)
        return
    raise ShapeError(f"{context}: dim {a!r} does not match dim {b!r}")


def require_same_dims(a: Dims, b: Dims, context: str) -> None:
    """Check two dims tuples agree entry by entry."""
    if len(a) != len(b):
        raise ShapeError(f"{context}: dims {fmt(a)} and {fmt(b)} differ in rank")
    for x, y in zip(a, b):
        if x != y:  # the message is only built for a mismatch (or a dim being inferred)
            require_same(x, y, context + f" (dims {fmt(a)} vs {fmt(b)})")


def fmt(dims: Dims) -> str:
    """Dims for messages: ``(m, n)``."""
    return "(" + ", ".join(dims) + ")"
