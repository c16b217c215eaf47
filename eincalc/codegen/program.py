"""``compile``: expressions become the source of a standalone Python function, and a callable.

This module owns the *program*: which DAG nodes get a statement (each surviving node
once, shared nodes computed once across all outputs), their names (``_t0``, ``_t1``, …
in topological order, so the source is byte-identical for the same input), the
parameters (the user's variable names, renamed only where they would shadow a name the
code needs), the returned values (compressed δ ⊗ core outputs return their core), the
module around the function, and the per-size-signature cache of compiled variants in
:class:`CompiledFunction`. How a node is spelled is the printer's job
(:mod:`eincalc.codegen.numpy_printer`); how an einsum is split into steps is
:mod:`eincalc.codegen.planning`'s.

It is no simplifier, but it makes three rewrites that keep values (up to rounding). It
shares values equal up to a scale factor (``U @ V.T`` and ``-2.0 * (U @ V.T)``, a sum
and twice that sum), which a value and its gradient produce all the time. And per size
signature, only where the cost model makes it a clear win, it distributes a product
over a sum (``(T - U @ V.T) @ V`` as ``T @ V - U @ (V.T @ V)``) or factors a common
factor out of a sum (``X @ A.T + X @ A`` as ``X @ (A.T + A)``, see
:mod:`eincalc.codegen.factoring`). An array temporary no later statement reads is
deleted (``del``), so the peak memory holds only live values.

Only generated source is ever executed; the user's text reaches it only as variable
and dim names, which are validated identifiers, and as comments on single lines.
"""

from __future__ import annotations

import contextlib
import itertools
import keyword
import math
import os
import re
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from eincalc import __version__
from eincalc import algebra as alg
from eincalc import dims as dimsmod
from eincalc._types import Dim, SizeDict
from eincalc.calling import Signature, check_sizes, signature, used_variables
from eincalc.codegen.backends import AUTO, get_backend
from eincalc.codegen.caller import Caller, LibraryCaller
from eincalc.codegen.factoring import factor_sums
from eincalc.codegen.gram import symmetric_products
from eincalc.codegen.layouts import transposed_products
from eincalc.codegen.loading import load, release, release_all
from eincalc.codegen.printer import Context, Expr, Printer
from eincalc.codegen.sharing import share_subproducts
from eincalc.codegen.sums import nest_sums
from eincalc.costmodel import node_cost, price
from eincalc.expr import Add, Array, Const, Delta, Einsum, Node, Window
from eincalc.graph import rewrite, topo_order
from eincalc.printing import node_line, to_numpy_syntax
from eincalc.rewrite import rebuild, simplify
from eincalc.runtime import structured_source
from eincalc.structure import (
    Compressed,
    CompressedSum,
    Kronecker,
    LowRank,
    StructuredSum,
    StructuredTensor,
    compress,
)

Structure = Compressed | CompressedSum

RESERVED_NAMES = frozenset(
    {"numpy", "np", "opt_einsum", "oe", "StructuredTensor", "LowRank", "Kronecker", "StructuredSum", "base64", "zlib"}
)
"""Names the generated module uses or may use; a variable with such a name is renamed."""

TEMP_NAME = re.compile(r"_t\d+")
GENERATED_NAME = re.compile(r"_[tc]\d+")  # temporaries and module-level constants (_c0 = …)
"""Generated temporaries; a variable named like one is renamed (``_t0`` → ``_t0_``)."""

NOMINAL_SIZE = 1000
"""Size assumed for unknown dims when planning the source shown before the first call."""

MAX_VARIANTS = 64
"""Size signatures kept per compiled function: the least recently used is dropped beyond
this, with its generated function and its linecache entry (unless another kept signature
shares the code)."""

FORMULA_NODES = 40
"""Comments print a node's whole formula while it has at most this many nodes (as a tree)."""


COMMENT_CHARS = 64
LINE_CHARS = 110


@dataclass(frozen=True)
class _Variant:
    """The code for one size signature."""

    sizes: SizeDict
    source: str
    function: Callable[..., Any]


"""A variant found by array shapes alone: the variant, free dim sizes, its size key."""


