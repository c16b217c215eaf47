"""Golden LaTeX strings for canonical expressions (the oracle is the hand-written formula)."""

import numpy as np
import pytest

import eincalc as ec
import eincalc.algebra as alg
from eincalc.latex import latex

X = ec.matrix("X", "m n")
A = ec.matrix("A", "n n")
B = ec.matrix("B", "n p")
V = ec.matrix("V", "n k")
T = ec.tensor("T", "m n k")
x = ec.vector("x", "n")
w = ec.vector("w", "n")
y = ec.vector("y", "m")
v = ec.vector("v", "k")
s = ec.scalar("s")
t = ec.scalar("t")

# Kronecker layout: H[i,a,j,b] = 2 δ_ij (VᵀV)_ab, the matrix-factorisation Hessian
H_KRON = alg.einsum([alg.delta(("m",)), V.T @ V], ["ij", "ab"], "iajb", 2.0)
# the same numbers in layout [i,j,a,b]: not a Kronecker product of matrices
H_BLOCK = alg.einsum([alg.delta(("m",)), V.T @ V], ["ij", "ab"], "ijab", 2.0)

GOLDEN = [
    # the canonical examples of the issue
    (x.T @ A @ x, r"x^\top A x"),
    (ec.sum(ec.log(1 + ec.exp(-y * (X @ w)))), r"\sum \log(1 + \exp(-y \odot (X w)))"),
    (ec.trace(X @ A @ X.T), r"\operatorname{tr}(X A X^\top)"),
    (ec.inv(A), r"A^{-1}"),
    (H_KRON, r"I_{m} \otimes (2 V^\top V)"),
    (H_BLOCK, r"\delta_{ij} (2 V^\top V)_{kl}"),
    # products: vectors are columns
    (X @ w, r"X w"),
    (x @ A, r"A^\top x"),
    (X.T @ y, r"X^\top y"),
    (X.T @ X, r"X^\top X"),
    (X @ A @ B, r"X A B"),
    (x @ w, r"w^\top x"),
    (ec.outer(x, w), r"x w^\top"),
    (ec.dot(x, x) * A, r"(x^\top x) A"),
    (ec.einsum("ab,a,ac->bc", X, y, X), r"X^\top \operatorname{diag}(y) X"),  # a GLM Hessian
    (ec.einsum("ab,a,a,ac->bc", X, y, ec.exp(y), X), r"X^\top \operatorname{diag}(\exp(y)) \operatorname{diag}(y) X"),
    (ec.einsum("ij,jk,kl->li", A, A, A), r"A^\top A^\top A^\top"),
    (ec.outer(A, x), r"A \circ x"),
    # an index summed in one operand only is a ones vector
    (ec.einsum("ij,jk,lk->", X, A, X), r"\mathbf{1}^\top X A X^\top \mathbf{1}"),
    (ec.sum(X @ w), r"\mathbf{1}^\top X w"),
    (ec.sum(X * X), r"\operatorname{tr}(X X^\top)"),
    # Hadamard, broadcasting, diag, trace
    (x * w, r"w \odot x"),
    (X * w, r"X \operatorname{diag}(w)"),
    (ec.einsum("ab,a->ab", X, y), r"\operatorname{diag}(y) X"),
    (ec.diag(x), r"\operatorname{diag}(x)"),
    (ec.diag(A), r"\operatorname{diag}(A)"),
    (ec.diag(ec.exp(x)), r"\operatorname{diag}(\exp(x))"),
    (ec.trace(A), r"\operatorname{tr}(A)"),
    (ec.trace(A @ A), r"\operatorname{tr}(A A)"),
    (ec.einsum("ii,i->i", A, x), r"x \odot \operatorname{diag}(A)"),
    # transposes, sums, identity
    (A - A.T, r"A - A^\top"),
    (ec.sum(X, axis=0), r"X^\top \mathbf{1}"),
    (ec.sum(X, axis=1), r"X \mathbf{1}"),
    (2 * ec.sum(x), r"2 \sum x"),
    (ec.mean(x), r"\frac{1}{n} \sum x"),
    (2 * ec.eye("n"), r"2 I_{n}"),
    (s * ec.eye("n"), r"s I_{n}"),
    (ec.eye("m n"), r"I_{m} \otimes I_{n}"),
    (ec.ones("m n"), r"\mathbf{1}_{m \times n}"),
    # scalars: fractions and powers
    (s / t, r"\frac{s}{t}"),
    (s * s, r"s^{2}"),
    (x / s, r"\frac{1}{s} x"),
    (-3 * s / t, r"-\frac{3 s}{t}"),
    (ec.sqrt(s) + s**2 + s**-2 + ec.abs(s), r"s^{2} + \sqrt{s} + \frac{1}{s^{2}} + \lvert s \rvert"),
    (1 / x, r"x^{\odot -1}"),
    ((s * s) ** 3, r"(s^{2})^{3}"),
    ((s / t) ** 2, r"(\frac{s}{t})^{2}"),
    (ec.sqrt(s / t), r"\sqrt{\frac{s}{t}}"),
    (ec.inv(A.T), r"(A^\top)^{-1}"),
    (0.5 * x @ A @ x - x @ x, r"0.5 x^\top A x - x^\top x"),
    (-x, r"-x"),
    # general functions
    (ec.det(A), r"\det(A)"),
    (ec.logdet(A), r"\log\lvert\det(A)\rvert"),
    (ec.sigmoid(X @ w), r"\sigma(X w)"),
    (ec.softmax(x), r"\operatorname{softmax}(x)"),
    (ec.softmax(X, axis=0), r"\operatorname{softmax}(X, \mathrm{axis}=0)"),
    (ec.log_softmax(x), r"\log\operatorname{softmax}(x)"),
    (ec.logsumexp(x), r"\operatorname{logsumexp}(x)"),
    (ec.tanh(s) * ec.softplus(s), r"\tanh(s) \operatorname{softplus}(s)"),
    # index notation where no matrix notation fits
    (ec.einsum("ijk,k->ij", T, v), r"\sum_{k} T_{ijk} v_{k}"),
    (ec.sum(T, axis=0), r"\sum_{k} T_{kij}"),
    (ec.exp(ec.einsum("ijk->kij", T)), r"\exp(\left[T_{jki}\right]_{ijk})"),
    # names
    (ec.tensor("theta", "n") @ x, r"\theta^\top x"),
    (ec.tensor("w_1", "n") @ x, r"w_{1}^\top x"),
    (ec.scalar("loss") * s, r"s \mathit{loss}"),
    (ec.tensor("Sigma", "n n") @ x, r"\Sigma x"),
    (ec.scalar("u0") * ec.scalar("theta12") * ec.scalar("ab3"), r"u_{0} \theta_{12} \mathit{ab3}"),
]


