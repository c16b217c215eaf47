"""What a generated module carries with it: the class of compressed (δ ⊗ core) results.

:class:`StructuredTensor` is written against NumPy alone, and its source is copied into
every generated module that returns a compressed result, so a saved module keeps
``dense()``, ``matvec``, ``solve`` and ``@`` without eincalc installed. eincalc's own
:class:`eincalc.structure.StructuredTensor` is this class with eincalc's error type.

Keep the class self-contained: it may use ``numpy`` (imported as ``numpy``) and nothing
else, not even other names of this module.
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
        row, col = self.labels[:r], self.labels[r:]
        sizes = dict(zip(self.labels, self.shape))
        batch = [lab for lab in row if lab in col]
        row_only = [lab for lab in row if lab not in col]
        col_only = [lab for lab in col if lab not in row]
        distinct = len(set(row)) == len(row) and len(set(col)) == len(col)
        n_ro = int(numpy.prod([sizes[x] for x in row_only], dtype=numpy.int64))
        n_co = int(numpy.prod([sizes[x] for x in col_only], dtype=numpy.int64))
        if not distinct or n_ro != n_co or any(lab not in self.core_labels for lab in row_only + col_only):
            n = int(numpy.prod(self.shape[:r], dtype=numpy.int64))
            x = numpy.linalg.solve(self.dense().reshape(n, n), b.reshape(n)).reshape(self.shape[r:])
            return x.reshape(-1) if flat else x
        in_core = [lab for lab in batch if lab in self.core_labels]
        outside = [lab for lab in batch if lab not in self.core_labels]
        m_labels = "".join(in_core + row_only + col_only)
        mat = numpy.einsum(f"{self.core_labels}->{m_labels}", self.core)
        n_b = int(numpy.prod([sizes[x] for x in in_core], dtype=numpy.int64))
        mat = mat.reshape(n_b, n_ro, n_co)
        rhs_labels = "".join(in_core + row_only + outside)
        rhs = numpy.einsum(f"{row}->{rhs_labels}", b).reshape(n_b, n_ro, -1)
        sol = numpy.linalg.solve(mat, rhs)
        sol_labels = "".join(in_core + col_only + outside)
        sol = sol.reshape([sizes[x] for x in sol_labels])
        x = numpy.einsum(f"{sol_labels}->{col}", sol)
        return x.reshape(-1) if flat else x


@functools.cache
def structured_source() -> str:
    """The source of :class:`StructuredTensor`, for a generated module (read once).

    Sliced from this file, which is quicker than ``inspect.getsource`` (about 20 ms): the
    class ends at the first two blank lines after it.
    """
    text = pathlib.Path(__file__).read_text(encoding="utf-8")
    start = text.index("class StructuredTensor:")
    return text[start : text.index("\n\n\n", start)]
