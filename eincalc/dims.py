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
from collections.abc import Iterator
from contextlib import contextmanager

from eincalc._types import Dim, Dims
from eincalc.errors import ShapeError

_DIM_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)$")
FRESH_PREFIX = "?"


def is_literal(dim: Dim) -> bool:
    """True for a dim that is a fixed size such as ``"3"``."""
    return dim.isdigit()


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
        require_same(x, y, context + f" (dims {fmt(a)} vs {fmt(b)})")


def fmt(dims: Dims) -> str:
    """Dims for messages: ``(m, n)``."""
    return "(" + ", ".join(dims) + ")"
