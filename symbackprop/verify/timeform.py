"""A recurrent weight's correct formula in the time-indexed notation verify reads (issue 13/15).

``dE/dU1 = sum_t(delta1[t] @ h1[t-1].T)`` with the BPTT recurrence it needs,
``delta1[t] = (dh1[t] + U1.T @ delta1[t+1]) * (1 - h1[t]**2)``, ``dh1[T] = da1``,
``dh1[t] = 0``; in LaTeX ``\\sum_{t=1}^{T} \\boldsymbol{\\delta}^{(1)}_t
\\left(\\mathbf{h}^{(1)}_{t-1}\\right)^T``. Steps outside 1..T are 0 (h_0 = 0, δ_{T+1} = 0),
so the sums run over every step. Each line is a ``(text, LaTeX)`` pair that ``verify.steps``
and ``verify.latex`` read back (tests/test_verify_recurrent.py pastes every one back).
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence

from ..core.ir import Op
from ..printing import latex as lx

_STEP = {"t": "t", "t-1": "{t-1}", "t+1": "{t+1}", "T": "T"}
SEQUENCE_KINDS = {"rnn"}  # the layer kinds whose matrix form verify prints and reads


def sequences(d, steps: int) -> set[str]:
    """The derivation's tensors with a time axis ([T, units] per sample)."""
    return {n for n, s in d.shapes.items() if len(s) == 2 and s[0] == steps}


def _tex(name: str, at: str) -> str:
    """A sequence at step ``at`` (t, t-1, t+1, T or a number, printed ``_{t=2}``)."""
    sub = _STEP.get(at, f"{{t={at}}}")
    if m := re.fullmatch(r"d(?!elta)([a-z]+)(\d+)", name):  # ∂ℓ/∂h: the step inside
        inner = rf"\mathbf{{{m.group(1)}}}^{{({m.group(2)})}}"
        return rf"\frac{{\partial \ell}}{{\partial {inner}_{sub}}}"
    return f"{lx.latex_name(name)}_{sub}"


def _at(expr: sp.Expr, seqs: set[str], at: str) -> tuple[str, str]:
    """A map's expression with every sequence at step ``at``, in text and LaTeX."""
    txt, tex = lx.text(expr), lx.latex(expr, hadamard=True)
    names = sorted(seqs, key=len, reverse=True)  # one pass each: t[t] is not indexed again
    txt = re.sub(r"\b(" + "|".join(names) + r")\b", lambda m: f"{m.group(1)}[{at}]", txt)
    texs = {lx.latex_name(n): _tex(n, at) for n in names}
    pattern = "|".join(re.escape(k) for k in sorted(texs, key=len, reverse=True))
    return txt, re.sub(pattern, lambda m: texs[m.group(0)], tex)


def _df(op: Op, h: str, at: str = "t") -> tuple[str, str]:
    """f'(z_t) of an rnn step, written in its output h_t, as a factor of a product: in
    parentheses when a sum (tanh: (1 - h1[t]**2)), bare when it binds tighter (relu's
    indicator (h1[t] > 0), which prints its own)."""
    from ..core.ops.recurrent import HT

    df = op.attr("df").xreplace({HT: sp.Symbol(h, real=True)})
    txt, tex = _at(df, {h}, at)
    if precedence(df) < PRECEDENCE["Mul"]:
        txt, tex = f"({txt})", rf"\left({tex}\right)"
    return txt, tex


def line(o: Op, d, steps: int, seqs: set[str]) -> list[tuple[str, str]] | None:
    """One backward op as time-indexed definitions [(text, LaTeX)], None when it has no time
    axis (the caller prints it as for a dense net)."""
    a = o.args
    if o.out not in seqs:
        return None
    if o.kind == "rnn_bptt":
        u, h, g = a
        df, dftex = _df(o, h)
        d_ = o.out
        rec = f"{d_}[t] = ({g}[t] + {u}.T @ {d_}[t+1]) * {df}"
        tex = (rf"{_tex(d_, 't')} = \left({_tex(g, 't')} + \left({lx.latex_name(u)}\right)^T "
               rf"{_tex(d_, 't+1')}\right) \odot {dftex}")  # fmt: skip
        out = [(rec, tex)]
        k = o.attr("truncate", 0)
        for s in range(k, steps, k) if k else ():  # truncated BPTT: no Uᵀδ_{s+1} at a cut
            dfs, dfstex = _df(o, h, str(s))
            out.append(
                (
                    f"{d_}[{s}] = {g}[{s}] * {dfs}",
                    rf"{_tex(d_, str(s))} = {_tex(g, str(s))} \odot {dfstex}",
                )
            )
        return out
    if o.kind == "time_last_backward":
        (g,) = a
        return [
            (f"{o.out}[T] = {g}", f"{_tex(o.out, 'T')} = {lx.latex_name(g)}"),
            (f"{o.out}[t] = 0", f"{_tex(o.out, 't')} = 0"),
        ]
    if o.kind in ("seq_matvec_t", "matvec_t") and a[1] in seqs:
        w, g = a
        return [
            (
                f"{o.out}[t] = {w}.T @ {g}[t]",
                rf"{_tex(o.out, 't')} = \left({lx.latex_name(w)}\right)^T {_tex(g, 't')}",
            )
        ]
    if o.kind == "map" and o.expr is not None:
        txt, tex = _at(o.expr, seqs, "t")
        return [(f"{o.out}[t] = {txt}", f"{_tex(o.out, 't')} = {tex}")]
    return None


def gradient(op: Op, seqs: set[str]) -> tuple[str, str] | None:
    """Σ_t of a weight's or bias's per-step gradient; None when it has no time axis."""
    if op.kind in ("grad_seq_weight", "grad_weight") and op.args[0] in seqs:
        g, inp = op.args[:2]
        prev = "t-1" if op.kind == "grad_seq_weight" and op.attr("shift") else "t"
        return (
            f"sum_t({g}[t] @ {inp}[{prev}].T)",
            rf"\sum_{{t=1}}^{{T}} {_tex(g, 't')} \left({_tex(inp, prev)}\right)^T",
        )
    if op.kind in ("grad_seq_bias", "grad_bias") and op.args[0] in seqs:
        g = op.args[0]
        return f"sum_t({g}[t])", rf"\sum_{{t=1}}^{{T}} {_tex(g, 't')}"
    return None


__all__ = ["SEQUENCE_KINDS", "gradient", "line", "sequences"]
