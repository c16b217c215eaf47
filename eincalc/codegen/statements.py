"""The text of a function body: statements with their comments, and ``del`` lines.

:class:`Lifetimes` collects the statements block by block (one block per node) and
deletes each array temporary after its last reader; :class:`Formulas` gives each
statement's comment, the node's formula in NumPy syntax, truncated, or only its top node
when the DAG below is large (its text as a tree can grow exponentially).
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping

from eincalc.codegen.printer import Expr
from eincalc.expr import Add, Einsum, Node
from eincalc.graph import topo_order
from eincalc.printing import node_line, to_numpy_syntax

TEMP_NAME = re.compile(r"_t\d+")

FORMULA_NODES = 40
"""Comments print a node's whole formula while it has at most this many nodes (as a tree)."""

COMMENT_CHARS = 64
LINE_CHARS = 110


class Lifetimes:
    """The statements of a function body, block by block (one block per node), and their ``del`` lines.

    A temporary that is an array (``large``) is deleted after the last block that
    reads it (unless that is the last block: returning frees it anyway), so the peak
    memory holds only live values. Names of one array (``_t2 = _t1``,
    a view ``_t1.T``) are deleted together once none of them is read any more; never
    when one of them is returned or is a parameter (the array stays alive anyway).
    Uses are read from the code without its comments (:func:`_identifiers`).
    """

    def __init__(self, params: set[str]) -> None:
        self.params = params
        self.blocks: list[list[str]] = []
        self.large: dict[str, bool] = {}
        self._parent: dict[str, str] = {}

    def printed(self, node: Node, lines: list[str], temps: list[str], shared: Mapping[str, Node]) -> None:
        """Note the temporaries ``temps`` the printer named in ``lines`` while printing ``node``.

        A shared product (``shared``: name -> product) has its product's dims; the other
        temporaries are steps of the node's computation, scalars only inside a scalar
        function such as logsumexp over all axes (an einsum's steps may be arrays).
        """
        steps_large = bool(node.dims) or isinstance(node, Einsum)
        for name in temps:
            self.large[name] = bool(shared[name].dims) if name in shared else steps_large
        for line in lines:  # `_t3 = _t1.T`: another name of _t1's array
            view = _VIEW.fullmatch(line.split("  #", 1)[0])
            if view:
                self.alias(view[1], view[2])

    def named(self, target: str, node: Node, expr: Expr) -> None:
        """Note the statement ``target = expr`` computing ``node``."""
        self.large[target] = bool(node.dims)
        if not expr.owned or TEMP_NAME.fullmatch(expr.text) or expr.text in self.params:
            self.alias(target, expr.text)  # a view or another name of the same array

    def _find(self, name: str) -> str:
        while self._parent.get(name, name) != name:
            name = self._parent[name]
        return name

    def alias(self, target: str, text: str) -> None:
        """``target = text`` may share the array of the names ``text`` reads."""
        for name in _identifiers(text):
            if TEMP_NAME.fullmatch(name) or name in self.params:
                self._parent[self._find(target)] = self._find(name)

    def body(self, final: str) -> list[str]:
        """All blocks with their ``del`` lines, then ``final`` (the return statement)."""
        last: dict[str, int] = {}
        members: dict[str, list[str]] = {}
        for b, block in enumerate(self.blocks):
            for line in block:
                for name in _identifiers(line):
                    if TEMP_NAME.fullmatch(name):
                        group = self._find(name)
                        last[group] = b
                        if name not in members.setdefault(group, []):
                            members[group].append(name)
        kept = {self._find(name) for name in _identifiers(final)}
        kept |= {self._find(p) for p in self.params}
        dead: dict[int, list[str]] = {}
        for group, b in last.items():
            if group not in kept and any(self.large.get(name, True) for name in members[group]):
                dead.setdefault(b, []).extend(members[group])
        lines: list[str] = []
        for b, block in enumerate(self.blocks):
            lines.extend(block)
            if b in dead and b < len(self.blocks) - 1:  # not just before returning: no point
                lines.append("del " + ", ".join(sorted(dead[b], key=lambda name: int(name[2:]))))
        lines.append(final)
        return lines


