"""The PyTorch code printer of the torch target: SymPy's TorchPrinter, subclassed where the
generated module must differ.

Importing this module imports SymPy's ``sympy.printing.pytorch``, which imports torch when it is
installed; the torch backend imports it only when it renders.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pytorch import TorchPrinter

from ..core.symbols import as_expr
from .numpy import log1p_argument, numeric_constants


def _is_step(factor: sp.Expr) -> bool:
    return isinstance(factor, sp.Heaviside) and factor.args[1:] == (0,)


class ReluStep(sp.Function):
    """Heaviside(a, 0) of a relu's output a = Max(0, z) (elementwise >= 0, or NaN): the mask
    H(z) = H(a), printed as ``a.sign().nan_to_num_()``: 1 where a > 0, 0 where a is 0 or NaN
    (sign(NaN) is NaN; ±0.0 gives ±0.0, a zero either way): the numbers of ``(a > 0)``, from two
    plain kernels where comparing with the number 0 wraps it as a tensor and the bool mask
    times a float tensor converts it (together about three times the instructions)."""

    nargs = 1


class SoftmaxCrossEntropy(sp.Function):
    """Σ_n Σ_k t_nk (logsumexp(z_n) - z_nk) over a batch of logit rows z and target rows t,
    divided by N (mean = 1) or not (mean = 0): printed as ``torch.nn.functional.cross_entropy``
    with probability targets, one call for a log_softmax, a product and the sums (the torch
    backend's fuse.py writes it for the loss). Args (z, t, mean)."""

    nargs = 3


class MulInPlace(sp.Function):
    """s * r written into s (``s.mul_(r)``): s is an intermediate that nothing reads after
    (the torch backend's fuse.py decides), so the product needs no new tensor. Args (s, r)."""

    nargs = 2


class ReluInPlace(sp.Function):
    """Max(0, z) written into z (``torch.relu_(z)``), for an intermediate z that nothing reads
    after (fuse.py decides)."""

    nargs = 1


class TorchCodePrinter(TorchPrinter):
    """Strict printer for elementwise expressions on tensors (``import torch``).

    Customizations (each keeps the NumPy target's numbers, NaN included):
    Heaviside(x, 0) as the mask ``(x > 0)`` when it multiplies a tensor expression (bool times
    float is float: relu'(0) = 0, and NaN * 0 stays NaN as in NumPy), elsewhere as
    ``_step(x)`` (a float mask); Max/Min with a number as ``torch.clamp_min``/``clamp_max``
    and of tensors as ``torch.maximum``/``minimum`` (SymPy's printer calls torch.max, a
    reduction; all four propagate NaN like np.maximum), Max(0, x) as ``torch.relu`` (the same
    clamp_min(x, 0), without a number argument); log(1 + exp(u)) as ``_log1pexp(u)``
    (= np.logaddexp(0, u): no overflow) and log(1 + u) as ``torch.log1p(u)``; Piecewise as
    nested ``torch.where`` whose number-only branches take the dtype of a tensor of the
    condition (torch.where of two Python floats would be float32); x**2 as ``x**2``,
    x**-n as ``1/x**n``, x**(1/2) as ``torch.sqrt``; relations infix; Float as its shortest
    exact repr, Rational as a Python quotient; a function it has no mapping for raises.
    """

    _default_settings = {**TorchPrinter._default_settings, "strict": True, "order": "none"}

    def __init__(self, settings=None):
        super().__init__(settings or {})

    def _print_Function(self, expr):
        if type(expr) not in self.mapping:
            raise ValueError(f"the torch printer has no mapping for {type(expr).__name__}")
        return super()._print_Function(expr)

    _print_Expr = _print_Function
    _print_Application = _print_Function

    def _print_Symbol(self, expr):
        return expr.name

    def _print_Float(self, expr):
        text = repr(float(expr))
        if text in ("inf", "-inf", "nan"):
            raise ValueError(f"cannot print the non-finite number {text}")
        return text

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}" if expr.q != 1 else str(expr.p)

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Heaviside(self, expr):
        if not _is_step(expr):
            raise ValueError("only Heaviside(x, 0) is supported (H(0) = 0, as PyTorch's relu')")
        return f"_step({self._print(expr.args[0])})"

    def _print_ReluStep(self, expr):
        a = expr.args[0]
        text = self._print(a) if isinstance(a, sp.Symbol) else f"({self._print(a)})"
        return f"{text}.sign().nan_to_num_()"

    def _print_MulInPlace(self, expr):
        return f"{self._print(expr.args[0])}.mul_({self._print(expr.args[1])})"

    def _print_ReluInPlace(self, expr):
        return f"torch.relu_({self._print(expr.args[0])})"

    def _print_SoftmaxCrossEntropy(self, expr):
        z, t, mean = expr.args
        reduction = "" if mean else ', reduction="sum"'
        return f"torch.nn.functional.cross_entropy({self._print(z)}, {self._print(t)}{reduction})"

    def _print_Mul(self, expr):
        steps = [f for f in expr.args if _is_step(f)]
        rest = [f for f in expr.args if not _is_step(f)]
        floats = any(not s.is_integer for f in rest for s in f.free_symbols)
        if not steps or not floats:
            return super()._print_Mul(expr)
        head = self.parenthesize(sp.Mul(*rest), PRECEDENCE["Mul"])
        masks = "*".join(f"({self._print(f.args[0])} > 0)" for f in steps)
        return f"{head}*{masks}"

    def _print_Max(self, expr):
        return self._extremum(expr, "torch.maximum", "torch.clamp_min")

    def _print_Min(self, expr):
        return self._extremum(expr, "torch.minimum", "torch.clamp_max")

    def _extremum(self, expr, pairwise: str, clamp: str) -> str:
        numbers = [a for a in expr.args if a.is_Number]
        tensors = [a for a in expr.args if not a.is_Number]
        if isinstance(expr, sp.Max) and numbers == [0] and len(tensors) == 1:
            return f"torch.relu({self._print(tensors[0])})"  # clamp_min(z, 0), no number
        out = self._print(tensors[0])
        for arg in tensors[1:]:
            out = f"{pairwise}({out}, {self._print(arg)})"
        for c in numbers:
            out = f"{clamp}({out}, {self._print(c)})"
        return out

    def _print_log(self, expr):
        rest = log1p_argument(expr.args[0])
        if rest is None:
            return f"torch.log({self._print(expr.args[0])})"
        if isinstance(rest, sp.exp):
            return f"_log1pexp({self._print(rest.args[0])})"
        return f"torch.log1p({self._print(rest)})"

    def _print_Piecewise(self, expr):
        if expr.args[-1].cond != sp.true:
            raise ValueError("a Piecewise needs a final (expr, True) branch")
        (value, cond), rest = expr.args[0], expr.args[1:]
        if not rest:
            return self._print(value)
        tail = rest[0].expr if len(rest) == 1 else sp.Piecewise(*rest)
        first = self._print(value)
        if value.is_Number and tail.is_Number:
            tensors = sorted((s for s in cond.free_symbols if not s.is_integer), key=str)
            if not tensors:
                raise ValueError(f"a Piecewise on numbers alone: {expr}")
            first = f"{self._print(tensors[0])}.new_full((), {first})"
        return f"torch.where({self._print(cond)}, {first}, {self._print(tail)})"

    def _print_Relational(self, expr):
        op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp == sp.S.Half:
            return f"torch.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"1/torch.sqrt({self._print(base)})"
        if exp.is_Integer and exp < 0:
            inv = base if exp == -1 else sp.Pow(base, -exp, evaluate=False)
            return f"1/{self.parenthesize(inv, PRECEDENCE['Pow'])}"
        base_code = self.parenthesize(base, PRECEDENCE["Pow"])
        return f"{base_code}**{self.parenthesize(exp, PRECEDENCE['Pow'])}"

    def doprint(self, expr, assign_to=None):
        return super().doprint(numeric_constants(as_expr(expr)), assign_to)


__all__ = ["MulInPlace", "ReluInPlace", "ReluStep", "SoftmaxCrossEntropy", "TorchCodePrinter"]
