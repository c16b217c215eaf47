"""Every error path of the foundation: the right class, a message that names the problem.

Parse errors carry the column and a caret; shape errors name the dims; size errors name
the variable, the axis and both sizes; unknown names list what is known. Hostile strings
are parse errors, and nothing they contain is ever run.
"""

from __future__ import annotations

import builtins
import os
import subprocess

import numpy as np
import pytest

import eincalc as ec
from eincalc.errors import (
    ArgumentError,
    EincalcError,
    IndexMismatchError,
    ParseError,
    ShapeError,
    SizeError,
    UnknownNameError,
)

X = ec.matrix("X", "m n")
W = ec.matrix("W", "n k")
w = ec.vector("w", "n")
F = ec.matrix("F", "m 3")


# --------------------------------------------------------------------------------------
# the hierarchy
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls,builtin",
    [(ParseError, ValueError), (ShapeError, ValueError), (IndexMismatchError, ShapeError), (SizeError, ValueError),
     (ArgumentError, TypeError), (UnknownNameError, KeyError)],
)  # fmt: skip
def test_every_error_is_an_eincalc_error_and_a_builtin(cls, builtin):
    assert issubclass(cls, EincalcError)
    assert issubclass(cls, builtin)


def test_unknown_name_error_prints_its_message_plainly():
    err = UnknownNameError("unknown thing 'q'; known: a, b")
    assert str(err) == "unknown thing 'q'; known: a, b"  # KeyError would quote it


# --------------------------------------------------------------------------------------
# parse errors: position and caret
# --------------------------------------------------------------------------------------
def caret_column(err: ParseError) -> int:
    """The 0-based column of the caret in the message (the line above it is indented by 2)."""
    last = str(err).splitlines()[-1]
    return last.index("^") - 2


@pytest.mark.parametrize(
    "text,char,match",
    [
        ("X @ @ W", "@", "invalid syntax"),
        ("X + * W", "*", "invalid syntax"),
        ("(X @ W", "(", "never closed"),
        ("X @ W)", ")", "unmatched"),
        ("exp(X,, X)", ",", "invalid syntax"),
        ("(X\n + @ W)", "@", "invalid syntax"),
    ],
)
def test_syntax_errors_point_at_the_column(text, char, match):
    with pytest.raises(ParseError, match=match) as info:
        ec.parse(text, X="m n", W="n k")
    err = info.value
    assert err.pos is not None and err.text[err.pos] == char
    line = str(err).splitlines()[-2][2:]
    assert line[caret_column(err)] == char
    assert f"(column {caret_column(err) + 1})" in str(err)


def test_text_that_ends_too_early():
    with pytest.raises(ParseError, match="unexpected end"):
        ec.parse("X +", X="m n")
    with pytest.raises(ParseError, match="unexpected end"):
        ec.parse("   ")


def test_unknown_name_lists_the_declared_ones():
    with pytest.raises(ParseError, match=r"unknown name 'q'; declared variables: W, X") as info:
        ec.parse("X @ W + q", X="m n", W="n k")
    assert info.value.pos == 8
    with pytest.raises(ParseError, match="unknown name 'x'; declared variables: none declared"):
        ec.parse("x")


def test_unknown_function_lists_the_known_ones():
    with pytest.raises(ParseError, match=r"unknown function 'foo'; known functions: .*exp.*softmax") as info:
        ec.parse("X + foo(X)", X="m n")
    assert info.value.pos == 4


