"""PyTorch: NumPy's program in torch's spelling (CPU, or the device of the tensors passed).

torch differs from NumPy in names and keywords, not in what it can do: axes are
permuted with ``.permute``, maxima are ``torch.amax``, ``tensordot`` takes ``dims=``,
copies are ``.clone()``, binary functions want tensors, not Python floats. Sliding
windows are torch's convolutions where a product is one (``conv2d``, and
``torch.nn.grad.conv2d_input``/``conv2d_weight`` for its gradients:
:mod:`.torch_convolutions`), else ``Tensor.unfold`` views of the padded input
(``torch.nn.functional.pad``), as NumPy's are ``sliding_window_view``. A gather's
reverse rule with repeated rows adds them with ``Tensor.index_add_`` (NumPy's
``numpy.add.at``).
"""

from __future__ import annotations

import re

from eincalc.codegen.backends.array_printer import ArrayLibraryPrinter
from eincalc.codegen.backends.torch_convolutions import convolution_call
from eincalc.codegen.planning import Plan, Step, spec_of
from eincalc.codegen.printer import ATOM, Context, Expr, binary, call, literal
from eincalc.codegen.windows import Lowering, exact_tiling
from eincalc.errors import UnsupportedNodeError
from eincalc.expr import Einsum, Shift

_IndexTuple = tuple[str, ...]
_ONE_ARGUMENT = re.compile(r"numpy\.(\w+)\(\{0\}, out=\{out\}\)")
_TENSOR_METHODS = frozenset(
    {"tanh_", "exp_", "log_", "sqrt_", "sigmoid_", "sin_", "cos_", "abs_", "expm1_", "log1p_", "square_",
     "reciprocal_", "neg_", "sign_", "arctan_", "sinh_", "cosh_"}
)  # fmt: skip
"""In-place tensor methods of one-argument element-wise functions (NumPy's names, which torch shares)."""


