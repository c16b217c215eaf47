"""Smart constructors: the only way nodes are built, and where local simplification lives.

Every node passes through one of :func:`einsum`, :func:`add`, :func:`elementwise`,
:func:`unary`, :func:`const`, :func:`delta`, :func:`variable`. They validate their
arguments (dims, indices) and return a *canonical* node, so that equal mathematics built
twice is one interned node and the derivative rules never special-case zeros or unit
tensors. Rules applied here, each shrinking the expression (so repeated application
terminates):

* ``fold_consts``: a zero factor makes the product zero; scalar factors merge into ``coef``.
* ``flatten``: an Einsum operand of an Einsum is inlined (its summed indices renamed).
* ``eliminate_deltas``: δ *(pq, …) with ``q`` contracted renames ``q`` to ``p``
  (Σ_q δ_pq F_q = F_p); a δ whose both indices survive stays (it is the compressed
  "δ ⊗ core" structure, kept symbolic).
* ``drop_ones``: a ones factor over indices that other factors already carry is 1.
* ``combine_terms``: ``a·X + b·X → (a+b)·X``; zero terms vanish; constants add up.
* canonical order: operands sorted by structural digest, indices renamed a, b, c, … in
  order of first appearance (output first), so ``A*B`` and ``B*A`` are one node.

Stable-form rewrites that look deeper than one node live in :mod:`eincalc.rewrite`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import unicodedata
import weakref
from collections.abc import Sequence

import numpy as np
from opt_einsum import get_symbol

from eincalc import dims as dimsmod
from eincalc._types import Dims, Index, IndexTuple
from eincalc.errors import IndexMismatchError, LimitError, ShapeError
from eincalc.expr import Add, Array, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var, Window
from eincalc.signs import is_nonnegative

_fresh_counter = itertools.count()


def fresh_index() -> Index:
    """An index name that cannot clash with canonical names (they never contain '#')."""
    return f"#{next(_fresh_counter)}"


_SYMBOLS = tuple(get_symbol(k) for k in range(1024))  # canonical index names, looked up rather than made


def symbols(n: int, start: int = 0) -> IndexTuple:
    """``n`` canonical index names: ``('a', 'b', …)``."""
    if start + n <= len(_SYMBOLS):
        return _SYMBOLS[start : start + n]
    return tuple(get_symbol(i) for i in range(start, start + n))


# --------------------------------------------------------------------------------------
# leaves
# --------------------------------------------------------------------------------------
def variable(name: str, dims: Dims, symmetric: bool = False) -> Var:
    """The variable ``name`` with dims ``dims`` (validated).

    The name is NFKC-normalised as Python normalises identifiers in source, so a
    look-alike such as fullwidth ``ｙ`` *is* ``y`` here too and cannot silently read
    another variable in generated code. A ``symmetric`` variable is a square matrix
    whose derivatives are taken in the symmetric convention (:class:`~eincalc.expr.Var`).
    """
    if isinstance(name, str):
        name = normalise_name(name)
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
        raise ShapeError(f"variable name {name!r} is not a valid identifier")
    import keyword

    if keyword.iskeyword(name):
        raise ShapeError(f"variable name {name!r} is a Python keyword")
    parsed = dimsmod.parse_dims(dims, f"dims of {name}")
    if symmetric and (len(parsed) != 2 or parsed[0] != parsed[1]):
        raise ShapeError(f"a symmetric variable is a square matrix; {name!r} has dims {dimsmod.fmt(parsed)}")
    return Var.make(name, parsed, symmetric)


def normalise_name(name: str) -> str:
    """``name`` in NFKC form, the form Python gives identifiers (``'ｎｕｍｐｙ'`` is ``'numpy'``)."""
    return name if name.isascii() else unicodedata.normalize("NFKC", name)


def const(value: float, dims: Dims = ()) -> Const:
    """A tensor of ``dims`` filled with ``value``."""
    if not math.isfinite(float(value)):
        raise ShapeError(f"constant {value!r} is not a finite number")
    return Const.make(value, tuple(dims))


def array(data: object, dims: Dims | None = None) -> Array:
    """A constant tensor holding ``data``; its dims are literal sizes unless ``dims`` names them."""
    try:
        values = np.asarray(data, dtype=float)
    except (TypeError, ValueError) as err:
        raise ShapeError(f"a constant array needs a rectangular block of numbers: {err}") from None
    if values.ndim == 0:
        raise ShapeError("a constant array needs at least one axis; use a number for a scalar")
    if not np.all(np.isfinite(values)):
        raise ShapeError("a constant array must hold finite numbers")
    names = tuple(str(s) for s in values.shape) if dims is None else tuple(dims)
    if len(names) != values.ndim:
        raise ShapeError(f"a constant array of shape {values.shape} needs {values.ndim} dims, got {dimsmod.fmt(names)}")
    for d, s in zip(names, values.shape):
        if dimsmod.is_literal(d) and int(d) != s:
            raise ShapeError(f"a constant array of shape {values.shape} cannot have dims {dimsmod.fmt(names)}")
    return Array.make(values, names)


def window(
    out_dim: str, in_dim: str, start: int = 0, from_end: bool = False, rows: Sequence[int] | None = None
) -> Window:
    """The selection matrix W[a, i] = δ(i, start + a) of dims ``(out_dim, in_dim)``; ``out_dim`` is a size.

    With ``rows``, W[a, i] = δ(i, rows[a]) (a gather); ``out_dim`` may then be a named dim
    of ``len(rows)`` entries.
    """
    if rows is not None:
        picked = tuple(int(r) for r in rows)
        if not picked or min(picked) < 0:
            raise ShapeError("a gather needs non-negative positions")
        if dimsmod.is_literal(out_dim) and int(out_dim) != len(picked):
            raise ShapeError(f"a gather of {len(picked)} positions cannot have dim {out_dim!r}")
        if dimsmod.is_literal(in_dim) and max(picked) >= int(in_dim):
            raise ShapeError(f"position {max(picked)} is out of range for dim {in_dim!r}")
        return Window.make(out_dim, in_dim, 0, False, picked)
    if "-" in out_dim and not from_end:  # x[1:], x[:-1] of a named dim n: n-k entries from start ≤ k
        base, k = out_dim.split("-")
        if base != in_dim or not 0 <= start <= int(k):
            raise ShapeError(f"a selection of {out_dim} entries from {start} does not fit dim {in_dim!r}")
        return Window.make(out_dim, in_dim, start, False)
    if not dimsmod.is_literal(out_dim):
        raise ShapeError(f"a selection needs a fixed size, got dim {out_dim!r}")
    size = int(out_dim)
    fits = start >= 0 and (not from_end or start >= size)
    if fits and dimsmod.is_literal(in_dim):
        fits = _window_end(size, int(in_dim), start, from_end) <= int(in_dim)
    if not fits:
        where = f"{start} from the end" if from_end else f"{start}"
        raise ShapeError(f"a selection of {size} entries from {where} does not fit dim {in_dim!r}")
    return Window.make(out_dim, in_dim, start, from_end)


def _window_end(size: int, n: int, start: int, from_end: bool) -> int:
    return (n - start if from_end else start) + size


def zeros(dims: Dims) -> Const:
    """The zero tensor of ``dims``."""
    return Const.make(0.0, tuple(dims))


def delta(base: Dims) -> Node:
    """The unit tensor over ``base`` (dims ``base + base``); a scalar 1 for ``base == ()``."""
    base = tuple(base)
    return Delta.make(base) if base else Const.make(1.0, ())


def is_zero(node: Node) -> bool:
    """True if ``node`` is the symbolic zero."""
    return isinstance(node, Const) and node.value == 0.0


def is_ones(node: Node) -> bool:
    """True for a Const filled with 1 (of any dims)."""
    return isinstance(node, Const) and node.value == 1.0


# --------------------------------------------------------------------------------------
# einsum
# --------------------------------------------------------------------------------------
def einsum(
    operands: Sequence[Node], in_idx: Sequence[Sequence[Index]], out_idx: Sequence[Index], coef: float = 1.0
) -> Node:
    """``coef · einsum(in_idx -> out_idx, *operands)``, validated and canonicalised.

    Examples:
        >>> import eincalc as ec
        >>> A, B = ec.matrix("A", "m k"), ec.matrix("B", "k n")
        >>> einsum([A, B], ["ij", "jk"], "ik") is (A @ B)
        True
    """
    operands = tuple(operands)
    ins = tuple(tuple(s) for s in in_idx)
    out = tuple(out_idx)
    index_dim = _validate(operands, ins, out)
    return _normalise(list(zip(operands, ins)), out, float(coef), index_dim)


def _validate(operands: tuple[Node, ...], ins: tuple[IndexTuple, ...], out: IndexTuple) -> dict[Index, str]:
    if len(operands) != len(ins):
        raise IndexMismatchError(f"einsum has {len(ins)} index groups but {len(operands)} operands")
    index_dim: dict[Index, str] = {}
    for k, (op, idx) in enumerate(zip(operands, ins)):
        if not isinstance(op, Node):
            raise IndexMismatchError(f"einsum operand {k} is not an expression: {op!r}")
        if len(idx) != len(op.dims):
            raise IndexMismatchError(
                f"einsum operand {k} has {op.ndim} dims {dimsmod.fmt(op.dims)} but {len(idx)} indices {''.join(idx)!r}"
            )
        for i, d in zip(idx, op.dims):
            known = index_dim.setdefault(i, d)
            if known != d:  # the message is only built for a mismatch (or a dim being inferred)
                where = next(j for j, other in enumerate(ins) if i in other)
                dimsmod.require_same(known, d, f"einsum index {i!r} (operand {where} and operand {k})")
    seen: set[Index] = set()
    for i in out:
        if i in seen:
            raise IndexMismatchError(f"einsum output index {i!r} appears twice")
        seen.add(i)
        if i not in index_dim:
            raise IndexMismatchError(f"einsum output index {i!r} appears in no operand")
    return index_dim


Factor = tuple[Node, IndexTuple]

MAX_INLINE = 32
"""Most factors a product gathers by inlining its product operands; an operand that would
take it past this stays a single operand of its consumer.

