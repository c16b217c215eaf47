"""Text front ends: NumPy syntax (``ast`` under a strict whitelist) and the dialect hook.

``parse(text, **declarations)`` turns a string into a DAG node. The NumPy dialect reads
the text with :func:`ast.parse` and walks only whitelisted node types — numbers, declared
names, ``+ - * / ** @``, unary minus, comparisons, ``.T``, calls of functions in
:data:`eincalc.language.FUNCTIONS` (with or without an ``np.`` prefix) and the methods of
:data:`eincalc.language.METHODS`. Nothing is ever evaluated: a hostile string is a
:class:`~eincalc.errors.ParseError` pointing at the offending column.

Undeclared dims are inferred in two passes: the first builds with placeholder dims under
a :class:`~eincalc.dims.Unifier` (node constructors unify instead of failing), the second
rebuilds with the solved names. The MatrixCalculus.org language lives in
:mod:`eincalc.mcparser` and plugs in through :data:`DIALECTS`.
"""

from __future__ import annotations

import ast
import io
import math
import tokenize
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from eincalc import algebra as alg
from eincalc import dims as dimsmod
from eincalc import indexing, language, ops
from eincalc._types import Dim, Dims
from eincalc.algebra import normalise_name
from eincalc.calling import declared as declared_signature
from eincalc.calling import remember
from eincalc.errors import EincalcError, ParseError, ShapeError, UnknownNameError
from eincalc.expr import Node

MAX_LENGTH = 100_000
"""Longest expression text accepted (characters)."""
MAX_DEPTH = 64
"""Deepest nesting of calls, signs and right-nested operators accepted (flat chains such
as ``a + b + c`` are one level); deeper text is refused instead of exhausting the stack."""
MAX_LEAVES = 200
"""Most names and numbers one expression may hold. Parsing, deriving and compiling cost
a few milliseconds per operation, so this bounds the work of any text to about 2 s."""


class Dialect(Protocol):
    """A text front end: ``syntax`` validates text into a tree, ``build`` makes nodes from it."""

    name: str

    def syntax(self, text: str) -> Any: ...

    def build(self, tree: Any, ctx: BuildContext) -> Node: ...

    def default_dims(self, name: str, ctx: BuildContext) -> Dims | None: ...


class BuildContext:
    """What a dialect's builder may ask while making nodes: variables, fresh dims, errors."""

    def __init__(
        self,
        text: str,
        declared: dict[str, tuple[str, ...]],
        dialect: Dialect,
        fresh: Callable[[str, str], Dim],
        symmetric: frozenset[str] = frozenset(),
    ) -> None:
        self.text = text
        self.declared = declared
        self.symmetric = symmetric
        """Names of the variables declared symmetric matrices."""
        self.dialect = dialect
        self._fresh = fresh
        self.used: dict[str, Node] = {}
        """The variables built so far, by name, in order of appearance."""

    def fresh(self, hint: str, origin: str) -> Dim:
        """A dim to be inferred; ``hint`` names it if nothing fixes it."""
        return self._fresh(hint, origin)

    def var(self, name: str, pos: int) -> Node:
        """The variable ``name`` (declared, or given default dims by the dialect)."""
        if name in self.used:
            return self.used[name]
        if name in self.declared:
            spec = self.declared[name]
            dims = tuple(
                self.fresh(f"{name}{k}" if len(spec) > 1 else f"n_{name}", f"axis {k} of {name}") if d == "?" else d
                for k, d in enumerate(spec)
            )
        else:
            found = self.dialect.default_dims(name, self)
            if found is None:
                known = ", ".join(sorted(self.declared)) or "none declared"
                from eincalc import language

                hint = language.suggest(name, [*self.declared, *language.FUNCTIONS])
                raise ParseError(f"unknown name {name!r}{hint}; declared variables: {known}", self.text, pos)
            dims = found
        symmetric = name in self.symmetric
        node = (
            alg.variable(name, dims, symmetric)
            if not any(d.startswith(dimsmod.FRESH_PREFIX) for d in dims)
            else _fresh_var(name, dims, symmetric)
        )
        self.used[name] = node
        return node

    def error(self, message: str, pos: int | None) -> ParseError:
        """A ParseError at ``pos`` of the text."""
        return ParseError(message, self.text, pos)

    @contextmanager
    def at(self, pos: int | None) -> Iterator[None]:
        """Attach the text position to shape errors raised while building one construct."""
        try:
            yield
        except ShapeError as err:
            if getattr(err, "_positioned", False) or pos is None:
                raise
            located = ParseError(str(err), self.text, pos)
            new = type(err)(str(located))
            new._positioned = True  # type: ignore[attr-defined]
            new.pos = pos  # type: ignore[attr-defined]
            raise new from None


