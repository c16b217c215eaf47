"""The printer base: expressions as code text, one method per node class.

This module owns the machinery every code printer shares, and no backend knowledge:

* :class:`Expr`, a piece of code text with its precedence (so parentheses are added only
  where Python needs them) and what is known about the array it denotes;
* :class:`Context`, what a printer sees while printing one node: the code of the
  node's children, the sizes and how to spell them, who consumes the node, and a way to
  emit statements before and after the node's own assignment;
* :class:`Printer`, the base class: :meth:`Printer.print_node` dispatches to
  ``_print_<NodeClass>`` along the node's MRO (SymPy's printer pattern) and is strict —
  a node class without a method raises :class:`~eincalc.errors.UnsupportedNodeError`
  instead of printing something wrong. :meth:`Printer.module` spells a module member
  and records the import.

Which statements a program has and how they are named is :mod:`eincalc.codegen.program`'s
job; how NumPy spells an operation is :mod:`eincalc.codegen.numpy_printer`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from eincalc._types import Dim, Dims, IndexTuple
from eincalc.errors import UnsupportedNodeError
from eincalc.expr import Add, Einsum, Elementwise, Node

# Python precedence levels (higher binds tighter).
ATOM, POWER, UNARY, PRODUCT, SUM = 100, 90, 80, 70, 60


@dataclass(frozen=True)
class Expr:
    """Code text for one value.

    Attributes:
        text: the Python expression.
        prec: its precedence (``ATOM`` for names, calls, subscripts and literals).
        op: the top-level operator (``"*"``, ``"@"``, ``"+"``, ``"-"``, ``"neg"``, ``"**"``)
            or ``""`` for an atom; equal operators chain without parentheses on the left.
        owned: the value is a fresh array nothing else refers to (not a view, not an
            argument), so it may be written in place.
        readonly: the value is a read-only view (a broadcast), not to be handed out.
        inline: the text is cheap and pure (a name or a literal); it is used directly
            instead of being assigned to a name.
        note: a prefix for the comment naming the formula (``"core of "`` when the
            value is only the core of a δ ⊗ core result).
    """

    text: str
    prec: int = ATOM
    op: str = ""
    owned: bool = False
    readonly: bool = False
    inline: bool = False
    note: str = ""

    def operand(self, parent_prec: int, parent_op: str, left: bool) -> str:
        """The text as an operand of ``parent_op``, parenthesised if Python needs it.

        Equal precedence chains only on the left and only for the same operator, so
        ``a * b * c`` stays flat while ``(a @ b) * c`` keeps its parentheses for clarity.
        """
        if self.prec > parent_prec or (self.prec == parent_prec and left and self.op == parent_op):
            return self.text
        return f"({self.text})"

    @property
    def atom(self) -> str:
        """The text usable before ``.attr``, ``[...]`` or ``(...)``."""
        return self.text if self.prec >= ATOM else f"({self.text})"


def transpose(e: Expr, perm: tuple[int, ...], method: str = "transpose") -> Expr:
    """``e`` with its axes permuted by ``perm`` (a view): ``.T`` for a matrix, else ``.<method>(perm)``."""
    if perm == tuple(range(len(perm))):
        return e
    if perm == (1, 0) and e.prec == ATOM and e.text.endswith(".T"):
        return Expr(e.text[:-2], readonly=e.readonly)  # (A.T).T is A
    text = f"{e.atom}.T" if perm == (1, 0) else f"{e.atom}.{method}({', '.join(map(str, perm))})"
    return Expr(text, readonly=e.readonly)


def align(e: Expr, idx: IndexTuple, res: IndexTuple, method: str = "transpose") -> Expr:
    """View ``e`` (axes ``idx``) so it broadcasts against axes ``res``.

    Axes are permuted into ``res`` order and ``None`` inserted for the missing ones;
    leading ``None`` are left out (NumPy broadcasting aligns trailing axes) and so is
    the trailing ``:``: ``x[:, None]``.
    """
    if not idx:
        return e
    present = tuple(i for i in res if i in idx)
    e = transpose(e, tuple(idx.index(i) for i in present), method)
    first = next(k for k, i in enumerate(res) if i in idx)
    subs = [":" if i in idx else "None" for i in res[first:]]
    while subs and subs[-1] == ":":
        subs.pop()
    if subs:
        e = Expr(f"{e.atom}[{', '.join(subs)}]", readonly=e.readonly)
    return e


def binary(left: Expr, op: str, right: Expr, prec: int = PRODUCT) -> Expr:
    """``left op right`` with the parentheses Python (and a reader) needs."""
    return Expr(f"{left.operand(prec, op, True)} {op} {right.operand(prec, op, False)}", prec, op, owned=True)


def call(func: str, *args: str) -> Expr:
    """``func(args…)`` as an atom returning a fresh array."""
    return Expr(f"{func}({', '.join(args)})", owned=True)


def literal(value: float) -> Expr:
    """A float literal (``repr`` round-trips exactly)."""
    text = repr(float(value))
    return Expr(text, UNARY, "neg", inline=True) if text.startswith("-") else Expr(text, inline=True)


@dataclass
class Context:
    """What a printer may know and do while printing one node.

    Attributes:
        values: code of every node printed so far (by ``id``): its name, or inline text.
        sizes: the size of every dim (those the contraction order is planned for).
        dim_code: how the generated code spells each dim's size (``X.shape[0]``, ``3``).
        consumers: for every node (by ``id``), the nodes using it, once per use.
        roots: ids of the nodes the program returns.
        embeds: filled by printers: nodes whose value is kept as a δ ⊗ core (by ``id``),
            with the data the consumer needs to add them into a result (see
            :mod:`eincalc.codegen.numpy_printer`).
        negated: filled by printers: ids of nodes whose name holds ``-value`` (the sign
            moved into the one ``Add`` that uses them).
        transpose: ids of 2-D products to compute in the other axis order, for their
            readers (:mod:`eincalc.codegen.layouts`).
        transposed: filled by printers: ids of nodes whose name holds the transpose of
            their value (those of ``transpose`` printed so).
        in_place: filled by printers: ids of nodes computed into the fresh array of an
            argument nothing else reads (``z += b``, ``numpy.tanh(z, out=z)``); that array
            is theirs now, so they may hand it on the same way.
        new_temp: allocates the next temporary name (``_t0``, ``_t1``, …).
        params: the parameter name of every variable (a user's name, or that name with a
            trailing ``_`` where it would shadow a name the code needs).
        scaled_of: for einsum nodes that equal ``coef ·`` a product other nodes share
            (``U @ V.T`` and ``-2.0 * (U @ V.T)``), that product with coefficient 1.
        describe: the formula of a node, for comments.
        shared: filled by printers: code of shared products computed so far (by ``id``).
    """

    values: dict[int, Expr]
    sizes: Mapping[Dim, int]
    dim_code: Mapping[Dim, str]
    consumers: Mapping[int, list[Node]]
    roots: set[int]
    new_temp: Callable[[], str]
    params: Mapping[str, str] = field(default_factory=dict)
    scaled_of: Mapping[int, Node] = field(default_factory=dict)
    describe: Callable[[Node], str] = lambda node: ""
    shared: dict[int, Expr] = field(default_factory=dict)
    embeds: dict[int, object] = field(default_factory=dict)
    negated: set[int] = field(default_factory=set)
    transpose: set[int] = field(default_factory=set)
    transposed: set[int] = field(default_factory=set)
    in_place: set[int] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)
    post: list[Callable[[str], str]] = field(default_factory=list)

    # -- reading ------------------------------------------------------------------------
    def arg(self, node: Node) -> Expr:
        """The code of an already printed node."""
        return self.values[id(node)]

    def size(self, dim: Dim) -> str:
        """Code for the size of ``dim``."""
        return self.dim_code[dim]

    def shape(self, dims: Dims) -> str:
        """Code for the shape tuple of ``dims``: ``(X.shape[0], 3)``."""
        if len(dims) == 1:
            return f"({self.size(dims[0])},)"
        return "(" + ", ".join(self.size(d) for d in dims) + ")"

    def is_root(self, node: Node) -> bool:
        return id(node) in self.roots

    def uses(self, node: Node) -> list[Node]:
        """The nodes consuming ``node`` (a node using it twice appears twice)."""
        return self.consumers.get(id(node), [])

    def only_added(self, node: Node) -> bool:
        """True when every use of ``node`` is as a term of a sum (and it is not returned)."""
        uses = self.uses(node)
        return bool(uses) and not self.is_root(node) and all(isinstance(u, Add) for u in uses)

    def needs_value(self, node: Node) -> bool:
        """True unless every use is structural.

        Structural uses: a factor of an einsum, a constant term of a sum, a constant
        argument of an element-wise function (NumPy broadcasts it as a scalar).
        """
        return self.is_root(node) or any(not isinstance(u, (Einsum, Add, Elementwise)) for u in self.uses(node))

    # -- writing ------------------------------------------------------------------------
    def temp(self, expr: Expr, comment: str = "") -> Expr:
        """Assign ``expr`` to a new temporary now; returns the temporary's name."""
        name = self.new_temp()
        comment = "" if comment == expr.text else comment
        self.lines.append(f"{name} = {expr.text}" + (f"  # {comment}" if comment else ""))
        return replace(expr, text=name, prec=ATOM, op="", inline=True)

    def written_in_place(self, node: Node, statement: str, into: Expr) -> Expr:
        """Emit ``statement``, computing ``node`` into the fresh array ``into``, which holds its value from then on."""
        comment = self.describe(node)
        self.lines.append(statement + (f"  # {comment}" if comment else ""))
        self.in_place.add(id(node))
        return replace(into, inline=True)  # still a fresh array: later writes may go into it

    def after(self, statement: Callable[[str], str]) -> None:
        """Emit ``statement(name)`` right after the current node is assigned to ``name``."""
        self.post.append(statement)


