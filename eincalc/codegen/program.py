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

It is no simplifier: the rewrites that keep values and make the code cheaper for a size
signature (shared rescaled sums, distribution over sums, shared sub-products) are
:mod:`eincalc.codegen.rewriting`'s; the statements' comments and the ``del`` of array
temporaries no later statement reads (so the peak memory holds only live values) are
:mod:`eincalc.codegen.statements`'.

Only generated source is ever executed; the user's text reaches it only as variable
and dim names, which are validated identifiers, and as comments on single lines.
"""

from __future__ import annotations

import contextlib
import itertools
import keyword
import os
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from eincalc import __version__
from eincalc import algebra as alg
from eincalc import dims as dimsmod
from eincalc._types import Dim, SizeDict
from eincalc.calling import Signature, check_sizes, signature, used_variables
from eincalc.codegen.backends import AUTO, get_backend
from eincalc.codegen.caller import Caller, LibraryCaller
from eincalc.codegen.layouts import transposed_products
from eincalc.codegen.loading import load, release, release_all
from eincalc.codegen.printer import Context, Expr, Printer
from eincalc.codegen.rewriting import Structure, program_roots, root_count, sized_roots
from eincalc.codegen.statements import (
    FORMULA_NODES,
    Formulas,
    Lifetimes,
    statement_lines,
    to_numpy_syntax_bounded,
    tree_sizes,
    truncate,
)
from eincalc.costmodel import price
from eincalc.expr import Array, Const, Delta, Einsum, Node, Window
from eincalc.graph import topo_order
from eincalc.runtime import structured_source
from eincalc.structure import (
    Compressed,
    CompressedSum,
    Kronecker,
    LowRank,
    StructuredSum,
    StructuredTensor,
)

RESERVED_NAMES = frozenset(
    {"numpy", "np", "opt_einsum", "oe", "StructuredTensor", "LowRank", "Kronecker", "StructuredSum", "base64", "zlib",
     "math", "range", "slice", "float"}
)  # fmt: skip
"""Names the generated module uses or may use (modules, and the builtins the function body
calls: ``range`` in col2im loops and Dask's paired gathers, ``slice(None)`` in scatters,
``.astype(float)``); a variable with such a name is renamed."""

GENERATED_NAME = re.compile(r"_[tcr]\d+")  # temporaries, module-level constants (_c0 = …), chunk loops' names
"""Generated temporaries; a variable named like one is renamed (``_t0`` → ``_t0_``)."""

NOMINAL_SIZE = 1000
"""Size assumed for unknown dims when planning the source shown before the first call."""

MAX_VARIANTS = 64
"""Size signatures kept per compiled function: the least recently used is dropped beyond
this, with its generated function and its linecache entry (unless another kept signature
shares the code)."""


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

    def _dtype_reference(self) -> str:
        """The argument whose dtype new arrays take: the first that is an array, not a scalar.

        Through the caller every argument arrives in the call's float type; a module run on
        its own may be handed a Python number for a scalar, which has no dtype.
        """
        names = self._used_names or self.arg_names
        dims = {v.name: v.dims for v in self.signature.variables}
        return next((n for n in names if dims.get(n)), names[0])

    def _generate(self, sizes: Mapping[Dim, int], nominal: bool) -> str:
        roots = sized_roots(self._roots, sizes)
        order = topo_order(roots)
        printer = self._library.printer()
        printer.module(printer.numpy)  # the array module: arguments are its arrays even when no call is needed
        if self.arg_names:  # every argument is an array of the call's float type; new arrays take it
            printer.reference = self._params[self._dtype_reference()]
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
        formula = Formulas(order)
        ctx.describe = lambda node: formula.text(node, ctx.values)
        bases = {id(base): base for base in ctx.scaled_of.values()}  # the shared products
        life = Lifetimes(set(self._params.values()))
        for node in order:
            ctx.lines, ctx.post = [], []
            allocated.clear()
            shared_before = set(ctx.shared)
            expr = printer.print_node(node, ctx)
            block = list(ctx.lines)
            shared = {ctx.shared[k].text: bases[k] for k in ctx.shared if k not in shared_before}
            life.printed(node, block, allocated, shared)
            if expr is not None and expr.inline and not ctx.post:
                # an alias of another value (or a literal): never written in place through this
                # node, unless it was computed in place into an array only it holds
                ctx.values[id(node)] = replace(expr, owned=expr.owned and id(node) in ctx.in_place)
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
                block.extend(statement_lines(f"{target} = {expr.text}", comment if comment != expr.text else ""))
                block.extend(post(target) for post in ctx.post)
                if id(node) in ctx.transposed:  # the name holds the transpose: the value is a view
                    ctx.values[id(node)] = Expr(f"{target}.T", readonly=expr.readonly, inline=True)
                else:
                    ctx.values[id(node)] = Expr(target, owned=expr.owned, readonly=expr.readonly, inline=True)
            life.blocks.append(block)

        results = []
        at = 0
        for c in self._compressed:
            codes = [ctx.values[id(root)].text for root in roots[at : at + root_count(c)]]
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
        tree = tree_sizes(topo_order([*self.outputs, *cores]), FORMULA_NODES)  # one walk for all outputs
        for k, (o, c) in enumerate(zip(self.outputs, self._compressed)):
            if c is None:
                text = truncate(to_numpy_syntax_bounded(o, tree=tree), 90)
            elif isinstance(c, CompressedSum):
                text = truncate(str(c), 90) if all(tree[id(n)] <= FORMULA_NODES for n in c.nodes) else "δ ⊗ … + L Lᵀ"
            else:  # the δ ⊗ core text, when the core is small enough to print
                small = tree[id(c.core)] <= FORMULA_NODES
                text = truncate(str(c) if small else "δ ⊗ " + to_numpy_syntax_bounded(c.core, tree=tree), 90)
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
        outs = "; ".join(truncate(to_numpy_syntax_bounded(o), 60) for o in self.outputs)
        dims = ", ".join(self.dims) or "none"
        params = [*self.arg_names, *(["*", *self._free_dims] if self._free_dims else [])]
        return (
            f"<CompiledFunction {self.name}({', '.join(params)}) -> {outs} | dims {dims} | "
            f"backend {self.backend} | {len(self._variants)} size variant(s)>"
        )


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