_STRING = re.compile(r"'[^']*'")
_NAME = re.compile(r"(?!\d)\w+")
_VIEW = re.compile(r"(_t\d+) = ((?!\d)\w+(?:\.T|\.transpose\([\d, ]*\)|\[[\w:, ]*\])*)")
"""An assignment of a name or a view of it (``_t3 = _t1.T``, ``_t4 = x[:, None]``)."""


def _identifiers(code: str) -> list[str]:
    """The identifiers one line of generated code reads or writes (not those in its comment or strings).

    Generated code has '#' only where a comment starts, and strings only as quoted einsum
    subscripts (``'ab,b->a'``), so no tokenizer is needed.
    """
    return _NAME.findall(_STRING.sub("", code.split("#", 1)[0]))


def negated_formula(formula: str) -> str:
    """The formula of ``-value``: ``-(x)`` becomes ``x``, ``-2.0 * x`` ``2.0 * x``, else ``-(…)``."""
    if re.match(r"-\d[\d.e+-]* \* ", formula):
        return formula[1:]
    if formula.startswith("-(") and formula.endswith(")"):
        depth = 0
        for k, ch in enumerate(formula[1:], 1):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                if k == len(formula) - 1:
                    return formula[2:-1]
                break
    return f"-({formula})"


def statement_lines(code: str, comment: str) -> list[str]:
    """``code`` with its comment: trailing when the line stays short, else on the line above."""
    if not comment:
        return [code]
    if len(code) + len(comment) + 8 <= LINE_CHARS:
        return [f"{code}  # {comment}"]
    return [f"# {comment}", code]


def truncate(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with ``...``."""
    text = " ".join(text.split())  # one line, whatever the printer did
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_numpy_syntax_bounded(node: Node, limit: int = FORMULA_NODES, tree: Mapping[int, int] | None = None) -> str:
    """``to_numpy_syntax(node)`` when the formula is small as a tree, else its top node.

    NumPy syntax repeats shared sub-expressions, so the text of a deep DAG can grow
    exponentially; past ``limit`` tree nodes only the top node is shown. ``tree`` is a
    table of :func:`_tree_sizes` (at this limit) that covers ``node``, if one was made.
    """
    size = tree if tree is not None else tree_sizes(topo_order(node), limit)
    if size[id(node)] <= limit:
        return to_numpy_syntax(node)
    return node_line(node, [_leaf_text(c) for c in node.children])


WIDE_EINSUM = 5
"""Einsums with more operands are not printed in NumPy syntax (its search grows factorially)."""


def tree_sizes(order: list[Node], limit: int, known: Mapping[int, int] | None = None) -> dict[int, int]:
    """Per node, its size as a tree, capped at ``limit + 1`` (also when an einsum is too wide).

    Sizes in ``known`` are taken as they are (a walk may stop at nodes sized before).
    """
    size: dict[int, int] = {}
    for n in order:
        if known is not None and id(n) in known:
            size[id(n)] = known[id(n)]
            continue
        wide = isinstance(n, Einsum) and len(n.operands) > WIDE_EINSUM
        size[id(n)] = limit + 1 if wide else min(limit + 1, 1 + sum(size[id(c)] for c in n.children))
    return size


def _leaf_text(node: Node) -> str:
    return node_line(node, []) if not node.children else "…"


class Formulas:
    """Comment text per node: the formula (truncated), or its top node for large DAGs."""

    def __init__(self, order: list[Node]) -> None:
        self.size = tree_sizes(order, FORMULA_NODES)

    def text(self, node: Node, values: Mapping[int, Expr], negated: Container[int] = (), minus: bool = False) -> str:
        """The comment for ``node`` (for ``-node`` with ``minus``); children in ``negated`` hold minus their value."""
        if id(node) not in self.size:  # a node built during code generation: size what is new
            new = topo_order(node, stop=lambda n: id(n) in self.size)
            self.size.update(tree_sizes(new, FORMULA_NODES, self.size))
        if self.size[id(node)] <= FORMULA_NODES:
            text = to_numpy_syntax(node)
        elif isinstance(node, Add):
            return ""  # the code itself lists the terms
        else:
            names = []
            for c in node.children:
                name = values[id(c)].text if id(c) in values else _leaf_text(c)
                names.append(f"(-{name})" if id(c) in negated else name)
            text = node_line(node, names)
        return truncate(negated_formula(text) if minus else text, COMMENT_CHARS)
