"""Nested sums: a sum holding every term of another sum of the program adds to that sum.

The algebra keeps sums flat (one canonical n-ary sum per node), which is what
simplification wants and what a residual network does not: its activations
``h_{k+1} = h_k + f_k(h_k)`` are the flat sums ``X + f_0 + … + f_k``, and so are its
back-propagated signals. Printed as they stand, layer k adds k terms again (work
quadratic in depth, and every term kept alive to the end).

This pass, run last on the DAG a program computes, rewrites each sum ``A`` as ``B + (the
rest of A)`` for the largest other sum ``B`` of the program whose terms ``A`` contains:
the hand-written ``h + f``. Candidates are the latest sums holding one of A's terms, so
a chain of n sums costs O(n) lookups each. The nested sums are built with the raw
constructor (the algebra would flatten them again). Values are unchanged up to the
order of the floating-point additions.
"""

from __future__ import annotations

from eincalc.codegen.sharing import with_children
from eincalc.expr import Add, Node
from eincalc.graph import rewrite

CANDIDATES_PER_TERM = 2
"""How many of the latest sums holding a term are tried as the part a sum extends."""


def nest_sums(roots: list[Node]) -> list[Node]:
    """``roots`` with every sum that contains another sum of the program written on top of it."""
    holders: dict[int, list[tuple[frozenset[int], Add]]] = {}  # term -> sums holding it, latest last

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        node = with_children(node, children)
        if not isinstance(node, Add):
            return node
        terms = frozenset(id(t) for t in children)  # the flat terms (rewritten images)
        if len(terms) < len(children):
            return node  # a term twice: left as it is
        best: tuple[frozenset[int], Add] | None = None
        if len(terms) > 2:
            for t in children:
                for inner, known in holders.get(id(t), [])[-CANDIDATES_PER_TERM:]:
                    if len(inner) < len(terms) and inner < terms and (best is None or len(inner) > len(best[0])):
                        best = (inner, known)
        nested = node
        if best is not None:
            inner, known = best
            nested = Add.make((known, *(t for t in children if id(t) not in inner)))
        for t in children:
            holders.setdefault(id(t), []).append((terms, nested))
        return nested

    return rewrite(roots, rule)