@pytest.mark.parametrize(
    "text,match",
    [
        ("X.shape", r"attribute \.shape is not allowed \(only \.T"),
        ("exp(X, X)", r"exp takes 1 argument\(s\), got 2"),
        ("outer(X)", r"outer takes 2 argument\(s\), got 1"),
        ("sum(X, dtype=1)", r"sum has no keyword 'dtype' \(allowed: axis, keepdims\)"),
        ("sum(X, keepdims=X)", "keepdims must be True or False"),
        ("np.exp.x(X)", "only calls of known functions are allowed"),
        ("X.shape()", r"not attribute access \.shape\(…\)"),
        ("softmax(X, axis=1.5)", "axis must be an integer literal"),
        ("np.foo(X)", "unknown function 'foo'"),
        ("exp(X, axis=0)", r"exp has no keyword 'axis' \(allowed: none\)"),
        ("inv(X, axis=0)", r"inv has no keyword 'axis' \(allowed: none\)"),
        ("sum(X, axis=foo)", "axis must be an integer literal"),
        ("sum(X, axis=1.5)", "axis must be an integer literal"),
        ("sum(*X)", r"\*arguments are not allowed"),
        ("einsum(X, W)", "einsum needs its subscripts as a string literal first"),
        ("'abc' * X", r"constant 'abc' is not allowed here \(only numbers\)"),
        ("True * X", r"constant True is not allowed here"),
        ("1j * X", r"constant 1j is not allowed here"),
        ("None", r"constant None is not allowed here"),
        ("eye(X)", "eye takes dim names or sizes as literals"),
        ("ones()", "ones takes dims"),
        ("zeros('n', axis=1)", "zeros takes dims"),
        ("1 / 0", "constant arithmetic failed"),
        ("(-8.0) ** 0.5", "is not a real number"),
        ("2 @ 3", "@ needs tensors, not numbers"),
        ("X % 2", "the operator Mod is not allowed"),
        ("X // 2", "the operator FloorDiv is not allowed"),
        ("~X", "the unary operator Invert is not allowed"),
        ("not X", "the unary operator Not is not allowed"),
        ("X < X < X", "only a single comparison"),
        ("X and X", "a boolean operator is not allowed"),
        ("(X, X)", "a tuple is not allowed"),
        ("[X]", "a list is not allowed"),
        ("{X}", "a set is not allowed"),
        ("{1: X}", "a dict is not allowed"),
        ("X; X", "invalid syntax"),
    ],
)
def test_disallowed_constructs(text, match):
    with pytest.raises(ParseError, match=match):
        ec.parse(text, X="m n")


@pytest.mark.parametrize(
    "text, dialect",
    [("(sum(-((0.5).^2)))^.2", "mc"), ("sum(-(0.5 ** 2)) ** 0.2", "numpy")],
)
def test_a_folded_constant_without_a_real_power_is_a_domain_error(text, dialect):
    """Folded to (-0.25) ** 0.2 it once became a node that printed as text which would not parse back."""
    with pytest.raises(ec.DomainError, match=r"\(-0\.25\) \*\* 0\.2 is not a real number"):
        ec.parse(text, dialect=dialect)


def test_bad_parse_arguments():
    with pytest.raises(ParseError, match="parse needs a string, got int"):
        ec.parse(3)  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="longer than 100000 characters"):
        ec.parse("x" * 100_001)
    with pytest.raises(UnknownNameError, match="unknown dialect 'fortran'; known: .*numpy"):
        ec.parse("x", dialect="fortran", x="n")


@pytest.mark.parametrize("text", ["(" * 5000 + "x" + ")" * 5000, "-" * 50_000 + "x", "exp(" * 3000 + "x" + ")" * 3000])
def test_deep_nesting_is_a_parse_error(text):
    with pytest.raises(ParseError):
        ec.parse(text, x="n")


# --------------------------------------------------------------------------------------
# declarations
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "decls,cls,match",
    [
        ({"1x": "n"}, ParseError, "declared name '1x' is not an identifier"),
        ({"X": "m 1n"}, ShapeError, "'1n' is not a valid dim name"),
        ({"X": "m for"}, ShapeError, "'for' is not a valid dim name"),
        ({"X": "m n;"}, ShapeError, "'n;' is not a valid dim name"),
        ({"X": 0}, ShapeError, "a fixed size must be positive, got 0"),
        ({"X": 3.5}, ShapeError, "expected a string like 'm n'"),
        ({"X": ("m", True)}, ShapeError, "True is not a valid dim name"),
    ],
)
def test_bad_declarations(decls, cls, match):
    with pytest.raises(cls, match=match):
        ec.parse("X", **decls)


def test_dunder_variable_names_are_refused():
    with pytest.raises(ShapeError, match="variable name '__class__' is not a valid identifier"):
        ec.parse("__class__", __class__="n")
    with pytest.raises(ShapeError, match="is a Python keyword"):
        ec.tensor("lambda", "n")
    with pytest.raises(ShapeError, match="not a valid identifier"):
        ec.tensor("a b", "n")


def test_declaration_helpers():
    with pytest.raises(ShapeError, match=r"vector 'v' needs one dim, got \(m, n\)"):
        ec.vector("v", "m n")
    with pytest.raises(ShapeError, match=r"matrix 'M' needs two dims, got \(m\)"):
        ec.matrix("M", "m")
    with pytest.raises(ShapeError, match="eye needs at least one dim"):
        ec.eye("")


