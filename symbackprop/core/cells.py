"""Gated recurrent cells (GRU, LSTM) as elementwise SymPy math, and their derived backward step.

A cell is a straight-line program of per-unit statements, evaluated at every time step t in
order: each statement is ``name = act(pre)`` (a gate: sigmoid or tanh of a pre-activation) or
``name = expr``. Its inputs are, for every gate g (PyTorch's order), the input part
``k_x{g}`` = (W x_t + b) rows of g and the recurrent part ``k_q{g}`` = (U h_{t-1} + br) rows of g,
and the previous states ``k_p{s}`` (h_{t-1}, and c_{t-1} for the LSTM). Every statement's
value at every step is kept (the forward pass's saved values), so the backward step needs no
recomputation.

The backward step is derived here, once per cell, by reverse accumulation over the statements
with ``sympy.diff`` (a gate's derivative in its output, σ' = σ(1 − σ), tanh' = 1 − tanh², as
``activations.derive_activation`` rewrites it): given what reaches each statement's value from
outside (``k_e{s}``: the layers above, zero for gates) and from step t+1 (``k_d{s}`` for the
states), it gives ∂ℓ/∂(input part), ∂ℓ/∂(recurrent part) per gate and the direct part of
∂ℓ/∂(previous state). Shared subexpressions are named (``k_t0``, ...) by sympy.cse.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import activations
from .symbols import A, X


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class Cell:
    """One gated cell: its gates (PyTorch's order), statements and states (h first)."""

    name: str
    gates: tuple[str, ...]
    statements: tuple[tuple[str, str | None, sp.Expr], ...]  # (name, activation or None, expr)
    states: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s for s, _, _ in self.statements)


def _gru() -> Cell:
    x, q = ({g: sym(f"k_{p}{g}") for g in "rzn"} for p in "xq")
    r, z, m, n = sym("k_r"), sym("k_z"), sym("k_m"), sym("k_n")
    stmts = (
        ("r", "sigmoid", x["r"] + q["r"]),
        ("z", "sigmoid", x["z"] + q["z"]),
        ("m", None, q["n"]),  # U_n h_{t-1} + b_hn, kept: ∂n/∂r needs it
        ("n", "tanh", x["n"] + r * m),
        ("h", None, (1 - z) * n + z * sym("k_ph")),
    )
    return Cell("gru", ("r", "z", "n"), stmts, ("h",))


def _lstm() -> Cell:
    x, q = ({g: sym(f"k_{p}{g}") for g in "ifgo"} for p in "xq")
    i, f, g, o, c, k = (sym(f"k_{s}") for s in "ifgock")
    stmts = (
        ("i", "sigmoid", x["i"] + q["i"]),
        ("f", "sigmoid", x["f"] + q["f"]),
        ("g", "tanh", x["g"] + q["g"]),
        ("o", "sigmoid", x["o"] + q["o"]),
        ("c", None, f * sym("k_pc") + i * g),
        ("k", "tanh", c),  # tanh(c_t), kept for h_t's backward
        ("h", None, o * k),
    )
    return Cell("lstm", ("i", "f", "g", "o"), stmts, ("h", "c"))


CELLS = {"gru": _gru(), "lstm": _lstm()}


@dataclass(frozen=True)
class Derived:
    """A cell's code: the forward statements' expressions (gates stabilized as the engine
    computes them), and the backward step's named temps and outputs: ∂ℓ/∂x-part per gate, then
    (unless ``tied``: equal to those, as in the LSTM) ∂ℓ/∂q-part per gate, then the direct
    ∂ℓ/∂(previous state) per state."""

    forward: tuple[sp.Expr, ...]
    temps: tuple[tuple[sp.Symbol, sp.Expr], ...]
    outputs: tuple[sp.Expr, ...]
    raw: tuple[sp.Expr, ...]  # the outputs before cse (documents, index forms)
    tied: bool