Flattening is what makes products canonical, but a chain built link by link (the
back-propagated signal of a deep network, one layer at a time) would be rebuilt in
full at every link: quadratic work and memory in its length. And ordering equal
factors canonically costs about the square of their number per product built, so
``A @ A @ … @ A`` and the unit tensors of deep Hessians were cubic or worse (a depth-100
tanh chain took minutes). Past this size a chain is cut into pieces; products within
it are canonical whatever their association. This holds for products with unit tensors
too (a δ left nested is still correct, only not eliminated).
Products with window tensors are flattened only when nothing joins them (a
scaling, a sum): a convolution stays one product of its input, so code generation
can lower it to a window view (a window tensor meeting another one on an index, as
in the gradient of a pooled convolution, has no such form).
"""


MAX_OPERANDS = 256
"""The most operands one einsum may have after flattening (:class:`LimitError` past it)."""


def _has_shift(node: Einsum) -> bool:
    return any(isinstance(op, Shift) for op in node.operands)


def _normalise(factors: list[Factor], out: IndexTuple, coef: float, index_dim: dict[Index, str]) -> Node:
    """The canonical product of ``factors``.

    ``index_dim`` holds each index's dim (first occurrence first, from :func:`_validate`);
    the indices inlining adds are added to it.
    """
    if len(factors) > MAX_OPERANDS:
        raise _too_many_operands(len(factors))
    out_dims = tuple(index_dim[i] for i in out)

    flat: list[Factor] = []
    inlined = _to_inline(factors)
    for k, (op, idx) in enumerate(factors):
        if isinstance(op, Const):
            if op.value == 0.0 or coef == 0.0:
                return zeros(out_dims)
            coef *= op.value
            flat.extend(_ones_factors(idx, index_dim))
        elif k in inlined:
            assert isinstance(op, Einsum)
            coef *= op.coef
            flat.extend(_inline(op, idx, index_dim))
        elif isinstance(op, Delta):
            k = len(op.base)
            flat.extend((Delta.make((d,)), (idx[i], idx[k + i])) for i, d in enumerate(op.base))
        else:
            flat.append((op, idx))
    if coef == 0.0:
        return zeros(out_dims)
    if len(flat) > MAX_OPERANDS:
        raise _too_many_operands(len(flat))
    if not math.isfinite(coef):
        raise ShapeError("the constant factor of a product overflows a float64 (its magnitude passes 1.8e308)")

    # Each pass below changes only products with its kind of factor (and may add ones):
    # one look at the kinds present spares the others their walk over the factors.
    kinds = {type(op) for op, _ in flat}
    if Delta in kinds:
        flat = _eliminate_deltas(flat, set(out), index_dim)
        kinds.add(Const)
    if Window in kinds:
        flat = _sum_windows(flat, set(out), index_dim)
        kinds.add(Const)
    if Elementwise in kinds or Unary in kinds:
        flat = _collect_powers(flat, index_dim)
        kinds.add(Const)
    if Const in kinds:
        flat = _drop_ones(flat)
        # a summed size-1 axis of ones contributes the factor 1 (x[:, None] products, keepdims)
        flat = [(op, idx) for op, idx in flat if not (is_ones(op) and op.dims == ("1",) and idx[0] not in out)]

    if not flat:
        return Const.make(coef, ())
    if Const in kinds and all(is_ones(op) for op, _ in flat):
        present = {i for _, idx in flat for i in idx}
        if present == set(out):  # nothing summed: a filled constant
            return Const.make(coef, out_dims)
    if len(flat) == 1 and coef == 1.0 and flat[0][1] == out:
        return flat[0][0]
    return _canonical(flat, out, coef, index_dim)


def _to_inline(factors: list[Factor]) -> set[int]:
    """Positions of the product operands to flatten: smallest first while MAX_INLINE allows.

    Choosing by size and digest, not by position, makes the choice independent of the
    order the operands come in.
    """
    products = sorted((len(op.children), op.digest, k) for k, (op, _) in enumerate(factors) if isinstance(op, Einsum))
    if not products:
        return set()
    alone = len([op for op, _ in factors if not isinstance(op, Const)]) == 1  # a scaling, transposition or sum
    spare = MAX_INLINE - len(factors)  # factors that inlining may still add
    chosen: set[int] = set()
    for size, _, k in products:
        if size - 1 > spare:
            break
        if not alone and _has_shift(factors[k][0]):  # asked only of products that would fit
            continue
        spare -= size - 1
        chosen.add(k)
    return chosen


def _too_many_operands(n: int) -> LimitError:
    return LimitError(
        f"einsum with {n} operands exceeds the limit of {MAX_OPERANDS} "
        "(eincalc.algebra.MAX_OPERANDS); write it as a product of smaller einsums"
    )


def _ones_factors(idx: IndexTuple, index_dim: dict[Index, str]) -> list[Factor]:
    """ones over ``idx`` as one 1-D ones factor per distinct index."""
    return [(Const.make(1.0, (index_dim[i],)), (i,)) for i in dict.fromkeys(idx)]


def _inline(inner: Einsum, outer_idx: IndexTuple, index_dim: dict[Index, str]) -> list[Factor]:
    """The factors of ``inner`` with its output indices renamed to ``outer_idx``.

    Its summed indices get fresh names. A repeated outer index (a trace of a product)
    simply maps two inner output indices to one name, which is the diagonal.
    """
    rename: dict[Index, Index] = dict(zip(inner.out_idx, outer_idx))
    renamed = rename.__getitem__
    out: list[Factor] = []
    for op, idx in zip(inner.operands, inner.in_idx):
        for i, d in zip(idx, op.dims):
            if i not in rename:
                new = rename[i] = fresh_index()
                index_dim[new] = d
        out.append((op, tuple(map(renamed, idx))))
    return out


def _eliminate_deltas(flat: list[Factor], out: set[Index], index_dim: dict[Index, str]) -> list[Factor]:
    """Remove every 1-D δ with a contracted index by renaming (Σ_q δ_pq F_q = F_p)."""
    changed = True
    while changed:
        changed = False
        for k, (op, idx) in enumerate(flat):
            if not isinstance(op, Delta):
                continue
            p, q = idx
            if p == q:  # δ_pp is 1 for every p: ones over p keeps p's range
                flat[k] = (Const.make(1.0, (index_dim[p],)), (p,))
            elif q not in out or p not in out:
                old, new = (q, p) if q not in out else (p, q)
                rest = flat[:k] + flat[k + 1 :]
                flat = [(o, tuple(new if i == old else i for i in ix)) for o, ix in rest]
                flat.append((Const.make(1.0, (index_dim[new],)), (new,)))
            else:
                continue  # both indices survive: the δ ⊗ core structure
            changed = True
            break
    return flat


def power_form(node: Node) -> tuple[Node, float]:
    """``(base, p)`` with ``node == base ** p`` wherever ``node`` is defined.

    ``sqrt(s)`` is ``s ** 0.5`` and ``(s ** a) ** b`` is ``s ** (a b)`` for a non-integer
    ``a`` (``s ** a`` is then defined only for ``s ≥ 0``, where the identity holds).
    """
    if isinstance(node, Elementwise) and node.fn in ("pow", "sqrt"):
        p = 0.5 if node.fn == "sqrt" else node.param
        assert p is not None
        inner, a = power_form(node.arg)
        if a != 1.0 and not float(a).is_integer():
            return inner, a * p
        return node.arg, p
    return node, 1.0


def power(base: Node, p: float) -> Node:
    """``base ** p`` in its one canonical spelling (``sqrt`` for ½, the base for 1)."""
    if p == 0.5:
        return elementwise("sqrt", base)
    return elementwise("pow", base, p)


def _collect_powers(flat: list[Factor], index_dim: dict[Index, str]) -> list[Factor]:
    """``x**a · x**b → x**(a+b)`` for factors of one base over the same indices.

    Exact wherever the product is defined: it changes values only where a factor is
    undefined (``x/x`` is 1 also at 0, ``sqrt(s)·sqrt(s)`` is ``s`` also for s < 0). A
    group is collected only if it holds a power: ``x·x`` stays a product, which
    contracts on BLAS (``x @ x``). ``adj(X) · det(X)**p`` with ``p < 0`` is
    ``inv(X) · det(X)**(p+1)`` (the product is undefined at singular X anyway), so a
    derivative through ``det`` that divides by it comes out as the inverse.
    """
    if not any(
        (isinstance(op, Elementwise) and op.fn in ("pow", "sqrt")) or (isinstance(op, Unary) and op.fn == "adjugate")
        for op, _ in flat
    ):
        return flat  # nothing to collect (most products): no grouping work
    groups: dict[tuple[int, IndexTuple], list[int]] = {}
    forms = []
    for k, (op, idx) in enumerate(flat):
        base, p = power_form(op)
        forms.append((base, p))
        groups.setdefault((id(base), idx), []).append(k)
    exponent: dict[int, float] = {}  # net exponent of each collected group, by its first position
    dropped: set[int] = set()
    for members in groups.values():
        if len(members) > 1 and any(forms[k][1] != 1.0 for k in members):
            exponent[members[0]] = math.fsum(forms[k][1] for k in members)
            dropped.update(members[1:])
    replaced: dict[int, Node] = {}
    for k, (op, _idx) in enumerate(flat):
        if not (isinstance(op, Unary) and op.fn == "adjugate"):
            continue
        det = unary("det", op.arg)
        scalars = groups.get((id(det), ()), [])
        if not scalars:
            continue
        first = scalars[0]
        p = exponent.get(first, forms[first][1])
        if p < 0:
            exponent[first] = p + 1.0
            replaced[k] = unary("inv", op.arg)
    if not exponent and not replaced:
        return flat
    out: list[Factor] = []
    for k, (op, idx) in enumerate(flat):
        if k in dropped:
            continue
        if k in replaced:
            out.append((replaced[k], idx))
        elif k in exponent:
            if exponent[k] == 0.0:
                out.extend(_ones_factors(idx, index_dim))
            else:
                out.append((power(forms[k][0], exponent[k]), idx))
        else:
            out.append((op, idx))
    return out


def _sum_windows(flat: list[Factor], out: set[Index], index_dim: dict[Index, str]) -> list[Factor]:
    """Σᵢ W[o, i] = 1: a selection or gather matrix summed over an input index no other factor has is ones over o.

    (Each row of a window holds one 1; ones factors over i go with it.) The cotangent of
    ``logp[arange(n), labels]`` then needs no row sums of a one-hot matrix.
    """
    if not any(isinstance(op, Window) for op, _ in flat):
        return flat  # nothing to sum (most products): no counting
    count: dict[Index, int] = {}
    for op, idx in flat:
        for i in () if is_ones(op) else idx:  # ones over i do not use i
            count[i] = count.get(i, 0) + 1
    summed = {
        idx[1]
        for op, idx in flat
        if isinstance(op, Window) and len(set(idx)) == 2 and idx[1] not in out and count[idx[1]] == 1
    }
    if not summed:
        return flat
    kept: list[Factor] = []
    for op, idx in flat:
        if isinstance(op, Window) and idx[-1] in summed:
            kept.append((Const.make(1.0, (index_dim[idx[0]],)), (idx[0],)))
        elif not (is_ones(op) and idx[0] in summed):
            kept.append((op, idx))
    return kept


def _drop_ones(flat: list[Factor]) -> list[Factor]:
    """Drop ones factors whose indices another factor carries; one ones per index at most."""
    if not any(is_ones(op) for op, _ in flat):
        return flat
    carried = {i for op, idx in flat if not is_ones(op) for i in idx}
    kept: list[Factor] = []
    for op, idx in flat:
        if is_ones(op):
            if len(set(idx)) != len(idx) or len(idx) != 1:
                raise AssertionError("ones factors are 1-D after normalisation")
            if idx[0] in carried:
                continue
            carried.add(idx[0])
        kept.append((op, idx))
    return kept


def _canonical(flat: list[Factor], out: IndexTuple, coef: float, index_dim: dict[Index, str]) -> Node:
    """Intern the product in canonical form.

    Operands are sorted by digest; output indices are named first (a, b, …), summed ones
    by first appearance. Equal operands (same digest) can be ordered in several ways; the
    one giving the smallest index pattern wins, which makes ``w @ A @ w`` and
    ``w @ (w @ A)`` one node without ever identifying ``A`` with ``Aᵀ``.
    """
    keyed = sorted([(op.digest, k) for k, (op, _) in enumerate(flat)])  # by digest, stable
    ordered = [flat[k] for _, k in keyed]

    def realise(order: list[Factor]) -> tuple[tuple[IndexTuple, ...], dict[Index, Index]]:
        names: dict[Index, Index] = dict(zip(out, symbols(len(out))))
        for _, idx in order:
            for i in idx:
                if i not in names:
                    n = len(names)
                    names[i] = _SYMBOLS[n] if n < len(_SYMBOLS) else get_symbol(n)
        rename = names.__getitem__
        return tuple([tuple(map(rename, idx)) for _, idx in order]), names

    if len({digest for digest, _ in keyed}) == len(keyed):  # no equal operands: one order
        best = ordered
    else:
        groups: dict[bytes, list[Factor]] = {}
        for f in ordered:
            groups.setdefault(f[0].digest, []).append(f)
        best = _cached_least_order(list(groups.values()), out)
    ins, names = realise(best)
    operands = tuple(op for op, _ in best)
    new_out = tuple(names[i] for i in out)
    return Einsum.make(operands, ins, new_out, coef, tuple(index_dim[i] for i in out))


def _swap_is_symmetry(factors: list[Factor], x: IndexTuple, y: IndexTuple) -> bool:
    """True if swapping the indices of ``x`` with those of ``y`` maps ``factors`` onto itself.

    Used on indices not named yet (they occur only in the factors still to be placed), so
    choosing the factor with ``x`` or the one with ``y`` next leads to the same patterns.
    """
    sigma: dict[Index, Index] = {}
    for a, b in zip(x, y):
        for p, q in ((a, b), (b, a)):
            if sigma.setdefault(p, q) != q:
                return False
    before = sorted((id(op), idx) for op, idx in factors)
    after = sorted((id(op), tuple(sigma.get(i, i) for i in idx)) for op, idx in factors)
    return before == after


ORDER_CACHE_SIZE = 4096
"""Searched factor orders remembered (first in, first out): code generation and derivation
ask for the same products again and again (each sub-product of a long chain)."""

_ORDER_CACHE: dict[tuple, tuple[int, ...]] = {}


def _cached_least_order(group_list: list[list[Factor]], out: IndexTuple) -> list[Factor]:
    """:func:`_least_order`, remembered by the structure of the product.

    The search depends only on the operands' digests, the pattern of their indices and
    the output, so the key spells exactly that (indices renamed by first appearance).
    """
    factors = [f for g in group_list for f in g]
    names: dict[Index, int] = {i: k for k, i in enumerate(out)}
    key = (
        len(out),
        tuple((op.digest, tuple(names.setdefault(i, len(names)) for i in idx)) for op, idx in factors),
    )
    positions = _ORDER_CACHE.get(key)
    if positions is None:
        found = _least_order(group_list, out)
        if found is None:  # out of budget: a deterministic, not necessarily unique, order
            out_pos = {i: n for n, i in enumerate(out)}
            found = sorted(
                range(len(factors)),
                key=lambda k: (factors[k][0].digest, tuple(out_pos.get(i, -1) for i in factors[k][1])),
            )
        positions = tuple(found)
        if len(_ORDER_CACHE) >= ORDER_CACHE_SIZE:
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):  # another thread got there first
                del _ORDER_CACHE[next(iter(_ORDER_CACHE))]
        _ORDER_CACHE[key] = positions
    return [factors[k] for k in positions]


def _least_order(group_list: list[list[Factor]], out: IndexTuple, budget: int = 2_000) -> list[int] | None:
    """The order of factors (groups in turn, permuted within) with the least index pattern.

    Returned as positions in the factors of ``group_list`` taken group after group.

    Same result as trying every permutation of every group, but found by a depth-first
    search that only follows the choices tying for the least pattern at each position
    (the pattern of a position depends only on the factors before it), and that never
    tries two identical factors (same operand, same indices) or two mirror-image factors
    (:func:`_swap_is_symmetry`) in the same place. Indices are numbered in order of first
    appearance (output first) while searching, so a later index always compares greater
    (the letters of ``get_symbol`` do not: ``'A' < 'z'``). The search is iterative (no
    recursion limit) and each step costs one pass over the unplaced factors. After
    ``budget`` steps it returns the best order found so far; the first order found is
    the greedy one, complete after one step per factor, so None only if ``budget`` is
    below the number of factors.
    """
    factors = [f for g in group_list for f in g]
    n = len(factors)
    group_end: list[int] = []  # for each position: the end of its group in ``factors``
    group_start: list[int] = []
    start = 0
    for g in group_list:
        group_start.extend([start] * len(g))
        group_end.extend([start + len(g)] * len(g))
        start += len(g)
    used = [False] * n
    names: dict[Index, int] = {i: k for k, i in enumerate(out)}
    path: list[int] = []
    path_named: list[tuple[int, ...]] = []
    undo: list[tuple[Index, ...]] = []
    best_key: tuple[tuple[int, ...], ...] | None = None
    best_path: list[int] = []

    def branches(pos: int) -> list[tuple[int, tuple[int, ...], tuple[Index, ...]]]:
        """The factors tying for the least pattern at ``pos`` (one per symmetry class)."""
        first: dict[IndexTuple, int] = {}
        for k in range(group_start[pos], group_end[pos]):
            if not used[k]:
                first.setdefault(factors[k][1], k)  # identical factors are interchangeable
        base = len(names)
        lead = len(names) + 1  # above any first entry; keep only the candidates with the least one
        candidates: list[tuple[IndexTuple, int]] = []
        for idx, k in first.items():
            head = names.get(idx[0], base) if idx else -1
            if head < lead:
                lead, candidates = head, [(idx, k)]
            elif head == lead:
                candidates.append((idx, k))
        scored = []
        for idx, k in candidates:
            new: dict[Index, int] = {}
            named = tuple(names[i] if i in names else new.setdefault(i, base + len(new)) for i in idx)
            scored.append((named, k, tuple(new)))
        least = min(named for named, _, _ in scored)
        chosen = []
        followed: list[IndexTuple] = []
        remaining: list[Factor] | None = None
        for named, k, new in scored:
            if named != least:
                continue
            idx = factors[k][1]
            if len(new) == len(set(idx)):  # no index named yet: maybe a mirror image
                if remaining is None:
                    remaining = [factors[j] for j in range(group_start[pos], n) if not used[j]]
                if any(_swap_is_symmetry(remaining, idx, other) for other in followed):
                    continue
                followed.append(idx)
            chosen.append((k, named, new))
        return chosen

    # frames[d] = [branches at depth d, next branch, prefix equals best_key's prefix]
    frames: list[list] = [[branches(0), 0, True]] if n else []
    visits = 0
    while frames:
        frame = frames[-1]
        choices, at, tie = frame
        if at == len(choices):
            frames.pop()
            if frames:  # undo the placement that opened this frame
                used[path.pop()] = False
                path_named.pop()
                for i in undo.pop():
                    del names[i]
            continue
        k, named, new = choices[at]
        pos = len(path)
        child_tie = tie
        if best_key is not None and tie:
            if named > best_key[pos]:
                frame[1] = len(choices)  # every branch here has this pattern: none can win
                continue
            child_tie = named == best_key[pos]
        frame[1] = at + 1
        visits += 1
        if visits > budget:
            break
        if pos + 1 == n:
            key = (*path_named, named)
            if best_key is None or key < best_key:
                best_key, best_path = key, [*path, k]
                for f in frames:  # the stack is a prefix of the new best
                    f[2] = True
            continue
        used[k] = True
        path.append(k)
        path_named.append(named)
        undo.append(new)
        base = len(names)
        for j, i in enumerate(new):
            names[i] = base + j
        frames.append([branches(pos + 1), 0, child_tie])
    if best_key is None:
        return None
    return best_path


def scale(node: Node, factor: float) -> Node:
    """``factor · node``."""
    idx = symbols(node.ndim)
    return einsum([node], [idx], idx, factor)


_SPLIT_CACHE: weakref.WeakKeyDictionary[Node, tuple[float, Node]] = weakref.WeakKeyDictionary()


def split_coef(node: Node) -> tuple[float, Node]:
    """``(c, base)`` with ``node == c · base`` and ``base`` free of a scalar factor."""
    if isinstance(node, Einsum) and node.coef != 1.0:
        cached = _SPLIT_CACHE.get(node)
        if cached is None:
            cached = _SPLIT_CACHE[node] = (node.coef, einsum(node.operands, node.in_idx, node.out_idx, 1.0))
        return cached
    if isinstance(node, Const) and node.value != 0.0:
        return node.value, Const.make(1.0, node.dims)
    return 1.0, node


def permute(node: Node, axes: Sequence[int]) -> Node:
    """``numpy.transpose(node, axes)``."""
    idx = symbols(node.ndim)
    return einsum([node], [idx], tuple(idx[a] for a in axes))


# --------------------------------------------------------------------------------------
# add
# --------------------------------------------------------------------------------------
def add(terms: Sequence[Node]) -> Node:
    """The sum of ``terms`` (equal dims), with like terms combined and zeros dropped."""
    terms = list(terms)
    if not terms:
        raise ShapeError("add needs at least one term")
    if len(terms) == 1 and not isinstance(terms[0], (Add, Const)) and split_coef(terms[0])[0] == 1.0:
        return terms[0]  # one unscaled term is its own sum (a cotangent with one parent)
    dims = terms[0].dims
    items: list[Node] = []
    for t in terms:
        dimsmod.require_same_dims(dims, t.dims, "addition")
        items.extend(t.terms if isinstance(t, Add) else (t,))
    flat = _open_scaled_sums(items)
    const_total = 0.0
    coefs: dict[int, list] = {}
    for t in flat:
        if isinstance(t, Const):
            const_total += t.value
            continue
        c, base = split_coef(t)
        entry = coefs.setdefault(id(base), [base, 0.0])
        entry[1] += c
    out = [base if c == 1.0 else scale(base, c) for base, c in coefs.values() if c != 0.0]
    out = [t for t in out if not is_zero(t)]
    if not math.isfinite(const_total):
        raise ShapeError("the constant term of a sum overflows a float64 (its magnitude passes 1.8e308)")
    if const_total != 0.0:
        out.append(Const.make(const_total, dims))
    if not out:
        return zeros(dims)
    if len(out) == 1:
        return out[0]
    out.sort(key=lambda t: t.digest)
    return Add.make(tuple(out))


def _open_scaled_sums(items: list[Node]) -> list[Node]:
    """Terms ``c·(u + v)`` opened into ``c·u + c·v`` where a term could meet a like term.

    So ``f − f`` and ``2g − g − g`` are 0. A scaled sum meeting nothing alike stays one
    term (``-2.0 * (T - U @ V.T)``, one pass in generated code, not two).
    """
    splits = [split_coef(t) for t in items]
    inner: dict[int, set[int]] = {}
    for k, (_, base) in enumerate(splits):
        if isinstance(base, Add):
            inner[k] = {id(base), *(id(split_coef(u)[1]) for u in base.terms)}
    if not inner:
        return items
    counts: dict[int, int] = {}
    for k, (_, base) in enumerate(splits):
        for i in inner.get(k, (id(base),)):
            counts[i] = counts.get(i, 0) + 1
    opened: list[Node] = []
    for k, (t, (c, base)) in enumerate(zip(items, splits)):
        if k in inner and any(counts[i] > 1 for i in inner[k]):
            opened.extend(scale(u, c) for u in base.terms)  # type: ignore[attr-defined]
        else:
            opened.append(t)
    return opened


# --------------------------------------------------------------------------------------
# functions
# --------------------------------------------------------------------------------------
def elementwise(fn: str, args: Node | Sequence[Node], param: float | None = None) -> Node:
    """``fn(args…)`` entry-wise; constants fold, ``x**1`` is ``x`` and ``x**0`` is ones.

    The arguments must have equal dims (:mod:`eincalc.ops` broadcasts before calling).
    """
    from eincalc.functions import get_elementwise

    entry = get_elementwise(fn)
    xs = (args,) if isinstance(args, Node) else tuple(args)
    if len(xs) != entry.arity:
        raise ShapeError(f"{fn} takes {entry.arity} argument(s), got {len(xs)}")
    for k, a in enumerate(xs[1:], 1):
        if a.ndim != xs[0].ndim:
            raise ShapeError(
                f"{fn}: argument {k} has dims {dimsmod.fmt(a.dims)}, argument 0 has {dimsmod.fmt(xs[0].dims)}"
            )
        dimsmod.require_same_dims(xs[0].dims, a.dims, f"{fn}: argument {k} against argument 0")
    if entry.has_param != (param is not None):
        raise ShapeError(f"{fn} {'needs' if entry.has_param else 'takes no'} parameter")
    if param is not None and not math.isfinite(param):
        raise ShapeError(f"the parameter of {fn} must be a finite number, got {param!r}")
    x = xs[0]
    if fn == "sqrt" and power_form(x)[1] != 1.0:
        return elementwise("pow", x, 0.5)  # a power of a power: the rules below
    if fn == "power" and isinstance(xs[1], Const):
        # a constant exponent is the one-argument power: one node for x ** c however it
        # is written (power(x, 0.0) printed as x ** 0.0 must parse back to itself)
        return elementwise("pow", x, xs[1].value)
    if fn == "pow":
        assert param is not None
        if param == 1.0:
            return x
        if param == 0.0:
            return Const.make(1.0, x.dims)
        base, a = power_form(x)
        if a != 1.0 and (float(param).is_integer() or not float(a).is_integer() or is_nonnegative(base)):
            # (x^a)^p = x^(a p) holds for integer p, and for any p where x ≥ 0 (proved,
            # or implied by a non-integer a, which leaves x^a undefined below 0)
            return power(base, a * param)
        if a != 1.0 and a % 2 == 0:
            return power(elementwise("abs", base), a * param)  # sqrt(x²) = |x|
    if fn == "where":
        if isinstance(x, Const):  # a constant condition selects a branch
            return xs[1] if x.value != 0.0 else xs[2]
        if xs[1] is xs[2]:
            return xs[1]
    if all(isinstance(a, Const) for a in xs):
        value = float(entry.evaluate([np.float64(a.value) for a in xs], param))  # type: ignore[attr-defined]
        if math.isfinite(value):
            return Const.make(value, x.dims)
    return Elementwise.make(fn, xs, param)


def unary(fn: str, x: Node, axis: object = None) -> Node:
    """A general (not entry-wise) function ``fn(x, axis)`` from :mod:`eincalc.functions`."""
    from eincalc.functions import get_unary

    entry = get_unary(fn)
    axis = entry.normalise_axis(x.dims, axis)
    out_dims = entry.out_dims(x.dims, axis)
    return Unary.make(fn, x, axis, out_dims)
