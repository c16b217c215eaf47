"""The expression DAG: immutable, hash-consed node kinds.

The node set is closed:

=============  ===================================================================
``Var``        an input tensor with named dims, e.g. ``X: (m, n)``
``Const``      a tensor of the given dims filled with one number (a scalar if dims is ())
``Array``      a constant tensor given by data (a mask, ``np.eye(3)``)
``Window``     a selection matrix W[a, i] = δ(i, start + a): indexing and slicing
``Delta``      the unit tensor over ``dims``: dims ``dims + dims``, δ[i…, j…] = Π δ(iₖ, jₖ)
``Shift``      the 0/1 window tensor of a convolution or pooling (a structured constant)
``Einsum``     ``coef · einsum('s1,s2,…->s0', A1, A2, …)``; ``C = A *(s1,s2,s3) B`` is the
               two-operand case
``Add``        the sum of terms of equal dims
``Elementwise`` ``f(A)`` applied entry-wise; ``f`` is an entry of :mod:`eincalc.functions`
``Unary``      a tensor function that is not entry-wise (inv, det, softmax, …)
=============  ===================================================================

Nodes are built only through the smart constructors of :mod:`eincalc.algebra` and
:mod:`eincalc.ops`, which validate and canonicalise; the classes here just intern. Equal
structure means the same object (hash-consing), so ``is`` is structural equality and
common sub-expressions are shared. ``digest`` is a deterministic structural hash used for
canonical ordering (never Python's salted ``hash``).

Nothing here differentiates, simplifies or prints beyond ``repr``.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import threading
import weakref
from typing import Any, ClassVar

from eincalc._types import Dims, IndexTuple

_INTERNED: weakref.WeakValueDictionary[tuple, Node] = weakref.WeakValueDictionary()
# Look-up and insertion must be one step: two threads that both miss would each create a
# node, and equal structure would stop being one object (``is`` is equality here).
_INTERN_LOCK = threading.Lock()
_VAR_SERIALS = itertools.count()


_children = property(operator.attrgetter("children"), doc="The children (a C getter: read in every walk).")


class Node:
    """Base of all node kinds: immutable, interned, with ``dims`` and ``children``."""

    __slots__ = ("dims", "children", "digest", "__weakref__")
    kind: ClassVar[str] = "node"
    __array_priority__ = 1000  # so `ndarray * node` defers to the node's reflected operator

    dims: Dims
    children: tuple[Node, ...]
    digest: bytes

    @classmethod
    def _intern(cls, params: tuple, children: tuple[Node, ...], dims: Dims) -> Any:
        # Children are interned already, so their ids identify their structure; the key
        # keeps them alive only as long as this node lives (weak values). Dims are part of
        # the key: while a parser infers dims, a node's dims are not a function of its
        # params and children alone (an operand may still carry a placeholder dim).
        key = (cls, params, tuple(map(id, children)), dims)
        with _INTERN_LOCK:
            node = _INTERNED.get(key)
            if node is None:
                node = object.__new__(cls)
                h = hashlib.blake2b(cls._text(params, dims).encode(), digest_size=16)
                h.update(b"".join([c.digest for c in children]))  # one update: the same bytes hashed
                object.__setattr__(node, "dims", dims)
                object.__setattr__(node, "children", children)
                object.__setattr__(node, "digest", h.digest())
                node._init_params(params)
                _INTERNED[key] = node
        return node

    @classmethod
    def _text(cls, params: tuple, dims: Dims) -> str:
        """The text the digest hashes (before the children's digests): ``repr((kind, params, dims))``."""
        return repr((cls.kind, params, dims))

    def _init_params(self, params: tuple) -> None:
        raise NotImplementedError

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} nodes are immutable")

    def __reduce__(self) -> Any:
        raise TypeError("eincalc nodes are not picklable; save the printed expression or generated code")

    def __copy__(self) -> Node:
        return self

    def __deepcopy__(self, memo: dict) -> Node:
        return self

    # -- convenience -------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.dims)

    def variables(self) -> dict[str, Dims]:
        """Every variable this expression depends on, name -> dims, in first-seen order."""
        from eincalc.graph import topo_order

        return {n.name: n.dims for n in topo_order(self) if isinstance(n, Var)}

    def __str__(self) -> str:
        from eincalc.printing import to_numpy_syntax

        return to_numpy_syntax(self)

    def __repr__(self) -> str:
        text = str(self)
        if isinstance(self, Einsum) and any(isinstance(op, Delta) for op in self.operands):
            from eincalc.structure import compress  # show δ ⊗ core rather than the einsum

            text = str(compress(self))
        return f"<{self.kind} {text} : ({', '.join(self.dims)})>"

    def _repr_svg_(self) -> str | None:
        from eincalc.viz import repr_svg  # the DAG picture; None (text fallback) without Graphviz

        return repr_svg(self)

    def _repr_latex_(self) -> str | None:
        from eincalc.latex import latex

        return "$" + latex(self) + "$"

    # -- Python operators: front end 2 (symbolic tensor objects) ------------------------
    def __add__(self, other: object) -> Node:
        return _ops().add(self, other)

    def __radd__(self, other: object) -> Node:
        return _ops().add(other, self)

    def __sub__(self, other: object) -> Node:
        return _ops().subtract(self, other)

    def __rsub__(self, other: object) -> Node:
        return _ops().subtract(other, self)

    def __mul__(self, other: object) -> Node:
        return _ops().multiply(self, other)

    def __rmul__(self, other: object) -> Node:
        return _ops().multiply(other, self)

    def __truediv__(self, other: object) -> Node:
        return _ops().divide(self, other)

    def __rtruediv__(self, other: object) -> Node:
        return _ops().divide(other, self)

    def __pow__(self, other: object) -> Node:
        return _ops().power(self, other)

    def __rpow__(self, other: object) -> Node:
        return _ops().power(other, self)

    def __matmul__(self, other: object) -> Node:
        return _ops().matmul(self, other)

    def __rmatmul__(self, other: object) -> Node:
        return _ops().matmul(other, self)

    def __neg__(self) -> Node:
        return _ops().negative(self)

    def __pos__(self) -> Node:
        return self

    @property
    def T(self) -> Node:  # noqa: N802 - NumPy's name
        """Reverse the axes (NumPy's ``.T``)."""
        return _ops().transpose(self)

    # NumPy's methods (the string dialect accepts the same: x.sum(axis=0), x.dot(y), …)
    def sum(self, axis: Any = None, keepdims: bool = False) -> Node:
        """``ec.sum(self, axis, keepdims)``."""
        return _ops().sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Node:
        """``ec.mean(self, axis, keepdims)``."""
        return _ops().mean(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Node:
        """``ec.max(self, axis, keepdims)``."""
        return _reductions().max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Node:
        """``ec.min(self, axis, keepdims)``."""
        return _reductions().min(self, axis, keepdims)

    def prod(self, axis: Any = None, keepdims: bool = False) -> Node:
        """``ec.prod(self, axis, keepdims)``."""
        return _reductions().prod(self, axis, keepdims)

    def var(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Node:
        """``ec.var(self, axis, ddof, keepdims)``."""
        return _reductions().var(self, axis, ddof, keepdims)

    def std(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Node:
        """``ec.std(self, axis, ddof, keepdims)``."""
        return _reductions().std(self, axis, ddof, keepdims)

    def dot(self, other: object) -> Node:
        """``ec.dot(self, other)``."""
        return _ops().dot(self, other)

    def transpose(self, *axes: int) -> Node:
        """``ec.transpose(self, axes)`` (reversed axes by default)."""
        return _ops().transpose(self, tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], tuple) else axes or None)

    def reshape(self, *shape: object) -> Node:
        """``ec.reshape(self, shape)`` (size-1 axes, or fixed sizes)."""
        from eincalc.indexing import reshape

        return reshape(self, *shape)

    def clip(self, lower: object = None, upper: object = None) -> Node:
        """``ec.clip(self, lower, upper)``."""
        return _ops().clip(self, lower, upper)

    # comparisons give 0/1 tensors; == and != keep Python's identity meaning (nodes are
    # interned, so `is` and == agree) and are spelled ec.equal / ec.not_equal
    def __lt__(self, other: object) -> Node:
        return _ops().less(self, other)

    def __le__(self, other: object) -> Node:
        return _ops().less_equal(self, other)

    def __gt__(self, other: object) -> Node:
        return _ops().greater(self, other)

    def __ge__(self, other: object) -> Node:
        return _ops().greater_equal(self, other)

    def __getitem__(self, key: object) -> Node:
        """NumPy's basic indexing: ``x[0]``, ``x[:, 1:3]``, ``x[-1]``, ``x[:, None]``, ``x[..., 0]``."""
        from eincalc.indexing import index

        return index(self, key)

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Any:
        raise TypeError("eincalc expressions are symbolic and cannot be iterated")

    def __array__(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("an eincalc expression is symbolic; use ec.evaluate(expr, **arrays) for values")


def _ops() -> Any:
    from eincalc import ops

    return ops


def _reductions() -> Any:
    from eincalc import reductions

    return reductions


class Var(Node):
    """An input tensor ``name`` with dims ``dims``; a ``symmetric`` matrix if so declared.

    Derivatives w.r.t. a symmetric matrix are in the symmetric convention: the symmetric
    G with df = ⟨G, dX⟩ for every symmetric dX (``(∂f/∂X + ∂f/∂Xᵀ) / 2``).

    ``serial`` counts creations: variables built with Python operators are declared in
    that order (the default argument order, :mod:`eincalc.calling`). It is no part of
    the structure (equal variables are one object and keep their first serial).
    """

    __slots__ = ("name", "serial", "symmetric")
    kind = "var"
    name: str
    serial: int
    symmetric: bool

    def _init_params(self, params: tuple) -> None:
        object.__setattr__(self, "name", params[0])
        object.__setattr__(self, "serial", next(_VAR_SERIALS))  # under the intern lock
        object.__setattr__(self, "symmetric", len(params) > 2)

    @staticmethod
    def make(name: str, dims: Dims, symmetric: bool = False) -> Var:
        """The variable; ``symmetric`` (a square matrix equal to its transpose) is another node."""
        return Var._intern((name, dims, "symmetric") if symmetric else (name, dims), (), dims)


class Const(Node):
    """A tensor of ``dims`` with every entry equal to ``value`` (``Const(0, dims)`` is zero)."""

    __slots__ = ("value",)
    kind = "const"
    value: float

    def _init_params(self, params: tuple) -> None:
        object.__setattr__(self, "value", params[0])

    @staticmethod
    def make(value: float, dims: Dims = ()) -> Const:
        value = float(value)
        if value == 0.0:
            value = 0.0  # one zero, not two (-0.0 would intern separately)
        return Const._intern((value, dims), (), dims)

    @property
    def is_zero(self) -> bool:
        return self.value == 0.0


class Array(Node):
    """A constant tensor given by data (a fixed mask, a shift or pooling matrix, ``np.eye(3)``).

    ``data`` is a read-only float64 copy; the node's identity is its content (a digest of
    the bytes), so equal data is one node. ``dims`` are the array's axes by name: literal
    sizes (``"3"``) unless the operation that took it in named them after the other
    operands' dims (``ec.einsum("ij,j->i", np.eye(3), v)`` gives it ``v``'s dim), which the
    sizes of the data must then match when sizes are bound.
    """

    __slots__ = ("data",)
    kind = "array"
    data: Any

    def _init_params(self, params: tuple) -> None:
        object.__setattr__(self, "data", params[0].array)

    @staticmethod
    def make(data: Any, dims: Dims) -> Array:
        return Array._intern((_Data.of(data),), (), dims)


class _Data:
    """Array data as an interning key: equal when the bytes, shape and dtype are equal."""

    __slots__ = ("array", "key")

    def __init__(self, array: Any, key: bytes) -> None:
        self.array = array
        self.key = key

    @staticmethod
    def of(data: Any) -> _Data:
        import numpy as np

        array = np.array(data, dtype=float, copy=True)
        array.setflags(write=False)
        key = hashlib.blake2b(array.tobytes() + repr(array.shape).encode(), digest_size=16).digest()
        return _Data(array, key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Data) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:  # enters the structural digest: content, not identity
        return f"data:{self.key.hex()}"


class Window(Node):
    """A selection matrix: dims ``(out_dim, in_dim)``, W[a, i] = 1 where i = start + a.

    ``start`` counts from the front, or from the end of ``in_dim`` when ``from_end``
    (``v[-1]`` is start 1 from the end). Indexing and slicing are products with it:
    ``v[2]`` is Σᵢ W[0, i] vᵢ with out_dim ``"1"`` summed away, ``v[1:3]`` is W v with
    out_dim ``"2"``. It stays symbolic (no data): its size follows ``in_dim``.

    With ``rows`` (integer positions, a gather ``x[labels]``) W[a, i] = δ(i, rows[a])
    instead, and out_dim has ``len(rows)`` entries.
    """

    __slots__ = ("start", "from_end", "rows")
    kind = "window"
    start: int
    from_end: bool
    rows: tuple[int, ...] | None

    def _init_params(self, params: tuple) -> None:
        object.__setattr__(self, "start", params[0])
        object.__setattr__(self, "from_end", params[1])
        object.__setattr__(self, "rows", params[2])

    @staticmethod
    def make(out_dim: str, in_dim: str, start: int, from_end: bool, rows: tuple[int, ...] | None = None) -> Window:
        return Window._intern((int(start), bool(from_end), rows), (), (out_dim, in_dim))


class Delta(Node):
    """The unit tensor over ``base``: dims ``base + base``, δ[i…, j…] = Π δ(iₖ, jₖ).

    ``Delta((n,))`` is the n×n identity matrix.
    """

    __slots__ = ("base",)
    kind = "delta"
    base: Dims

    def _init_params(self, params: tuple) -> None:
        object.__setattr__(self, "base", params[0])

    @staticmethod
    def make(base: Dims) -> Delta:
        return Delta._intern((base,), (), base + base)


class Shift(Node):
    """The 0/1 tensor of a sliding window: ``S[i, k, o] = 1`` iff ``i = o·stride + k·dilation − padding``.

    Dims ``(size, kernel, out)``, all fixed sizes, with ``out = (size + 2·padding −
    dilation·(kernel − 1) − 1) // stride + 1``. ``X[…, i] S[i, k, o]`` is the window
    ``k`` of output position ``o`` (a convolution contracts it with a kernel over ``k``);
    code generation lowers it to a sliding-window view or a strided scatter and never
    builds the tensor. Built by :func:`eincalc.convolution.shift`.
    """

    __slots__ = ("size", "kernel", "out", "stride", "dilation", "padding")
    kind = "shift"
    size: int
    kernel: int
    out: int
    stride: int
    dilation: int
    padding: int

    def _init_params(self, params: tuple) -> None:
        for name, value in zip(self.__slots__, params):
            object.__setattr__(self, name, value)

    @staticmethod
    def make(size: int, kernel: int, stride: int, dilation: int, padding: int) -> Shift:
        out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
        dims = (str(size), str(kernel), str(out))
        return Shift._intern((size, kernel, out, stride, dilation, padding), (), dims)

    def dense(self) -> Any:
        """The tensor as a NumPy array (for the reference interpreter and tests only)."""
        import numpy as np

        i = np.arange(self.size)[:, None, None]
        k = np.arange(self.kernel)[None, :, None]
        o = np.arange(self.out)[None, None, :]
        return (i == o * self.stride + k * self.dilation - self.padding).astype(float)


_INDEX_REPRS: dict[tuple, str] = {}
INDEX_REPRS_KEPT = 1 << 16
"""Index tuples whose repr :func:`_index_repr` remembers (canonical products repeat few patterns)."""


def _index_repr(idx: Any) -> str:
    """``repr(idx)`` of an einsum's index tuple, remembered."""
    if type(idx) is not tuple:
        return repr(idx)
    text = _INDEX_REPRS.get(idx)
    if text is None:
        text = repr(idx)
        if len(_INDEX_REPRS) < INDEX_REPRS_KEPT:
            _INDEX_REPRS[idx] = text
    return text


class Einsum(Node):
    """``coef · einsum('in_idx[0],in_idx[1],…->out_idx', *operands)``.

    ``C = A *(s1,s2,s3) B`` is ``Einsum((A, B), (s1, s2), s3)``: C[s3] = Σ A[s1]·B[s2] over
    the indices not in s3. Invariants (checked by :func:`eincalc.algebra.einsum`):
    ``len(in_idx[k]) == operands[k].ndim``; every output index occurs in some operand;
    no output index repeats; an index has one dim wherever it occurs. Operand indices may
    repeat (a trace ``'ii->'`` or a diagonal ``'ii->i'``).
    """

    __slots__ = ("in_idx", "out_idx", "coef")
    kind = "einsum"
    in_idx: tuple[IndexTuple, ...]
    out_idx: IndexTuple
    coef: float

    def _init_params(self, params: tuple) -> None:
        object.__setattr__(self, "in_idx", params[0])
        object.__setattr__(self, "out_idx", params[1])
        object.__setattr__(self, "coef", params[2])

    @classmethod
    def _text(cls, params: tuple, dims: Dims) -> str:
        # repr((kind, params, dims)) spelled from remembered reprs of the index tuples: a
        # wide product's repr cost more than the rest of building it
        in_idx, out_idx, coef = params
        inner = ", ".join([_index_repr(t) for t in in_idx]) + ("," if len(in_idx) == 1 else "")
        return f"({cls.kind!r}, (({inner}), {_index_repr(out_idx)}, {coef!r}), {dims!r})"

    @staticmethod
    def make(
        operands: tuple[Node, ...], in_idx: tuple[IndexTuple, ...], out_idx: IndexTuple, coef: float, dims: Dims
    ) -> Einsum:
        return Einsum._intern((in_idx, out_idx, float(coef)), operands, dims)

    operands = _children  # the children under the name of this kind

    @property
    def spec(self) -> str:
        """The einsum subscripts, e.g. ``'ab,b->a'``."""
        return ",".join("".join(s) for s in self.in_idx) + "->" + "".join(self.out_idx)


class Add(Node):
    """The sum of ``terms`` (two or more, all of the same dims)."""

    __slots__ = ()
    kind = "add"

    def _init_params(self, params: tuple) -> None:
        pass

    @staticmethod
    def make(terms: tuple[Node, ...]) -> Add:
        return Add._intern((), terms, terms[0].dims)

    terms = _children  # the children under the name of this kind


class Elementwise(Node):
    """``fn(arg, …)`` entry-wise over arguments of equal dims; ``param`` is the exponent of ``pow``.

    Most functions take one argument (``exp``); some take several (``maximum(a, b)``,
    ``where(c, a, b)``, ``arctan2(y, x)``). ``fn`` is an entry of :mod:`eincalc.functions`.
    """

    __slots__ = ("fn", "param")
    kind = "elementwise"
    fn: str
    param: float | None

    def _init_params(self, params: tuple) -> None:
        object.__setattr__(self, "fn", params[0])
        object.__setattr__(self, "param", params[1])

    @staticmethod
    def make(fn: str, args: tuple[Node, ...], param: float | None = None) -> Elementwise:
        return Elementwise._intern((fn, None if param is None else float(param)), tuple(args), args[0].dims)

    @property
    def arg(self) -> Node:
        """The first (for most functions the only) argument."""
        return self.children[0]

    args = _children  # the children under the name of this kind


class Unary(Node):
    """A tensor function ``fn(arg, axis=…)`` that is not entry-wise (see :mod:`eincalc.tensor_functions`).

    ``axis`` is an int, a sorted tuple of two or more axes, or None (no axis, or all axes).
    """

    __slots__ = ("fn", "axis")
    kind = "unary"
    fn: str
    axis: int | tuple[int, ...] | None

    def _init_params(self, params: tuple) -> None:
        object.__setattr__(self, "fn", params[0])
        object.__setattr__(self, "axis", params[1])

    @staticmethod
    def make(fn: str, arg: Node, axis: int | tuple[int, ...] | None, dims: Dims) -> Unary:
        return Unary._intern((fn, axis), (arg,), dims)

    @property
    def arg(self) -> Node:
        return self.children[0]


NODE_KINDS: tuple[type[Node], ...] = (Var, Const, Array, Window, Delta, Shift, Einsum, Add, Elementwise, Unary)
