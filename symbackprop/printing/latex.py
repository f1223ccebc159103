"""Printers for derivations: LaTeX names like w^{(2)}_{11}, ⊙ for elementwise products.

Customizations over SymPy's LatexPrinter and StrPrinter: symbol names follow CONTRACT §2
(w2_11 → w^{(2)}_{11}, a1 → \\mathbf{a}^{(1)}, delta2_1 → \\delta^{(2)}_{1}, da1 → ∂E/∂a^{(1)});
in tensor mode a product of vectors prints with \\odot (LaTeX) or * (text, elementwise).
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

_GREEK = {
    "eta": r"\eta",
    "lambda": r"\lambda",
    "mu": r"\mu",
    "tau": r"\tau",
    "beta1": r"\beta_1",
    "beta2": r"\beta_2",
    "epsilon": r"\epsilon",
    "alpha": r"\alpha",
}
_SCALAR = re.compile(r"(d?)(z|a|delta|w|b)(\d+)_(\d+(?:_\d+)?)\Z")
_VECTOR = re.compile(r"(d?)(z|a|delta)(\d+)\Z")
_PARAM = re.compile(r"(d?)([Wb])(\d+)\Z")
_INPUT = re.compile(r"([xtp])(\d+)\Z")
VECTORS = {"x", "t", "p", "lse"}


def latex_name(name: str) -> str:
    """LaTeX for a scalar or vector name of CONTRACT §2 (``dE_w2_11`` is ∂E/∂w2_11)."""
    if name.startswith("dE_"):
        return rf"\frac{{\partial E}}{{\partial {latex_name(name[3:])}}}"
    if name in _GREEK:
        return _GREEK[name]
    if m := _SCALAR.match(name):
        d, base, layer, idx = m.groups()
        core = {"delta": r"\delta"}.get(base, base) + f"^{{({layer})}}_{{{idx.replace('_', ',')}}}"
        return rf"\frac{{\partial E}}{{\partial {core}}}" if d else core
    if m := _VECTOR.match(name):
        d, base, layer = m.groups()
        core = {"delta": r"\boldsymbol{\delta}"}.get(
            base, rf"\mathbf{{{base}}}"
        ) + f"^{{({layer})}}"
        return rf"\frac{{\partial E}}{{\partial {core}}}" if d else core
    if m := _PARAM.match(name):
        d, base, layer = m.groups()
        core = (r"\mathbf{b}" if base == "b" else "W") + f"^{{({layer})}}"
        return rf"\frac{{\partial E}}{{\partial {core}}}" if d else core
    if m := _INPUT.match(name):
        return f"{m.group(1)}_{{{m.group(2)}}}"
    if name in ("x", "t", "p"):
        return rf"\mathbf{{{name}}}"
    if name == "lse":
        return r"\operatorname{lse}"
    if name in ("N", "k"):
        return name
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


def is_vector(symbol: sp.Basic) -> bool:
    return isinstance(symbol, sp.Symbol) and bool(
        symbol.name in VECTORS or _VECTOR.match(symbol.name)
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


class DerivationLatexPrinter(LatexPrinter):
    """LatexPrinter with CONTRACT §2 names; ``hadamard=True`` prints vector products with ⊙.

    Customizations: exponents are printed as given, never asked whether they are constant
    (see _unsigned_exponents).
    """

    _default_settings = {**LatexPrinter._default_settings, "hadamard": False, "order": "none"}

    def doprint(self, expr):
        return super().doprint(_unsigned_exponents(expr))

    def _print_Symbol(self, expr, style="plain"):
        return latex_name(expr.name)

    def _print_Mul(self, expr):
        if not self._settings["hadamard"]:
            return super()._print_Mul(expr)
        coeff, rest = expr.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        vectors = [f for f in factors if any(is_vector(s) for s in f.free_symbols)]
        if len(vectors) < 2:
            return super()._print_Mul(expr)
        others = [f for f in factors if f not in vectors]
        parts = [self.parenthesize(f, 45) if f.is_Add else self._print(f) for f in vectors]
        body = r" \odot ".join(parts)
        scalar = coeff * sp.Mul(*others)
        if scalar == 1:
            return body
        if scalar == -1:
            return "- " + body
        return self.parenthesize(scalar, 45) + " " + body


class DerivationStrPrinter(StrPrinter):
    """Plain-text printer (``*`` is elementwise in tensor mode); ``dE_w2_11`` prints dE/dw2_11."""

    _default_settings = {**StrPrinter._default_settings, "order": "none"}

    def _print_Symbol(self, expr):
        return f"dE/d{expr.name[3:]}" if expr.name.startswith("dE_") else expr.name


def latex(expr: sp.Basic, hadamard: bool = False) -> str:
    return DerivationLatexPrinter({"hadamard": hadamard}).doprint(expr)


def text(expr: sp.Basic) -> str:
    return DerivationStrPrinter().doprint(expr)