# --------------------------------------------------------------------------------------
# shape errors name the dims
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,match",
    [
        ("X @ X", r"@: dims \(m, n\) @ \(m, n\) do not fit: dim 'n' does not match dim 'm'"),
        ("w @ X", r"@: dims \(n\) @ \(m, n\) do not fit"),
        ("X + W", r"\+: dims \(m, n\) and \(n, k\) do not broadcast"),
        ("X + v", r"\+: dims \(m, n\) and \(m\) do not broadcast: dim 'n' does not match dim 'm'"),
        ("X * v", r"\*: dims \(m, n\) and \(m\) do not broadcast"),
        ("X - W.T", r"-: dims \(m, n\) and \(k, n\) do not broadcast"),
        ("inv(X)", r"inv needs a square matrix: dim 'm' does not match dim 'n'"),
        ("det(w)", r"det needs a square matrix, got dims \(n\)"),
        ("logdet(X)", "logdet needs a square matrix"),
        ("trace(w)", r"trace needs a matrix, got dims \(n\)"),
        ("trace(X)", "dim 'm' does not match dim 'n'"),
        ("diag(T)", r"diag needs a vector or a matrix, got dims \(p, m, n\)"),
        ("softmax(s)", "softmax: axis -1 is out of range for dims of rank 0"),
        ("softmax(X, axis=2)", "softmax: axis 2 is out of range"),
        ("logsumexp(X, axis=-3)", "logsumexp: axis -3 is out of range"),
        ("logsumexp(X, axis=(0, 0))", "logsumexp: axis 0 is given twice"),
        ("max(X, axis=(0, 0))", "max: axis 0 is given twice"),
        ("sum(X, axis=2)", r"sum: axis 2 is out of range for dims \(m, n\)"),
        ("mean(X, axis=(0, 0))", "mean: axis 0 is given twice"),
        ("sum(X, axis=(1, -1))", "sum: axis -1 is given twice"),
        ("X ** W", r"power: dims \(m, n\) and \(n, k\) do not broadcast"),
        ("maximum(X, w @ W)", "maximum: dims"),
        ("where(v, X, W)", "where: dims"),
        ("X / 0", "division by the constant 0"),
        ("w @ 2", "@ needs operands with at least one dim"),
        ("T @ X", r"@: dims \(p, m, n\) @ \(m, n\) do not fit"),
        ("eye('n;')", "'n;' is not a valid dim name"),
    ],
)
def test_shape_errors_name_the_dims(text, match):
    with pytest.raises(ShapeError, match=match) as info:
        ec.parse(text, X="m n", W="n k", w="n", v="m", s="", T="p m n")
    assert info.value.__class__ is not EincalcError


def test_shape_errors_from_the_parser_point_at_the_operand():
    with pytest.raises(ShapeError) as info:
        ec.parse("sum(X @ X)", X="m n")
    assert "(column 9)" in str(info.value)
    assert str(info.value).splitlines()[-1] == "  " + " " * 8 + "^"


def test_inferred_dims_conflict_names_both_uses():
    with pytest.raises(ShapeError, match=r"dim 'm' does not match dim 'n'"):
        ec.parse("x + y + z", x="?", y="m", z="n")
    with pytest.raises(ShapeError, match="inferred from axis 0 of x"):
        ec.parse("A @ x + x", A="m n", x="?")


def test_shape_errors_from_python_operators():
    with pytest.raises(ShapeError, match=r"\(m, n\) @ \(m, n\)"):
        X @ X
    with pytest.raises(ShapeError, match="do not broadcast"):
        X + W
    with pytest.raises(TypeError, match="expected an eincalc expression, a number or a NumPy array, got str"):
        X + "w"  # type: ignore[operator]
    with pytest.raises(ShapeError, match=r"transpose axes \(0, 0\) are not a permutation"):
        ec.transpose(X, (0, 0))


