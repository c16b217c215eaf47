"""Type aliases shared across eincalc (kept in one place, as opt_einsum does)."""

from __future__ import annotations

Dim = str
"""A named dimension: an identifier such as ``"n"`` or a decimal literal such as ``"3"``."""

Dims = tuple[Dim, ...]
Index = str
"""An einsum index label inside one multiplication node."""

IndexTuple = tuple[Index, ...]
SizeDict = dict[Dim, int]
