"""Scalar-mode sections: the forward and backward pass, each gradient's chain-rule factors and
each optimizer update, written element by element (with numbers at a single sample)."""

from __future__ import annotations

import sympy as sp

from ..core.derivation import Derivation
from ..core.scalar import Gradient, instantiate
from ..printing import latex as lx
from .equations import Eq, Section, _eq, _fmt


def scalar_sections(d: Derivation, vals: dict | None) -> list[Section]:
    sd = instantiate(d)
    forward = Section("Forward pass, element by element")
    back = Section("Backward pass, element by element")
    for name, expr in sd.definitions:
        sec = forward if name[0] in "zah" or name.startswith("p") else back
        value = _fmt(float(sp.Symbol(name, real=True).xreplace(vals))) if vals else ""
        sec.eqs.append(_eq(lx.latex_name(name), name, expr, value=value))
    grads = Section(
        "Parameter gradients, element by element",
        "Each is the product of its chain-rule factors"
        + ("" if d.scale == 1 else f", times c = {lx.text(d.scale)}, summed over the batch")
        + ".",
    )
    for g in sd.gradients:
        grads.eqs.append(_scalar_gradient(g, vals, d.scale))
    return [forward, back, grads, sd]


def _partial(num: str, den: str, tex: bool) -> str:
    if tex:
        return rf"\frac{{\partial {lx.latex_name(num)}}}{{\partial {lx.latex_name(den)}}}"
    return f"dE/d{den}" if num == "E" else f"d{num}/d{den}"


MAX_TERM_NUMBERS = 16  # a sum over more places shows its total only


def _sum_gradient(g: Gradient, vals: dict | None, c: sp.Expr) -> Eq:
    """A parameter used at several places p of a sample (a kernel at every position):
    dE/dw = c Σ_p ∂E/∂z_p · ∂z_p/∂w, each term written out, with numbers."""
    tensor = g.terms[0][0].den.split("_")[0]
    lhs_t, lhs_x = _partial("E", g.element, True), _partial("E", g.element, False)
    cpre_t = "" if c == 1 else lx.latex(c) + r" \cdot "
    cpre_x = "" if c == 1 else lx.text(c) + " * "
    ztex = lx.latex_name(tensor)
    chain_t = (rf"\sum_p \frac{{\partial E}}{{\partial {ztex}_p}} \frac{{\partial {ztex}_p}}"
               rf"{{\partial {lx.latex_name(g.element)}}}")  # fmt: skip
    chain_x = f"sum_p dE/d{tensor}_p * d{tensor}_p/d{g.element}"
    body = sp.Add(*(a.expr * b.expr for a, b in g.terms), evaluate=False)
    tex = f"{lhs_t} = {cpre_t}{chain_t} = {cpre_t}" + rf"\left({lx.latex(body)}\right)"
    txt = f"{lhs_x} = {cpre_x}{chain_x} = {cpre_x}({lx.text(body)})"
    value = ""
    if vals is not None:
        total = float(g.expr.xreplace(vals))
        value = _fmt(total)
        if len(g.terms) <= MAX_TERM_NUMBERS:
            nums = [f"{_fmt(float(a.expr.xreplace(vals)))}×{_fmt(float(b.expr.xreplace(vals)))}"
                    for a, b in g.terms]  # fmt: skip
            value = " + ".join(nums) + f" = {_fmt(total)}"
            if c != 1:
                value = f"{_fmt(float(c.xreplace(vals)))} × ({' + '.join(nums)}) = {_fmt(total)}"
    return Eq(tex, txt, value)


def _scalar_gradient(g: Gradient, vals: dict | None, c: sp.Expr) -> Eq:
    if g.terms:
        return _sum_gradient(g, vals, c)
    lhs_t, lhs_x = _partial("E", g.element, True), _partial("E", g.element, False)
    chain_t = r" \cdot ".join(_partial(f.num, f.den, True) for f in g.factors)
    chain_x = " * ".join(_partial(f.num, f.den, False) for f in g.factors)
    cpre_t = "" if c == 1 else lx.latex(c) + r" \cdot "
    cpre_x = "" if c == 1 else lx.text(c) + " * "
    tex = f"{lhs_t} = {cpre_t}{chain_t}"
    txt = f"{lhs_x} = {cpre_x}{chain_x}"
    (only,) = g.factors if len(g.factors) == 1 else (None,)
    if only is not None and only.den == g.element and not only.expr.is_Symbol:
        # one factor that is a sum (over time steps or paths): show the sum
        tex += f" = {cpre_t}" + rf"\left({lx.latex(only.expr)}\right)"
        txt += f" = {cpre_x}({lx.text(only.expr)})"
    if len(g.factors) > 1:
        tex += (
            " = "
            + cpre_t
            + r" \cdot ".join(
                lx.latex(f.expr) if not f.expr.is_Add else rf"\left({lx.latex(f.expr)}\right)"
                for f in g.factors
            )
        )
        txt += " = " + cpre_x + " * ".join(f"({lx.text(f.expr)})" for f in g.factors)
    value = ""
    if vals is not None:
        nums = [float(f.expr.xreplace(vals)) for f in g.factors]
        total = float(g.expr.xreplace(vals))
        value = " × ".join(_fmt(v) for v in nums) + f" = {_fmt(total)}"
        if c != 1:
            value = f"{_fmt(float(c.xreplace(vals)))} × {value}"
    return Eq(tex, txt, value)


def _scalar_updates(d: Derivation, sd, ev) -> Section:
    """Each element after one optimizer step, with the rule written in its own names."""
    from ..core.optimizers import G, P
    from ..core.scalar import sym

    rule = d.optimizer
    s = Section("Updated parameters, element by element")
    final = rule.assignments[-1].expr
    for g in sd.gradients:
        with sp.evaluate(False):
            expr = final.xreplace({P: sym(g.element), G: sym("dE_" + g.element)})
        value = ""
        if ev is not None:
            arr = ev.updated[g.param]
            value = _fmt(float(arr[g.index] if g.index else arr))
        lhs = "{" + lx.latex_name(g.element) + "}^{+}"
        s.eqs.append(_eq(lhs, g.element + "+", expr, value=value))
    return s