def compile(  # noqa: A001 - the natural name; Python's builtin stays reachable as builtins.compile
    outputs: Node | Sequence[Node],
    backend: str = "numpy",
    sizes: Mapping[str, int] | None = None,
    dense: bool = False,
    name: str = "f",
) -> CompiledFunction:
    """Generate and compile a Python function computing ``outputs``.

    Args:
        outputs: one expression, or a list of expressions sharing nodes (a value, its
            gradient and its Hessian): shared nodes are computed once.
        backend: the array library the code is written for: ``"numpy"``, ``"torch"``,
            ``"jax"``, ``"dask"``, ``"cupy"`` (:mod:`eincalc.codegen.backends`), or
            ``"auto"``: the library of the arrays of each call. The function then takes
            and returns that library's arrays (NumPy arrays are converted), keeps
            float32, and returns compressed outputs dense.
        sizes: sizes of dims, ``{"n": 1000}``. When every dim has one, the contraction
            order is planned now for these sizes; otherwise at the first call for each
            new size signature (and cached). Given sizes also bind: arrays must agree.
            Dims no variable carries (the m of δ(m) ⊗ core) take their size from here
            or from an int keyword at call time.
        dense: return compressed δ ⊗ core outputs as dense arrays instead of
            :class:`~eincalc.structure.StructuredTensor` objects.
        name: the generated function's name (an identifier).

    Returns:
        A :class:`CompiledFunction`; call it with the outputs' arrays positionally (in
        the order of ``.arg_names``: the declaration order of the function the outputs
        are, or were derived from) or by name.

    Raises:
        ArgumentError: for ``sizes`` of unknown dims or that are not non-negative ints.
        SizeError: for ``sizes`` that contradict a fixed dim.
        ShapeError: when two outputs use one name for variables of different dims.
        UnknownNameError: for an unknown backend.
        BackendUnavailableError: for a backend whose library is not installed (names the extra).
        UnsupportedNodeError: when the backend cannot print a node.

    Examples:
        >>> import numpy as np, eincalc as ec
        >>> X, w = ec.matrix("X", "m n"), ec.vector("w", "n")
        >>> f = compile(X @ w)
        >>> f(np.eye(2), np.array([1.0, 2.0]))
        array([1., 2.])
        >>> print(f.source.split("def ")[1])
        f(X, w):
            _t0 = X @ w
            return _t0
        <BLANKLINE>
    """
    if backend == AUTO:
        from eincalc.codegen.auto import AutoFunction

        return AutoFunction(outputs, sizes=sizes, dense=dense, name=name)  # type: ignore[return-value]
    return CompiledFunction(outputs, backend=backend, sizes=sizes, dense=dense, name=name)


