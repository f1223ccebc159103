"""Printers for derivations: LaTeX (mathematics, in the notation of ``names``) and plain text.

Customizations over SymPy's LatexPrinter:
- symbols are typeset by ``names.latex_name``: bold vectors and matrices, italic elements and
  function arguments (``elements=True``), ∂E/∂P and ∂ℓ/∂T for gradients;
- ``hadamard=True`` prints products of vectors with ⊙, the gradient factor first (δ = ∂ℓ/∂a ⊙ f');
- ``index=("n", "k")`` prints every tensor as its element (t_{nk}, lse_n), for sums over them;
- Heaviside(x, 0) is the indicator 𝟙[x > 0] (relu'(0) = 0, as PyTorch), not θ(x, 0);
- Piecewise is a ``cases`` block with "if" / "otherwise";
- undefined functions print as f(x) and ℓ(a, t); their derivatives as f'(x) and ∂ℓ/∂a;
- indexed elements a_j, Kronecker δ_jk and Σ_j print as a textbook writes them.

Customizations over SymPy's StrPrinter (the text format, and the code targets' comments):
no SymPy syntax: ``max``, ``abs``, ``exp(1)``; Heaviside(z, 0) is ``(z > 0)``; a Piecewise is
``{k = 1: g; otherwise: mu*buf + g}`` (``piecewise="indicator"`` writes it as a sum of
indicators, ``(z > 0) + 1/10*(z <= 0)``, which ``verify`` reads back); f'(x), dl/da, a_j, sum_j.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from .names import GREEK, current, element_tex, latex_name, notation, word

VECTORS = {"x", "t", "p"}


def is_vector(symbol: sp.Basic) -> bool:
    """A per-sample tensor with more than one element (printed bold)."""
    if not isinstance(symbol, sp.Symbol):
        return False
    name, note = symbol.name, current()
    if name in note.scalars or name in note.params:
        return False
    if note.tensors:
        return name in note.tensors or name in VECTORS
    return name in VECTORS or bool(re.fullmatch(r"d?(z|a|delta|h)\d+(__via_\w+)?", name))


def _is_gradient_symbol(symbol: sp.Basic) -> bool:
    return isinstance(symbol, sp.Symbol) and (
        symbol.name.startswith("delta") or (symbol.name.startswith("d") and is_vector(symbol))
    )


class _Unsigned(sp.UnevaluatedExpr):
    """An exponent whose sign SymPy is not told (printed as itself)."""

    is_commutative = True


def _unsigned_exponents(expr: sp.Basic) -> sp.Basic:
    """Hide the sign of every exponent known to be negative but not a number (e^{-σ(x)}).

    LatexPrinter's Mul calls fraction(exact=True), which asks such an exponent is_constant(),
    which simplifies it: exponential in the nesting (a sigmoid of a sigmoid of ... took minutes
    to print). Its answer is False for any exponent in x, so the printed text is the same.
    """

    def hidden(e: sp.Expr) -> bool:
        return (e.is_Pow or isinstance(e, sp.exp)) and not e.exp.is_number and e.exp.is_negative

    def hide(e: sp.Expr) -> sp.Expr:
        if isinstance(e, sp.exp):
            return sp.exp(_Unsigned(e.exp), evaluate=False)
        return sp.Pow(e.base, _Unsigned(e.exp), evaluate=False)

    return expr.replace(hidden, hide) if isinstance(expr, sp.Basic) else expr


def _function_name(f: sp.Basic) -> str:
    name = getattr(f, "name", None) or type(f).__name__
    return word(name)


class DerivationLatexPrinter(LatexPrinter):
    """LatexPrinter in the document's notation (see the module docstring)."""

    _default_settings = {
        **LatexPrinter._default_settings, "hadamard": False, "elements": False, "index": None,
        "order": "none",
    }  # fmt: skip

    def doprint(self, expr):
        return super().doprint(_unsigned_exponents(expr))

    def _print_Symbol(self, expr, style="plain"):
        name, index = expr.name, self._settings["index"]
        note = current()
        if (
            index
            and name not in note.params
            and name not in ("N", "k", "c", "E")
            and (not note.tensors or name in note.tensors or name in VECTORS)
        ):
            sub = index[0] if name in note.scalars else ",".join(index)
            return element_tex(name, sub)
        return latex_name(name, self._settings["elements"])

    def _print_Heaviside(self, expr):
        arg, *h0 = expr.args
        if h0 and h0[0] == 0:
            return rf"\mathbb{{1}}\left[{self._print(arg)} > 0\right]"
        return rf"H\left({self._print(arg)}\right)"

    def _print_Piecewise(self, expr):
        rows = []
        for value, cond in expr.args:
            when = r"\text{otherwise}" if cond == sp.true else rf"\text{{if }} {self._print(cond)}"
            rows.append(f"{self._print(value)} & {when}")
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"

    def _print_Function(self, expr, exp=None):
        if isinstance(expr, AppliedUndef):
            args = ", ".join(self._print(a) for a in expr.args)
            out = rf"{_function_name(expr.func)}\left({args}\right)"
            return f"{out}^{{{exp}}}" if exp else out
        return super()._print_Function(expr, exp)

    def _print_Derivative(self, expr):
        f, (var, count) = expr.expr, expr.variable_count[0]
        if isinstance(f, AppliedUndef) and f.args == (var,) and count == 1:
            return rf"{_function_name(f.func)}'\left({self._print(var)}\right)"
        top = _function_name(f.func) if isinstance(f, AppliedUndef) else self._print(f)
        return rf"\frac{{\partial {top}}}{{\partial {self._print(var)}}}"

    def _print_Indexed(self, expr):
        base = word(expr.base.label.name)
        return f"{base}_{{{''.join(self._print(i) for i in expr.indices)}}}"

    def _print_IndexedBase(self, expr):
        return word(expr.label.name)

    def _print_KroneckerDelta(self, expr, exp=None):
        i, j = (self._print(a) for a in expr.args)
        return rf"\delta_{{{i}{j}}}" if not exp else rf"\delta_{{{i}{j}}}^{{{exp}}}"

    def _print_Sum(self, expr):
        (var, low, high), body = expr.limits[0], expr.function
        lim = rf"_{{{self._print(var)}={self._print(low)}}}^{{{self._print(high)}}}"
        inner = self.parenthesize(body, PRECEDENCE["Mul"]) if body.is_Add else self._print(body)
        return rf"\sum{lim} {inner}"

    def _print_Mul(self, expr):
        if not self._settings["hadamard"]:
            return super()._print_Mul(expr)
        coeff, rest = expr.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        vectors = [f for f in factors if any(is_vector(s) for s in f.free_symbols)]
        if len(vectors) < 2:
            return super()._print_Mul(expr)
        vectors.sort(key=lambda f: not (isinstance(f, sp.Symbol) and _is_gradient_symbol(f)))
        others = [f for f in factors if f not in vectors]
        parts = [
            self.parenthesize(f, PRECEDENCE["Mul"]) if f.is_Add else self._print(f) for f in vectors
        ]
        body = r" \odot ".join(parts)
        scalar = coeff * sp.Mul(*others)
        if scalar == 1:
            return body
        if scalar == -1:
            return "- " + body
        return self.parenthesize(scalar, PRECEDENCE["Mul"]) + " " + body


