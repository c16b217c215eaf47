"""The NumPy-syntax front end: print ⇄ parse round trips, text views, declarations.

The round-trip oracle is hash-consing: ``ec.parse(str(e), **decls) is e`` holds exactly
when the printed text means the same expression structure.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import eincalc as ec
from eincalc.testing import check_close, random_case

DECLS = dict(X="m n", Y="m n", W="n k", b="k", A="n n", B="n n", x="n", z="n", v="m", y="m", s="", T="p m n", U="p n k")

TEXTS = [
    "X",
    "s",
    "3.5",
    "-2.0",
    "X + Y",
    "X - Y",
    "-X",
    "X * Y",
    "X / Y",
    "X ** 2",
    "X ** -0.5",
    "2 ** X",
    "X.T",
    "T.T",
    "X @ W",
    "X @ x",
    "v @ X",
    "x @ z",
    "x @ A @ x",
    "x @ A @ z",
    "A @ A.T",
    "A.T @ A",
    "A @ B @ A",
    "X @ A @ X.T",
    "X.T @ X",
    "T @ U",
    "X @ W + b",
    "b + X @ W",
    "X - x",
    "x - X",
    "X + 1",
    "1 - X",
    "2 * X - 3",
    "X / 2",
    "1 / X",
    "s * X + s",
    "-(X - Y)",
    "-(x @ x)",
    "exp(X) * exp(X) + exp(X)",
    "sum(log(1 + exp(-y * (X @ z))))",
    "sum(X)",
    "sum(X, axis=0)",
    "sum(X, axis=1)",
    "sum(T, axis=(0, 2))",
    "mean(X)",
    "mean(X, axis=0)",
    "mean(T, axis=(0, 1))",
    "trace(A)",
    "trace(A @ B)",
    "trace(X @ A @ X.T)",
    "diag(A)",
    "diag(x)",
    "diag(diag(A))",
    "outer(x, v)",
    "outer(A, x)",
    "dot(X, x)",
    "dot(T, W)",
    "norm1(X)",
    "norm2(X)",
    "det(A)",
    "logdet(A @ A.T + eye('n'))",
    "inv(A)",
    "inv(A) @ x",
    "x @ inv(A @ A.T + eye('n')) @ x",
    "softmax(x)",
    "softmax(X)",
    "softmax(X, axis=0)",
    "softmax(X @ W + b, axis=1)",
    "log_softmax(T, axis=1)",
    "logsumexp(X)",
    "logsumexp(X, axis=0)",
    "logsumexp(T, axis=2)",
    "sigmoid(X) * (1 - sigmoid(X))",
    "relu(X) + step(X) + abs(X) + sign(X)",
    "sqrt(X * X + 1) + softplus(X) + tanh(X) + sin(X) + cos(X) + tan(X)",
    "einsum('ij,jk->ik', X, W)",
    "einsum('ij,jk,kl->il', X, A, B)",
    "einsum('ii->', A)",
    "einsum('ii->i', A)",
    "einsum('i,j->ij', x, v)",
    "einsum('ijk->kji', T)",
    "einsum('bij,bjk->bik', T, U)",
    "einsum('ij,ij,i->j', X, Y, v)",
    "eye('n')",
    "eye('m n')",
    "ones('m n')",
    "zeros('m n')",
    "2.5 * ones('n')",
    "ones('n') @ x",
    "A + eye('n')",
    "X * ones('m n') + zeros('m n')",
]


def decls_for(text):
    return {name: dims for name, dims in DECLS.items() if re.search(rf"\b{name}\b", text)}


@pytest.mark.parametrize("text", TEXTS)
def test_print_parse_round_trip(text):
    decls = decls_for(text)
    e = ec.parse(text, **decls)
    printed = str(e)
    assert ec.parse(printed, **decls) is e, f"{text!r} printed as {printed!r}"
    assert ec.to_numpy_syntax(e) == printed


@pytest.mark.parametrize("seed", range(40))
def test_random_expressions_round_trip(seed):
    case = random_case(seed, depth=4)
    printed = str(case.expr)
    assert ec.parse(printed, **case.variables) is case.expr, printed


@pytest.mark.parametrize(
    "text,printed",
    [
        ("2 * exp(X @ x)", "2.0 * exp(X @ x)"),
        ("X.T", "X.T"),
        ("sum(X, axis=0)", "sum(X, axis=0)"),
        ("trace(A)", "trace(A)"),
        ("diag(x)", "diag(x)"),
        ("diag(A)", "diag(A)"),
        ("A @ B @ A", "A @ B @ A"),
        ("x ** 2", "x ** 2.0"),
        ("x / 2", "0.5 * x"),
        ("X - 1", "X - 1.0"),
        ("-(x @ x)", "-(x @ x)"),
        ("logsumexp(X, axis=1)", "logsumexp(X, axis=1)"),
        ("softmax(X, axis=1)", "softmax(X)"),  # the default axis is left out
        ("ones('n') @ x", "sum(x)"),
        ("eye('n')", "eye('n')"),
        ("zeros('m n')", "zeros('m n')"),
        ("sum(log(1 + exp(-y * (X @ z))))", "sum(log(exp(-(y * (X @ z))) + 1.0))"),
    ],
)
def test_printed_text(text, printed):
    assert str(ec.parse(text, **decls_for(text))) == printed


def test_repr_shows_kind_text_and_dims():
    assert repr(ec.parse("X @ W", X="m n", W="n k")) == "<einsum X @ W : (m, k)>"
    assert repr(ec.vector("x", "n")) == "<var x : (n)>"


def test_einsum_form():
    X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
    assert ec.einsum_form(X @ w) == "\n".join(
        [
            "v0 = X                    : (m, n)",
            "v1 = w                    : (n)",
            "v2 = v0 *(ab,b,a) v1      : (m)",
        ]
    )


def test_einsum_form_lists_each_node_once_children_first():
    e = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
    lines = ec.einsum_form(e).splitlines()
    assert len(lines) == len(ec.topo_order(e))
    assert all(re.fullmatch(r"v\d+ = .+ : \([a-z, ]*\)", line) for line in lines)
    assert lines[3] == "v3 = -1.0 · *(ab,a,b->a)(v0, v1, v2) : (m)"
    assert lines[-1] == "v8 = *(a->)(v7)           : ()"
    for k, line in enumerate(lines):  # every reference points to an earlier line
        assert all(int(ref) < k for ref in re.findall(r"\bv(\d+)\b", line.split("=", 1)[1]))


def test_einsum_form_of_several_roots_shares_nodes():
    X, A = ec.matrix("X", "m n"), ec.matrix("A", "n n")
    text = ec.einsum_form([ec.trace(X @ A @ X.T), X @ A])
    assert text.count("= X ") == 1 and text.count("= A ") == 1
    assert "*(ab,ac,bc->)(v0, v0, v1)" in text


def test_dump():
    x = ec.vector("x", "n")
    assert ec.dump(ec.sum(ec.exp(x) * ec.exp(x) + x)) == "\n".join(
        [
            "v0 einsum 'a->' : ()",
            "  v1 add : (n)",
            "    v2 x : (n)",
            "    v3 einsum 'a,a->a' : (n)",
            "      v4 exp : (n)",
            "        ^v2",
            "      ^v4",
        ]
    )


def test_dump_shows_coefficients_constants_and_axes():
    text = ec.dump(ec.parse("softmax(-2 * X, axis=0) + 3", X="m n"))
    assert "x -2.0" in text
    assert "const 3.0" in text
    assert "softmax axis=0" in text


# --------------------------------------------------------------------------------------
# declarations
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "decl,dims",
    [
        ("m n", ("m", "n")),
        ("m,n", ("m", "n")),
        ("m, n", ("m", "n")),
        (("m", "n"), ("m", "n")),
        (["m", "n"], ("m", "n")),
        (("m", 3), ("m", "3")),
        ("m 3", ("m", "3")),
    ],
)
def test_matrix_declarations(decl, dims):
    e = ec.parse("X", X=decl)
    assert e is ec.tensor("X", dims)


@pytest.mark.parametrize("decl,dims", [("", ()), ((), ()), (3, ("3",)), ("n", ("n",)), (("n",), ("n",))])
def test_scalar_and_vector_declarations(decl, dims):
    assert ec.parse("q", q=decl).dims == dims


def test_fixed_sizes_evaluate():
    e = ec.parse("X @ w", X=("m", 3), w=3)
    check_close(ec.evaluate(e, X=np.ones((2, 3)), w=np.arange(3.0)), np.full(2, 3.0))


def test_inferred_dims_take_the_known_name():
    assert ec.parse("A @ x", A="m n", x="?").variables() == {"A": ("m", "n"), "x": ("n",)}
    assert ec.parse("x + y", x="?", y="n").variables() == {"y": ("n",), "x": ("n",)}
    known = ec.parse("X @ W + b", X="m n", W="? ?", b="k").variables()
    assert known == {"X": ("m", "n"), "W": ("n", "k"), "b": ("k",)}
    unknown = ec.parse("X @ W + b", X="m n", W="? ?", b="?").variables()
    assert unknown == {"b": ("W1",), "X": ("m", "n"), "W": ("n", "W1")}


def test_unresolved_inferred_dims_get_names_from_the_variable():
    assert ec.parse("A @ x", A="? ?", x="n").variables() == {"A": ("A0", "n"), "x": ("n",)}
    assert ec.parse("x + y", x="?", y="?").variables() == {"y": ("n_x",), "x": ("n_x",)}


def test_inferred_names_never_clash_with_declared_dims():
    e = ec.parse("A @ x + v", A="? ?", x="n", v="A0")  # 'A0' is taken by v's declaration
    dims = e.variables()
    assert dims["A"][1] == "n"
    assert dims["A"][0] == "A0"  # unified with v's dim A0 through the addition


def test_inferred_dims_evaluate_like_declared_ones():
    inferred = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="? ?", w="?", y="?")
    declared = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
    rng = np.random.default_rng(0)
    arrays = dict(X=rng.standard_normal((4, 3)), w=rng.standard_normal(3), y=rng.choice([-1.0, 1.0], 4))
    check_close(ec.evaluate(inferred, **arrays), ec.evaluate(declared, **arrays))
    expected = np.sum(np.log1p(np.exp(-arrays["y"] * (arrays["X"] @ arrays["w"]))))
    check_close(ec.evaluate(declared, **arrays), expected)


def test_whitespace_newlines_and_number_forms():
    decls = dict(X="m n", W="n k", b="k")
    e = ec.parse("X @ W + b", **decls)
    assert ec.parse("  X@W+b \n", **decls) is e
    assert ec.parse("(X @ W\n + b)", **decls) is e
    assert ec.parse("1e-3 * X", X="m n") is ec.parse("0.001 * X", X="m n")
    assert ec.parse("2. * X", X="m n") is ec.parse("2 * X", X="m n")
    assert ec.parse("+X", X="m n") is ec.parse("X", X="m n")


def test_constant_arithmetic_folds():
    assert ec.parse("(1 + 2) * 3 - 4 / 2 ** 2") is ec.parse("8.0")
    assert ec.parse("-(-3)") is ec.parse("3")


def test_unicode_identifiers():
    e = ec.parse("α * β", α="n", β="n")
    assert set(e.variables()) == {"α", "β"}
    assert ec.parse(str(e), α="n", β="n") is e


def test_matrixcalculus_dialect_is_reachable_by_name():
    e = ec.parse("x' * A * x", dialect="matrixcalculus", x="n", A="n n")
    assert e is ec.parse("x @ A @ x", x="n", A="n n")
