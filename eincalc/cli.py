"""The ``eincalc`` command line: derive and print derivatives without writing Python.

Examples::

    eincalc derive "x'*A*x" --dialect matrixcalculus --wrt x --order 2 --emit numpy
    eincalc derive "sum((T - U @ V.T)**2)" --var T:m,n --var U:m,k --var V:n,k --wrt U --emit latex

Every error is one line on stderr and exit status 2; nothing is evaluated from the text.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eincalc.errors import EincalcError

EMITTERS = ("text", "numpy", "einsum", "latex", "dot", "compressed")


def _parse_var(spec: str) -> tuple[str, str]:
    name, sep, dims = spec.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--var takes NAME:dim,dim (e.g. X:m,n; X: for a scalar), got {spec!r}")
    return name, dims.replace(",", " ")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="eincalc", description="Symbolic tensor derivatives as code.")
    sub = parser.add_subparsers(dest="command", required=True)
    derive = sub.add_parser("derive", help="differentiate an expression and print the result")
    derive.add_argument("expression", help='the expression, e.g. "sum(log(1 + exp(-y * (X @ w))))"')
    derive.add_argument(
        "--var",
        action="append",
        default=[],
        type=_parse_var,
        metavar="NAME:DIMS",
        help="declare a variable's dims, e.g. --var X:m,n (repeatable)",
    )
    derive.add_argument("--dialect", default="numpy", choices=["numpy", "matrixcalculus", "mc"])
    derive.add_argument(
        "--wrt",
        help="the variable to differentiate by (omit to print the expression itself); "
        "U,V for the mixed partial ∂²f/∂U∂V",
    )
    derive.add_argument("--order", type=int, default=1, help="derivative order (default 1)")
    derive.add_argument("--mode", default="auto", choices=["auto", "reverse", "forward", "cross_country"])
    derive.add_argument(
        "--emit",
        default="text",
        choices=EMITTERS,
        help="text (NumPy syntax), numpy (generated code), einsum, latex, dot, compressed",
    )
    derive.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="DIM=N",
        help="a dim size for code generation, e.g. --size n=1000 (repeatable)",
    )
    return parser


def _sizes(items: Sequence[str]) -> dict[str, int]:
    out = {}
    for item in items:
        dim, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise EincalcError(f"--size takes DIM=N with a positive integer N, got {item!r}")
        out[dim] = int(value)
    return out


def run(args: argparse.Namespace) -> str:
    """Carry out a parsed command and return what it prints."""
    import eincalc as ec

    sizes = _sizes(args.size) or None
    expr = ec.parse(args.expression, args.dialect, **dict(args.var))
    wrt = args.wrt if args.wrt is None or "," not in args.wrt else args.wrt.split(",")
    result = expr if wrt is None else ec.derivative(expr, wrt, order=args.order, mode=args.mode)
    emit = args.emit
    if emit == "text":  # NumPy syntax; a δ ⊗ core result is shown as such, not as an einsum with eye
        compressed = ec.compress(result)
        return str(compressed) if compressed.is_compressed else str(result)
    if emit == "einsum":
        return ec.einsum_form(result)
    if emit == "compressed":
        return str(ec.compress(result))
    if emit == "latex":
        from eincalc.latex import latex

        return latex(result)
    if emit == "dot":
        from eincalc.viz import to_dot

        return to_dot(result)
    from eincalc.codegen import compile as compile_expr

    return compile_expr(result, sizes=sizes, name="derivative").source


def _expression_first(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with an expression that starts with ``-`` (``"-x @ y"``) marked as positional.

    argparse takes any word starting with ``-`` for an option; a word after the command
    that is no option of it (and no option's value) is the expression, so it moves to
    the end, after ``--``.
    """
    if len(argv) < 2 or argv[0] != "derive" or "--" in argv:
        return argv
    options = {s for a in _derive_parser(parser)._actions for s in a.option_strings}
    k = 1
    while k < len(argv):
        word = argv[k]
        if word.split("=", 1)[0] in options:
            k += 1 if "=" in word or word in ("-h", "--help") else 2  # the option and its value
            continue
        if word.startswith("-"):  # after "--" every word is positional: move it last
            return [*argv[:k], *argv[k + 1 :], "--", word]
        k += 1
    return argv


def _derive_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["derive"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(_expression_first(list(sys.argv[1:] if argv is None else argv), parser))
    try:
        print(run(args))
    except EincalcError as err:
        message = str(err).replace("\n", " | ")
        print(f"eincalc: error: {message}", file=sys.stderr)
        return 2
    except (TypeError, ValueError, ArithmeticError, SyntaxError, RecursionError, MemoryError) as err:
        # not raised on purpose (each is a defect to report), but still one line, no traceback
        print(f"eincalc: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