class DerivationStrPrinter(StrPrinter):
    """Plain text with no SymPy syntax (see the module docstring)."""

    _default_settings = {**StrPrinter._default_settings, "order": "none", "piecewise": "cases"}
    printmethod = "_symbackprop_text"  # not Indexed._sympystr (a[j]): a_j, as in the text

    def _print_Symbol(self, expr):
        return f"dE/d{expr.name[3:]}" if expr.name.startswith("dE_") else expr.name

    def _print_Heaviside(self, expr):
        arg, *h0 = expr.args
        if h0 and h0[0] == 0:
            return f"({self._print(arg)} > 0)"
        return f"heaviside({self._print(arg)}, {self._print(h0[0]) if h0 else '1/2'})"

    def _print_Piecewise(self, expr):
        if self._settings["piecewise"] == "indicator" and (sum_ := _indicators(expr)) is not None:
            return self._print(sum_)
        rows = [
            f"otherwise: {self._print(v)}" if c == sp.true else f"{self._cond(c)}: {self._print(v)}"
            for v, c in expr.args
        ]
        return "{" + "; ".join(rows) + "}"

    def _cond(self, cond) -> str:
        if isinstance(cond, sp.Eq):
            return f"{self._print(cond.lhs)} = {self._print(cond.rhs)}"
        return self._print(cond)

    def _print_Indicator(self, expr):
        return f"({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Exp1(self, expr):
        return "exp(1)"

    def _print_Function(self, expr):
        if isinstance(expr, AppliedUndef):
            name = {"ell": "l"}.get(expr.func.__name__, expr.func.__name__)
            return f"{name}(" + ", ".join(self._print(a) for a in expr.args) + ")"
        return super()._print_Function(expr)

    def _print_Derivative(self, expr):
        f, (var, _) = expr.expr, expr.variable_count[0]
        if isinstance(f, AppliedUndef) and f.args == (var,):
            return f"{f.func.__name__}'({self._print(var)})"
        top = {"ell": "l"}.get(f.func.__name__, f.func.__name__) if isinstance(
            f, AppliedUndef) else self._print(f)  # fmt: skip
        return f"d{top}/d{self._print(var)}"

    def _print_Indexed(self, expr):
        base = {"ell": "l"}.get(expr.base.label.name, expr.base.label.name)
        return f"{base}_" + "".join(self._print(i) for i in expr.indices)

    def _print_KroneckerDelta(self, expr):
        return "delta_" + "".join(self._print(a) for a in expr.args)

    def _print_Sum(self, expr):
        (var, _, _), body = expr.limits[0], expr.function
        return f"sum_{self._print(var)}({self._print(body)})"


