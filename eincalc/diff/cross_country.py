"""Cross-country mode: vertex elimination on the linearised DAG.

A derivative is a sum over paths of products of local partials. Label every edge
``u → v`` of the DAG (restricted to nodes that depend on ``wrt``) with the local partial
``∂v/∂u`` (dims ``v.dims + u.dims``; these are exactly the reverse-mode rules seeded with
δ). Eliminating an intermediate vertex ``v`` replaces every path ``u → v → w`` by one edge
``∂w/∂u += ∂w/∂v · ∂v/∂u``; when only ``wrt → f`` remains, its label is the Jacobian.
The order of elimination decides the cost: topological order is forward mode, reverse
topological order is reverse mode, and anything else is "cross-country". Products are
einsums, so δ factors of element-wise partials collapse on contact (``diag(u) diag(v)``
becomes the vector ``u ∘ v``), and chains are flattened into n-ary einsums whose
contraction order a path optimiser picks later with real sizes.

Elimination orders are an opt_einsum-style registry (:data:`ELIMINATION_ORDERS`).
"""

from __future__ import annotations

from collections.abc import Callable

from eincalc import algebra as alg
from eincalc.diff.common import depends_on, fresh, product
from eincalc.diff.reverse import cotangent
from eincalc.errors import UnknownNameError
from eincalc.expr import Einsum, Node, Var
from eincalc.graph import topo_order

Edges = dict[tuple[int, int], Node]  # (successor id, predecessor id) -> ∂succ/∂pred


class LinearisedGraph:
    """The DAG's dependent part with local partials on its edges."""

    def __init__(self, f: Node, wrt: Var) -> None:
        dep = depends_on(f, wrt)
        self.nodes = {id(n): n for n in topo_order(f) if id(n) in dep}
        self.position = {nid: k for k, nid in enumerate(self.nodes)}
        self.source, self.sink = id(wrt), id(f)
        self.edges: Edges = {}
        # products keyed by the two partials they multiply (nodes are immutable, so a
        # product stays valid; the cache holds the operands so their ids stay unique)
        self._products: dict[tuple[int, int, int, int, int], tuple[Node, Node, Node]] = {}
        self.preds: dict[int, set[int]] = {nid: set() for nid in self.nodes}
        self.succs: dict[int, set[int]] = {nid: set() for nid in self.nodes}
        for nid, node in self.nodes.items():
            if node is wrt:
                continue
            lead = fresh(node.ndim)
            for k, partial in cotangent(node, alg.delta(node.dims), lead):
                child = node.children[k]
                if id(child) in dep:
                    self._add_edge(nid, id(child), partial)

    def _add_edge(self, w: int, u: int, partial: Node) -> None:
        key = (w, u)
        self.edges[key] = alg.add([self.edges[key], partial]) if key in self.edges else partial
        self.preds[w].add(u)
        self.succs[u].add(w)

    def intermediates(self) -> list[int]:
        """Vertices still to eliminate, in topological order."""
        return [v for v in self.nodes if v not in (self.source, self.sink) and (self.preds[v] or self.succs[v])]

    def product(self, w: int, v: int, u: int) -> Node:
        """``∂w/∂v · ∂v/∂u`` contracted over ``v``'s dims."""
        ew, eu = self.edges[(w, v)], self.edges[(v, u)]
        nw, nv, nu = self.nodes[w].ndim, self.nodes[v].ndim, self.nodes[u].ndim
        key = (id(ew), id(eu), nw, nv, nu)
        if key not in self._products:
            iw, iv, iu = alg.symbols(nw), alg.symbols(nv, nw), alg.symbols(nu, nw + nv)
            self._products[key] = (ew, eu, product([ew, eu], [iw + iv, iv + iu], iw + iu))
        return self._products[key][2]

    def eliminate(self, v: int) -> None:
        """Remove ``v``, joining every predecessor to every successor."""
        for u in sorted(self.preds[v], key=self.position.__getitem__):
            for w in sorted(self.succs[v], key=self.position.__getitem__):
                self._add_edge(w, u, self.product(w, v, u))
        for u in self.preds[v]:
            self.succs[u].discard(v)
            del self.edges[(v, u)]
        for w in self.succs[v]:
            self.preds[w].discard(v)
            del self.edges[(w, v)]
        self.preds[v].clear()
        self.succs[v].clear()

    def elimination_cost(self, v: int) -> int:
        """Estimated flops of eliminating ``v``, with every dim of nominal size 100.

        The exponent is the number of distinct indices among the non-δ factors of each
        product, so lower-order partials (vectors, δ-compressed diagonals) go first.
        """
        total = 0
        for u in self.preds[v]:
            for w in self.succs[v]:
                total += 100 ** _order(self.product(w, v, u))
        return total


def _order(node: Node) -> int:
    from eincalc.expr import Delta

    if isinstance(node, Einsum):
        return len({i for op, idx in zip(node.operands, node.in_idx) if not isinstance(op, Delta) for i in idx})
    return node.ndim


def order_forward(g: LinearisedGraph) -> Callable[[], int | None]:
    """Topological order: forward mode."""
    return lambda: next(iter(g.intermediates()), None)


def order_reverse(g: LinearisedGraph) -> Callable[[], int | None]:
    """Reverse topological order: reverse mode."""
    return lambda: next(iter(reversed(g.intermediates())), None)


def order_markowitz(g: LinearisedGraph) -> Callable[[], int | None]:
    """Fewest new edges first: min |preds(v)| · |succs(v)| (ties: topological)."""
    return lambda: min(
        g.intermediates(), key=lambda v: (len(g.preds[v]) * len(g.succs[v]), g.position[v]), default=None
    )


def order_min_cost(g: LinearisedGraph) -> Callable[[], int | None]:
    """Cheapest elimination first (lowest-order products first); Markowitz on large graphs."""
    if len(g.nodes) > 40:
        return order_markowitz(g)
    return lambda: min(g.intermediates(), key=lambda v: (g.elimination_cost(v), g.position[v]), default=None)


ELIMINATION_ORDERS: dict[str, Callable[[LinearisedGraph], Callable[[], int | None]]] = {
    "forward": order_forward,
    "reverse": order_reverse,
    "markowitz": order_markowitz,
    "min_cost": order_min_cost,
}


def register_elimination_order(name: str, fn: Callable[[LinearisedGraph], Callable[[], int | None]]) -> None:
    """Add an elimination order; a name can be registered once."""
    if name in ELIMINATION_ORDERS:
        raise KeyError(f"elimination order {name!r} is already registered")
    ELIMINATION_ORDERS[name] = fn


def get_elimination_order(name: str) -> Callable[[LinearisedGraph], Callable[[], int | None]]:
    """The order ``name``, or an error listing the known ones."""
    try:
        return ELIMINATION_ORDERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown elimination order {name!r}; known: {', '.join(ELIMINATION_ORDERS)}") from None


def cross_country_jacobian(f: Node, wrt: Var, order: str = "min_cost") -> Node:
    """∂f/∂wrt by vertex elimination in the given order: dims ``f.dims + wrt.dims``."""
    chooser = get_elimination_order(order)
    if f is wrt:
        return alg.delta(wrt.dims)
    g = LinearisedGraph(f, wrt)
    if g.sink not in g.nodes:
        return alg.zeros(f.dims + wrt.dims)
    pick = chooser(g)
    while (v := pick()) is not None:
        g.eliminate(v)
    return g.edges.get((g.sink, g.source), alg.zeros(f.dims + wrt.dims))
