"""``simplify``: a memoised bottom-up rebuild with value-preserving rewrite rules.

The smart constructors of :mod:`eincalc.algebra` already fold zeros and ones, merge
nested products, eliminate unit tensors and combine like terms whenever a node is
built; rebuilding a DAG through them re-applies all of that. On top, :data:`RULES` are
rewrites that look at a node and its arguments and return ``None`` when they do not
apply. Each replaces an expression by an equal one that is numerically stabler and no
larger, so the fixed point is reached in one bottom-up pass per rule application.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from eincalc import algebra as alg
from eincalc import ops
from eincalc.calling import carry_signature
from eincalc.expr import Add, Array, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var, Window
from eincalc.graph import rewrite, topo_order


def _is_fn(node: Node, fn: str) -> bool:
    return isinstance(node, Elementwise) and node.fn == fn


def softplus_from_log1p_exp(node: Node) -> Node | None:
    """``log(1 + exp(z)) → softplus(z)`` (no overflow for large z)."""
    if not _is_fn(node, "log") or not isinstance(node.children[0], Add):
        return None
    terms = node.children[0].children
    if len(terms) != 2:
        return None
    consts = [t for t in terms if isinstance(t, Const) and t.value == 1.0]
    exps = [t for t in terms if _is_fn(t, "exp")]
    if len(consts) == 1 and len(exps) == 1:
        return ops.softplus(exps[0].children[0])
    return None


def log_sigmoid(node: Node) -> Node | None:
    """``log(sigmoid(z)) → -softplus(-z)``."""
    if _is_fn(node, "log") and _is_fn(node.children[0], "sigmoid"):
        return -ops.softplus(-node.children[0].children[0])
    return None


def log_of_softmax(node: Node) -> Node | None:
    """``log(softmax(x, a)) → log_softmax(x, a)``."""
    arg = node.children[0] if node.children else None
    if _is_fn(node, "log") and isinstance(arg, Unary) and arg.fn == "softmax":
        return ops.log_softmax(arg.arg, axis=arg.axis if arg.axis is not None else -1)
    return None


def log_of_exp(node: Node) -> Node | None:
    """``log(exp(z)) → z``."""
    if _is_fn(node, "log") and _is_fn(node.children[0], "exp"):
        return node.children[0].children[0]
    return None


def exp_of_log(node: Node) -> Node | None:
    """``exp(log(z)) → z`` (log is only defined where z > 0, and there the two agree)."""
    if _is_fn(node, "exp") and _is_fn(node.children[0], "log"):
        return node.children[0].children[0]
    return None


def log_sum_exp(node: Node) -> Node | None:
    """``log(c · Σ_A exp(x) · s) → logsumexp(x, A) + log(c · s)`` for axes A, scalar factors s, c > 0.

    Covers ``log(sum(exp(x), axis))`` over one, several or all axes and ``log(mean(exp(x)))``.
    """
    if not _is_fn(node, "log"):
        return None
    s = node.children[0]
    if not isinstance(s, Einsum) or s.coef <= 0:
        return None
    exps = [k for k, op in enumerate(s.operands) if _is_fn(op, "exp")]
    if len(exps) != 1:
        return None
    (k,) = exps
    idx = s.in_idx[k]
    others = [(op, i) for j, (op, i) in enumerate(zip(s.operands, s.in_idx)) if j != k]
    if any(i for _, i in others) or len(set(idx)) != len(idx):
        return None  # only scalar factors come out of the sum
    if list(s.out_idx) != [i for i in idx if i in s.out_idx]:
        return None
    x = s.operands[k].children[0]
    summed = tuple(p for p, i in enumerate(idx) if i not in s.out_idx)
    if not summed:
        return None
    lse = ops.logsumexp(x, axis=summed)
    if not others and s.coef == 1.0:
        return lse
    scale = alg.einsum([op for op, _ in others], [() for _ in others], (), s.coef)
    return ops.add(lse, ops.log(scale))


def log_one_minus_sigmoid(node: Node) -> Node | None:
    """``log(1 - sigmoid(z)) → -softplus(z)`` (``1 - sigmoid(z)`` is 0 for z ≳ 37).

    Only under a log: elsewhere ``1 - s`` reuses the sigmoid already computed, and its
    absolute error is below 1e-16.
    """
    if not _is_fn(node, "log") or not isinstance(node.children[0], Add):
        return None
    terms = node.children[0].terms
    ones = [t for t in terms if isinstance(t, Const) and t.value == 1.0]
    neg = [t for t in terms if isinstance(t, Einsum) and t.coef == -1.0 and len(t.operands) == 1]
    if len(terms) != 2 or len(ones) != 1 or len(neg) != 1:
        return None
    (e,) = neg
    inner = e.operands[0]
    if _is_fn(inner, "sigmoid") and e.in_idx[0] == e.out_idx:
        return -ops.softplus(inner.children[0])
    return None


def sigmoid_from_reciprocal(node: Node) -> Node | None:
    """``1 / (1 + exp(w)) → sigmoid(-w)`` (the hand-written logistic function)."""
    if not (_is_fn(node, "pow") and node.param == -1.0 and isinstance(node.children[0], Add)):  # type: ignore[attr-defined]
        return None
    terms = node.children[0].children
    consts = [t for t in terms if isinstance(t, Const) and t.value == 1.0]
    exps = [t for t in terms if _is_fn(t, "exp")]
    if len(terms) == 2 and len(consts) == 1 and len(exps) == 1:
        return ops.sigmoid(-exps[0].children[0])
    return None


def softplus_from_log1p(node: Node) -> Node | None:
    """``log1p(exp(z)) → softplus(z)``."""
    if _is_fn(node, "log1p") and _is_fn(node.children[0], "exp"):
        return ops.softplus(node.children[0].children[0])
    return None


def softmax_from_ratio(node: Node) -> Node | None:
    """``exp(x) / sum(exp(x), A) → softmax(x, A)`` inside a product (``keepdims`` or not).

    The product's factor ``exp(x)[I]`` and factor ``pow(H, -1)[J]``, where ``H`` sums
    ``exp(x)`` over the axes A (possibly with size-1 axes put back), become one factor
    ``softmax(x, A)[I]`` when J names the same entries as I off A.
    """
    if not isinstance(node, Einsum):
        return None
    factors = list(zip(node.operands, node.in_idx))
    for k, (f, fi) in enumerate(factors):
        if not _is_fn(f, "exp") or len(set(fi)) != len(fi):
            continue
        x = f.children[0]
        for g, (h_pow, gi) in enumerate(factors):
            if not (_is_fn(h_pow, "pow") and h_pow.param == -1.0 and isinstance(h_pow.children[0], Einsum)):  # type: ignore[attr-defined]
                continue
            axes = _summed_axes_matching(h_pow.children[0], f, fi, gi, factors, node.out_idx, g)
            if axes is None:
                continue
            rest = [(op, i) for j, (op, i) in enumerate(factors) if j not in (k, g)]
            soft = alg.unary("softmax", x, axes if len(axes) > 1 else axes[0])
            return alg.einsum([soft] + [op for op, _ in rest], [fi] + [i for _, i in rest], node.out_idx, node.coef)
    return None


def _summed_axes_matching(
    h: Einsum, f: Node, fi: tuple, gi: tuple, factors: list, out: tuple, g: int
) -> tuple[int, ...] | None:
    """The axes A if ``h`` is ``Σ_A f`` (plus size-1 ones axes) laid out by ``gi`` against ``fi``."""
    if h.coef != 1.0:
        return None
    inner = [j for j, op in enumerate(h.operands) if op is f]
    if len(inner) != 1 or any(
        not (isinstance(op, Const) and op.value == 1.0 and all(d == "1" for d in op.dims))
        for j, op in enumerate(h.operands)
        if j != inner[0]
    ):
        return None
    h_in = h.in_idx[inner[0]]
    if len(set(h_in)) != len(h_in):
        return None
    axes = tuple(p for p, i in enumerate(h_in) if i not in h.out_idx)
    if not axes:
        return None
    elsewhere = {i for j, (_, idx) in enumerate(factors) if j != g for i in idx} | set(out)
    for hq, jq in zip(h.out_idx, gi):
        if hq in h_in:
            if jq != fi[h_in.index(hq)]:
                return None
        elif jq in elsewhere:  # a size-1 axis must be summed away, not kept
            return None
    return axes


RULES: list[Callable[[Node], Node | None]] = [
    softplus_from_log1p_exp,
    softplus_from_log1p,
    log_one_minus_sigmoid,
    sigmoid_from_reciprocal,
    softmax_from_ratio,
    log_sigmoid,
    log_of_softmax,
    log_of_exp,
    exp_of_log,
    log_sum_exp,
]


@dataclass(frozen=True)
class SimplifyOptions:
    """Switches for :func:`simplify` (kept few and frozen on purpose)."""

    stable_forms: bool = True
    check: bool = False  # assert after each rule that dims are unchanged (tests turn it on)


def rebuild(node: Node, children: tuple[Node, ...]) -> Node:
    """``node`` rebuilt from new children through the smart constructors."""
    if isinstance(node, (Var, Const, Delta, Shift, Array, Window)):
        return node
    if all(a is b for a, b in zip(children, node.children)):
        return node  # nodes are canonical when built: nothing to redo
    if isinstance(node, Einsum):
        return alg.einsum(children, node.in_idx, node.out_idx, node.coef)
    if isinstance(node, Add):
        return alg.add(children)
    if isinstance(node, Elementwise):
        return alg.elementwise(node.fn, children, node.param)
    if isinstance(node, Unary):
        return alg.unary(node.fn, children[0], node.axis)
    raise TypeError(f"unknown node kind {type(node).__name__}")


_SIMPLIFIED: weakref.WeakKeyDictionary[Node, object] = weakref.WeakKeyDictionary()
_SIMPLIFIED_LOCK = threading.RLock()
_SAME = object()  # marker: the node is its own simplification


def simplify(expr: Node, options: SimplifyOptions = SimplifyOptions()) -> Node:
    """An equal, canonical, numerically stabler form of ``expr``.

    Examples:
        >>> import eincalc as ec
        >>> z = ec.vector("z", "n")
        >>> print(simplify(ec.log(1 + ec.exp(z))))
        softplus(z)
    """

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        new = rebuild(node, children)
        if not options.stable_forms:
            return new
        changed = True
        while changed:
            changed = False
            for r in RULES:
                out = r(new)
                if out is not None and out is not new:
                    if options.check and out.dims != new.dims:
                        raise AssertionError(f"rule {r.__name__} changed dims {new.dims} -> {out.dims}")
                    new, changed = out, True
                    break
        return new

    if options != SimplifyOptions():
        return carry_signature(expr, rewrite(expr, rule)[0])  # the same function: it takes the same arrays
    # Default options: results are remembered per node, so simplifying a derivative
    # walks only what earlier calls have not seen (the gradients of a network share
    # most of their DAG). A node that is already simple maps to a marker, not to
    # itself, which would keep it alive in the weak table.
    with _SIMPLIFIED_LOCK:
        image: dict[int, Node] = {}
        for node in topo_order(expr, stop=_SIMPLIFIED.__contains__):
            known = _SIMPLIFIED.get(node)
            if known is None:
                new = rule(node, tuple(image[id(c)] for c in node.children))
                _SIMPLIFIED[node] = _SAME if new is node else new
            else:
                new = node if known is _SAME else known  # type: ignore[assignment]
            image[id(node)] = new
        return carry_signature(expr, image[id(expr)])
