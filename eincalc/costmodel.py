"""``cost``: estimated flops and memory of evaluating expressions for given sizes.

The estimate follows what the code generator does: each einsum node is contracted in
the order opt_einsum finds for the real sizes (its FLOP count and largest intermediate
come from :func:`opt_einsum.contract_path`); unit tensors that survive in a result are
not materialised (a δ ⊗ core output costs its core); element-wise and sums cost one
operation per entry; inv/det/logdet cost n³. It is a model for comparing formulas and
modes on paper, not a timer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from eincalc import dims as dimsmod
from eincalc.codegen.gathers import added_gather, lowered_indices
from eincalc.codegen.planning import contraction_cost
from eincalc.errors import SizeError
from eincalc.expr import Add, Array, Const, Delta, Einsum, Elementwise, Node, Shift, Unary, Var, Window
from eincalc.functions import get_unary
from eincalc.graph import topo_order
from eincalc.structure import compress


@dataclass(frozen=True)
class NodeCost:
    """Cost of one node: ``flops`` and the entries of its result and largest temporary."""

    node: Node
    flops: int
    size: int
    largest: int


@dataclass(frozen=True)
class CostReport:
    """Totals over a DAG (shared nodes counted once)."""

    flops: int
    largest_intermediate: int
    memory: int  # entries of all stored node results
    nodes: list[NodeCost] = field(repr=False)

    def __str__(self) -> str:
        return (
            f"{self.flops:.3e} flops, largest intermediate {self.largest_intermediate:,} entries, "
            f"{len(self.nodes)} nodes, {self.memory:,} entries stored"
        )


def _size(dims: tuple[str, ...], sizes: dict[str, int]) -> int:
    n = math.prod([int(sizes[d]) for d in dims])
    # NumPy's int64 product (wrapping past 2**63, as ever) only where Python's exact one leaves that range
    return n if n < _INT64_END else int(np.prod([sizes[d] for d in dims], dtype=np.int64))


_INT64_END = 2**63


def _einsum_cost(node: Einsum, sizes: dict[str, int], root: bool) -> tuple[int, int, int]:
    if any(isinstance(op, Shift) for op in node.operands):
        from eincalc.codegen.windows import lower, lowered_cost  # window products are views and scatters

        low = lower(node)
        if low is not None:
            flops, largest = lowered_cost(node, low, sizes)
            out_size = _size(node.dims, sizes)
            return flops, out_size, max(out_size, largest)
    core: Node = compress(node).core if any(isinstance(op, Delta) for op in node.operands) else node
    out_size = _size(core.dims, sizes) if root else _size(node.dims, sizes)
    if not isinstance(core, Einsum):
        return 0, out_size, out_size
    index_dim = {i: d for op, idx in zip(core.operands, core.in_idx) for i, d in zip(idx, op.dims)}
    # gathers index their operand and a scatter writes rows: the one-hot matrices are never formed
    operands, in_idx, out_idx = lowered_indices(core)
    if len(operands) == 1:
        flops = _size(operands[0].dims, sizes)
        return flops, out_size, max(out_size, flops)
    # the order the code generator uses (eincalc.codegen.planning.contraction_path)
    flops, largest = contraction_cost(in_idx, out_idx, index_dim, sizes)
    return flops, out_size, max(out_size, largest)


def node_cost(node: Node, sizes: dict[str, int], root: bool = False) -> NodeCost:
    """The cost of computing ``node`` from its children's values."""
    size = _size(node.dims, sizes)
    if isinstance(node, (Var, Const, Delta, Shift, Array, Window)):
        return NodeCost(node, 0, 0, 0)
    if isinstance(node, Einsum):
        flops, out, largest = _einsum_cost(node, sizes, root)
        return NodeCost(node, flops, out, largest)
    if isinstance(node, Add):
        # a gather term adds one number per row (out[arange(m), rows] += c)
        rows = [g.window.rows for t in node.terms if (g := added_gather(t)) is not None]
        dense = len(node.terms) - len(rows)
        flops = size * max(dense - 1, 0) + sum(len(r or ()) for r in rows)
        return NodeCost(node, flops, size, size)
    if isinstance(node, Elementwise):
        return NodeCost(node, size, size, size)
    if isinstance(node, Unary):
        if get_unary(node.fn).view:
            return NodeCost(node, 0, 0, 0)
        n_in = _size(node.arg.dims, sizes)
        flops = int(round(n_in**1.5)) if get_unary(node.fn).cubic else 3 * n_in
        return NodeCost(node, flops, size, max(size, n_in))
    raise TypeError(f"no cost rule for {type(node).__name__}")


def cost(expr: Node | Sequence[Node], /, **sizes: int) -> CostReport:
    """Estimated flops and largest intermediate of the code ``ec.compile(expr)`` runs at these sizes.

    Shared nodes count once, also across outputs; a compressed output (δ ⊗ core) costs
    its core. Every symbolic dim needs a size; fixed dims (``"3"``) know theirs.

    Examples:
        >>> import eincalc as ec
        >>> A, B = ec.matrix("A", "n n"), ec.matrix("B", "n n")
        >>> cost(A @ B, n=10).flops
        2000
    """
    roots = [expr] if isinstance(expr, Node) else list(expr)
    nodes = topo_order(roots)
    bound = {d: int(s) for d, s in sizes.items()}
    needed = sorted({d for n in nodes for d in n.dims})
    for d in needed:
        if d not in bound and dimsmod.is_literal(d):
            bound[d] = int(d)
    bound = dimsmod.with_derived(bound, needed)  # m*n, n-1 from their base dims
    missing = sorted({b for d in needed if d not in bound for b in dimsmod.base_dims(d) or (d,)} - set(bound))
    if missing:
        raise SizeError(f"cost needs a size for dim(s) {', '.join(missing)} (e.g. cost(expr, {missing[0]}=100))")
    # price what ec.compile runs at these sizes: simplified, cores of compressed
    # outputs, products distributed or factored where it pays, shared sub-products
    from eincalc.codegen.rewriting import program_roots, sized_roots  # codegen prices with this module

    return price(sized_roots(program_roots(roots)[0], bound), bound)


def price(roots: Sequence[Node], sizes: Mapping[str, int]) -> CostReport:
    """The cost of computing ``roots`` as they are (no rewriting), for ``sizes`` of every dim."""
    nodes = topo_order(list(roots))
    bound = dict(sizes)
    root_ids = {id(r) for r in roots}
    costs = [node_cost(n, bound, root=id(n) in root_ids) for n in nodes]
    return CostReport(
        flops=sum(c.flops for c in costs),
        largest_intermediate=max((c.largest for c in costs), default=0),
        memory=sum(c.size for c in costs),
        nodes=costs,
    )