def _fresh_var(name: str, dims: Dims, symmetric: bool = False) -> Node:
    from eincalc.expr import Var

    return Var.make(name, dims, symmetric)  # placeholder dims are not valid names, so skip validation


def _parse_declaration(name: str, spec: object) -> tuple[str, ...]:
    if not isinstance(name, str) or not name.isidentifier():
        raise ParseError(f"declared name {name!r} is not an identifier")
    if isinstance(spec, str):
        parts = spec.replace(",", " ").split()
        return tuple("?" if p == "?" else dimsmod.parse_dims(p, f"dims of {name}")[0] for p in parts)
    return dimsmod.parse_dims(spec, f"dims of {name}")


def parse(
    text: str,
    /,
    dialect: str = "numpy",
    declarations: Mapping[str, object] | None = None,
    symmetric: Collection[str] = (),
    **more: object,
) -> Node:
    """Parse ``text`` into an expression; keywords (or the mapping ``declarations``) declare dims.

    Dims are a space-separated string (``X="m n"``), ``""`` for a scalar, a tuple, or an int
    for a fixed size; ``"?"`` marks a dim to infer. ``dialect`` is ``"numpy"`` (default) or
    ``"matrixcalculus"``. ``symmetric`` names square matrices equal to their transpose
    (``parse("log(det(X))", X="n n", symmetric={"X"})``): derivatives w.r.t. them are in
    the symmetric convention, ``(∂f/∂X + ∂f/∂Xᵀ) / 2``. Variables named ``dialect``,
    ``declarations`` or ``symmetric`` are declared through the mapping:
    ``parse("dialect * x", declarations={"dialect": "", "x": "n"})``.
    Names are NFKC-normalised, as Python normalises identifiers (fullwidth ``ｘ`` is ``x``).

    Examples:
        >>> import eincalc as ec
        >>> f = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
        >>> f is ec.parse(str(f), X="m n", w="n", y="m")
        True
    """
    if not isinstance(text, str):
        raise ParseError(f"parse needs a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"expression text is longer than {MAX_LENGTH} characters")
    if declarations is not None and not isinstance(declarations, Mapping):
        raise ParseError(f"declarations must be a mapping of name -> dims, got {type(declarations).__name__}")
    front = get_dialect(dialect)
    declared: dict[str, tuple[str, ...]] = {}
    for name, spec in [*(declarations or {}).items(), *more.items()]:
        dims = _parse_declaration(name, spec)
        name = normalise_name(name)
        if declared.setdefault(name, dims) != dims:
            raise ParseError(f"{name!r} is declared twice with different dims (names are NFKC-normalised)")
    symmetric_names = _symmetric_names(symmetric, declared)
    tree = front.syntax(text)
    return _infer_and_build(front, tree, text, declared, symmetric_names)


def _symmetric_names(names: Collection[str], declared: dict[str, tuple[str, ...]]) -> frozenset[str]:
    """The names declared symmetric: each a declared square matrix (``X="n n"``)."""
    if isinstance(names, str) or not isinstance(names, Collection):
        raise ParseError(f"symmetric must be a collection of variable names, got {names!r}")
    found = set()
    for raw in names:
        if not isinstance(raw, str):
            raise ParseError(f"symmetric must name variables, got {raw!r}")
        name = normalise_name(raw)
        dims = declared.get(name)
        if dims is None:
            raise ParseError(f'symmetric variable {name!r} needs declared dims, such as {name}="n n"')
        if len(dims) != 2 or dims[0] != dims[1] or dims[0] == "?":
            raise ParseError(f"symmetric variable {name!r} must be a square matrix (two equal dims), got {dims}")
        found.add(name)
    return frozenset(found)


def _infer_and_build(
    front: Dialect, tree: Any, text: str, declared: dict[str, tuple[str, ...]], symmetric: frozenset[str] = frozenset()
) -> Node:
    unifier = dimsmod.Unifier()
    hints: list[tuple[Dim, str]] = []

    def fresh1(hint: str, origin: str) -> Dim:
        d = unifier.fresh(origin)
        hints.append((d, hint))
        return d

    try:
        with dimsmod.unifying(unifier):
            ctx = BuildContext(text, declared, front, fresh1, symmetric)
            first = front.build(tree, ctx)
    except RecursionError:
        raise ParseError("expression is nested too deeply", text, 0) from None
    if not hints:
        return _with_signature(first, ctx)

    taken = {d for spec in declared.values() for d in spec} | {unifier.find(d) for d, _ in hints}
    names: dict[Dim, Dim] = {}
    for d, hint in hints:
        root = unifier.find(d)
        if root not in names:
            if root.startswith(dimsmod.FRESH_PREFIX):
                name, k = hint, 1
                while name in taken:
                    k += 1
                    name = f"{hint}_{k}"
                taken.add(name)
                names[root] = name
            else:
                names[root] = root
    resolved = iter([names[unifier.find(d)] for d, _ in hints])

    # the second pass asks for fresh dims in the same order as the first ("?" dims included)
    def fresh2(hint: str, origin: str) -> Dim:
        return next(resolved)

    ctx = BuildContext(text, declared, front, fresh2, symmetric)
    return _with_signature(front.build(tree, ctx), ctx)


def _with_signature(node: Node, ctx: BuildContext) -> Node:
    """``node`` remembering its arguments: the declared variables in keyword order, then the others as they appear.

    Variables the text names but simplification drops (``X ** 0``) stay arguments: their
    derivatives are zeros of their dims.
    """
    order = [*(n for n in ctx.declared if n in ctx.used), *(n for n in ctx.used if n not in ctx.declared)]
    return remember(node, declared_signature([ctx.used[n] for n in order]))  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# the NumPy dialect
# --------------------------------------------------------------------------------------
_BINOPS: dict[type, Callable[[Any, Any], Node]] = {
    ast.Add: ops.add,
    ast.Sub: ops.subtract,
    ast.Mult: ops.multiply,
    ast.Div: ops.divide,
    ast.Pow: ops.power,
    ast.MatMult: ops.matmul,
}
_DIMS_FUNCTIONS = {"eye", "ones", "zeros"}
_COMPARE: dict[type, str] = {
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
}
_CONSTANTS = {"pi": 3.141592653589793, "e": 2.718281828459045}


class NumpyDialect:
    """Python/NumPy syntax, read with :mod:`ast` and a whitelist of node types."""

    name = "numpy"

    def syntax(self, text: str) -> ast.Expression:
        _count_leaves(text.strip())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ast's SyntaxWarnings ("is" with a literal, …) are ours to report
                tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as err:
            stripped = text.strip()
            if not err.offset:  # Python reports offset 0 when the text ends too early
                raise ParseError("unexpected end of the expression", stripped, len(stripped)) from None
            # err.offset counts within line err.lineno, not within the whole text
            line_start = 0
            for _ in range((err.lineno or 1) - 1):
                line_start = stripped.find("\n", line_start) + 1
            pos = min(line_start + err.offset - 1, len(stripped))
            raise ParseError(f"invalid syntax: {err.msg}", stripped, pos) from None
        except (ValueError, MemoryError, RecursionError) as err:
            raise ParseError(f"cannot read the expression: {err}") from None
        _check_depth(tree, text.strip())
        return tree

    def default_dims(self, name: str, ctx: BuildContext) -> Dims | None:
        return None

    def build(self, tree: ast.Expression, ctx: BuildContext) -> Node:
        ctx.text = ctx.text.strip()
        result = self._node(tree.body, ctx)
        if not isinstance(result, Node):
            return ops.as_node(result)
        return result

    # Each _node call returns a Node or a plain Python number (folded constant).
    def _node(self, node: ast.AST, ctx: BuildContext) -> Any:
        pos = _pos(node, ctx.text)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ctx.error(f"constant {node.value!r} is not allowed here (only numbers)", pos)
            return _number(node, ctx, pos)
        if isinstance(node, ast.Name):
            return ctx.var(node.id, pos)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self._node(node.operand, ctx)
            if isinstance(node.op, ast.UAdd):
                return operand
            with ctx.at(pos):
                return -operand if isinstance(operand, float) else ops.negative(operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            # a flat chain (a + b + c …) is a left spine of BinOps: walk it in a loop, so
            # its length is bounded by MAX_LEAVES and not by the recursion limit
            spine = [node]
            while isinstance(spine[-1].left, ast.BinOp) and type(spine[-1].left.op) in _BINOPS:
                spine.append(spine[-1].left)
            acc = self._node(spine[-1].left, ctx)
            for link in reversed(spine):
                acc = self._binop(link, acc, self._node(link.right, ctx), ctx)
            return acc
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
                raise ctx.error("only a single comparison (<, <=, >, >=, ==, !=) is allowed, not a chain", pos)
            left, right = self._node(node.left, ctx), self._node(node.comparators[0], ctx)
            with ctx.at(pos):
                return language.FUNCTIONS[_COMPARE[type(node.ops[0])]].fn(left, right)
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is not None and dotted[0] in _module_names() and dotted[-1] in _CONSTANTS:
                return _CONSTANTS[dotted[-1]]
            if node.attr != "T":
                raise ctx.error(f"attribute .{node.attr} is not allowed (only .T, or a method call)", pos)
            base = self._node(node.value, ctx)
            with ctx.at(pos):
                return ops.transpose(ops.as_node(base))
        if isinstance(node, ast.Call):
            return self._call(node, ctx, pos)
        if isinstance(node, ast.Subscript):
            return self._subscript(node, ctx, pos)
        raise ctx.error(f"{_describe(node)} is not allowed in an expression", pos)

    def _binop(self, node: ast.BinOp, left: Any, right: Any, ctx: BuildContext) -> Any:
        pos = _pos(node, ctx.text)
        if isinstance(left, float) and isinstance(right, float):
            return _fold(node.op, left, right, ctx, pos)
        with ctx.at(_pos(node.right, ctx.text) if isinstance(node.op, ast.MatMult) else pos):
            return _BINOPS[type(node.op)](left, right)

    def _call(self, node: ast.Call, ctx: BuildContext, pos: int) -> Node:
        receiver: ast.AST | None = None
        if isinstance(node.func, ast.Name):
            name = node.func.id
        elif isinstance(node.func, ast.Attribute):
            dotted = _dotted(node.func)
            prefix = ".".join(dotted[:-1]) if dotted else ""
            if dotted is not None and prefix in language.PREFIXES:
                name = dotted[-1]
            elif node.func.attr in language.METHODS:
                name, receiver = node.func.attr, node.func.value
            else:
                methods = ", ".join(sorted(language.METHODS))
                raise ctx.error(
                    f"only calls of known functions are allowed, not attribute access .{node.func.attr}(…); "
                    f"methods: {methods}",
                    pos,
                )
        else:
            raise ctx.error(f"only calls of known functions are allowed, not {_describe(node.func)}", pos)
        if name not in language.FUNCTIONS:
            known = ", ".join(sorted(language.FUNCTIONS))
            hint = language.suggest(name, language.FUNCTIONS)
            raise ctx.error(f"unknown function {name!r}{hint}; known functions: {known}", pos)
        sig = language.FUNCTIONS[name]
        if name in _DIMS_FUNCTIONS:
            return self._dims_call(node, ctx, pos, name)
        if name in ("array", "asarray"):
            return self._array_call(node, ctx, pos)
        if name == "window":
            return self._window_call(node, ctx, pos)
        positional = ([receiver] if receiver is not None else []) + list(node.args)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for k, arg in enumerate(positional):
            if isinstance(arg, ast.Starred):
                raise ctx.error("*arguments are not allowed", _pos(arg, ctx.text))
            if name in ("stack", "concatenate") and k == 0 and isinstance(arg, (ast.List, ast.Tuple)):
                args.append([self._node(e, ctx) for e in arg.elts])  # the list of parts
            elif name == "reshape" and k >= 1 and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                args.append(arg.value)  # target dims by name: reshape(X, 'm*n')
            elif name == "reshape" and k >= 1:
                args.append(_axis_literal(arg, ctx, "a new shape"))  # sizes, not expressions
            elif name == "einsum" and k == 0:
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    raise ctx.error("einsum needs its subscripts as a string literal first", _pos(arg, ctx.text))
                args.append(arg.value)
            elif sig.max_args is not None and len(args) == sig.max_args and "axis" in sig.keywords and not kwargs:
                kwargs["axis"] = _axis_literal(arg, ctx, "axis")  # NumPy's positional axis: sum(x, 0)
            else:
                args.append(self._node(arg, ctx))
        if sig.min_args is not None and not sig.min_args <= len(args) <= (sig.max_args or 0):
            want = sig.min_args if sig.min_args == sig.max_args else f"{sig.min_args} to {sig.max_args}"
            raise ctx.error(f"{name} takes {want} argument(s), got {len(args)}", pos)
        for kw in node.keywords:
            if kw.arg is None or kw.arg not in sig.keywords:
                allowed = ", ".join(sig.keywords) or "none"
                raise ctx.error(f"{name} has no keyword {kw.arg!r} (allowed: {allowed})", _pos(kw.value, ctx.text))
            kwargs[kw.arg] = _axis_literal(kw.value, ctx, kw.arg)
        with ctx.at(pos):
            try:
                return sig.fn(*args, **kwargs)
            except EincalcError:
                raise
            except TypeError as err:
                raise ctx.error(f"bad arguments to {name}: {err}", pos) from None

    def _subscript(self, node: ast.Subscript, ctx: BuildContext, pos: int) -> Node:
        """``x[0]``, ``x[:, 1:3]``, ``x[-1]``, ``x[:, None]``, ``x[..., 0]``: literals only."""
        call = node.value
        if isinstance(call, ast.Call) and (_dotted(call.func) or ("",))[-1] in language.PAIRS:
            return self._pair(node, call, ctx, pos)
        base = ops.as_node(self._node(node.value, ctx))
        items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        key = tuple(_index_literal(item, ctx) for item in items)
        with ctx.at(pos):
            return indexing.index(base, key)

    def _pair(self, node: ast.Subscript, call: ast.Call, ctx: BuildContext, pos: int) -> Node:
        """``slogdet(A)[1]``, ``eigh(A)[0]``: one part of a function returning a pair (never a value)."""
        name = (_dotted(call.func) or ("",))[-1]
        fn, usage = language.PAIRS[name]
        which = _index_literal(node.slice, ctx)
        if which not in (0, 1, -1, -2) or len(call.args) != 1 or call.keywords:
            raise ctx.error(f"{name}(A) is used as {usage}", pos)
        matrix = self._node(call.args[0], ctx)
        with ctx.at(pos):
            return fn(matrix)[which]

    def _window_call(self, node: ast.Call, ctx: BuildContext, pos: int) -> Node:
        """``window('2 n', 1)`` (``from_end=True`` counts from the end), ``window('m k', rows=[0, 2])``."""
        args = node.args
        usage = "window takes dims as a string and a start, e.g. window('2 n', 1), or rows=[…]"
        if not args or not (isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)) or len(args) > 2:
            raise ctx.error(usage, pos)
        start, from_end, rows = (_int_literal(args[1], ctx) if len(args) == 2 else 0), False, None
        for kw in node.keywords:
            if kw.arg == "from_end" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, bool):
                from_end = kw.value.value
            elif kw.arg == "rows" and isinstance(kw.value, (ast.List, ast.Tuple)):
                rows = [_int_literal(e, ctx) for e in kw.value.elts]
            else:
                raise ctx.error("window takes from_end=True/False or rows=[integers]", _pos(kw.value, ctx.text))
        if (rows is None) == (len(args) == 1):
            raise ctx.error(usage, pos)
        with ctx.at(pos):
            if rows is not None:
                return indexing.gather(args[0].value, rows)
            return indexing.window(args[0].value, start, from_end)

    def _array_call(self, node: ast.Call, ctx: BuildContext, pos: int) -> Node:
        """``array([[1, 0], [0, 1]], dims='n n')``: a constant array from a literal of numbers."""
        if len(node.args) != 1 or any(kw.arg != "dims" for kw in node.keywords):
            raise ctx.error("array takes one nested list of numbers (and optionally dims='…')", pos)
        data = _number_literal(node.args[0], ctx)
        dims = None
        for kw in node.keywords:
            if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)):
                raise ctx.error("dims must be a string literal such as 'm n'", _pos(kw.value, ctx.text))
            dims = kw.value.value
        with ctx.at(pos):
            return ops.array(data, dims)

    def _dims_call(self, node: ast.Call, ctx: BuildContext, pos: int, name: str) -> Node:
        if node.keywords or not node.args:
            raise ctx.error(f"{name} takes dims, e.g. {name}('m n') or {name}('n', 3)", pos)
        dims: list[object] = []
        for arg in node.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, (str, int)) and not isinstance(arg.value, bool):
                dims.extend(arg.value.replace(",", " ").split() if isinstance(arg.value, str) else [arg.value])
            else:
                raise ctx.error(f"{name} takes dim names or sizes as literals", _pos(arg, ctx.text))
        with ctx.at(pos):
            return language.FUNCTIONS[name].fn(tuple(dims))


