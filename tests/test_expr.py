"""The expression DAG: hash-consing, immutability, sharing, canonical forms, local folding.

Structural facts are checked with ``is`` (hash-consing makes it structural equality);
where a rule changes a value (delta elimination, folding) the value is also checked
against a closed form or a direct NumPy computation.
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import eincalc as ec
from eincalc import algebra as alg
from eincalc.expr import Einsum
from eincalc.graph import count_nodes, topo_order
from eincalc.testing import check_close

A = ec.matrix("A", "n n")
B = ec.matrix("B", "n n")
C = ec.matrix("C", "n n")
X = ec.matrix("X", "m n")
x = ec.vector("x", "n")
y = ec.vector("y", "n")
s = ec.scalar("s")
I = ec.eye("n")  # noqa: E741 - the identity


# --------------------------------------------------------------------------------------
# hash-consing
# --------------------------------------------------------------------------------------
def test_same_declaration_is_the_same_node():
    assert ec.matrix("A", "n n") is A
    assert ec.tensor("A", ("n", "n")) is A
    assert ec.matrix("A", "n", "n") is A


def test_different_dims_or_names_are_different_nodes():
    assert ec.matrix("A", "n m") is not A
    assert ec.matrix("Z", "n n") is not A
    assert ec.vector("x", 3) is not x


@pytest.mark.parametrize(
    "text",
    [
        "sum(log(1 + exp(-y * (X @ w))))",
        "trace(A @ B @ A.T)",
        "softmax(X @ W + b, axis=1)",
        "einsum('ij,jk->ik', A, B) + inv(A @ A.T + eye('n'))",
    ],
)
def test_same_text_parsed_twice_is_the_same_node(text):
    decls = dict(X="m n", w="n", y="m", A="n n", B="n n", W="n k", b="k")
    used = {k: v for k, v in decls.items() if k in text}
    assert ec.parse(text, **used) is ec.parse(text, **used)


def test_same_expression_built_twice_is_the_same_node():
    def build():
        return ec.sum(ec.log(1 + ec.exp(-(X @ x))))

    assert build() is build()


def test_digest_is_deterministic_across_processes():
    """The structural digest orders operands; it must not depend on Python's salted hash."""
    code = "import eincalc as ec; print(ec.parse('trace(A @ B) + sum(x)', A='n n', B='n n', x='n').digest.hex())"
    digests = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_einsum_digest_is_the_hash_of_its_repr_and_children():
    """Products spell their digest text from remembered index reprs: the bytes must be repr's."""
    vectors = [ec.vector(f"v{k}", "n") for k in range(56)]
    names = [(f"i{k}",) for k in range(56)]
    outer = alg.einsum(vectors, names, [i for (i,) in names])  # indices past opt_einsum's 52 ASCII letters
    assert max(ord(i) for i in outer.out_idx) > 127
    chain = X
    for k in range(40):  # wide products nested past MAX_INLINE
        chain = chain @ ec.matrix(f"W{k}", "n n")
    products = [A @ B, A.T, ec.trace(A), 2.5 * ec.sum(x), ec.einsum("ij,jk,k->i", A, B, x), outer, chain]
    checked = 0
    for node in (n for p in products for n in topo_order(p)):
        if isinstance(node, Einsum):
            text = repr((node.kind, (node.in_idx, node.out_idx, node.coef), node.dims))
            h = hashlib.blake2b(text.encode(), digest_size=16)
            for child in node.children:
                h.update(child.digest)
            assert node.digest == h.digest(), text
            checked += 1
    assert checked >= 8


# --------------------------------------------------------------------------------------
# immutability
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("attr,value", [("dims", ("m",)), ("name", "B"), ("children", ()), ("anything", 1)])
def test_nodes_are_immutable(attr, value):
    with pytest.raises(AttributeError, match="immutable"):
        setattr(A, attr, value)
    assert A.dims == ("n", "n") and A.name == "A"


