"""The C99 code printer of the C target: SymPy's C99CodePrinter, subclassed where C must differ."""

from __future__ import annotations

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE

from ..core.symbols import as_expr
from .numpy import log1p_argument, numeric_constants

_SMALL_POWERS = 4  # x**2 .. x**4 as products (exactly what NumPy's x**2 gives; fast)


class Logistic(sp.Function):
    """1/(1 + exp(-u)), printed as one call (sbp_sigmoid): only inside CCodePrinter.doprint."""

    nargs = 1


def _logistic(expr: sp.Expr) -> sp.Expr:
    """``expr`` with each (1 + exp(-u))**-n written Logistic(u)**n."""

    def is_logistic(e) -> bool:
        return (
            e.is_Pow and e.exp.is_Integer and e.exp < 0 and _logistic_argument(e.base) is not None
        )

    def rewrite(e):
        return Logistic(_logistic_argument(e.base)) ** (-e.exp)

    return expr.replace(is_logistic, rewrite) if expr.has(sp.exp) else expr


def _logistic_argument(base: sp.Expr) -> sp.Expr | None:
    """u when ``base`` is 1 + exp(-u) (so 1/base is the logistic sigmoid of u), else None."""
    if isinstance(base, sp.Add) and len(base.args) == 2 and sp.S.One in base.args:
        rest = base.args[1] if base.args[0] == sp.S.One else base.args[0]
        if isinstance(rest, sp.exp):
            return -rest.args[0]
    return None