def _index_literal(node: ast.AST, ctx: BuildContext) -> Any:
    """One subscript item as Python: an int, a slice of ints, None or Ellipsis."""
    if isinstance(node, ast.Constant) and (node.value is None or node.value is Ellipsis):
        return node.value
    if _dotted(node) in (("np", "newaxis"), ("numpy", "newaxis")):
        return None
    if isinstance(node, ast.Slice):
        parts = [None if p is None else _int_literal(p, ctx) for p in (node.lower, node.upper, node.step)]
        return slice(*parts)
    if isinstance(node, (ast.List, ast.Tuple)):  # an index array: logp[arange(3), [0, 2, 1]]
        return [_int_literal(e, ctx) for e in node.elts]
    if isinstance(node, ast.Call) and (_dotted(node.func) or ("",))[-1] == "arange" and len(node.args) == 1:
        return list(range(_int_literal(node.args[0], ctx)))
    return _int_literal(node, ctx)


def _int_literal(node: ast.AST, ctx: BuildContext) -> int:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_int_literal(node.operand, ctx)
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    raise ctx.error(
        "a subscript holds integer literals, slices of them, None or ... (no expressions)", _pos(node, ctx.text)
    )


def _number_literal(node: ast.AST, ctx: BuildContext) -> Any:
    """A (nested) list or tuple of number literals, as Python lists."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_number_literal(e, ctx) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number_literal(node.operand, ctx)
        if isinstance(inner, float):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    raise ctx.error("an array literal holds numbers only", _pos(node, ctx.text))


def _dotted(node: ast.AST) -> tuple[str, ...] | None:
    """``np.linalg.inv`` as ``("np", "linalg", "inv")``; None if not a dotted name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return (node.id, *reversed(parts))