@pytest.mark.parametrize(("expr", "expected"), GOLDEN, ids=[g[1] for g in GOLDEN])
def test_golden(expr, expected):
    assert latex(expr) == expected


def test_parsed_text_gives_the_same_formula():
    decl = {"X": "m n", "y": "m", "w": "n", "A": "n n", "x": "n"}
    assert latex(ec.parse("sum(log(1 + exp(-y * (X @ w))))", **decl)) == r"\sum \log(1 + \exp(-y \odot (X w)))"
    assert latex(ec.parse("trace(X @ A @ X.T)", **decl)) == r"\operatorname{tr}(X A X^\top)"
    assert latex(ec.parse("x.T @ A @ x", **decl)) == r"x^\top A x"


def test_scalar_expression_with_shared_product():
    f = ec.parse("x*y + exp(x*y)", x="", y="")
    assert latex(f) == r"\exp(x y) + x y"


def test_deterministic_and_independent_of_construction_order():
    first = latex(ec.trace(X @ A @ X.T))
    again = latex(ec.trace((X @ A) @ X.T))
    other = latex(ec.einsum("ij,jk,ik->", X, A, X))
    assert first == again == other


def _assert_well_formed(text):
    import re

    assert re.search(r"(\^\{[^{}]*\}|\^\\top)\^", text) is None, f"double superscript in {text}"
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert text.count("(") == text.count(")")
    assert text.count(r"\left") == text.count(r"\right")


@pytest.mark.parametrize(("expr", "expected"), GOLDEN, ids=[g[1] for g in GOLDEN])
def test_golden_strings_are_well_formed(expr, expected):
    _assert_well_formed(latex(expr))


def _random_matrix_expr(rng, depth):
    """A random square-matrix expression over A, B and the vector x (all over n)."""
    leaves = [A, A.T, ec.outer(x, w), ec.diag(x), ec.eye("n")]
    if depth == 0:
        return leaves[int(rng.integers(len(leaves)))]
    a, b = _random_matrix_expr(rng, depth - 1), _random_matrix_expr(rng, depth - 1)
    choices = [
        lambda: a @ b,
        lambda: a * b,
        lambda: a + b,
        lambda: a - 2 * b,
        lambda: a.T,
        lambda: ec.exp(a),
        lambda: ec.inv(a),
        lambda: ec.trace(a) * b,
        lambda: ec.softmax(a, axis=0),
        lambda: a / (1 + ec.sum(b)),
        lambda: ec.diag(ec.diag(a) * (b @ x)),
        lambda: ec.outer(a @ x, b.T @ w),
        lambda: a**2,
    ]
    return choices[int(rng.integers(len(choices)))]()


