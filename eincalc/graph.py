"""Walking the DAG: topological order, memoised bottom-up rewriting, and a text dump.

Every traversal in eincalc goes through :func:`topo_order` or :func:`rewrite`, which
visit each node once however many paths reach it (a naive recursion would blow up
exponentially on Hessians of deep expressions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from eincalc.expr import Node


def topo_order(roots: Node | Iterable[Node], stop: Callable[[Node], bool] | None = None) -> list[Node]:
    """All nodes reachable from ``roots``, children before parents, each once.

    The order is deterministic: depth-first, children in operand order. A node for
    which ``stop`` is true is listed but its children are not visited (a memoised walk
    skips what it has seen before).
    """
    if isinstance(roots, Node):
        roots = (roots,)
    order: list[Node] = []
    seen: set[int] = set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        if stop is not None and stop(root):
            order.append(root)
            continue
        # each frame resumes its node's children where it left off (no re-push per child)
        stack: list[tuple[Node, Iterator[Node]]] = [(root, iter(root.children))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if id(child) not in seen:
                    seen.add(id(child))
                    if stop is not None and stop(child):
                        order.append(child)
                    else:
                        stack.append((child, iter(child.children)))
                        break
            else:
                stack.pop()
                order.append(node)
    return order


def rewrite(roots: Node | Iterable[Node], rule: Callable[[Node, tuple[Node, ...]], Node]) -> list[Node]:
    """Rebuild the DAG bottom-up: ``rule(node, new_children)`` gives each node's image.

    Memoised by node identity, so shared nodes are rewritten once. Returns the images of
    ``roots`` (a list even for one root).
    """
    root_list = [roots] if isinstance(roots, Node) else list(roots)
    image: dict[int, Node] = {}
    for node in topo_order(root_list):
        image[id(node)] = rule(node, tuple([image[id(c)] for c in node.children]))
    return [image[id(r)] for r in root_list]


def count_nodes(root: Node | Iterable[Node]) -> int:
    """The number of distinct nodes in the DAG."""
    return len(topo_order(root))


def dump(roots: Node | Iterable[Node]) -> str:
    """An indented tree of the DAG; a node met again is shown as ``^vN`` (like PyTensor's dprint).

    Examples:
        >>> import eincalc as ec
        >>> x = ec.vector("x", "n")
        >>> print(dump(ec.sum(ec.exp(x) * ec.exp(x) + x)))
        v0 einsum 'a->' : ()
          v1 add : (n)
            v2 x : (n)
            v3 einsum 'a,a->a' : (n)
              v4 exp : (n)
                ^v2
              ^v4
    """
    root_list = [roots] if isinstance(roots, Node) else list(roots)
    names: dict[int, str] = {}
    lines: list[str] = []
    stack: list[tuple[Node, int]] = [(r, 0) for r in reversed(root_list)]
    while stack:
        node, depth = stack.pop()
        pad = "  " * depth
        if id(node) in names:
            lines.append(f"{pad}^{names[id(node)]}")
            continue
        names[id(node)] = f"v{len(names)}"
        lines.append(f"{pad}{names[id(node)]} {_label(node)} : ({', '.join(node.dims)})")
        stack.extend((c, depth + 1) for c in reversed(node.children))
    return "\n".join(lines)


def _label(node: Node) -> str:
    from eincalc.expr import Const, Delta, Einsum, Elementwise, Shift, Unary, Var

    if isinstance(node, Var):
        return node.name
    if isinstance(node, Const):
        return f"const {node.value!r}"
    if isinstance(node, Delta):
        return "delta"
    if isinstance(node, Shift):
        return f"shift {node.size}/{node.kernel}/{node.stride}/{node.dilation}/{node.padding}"
    if isinstance(node, Einsum):
        return f"einsum {node.spec!r}" + ("" if node.coef == 1.0 else f" x {node.coef!r}")
    if isinstance(node, Elementwise):
        return node.fn if node.param is None else f"{node.fn} {node.param!r}"
    if isinstance(node, Unary):
        return node.fn if node.axis is None else f"{node.fn} axis={node.axis}"
    return node.kind
