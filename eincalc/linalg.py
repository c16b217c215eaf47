"""Matrix functions beyond inverse and determinant: ``cholesky``, ``eigh``, ``pinv``.

Each is one :class:`eincalc.tensor_functions.UnaryFn` entry with its NumPy value, its
Jacobian as an expression (so every mode and every order follow from the chain rule),
its NumPy code, LaTeX and printed syntax. ``kron`` needs no entry: it is an outer product
whose axis pairs a reshape merges (:func:`kron`).

Conventions (those of JAX, whose ``cholesky`` and ``eigh`` symmetrise their input):

* ``cholesky(X)`` and ``eigh(X)`` are functions of the symmetric part ``S = (X + Xᵀ)/2``;
  for a symmetric ``X`` the values are NumPy's, and derivatives are those of ``S``, so
  central differences in any direction agree with them.
* ``eigh(X)[0]`` (= ``eigvalsh(X)``) are the eigenvalues in ascending order, NumPy's;
  ``eigh(X)[1]`` the unit eigenvectors as columns, each signed so that its entry of
  largest magnitude is positive (NumPy's sign is arbitrary; a fixed one makes the
  eigenvectors a function, with a derivative). The eigenvector derivative assumes
  distinct eigenvalues: with a repeated one, ``1/(λⱼ − λᵢ)`` is IEEE ``inf`` and the
  derivative ``inf``/``nan`` (the eigenvalue derivative stays finite).
* ``pinv(A)``'s derivative (Golub & Pereyra 1973) holds where the rank of ``A`` is locally
  constant, e.g. ``A`` of full rank; at a rank drop the pseudo-inverse is not continuous.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eincalc import algebra as alg
from eincalc import dims as dimsmod
from eincalc.expr import Node, Unary
from eincalc.tensor_functions import UnaryFn


def _symmetric(x: Any) -> Any:
    return 0.5 * (x + np.swapaxes(x, -1, -2))


def _signed(v: Any) -> Any:
    """Eigenvectors (columns) signed so that each one's entry of largest magnitude is positive."""
    pick = np.abs(v).argmax(axis=0)
    return v * np.sign(v[pick, np.arange(v.shape[1])])


def _lower_mask(n: str) -> Node:
    """P[a, j] = 1 below the diagonal, ½ on it, 0 above: Φ(Y) = P ∘ Y of Murray's rule."""
    strict = alg.unary("tril", alg.const(1.0, (n, n)), -1)
    return alg.add([strict, alg.scale(alg.delta((n,)), 0.5)])


def _jac_cholesky(node: Unary) -> Node:
    """dL = L Φ(L⁻¹ dS L⁻ᵀ), S = (X + Xᵀ)/2 (Murray 2016).

    ∂L[i,j]/∂X[k,l] = ½ Σₐ L[i,a] P[a,j] (M[a,k] M[j,l] + M[a,l] M[j,k]), M = L⁻¹.
    """
    m = alg.unary("inv", node)
    p = _lower_mask(node.dims[0])
    first = alg.einsum([node, p, m, m], ["ia", "aj", "ak", "jl"], "ijkl", 0.5)
    second = alg.einsum([node, p, m, m], ["ia", "aj", "al", "jk"], "ijkl", 0.5)
    return alg.add([first, second])


def _jac_eigvalsh(node: Unary) -> Node:
    """∂λᵢ/∂X[k,l] = V[k,i] V[l,i] (the first-order perturbation vᵢᵀ dX vᵢ)."""
    v = alg.unary("eigh_vectors", node.arg)
    return alg.einsum([v, v], ["ki", "li"], "ikl")


def _jac_eigvecs(node: Unary) -> Node:
    """dV = V (F ∘ (Vᵀ dS V)), F[i,j] = 1/(λⱼ − λᵢ) off the diagonal and 0 on it.

    ∂V[k,j]/∂X[a,b] = ½ Σᵢ V[k,i] F[i,j] (V[a,i] V[b,j] + V[b,i] V[a,j]).
    """
    n = node.dims[0]
    lam = alg.unary("eigvalsh", node.arg)
    ones = alg.const(1.0, (n,))
    eye = alg.delta((n,))
    gap = alg.add([alg.einsum([lam, ones], ["j", "i"], "ij"), alg.einsum([lam, ones], ["i", "j"], "ij", -1.0), eye])
    off = alg.add([alg.const(1.0, (n, n)), alg.scale(eye, -1.0)])  # 1/(gap + δ) is finite on the diagonal
    f = alg.einsum([off, alg.elementwise("pow", gap, -1.0)], ["ij", "ij"], "ij")
    first = alg.einsum([node, f, node, node], ["ki", "ij", "ai", "bj"], "kjab", 0.5)
    second = alg.einsum([node, f, node, node], ["ki", "ij", "bi", "aj"], "kjab", 0.5)
    return alg.add([first, second])


def _jac_pinv(node: Unary) -> Node:
    """dA⁺ = −A⁺ dA A⁺ + A⁺A⁺ᵀ dAᵀ (I − AA⁺) + (I − A⁺A) dAᵀ A⁺ᵀA⁺ (Golub & Pereyra).

    With P = A⁺ (dims n × m for A of dims m × n), ∂P[i,j]/∂A[k,l] is
    −P[i,k] P[l,j] + (PPᵀ)[i,l] (δ[k,j] − (AP)[k,j]) + (δ[i,l] − (PA)[i,l]) (PᵀP)[k,j].
    """
    p, a = node, node.arg
    m, n = a.dims
    terms = [
        alg.einsum([p, p], ["ik", "lj"], "ijkl", -1.0),
        alg.einsum([p, p, alg.delta((m,))], ["ir", "lr", "kj"], "ijkl"),
        alg.einsum([p, p, a, p], ["ir", "lr", "ks", "sj"], "ijkl", -1.0),
        alg.einsum([alg.delta((n,)), p, p], ["il", "rk", "rj"], "ijkl"),
        alg.einsum([p, a, p, p], ["is", "sl", "rk", "rj"], "ijkl", -1.0),
    ]
    return alg.add(terms)