def _module_names() -> set[str]:
    return {p.split(".")[0] for p in language.PREFIXES}


def _axis_literal(node: ast.AST, ctx: BuildContext, what: str) -> Any:
    """A keyword's value, literals only: ``keepdims`` True or False; axes and ``ddof`` ints."""
    if what == "keepdims":
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return node.value
        raise ctx.error("keepdims must be True or False", _pos(node, ctx.text))
    if isinstance(node, ast.Constant) and (
        node.value is None or (isinstance(node.value, int) and not isinstance(node.value, bool))
    ):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _axis_literal(node.operand, ctx, what)
        if isinstance(inner, int):
            return -inner
    if isinstance(node, ast.Tuple):
        return tuple(_axis_literal(e, ctx, what) for e in node.elts)
    raise ctx.error(f"{what} must be an integer literal, a tuple of them, or None", _pos(node, ctx.text))


def _count_leaves(text: str) -> None:
    """Refuse text with more than :data:`MAX_LEAVES` names and numbers, before ``ast`` reads it."""
    count = 0
    pending = None  # a name counts unless the next token opens a call
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if pending is not None and not (tok.type == tokenize.OP and tok.string == "("):
                count += 1
                if count > MAX_LEAVES:
                    line_start = sum(len(line) for line in text.splitlines(keepends=True)[: pending.start[0] - 1])
                    raise too_many_leaves(text, line_start + pending.start[1])
            pending = tok if tok.type in (tokenize.NAME, tokenize.NUMBER) else None
    except (tokenize.TokenError, SyntaxError):
        return  # ast.parse reports bad text with its position