class Indicator(sp.Function):
    """[cond] as a number (1 where ``cond`` holds, else 0), for printing piecewise functions as
    sums of indicators in text; never evaluated."""

    is_real = True


def _negate(cond: sp.Basic) -> sp.Basic | None:
    flip = {sp.StrictGreaterThan: sp.LessThan, sp.StrictLessThan: sp.GreaterThan,
            sp.GreaterThan: sp.StrictLessThan, sp.LessThan: sp.StrictGreaterThan}  # fmt: skip
    return flip[type(cond)](*cond.args, evaluate=False) if type(cond) in flip else None


def _indicators(expr: sp.Piecewise) -> sp.Expr | None:
    """Piecewise((A, c), (B, True)) as A*[c] + B*[not c], for a comparison c; else None."""
    if len(expr.args) != 2 or expr.args[1][1] != sp.true:
        return None
    (a, cond), (b, _) = expr.args
    other = _negate(cond)
    if other is None:
        return None
    with sp.evaluate(False):
        return a * Indicator(cond) + b * Indicator(other)


def latex(expr: sp.Basic, hadamard: bool = False, *, elements: bool = False, index=None) -> str:
    """``expr`` in LaTeX: ``hadamard`` for ⊙ between vectors, ``elements`` when every bare
    name is one element (an activation's x, a loss's a and t), ``index`` to print tensors as
    their elements with these subscripts (``("n", "k")``)."""
    settings = {"hadamard": hadamard, "elements": elements, "index": index}
    return DerivationLatexPrinter(settings).doprint(expr)


def text(expr: sp.Basic, piecewise: str = "cases") -> str:
    """``expr`` as plain text (``piecewise="indicator"``: a sum of indicators, for verify)."""
    return DerivationStrPrinter({"piecewise": piecewise}).doprint(expr)


__all__ = [
    "GREEK", "DerivationLatexPrinter", "DerivationStrPrinter", "is_vector", "latex",
    "latex_name", "notation", "text",
]  # fmt: skip