class Printer:
    """Base class of code printers: ``_print_<NodeClass>`` methods found along the MRO.

    A backend subclass adds one method per node class and its data tables. Each method
    returns the :class:`Expr` of the node's value, or None when the node needs no code
    of its own (a unit tensor only ever used as an einsum factor).
    """

    name = "base"

    def __init__(self) -> None:
        self.imports: dict[str, None] = {}  # ordered set: the modules the code uses
        self.constant_lines: list[str] = []  # module-level assignments of constant arrays (_c0 = …)

    def print_node(self, node: Node, ctx: Context) -> Expr | None:
        """The code of ``node``, by the first ``_print_<Class>`` along its MRO.

        Raises:
            UnsupportedNodeError: when no class in the MRO has a method (strict, so an
                unknown node never becomes wrong code).
        """
        for cls in type(node).__mro__:
            method = getattr(self, f"_print_{cls.__name__}", None)
            if method is not None:
                return method(node, ctx)
        raise UnsupportedNodeError(f"the {self.name} printer has no rule for {type(node).__name__} nodes")

    def module(self, dotted: str) -> str:
        """``dotted`` (``"numpy.exp"``) as the code spells it; records the top-level import."""
        self.imports[dotted.split(".", 1)[0]] = None
        return dotted

    def import_lines(self) -> list[str]:
        """``import …`` statements for every module used, sorted."""
        return [f"import {m}" for m in sorted(self.imports)]
