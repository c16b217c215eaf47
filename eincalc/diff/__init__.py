"""Symbolic differentiation in forward, reverse and cross-country mode."""

from eincalc.diff.cross_country import ELIMINATION_ORDERS, cross_country_jacobian, register_elimination_order
from eincalc.diff.directional import hvp, jvp, vjp
from eincalc.diff.driver import MODES, derivative, grad, hessian, jacobian, value_and_grad
from eincalc.diff.forward import forward_jacobian
from eincalc.diff.reverse import reverse_jacobian

__all__ = [
    "ELIMINATION_ORDERS", "MODES", "cross_country_jacobian", "derivative", "forward_jacobian", "grad",
    "hessian", "hvp", "jacobian", "jvp", "register_elimination_order", "reverse_jacobian", "value_and_grad", "vjp",
]  # fmt: skip
