"""Which stored matrix products keep their value transposed.

A node's axes are stored in the order of its dims, and that order comes from canonical
form, not from how the value is read. When a 2-D product is multiplied entry by entry
with arrays laid out the other way (``(1 - h*h) * (V.T @ X.T).T``), every such use walks
one operand against its memory order, several times slower than a contiguous pass.
A matrix product costs the same in either order (``B @ A`` is ``(A.T @ B.T).T``), so
such a product is computed in its readers' order and its name holds the transpose:
``_t8 = X @ V`` and the node's value is the view ``_t8.T``.

The decision is a vote, made before printing, over everything the product meets entry by
entry: an array of the same two indices (one of its own factors, another factor of a
consumer's product, or the consumer's own result) laid out the other way votes for the
transpose, one laid out the same way against; a term of a sum, the argument of a
function, or any other use votes against, since it reads the value in its stored order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from eincalc._types import IndexTuple
from eincalc.expr import Const, Delta, Einsum, Node, Shift, Window


def transposed_products(order: Sequence[Node], consumers: Mapping[int, list[Node]], keep: Collection[int]) -> set[int]:
    """Ids of the 2-D products of ``order`` better stored transposed (see the module doc).

    Args:
        order: the program's nodes, children first.
        consumers: the nodes using each node (by ``id``), once per use.
        keep: ids of nodes whose layout is fixed (outputs, products shared under a
            coefficient).
    """
    chosen: set[int] = set()
    for node in order:
        if id(node) in keep or not _is_matrix_product(node):
            continue
        # its own element-wise factors: the product is formed in their order, then stored
        votes = sum(
            _compare(_stored(op, idx, chosen), node.out_idx)
            for op, idx in zip(node.operands, node.in_idx)
            if _same_pair(idx, node.out_idx)
        )
        for use in dict.fromkeys(consumers.get(id(node), [])):  # each consumer once, every slot below
            votes += _vote(node, use, chosen)
        if votes > 0:
            chosen.add(id(node))
    return chosen


def _is_matrix_product(node: Node) -> bool:
    """A 2-D product of arrays with a summed index: BLAS computes either order at one price."""
    if not isinstance(node, Einsum) or len(node.out_idx) != 2 or len(set(node.out_idx)) != 2:
        return False
    if any(isinstance(op, (Const, Delta, Shift, Window)) for op in node.operands) or len(node.operands) < 2:
        return False
    return any(i not in node.out_idx for idx in node.in_idx for i in idx)


def _vote(node: Node, use: Node, chosen: set[int]) -> int:
    """+1 for each reader of ``node`` in ``use`` laid out the other way, −1 otherwise."""
    if not isinstance(use, Einsum):
        return -1  # a sum's term or a function's argument is read in stored order
    votes = 0
    for k, op in enumerate(use.operands):
        if op is not node:
            continue
        mine = use.in_idx[k]
        if len(set(mine)) != 2:
            return -1  # a diagonal of it: leave it alone
        for j, other in enumerate(use.operands):
            if j != k and not isinstance(other, (Const, Delta)) and _same_pair(use.in_idx[j], mine):
                votes += _compare(_stored(other, use.in_idx[j], chosen), mine)
        if _same_pair(use.out_idx, mine):
            votes += _compare(use.out_idx, mine)
    return votes


def _same_pair(idx: IndexTuple, mine: IndexTuple) -> bool:
    return len(idx) == 2 and set(idx) == set(mine)


def _stored(node: Node, idx: IndexTuple, chosen: set[int]) -> IndexTuple:
    """The indices of ``node``'s axes in memory order."""
    return idx[::-1] if id(node) in chosen else idx


def _compare(theirs: IndexTuple, mine: IndexTuple) -> int:
    return 1 if theirs != mine else -1