# --------------------------------------------------------------------------------------
# einsum specifications
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec,operands,cls,match",
    [
        ("ij,jk->ik", [X], IndexMismatchError, "has 2 index groups but 1 operands were given"),
        ("i,i->i...", [w, w], IndexMismatchError, "'...' in the output but in no operand"),
        ("ij->k", [X], IndexMismatchError, "output index 'k' appears in no operand"),
        ("ijk,j->i", [X, w], IndexMismatchError, r"operand 0 has 2 dims \(m, n\) but 3 indices 'ijk'"),
        ("i1->", [w], IndexMismatchError, "'1' in 'i1->' is not an index letter"),
        ("...ij->", [w], IndexMismatchError, "fewer dims than its indices"),
        ("ij,ij->", [X, W], ShapeError, r"index 'i' \(operand 0 and operand 1\): dim 'm' does not match dim 'n'"),
        ("ii->", [X], ShapeError, "dim 'm' does not match dim 'n'"),
        ("ij,j->i", [X, 3.0], IndexMismatchError, r"operand 1 has 0 dims \(\) but 1 indices 'j'"),
    ],
)
def test_bad_einsum_specs(spec, operands, cls, match):
    with pytest.raises(cls, match=match):
        ec.einsum(spec, *operands)


def test_bad_einsum_arguments():
    with pytest.raises(IndexMismatchError, match="needs a subscripts string first, got int"):
        ec.einsum(3, X)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="einsum operand 1: expected an eincalc expression"):
        ec.einsum("ij,j->i", X, "w")
    with pytest.raises(IndexMismatchError, match="output index 'k' appears in no operand") as info:
        ec.parse("w + einsum('ij,j->k', X, w)", X="m n", w="n")
    assert "(column 5)" in str(info.value)


# --------------------------------------------------------------------------------------
# size errors at evaluation
# --------------------------------------------------------------------------------------
def test_missing_array():
    with pytest.raises(ArgumentError, match=r"no array given for w \(the expression takes X, w\)"):
        ec.evaluate(X @ w, X=np.ones((2, 3)))


def test_unknown_array_name():
    message = r"the expression has no argument 'z' \(it takes X, w, and the sizes of dims m, n\)"
    with pytest.raises(ArgumentError, match=message):
        ec.evaluate(X @ w, X=np.ones((2, 3)), w=np.ones(3), z=np.ones(2))


def test_rank_mismatch():
    with pytest.raises(SizeError, match=r"X has dims \(m, n\) \(rank 2\) but the array has shape \(2, 3, 1\)"):
        ec.evaluate(X @ w, X=np.ones((2, 3, 1)), w=np.ones(3))


def test_two_sizes_for_one_dim_name_both_uses():
    with pytest.raises(SizeError, match="dim 'n' has size 3 from axis 1 of X but size 4 from axis 0 of w"):
        ec.evaluate(X @ w, X=np.ones((2, 3)), w=np.ones(4))
    with pytest.raises(SizeError, match="dim 'n' has size 4 from the sizes given but size 3 from axis 1 of X"):
        ec.evaluate(X @ w, {"X": np.ones((2, 3)), "w": np.ones(3)}, {"n": 4})


def test_fixed_size_mismatch():
    with pytest.raises(SizeError, match="axis 1 of F has size 4 but its dim is fixed to 3"):
        ec.evaluate(F, F=np.ones((2, 4)))


def test_unbound_dim():
    # a dim no other test uses: a constant node is shared, and takes the signature of the
    # last function it was derived from (random expressions elsewhere may name q)
    with pytest.raises(SizeError, match=r"no size for dim\(s\) q_unbound: pass q_unbound=<size>"):
        ec.evaluate(ec.ones("q_unbound"))


