"""``simplify``: a memoised bottom-up rebuild with value-preserving rewrite rules.

The smart constructors of :mod:`eincalc.algebra` already fold zeros and ones, merge
nested products, eliminate unit tensors and combine like terms whenever a node is
built; rebuilding a DAG through them re-applies all of that. On top, :data:`RULES` are
rewrites that look at a node and its arguments and return ``None`` when they do not
apply. Each replaces an expression by an equal one that is numerically stabler and no
larger, so the fixed point is reached in one bottom-up pass per rule application.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eincalc import algebra as alg
from eincalc import ops
from eincalc.expr import Add, Const, Delta, Einsum, Elementwise, Node, Unary, Var
from eincalc.graph import rewrite


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
    """``log(sum(exp(x), axis)) → logsumexp(x, axis)`` for one axis or all of them."""
    if not _is_fn(node, "log"):
        return None
    s = node.children[0]
    if not (isinstance(s, Einsum) and s.coef == 1.0 and len(s.operands) == 1 and _is_fn(s.operands[0], "exp")):
        return None
    (idx,) = s.in_idx
    if len(set(idx)) != len(idx) or list(s.out_idx) != [i for i in idx if i in s.out_idx]:
        return None
    x = s.operands[0].children[0]
    summed = [k for k, i in enumerate(idx) if i not in s.out_idx]
    if len(summed) == len(idx):
        return ops.logsumexp(x)
    if len(summed) == 1:
        return ops.logsumexp(x, axis=summed[0])
    return None


RULES: list[Callable[[Node], Node | None]] = [
    softplus_from_log1p_exp,
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
    if isinstance(node, (Var, Const, Delta)):
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

    return rewrite(expr, rule)[0]