def too_many_leaves(text: str, pos: int) -> ParseError:
    """The error for text past :data:`MAX_LEAVES`, pointing at the first name or number over it."""
    return ParseError(
        f"expression has more than {MAX_LEAVES} names and numbers (eincalc.parser.MAX_LEAVES); "
        "split it into smaller expressions",
        text,
        pos,
    )


def _check_depth(tree: ast.Expression, text: str) -> None:
    """Refuse trees nested deeper than :data:`MAX_DEPTH` (measured without recursion)."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", text, _pos(node, text))
        for child in ast.iter_child_nodes(node):
            # a level is a call, a sign or a right-nested operator (a - (b - (c …))): what
            # the builder recurses through; a flat chain a + b + c and call arguments are not
            deeper = isinstance(child, (ast.Call, ast.UnaryOp)) or (
                isinstance(node, ast.BinOp) and child is node.right and isinstance(child, ast.BinOp)
            )
            stack.append((child, depth + 1 if deeper else depth))


def _number(node: ast.Constant, ctx: BuildContext, pos: int) -> float:
    """A numeric literal as a finite float (``1e400`` and 400-digit integers are refused)."""
    try:
        value = float(node.value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        text = ast.get_source_segment(ctx.text, node) or repr(node.value)
        raise ctx.error(f"number {_shorten(text)} is too large for a float64 (at most about 1.8e308)", pos)
    return value


def _shorten(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fold(op: ast.operator, a: float, b: float, ctx: BuildContext, pos: int) -> float | Node:
    """``a op b`` for two numbers; a power without a finite value (``0.0 ** -1.0``) stays symbolic.

    Such powers are how a division by a folded zero, or an overflowing power of a
    constant, print; keeping them symbolic (as ``exp(1000.0)`` is) lets the text parse back.
    """
    try:
        if isinstance(op, ast.Add):
            value = a + b
        elif isinstance(op, ast.Sub):
            value = a - b
        elif isinstance(op, ast.Mult):
            value = a * b
        elif isinstance(op, ast.Div):
            value = a / b
        elif isinstance(op, ast.Pow):
            try:
                value = a**b
            except (ZeroDivisionError, OverflowError):
                value = math.inf
            if isinstance(value, complex):
                raise ctx.error(f"{a} ** {b} is not a real number", pos)
            if not math.isfinite(value):  # as printed for x / sin(0) or 4.0 ** 1e41: symbolic, evaluates to inf
                with ctx.at(pos):
                    return ops.power(ops.as_node(a), b)
        else:
            raise ctx.error("@ needs tensors, not numbers", pos)
    except (ZeroDivisionError, OverflowError) as err:
        raise ctx.error(f"constant arithmetic failed: {err}", pos) from None
    if not math.isfinite(value):
        raise ctx.error(f"constant arithmetic overflows a float64: {a!r} {_OP_TEXT[type(op)]} {b!r}", pos)
    return float(value)


_OP_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


def _pos(node: ast.AST, text: str) -> int:
    line = getattr(node, "lineno", 1)
    col = getattr(node, "col_offset", 0)
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
    # col_offset counts UTF-8 bytes; convert to characters for the caret
    line_text = text[start:].split("\n", 1)[0]
    return start + len(line_text.encode()[:col].decode(errors="ignore"))


def _describe(node: ast.AST) -> str:
    names = {
        ast.Lambda: "a lambda",
        ast.ListComp: "a list comprehension",
        ast.GeneratorExp: "a generator expression",
        ast.DictComp: "a dict comprehension",
        ast.SetComp: "a set comprehension",
        ast.Subscript: "subscripting ([...])",
        ast.JoinedStr: "an f-string",
        ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operator",
        ast.IfExp: "a conditional expression",
        ast.NamedExpr: "an assignment expression",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.List: "a list",
        ast.Tuple: "a tuple",
        ast.Dict: "a dict",
        ast.Set: "a set",
        ast.Attribute: "attribute access",
        ast.Call: "a call",
    }
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"the unary operator {type(node.op).__name__}"
    return names.get(type(node), type(node).__name__)


DIALECTS: dict[str, Dialect] = {"numpy": NumpyDialect()}


def register_dialect(front: Dialect) -> None:
    """Add a text front end under ``front.name``."""
    if front.name in DIALECTS:
        raise KeyError(f"dialect {front.name!r} is already registered")
    DIALECTS[front.name] = front


def get_dialect(name: str) -> Dialect:
    """The dialect ``name``, or an error listing the known dialects."""
    if name not in DIALECTS and name in ("matrixcalculus", "mc"):
        import eincalc.mcparser  # noqa: F401 - registers itself
    if name == "mc":
        name = "matrixcalculus"
    try:
        return DIALECTS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown dialect {name!r}; known: {', '.join(sorted({*DIALECTS, 'matrixcalculus'}))}"
        ) from None