class TorchPrinter(ArrayLibraryPrinter):
    """Prints programs for ``torch``."""

    name = "torch"
    numpy = "torch"
    permute = "permute"
    ufunc_out = True
    UNSUPPORTED = frozenset({"concatenate", "cumprod"})  # the adjugate's SVD form only
    NAMES = {"equal": "torch.eq"}  # torch.equal compares whole tensors (one bool), numpy.equal entries
    ELEMENTWISE = {
        "relu": ("torch.clamp({0}, min=0.0)", ()),
        "softplus": ("torch.logaddexp(torch.zeros_like({0}), {0})", ()),
        "erf": ("torch.special.erf({0})", ()),
    }

    # In-place forms torch's autograd accepts: a tensor computed from arguments that require
    # grad is written by its in-place method (``z.tanh_()``), never through ``out=`` (which
    # autograd refuses); comparisons, which have no derivative, may take ``out=``.
    def written_into(self, into: str, args: list[Expr], out: Expr) -> str | None:
        m = _ONE_ARGUMENT.fullmatch(into)
        if m is None or len(args) != 1 or f"{m[1]}_" not in _TENSOR_METHODS:
            return None
        return f"{out.atom}.{m[1]}_()"

    def maximum_into(self, target: str, other: str) -> str:
        return f"{target} = {self.np('maximum')}({target}, {other})"

    def _exp_in_place(self, name: str) -> str:
        return f"{name}.exp_()"

    def constant_arg(self, value: float, n_args: int) -> Expr:
        if n_args == 1:
            return literal(value)
        return call(self.np("as_tensor"), literal(value).text, f"dtype={self.dtype()}")  # torch.maximum(x, 0.0) fails

    def creation(self, member: str, *args: str) -> Expr:
        if member == "eye" and len(args) == 3:  # torch.eye has no diagonal offset: compare positions
            rows, cols, k = args
            offset = k.removeprefix("k=")
            return Expr(
                self.as_float(f"({self.np('arange')}({rows})[:, None] + ({offset}) == {self.np('arange')}({cols}))"),
                owned=True,
            )
        made = super().creation(member, *args)
        if self.reference is None:
            return made
        return Expr(f"{made.text[:-1]}, device={self.reference}.device)", owned=True)  # the arguments' GPU, if any

    def as_float(self, code: str) -> str:
        if self.reference is None:
            return f"{code}.to({self.dtype()})"
        return f"{code}.to({self.reference}.device, {self.dtype()})"

    def copy_of(self, e: Expr) -> Expr:
        return Expr(f"{e.atom}.clone()", owned=True)

    def _reduce_max(self, x: Expr, axis: object, keepdims: bool, identity: bool = True) -> str:
        args = [x.text] + ([] if axis is None else [f"dim={axis}"]) + (["keepdim=True"] if keepdims else [])
        return f"{self.np('amax')}({', '.join(args)})"

    def _unary_prod(self, x: Expr, axis: object, ctx: Context) -> Expr:
        if axis is None:
            return Expr(f"{x.atom}.prod()", owned=True)
        axes = sorted(axis if isinstance(axis, tuple) else (axis,), reverse=True)  # torch: one axis per call
        return Expr(x.atom + "".join(f".prod({a})" for a in axes), owned=True)

    def _unary_triu(self, x: Expr, k: object, ctx: Context) -> Expr:
        return call(self.np("triu"), x.text, *([f"diagonal={k}"] if k else []))

    def _unary_tril(self, x: Expr, k: object, ctx: Context) -> Expr:
        return call(self.np("tril"), x.text, *([f"diagonal={k}"] if k else []))

    def _unary_adjugate(self, x: Expr, axis: int | None, ctx: Context) -> Expr:
        raise UnsupportedNodeError("the torch backend has no code for adjugate; use backend='numpy' or 'jax'")

    def print_windowed(self, node: Einsum, low: Lowering, coef: float, ctx: Context) -> Expr:
        """A convolution, its input or its weight gradient as torch's kernel; other window products as NumPy's."""
        conv = convolution_call(node, low, coef, ctx, self.np)
        return conv if conv is not None else super().print_windowed(node, low, coef, ctx)

    def _window(self, e: Expr, axes: list[int], ndim: int, shifts: list[Shift], ctx: Context) -> Expr:
        """``e`` with each axis of ``axes`` turned into window starts, window offsets appended in that order.

        ``pad(X, …).unfold(2, 3, 1).unfold(3, 3, 1)``; strides are unfold's steps, dilations
        a step slice of the appended offsets. Exact tilings (pooling) stay reshapes.
        """
        if exact_tiling(shifts):
            return self._tiles(e, axes, ndim, shifts, ctx)
        text = e.text
        pad = {a: s.padding for a, s in zip(axes, shifts) if s.padding}
        if pad:  # torch's pad lists (before, after) from the last axis backwards
            last = max(pad)
            widths = ", ".join(f"{pad.get(a, 0)}, {pad.get(a, 0)}" for a in range(last, -1, -1))
            text = f"{self.np('nn.functional.pad')}({text}, ({widths}))"
        view = text if pad else e.atom
        for a, s in zip(axes, shifts):
            view += f".unfold({a}, {s.dilation * (s.kernel - 1) + 1}, {s.stride})"
        offsets = [f"::{s.dilation}" if s.dilation != 1 else ":" for s in shifts]
        while offsets and offsets[-1] == ":":
            offsets.pop()
        if offsets:
            view += f"[{', '.join([':'] * ndim + offsets)}]"
        return ctx.temp(Expr(view, ATOM, readonly=True))

    def _step(self, step: Step, args: list[Expr], idx: list[_IndexTuple], plan: Plan, ctx: Context) -> Expr:
        if step.op == "einsum":
            return call(self.np("einsum"), repr(spec_of(idx, step.out)), args[0].text, args[1].text)
        if step.op == "tensordot":
            dims = f"dims=({list(step.axes[0])}, {list(step.axes[1])})"
            return call(self.np("tensordot"), args[0].text, args[1].text, dims)
        if step.op == "vdot":  # torch.vdot takes vectors only; NumPy's flattens
            return call(self.np("sum"), binary(args[0], "*", args[1]).text)
        return super()._step(step, args, idx, plan, ctx)

    def scatter_rows(self, shape: str, axis: int, rows: tuple[int, ...], core: Expr, ctx: Context) -> Expr:
        """Distinct rows as NumPy writes them; repeated rows ``out.index_add_(axis, tensor(rows), core)``."""
        if len(set(rows)) == len(rows):
            return super().scatter_rows(shape, axis, rows, core, ctx)
        device = "" if self.reference is None else f", device={self.reference}.device"
        index = f"{self.np('tensor')}({list(rows)!r}{device})"
        ctx.after(lambda name: f"{name}.index_add_({axis}, {index}, {core.text})")
        return self.creation("zeros", shape)
