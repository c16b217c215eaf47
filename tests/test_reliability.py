"""Reliability regressions: the shared node table, concurrent construction.

Each test is built from a defect found by fuzzing (issue 13) and failed before its fix.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np

import eincalc as ec
from eincalc.dims import FRESH_PREFIX
from eincalc.graph import topo_order


def _placeholder_dims(node: ec.Node) -> set[str]:
    return {d for n in topo_order(node) for d in n.dims if d.startswith(FRESH_PREFIX)}


# --------------------------------------------------------------------------------------
# 1. the MatrixCalculus dialect must not leak placeholder dims into the node table
# --------------------------------------------------------------------------------------
def test_mc_parse_result_has_no_placeholder_dims():
    f = ec.parse("vector(a).*y", dialect="mc", y="n")
    assert f.dims == ("n",)
    assert not _placeholder_dims(f)


def test_placeholder_dims_do_not_reach_an_unrelated_parse():
    f = ec.parse("vector(a).*y", dialect="mc", y="n")
    g = ec.parse("a*y", a="", y="n")
    assert g.dims == ("n",)
    assert not _placeholder_dims(g)
    fn = ec.compile(f)  # was `def f(y, a, *, ?0):`, a SyntaxError
    a, y = 3.0, np.arange(4.0)
    np.testing.assert_allclose(fn(y=y, a=a), a * y)


def test_cli_with_inferred_dims_emits_code():
    out = subprocess.run(
        [sys.executable, "-m", "eincalc.cli", "derive", "(matrix(1)*x).*y", "--dialect", "mc"]
        + ["--var", "x:n", "--var", "y:n", "--emit", "numpy"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert FRESH_PREFIX not in out.stdout
    compile(out.stdout, "<cli output>", "exec")  # the emitted module is valid Python


def test_many_mc_parses_never_leave_placeholders():
    texts = ["vector(a).*y", "(matrix(1)*x).*y", "x'*vector(1)", "sum(vector(b).*x)", "matrix(1)*x + y"]
    for text in texts * 3:
        for decl in ({"x": "n", "y": "n"}, {"y": "n"}, {"x": "n"}, {}):
            try:
                f = ec.parse(text, dialect="mc", **decl)
            except ec.EincalcError:
                continue
            assert not _placeholder_dims(f), (text, decl, f.dims)


# --------------------------------------------------------------------------------------
# 2. building nodes is thread-safe: equal structure is the same object in every thread
# --------------------------------------------------------------------------------------
def _build(k: int) -> ec.Node:
    v = ec.vector(f"v{k}", "n")
    A = ec.matrix("A", "n n")
    return ec.sum(ec.tanh(A @ v + v) * v) + ec.sum(v * v)


def test_concurrent_construction_yields_identical_nodes():
    n_threads, n_exprs = 8, 400
    results: list[list[ec.Node]] = [[] for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        barrier.wait()
        results[t] = [_build(k) for k in range(n_exprs)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke races
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    for k in range(n_exprs):
        first = results[0][k]
        assert all(results[t][k] is first for t in range(n_threads)), k
    # and the shared table still works: like terms collect and gradients build
    f = results[3][7]
    assert (f + results[5][7]) is (f + f)
    g = ec.grad(f, "v7")
    assert g.dims == ("n",)
