"""Op kinds of gated recurrent layers (gru, lstm): one loop over time, never T copies of the graph.

``cell`` scans a cell (``core.cells``: a straight-line program of elementwise SymPy statements)
over t = 1..T from zero states and keeps every statement's value at every step: its output is
[T, K·H] per sample, statement k's H values at k·H (h among them; a ``slice`` picks it out).
Its pullback is backpropagation through time: ``cell_bptt`` runs the cell's derived backward
step from t = T down to 1, carrying ∂ℓ/∂(state) back in time (the recurrent path Uᵀ δq_{t+1}
plus each state's direct path), and writes per step [δx (G·H) | δq (G·H, unless tied) |
direct ∂ℓ/∂(previous states) (S·H)]; slices of it feed the engine's sequence gradients
(``grad_seq_weight``: Σ_t δx_t x_tᵀ for W, Σ_t δq_t h_{t-1}ᵀ for U; ``grad_seq_bias``) and
``seq_matvec_t`` (Wᵀ δx_t to the input sequence).

The attrs carry the cell: ``stmts`` (statement names), ``fwd`` (their expressions in the
symbols k_x{g}, k_q{g}, k_p{s} and earlier k_{s}), ``states`` (h first), ``gates``, and the
backward step (``btemps``/``bvals``: cse temps; ``bouts``: outputs; ``braw``: outputs before
cse), each target printing them with its own printer inside its time loop.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..cells import sym
from ..ir import Op, Shape
from .base import Backward, Context, Elements, OpKind, elementwise, name_tex, register
from .recurrent import _cut


def layout(op: Op, ctx: Context | None = None) -> dict:
    """The sizes of a cell op (or its bptt op), in its attrs: units H, statements K, G·H, the
    states' statement indices, and the bptt output's blocks (dq0: where δq starts, carry:
    where the direct ∂ℓ/∂(previous state) start, width)."""
    keys = ("units", "gh", "dq0", "carry", "width", "state_at")
    out = {k: op.attr(k) for k in keys}
    out["k"] = len(op.attr("stmts"))
    out["dq"] = out["gh"] if out["dq0"] else 0
    return out


def cell_layout(units: int, gates: int, stmts: tuple, states: tuple, tied: bool) -> tuple:
    """The layout attrs of a cell op (see layout)."""
    gh = gates * units
    dq0 = 0 if tied else gh
    carry = gh + (0 if tied else gh)
    return (("units", units), ("gh", gh), ("dq0", dq0), ("carry", carry),
            ("width", carry + len(states) * units),
            ("state_at", tuple(stmts.index(s) for s in states)))  # fmt: skip


def _cell_shape(op: Op, ctx: Context) -> Shape:
    lay = layout(op, ctx)
    return (ctx.shape(op.args[4])[0], lay["k"] * lay["units"])


def _cell_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    w, u, b, br, inp = op.args
    lay = layout(op, ctx)
    units, k = lay["units"], lay["k"]
    x = env[inp]
    dtype = x.dtype
    n, steps = x.shape[:2]
    xa = x @ env[w].T + (env[b] if b else 0)
    out = np.zeros((n, steps, k * units), dtype=dtype)
    prev = {s: np.zeros((n, units), dtype=dtype) for s in op.attr("states")}
    gates = op.attr("gates")
    for t in range(steps):
        q = prev["h"] @ env[u].T + (env[br] if br else 0)
        local = {f"k_p{s}": v for s, v in prev.items()}
        for gi, g in enumerate(gates):
            local[f"k_x{g}"] = xa[:, t, gi * units : (gi + 1) * units]
            local[f"k_q{g}"] = q[:, gi * units : (gi + 1) * units]
        for ki, (s, e) in enumerate(zip(op.attr("stmts"), op.attr("fwd"), strict=True)):
            names = {v.name: local[v.name] for v in e.free_symbols}
            local[f"k_{s}"] = np.broadcast_to(elementwise(e, names, dtype), (n, units))
            out[:, t, ki * units : (ki + 1) * units] = local[f"k_{s}"]
        prev = {s: local[f"k_{s}"] for s in prev}
    return out


def _cell_text(op: Op, ctx: Context) -> str:
    steps = ctx.shape(op.args[4])[0]
    states = ", ".join(f"{s}_0 = 0" for s in op.attr("states"))
    return (f"{op.out}_t = [{', '.join(op.attr('stmts'))}]_t ({op.attr('cell')}), t = 1..{steps},"
            f" {states}: {op.attr('show')}")  # fmt: skip


def _cell_latex(op: Op, ctx: Context) -> str:
    steps = ctx.shape(op.args[4])[0]
    states = r",\ ".join(f"{s}_0 = \\mathbf{{0}}" for s in op.attr("states"))
    return (rf"{name_tex(op.out)}_t = \left[{', '.join(op.attr('stmts'))}\right]_t,\ "
            rf"t = 1..{steps},\ {states}:\quad {op.attr('show_tex')}")  # fmt: skip


def _cell_elements(op: Op, el: Elements) -> dict:
    """Every statement's value at every step in x_t, the parameters and the previous step's
    saved values (substituting repeatedly unrolls the recurrence)."""
    w, u, b, br, inp = op.args
    lay = layout(op, el.ctx)
    units, fan_in = lay["units"], el.ctx.shape(w)[1]
    steps = el.ctx.shape(inp)[0]
    stmts, states, gates = op.attr("stmts"), op.attr("states"), op.attr("gates")
    at = dict(zip(states, lay["state_at"], strict=True))
    out: dict = {}
    for t in range(steps):
        for j in range(units):
            subs: dict = {}
            for s in states:
                subs[sym(f"k_p{s}")] = (el.tensor(op.out, (t - 1, at[s] * units + j)) if t
                                        else sp.Integer(0))  # fmt: skip
            for gi, g in enumerate(gates):
                row = gi * units + j
                xs = sp.Add(*(el.param(w, (row, f)) * el.tensor(inp, (t, f))
                              for f in range(fan_in)))  # fmt: skip
                qs = sp.Integer(0)
                if t:
                    qs = sp.Add(*(el.param(u, (row, i)) *
                                  el.tensor(op.out, (t - 1, at["h"] * units + i))
                                  for i in range(units)))  # fmt: skip
                subs[sym(f"k_x{g}")] = xs + (el.param(b, (row,)) if b else 0)
                subs[sym(f"k_q{g}")] = qs + (el.param(br, (row,)) if br else 0)
            for ki, s in enumerate(stmts):
                subs[sym(f"k_{s}")] = el.tensor(op.out, (t, ki * units + j))
            for ki, e in enumerate(op.attr("fwd")):
                out[(t, ki * units + j)] = e.xreplace(subs)
    return out


def _cell_pullback(op: Op, g: str, bw: Backward) -> None:
    w, u, b, br, inp = op.args
    params = [p for p in (w, u, b, br) if p and bw.requires(p)]
    if not params and not bw.requires(inp):
        return
    lay = layout(op, bw.ctx)
    gh, units = lay["gh"], lay["units"]
    delta, i = op.attr("delta"), op.attr("layer")
    why = (f"BPTT through the {op.attr('cell')} cell, t = T..1: the derived backward step, "
           "∂ℓ/∂(state) carried back in time (the recurrent path Uᵀ δq_(t+1) and each state's "
           "direct path)")  # fmt: skip
    bw.emit(Op("cell_bptt", delta, (u, op.out, g), why=why, attrs=op.attrs))

    def part(name: str, start: int, stop: int, what: str, src: str = delta) -> str:
        bw.emit(Op("slice", name, (src,), why=what,
                   attrs=(("start", start), ("stop", stop), ("axis", 1))))  # fmt: skip
        return name

    dx = part(f"dx{i}", 0, gh, "δx_t: ∂ℓ/∂(W x_t + b), every gate")
    dq = dx if op.attr("tied") else part(f"dq{i}", gh, 2 * gh, "δq_t: ∂ℓ/∂(U h_(t-1) + br)")
    h = ""
    if bw.requires(u):
        hb = lay["state_at"][0]
        h = part(f"hs{i}", hb * units, (hb + 1) * units, "the hidden states h_t, for ∂E/∂U",
                 op.out)  # fmt: skip
    # the gradients before the product that reads W (the C target fuses a step into them)
    if bw.requires(w):
        bw.emit(Op("grad_seq_weight", f"d{w}", (dx, inp, w), scale=bw.scale,
                   why="∂E/∂W = c Σ_n Σ_t δx_t x_tᵀ", attrs=(("shift", 0),)))  # fmt: skip
    if h:
        bw.emit(Op("grad_seq_weight", f"d{u}", (dq, h, u), scale=bw.scale,
                   why="∂E/∂U = c Σ_n Σ_t δq_t h_(t−1)ᵀ (h_0 = 0)",
                   attrs=(("shift", 1),)))  # fmt: skip
    for p, d in ((b, dx), (br, dq)):
        if p and bw.requires(p):
            bw.emit(Op("grad_seq_bias", f"d{p}", (d, p), scale=bw.scale,
                       why=f"∂E/∂{p} = c Σ_n Σ_t δ_t"))  # fmt: skip
    if bw.requires(inp):
        slot = bw.slot(inp, op.out)
        bw.contribute(inp, Op("seq_matvec_t", slot, (w, dx), why=f"∂ℓ/∂{inp}_t = {w}ᵀ δx_t"))


register(OpKind("cell", _cell_shape, _cell_eval, _cell_text, _cell_latex, _cell_elements,
                _cell_pullback))  # fmt: skip


# ---- cell_bptt: the cell's backward step, t = T..1 ---------------------------------------------


def _bptt_shape(op: Op, ctx: Context) -> Shape:
    return (ctx.shape(op.args[1])[0], layout(op, ctx)["width"])


def _bptt_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    u, s, g = op.args
    lay = layout(op, ctx)
    units, gh, carry = lay["units"], lay["gh"], lay["carry"]
    dq0 = gh if lay["dq"] else 0
    sv, gv = env[s], env[g]
    dtype = sv.dtype
    n, steps = sv.shape[:2]
    out = np.zeros((n, steps, lay["width"]), dtype=dtype)
    stmts, states = op.attr("stmts"), op.attr("states")
    at = dict(zip(states, lay["state_at"], strict=True))

    def block(a, t, k):
        return a[:, t, k * units : (k + 1) * units]

    for t in reversed(range(steps)):
        local = {}
        for m, st in enumerate(states):
            if t + 1 < steps and not _cut(op, t):
                d = out[:, t + 1, carry + m * units : carry + (m + 1) * units]
                if st == "h":
                    d = d + out[:, t + 1, dq0 : dq0 + gh] @ env[u]
                local[f"k_d{st}"] = d
            else:
                local[f"k_d{st}"] = np.zeros((n, units), dtype=dtype)
            local[f"k_p{st}"] = block(sv, t - 1, at[st]) if t else np.zeros((n, units), dtype)
        for ki, st in enumerate(stmts):
            local[f"k_{st}"] = block(sv, t, ki)
            local[f"k_e{st}"] = block(gv, t, ki)
        for name, e in zip(op.attr("btemps"), op.attr("bvals"), strict=True):
            local[name] = np.broadcast_to(
                elementwise(e, {v.name: local[v.name] for v in e.free_symbols}, dtype), (n, units)
            )
        for ki, e in enumerate(op.attr("bouts")):
            value = elementwise(e, {v.name: local[v.name] for v in e.free_symbols}, dtype)
            out[:, t, ki * units : (ki + 1) * units] = np.broadcast_to(value, (n, units))
    return out


def _bptt_text(op: Op, ctx: Context) -> str:
    steps = ctx.shape(op.args[1])[0]
    k = op.attr("truncate", 0)
    cut = f"; nothing carried from t+1 = {k}, {2 * k}, ... (bptt: {k})" if k else ""
    return (f"{op.out}_t = [dx, {'' if op.attr('tied') else 'dq, '}direct d(state)]_t, "
            f"t = {steps}..1, dh_(t+1) = direct dh + {op.args[0]}.T @ dq_(t+1), every "
            f"d(state)_{steps + 1} = 0{cut}: {op.attr('show_back')}")  # fmt: skip


def _bptt_latex(op: Op, ctx: Context) -> str:
    steps = ctx.shape(op.args[1])[0]
    u = name_tex(op.args[0])
    k = op.attr("truncate", 0)
    cut = rf",\ \text{{none at }} t+1 = {k}, {2 * k}, \ldots" if k else ""
    return (rf"{name_tex(op.out)}_t,\ t = {steps}..1,\ \delta h_{{t+1}} = \delta h^{{direct}}"
            rf"_{{t+1}} + \left({u}\right)^T \delta q_{{t+1}}{cut}:\quad "
            f"{op.attr('show_back_tex')}")  # fmt: skip


def _bptt_elements(op: Op, el: Elements) -> dict:
    """Every step's backward outputs in the saved values, what reaches the cell from above,
    U and the next step's outputs: the BPTT recurrence."""
    u, s, g = op.args
    lay = layout(op, el.ctx)
    units, gh, carry = lay["units"], lay["gh"], lay["carry"]
    dq0 = gh if lay["dq"] else 0
    steps = el.ctx.shape(s)[0]
    stmts, states = op.attr("stmts"), op.attr("states")
    at = dict(zip(states, lay["state_at"], strict=True))
    raw = op.attr("braw")
    out: dict = {}
    for t in reversed(range(steps)):
        for j in range(units):
            subs: dict = {}
            for m, st in enumerate(states):
                d = sp.Integer(0)
                if t + 1 < steps and not _cut(op, t):
                    d = el.tensor(op.out, (t + 1, carry + m * units + j))
                    if st == "h":
                        d += sp.Add(*(el.param(u, (i, j)) * el.tensor(op.out, (t + 1, dq0 + i))
                                      for i in range(gh)))  # fmt: skip
                subs[sym(f"k_d{st}")] = d
                subs[sym(f"k_p{st}")] = (el.tensor(s, (t - 1, at[st] * units + j)) if t
                                         else sp.Integer(0))  # fmt: skip
            for ki, st in enumerate(stmts):
                subs[sym(f"k_{st}")] = el.tensor(s, (t, ki * units + j))
                subs[sym(f"k_e{st}")] = el.tensor(g, (t, ki * units + j))
            for ki, e in enumerate(raw):
                out[(t, ki * units + j)] = e.xreplace(subs)
    return out


register(OpKind("cell_bptt", _bptt_shape, _bptt_eval, _bptt_text, _bptt_latex, _bptt_elements))
