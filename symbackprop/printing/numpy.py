"""Code printers: SymPy's, subclassed only where the emitted code must differ.

Both are strict: an unsupported function raises instead of printing something wrong.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from ..core.symbols import as_expr


def numeric_constants(expr: sp.Expr) -> sp.Expr:
    """Irrational constants (sqrt(2), pi, E) as 17-digit floats, so code never promotes float32
    arrays to float64 through a library scalar; rationals stay exact (Python divides them)."""
    return expr.replace(
        lambda e: e.is_number and not e.is_Rational and not e.is_Float and e.is_real,
        lambda e: sp.Float(sp.N(e, 30), 17),
    )


def log1p_argument(arg: sp.Expr) -> sp.Expr | None:
    """u when ``arg`` is 1 + u (so log(arg) is better computed as log1p(u)), else None."""
    if arg.is_Add and sp.S.One in arg.args:
        return arg - 1
    return None


class NumpyCodePrinter(NumPyPrinter):
    """NumPy printer for the generated module (``import numpy as np``).

    Customizations: ``np.`` prefix; Max/Min as nested np.maximum/np.minimum (elementwise,
    broadcasting); Heaviside(x, 0) as ``_step(x)`` (1 where x > 0, else 0: relu'(0) = 0);
    erf as ``_erf`` (libm's erf, as the C target); Piecewise in the step count alone as a
    Python conditional, elementwise Piecewise as nested np.where; ``names`` renames symbols.
    """

    _default_settings = {**NumPyPrinter._default_settings, "strict": True, "order": "none"}

    def __init__(self, names: dict[str, str] | None = None, settings=None):
        super().__init__(settings or {})
        self.names = names or {}

    def _module_format(self, fqn, register=True):
        out = super()._module_format(fqn, register)
        return "np." + out[len("numpy.") :] if out.startswith("numpy.") else out

    def _print_Symbol(self, expr):
        return self.names.get(expr.name, expr.name)

    def _print_Max(self, expr):
        return self._nested("np.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested("np.minimum", expr.args)

    def _nested(self, fn: str, args) -> str:
        out = self._print(args[0])
        for arg in args[1:]:
            out = f"{fn}({out}, {self._print(arg)})"
        return out

    def _print_Heaviside(self, expr):
        return f"_step({self._print(expr.args[0])})"

    def _print_log(self, expr):
        """log(1 + exp(u)) as np.logaddexp(0, u) (no overflow); log(1 + u) as np.log1p(u)."""
        rest = log1p_argument(expr.args[0])
        if rest is None:
            return f"np.log({self._print(expr.args[0])})"
        if isinstance(rest, sp.exp):
            return f"np.logaddexp(0, {self._print(rest.args[0])})"
        return f"np.log1p({self._print(rest)})"

    def _print_erf(self, expr):
        return f"_erf({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        scalar = all(c.free_symbols <= {sp.Symbol("k", positive=True, integer=True)}
                     for _, c in expr.args)  # fmt: skip
        (value, cond), rest = expr.args[0], expr.args[1:]
        tail = self._print(rest[0][0]) if len(rest) == 1 else self._print(sp.Piecewise(*rest))
        if scalar:
            return f"({self._print(value)} if {self._print(cond)} else {tail})"
        return f"np.where({self._print(cond)}, {self._print(value)}, {tail})"

    def _print_Equality(self, expr):
        return f"({self._print(expr.lhs)} == {self._print(expr.rhs)})"

    def _print_StrictGreaterThan(self, expr):
        return f"({self._print(expr.lhs)} > {self._print(expr.rhs)})"

    def _print_StrictLessThan(self, expr):
        return f"({self._print(expr.lhs)} < {self._print(expr.rhs)})"

    def _print_GreaterThan(self, expr):
        return f"({self._print(expr.lhs)} >= {self._print(expr.rhs)})"

    def _print_LessThan(self, expr):
        return f"({self._print(expr.lhs)} <= {self._print(expr.rhs)})"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if exp.is_Integer and exp < 0:
            inv = base if exp == -1 else sp.Pow(base, -exp, evaluate=False)
            return f"1/{self.parenthesize(inv, PRECEDENCE['Pow'])}"
        if exp == -sp.S.Half:
            return f"1/np.sqrt({self._print(base)})"
        if exp.is_Integer:
            return f"{self.parenthesize(base, PRECEDENCE['Pow'])}**{int(exp)}"
        return super()._print_Pow(expr, rational)

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}" if expr.q != 1 else str(expr.p)

    def doprint(self, expr, assign_to=None):
        return super().doprint(numeric_constants(as_expr(expr)), assign_to)
