"""Reshapes between named dims: ``X.reshape(-1)`` of an ``m × n`` matrix has the dim ``m*n``.

One :class:`eincalc.tensor_functions.UnaryFn` entry, ``reshape(x, 'm*n')``, whose node keeps
its target dims. A reshape is linear, so its derivative rules are reshapes too: a tangent
is reshaped to the result's dims (direction axes kept), a cotangent back to the
argument's (lead axes kept); no Jacobian is formed. Its Jacobian, for the rules that
need one explicitly, is the unit tensor reshaped. Sizes of derived dims (``m*n``,
``n-1``) come from their base dims (:mod:`eincalc.dims`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eincalc import algebra as alg
from eincalc.expr import Node, Unary
from eincalc.tensor_functions import UnaryFn


def _jacobian(node: Unary) -> Node:
    """∂ reshape(x)/∂x: the unit tensor over x's dims with its first half reshaped to the result's dims."""
    x = node.arg
    return alg.unary("reshape", alg.delta(x.dims), node.dims + x.dims)


def _tangent(node: Unary, tangent: Node, n_dir: int) -> Node:
    return alg.unary("reshape", tangent, node.dims + tangent.dims[node.arg.ndim :])


def _cotangent(node: Unary, cotangent: Node, n_lead: int) -> Node:
    return alg.unary("reshape", cotangent, cotangent.dims[:n_lead] + node.arg.dims)


def _code(printer: Any, node: Unary, x: Any, ctx: Any) -> Any:
    from eincalc.codegen.printer import Expr

    return Expr(f"{x.atom}.reshape({ctx.shape(node.dims)})")


ENTRIES: list[UnaryFn] = [
    UnaryFn(
        "reshape",
        lambda x, shape: np.reshape(x, shape),
        _jacobian,
        dims_param=True,
        view=True,
        code=_code,
        tangent=_tangent,
        cotangent=_cotangent,
    ),
]
