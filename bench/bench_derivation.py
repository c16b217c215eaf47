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
            c = ec.compress(H)
            print(
                f"{p.name:<22} {mode:<14} {elapsed:>10.1f} {report.flops:>14.3e} {report.largest_intermediate:>13,}  "
                f"{'yes, core ' + str(tuple(c.core.dims)) if c.is_compressed else 'no'}"
            )


if __name__ == "__main__":
    main()
