"""The eincalc command line, run as a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eincalc.cli", *args], capture_output=True, text=True, timeout=120)


def test_derive_matrixcalculus_second_order_as_numpy_code():
    out = run("derive", "x'*A*x", "--dialect", "matrixcalculus", "--wrt", "x", "--order", "2", "--emit", "numpy")
    assert out.returncode == 0, out.stderr
    assert "def derivative(x, A)" in out.stdout and "A.T" in out.stdout
    namespace: dict = {}
    exec(compile(out.stdout, "generated", "exec"), namespace)  # the generated module, not user text
    import numpy as np

    A = np.arange(9.0).reshape(3, 3)
    result = namespace["derivative"](np.ones(3), A)  # the function's arrays: x gives only sizes
    np.testing.assert_allclose(result, A + A.T)


@pytest.mark.parametrize(
    "emit,needle", [("text", "V.T @ V"), ("latex", "V"), ("einsum", "*("), ("compressed", "δ(m)"), ("dot", "digraph")]
)
def test_emitters(emit, needle):
    out = run(
        "derive",
        "sum((T - U @ V.T)**2)",
        "--var",
        "T:m,n",
        "--var",
        "U:m,k",
        "--var",
        "V:n,k",
        "--wrt",
        "U",
        "--order",
        "2",
        "--emit",
        emit,
    )
    assert out.returncode == 0, out.stderr
    assert needle in out.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["derive", "x @ A @", "--var", "x:n", "--var", "A:n,n"], "unexpected end"),
        (["derive", "x @ A @ x", "--var", "x:n", "--var", "A:n,n", "--wrt", "q"], "no variable 'q'"),
        (["derive", "__import__('os').system('echo pwned')"], "only calls of known functions"),
        (["derive", "x @ y", "--var", "x:n", "--var", "y:m"], "do not fit"),
        (["derive", "x", "--var", "x:n", "--size", "n=abc"], "--size"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "pwned" not in out.stdout


def test_bad_var_declaration_is_reported_by_argparse():
    out = run("derive", "x", "--var", "x")
    assert out.returncode == 2 and "NAME:dim" in out.stderr


def test_derive_mixed_partial():
    out = run("derive", "sum((T - U @ V.T) ** 2)", "--var", "T:m,n", "--var", "U:m,k", "--var", "V:n,k", "--wrt", "U,V")
    assert out.returncode == 0, out.stderr
    assert "U" in out.stdout and "V" in out.stdout and "T" in out.stdout
    bad = run("derive", "x @ x", "--var", "x:n", "--wrt", "x,x", "--order", "2")
    assert bad.returncode == 2 and "not both" in bad.stderr
