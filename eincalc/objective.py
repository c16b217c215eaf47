"""``objective``: a scalar expression as fun/jac/hess/hessp on a flat vector, for SciPy.

``scipy.optimize.minimize`` works on one flat parameter vector; an objective packs the
``wrt`` variables (in the given order, each raveled C-style) into it and unpacks them
for the compiled code. Value and gradient are compiled together and cached for the last
point (SciPy asks for them separately at the same x). ``hessp`` differentiates the
directional gradient ⟨∇f, p⟩ symbolically, so a Hessian-vector product costs what the
structure allows (``2 P VᵀV`` for matrix factorisation) and no Hessian is formed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from eincalc import ops
from eincalc.calling import real_array
from eincalc.diff import derivative, grad
from eincalc.errors import ArgumentError, ShapeError, SizeError, UnknownNameError
from eincalc.expr import Node, Var
from eincalc.graph import topo_order
from eincalc.interpreter import bind_values


class Objective:
    """fun/jac/hess/hessp of ``f`` over the packed variables ``wrt`` (see :func:`objective`)."""

    def __init__(
        self, f: Node, wrt: Sequence[str], data: Mapping[str, object], sizes: Mapping[str, int] | None
    ) -> None:
        from eincalc.codegen import compile as compile_expr

        if f.ndim:
            raise ShapeError(f"an objective must be scalar, this expression has dims {f.dims}")
        variables = {n.name: n for n in topo_order(f) if isinstance(n, Var)}
        for name in wrt:
            if name not in variables:
                raise UnknownNameError(
                    f"wrt: {name!r} is not a variable of the objective (it has {', '.join(variables)})"
                )
        missing = [n for n in variables if n not in wrt and n not in data]
        if missing:
            raise ArgumentError(
                f"data has no array for {', '.join(missing)} (give every variable that is not optimised)"
            )
        self.f = f
        self.wrt = [variables[name] for name in wrt]
        self.data = {k: real_array(k, v) for k, v in data.items()}
        self.sizes = self._bind_sizes(sizes)
        self.shapes = [tuple(self.sizes[d] for d in v.dims) for v in self.wrt]
        self.splits = np.cumsum([int(np.prod(s, dtype=np.int64)) for s in self.shapes])[:-1]
        self.size = int(sum(int(np.prod(s, dtype=np.int64)) for s in self.shapes))

        grads = [grad(f, v) for v in self.wrt]
        self._value_and_grad = compile_expr([f, *grads], sizes=self.sizes, name="value_and_grad")
        directions = [ops.tensor(self._fresh_name(v.name), v.dims) for v in self.wrt]
        directional = sum((ops.sum(ops.multiply(g, d)) for g, d in zip(grads, directions)), start=ops.zeros(()))
        self._directions = [d.name for d in directions]  # type: ignore[attr-defined]
        hvps = [derivative(directional, v) for v in self.wrt]
        self._hessp = compile_expr(hvps, sizes=self.sizes, name="hessian_vector_product")
        self._hess_blocks: object | None = None
        self._last_key: tuple[bytes, bytes] | None = None
        self._last: tuple[float, np.ndarray] | None = None

    def _fresh_name(self, base: str) -> str:
        taken = {n.name for n in topo_order(self.f) if isinstance(n, Var)}
        name = f"{base}_direction"
        while name in taken:
            name += "_"
        return name

    def _bind_sizes(self, sizes: Mapping[str, int] | None) -> dict[str, int]:
        data_vars = [n for n in topo_order(self.f) if isinstance(n, Var) and n.name in self.data]
        known: dict[str, int] = dict(sizes or {})
        if data_vars:
            roots = list(data_vars)
            _, bound, _ = bind_values(roots, named={v.name: self.data[v.name] for v in data_vars})
            for d, s in bound.items():
                if d in known and known[d] != s:
                    raise SizeError(f"dim {d!r} is {known[d]} in sizes but {s} in the data")
                known[d] = s
        unknown = sorted({d for v in self.wrt for d in v.dims if d not in known and not d.isdigit()})
        if unknown:
            raise SizeError(f"no size for dim(s) {', '.join(unknown)} of the optimised variables: pass sizes=")
        for v in self.wrt:
            for d in v.dims:
                if d.isdigit():
                    known[d] = int(d)
        return known

    # -- packing ---------------------------------------------------------------------
    def unpack(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The variables' arrays from the flat vector ``x``."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.size,):
            raise ShapeError(f"expected a flat vector of {self.size} entries, got shape {x.shape}")
        parts = np.split(x, self.splits)
        return {v.name: p.reshape(s) for v, p, s in zip(self.wrt, parts, self.shapes)}

    def pack(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """One flat vector from per-variable arrays (in ``wrt`` order)."""
        return np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.zeros(0)

    def _arguments(self, x: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        return {**self.data, **self.unpack(x), **(extra or {})}

    # -- SciPy interface ---------------------------------------------------------------
    def _evaluate(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        # The cache is for SciPy asking fun and jac at one point; the data are part of the
        # key, so replacing an array of obj.data, or changing one in place, is seen.
        key = (np.asarray(x, dtype=float).tobytes(), self._data_digest())
        if key != self._last_key or self._last is None:
            value, *grads = self._value_and_grad(**self._used(self._value_and_grad, self._arguments(x)))
            self._last = (float(value), self.pack([np.asarray(g) for g in grads]))
            self._last_key = key
        return self._last

    def _data_digest(self) -> bytes:
        """A digest of the data's names and contents (reading them costs less than one evaluation)."""
        h = hashlib.blake2b(digest_size=16)
        for name in sorted(self.data):
            value = np.ascontiguousarray(self.data[name])
            h.update(f"{name}:{value.dtype}:{value.shape};".encode())
            h.update(value)  # the buffer, no copy
        return h.digest()

    @staticmethod
    def _used(fn: object, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # data may hold arrays the expression does not take; a variable simplification
        # dropped is an argument without an array (it is optional)
        names = getattr(fn, "arg_names", None)
        return dict(arrays) if names is None else {k: arrays[k] for k in names if k in arrays}

    def fun(self, x: np.ndarray) -> float:
        """f(x)."""
        return self._evaluate(x)[0]

    def jac(self, x: np.ndarray) -> np.ndarray:
        """∇f(x), flat."""
        return self._evaluate(x)[1]

    def hessp(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """∇²f(x) p, flat, without forming the Hessian."""
        directions = self.unpack(p)
        extra = {name: directions[v.name] for name, v in zip(self._directions, self.wrt)}
        out = self._hessp(**self._used(self._hessp, self._arguments(x, extra)))
        out = out if isinstance(out, (list, tuple)) else [out]
        return self.pack([np.asarray(o) for o in out])

    def hess(self, x: np.ndarray) -> np.ndarray:
        """∇²f(x) as a dense (size × size) matrix, assembled from the symbolic blocks."""
        from eincalc.codegen import compile as compile_expr

        if self._hess_blocks is None:
            blocks = [derivative(grad(self.f, a), b) for a in self.wrt for b in self.wrt]
            self._hess_blocks = compile_expr(blocks, sizes=self.sizes, dense=True, name="hessian_blocks")
        fn = self._hess_blocks
        values = fn(**self._used(fn, self._arguments(x)))  # type: ignore[operator]
        values = values if isinstance(values, (list, tuple)) else [values]
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        rows = []
        for i, si in enumerate(sizes):
            rows.append([np.asarray(values[i * len(sizes) + j]).reshape(si, sj) for j, sj in enumerate(sizes)])
        return np.block(rows)


def objective(
    f: Node, wrt: str | Sequence[str], data: Mapping[str, object] | None = None, sizes: Mapping[str, int] | None = None
) -> Objective:
    """``f`` as a SciPy objective over the variables ``wrt``, with the other variables fixed to ``data``.

    Examples:
        >>> import numpy as np, scipy.optimize, eincalc as ec
        >>> f = ec.parse("sum((A @ x - b) ** 2)", A="m n", x="n", b="m")
        >>> rng = np.random.default_rng(0)
        >>> obj = ec.objective(f, "x", dict(A=rng.normal(size=(5, 3)), b=rng.normal(size=5)))
        >>> res = scipy.optimize.minimize(obj.fun, np.zeros(3), jac=obj.jac, hess=obj.hess, method="trust-exact")
        >>> bool(np.linalg.norm(obj.jac(res.x)) < 1e-8)
        True
    """
    names = [wrt] if isinstance(wrt, str) else list(wrt)
    if not names:
        raise ShapeError("objective needs at least one variable to optimise")
    return Objective(f, names, data or {}, sizes)
