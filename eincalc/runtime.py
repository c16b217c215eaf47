"""What a generated module carries with it: the classes of structured results.

:class:`StructuredTensor` (δ ⊗ core), :class:`LowRank` (a weighted Gram term),
:class:`Kronecker` and :class:`StructuredSum` (a sum of those) are written against NumPy alone, and their
source is copied into every generated module that returns a structured result, so a
saved module keeps ``dense()``, ``matvec``, ``solve`` and ``@`` without eincalc
installed. eincalc's own classes (:mod:`eincalc.structure`) are these with eincalc's
error type.

Keep the classes self-contained: they may use ``numpy`` (imported as ``numpy``) and each
other, nothing else of this module.
"""

from __future__ import annotations

import functools
import pathlib

import numpy


class StructuredTensor:
    """A dense array of ``shape`` that is ``core`` (over ``core_labels``) written along ``labels``.

    Axes with equal labels share a diagonal; a label absent from the core is constant
    along its diagonal (the ``i`` of ``2 δ_ij (VᵀV)_ab``). ``t @ v`` and ``t.matvec(v)``
    contract the trailing axes with ``v``; ``t.solve(b)`` inverts that, using the block
    structure (a k×k solve for the matrix-factorisation Hessian, not an nk×nk one). A
    flat ``v`` or ``b`` (an optimiser's vector) is reshaped, and the answer is flat too.
    ``numpy.asarray(t)`` and ``t.dense()`` allocate every entry.
    """

    error = ValueError

    def __init__(self, core: numpy.ndarray, core_labels: str, labels: str, shape: tuple) -> None:
        core = numpy.asarray(core)
        self.core = core if core.dtype.kind == "f" else core.astype(float)
        self.core_labels = core_labels
        self.labels = labels
        self.shape = tuple(shape)
        if len(labels) != len(self.shape) or len(core_labels) != self.core.ndim:
            raise self.error(
                f"structure labels {labels!r}/{core_labels!r} do not fit shapes {self.shape}/{self.core.shape}"
            )

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> numpy.dtype:
        return self.core.dtype

    def __repr__(self) -> str:
        return (
            f"StructuredTensor(shape={self.shape}, labels={self.labels!r}, "
            f"core over {self.core_labels!r} with shape {self.core.shape})"
        )

    def dense(self) -> numpy.ndarray:
        """The full array (allocates every entry)."""
        out = numpy.zeros(self.shape, dtype=self.core.dtype)
        unique = "".join(dict.fromkeys(self.labels))
        view = numpy.einsum(f"{self.labels}->{unique}", out)  # a writeable view of the diagonal
        sizes = dict(zip(self.labels, self.shape))
        missing = [lab for lab in unique if lab not in self.core_labels]
        full = self.core.reshape(self.core.shape + (1,) * len(missing))
        full = numpy.broadcast_to(full, self.core.shape + tuple(sizes[m] for m in missing))
        view[...] = numpy.einsum(f"{self.core_labels}{''.join(missing)}->{unique}", full)
        return out

    def __array__(self, dtype: object = None, copy: object = None) -> numpy.ndarray:
        dense = self.dense()
        return dense if dtype is None else dense.astype(dtype)

    def _unflatten(self, x: numpy.ndarray, axes: tuple) -> tuple:
        """``x`` shaped as ``axes`` (half of the axes) when it comes flat, and whether it did."""
        x = numpy.asarray(x)
        if x.ndim == 1 and len(axes) > 1 and 2 * len(axes) == self.ndim and x.size == numpy.prod(axes):
            return x.reshape(axes), True
        return x, False

    def matvec(self, v: numpy.ndarray) -> numpy.ndarray:
        """Contract the trailing ``v.ndim`` axes with ``v`` (H·v for a Hessian)."""
        v, flat = self._unflatten(v, self.shape[self.ndim // 2 :])
        r = self.ndim - v.ndim
        if r < 0 or v.shape != self.shape[r:]:
            raise self.error(f"matvec: vector of shape {v.shape} does not fit the trailing axes of {self.shape}")
        row, col = self.labels[:r], self.labels[r:]
        result = None
        if len(set(row)) == len(row) and len(set(col)) == len(col):
            if not any(lab not in self.core_labels and lab not in col for lab in row):
                result = numpy.einsum(f"{self.core_labels},{col}->{row}", self.core, v)
        if result is None:
            result = numpy.tensordot(self.dense(), v, axes=v.ndim)
        return result.reshape(-1) if flat else result

    def __matmul__(self, v: numpy.ndarray) -> numpy.ndarray:
        return self.matvec(v)

    def solve(self, b: numpy.ndarray) -> numpy.ndarray:
        """``x`` with ``self.matvec(x) == b``, using the block structure where there is one."""
        b, flat = self._unflatten(b, self.shape[: self.ndim // 2])
        r = self.ndim - b.ndim
        if r != b.ndim or b.shape != self.shape[:r] or self.shape[:r] != self.shape[r:]:
            raise self.error(f"solve: a right-hand side of shape {b.shape} does not fit the shape {self.shape}")
        x = self.solve_columns(b[..., None])[..., 0]
        return x.reshape(-1) if flat else x

    def slogdet(self) -> tuple:
        """``(sign, log|det|)`` of the tensor as an N × N matrix, from its blocks where it has them."""
        r = self.ndim // 2
        blocks = self._blocks()
        if blocks is None:
            n = int(numpy.prod(self.shape[:r], dtype=numpy.int64))
            return numpy.linalg.slogdet(self.dense().reshape(n, n))
        mat, repeats, _ = blocks
        signs, logs = numpy.linalg.slogdet(mat)
        return float(numpy.prod(signs) ** repeats), float(repeats * numpy.sum(logs))

    def _blocks(self) -> tuple | None:
        """The distinct diagonal blocks (b × k × k), how often each repeats, and the label groups; or None.

        The groups are the batch labels in the core and outside it, and the labels of
        the rows only and of the columns only.
        """
        r = self.ndim // 2
        row, col = self.labels[:r], self.labels[r:]
        sizes = dict(zip(self.labels, self.shape))
        if len(set(row)) != len(row) or len(set(col)) != len(col) or self.shape[:r] != self.shape[r:]:
            return None
        batch = [lab for lab in row if lab in col]
        row_only = [lab for lab in row if lab not in col]
        col_only = [lab for lab in col if lab not in row]
        n_ro = int(numpy.prod([sizes[x] for x in row_only], dtype=numpy.int64))
        n_co = int(numpy.prod([sizes[x] for x in col_only], dtype=numpy.int64))
        if n_ro != n_co or any(lab not in self.core_labels for lab in row_only + col_only):
            return None
        in_core = [lab for lab in batch if lab in self.core_labels]
        outside = [lab for lab in batch if lab not in self.core_labels]
        mat = numpy.einsum(f"{self.core_labels}->{''.join(in_core + row_only + col_only)}", self.core)
        n_b = int(numpy.prod([sizes[x] for x in in_core], dtype=numpy.int64))
        repeats = int(numpy.prod([sizes[x] for x in outside], dtype=numpy.int64))
        return mat.reshape(n_b, n_ro, n_co), repeats, (in_core, outside, row_only, col_only)

    def solve_columns(self, b: numpy.ndarray) -> numpy.ndarray:
        """``solve`` for many right-hand sides at once: ``b`` has a last axis of columns."""
        r = self.ndim // 2
        blocks = self._blocks()
        if blocks is None:
            n = int(numpy.prod(self.shape[:r], dtype=numpy.int64))
            x = numpy.linalg.solve(self.dense().reshape(n, n), b.reshape(n, -1))
            return x.reshape(self.shape[r:] + b.shape[-1:])
        mat, _, (in_core, outside, row_only, col_only) = blocks
        row, col = self.labels[:r], self.labels[r:]
        sizes = dict(zip(self.labels, self.shape))
        rhs_labels = "".join(in_core + row_only + outside)
        rhs = numpy.einsum(f"{row}Z->{rhs_labels}Z", b).reshape(mat.shape[0], mat.shape[1], -1)
        sol = numpy.linalg.solve(mat, rhs)
        sol_labels = "".join(in_core + col_only + outside)
        sol = sol.reshape([sizes[x] for x in sol_labels] + [b.shape[-1]])
        return numpy.einsum(f"{sol_labels}Z->{col}Z", sol)


class LowRank:
    """``coef · Σ_s w_s L[s, α] L[s, β]``: a weighted Gram matrix of ``r`` rows ``L[s]``.

    ``factor`` has shape ``(r,) + half`` and the tensor has shape ``half + half``; stored
    and applied in O(r · N) for N entries of ``half``, never as the N × N matrix.
    """

    error = ValueError

    def __init__(self, factor: numpy.ndarray, weights: numpy.ndarray, coef: float, shape: tuple) -> None:
        self.shape = tuple(shape)
        half = self.shape[: len(self.shape) // 2]
        self.factor = numpy.asarray(factor, dtype=float).reshape((-1, *half))
        self.weights = numpy.asarray(weights, dtype=float).reshape(-1)
        self.coef = float(coef)
        if self.factor.shape[0] != self.weights.shape[0]:
            raise self.error(f"low-rank factor {self.factor.shape} and weights {self.weights.shape} do not agree")

    @property
    def rows(self) -> numpy.ndarray:
        """The factor as an r × N matrix."""
        return self.factor.reshape(self.factor.shape[0], -1)

    def dense(self) -> numpy.ndarray:
        rows = self.rows
        return (self.coef * (rows.T * self.weights) @ rows).reshape(self.shape)

    def matvec_flat(self, v: numpy.ndarray) -> numpy.ndarray:
        return self.coef * (self.rows.T @ (self.weights[:, None] * (self.rows @ v.reshape(self.rows.shape[1], -1))))


class Kronecker:
    """``coef · ⊗_c factors[c]``: factor c acts on the half positions ``positions[c]``.

    ``H[i, j, k, l] = coef · A[i, k] B[j, l]`` has ``positions == ((0,), (1,))``. ``@`` and
    ``solve`` apply (or invert) each factor along its own axes: O(n³) for n × n factors,
    never the n² × n² matrix.
    """

    error = ValueError

    def __init__(self, factors: tuple, positions: tuple, coef: float, shape: tuple) -> None:
        self.factors = tuple(numpy.asarray(f, dtype=float) for f in factors)
        self.positions = tuple(tuple(p) for p in positions)
        self.coef = float(coef)
        self.shape = tuple(shape)
        self.half = self.shape[: len(self.shape) // 2]

    def _matrix(self, c: int) -> numpy.ndarray:
        n = int(numpy.prod([self.half[p] for p in self.positions[c]], dtype=numpy.int64))
        return self.factors[c].reshape(n, n)

    def _apply(self, x: numpy.ndarray, inverse: bool) -> numpy.ndarray:
        """Each factor (or its inverse) applied along its axes of ``x`` (half shape + columns)."""
        for c, axes in enumerate(self.positions):
            moved = numpy.moveaxis(x, axes, range(len(axes)))
            flat = moved.reshape(self._matrix(c).shape[0], -1)
            done = numpy.linalg.solve(self._matrix(c), flat) if inverse else self._matrix(c) @ flat
            x = numpy.moveaxis(done.reshape(moved.shape), range(len(axes)), axes)
        return x / self.coef if inverse else self.coef * x

    def dense(self) -> numpy.ndarray:
        letters = "abcdefghijklmnopqrstuvwxyz"
        k = len(self.half)
        specs = ["".join(letters[p] for p in ps) + "".join(letters[k + p] for p in ps) for ps in self.positions]
        return self.coef * numpy.einsum(f"{','.join(specs)}->{letters[: 2 * k]}", *self.factors)

    def matvec_flat(self, v: numpy.ndarray) -> numpy.ndarray:
        columns = v.reshape(*self.half, -1)
        return self._apply(columns, False).reshape(-1, columns.shape[-1])

    def solve_columns(self, b: numpy.ndarray) -> numpy.ndarray:
        return self._apply(b, True)

    def slogdet(self) -> tuple:
        """``det(c · A ⊗ B) = c^N det(A)^m det(B)^n`` (A n×n, B m×m, N = nm)."""
        total = int(numpy.prod(self.half, dtype=numpy.int64))
        sign = numpy.sign(self.coef) ** total
        log = total * numpy.log(abs(self.coef))
        for c in range(len(self.factors)):
            s, ld = numpy.linalg.slogdet(self._matrix(c))
            repeats = total // self._matrix(c).shape[0]
            sign, log = sign * s**repeats, log + repeats * ld
        return float(sign), float(log)


class StructuredSum:
    """A sum of structured terms: δ ⊗ core, :class:`Kronecker` and low-rank :class:`LowRank`.

    The Hessian of softmax regression is ``δ ⊗ C − Lᵀ diag(w) L``: a block-diagonal term
    and a Gram term whose rank is the number of samples. ``t @ v`` applies the terms
    without forming the sum; ``t.solve(b)`` inverts one structured term directly, a
    structured term plus low-rank ones by the Woodbury identity when the rank is below
    the size, a Kronecker product of symmetric factors plus a multiple of the identity by
    the factors' eigendecompositions; else it solves the dense sum.
    """

    error = ValueError

    def __init__(self, parts: tuple) -> None:
        self.parts = tuple(parts)
        self.shape = self.parts[0].shape
        for part in self.parts:
            if part.shape != self.shape:
                raise self.error(f"structured terms of shapes {part.shape} and {self.shape} cannot be added")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> numpy.dtype:
        return numpy.dtype(float)

    def __repr__(self) -> str:
        kinds = " + ".join(type(p).__name__ for p in self.parts)
        return f"StructuredSum(shape={self.shape}, {kinds})"

    def dense(self) -> numpy.ndarray:
        """The full array (allocates every entry)."""
        return sum(p.dense() for p in self.parts)

    def __array__(self, dtype: object = None, copy: object = None) -> numpy.ndarray:
        dense = self.dense()
        return dense if dtype is None else dense.astype(dtype)

    def _size(self) -> int:
        return int(numpy.prod(self.shape[: self.ndim // 2], dtype=numpy.int64))

    def _flat(self, v: numpy.ndarray, what: str) -> tuple:
        v = numpy.asarray(v, dtype=float)
        half = self.shape[: self.ndim // 2]
        if v.shape == half:
            return v.reshape(-1), False
        if v.ndim == 1 and v.size == self._size():
            return v, True
        raise self.error(f"{what}: a vector of shape {v.shape} does not fit the shape {self.shape}")

    def matvec(self, v: numpy.ndarray) -> numpy.ndarray:
        """``H v`` from the terms: O(r·N) for a low-rank term, the factors' work for the others."""
        flat_v, flat = self._flat(v, "matvec")
        half = self.shape[: self.ndim // 2]
        total = numpy.zeros(flat_v.shape)
        for p in self.parts:
            if hasattr(p, "matvec_flat"):
                total += p.matvec_flat(flat_v)[:, 0]
            else:
                total += numpy.asarray(p.matvec(flat_v.reshape(half))).reshape(-1)
        return total if flat else total.reshape(half)

    def __matmul__(self, v: numpy.ndarray) -> numpy.ndarray:
        return self.matvec(v)

    def solve(self, b: numpy.ndarray) -> numpy.ndarray:
        """``x`` with ``H x = b``, using the structure where one of the cases above applies."""
        flat_b, flat = self._flat(b, "solve")
        half = self.shape[: self.ndim // 2]
        x = self._structured_solve(flat_b.reshape(*half, 1))
        if x is None:
            n = self._size()
            x = numpy.linalg.solve(self.dense().reshape(n, n), flat_b)
        x = numpy.asarray(x).reshape(-1)
        return x if flat else x.reshape(half)

    def _split(self) -> tuple:
        """The structured terms, the low-rank ones, and the low-rank terms' total rank."""
        low = [p for p in self.parts if isinstance(p, LowRank)]
        base = [p for p in self.parts if not isinstance(p, LowRank)]
        return base, low, sum(p.factor.shape[0] for p in low)

    def _capacitance(self, d: object, low: list) -> tuple:
        """For ``D + U C Uᵀ``: ``U`` (N × r), the diagonal of ``C``, ``D⁻¹ U`` and ``I + C Uᵀ D⁻¹ U``."""
        half = self.shape[: self.ndim // 2]
        n = self._size()
        u = numpy.concatenate([p.rows for p in low]).T
        c = numpy.concatenate([p.coef * p.weights for p in low])
        d_inv_u = d.solve_columns(u.reshape(*half, u.shape[1])).reshape(n, u.shape[1])
        return u, c, d_inv_u, numpy.eye(u.shape[1]) + c[:, None] * (u.T @ d_inv_u)

    def slogdet(self) -> tuple:
        """``(sign, log|det|)``: one structured term plus low-rank ones by the determinant lemma."""
        base, low, rank = self._split()
        n = self._size()
        if len(base) == 1 and rank < n:
            sign, log = base[0].slogdet()
            if low:  # det(D + U C Uᵀ) = det(D) det(I + C Uᵀ D⁻¹ U)
                s2, l2 = numpy.linalg.slogdet(self._capacitance(base[0], low)[3])
                sign, log = sign * s2, log + l2
            return float(sign), float(log)
        return numpy.linalg.slogdet(self.dense().reshape(n, n))

    def _structured_solve(self, b: numpy.ndarray) -> numpy.ndarray | None:
        base, low, rank = self._split()
        if len(base) == 2 and not low:
            return self._shifted_kronecker_solve(base, b)
        if len(base) != 1 or rank >= self._size():
            return None
        d = base[0]
        if not low:
            return d.solve_columns(b)
        u, c, d_inv_u, inner = self._capacitance(d, low)
        d_inv_b = d.solve_columns(b).reshape(-1)
        # (D + U C Uᵀ)⁻¹ = D⁻¹ − D⁻¹ U (I + C Uᵀ D⁻¹ U)⁻¹ C Uᵀ D⁻¹ (C may be singular)
        return d_inv_b - d_inv_u @ numpy.linalg.solve(inner, c * (u.T @ d_inv_b))

    def _shifted_kronecker_solve(self, base: list, b: numpy.ndarray) -> numpy.ndarray | None:
        """``(coef · A ⊗ B + λ I) x = b`` through ``A = Q Λ Qᵀ``, ``B = P M Pᵀ`` (symmetric A, B)."""
        kron = [p for p in base if isinstance(p, Kronecker)]
        other = [p for p in base if not isinstance(p, Kronecker)]
        if len(kron) != 1 or len(kron[0].factors) != 2 or not hasattr(other[0], "core_labels"):
            return None
        k, shift = kron[0], other[0]
        r = self.ndim // 2
        if shift.core.ndim or shift.labels[:r] != shift.labels[r:]:
            return None  # not a multiple of the identity
        mats = [k._matrix(c) for c in range(2)]
        if not all(numpy.allclose(m, m.T) for m in mats):
            return None
        (la, qa), (lb, qb) = (numpy.linalg.eigh(m) for m in mats)
        rotated = k.__class__((qa.T, qb.T), k.positions, 1.0, self.shape)._apply(b, False)
        scale = k.coef * numpy.multiply.outer(la, lb) + float(shift.core)
        order = [p for ps in k.positions for p in ps]
        scale = numpy.transpose(scale, numpy.argsort(order))
        return k.__class__((qa, qb), k.positions, 1.0, self.shape)._apply(rotated / scale[..., None], False)


@functools.cache
def structured_source() -> str:
    """The source of the classes above, for a generated module (read once).

    Sliced from this file, which is quicker than ``inspect.getsource`` (about 20 ms): the
    classes end where this function's decorator begins.
    """
    text = pathlib.Path(__file__).read_text(encoding="utf-8")
    start = text.index("class StructuredTensor:")
    return text[start : text.index("\n\n\n@functools.cache", start)]