def test_einsum_node_parameters_are_immutable():
    product = A @ B
    with pytest.raises(AttributeError, match="immutable"):
        product.coef = 2.0  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        product.in_idx = (("a",), ("a",))  # type: ignore[misc]
    assert isinstance(product.in_idx, tuple) and all(isinstance(i, tuple) for i in product.in_idx)


def test_copies_are_the_node_itself_and_pickling_is_refused():
    e = ec.exp(A @ x)
    assert copy.copy(e) is e
    assert copy.deepcopy(e) is e
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(e)


def test_symbolic_nodes_refuse_iteration_and_conversion_to_arrays():
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(x)
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(x)


def test_ndarray_operators_defer_to_nodes():
    """``__array_priority__`` makes ``ndarray * node`` call the node's reflected operator.

    The array becomes a constant operand (named after x's dim), not an object array of nodes.
    """
    scale = np.array([1.0, 2.0, 3.0])
    product = scale * x
    assert isinstance(product, ec.Node)
    assert product is x * scale
    np.testing.assert_allclose(ec.evaluate(product, x=np.ones(3)), scale)


# --------------------------------------------------------------------------------------
# structural sharing
# --------------------------------------------------------------------------------------
def test_common_subexpressions_are_shared():
    e = ec.parse("exp(A @ x) * exp(A @ x) + exp(A @ x)", A="n n", x="n")
    exps = [n for n in topo_order(e) if isinstance(n, ec.Elementwise)]
    assert len(exps) == 1  # one exp node, used three times
    # A, x, A@x, exp, exp*exp, add = 6 distinct nodes
    assert count_nodes(e) == 6


def test_dump_marks_a_shared_node_once():
    e = ec.sum(ec.exp(x) * ec.exp(x) + x)
    text = ec.dump(e)
    assert text.count(" exp ") == 1
    assert "^v" in text  # later uses point back


def test_topo_order_visits_each_node_once_on_a_deep_shared_dag():
    e = x
    for _ in range(200):  # each level uses the previous one twice: 2**200 paths
        e = ec.tanh(e) * ec.sin(e)
    order = topo_order(e)
    assert len(order) == len({id(n) for n in order}) == count_nodes(e)
    assert len(order) < 1000
    positions = {id(n): k for k, n in enumerate(order)}
    assert all(positions[id(c)] < positions[id(n)] for n in order for c in n.children)


# --------------------------------------------------------------------------------------
# canonical forms
# --------------------------------------------------------------------------------------
def test_products_and_sums_commute():
    assert A * B is B * A
    assert A + B is B + A
    assert (A + B) + C is A + (B + C) is C + (B + A)
    assert x * y * x is x * x * y


def test_matrix_products_associate():
    assert (A @ B) @ C is A @ (B @ C)
    assert x @ A @ y is x @ (A @ y)
    assert x @ A @ x is x @ (x @ A)  # equal operands: the least index pattern wins


def test_transposition_is_never_forgotten():
    assert A @ A.T is not A.T @ A
    assert A.T is not A
    assert ec.trace(A @ A.T) is not ec.trace(A @ A)
    assert A.T.T is A
    assert x @ A is A.T @ x


def test_trace_is_cyclic_as_an_einsum():
    assert ec.trace(A @ B) is ec.trace(B @ A)
    assert ec.trace(A @ B @ C) is ec.trace(C @ A @ B)
    assert ec.trace(A @ B @ C) is not ec.trace(A @ C @ B)


def test_coefficients_and_like_terms_combine():
    assert 2 * (3 * A) is 6 * A
    assert A + A is 2 * A
    assert 3 * A - A is 2 * A
    assert x / 2 is 0.5 * x
    assert ec.ops.negative(-A) is A
    # a negated sum stays a scaled sum (no distribution), with the same values
    a, b = np.arange(4.0).reshape(2, 2), np.eye(2)
    check_close(ec.evaluate(-(B - A), A=a, B=b), a - b)