def derive_cell(cell: Cell) -> Derived:
    """The forward code and the derived backward step of ``cell``."""
    forward = []
    for _, act, expr in cell.statements:
        if act is None:
            forward.append(expr)
        else:
            forward.append(activations.stabilize(activations.make(act).expr).xreplace({X: expr}))
    adj: dict[sp.Symbol, sp.Expr] = {}
    for s in cell.names:
        adj[sym(f"k_{s}")] = sym(f"k_e{s}") + (sym(f"k_d{s}") if s in cell.states else 0)
    for s, act, expr in reversed(cell.statements):
        local = adj[sym(f"k_{s}")]
        if act is not None:
            deriv = activations.derive_activation(activations.make(act))
            assert deriv.in_output, act
            local = local * deriv.expr.xreplace({A: sym(f"k_{s}")})
        for u in sorted(expr.free_symbols, key=str):
            adj[u] = adj.get(u, sp.Integer(0)) + local * sp.diff(expr, u)
    zero = sp.Integer(0)
    dx = [adj.get(sym(f"k_x{g}"), zero) for g in cell.gates]
    dq = [adj.get(sym(f"k_q{g}"), zero) for g in cell.gates]
    dp = [adj.get(sym(f"k_p{s}"), zero) for s in cell.states]
    tied = all(sp.expand(a - b) == 0 for a, b in zip(dx, dq, strict=True))
    raw = tuple(dx + ([] if tied else dq) + dp)
    allowed = {f"k_{s}" for s in cell.names} | {f"k_e{s}" for s in cell.names}
    allowed |= {f"k_d{s}" for s in cell.states} | {f"k_p{s}" for s in cell.states}
    used = {s.name for e in raw for s in e.free_symbols}
    assert used <= allowed, used - allowed  # the backward reads saved values only
    temps, outputs = sp.cse(list(raw), symbols=sp.numbered_symbols("k_t", real=True))
    return Derived(tuple(forward), tuple(temps), tuple(outputs), raw, tied)


# ---- display: the recurrences in the documents ----------------------------------------------


def _display(cell: Cell, w: str, u: str, inp: str) -> dict[sp.Symbol, tuple[str, str]]:
    """Text and LaTeX names of the cell's symbols at step t."""
    out = {}
    for g in cell.gates:
        out[sym(f"k_x{g}")] = (f"({w} @ {inp}_t + b)_{g}", rf"\left(W {inp}_t + b\right)_{g}")
        out[sym(f"k_q{g}")] = (f"({u} @ h_(t-1) + br)_{g}",
                               rf"\left(U h_{{t-1}} + b_r\right)_{g}")  # fmt: skip
    for s in cell.names:
        out[sym(f"k_{s}")] = (f"{s}_t", f"{s}_t")
        out[sym(f"k_e{s}")] = (f"dl/d{s}_t", rf"\frac{{\partial \ell}}{{\partial {s}_t}}")
    for s in cell.states:
        out[sym(f"k_p{s}")] = (f"{s}_(t-1)", f"{s}_{{t-1}}")
        out[sym(f"k_d{s}")] = (f"d{s}_(t+1)", rf"\delta {s}_{{t+1}}")
    return out


_SIGMA = sp.Function("sigma")


def show(cell: Cell, w: str, u: str, inp: str) -> tuple[str, str]:
    """The forward statements as text and LaTeX."""
    names = _display(cell, w, u, inp)
    texts, texes = [], []
    for s, act, expr in cell.statements:
        e = expr if act is None else (_SIGMA if act == "sigmoid" else sp.tanh)(expr)
        text = sp.sstr(e.xreplace({k: sym(v[0]) for k, v in names.items() if k in e.free_symbols}))
        texts.append(f"{s}_t = {text}")
        tex = sp.latex(e, symbol_names={k: v[1] for k, v in names.items()})
        texes.append(f"{s}_t = " + tex.replace(r"\operatorname{sigma}", r"\sigma"))
    return "; ".join(texts), r",\quad ".join(texes)


def show_backward(cell: Cell, d: Derived, w: str, u: str, inp: str) -> tuple[str, str]:
    """The backward step's outputs (before cse) as text and LaTeX."""
    names = _display(cell, w, u, inp)
    labels = [(f"dx{g}_t", rf"\delta x^{{{g}}}_t") for g in cell.gates]
    if not d.tied:
        labels += [(f"dq{g}_t", rf"\delta q^{{{g}}}_t") for g in cell.gates]
    labels += [(f"d{s}_t (direct)", rf"\delta {s}_t") for s in cell.states]
    outside = {sym(f"k_e{s}"): 0 for s in cell.names if s != "h"}  # only h is read outside
    texts, texes = [], []
    for (lt, ltex), e in zip(labels, d.raw, strict=True):
        e = e.xreplace(outside)
        text = sp.sstr(e.xreplace({k: sym(v[0]) for k, v in names.items() if k in e.free_symbols}))
        texts.append(f"{lt} = {text}")
        texes.append(f"{ltex} = " + sp.latex(e, symbol_names={k: v[1] for k, v in names.items()}))
    return "; ".join(texts), r",\quad ".join(texes)


__all__ = ["CELLS", "Cell", "Derived", "derive_cell", "show", "show_backward", "sym"]
