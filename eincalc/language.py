"""The language of the text front ends: which names, methods and prefixes are callable.

:data:`FUNCTIONS` maps a name to its operation in :mod:`eincalc.ops`, how many expression
arguments it takes and which keywords; every element-wise registry entry of one argument
is callable under its own name. :data:`METHODS` are the names allowed as ``x.name(…)``
(``x`` becomes the first argument); :data:`PREFIXES` are the module prefixes the NumPy
dialect strips (``np.exp``, ``numpy.linalg.inv``). Parsing lives in :mod:`eincalc.parser`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from eincalc import indexing, linalg, ops, reductions
from eincalc.expr import Node
from eincalc.functions import ELEMENTWISE


class Signature(NamedTuple):
    """How a function is called: ``fn``, ``min_args``…``max_args`` expressions (None: any), keywords."""

    fn: Callable[..., Node]
    min_args: int | None
    max_args: int | None
    keywords: tuple[str, ...] = ()

    def __iter__(self):  # (fn, arity, keywords), the shape callers unpack
        return iter((self.fn, self.min_args if self.min_args == self.max_args else None, self.keywords))


def _sig(fn: Callable[..., Node], n: int | tuple[int, int] | None, *keywords: str) -> Signature:
    lo, hi = (n, n) if not isinstance(n, tuple) else n
    return Signature(fn, lo, hi, keywords)


class FunctionTable(dict[str, Signature]):
    """The name table; an entry may also be given as ``(fn, n_args, keywords)``."""

    def __setitem__(self, name: str, entry: object) -> None:
        if not isinstance(entry, Signature):
            fn, n, keywords = entry  # type: ignore[misc]
            entry = _sig(fn, n, *keywords)
        super().__setitem__(name, entry)

    def update(self, *others: object, **entries: object) -> None:  # type: ignore[override]
        for other in others:
            for name, entry in dict(other).items():  # type: ignore[call-overload]
                self[name] = entry
        for name, entry in entries.items():
            self[name] = entry

    def setdefault(self, name: str, entry: object = None) -> Signature:  # type: ignore[override]
        if name not in self:
            self[name] = entry
        return self[name]


_REDUCE = ("axis", "keepdims")

FUNCTIONS: FunctionTable = FunctionTable()
FUNCTIONS.update(
    {
        "sum": _sig(ops.sum, 1, *_REDUCE),
        "mean": _sig(ops.mean, 1, *_REDUCE),
        "max": _sig(reductions.max, 1, *_REDUCE),
        "min": _sig(reductions.min, 1, *_REDUCE),
        "amax": _sig(reductions.max, 1, *_REDUCE),
        "amin": _sig(reductions.min, 1, *_REDUCE),
        "prod": _sig(reductions.prod, 1, *_REDUCE),
        "var": _sig(reductions.var, 1, "axis", "ddof", "keepdims"),
        "std": _sig(reductions.std, 1, "axis", "ddof", "keepdims"),
        "trace": _sig(ops.trace, 1),
        "diag": _sig(ops.diag, 1),
        "outer": _sig(ops.outer, 2),
        "dot": _sig(ops.dot, 2),
        "matmul": _sig(ops.matmul, 2),
        "transpose": _sig(ops.transpose, 1, "axes"),
        "det": _sig(ops.det, 1),
        "adjugate": _sig(ops.adjugate, 1),
        "logdet": _sig(ops.logdet, 1),
        "inv": _sig(ops.inv, 1),
        "solve": _sig(ops.solve, 2),
        "cholesky": _sig(linalg.cholesky, 1),
        "eigvalsh": _sig(linalg.eigvalsh, 1),
        "pinv": _sig(linalg.pinv, 1),
        "kron": _sig(linalg.kron, 2),
        "triu": _sig(ops.triu, 1, "k"),
        "tril": _sig(ops.tril, 1, "k"),
        "softmax": _sig(ops.softmax, 1, "axis"),
        "log_softmax": _sig(ops.log_softmax, 1, "axis"),
        "logsumexp": _sig(ops.logsumexp, 1, "axis", "keepdims"),
        "norm2": _sig(ops.norm2, 1),
        "norm1": _sig(ops.norm1, 1),
        "einsum": _sig(ops.einsum, None),
        "eye": _sig(ops.eye, None),
        "ones": _sig(ops.ones, None),
        "zeros": _sig(ops.zeros, None),
        "square": _sig(ops.square, 1),
        "reciprocal": _sig(ops.reciprocal, 1),
        "power": _sig(ops.power, 2),
        "maximum": _sig(ops.maximum, 2),
        "minimum": _sig(ops.minimum, 2),
        "arctan2": _sig(ops.arctan2, 2),
        "where": _sig(ops.where, 3),
        "clip": _sig(ops.clip, (1, 3)),
        "greater": _sig(ops.greater, 2),
        "greater_equal": _sig(ops.greater_equal, 2),
        "less": _sig(ops.less, 2),
        "less_equal": _sig(ops.less_equal, 2),
        "equal": _sig(ops.equal, 2),
        "not_equal": _sig(ops.not_equal, 2),
        "expit": _sig(ops.sigmoid, 1),  # scipy.special's name
        "absolute": _sig(ops.abs, 1),
        "norm": _sig(ops.norm2, 1),  # numpy.linalg.norm's default: the Frobenius norm
        "add": _sig(ops.add, 2),
        "subtract": _sig(ops.subtract, 2),
        "multiply": _sig(ops.multiply, 2),
        "divide": _sig(ops.divide, 2),
        "negative": _sig(ops.negative, 1),
        "expand_dims": _sig(indexing.expand_dims, 1, "axis"),
        "reshape": _sig(indexing.reshape, None),
        "window": _sig(indexing.window, 2, "from_end"),
        "stack": _sig(indexing.stack, 1, "axis"),
        "concatenate": _sig(indexing.concatenate, 1, "axis"),  # a selection matrix (how indexing prints)
        "array": _sig(ops.array, 1, "dims"),  # a literal: array([[1, 0], [0, 1]]), dims='n n' to name its axes
        "asarray": _sig(ops.array, 1, "dims"),
    }
)
for _name, _entry in ELEMENTWISE.items():
    if _entry.arity == 1 and not _entry.has_param:
        FUNCTIONS.setdefault(_name, _sig(getattr(ops, _name), 1))

PAIRS: dict[str, tuple[Callable[[Any], tuple[Node, Node]], str]] = {
    "slogdet": (ops.slogdet, "slogdet(A)[0] (the sign) or slogdet(A)[1] (log|det A|)"),
    "eigh": (linalg.eigh, "eigh(A)[0] (the eigenvalues) or eigh(A)[1] (the eigenvectors)"),
}
"""Functions returning a pair, usable only through a subscript: ``slogdet(A)[1]``."""

METHODS: frozenset[str] = frozenset(
    {"sum", "mean", "max", "min", "prod", "var", "std", "dot", "transpose", "clip", "trace", "reshape"}
)
"""Names callable as methods, ``x.sum(axis=0)``: the receiver is the first argument."""

PREFIXES: tuple[str, ...] = ("numpy.linalg", "np.linalg", "numpy", "np", "scipy.special", "jnp", "jax.numpy")
"""Module prefixes the NumPy dialect accepts before a function name."""


def suggest(name: str, candidates: object) -> str:
    """``" (did you mean 'exp'?)"`` for the closest candidates to a misspelt ``name``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)  # type: ignore[call-overload]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
