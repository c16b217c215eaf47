"""The printer for array libraries other than NumPy: NumPy's spelling, translated through tables.

The program a backend runs is the NumPy program, statement for statement; only the
spelling changes. :class:`ArrayLibraryPrinter` is the NumPy printer with

* a module per library (``numpy = "jax.numpy"``) and a table of members spelled
  differently (:attr:`~ArrayLibraryPrinter.NAMES`, ``"linalg.slogdet"`` → …) or missing
  (:attr:`~ArrayLibraryPrinter.UNSUPPORTED`: a clear :class:`~eincalc.errors.UnsupportedNodeError`);
* element-wise code translated member by member, or replaced per function
  (:attr:`~ArrayLibraryPrinter.ELEMENTWISE`: ``relu`` → ``torch.clamp({0}, min=0.0)``);
* new arrays created in the arguments' float type (``zeros(shape, dtype=X.dtype)``):
  torch and JAX default to float32, NumPy to float64, and a float32 call must stay float32;
* for libraries whose arrays cannot be written (:attr:`~ArrayLibraryPrinter.in_place` False:
  JAX, Dask), δ ⊗ core values added as an einsum with identity matrices instead of
  written into a diagonal view, and ``exp`` not applied in place.

Each backend module subclasses it with its tables (:mod:`.torch_backend`, …).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from eincalc.algebra import symbols
from eincalc.codegen.numpy_functions import ufunc_into
from eincalc.codegen.numpy_printer import Diagonal, NumPyPrinter
from eincalc.codegen.printer import PRODUCT, SUM, Context, Expr, call, literal
from eincalc.errors import UnsupportedNodeError
from eincalc.expr import Array, Const, Elementwise, Node
from eincalc.functions import get_elementwise

_NUMPY_MEMBER = re.compile(r"\bnumpy\.((?!\d)[\w.]+)(?=\()")


class ArrayLibraryPrinter(NumPyPrinter):
    """NumPy's code for another array library; subclasses set the tables below."""

    name = "array library"
    numpy = "numpy"
    """The module whose members replace NumPy's (``"jax.numpy"``); also what the code imports."""
    NAMES: Mapping[str, str] = {}
    """NumPy member -> the full spelling where it differs (``"inf"`` -> ``"torch.inf"``)."""
    UNSUPPORTED: frozenset[str] = frozenset()
    """NumPy members the library lacks: code needing one is refused."""
    ELEMENTWISE: Mapping[str, tuple[str, tuple[str, ...]]] = {}
    """Element-wise function -> (code template, modules it imports), replacing the translated NumPy code."""
    in_place = True
    chunks = False  # a library's own kernels (and threads) do better than a Python loop over images
    """Whether arrays can be written through views (NumPy, CuPy, torch) or not (JAX, Dask)."""
    ufunc_out = False
    """Whether the library's functions take NumPy's ``out=`` (torch): ``torch.tanh(z, out=z)``,
    and a comparison written straight into a new float array."""

    # -- names --------------------------------------------------------------------------
    def module(self, dotted: str) -> str:
        """``dotted`` as spelled; records the import of the module holding it (``jax.numpy`` for ``jax.numpy.exp``)."""
        if dotted == self.numpy or dotted.startswith(self.numpy + "."):
            self.imports[self.numpy] = None
        else:
            self.imports[dotted.rsplit(".", 1)[0] if "." in dotted else dotted] = None
        return dotted

    def np(self, member: str) -> str:
        if member in self.UNSUPPORTED:
            raise UnsupportedNodeError(f"the {self.name} backend has no equivalent of numpy.{member}")
        return self.module(self.NAMES.get(member, f"{self.numpy}.{member}"))

    # -- new arrays in the arguments' float type -----------------------------------------
    def contiguous(self, view: Expr, order: tuple[int, ...]) -> Expr | None:
        return None  # the library's own contraction reads its window view

    def _print_Array(self, node: Array, ctx: Context) -> Expr:
        # written out in the function, so it takes the call's float type and device
        return self.creation("array", repr(node.data.tolist()))

    def creation(self, member: str, *args: str) -> Expr:
        if member == "array":
            return call(self.np("asarray"), *args, f"dtype={self.dtype()}")
        return call(self.np(member), *args, f"dtype={self.dtype()}")

    def as_float(self, code: str) -> str:
        return f"{code}.astype({self.dtype()})"

    def _function_arg(self, node: Node, ctx: Context) -> Expr:
        if isinstance(node, Const) and not node.dims:
            return call(self.np("asarray"), literal(node.value).text, f"dtype={self.dtype()}")
        return ctx.arg(node)

    # -- element-wise functions ------------------------------------------------------------
    def _print_Elementwise(self, node: Elementwise, ctx: Context) -> Expr:
        if node.fn == "pow":
            return super()._print_Elementwise(node, ctx)
        entry = get_elementwise(node.fn)
        args = [self.constant_arg(a.value, len(node.args)) if isinstance(a, Const) else ctx.arg(a) for a in node.args]
        if all(isinstance(a, Const) for a in node.args):
            args[0] = self._function_arg(node.args[0], ctx)
        template, imports = self.ELEMENTWISE.get(node.fn, (None, ()))
        if template is None and self.ufunc_out:
            into = self._elementwise_in_place(node, entry.code, args, ctx)
            if into is not None:
                return into
            cast = self._comparison_into_new(node, entry.code, args, ctx)
            if cast is not None:
                return cast
        if template is None:
            # the translated code imports the library (recorded by np()); erf's math is overridden
            template = self.translate(entry.code)
            imports = tuple(m for m in entry.imports if m not in ("numpy", "math"))
        for m in imports:
            self.imports[m] = None
        if entry.code_prec == "atom":  # the arguments sit inside call parentheses
            return Expr(template.format(*(a.text for a in args)), owned=True)
        prec = PRODUCT if entry.code_prec == "product" else SUM
        return Expr(template.format(*(a.atom for a in args)), prec, "*" if prec == PRODUCT else "", owned=True)

    def constant_arg(self, value: float, n_args: int) -> Expr:
        """A constant argument of an element-wise function of ``n_args`` arguments (a Python float here)."""
        return literal(value)

    def spelled(self, code: str) -> str:
        return self.translate(code)

    def _comparison_into_new(self, node: Elementwise, code: str, args: list[Expr], ctx: Context) -> Expr | None:
        """``numpy.greater(z, 0.0).astype(float)`` as ``torch.greater(z, 0.0, out=torch.empty_like(z))``, or None.

        For a comparison of one array with a number (relu′, step): one pass, half the time
        of a boolean array converted afterwards on torch.
        """
        into = ufunc_into(code)
        arrays = [e for a, e in zip(node.args, args) if not isinstance(a, Const)]
        if into is None or not code.endswith(".astype(float)") or not node.dims or len(arrays) != 1:
            return None  # against another array (a broadcast, a view) the cast afterwards is faster
        out = call(self.np("empty_like"), arrays[0].text).text
        return Expr(self.spelled(into).format(*(a.text for a in args), out=out), owned=True)

    def translate(self, code: str) -> str:
        """NumPy code of an element-wise function in this library: members and float casts."""
        code = _NUMPY_MEMBER.sub(lambda m: self.np(m[1]), code)
        return code.replace(".astype(float)", self.as_float("")) if ".astype(float)" in code else code

    # -- writes ---------------------------------------------------------------------------
    def _diag_write(self, target: str, info: Diagonal, core: Expr, op: str) -> str:
        if self.in_place:
            return super()._diag_write(target, info, core, op)
        embedded = self.embedding(target, info, core)
        return f"{target} = {embedded}" if op == "=" else f"{target} = {target} + {embedded}"

    def embedding(self, target: str, info: Diagonal, core: Expr) -> str:
        """The δ ⊗ core array of ``info`` (shaped like ``target``): an einsum of the core with identities.

        Labels ``a b a c`` with core ``a c``: ``einsum('ac,ad,b->abdc', core, eye(n), ones(m))``.
        """
        used = set(info.labels)
        fresh = iter([s for s in symbols(len(used) + len(info.labels)) if s not in used])
        first: dict[str, int] = {}
        out: list[str] = []
        specs: list[str] = []
        operands: list[str] = []
        for pos, label in enumerate(info.labels):
            if label not in first:
                first[label] = pos
                out.append(label)
                continue
            twin = next(fresh)
            out.append(twin)
            specs.append(label + twin)
            operands.append(self.creation("eye", f"{target}.shape[{first[label]}]").text)
        for label in info.unique:
            if label not in info.core_idx and info.labels.count(label) == 1:
                specs.append(label)
                operands.append(self.creation("ones", f"({target}.shape[{first[label]}],)").text)
        factor = _number(core.text)
        if factor is None:
            specs.insert(0, "".join(info.core_idx))
            operands.insert(0, core.text)
        text = f"{self.np('einsum')}({','.join(specs) + '->' + ''.join(out)!r}, {', '.join(operands)})"
        return text if factor in (None, 1.0) else f"{literal(factor).atom} * {text}"

    def _subtract_from_in_place(self, constant: float, name: str) -> str | None:
        return None  # torch.subtract takes no number first; a new array is as clear

    def _exp_in_place(self, name: str) -> str:
        if self.in_place:
            return super()._exp_in_place(name)
        return f"{name} = {self.np('exp')}({name})"


def _number(text: str) -> float | None:
    """The value of a float literal, or None for any other code."""
    try:
        return float(text)
    except ValueError:
        return None