def test_einsum_spelling_does_not_matter():
    assert ec.einsum("ij,jk->ik", A, B) is ec.einsum("pq,qr->pr", A, B) is A @ B
    assert ec.einsum("ij,jk", A, B) is A @ B  # implicit output: letters seen once, sorted
    assert ec.einsum("ji->ij", A) is A.T
    assert ec.einsum("ij,j->i", X, x) is X @ x


def test_many_equal_factors_have_one_canonical_form():
    """More than 720 orders of equal operands once fell back to a non-canonical sort."""
    k = 8
    first = ec.parse(" * ".join(["(v @ v)"] * k) + " * v", v="n")
    second = ec.parse("v * " + " * ".join(["(v @ v)"] * k), v="n")
    third = ec.parse("(" + " * ".join(["(v @ v)"] * (k - 3)) + ") * (v * (v @ v) * (v @ v) * (v @ v))", v="n")
    assert first is second is third
    assert ec.parse(str(first), v="n") is first
    values = np.array([0.5, -1.0, 2.0])
    check_close(ec.evaluate(first, v=values), values * (values @ values) ** k)


def test_long_products_print_and_parse_back_quickly():
    decls = {f"M{i}": "n n" for i in range(14)}
    chain = ec.parse(" @ ".join(decls), **decls)
    assert str(chain) == " @ ".join(decls)
    assert ec.parse(str(chain), **decls) is chain


# --------------------------------------------------------------------------------------
# unit tensors (delta) and constants
# --------------------------------------------------------------------------------------
def test_contracted_identity_disappears():
    assert I @ A is A
    assert A @ I is A
    assert x @ I @ y is x @ y
    assert ec.einsum("ij,jk->ik", I, A) is A
    assert ec.einsum("ij,ij->", I, A) is ec.trace(A)


def test_identity_with_both_indices_free_stays_symbolic():
    d = ec.diag(x)
    assert any(isinstance(c, ec.Delta) for c in d.children)
    assert ec.eye("m n").dims == ("m", "n", "m", "n")
    assert isinstance(I + A, ec.Add)


def test_identity_values():
    check_close(ec.evaluate(ec.trace(I), n=4), 4.0)  # trace of the 4x4 identity
    check_close(ec.evaluate(ec.sum(ec.eye("m n")), m=2, n=3), 6.0)  # Σ δ_ik δ_jl = m·n
    values = np.arange(1.0, 4.0)
    check_close(ec.evaluate(ec.diag(x), x=values), np.diag(values))
    t = ec.evaluate(ec.eye("m n"), m=2, n=3)
    check_close(t, np.einsum("ik,jl->ijkl", np.eye(2), np.eye(3)))


def test_zero_folding():
    zero = ec.zeros("n n")
    assert 0 * A is zero
    assert A * 0 is zero
    assert A - A is zero
    assert A @ zero is zero
    assert ec.einsum("ij,jk->ik", zero, A) is zero
    assert zero + A is A
    assert A + 0 is A
    assert ec.sum(zero) is ec.zeros(())
    assert ec.trace(A - A) is ec.zeros(())


def test_one_folding():
    assert A * 1 is A
    assert 1 * A is A
    assert ec.ones("n n") * A is A
    assert A**1 is A
    assert A**0 is ec.ones("n n")
    assert +A is A


def test_constant_functions_fold_to_their_values():
    assert ec.exp(ec.zeros("n")) is ec.ones("n")
    assert ec.log(ec.ones("n")) is ec.zeros("n")
    folded = ec.exp(2 * ec.ones("n"))
    assert isinstance(folded, ec.Const) and folded.value == pytest.approx(np.exp(2.0))
    assert ec.sqrt(s * 0 + 4) is ec.parse("2.0")


def test_negative_zero_is_zero():
    assert ec.parse("-0.0") is ec.parse("0.0") is ec.zeros(())


def test_variables_lists_each_variable_once_in_first_seen_order():
    e = ec.parse("sum(X @ w) + w @ w", X="m n", w="n")
    assert e.variables() == {"X": ("m", "n"), "w": ("n",)}