def test_evaluate_needs_expressions():
    with pytest.raises(TypeError, match="evaluate needs eincalc expressions, got str"):
        ec.evaluate("X @ w", X=np.ones((2, 3)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# hostile input: a ParseError, and nothing runs
# --------------------------------------------------------------------------------------
HOSTILE = [
    ("__import__('os').system('touch {sentinel}')", "only calls of known functions are allowed, not attribute access"),
    ("(lambda: open('{sentinel}', 'w'))()", "only calls of known functions are allowed, not a lambda"),
    ("x.__class__", r"attribute \.__class__ is not allowed"),
    ("x.T.__class__.__bases__", r"attribute \.__bases__ is not allowed"),
    ("[i for i in x]", "a list comprehension is not allowed"),
    ("(open('{sentinel}', 'w') for i in x)", "a generator expression is not allowed"),
    ("x[x]", r"a subscript holds integer literals, slices of them, None or \.\.\. \(no expressions\)"),
    ("x[__import__('os').system('touch {sentinel}')]", r"a subscript holds integer literals"),
    ("f\"{{open('{sentinel}', 'w')}}\"", "an f-string is not allowed"),
    ("open('{sentinel}', 'w')", "unknown function 'open'"),
    ("exec(\"open('{sentinel}', 'w')\")", "unknown function 'exec'"),
    ("eval(\"open('{sentinel}', 'w')\")", "unknown function 'eval'"),
    ("compile('1', 'f', 'eval')", "unknown function 'compile'"),
    ("getattr(x, '__class__')", "unknown function 'getattr'"),
    ("x if x else x", "a conditional expression is not allowed"),
    ("globals()", "unknown function 'globals'"),
    ("__builtins__", "unknown name '__builtins__'"),
    ("(y := x)", "an assignment expression is not allowed"),
    ("x.T()", "only calls of known functions are allowed, not attribute access"),
    ("exp(x)(x)", "only calls of known functions are allowed, not a call"),
    ("sum(x, axis=__import__('os').system('touch {sentinel}'))", "axis must be an integer literal"),
    ("einsum(__import__('os').getcwd(), x)", "einsum needs its subscripts as a string literal first"),
    ("eye(__import__('os').getcwd())", "eye takes dim names or sizes as literals"),
    ("import os", "invalid syntax"),
    ("x; __import__('os').system('touch {sentinel}')", "invalid syntax"),
    ("lambda: x", "a lambda is not allowed"),
    ("await x", "await is not allowed"),
]


@pytest.fixture
def spies(monkeypatch, tmp_path):
    """Record every attempt to import os/subprocess, open a file, run code or a command."""
    calls: list[str] = []
    real_import, real_open, real_compile = builtins.__import__, builtins.open, builtins.compile

    def spy_import(name, *args, **kwargs):
        if name.split(".")[0] in ("os", "subprocess", "shutil", "sys"):
            calls.append(f"import {name}")
        return real_import(name, *args, **kwargs)

    def spy_open(*args, **kwargs):
        calls.append(f"open{args}")
        return real_open(*args, **kwargs)

    def spy_compile(source, filename, mode, flags=0, *args, **kwargs):
        import ast

        if not flags & ast.PyCF_ONLY_AST:  # ast.parse compiles to a tree only: that is fine
            calls.append(f"compile({source!r})")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def refuse(what):
        def call(*args, **kwargs):
            calls.append(f"{what}{args}")
            raise AssertionError(f"{what} was called")

        return call

    monkeypatch.setattr(builtins, "__import__", spy_import)
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(builtins, "compile", spy_compile)
    monkeypatch.setattr(builtins, "exec", refuse("exec"))
    monkeypatch.setattr(builtins, "eval", refuse("eval"))
    monkeypatch.setattr(os, "system", refuse("os.system"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    return calls


@pytest.mark.parametrize("template,match", HOSTILE, ids=[t for t, _ in HOSTILE])
def test_hostile_input_is_a_parse_error_and_nothing_runs(template, match, spies, tmp_path):
    sentinel = tmp_path / "sentinel"
    text = template.format(sentinel=sentinel)
    with pytest.raises(ParseError, match=match):
        ec.parse(text, x="n")
    assert spies == []
    assert not sentinel.exists()
    assert list(tmp_path.iterdir()) == []


def test_spies_would_see_a_call(spies, tmp_path):
    """The spies are live: the same payload run by Python itself is recorded."""
    with pytest.raises(AssertionError, match="os.system was called"):
        __import__("os").system(f"touch {tmp_path / 'sentinel'}")
    assert spies == ["import os", f"os.system('touch {tmp_path / 'sentinel'}',)"]
    assert not (tmp_path / "sentinel").exists()


def test_hostile_declarations_are_refused_without_running_anything(spies):
    with pytest.raises(ShapeError):
        ec.parse("x", x="__import__('os').system('echo hi')")
    with pytest.raises(ShapeError):
        ec.parse("eye('n; import os')")
    assert spies == []


@pytest.mark.parametrize(
    "text,dialect,match",
    [
        ("expp(X)", "numpy", r"unknown function 'expp' \(did you mean 'exp' or "),
        ("np.maximun(X, 0)", "numpy", r"did you mean 'maximum'"),
        ("sum(Xx)", "numpy", r"unknown name 'Xx' \(did you mean 'X'\?\)"),
        ("logsumexpp(x)", "mc", r"unknown function 'logsumexpp' \(did you mean 'logsumexp'\?\)"),
    ],
)
def test_unknown_names_get_a_suggestion(text, dialect, match):
    with pytest.raises(ParseError, match=match):
        ec.parse(text, dialect=dialect, **({"X": "m n"} if dialect == "numpy" else {}))