def test_random_expressions_print_well_formed():
    rng = np.random.default_rng(2024)
    for _ in range(300):
        expr = _random_matrix_expr(rng, int(rng.integers(1, 4)))
        text = latex(expr)
        _assert_well_formed(text)
        assert latex(expr) == text  # deterministic


def test_repr_latex_wraps_in_dollars():
    assert (x.T @ A @ x)._repr_latex_() == r"$x^\top A x$"


def test_not_an_expression():
    with pytest.raises(TypeError, match="eincalc expression"):
        latex(3.0)


# --------------------------------------------------------------------------------------
# meaning: read the matrix notation back with NumPy and compare with numpy.einsum
# --------------------------------------------------------------------------------------
_TOKENS = r"\\operatorname\{tr\}|\\operatorname\{diag\}|\\mathbf\{1\}|\^\\top|\\odot|[()\-]|[A-Za-z]"


def _read_matrix_notation(text, env, n):
    """Evaluate the product subset of the printer's LaTeX; vectors are (n, 1) columns.

    Juxtaposition is the matrix product (a 1×1 factor scales), ``^\\top`` transposes,
    ``\\odot`` is entry-wise; None when the text uses anything else.
    """
    import re

    tokens = re.findall(_TOKENS, text)
    if "".join(tokens) != text.replace(" ", ""):
        return None
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr():
        sign = -1.0 if peek() == "-" and take() else 1.0
        value = product()
        while peek() == r"\odot":
            take()
            value = value * product()
        return sign * value

    def product():
        value = postfix()
        while peek() not in (None, ")", r"\odot"):
            right = postfix()
            value = value * right if 1 in (value.size, right.size) else value @ right
        return value

    def postfix():
        value = primary()
        while peek() == r"^\top":
            take()
            value = value.T
        return value

    def primary():
        tok = take()
        if tok == "(":
            value = expr()
            assert take() == ")"
            return value
        if tok == r"\mathbf{1}":
            return np.ones((n, 1))
        if tok in (r"\operatorname{tr}", r"\operatorname{diag}"):
            assert take() == "("
            arg = expr()
            assert take() == ")"
            if tok == r"\operatorname{tr}":
                return np.array([[np.trace(arg)]])
            return np.diag(arg.ravel()) if 1 in arg.shape else np.diag(arg)[:, None]
        return env[tok]

    value = expr()
    assert pos == len(tokens)
    return value


def _read_index_notation(text, values, rank):
    """Evaluate ``\\sum_{j,k} X_{ij} w_{j}`` text with numpy.einsum; free indices are i, j, … in order."""
    import re

    m = re.fullmatch(r"(?:\\sum_\{([a-z,]+)\} )?((?:[A-Za-z]_\{[a-z]+\} ?)+)", text)
    if m is None:
        return None
    factors = re.findall(r"([A-Za-z])_\{([a-z]+)\}", m.group(2))
    summed = set(m.group(1).split(",")) if m.group(1) else set()
    free = "ijklpq"[:rank]
    assert {i for _, s in factors for i in s} == summed | set(free)
    spec = ",".join(s for _, s in factors) + "->" + free
    return np.asarray(np.einsum(spec, *[values[name] for name, _ in factors]))


def test_matrix_notation_means_the_einsum():
    rng = np.random.default_rng(7)
    n = 4
    mats = {name: ec.matrix(name, "n n") for name in "ABC"}
    vecs = {name: ec.vector(name, "n") for name in "uv"}
    values = {name: rng.normal(size=(n, n)) for name in mats} | {name: rng.normal(size=n) for name in vecs}
    env = {k: (v if v.ndim == 2 else v[:, None]) for k, v in values.items()}
    checked = indexed = 0
    for _ in range(600):
        k = int(rng.integers(2, 5))
        names = [str(rng.choice(list(mats) + list(vecs))) for _ in range(k)]
        letters = "abcde"
        groups = ["".join(rng.choice(list(letters), size=values[nm].ndim)) for nm in names]
        used = sorted(set("".join(groups)))
        out = "".join(rng.permutation(used)[: int(rng.integers(0, min(2, len(used)) + 1))])
        spec = ",".join(groups) + "->" + out
        node = alg.einsum([(mats | vecs)[nm] for nm in names], groups, out)
        got = _read_matrix_notation(latex(node), env, n)
        if got is None:
            got = _read_index_notation(latex(node), values, len(out))
            indexed += got is not None
        if got is None:
            continue
        expected = np.einsum(spec, *[values[nm] for nm in names])
        message = f"{spec}: {latex(node)}"
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-9, atol=1e-9, err_msg=message)
        checked += 1
    assert checked > 400 and indexed > 50  # most have a matrix reading, the rest index notation
