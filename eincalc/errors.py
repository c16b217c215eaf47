"""The exception hierarchy of eincalc.

Every error eincalc raises on purpose is an ``EincalcError``. Each subclass also inherits
the matching built-in exception, so ``except ValueError`` keeps working for callers who
do not know about eincalc.
"""

from __future__ import annotations


class EincalcError(Exception):
    """Base class of every error raised deliberately by eincalc."""


class ParseError(EincalcError, ValueError):
    """A string could not be parsed; ``pos`` is the 0-based column of the problem.

    ``str(err)`` shows the message, the source line and a caret under the column.
    """

    def __init__(self, message: str, text: str = "", pos: int | None = None) -> None:
        self.message = message
        self.text = text
        self.pos = pos
        if text and pos is not None:
            line_start = text.rfind("\n", 0, pos) + 1
            line_end = text.find("\n", pos)
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            col = pos - line_start
            shown, caret = _window(line, col)
            full = f"{message} (column {col + 1})\n  {shown}\n  {' ' * caret}^"
        else:
            full = message
        super().__init__(full)


_WINDOW = 76  # characters of a long source line shown around the column


def _window(line: str, col: int) -> tuple[str, int]:
    """At most about ``_WINDOW`` characters of ``line`` around ``col``, and the caret column in them."""
    if len(line) <= _WINDOW:
        return line, col
    start = max(0, min(col - _WINDOW // 2, len(line) - _WINDOW))
    shown = line[start : start + _WINDOW]
    caret = col - start
    if start > 0:
        shown, caret = "…" + shown, caret + 1
    if start + _WINDOW < len(line):
        shown += "…"
    return shown, caret


class ShapeError(EincalcError, ValueError):
    """Dims of operands do not fit together (the message names the dims and operands)."""


class IndexMismatchError(ShapeError):
    """An einsum specification is malformed or inconsistent with its operands."""


class UnknownNameError(EincalcError, KeyError):
    """A name (variable, function, option) is not known; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class LimitError(EincalcError, ValueError):
    """An input exceeds one of eincalc's work limits; the message names the limit.

    The limits bound the time and memory any input can cost (text length, nesting,
    operands of one product, terms of one sum); each is a module constant.
    """


class DomainError(EincalcError, ValueError):
    """A constant outside the real domain of an operation: ``(-8.0) ** 0.5``."""


class SizeError(EincalcError, ValueError):
    """Arrays bound to an expression disagree about the size or the number of a dim's axes, or a size is missing."""


class ArgumentError(EincalcError, TypeError):
    """A call got the wrong arrays: missing, unknown (with a suggestion), too many, given twice, or not real numbers.

    A ``TypeError``, as Python's own for a bad call; size conflicts between arrays that
    were accepted are :class:`SizeError`.
    """


class NotDifferentiableError(EincalcError, NotImplementedError):
    """A derivative was requested that eincalc cannot (or mathematically does not) provide."""


class UnsupportedNodeError(EincalcError, NotImplementedError):
    """A printer or backend met a node kind it has no rule for."""


class BackendUnavailableError(EincalcError, ImportError):
    """A backend was asked for whose array library is not installed; the message names the extra to install."""