class CompiledFunction:
    """A compiled expression (or list of expressions): call it, read ``.source``, ``.save()`` it.

    Calling: ``f(*arrays, **named_arrays)``, as :mod:`eincalc.calling` describes:
    positional arrays bind to ``arg_names`` (the outputs' signature: a derivative takes
    its function's arrays, in the function's declaration order), keywords by name, and
    an int keyword named after a dim gives that dim's size. Arrays the code does not
    read are optional, but bind the sizes of their dims. Bad calls raise
    :class:`~eincalc.errors.ArgumentError` (a ``TypeError``), disagreeing sizes a
    :class:`~eincalc.errors.SizeError`. float32 arrays give float32 results. A single
    expression returns its value; a list returns a tuple. A compressed output (δ ⊗ core)
    is a :class:`~eincalc.structure.StructuredTensor` unless compiled with ``dense=True``.

    The generated function takes the same arrays positionally (all of them: it may read
    a size from one it does not compute with), then the sizes of dims no argument
    carries as keywords. Its parameters are the variable names, except that
    a name the code needs (``numpy``, ``np``, ``StructuredTensor``, ``_t<k>``) gets a trailing
    ``_`` in the source; calling the CompiledFunction by keyword uses the user's names.
    Calls with float64 arrays of shapes seen before skip the size checks (the shapes
    were checked the first time; :mod:`eincalc.codegen.caller`).

    Attributes:
        outputs: the expressions, as given.
        signature: the :class:`~eincalc.calling.Signature` (variables in positional order).
        arg_names: the signature's names.
        dims: every dim the expressions use, in order of first appearance.
        name: the generated function's name.
        backend: the printer used.
        dense: whether compressed outputs are expanded.
    """

    def __init__(
        self,
        outputs: Node | Sequence[Node],
        backend: str = "numpy",
        sizes: Mapping[str, int] | None = None,
        dense: bool = False,
        name: str = "f",
    ) -> None:
        self._single = isinstance(outputs, Node)
        out_list = [outputs] if isinstance(outputs, Node) else list(outputs)
        if not out_list:
            raise ValueError("compile needs at least one expression")
        for k, o in enumerate(out_list):
            if not isinstance(o, Node):
                raise TypeError(f"compile: output {k} is not an eincalc expression but {type(o).__name__}")
        library = get_backend(backend)
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"compile: function name {name!r} is not a valid identifier")
        self._reserved = RESERVED_NAMES | library.reserved  # `torch` is a module name in torch code
        if name in self._reserved or GENERATED_NAME.fullmatch(name):
            raise ValueError(f"compile: function name {name!r} is reserved for generated code")
        self.outputs: tuple[Node, ...] = tuple(out_list)
        self.backend = backend
        self._library = library
        dense = dense or library.dense
        self.dense = dense
        self.name = name

        self._roots, self._compressed = program_roots(self.outputs, dense)
        roots = self._roots
        everything = topo_order([*self.outputs, *roots])
        self.signature: Signature = signature(self.outputs)  # a name with two dims raises here
        used = {v.name for v in used_variables(self.outputs)}
        variables = {v.name: v for v in self.signature.variables if v.name in used}
        self.arg_names: tuple[str, ...] = self.signature.names
        self._used_names = tuple(variables)
        # every argument; sizes are read from the arrays the code reads first
        dropped = [v for v in self.signature.variables if v.name not in used]
        self._var_dims = tuple((v.name, v.dims) for v in [*variables.values(), *dropped])
        node_dims = list(dict.fromkeys(d for n in everything for d in n.dims))
        # a derived dim (m*n, n-1) is computed from its base dims, which the code needs too
        bases = [b for d in node_dims if dimsmod.is_derived(d) for b in dimsmod.base_dims(d)]
        self.dims: tuple[Dim, ...] = tuple(dict.fromkeys([*node_dims, *bases]))
        carried = {d for _, dims in self._var_dims for d in dims}
        self._free_dims = tuple(
            d for d in self.dims if d not in carried and not dimsmod.is_literal(d) and not dimsmod.is_derived(d)
        )
        self._key_dims = tuple(d for d in self.dims if not dimsmod.is_literal(d) and not dimsmod.is_derived(d))
        self._params, self._dim_code = self._names()
        self._fixed = check_sizes(sizes, self.dims)

        self._variants: OrderedDict[tuple[int, ...], _Variant] = OrderedDict()  # least recently used first
        self._caller = (Caller if backend == "numpy" else LibraryCaller.for_backend(library))(
            self.signature,
            self._used_names,
            self.dims,
            self._fixed,
            {d: self._dim_code[d] for d in self._free_dims},
            f"{self.name}()",
            self._variant_for,
            self._use,
            self._finish,
            self._single,
            [n for n in everything if isinstance(n, (Array, Window))],
        )
        self._plain = all(c is None for c in self._compressed)
        # by source: equal code compiles once; (function, linecache name), released when unused
        self._functions: dict[str, tuple[Callable[..., Any], str]] = {}
        weakref.finalize(self, release_all, self._functions)
        planned = {
            d: self._fixed.get(d, int(d) if dimsmod.is_literal(d) else NOMINAL_SIZE)
            for d in self.dims
            if not dimsmod.is_derived(d)
        }
        planned = dimsmod.with_derived(planned, self.dims)
        complete = all(d in self._fixed for d in self._key_dims)
        self._last = self._build(planned, nominal=not complete)
        if complete:
            self._variants[self._key(planned)] = self._last

    # -- names and sizes ----------------------------------------------------------------
    def _names(self) -> tuple[dict[str, str], dict[Dim, str]]:
        """Parameter names (hygienic) and the code spelling each dim's size."""
        taken: set[str] = set()

        def fresh(base: str) -> str:
            p = base
            while p in self._reserved or GENERATED_NAME.fullmatch(p) or p in taken:
                p += "_"
            taken.add(p)
            return p

        params = {v: fresh(v) for v in self.arg_names}
        dim_code: dict[Dim, str] = {}
        for v, dims in self._var_dims:
            for axis, d in enumerate(dims):
                dim_code.setdefault(d, d if dimsmod.is_literal(d) else f"{params[v]}.shape[{axis}]")
        for d in self.dims:
            if d not in dim_code and not dimsmod.is_derived(d):
                dim_code[d] = d if dimsmod.is_literal(d) else fresh(d)
        for d in self.dims:
            if d not in dim_code:
                dim_code[d] = dimsmod.derived_code(d, dim_code)
        return params, dim_code

    def _key(self, sizes: Mapping[Dim, int]) -> tuple[int, ...]:
        return tuple(sizes[d] for d in self._key_dims)

    # -- code generation ----------------------------------------------------------------
    def _build(self, sizes: Mapping[Dim, int], nominal: bool) -> _Variant:
        source = self._generate(sizes, nominal)
        loaded = self._functions.get(source)
        if loaded is None:
            loaded = self._functions[source] = load(source, self.name)
        return _Variant(dict(sizes), source, loaded[0])

    def _remember(self, key: tuple[int, ...], variant: _Variant) -> None:
        """Keep ``variant`` for ``key``; past MAX_VARIANTS drop the least recently used."""
        self._variants[key] = variant
        if len(self._variants) <= MAX_VARIANTS:
            return
        self._variants.popitem(last=False)
        # copies and pop(…, None): another thread calling this function may change them meanwhile
        kept = {id(v) for v in list(self._variants.values())}
        self._caller.keep_only(kept)
        live = {v.source for v in list(self._variants.values())} | {self._last.source, variant.source}
        dead = [self._functions.pop(source, None) for source in list(self._functions) if source not in live]
        release([loaded[1] for loaded in dead if loaded is not None])

    def _generate(self, sizes: Mapping[Dim, int], nominal: bool) -> str:
        roots = sized_roots(self._roots, sizes)
        order = topo_order(roots)
        printer = self._library.printer()
        printer.module(printer.numpy)  # the array module: arguments are its arrays even when no call is needed
        if self.arg_names:  # every argument is an array of the call's float type; new arrays take it
            printer.reference = self._params[(self._used_names or self.arg_names)[0]]
        counter = itertools.count()
        allocated: list[str] = []  # temporaries named while printing the current node

        def new_temp() -> str:
            allocated.append(f"_t{next(counter)}")
            return allocated[-1]

        consumers: dict[int, list[Node]] = {}
        for node in order:
            for child in node.children:
                consumers.setdefault(id(child), []).append(node)
        ctx = Context(
            values={},
            sizes=sizes,
            dim_code=self._dim_code,
            consumers=consumers,
            roots={id(r) for r in roots},
            new_temp=new_temp,
            params=self._params,
            scaled_of=_shared_products(order),
        )
        fixed = ctx.roots | set(ctx.scaled_of) | {id(base) for base in ctx.scaled_of.values()}
        ctx.transpose = transposed_products(order, consumers, fixed)
        formula = _Formulas(order)
        ctx.describe = lambda node: formula.text(node, ctx.values)
        bases = {id(base): base for base in ctx.scaled_of.values()}  # the shared products
        life = _Lifetimes(set(self._params.values()))
        for node in order:
            ctx.lines, ctx.post = [], []
            allocated.clear()
            shared_before = set(ctx.shared)
            expr = printer.print_node(node, ctx)
            block = list(ctx.lines)
            shared = {ctx.shared[k].text: bases[k] for k in ctx.shared if k not in shared_before}
            life.printed(node, block, allocated, shared)
            if expr is not None and expr.inline and not ctx.post:
                # an alias of another value (or a literal): never written in place through this node
                ctx.values[id(node)] = replace(expr, owned=False)
                expr = None
            elif expr is not None and _is_view_of_name(node, expr, ctx):
                # A.T of an argument or a temporary: spelled where it is used, no name of its own
                ctx.values[id(node)] = replace(expr, owned=False, inline=True)
                expr = None
            if expr is not None:
                if ctx.is_root(node) and expr.readonly:
                    expr = printer.copy_of(expr)  # hand out a writeable array, not a view
                target = ctx.new_temp()
                life.named(target, node, expr)
                # a negated node's name holds minus its value
                comment = expr.note + formula.text(node, ctx.values, ctx.negated, id(node) in ctx.negated)
                if id(node) in ctx.transposed:
                    comment = "transpose of " + comment
                block.extend(_statement(f"{target} = {expr.text}", comment if comment != expr.text else ""))
                block.extend(post(target) for post in ctx.post)
                if id(node) in ctx.transposed:  # the name holds the transpose: the value is a view
                    ctx.values[id(node)] = Expr(f"{target}.T", readonly=expr.readonly, inline=True)
                else:
                    ctx.values[id(node)] = Expr(target, owned=expr.owned, readonly=expr.readonly, inline=True)
            life.blocks.append(block)

        results = []
        at = 0
        for c in self._compressed:
            codes = [ctx.values[id(root)].text for root in roots[at : at + _root_count(c)]]
            at += len(codes)
            if c is None:
                results.append(codes[0])
            elif isinstance(c, CompressedSum):
                results.append(c.code(codes, self._shape_code(c.expr.dims), self._structured_code))
            else:
                results.append(self._structured_code(c, codes[0]))
        if self._single:
            final = f"return {results[0]}"
        else:
            final = f"return {', '.join(results)}" + ("," if len(results) == 1 else "")
        return self._module(printer, life.body(final), sizes, nominal, roots)

    def _shape_code(self, dims: Sequence[Dim]) -> str:
        return "(" + ", ".join(self._dim_code[d] for d in dims) + ("," if len(dims) == 1 else "") + ")"

    def _structured_code(self, c: Compressed, code: str) -> str:
        if not c.is_compressed:
            return code
        letters = {lab: chr(ord("a") + k) for k, lab in enumerate(dict.fromkeys(c.labels))}
        core_labels = "".join(letters[lab] for lab in c.core_labels)
        labels = "".join(letters[lab] for lab in c.labels)
        return f"StructuredTensor({code}, {core_labels!r}, {labels!r}, {self._shape_code(c.expr.dims)})"

    def _module(
        self, printer: Printer, body: list[str], sizes: Mapping[Dim, int], nominal: bool, roots: list[Node]
    ) -> str:
        params = [self._params[v] for v in self.arg_names]
        free = [self._dim_code[d] for d in self._free_dims]
        signature = ", ".join(params + (["*", *free] if free else []))
        described = []
        cores = [n for c in self._compressed if c is not None for n in c.nodes]
        tree = _tree_sizes(topo_order([*self.outputs, *cores]), FORMULA_NODES)  # one walk for all outputs
        for k, (o, c) in enumerate(zip(self.outputs, self._compressed)):
            if c is None:
                text = _truncate(to_numpy_syntax_bounded(o, tree=tree), 90)
            elif isinstance(c, CompressedSum):
                text = _truncate(str(c), 90) if all(tree[id(n)] <= FORMULA_NODES for n in c.nodes) else "δ ⊗ … + L Lᵀ"
            else:  # the δ ⊗ core text, when the core is small enough to print
                small = tree[id(c.core)] <= FORMULA_NODES
                text = _truncate(str(c) if small else "δ ⊗ " + to_numpy_syntax_bounded(c.core, tree=tree), 90)
            kind = "StructuredSum" if isinstance(c, CompressedSum) else "StructuredTensor"
            how = "" if c is None else f" as a {kind}"
            described.append(f"    {'' if self._single else f'[{k}] '}{text}  : ({', '.join(o.dims)}){how}")
        planned = ", ".join(f"{d}={sizes[d]}" for d in self._key_dims)
        report = price(roots, sizes)
        doc = [
            f"{self.name}({signature}): generated by eincalc {__version__}.",
            "",
            "Returns:",
            *described,
            "",
            (f"Contraction order planned for {'nominal sizes ' if nominal else ''}{planned}; " if planned else "")
            + "the code is correct for any sizes.",
            f"At these sizes about {report.flops:.2e} flops; the largest temporary holds "
            f"{report.largest_intermediate:,} entries (ec.cost).",
        ]
        if any(c is not None for c in self._compressed):
            doc += ["A compressed result (δ ⊗ core, or a sum with low-rank terms) is a StructuredTensor",
                    "(StructuredSum): t @ v, t.solve(b), t.dense() or numpy.asarray(t) use the structure",
                    "(the classes are defined below)."]  # fmt: skip
        unread = [self._params[v] for v in self.arg_names if v not in self._used_names]
        if unread:
            doc.append(f"It takes the arrays of the function it was derived from; {', '.join(unread)} only give sizes.")
        doc.append(f"Needs only {', '.join(sorted(printer.imports)) or 'Python'}.")
        doc_text = "\n".join(doc).replace("\\", "\\\\").replace('"""', "'''")
        lines = [f'"""{doc_text}\n"""', "", *printer.import_lines()]
        if printer.constant_lines:  # constant arrays, built once when the module loads
            lines += ["", *printer.constant_lines]
        if any(c is not None for c in self._compressed):
            lines += ["", "", *structured_source().splitlines()]
        lines += ["", "", f"def {self.name}({signature}):"]
        lines += [f"    {line}" for line in body]
        return "\n".join(lines) + "\n"

    # -- calling ------------------------------------------------------------------------
    def __call__(self, /, *arrays: object, **named_arrays: object) -> Any:
        return self._caller(arrays, named_arrays)

    def _variant_for(self, sizes: SizeDict) -> _Variant:
        """The code for ``sizes`` (every dim), planned on first use and cached."""
        key = self._key(sizes)
        variant = self._variants.get(key)
        if variant is None:
            variant = self._build(sizes, nominal=False)
            self._remember(key, variant)
        else:
            with contextlib.suppress(KeyError):  # another thread may have just dropped it
                self._variants.move_to_end(key)
        return variant

    def _use(self, variant: _Variant) -> Callable[..., Any]:
        self._last = variant
        return variant.function

    def _finish(self, result: Any) -> Any:
        if self._plain:
            return result
        if self._single:
            return _structured(result, self._compressed[0])
        return tuple(_structured(r, c) for r, c in zip(result, self._compressed))

    # -- inspection -----------------------------------------------------------------------
    @property
    def source(self) -> str:
        """The generated module for the last size signature called (or planned at compile time).

        Before the first call, and without complete ``sizes``, it is planned for nominal
        sizes; the code is correct for any sizes, only its contraction order may change.
        """
        return self._last.source

    @property
    def variants(self) -> dict[tuple[tuple[Dim, int], ...], str]:
        """The source for every size signature seen so far, keyed by ``((dim, size), …)``."""
        return {tuple(zip(self._key_dims, key)): v.source for key, v in self._variants.items()}

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write :attr:`source` as a module that imports nothing but its array library; returns the path."""
        path = os.fspath(path)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.source)
        return path

    def __repr__(self) -> str:
        outs = "; ".join(_truncate(to_numpy_syntax_bounded(o), 60) for o in self.outputs)
        dims = ", ".join(self.dims) or "none"
        params = [*self.arg_names, *(["*", *self._free_dims] if self._free_dims else [])]
        return (
            f"<CompiledFunction {self.name}({', '.join(params)}) -> {outs} | dims {dims} | "
            f"backend {self.backend} | {len(self._variants)} size variant(s)>"
        )


# --------------------------------------------------------------------------------------
# the program's DAG: what is computed, before and after the sizes are known
# --------------------------------------------------------------------------------------
def program_roots(outputs: Sequence[Node], dense: bool = False) -> tuple[list[Node], list[Structure | None]]:
    """The nodes a program computes for ``outputs``, and the compression of each output.

    Outputs are simplified (stable forms: softplus for ``log(1 + exp(z))``, logsumexp, …:
    same values, no overflow); a compressed output (δ ⊗ core) computes only its core
    unless ``dense``; sums equal up to a scale factor are shared.
    """
    compressed: list[Structure | None] = []
    roots: list[Node] = []
    for given in outputs:
        o = simplify(given)
        c = None if dense else compress(o)
        if c is not None and c.is_compressed:
            compressed.append(c)
            roots.extend(c.nodes)  # a δ ⊗ core's core; a sum's cores, factors and weights
        else:
            compressed.append(None)
            roots.append(o)
    return _share_scaled_sums(roots), compressed


def _root_count(c: Structure | None) -> int:
    """How many roots of the program one output takes."""
    return 1 if c is None else len(c.nodes)


def sized_roots(roots: list[Node], sizes: Mapping[Dim, int]) -> list[Node]:
    """``roots`` rewritten for one size signature: the DAG the generated code computes.

    Products are distributed over sums, or common factors taken out of sums, where the
    cost model makes that a clear win for these sizes; then wide products become chains
    over shared sub-products (:mod:`eincalc.codegen.sharing`). Values are unchanged.
    """
    cost = _Estimate(sizes)
    roots = _distribute_products(roots, cost)
    # Then the mirror image, X @ A.T + X @ A as X @ (A.T + A). With the same costs and
    # a clear win required both ways, it never undoes a distribution, but it may
    # improve on one: (X @ A + X @ B) @ w → X @ (A @ w) + X @ (B @ w) → X @ (A @ w + B @ w).
    roots = factor_sums(roots, cost)
    # Then, as it builds pairwise products the algebra would flatten again: wide
    # products become chains over sub-products shared by all outputs (backprop's signals).
    roots = share_subproducts(roots, sizes)
    # Then Mᵀ D M with D ≥ 0 as a Gram product of M √D (BLAS syrk, half the flops).
    roots = symmetric_products(roots)
    # Last: a sum holding another sum's terms adds to it (a residual network's h + f).
    return nest_sums(roots)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _structured(value: Any, c: Structure | None) -> Any:
    """The generated module's structured classes as eincalc's (the same classes, with eincalc's errors)."""
    if c is None:
        return value
    if isinstance(c, CompressedSum):
        return StructuredSum(tuple(_as_eincalc(p) for p in value.parts))
    return _as_eincalc(value)


def _as_eincalc(value: Any) -> Any:
    if hasattr(value, "core_labels"):
        return StructuredTensor(value.core, value.core_labels, value.labels, value.shape)
    if hasattr(value, "weights"):
        return LowRank(value.factor, value.weights, value.coef, value.shape)
    if hasattr(value, "positions"):
        return Kronecker(value.factors, value.positions, value.coef, value.shape)
    return value



def _share_scaled_sums(roots: list[Node]) -> list[Node]:
    """Rewrite a sum that is ``c ·`` another sum of the DAG as ``c ·`` that sum.

    ``2.0 * T - 2.0 * (U @ V.T)`` next to ``T - U @ V.T`` (a gradient next to its loss)
    becomes ``2.0 * (T - U @ V.T)``: the smart constructors then move the 2.0 into the
    consuming product, onto its smallest array, and the n×m sum is computed once. Only
    exact rescalings (the same interned node) are shared, so values do not change
    beyond rounding of the scale factor.
    """
    order = topo_order(roots)
    present = {id(n) for n in order}

    def bases(s: Add) -> frozenset[int]:
        return frozenset(id(alg.split_coef(t)[1]) for t in s.terms)

    # A rescaled sum has the same terms up to their coefficients: only sums whose term
    # set another sum shares can have a partner, and only those are tried.
    seen = Counter(bases(n) for n in order if isinstance(n, Add))

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        new = rebuild(node, children)
        if isinstance(new, Add):
            key = bases(new)
            if new is not node:
                seen[key] += 1
            if seen[key] > 1:
                c, _ = alg.split_coef(new.terms[0])
                for factor in (c, -c) if c != 0.0 else ():
                    if factor == 1.0:
                        continue
                    candidate = alg.add([alg.scale(t, 1.0 / factor) for t in new.terms])
                    if id(candidate) in present:
                        return alg.scale(candidate, factor)
        present.add(id(new))
        return new

    return rewrite(roots, rule)


ENTRY_COST = 10
"""Cost of one entry of a new array, in flops (allocating, writing and reading it again).

BLAS flops are much cheaper than fresh memory (about 2 s per GiB here), so this is low;
it only has to rank ``(T - U @ V.T) @ V`` (an n×m temporary) above ``T @ V - U @ (V.T @ V)``.
"""


class _Estimate:
    """Flops of computing a node from its children plus ``ENTRY_COST`` per new entry, for ``sizes``.

    A transpose or diagonal of one array is a view (``A.T``): free. Memoised per node
    (the node is kept, so its id stays its own): the rewrites price the same terms often.
    """

    def __init__(self, sizes: Mapping[Dim, int]) -> None:
        self.sizes = dict(sizes)
        self._memo: dict[int, tuple[Node, float]] = {}

    def __call__(self, node: Node) -> float:
        hit = self._memo.get(id(node))
        if hit is not None:
            return hit[1]
        if (
            isinstance(node, Einsum)
            and len(node.operands) == 1
            and node.coef == 1.0
            and not isinstance(node.operands[0], (Delta, Const))
            and set(node.in_idx[0]) == set(node.out_idx)
        ):
            value = 0.0
        else:
            c = node_cost(node, self.sizes)
            value = float(c.flops + ENTRY_COST * c.size)
        self._memo[id(node)] = (node, value)
        return value


def _distribute_products(roots: list[Node], cost: _Estimate) -> list[Node]:
    """Distribute products over sums they alone use, where that is cheaper for the sizes of ``cost``.

    ``-2.0 * ((T - U @ V.T) @ V)`` becomes ``-2.0 * (T @ V) + 2.0 * (U @ (V.T @ V))`` for
    n, m ≫ k: the n×m sum and its n×m product term are never formed. A sum some other
    node (or an output) needs is left alone: it is computed anyway. The decision uses
    ``cost`` (:func:`eincalc.costmodel.node_cost` with ``ENTRY_COST`` per entry of each
    new array), so it can differ between size signatures (all dims 1000: no change).
    """
    order = topo_order(roots)
    uses: dict[int, int] = {}
    for node in order:
        for child in node.children:
            uses[id(child)] = uses.get(id(child), 0) + 1
    root_ids = {id(r) for r in roots}

    def alone(node: Node) -> bool:
        return uses.get(id(node), 0) == 1 and id(node) not in root_ids

    def distributed(node: Einsum, operands: Sequence[Node], k: int, terms: Sequence[Node]) -> list[Node]:
        ops = list(operands)
        return [alg.einsum([*ops[:k], t, *ops[k + 1 :]], node.in_idx, node.out_idx, node.coef) for t in terms]

    choice: dict[int, int] = {}
    for node in order:
        if not isinstance(node, Einsum) or any(isinstance(op, Delta) for op in node.operands):
            continue
        best = 0.0
        for k, s in enumerate(node.operands):
            if not isinstance(s, Add) or not alone(s):
                continue
            before = cost(node) + cost(s) + sum(cost(t) for t in s.terms if isinstance(t, Einsum) and alone(t))
            adding = (len(s.terms) - 1 + ENTRY_COST) * math.prod(cost.sizes[d] for d in node.dims)
            if adding >= 0.8 * before or before - adding <= best:
                continue  # the sum of the distributed terms alone loses: no need to build them
            after = sum(cost(t) for t in distributed(node, node.operands, k, s.terms)) + adding
            if after < 0.8 * before and before - after > best:  # a clear win only
                best, choice[id(node)] = before - after, k
    if not choice:
        return roots

    def rule(node: Node, children: tuple[Node, ...]) -> Node:
        k = choice.get(id(node))
        if k is None:
            return rebuild(node, children)
        assert isinstance(node, Einsum)
        s = children[k]
        terms = s.terms if isinstance(s, Add) else (s,)
        return alg.add(distributed(node, children, k, terms))

    return rewrite(roots, rule)


def _is_view_of_name(node: Node, expr: Expr, ctx: Context) -> bool:
    """True for a transpose (``A.T``) of a named value that needs no statement of its own.

    Einsums flatten their operands, so such a node is only ever a term of a sum or the
    argument of a function, which read it in place; an output still gets its name.
    """
    return (
        isinstance(node, Einsum)
        and len(node.operands) == 1
        and node.coef == 1.0
        and len(node.in_idx[0]) == len(node.out_idx)
        and set(node.in_idx[0]) == set(node.out_idx)
        and not isinstance(node.operands[0], (Const, Delta))
        and ctx.values.get(id(node.operands[0]), Expr("")).inline
        and not ctx.is_root(node)
        and not ctx.lines
        and not ctx.post
        and not expr.owned
    )


class _Lifetimes:
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


def _shared_products(order: list[Node]) -> dict[int, Node]:
    """Einsum nodes that are ``coef ·`` one product, for products met more than once.

    Maps each such node (by ``id``) to the product with coefficient 1 (an interned node,
    maybe not in the DAG itself). Products with unit tensors keep their own code, as
    their value is a diagonal embedding.
    """
    groups: dict[int, list[Node]] = {}
    bases: dict[int, Node] = {}
    for node in order:
        if isinstance(node, Einsum) and not any(isinstance(op, Delta) for op in node.operands):
            base = alg.split_coef(node)[1]  # remembered per node: sums split the same products
            if isinstance(base, Einsum):  # a bare transpose-free single operand is no product
                groups.setdefault(id(base), []).append(node)
                bases[id(base)] = base
    return {id(n): bases[key] for key, members in groups.items() if len(members) > 1 for n in members}


def _negated(formula: str) -> str:
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


def _statement(code: str, comment: str) -> list[str]:
    """``code`` with its comment: trailing when the line stays short, else on the line above."""
    if not comment:
        return [code]
    if len(code) + len(comment) + 8 <= LINE_CHARS:
        return [f"{code}  # {comment}"]
    return [f"# {comment}", code]


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line, whatever the printer did
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_numpy_syntax_bounded(node: Node, limit: int = FORMULA_NODES, tree: Mapping[int, int] | None = None) -> str:
    """``to_numpy_syntax(node)`` when the formula is small as a tree, else its top node.

    NumPy syntax repeats shared sub-expressions, so the text of a deep DAG can grow
    exponentially; past ``limit`` tree nodes only the top node is shown. ``tree`` is a
    table of :func:`_tree_sizes` (at this limit) that covers ``node``, if one was made.
    """
    size = tree if tree is not None else _tree_sizes(topo_order(node), limit)
    if size[id(node)] <= limit:
        return to_numpy_syntax(node)
    return node_line(node, [_leaf_text(c) for c in node.children])


WIDE_EINSUM = 5
"""Einsums with more operands are not printed in NumPy syntax (its search grows factorially)."""


def _tree_sizes(order: list[Node], limit: int, known: Mapping[int, int] | None = None) -> dict[int, int]:
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


class _Formulas:
    """Comment text per node: the formula (truncated), or its top node for large DAGs."""

    def __init__(self, order: list[Node]) -> None:
        self.size = _tree_sizes(order, FORMULA_NODES)

    def text(self, node: Node, values: Mapping[int, Expr], negated: Container[int] = (), minus: bool = False) -> str:
        """The comment for ``node`` (for ``-node`` with ``minus``); children in ``negated`` hold minus their value."""
        if id(node) not in self.size:  # a node built during code generation: size what is new
            new = topo_order(node, stop=lambda n: id(n) in self.size)
            self.size.update(_tree_sizes(new, FORMULA_NODES, self.size))
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
        return _truncate(_negated(text) if minus else text, COMMENT_CHARS)
