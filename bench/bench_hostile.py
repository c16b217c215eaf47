"""Worst-case work on hostile inputs of at most 10 000 characters: parse, derive, compile.

Each family of inputs is grown to the length limit and to ``MAX_LEAVES`` names and
numbers; the script prints, per input, the time of parse + the gradient by every
variable + one compile of them all (or the
error that refused it, which must be an ``EincalcError`` naming a limit) and the worst
time overall. The bound the issue sets is 2 s per input on an idle machine.

Run: python bench/bench_hostile.py [--length N]
"""

from __future__ import annotations

import re
import sys
import time

import eincalc as ec
from eincalc.parser import MAX_LEAVES


def leaves(text: str) -> int:
    """Names and numbers in ``text`` (what :data:`MAX_LEAVES` counts)."""
    return len(re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[0-9.]+", text))


def families(length: int) -> list[tuple[str, str, str, dict[str, str]]]:
    """(name, dialect, text, declarations) of inputs close to ``length`` characters."""

    def repeat(unit: str, sep: str, head: str = "", tail: str = "") -> str:
        k = max(1, (length - len(head) - len(tail) + len(sep)) // (len(unit) + len(sep)))
        k = min(k, (MAX_LEAVES - leaves(head + tail)) // max(1, leaves(unit)))
        return head + sep.join([unit] * k) + tail

    def distinct(fmt: str, sep: str) -> str:
        parts, total, k = [], 0, 0
        while total + len(fmt.format(k)) + len(sep) <= length and k < MAX_LEAVES:
            parts.append(fmt.format(k))
            total += len(parts[-1]) + len(sep)
            k += 1
        return sep.join(parts)

    vec = {"x": "n", "y": "n"}
    scalars = {f"s{k}": "" for k in range(length // 2)}
    mat = {"A": "n n", "x": "n"}
    out = [
        ("matrix chain", "numpy", repeat("A", "@", "x @ ", " @ x"), mat),
        ("matrix chain (mc)", "mc", repeat("A", "*", "x'*", "*x"), mat),
        ("hadamard power", "numpy", repeat("x", "*", "sum(", ")"), vec),
        ("sum of one term", "numpy", repeat("x", "+", "sum(", ")"), vec),
        ("sum of squares", "numpy", repeat("x*x", "+", "sum(", ")"), vec),
        ("mixed products", "numpy", repeat("x*y", "+", "sum(", ")"), vec),
        ("sum of tanh", "numpy", repeat("tanh(x)", "+", "sum(", ")"), vec),
        ("products of sums", "numpy", repeat("(x+y)", "*", "sum(", ")"), vec),
        ("nested tanh", "numpy", "sum(" + "tanh(" * 60 + "x" + ")" * 60 + ")", vec),
        ("nested tanh of products", "numpy", "sum(" + "tanh(A @ " * 30 + "x" + ")" * 30 + ")", mat),
        ("power tower", "numpy", repeat("x", "**", "sum(", ")"), vec),
        ("scalar constants", "numpy", repeat("1.5", "*", "sum(x*", ")"), vec),
        ("distinct scalars", "numpy", distinct("s{}", "*"), scalars),
        ("distinct sum", "numpy", distinct("s{}", "+"), scalars),
        ("quadratic forms", "numpy", repeat("x@A@x", "+"), mat),
        ("exp-log", "numpy", repeat("log(1+exp(x))", "*", "sum(", ")"), vec),
    ]
    return out


def run(length: int) -> float:
    worst = 0.0
    for name, dialect, text, decl in families(length):
        start = time.perf_counter()
        try:
            f = ec.parse(text, dialect=dialect, **decl)
            derivatives = [ec.grad(f, v) if not f.dims else ec.jacobian(f, v) for v in f.variables()]
            ec.compile([f, *derivatives])
            outcome = "ok"
        except ec.EincalcError as err:
            outcome = f"refused: {type(err).__name__}: {str(err).splitlines()[0][:90]}"
        elapsed = time.perf_counter() - start
        worst = max(worst, elapsed)
        print(f"{name:26s} {len(text):6d} chars {elapsed:7.3f} s  {outcome}", flush=True)
    print(f"worst: {worst:.3f} s")
    return worst


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--length") + 1]) if "--length" in sys.argv else 10_000
    run(n)
