"""Derivation time and estimated cost of each mode for the Hessians of the benchmark problems.

Run: python bench/bench_derivation.py
"""

from __future__ import annotations

import time

from problems import PROBLEMS

import eincalc as ec

MODES = ["reverse", "forward", "cross_country", "auto"]


def main() -> None:
    print(f"{'problem':<22} {'mode':<14} {'derive ms':>10} {'Hessian flops':>14} {'largest temp':>13}  compressed")
    for p in PROBLEMS:
        f = p.expr()
        for mode in MODES:
            modes = mode if mode == "auto" else (mode, mode)
            start = time.perf_counter()
            H = ec.hessian(f, p.wrt, mode=modes, sizes=p.sizes)
            elapsed = 1e3 * (time.perf_counter() - start)
            report = ec.cost(H, **p.sizes)
            print(
                f"{p.name:<22} {mode:<14} {elapsed:>10.1f} {report.flops:>14.3e} {report.largest_intermediate:>13,}  "
                f"{structure(ec.compress(H))}"
            )


def structure(c: ec.Compressed | ec.CompressedSum) -> str:
    """How the Hessian is stored: a δ ⊗ core's core dims, a structured sum's parts, or dense."""
    if not c.is_compressed:
        return "no"
    if isinstance(c, ec.CompressedSum):
        return f"yes, a sum of {len(c.parts)} structured terms"
    return f"yes, core {tuple(c.core.dims)}"


if __name__ == "__main__":
    main()