class CCodePrinter(C99CodePrinter):
    """Strict C99 printer for one element of the generated loops (``-std=c99``, libm only).

    Customizations: ``dtype`` 'float32' prints float functions (``expf``, ``sqrtf``, ...) and
    ``F`` literals, so float32 code computes in float like NumPy on float32 arrays;
    Heaviside(x, 0) as ``(x > 0 ? 1 : 0)`` (relu'(0) = 0); log(1 + exp(u)) as
    ``fmax(u, 0) + log1p(exp(-fabs(u)))`` (NumPy's logaddexp(0, u): no overflow), log(1 + u) as
    log1p(u); Max/Min of a symbol and a number as a ternary (``(z < 0 ? 0 : z)``, which gcc
    vectorizes; NaN and -0.0 pass through as in np.maximum(0, z) and torch.relu), other Max/Min
    as nested ``fmax``/``fmin`` (they differ from np.maximum only for NaN);
    exp, log, tanh, erf and the logistic 1/(1 + exp(-u)) as the generated C's own vectorizable
    ``sbp_exp``, ``sbp_log``, ``sbp_tanh``, ``sbp_erf``, ``sbp_sigmoid`` (``sbp_expf``, ... for
    float; templates/c/sbp_math.c.j2, codegen/c/sbp_math.py emits the ones a file calls);
    Piecewise as nested ternaries on one line; Float as its shortest
    exact repr; Rational as a quotient ``1.0/3.0`` (parenthesized inside products) that the
    compiler folds exactly; x**2..x**4 as products, x**-n as ``1.0/(...)``, x**(1/2) as sqrt;
    x**k for a nonnegative integer symbol k (Adam's beta1**k) as ``ipow(x, k)``, binary powering
    (the generated library defines it): no libm pow, which is kilobytes of soft double on a
    microcontroller;
    ``names`` renames symbols (the vector ``z1`` becomes ``z1[i]``). Irrational constants print
    as 17-digit floats (numeric_constants).
    """

    _default_settings = {**C99CodePrinter._default_settings, "strict": True, "order": "none"}

    def __init__(self, dtype: str = "float64", names: dict[str, str] | None = None):
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        super().__init__({"type_aliases": {real: float32 if dtype == "float32" else float64}})
        self.dtype = dtype
        self.names = names or {}
        self._suffix = "F" if dtype == "float32" else ""
        self.roots: dict = {}  # base -> C name of its square root, computed once (see c/backend)

    def _print_Symbol(self, expr):
        return self.names.get(expr.name, expr.name)

    def _print_Float(self, expr):
        text = repr(float(expr))
        if text in ("inf", "-inf", "nan"):
            raise ValueError(f"cannot print the non-finite number {text} as C")
        if "." not in text and "e" not in text:
            text += ".0"
        return text + self._suffix

    def _print_Rational(self, expr):
        s = self._suffix
        return f"{expr.p}.0{s}/{expr.q}.0{s}"

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Heaviside(self, expr):
        if len(expr.args) == 2 and expr.args[1] != 0:
            raise ValueError("only Heaviside(x, 0) is supported (H(0) = 0, as PyTorch's relu')")
        return f"({self._print(expr.args[0])} > 0 ? 1 : 0)"

    def _print_exp(self, expr):
        return f"sbp_exp{self._suffix.lower()}({self._print(expr.args[0])})"

    def _print_Logistic(self, expr):
        return f"sbp_sigmoid{self._suffix.lower()}({self._print(expr.args[0])})"

    def _print_tanh(self, expr):
        return f"sbp_tanh{self._suffix.lower()}({self._print(expr.args[0])})"

    def _print_log(self, expr):
        f = "f" if self.dtype == "float32" else ""
        rest = log1p_argument(expr.args[0])
        if rest is None:
            return f"sbp_log{f}({self._print(expr.args[0])})"
        if isinstance(rest, sp.exp):  # NumPy's logaddexp(0, u), which cannot overflow
            u = self._print(rest.args[0])
            return f"(fmax{f}({u}, 0) + log1p{f}(sbp_exp{f}(-fabs{f}({u}))))"
        return f"log1p{f}({self._print(rest)})"

    def _print_erf(self, expr):
        return f"sbp_erf{self._suffix.lower()}({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        if expr.args[-1].cond != sp.true:
            raise ValueError("a Piecewise needs a final (expr, True) branch")
        out = self._print(expr.args[-1].expr)
        for value, cond in reversed(expr.args[:-1]):
            out = f"({self._print(cond)} ? {self._print(value)} : {out})"
        return out

    def _print_Max(self, expr):
        return self._clamp(expr, "<") or super()._print_Max(expr)

    def _print_Min(self, expr):
        return self._clamp(expr, ">") or super()._print_Min(expr)

    def _clamp(self, expr, op: str) -> str | None:
        """``(s op c ? c : s)`` for Max/Min(symbol, number), else None: s unless it is beyond c."""
        numbers = [a for a in expr.args if a.is_Number]
        symbols = [a for a in expr.args if a.is_Symbol]
        if len(expr.args) != 2 or len(numbers) != 1 or len(symbols) != 1:
            return None
        s, c = self._print(symbols[0]), self._print(numbers[0])
        return f"({s} {op} {c} ? {c} : {s})"

    def _print_Relational(self, expr):
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _print_Pow(self, expr):
        base, exp = expr.as_base_exp()
        f = "f" if self.dtype == "float32" else ""
        if exp == sp.S.Half:
            return self.roots.get(base) or f"sqrt{f}({self._print(base)})"
        if exp == -sp.S.Half:
            return f"1.0{self._suffix}/{self.roots.get(base) or f'sqrt{f}({self._print(base)})'}"
        if exp.is_Integer and exp < 0:
            inv = base if exp == -1 else sp.Pow(base, -exp, evaluate=False)
            return f"1.0{self._suffix}/{self.parenthesize(inv, PRECEDENCE['Mul'], strict=True)}"
        if exp.is_Symbol and exp.is_integer and exp.is_nonnegative:
            return f"ipow{f}({self._print(base)}, {self._print(exp)})"
        if exp.is_Integer and 2 <= exp <= _SMALL_POWERS:
            b = self.parenthesize(base, PRECEDENCE["Atom"], strict=True)
            return "(" + "*".join([b] * int(exp)) + ")"
        return f"pow{f}({self._print(base)}, {self._print(exp)})"

    def doprint(self, expr, assign_to=None):
        return super().doprint(_logistic(numeric_constants(as_expr(expr))), assign_to)


class StepScalarPrinter(CCodePrinter):
    """The optimizer's once-a-step scalars (bias corrections) in double, as torch.optim computes
    them in Python floats: 1 - beta2**k loses five digits in float at k = 1. For a float32 spec a
    square root is still float math, ``sqrtf((float)(...))`` (the result is rounded to float
    anyway): a float32 library calls no double libm function.
    """

    def __init__(self, dtype: str):
        super().__init__("float64")
        self.spec_dtype = dtype

    def _print_Pow(self, expr):
        base, exp = expr.as_base_exp()
        if self.spec_dtype == "float32" and exp in (sp.S.Half, -sp.S.Half):
            root = f"sqrtf((float)({self._print(base)}))"
            return root if exp == sp.S.Half else f"1.0F/{root}"
        return super()._print_Pow(expr)


__all__ = ["CCodePrinter", "StepScalarPrinter"]