# -- NumPy code ---------------------------------------------------------------------------
def _symmetric_code(printer: Any, x: Any, ctx: Any) -> str:
    """``0.5 * (x + x.T)``: the symmetric part the function is defined on."""
    return f"0.5 * ({x.atom} + {x.atom}.T)"


def _code_cholesky(printer: Any, node: Unary, x: Any, ctx: Any) -> Any:
    from eincalc.codegen.printer import call

    return call(printer.np("linalg.cholesky"), _symmetric_code(printer, x, ctx))


def _code_eigvalsh(printer: Any, node: Unary, x: Any, ctx: Any) -> Any:
    from eincalc.codegen.printer import call

    return call(printer.np("linalg.eigvalsh"), _symmetric_code(printer, x, ctx))


def _code_eigvecs(printer: Any, node: Unary, x: Any, ctx: Any) -> Any:
    from eincalc.codegen.printer import Expr

    v = ctx.temp(Expr(f"{printer.np('linalg.eigh')}({_symmetric_code(printer, x, ctx)})[1]"), "eigenvectors")
    pick = f"{printer.np('abs')}({v.text}).argmax(axis=0), {printer.np('arange')}({v.text}.shape[1])"
    # NumPy's signs are arbitrary: each column's entry of largest magnitude made positive
    return Expr(f"{v.text} * {printer.np('sign')}({v.text}[{pick}])", owned=True)


def _code_pinv(printer: Any, node: Unary, x: Any, ctx: Any) -> Any:
    from eincalc.codegen.printer import call

    return call(printer.np("linalg.pinv"), x.text)


ENTRIES: list[UnaryFn] = [
    UnaryFn(
        "cholesky",
        lambda x, a: np.linalg.cholesky(_symmetric(x)),
        _jac_cholesky,
        square=True,
        latex=r"\operatorname{chol}",
        code=_code_cholesky,
        cubic=True,
    ),
    UnaryFn(
        "eigvalsh",
        lambda x, a: np.linalg.eigvalsh(_symmetric(x)),
        _jac_eigvalsh,
        square=True,
        dims_rule=lambda d: d[:1],
        latex=r"\lambda",
        code=_code_eigvalsh,
        cubic=True,
    ),
    UnaryFn(
        "eigh_vectors",
        lambda x, a: _signed(np.linalg.eigh(_symmetric(x))[1]),
        _jac_eigvecs,
        square=True,
        latex=r"\operatorname{eigvec}",
        syntax="eigh({0})[1]",
        code=_code_eigvecs,
        cubic=True,
    ),
    UnaryFn(
        "pinv",
        lambda x, a: np.linalg.pinv(x),
        _jac_pinv,
        matrix=True,
        dims_rule=lambda d: d[::-1],
        latex_power="+",
        code=_code_pinv,
        cubic=True,
    ),
]


# -- the Python API -----------------------------------------------------------------------
def _matrix(x: object, fn: str) -> Node:
    from eincalc.ops import as_node

    return as_node(x, f"argument of {fn}")


def cholesky(x: object) -> Node:
    """The lower Cholesky factor ``L`` of ``(x + xᵀ)/2 = L Lᵀ`` (NumPy's ``linalg.cholesky`` for symmetric ``x``)."""
    return alg.unary("cholesky", _matrix(x, "cholesky"))


def eigvalsh(x: object) -> Node:
    """The eigenvalues of the symmetric ``(x + xᵀ)/2`` in ascending order (NumPy's ``linalg.eigvalsh``)."""
    return alg.unary("eigvalsh", _matrix(x, "eigvalsh"))


def eigh(x: object) -> tuple[Node, Node]:
    """NumPy's ``linalg.eigh``: ``(eigenvalues, eigenvectors as columns)`` of ``(x + xᵀ)/2``.

    Each eigenvector's entry of largest magnitude is positive; derivatives of the
    eigenvectors assume distinct eigenvalues.
    """
    node = _matrix(x, "eigh")
    return alg.unary("eigvalsh", node), alg.unary("eigh_vectors", node)


def pinv(x: object) -> Node:
    """The Moore–Penrose pseudo-inverse (dims reversed); derivatives hold where the rank is constant."""
    return alg.unary("pinv", _matrix(x, "pinv"))


def kron(a: object, b: object) -> Node:
    """NumPy's ``kron``: ``K[(i,k), (j,l)] = a[i,j] b[k,l]`` (any ranks; the shorter is padded with 1s).

    The outer product with each axis pair merged by a reshape: axis k of the result has the
    dim ``p*q`` of the pair (``m*p`` for named dims), so the derivatives are those of a
    product and a reshape.
    """
    from eincalc import indexing

    x, y = _matrix(a, "kron"), _matrix(b, "kron")
    if x.ndim < y.ndim:
        x = indexing.expand_dims(x, tuple(range(y.ndim - x.ndim)))
    elif y.ndim < x.ndim:
        y = indexing.expand_dims(y, tuple(range(x.ndim - y.ndim)))
    rank = x.ndim
    letters = alg.symbols(2 * rank)
    xi, yi = letters[:rank], letters[rank:]
    outer = alg.einsum([x, y], [xi, yi], tuple(i for pair in zip(xi, yi) for i in pair))
    merged = tuple(dimsmod.product((p, q)) for p, q in zip(x.dims, y.dims))
    return indexing.reshape(outer, " ".join(merged))
