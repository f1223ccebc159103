"""Op kinds of recurrent layers: the time axis is a loop (a scan), never T copies of the graph.

``rnn`` scans h_t = f(W x_t + U h_{t-1} + b + br) over t = 1..T from h_0 = 0 and writes every
step's h ([T, units] per sample). Its pullback is backpropagation through time, as ops that are
loops too: ``rnn_bptt`` runs the recurrence δ_t = (g_t + Uᵀ δ_{t+1}) ⊙ f'(z_t) backwards in
time (g_t: what reaches h_t from the layers above), then ``grad_seq_weight`` sums
δ_t x_tᵀ (W) and δ_t h_{t-1}ᵀ (U) over the steps and the batch, ``grad_seq_bias`` sums δ_t,
and ``seq_matvec_t`` sends Wᵀ δ_t to the input sequence. ``time_last`` picks h_T for a
many-to-one layer; its pullback ``time_last_backward`` puts g at step T and zeros before.

The activation f and its derivative f' (written in the step's output h, as tanh' = 1 − h²) are
SymPy expressions in the symbols ``zt`` and ``ht`` (attrs ``f`` and ``df``), printed by each
target's printer inside its time loop. The index forms unroll the loop (for scalar mode and the
pullback proofs on small T); the cost of deriving and of the emitted code does not grow with T.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..ir import Op, Shape, vec
from .base import (
    Backward,
    Context,
    Elements,
    OpKind,
    c_tex,
    c_text,
    elementwise,
    name_tex,
    param_shape,
    register,
    scale_of,
)

ZT, HT = vec("zt"), vec("ht")  # one step's pre-activation and output, in the attrs f and df


def _f(op: Op, env_value: np.ndarray, symbol: sp.Symbol, key: str, dtype) -> np.ndarray:
    return np.broadcast_to(
        elementwise(op.attr(key), {symbol.name: env_value}, dtype), env_value.shape
    )


# ---- rnn: h_t = f(W x_t + U h_{t-1} + b + br) --------------------------------------------------


def _rnn_shape(op: Op, ctx: Context) -> Shape:
    w, _, _, _, inp = op.args
    return (ctx.shape(inp)[0], ctx.shape(w)[0])


def _rnn_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    w, u, b, br, inp = op.args
    x = env[inp]
    dtype = x.dtype
    n, steps = x.shape[:2]
    units = env[w].shape[0]
    xw = x @ env[w].T
    if b:
        xw = xw + env[b]
    if br:
        xw = xw + env[br]
    h = np.zeros((n, steps, units), dtype=dtype)
    prev = np.zeros((n, units), dtype=dtype)
    for t in range(steps):
        prev = _f(op, xw[:, t] + prev @ env[u].T, ZT, "f", dtype)
        h[:, t] = prev
    return h


def _affine_text(op: Op) -> str:
    w, u, b, br, inp = op.args
    return f"{w} @ {inp}_t + {u} @ {op.out}_(t-1)" + "".join(f" + {p}" for p in (b, br) if p)


def _rnn_text(op: Op, ctx: Context) -> str:
    return (f"{op.out}_t = {op.attr('act')}({_affine_text(op)}), t = 1..{_rnn_shape(op, ctx)[0]},"
            f" {op.out}_0 = 0")  # fmt: skip


def _rnn_latex(op: Op, ctx: Context) -> str:
    w, u, b, br, inp = op.args
    h = name_tex(op.out)
    inner = f"{name_tex(w)} {name_tex(inp)}_t + {name_tex(u)} {h}_{{t-1}}"
    inner += "".join(f" + {name_tex(p)}" for p in (b, br) if p)
    act = op.attr("act")
    steps = _rnn_shape(op, ctx)[0]
    return (rf"{h}_t = \operatorname{{{act}}}\left({inner}\right),\ t = 1..{steps},\ "
            rf"{h}_0 = \mathbf{{0}}")  # fmt: skip


def _rnn_elements(op: Op, el: Elements) -> dict:
    """h_t's elements in x_t, the parameters and h_{t-1}'s elements: the recurrence, one step
    per element (substituting repeatedly unrolls it, as the pullback proofs do)."""
    w, u, b, br, inp = op.args
    units, fan_in = el.ctx.shape(w)
    steps = el.ctx.shape(inp)[0]
    out: dict = {}
    for t in range(steps):
        for i in range(units):
            z = sp.Add(*(el.param(w, (i, j)) * el.tensor(inp, (t, j)) for j in range(fan_in)))
            if t:
                z += sp.Add(
                    *(el.param(u, (i, k)) * el.tensor(op.out, (t - 1, k)) for k in range(units))
                )
            z += sum((el.param(p, (i,)) for p in (b, br) if p), sp.Integer(0))
            out[(t, i)] = op.attr("f").xreplace({ZT: z})
    return out


def _rnn_pullback(op: Op, g: str, bw: Backward) -> None:
    w, u, b, br, inp = op.args
    params = [p for p in (w, u, b, br) if p and bw.requires(p)]
    if not params and not bw.requires(inp):
        return
    delta = op.attr("delta")
    why = "BPTT: δ_t = (∂ℓ/∂h_t + Uᵀ δ_{t+1}) ⊙ f'(z_t), δ_{T+1} = 0, backwards in time"
    bw.emit(Op("rnn_bptt", delta, (u, op.out, g), why=why, attrs=op.attrs))
    if bw.requires(w):
        bw.emit(Op("grad_seq_weight", f"d{w}", (delta, inp, w), scale=bw.scale,
                   why="∂E/∂W = c Σ_n Σ_t δ_t x_tᵀ", attrs=(("shift", 0),)))  # fmt: skip
    if bw.requires(u):
        bw.emit(Op("grad_seq_weight", f"d{u}", (delta, op.out, u), scale=bw.scale,
                   why="∂E/∂U = c Σ_n Σ_t δ_t h_{t−1}ᵀ (h_0 = 0)",
                   attrs=(("shift", 1),)))  # fmt: skip
    for p in (b, br):
        if p and bw.requires(p):
            bw.emit(Op("grad_seq_bias", f"d{p}", (delta, p), scale=bw.scale,
                       why="∂E/∂b = c Σ_n Σ_t δ_t"))  # fmt: skip
    if bw.requires(inp):
        slot = bw.slot(inp, op.out)
        why = f"∂ℓ/∂{inp}_t = {w}ᵀ δ_t"
        bw.contribute(inp, Op("seq_matvec_t", slot, (w, delta), why=why))


register(OpKind("rnn", _rnn_shape, _rnn_eval, _rnn_text, _rnn_latex, _rnn_elements,
                _rnn_pullback))  # fmt: skip


def _cut(op: Op, t: int) -> bool:
    """Truncated BPTT (``bptt: K``): no gradient flows from step t+1 back into step t where a
    new window of K steps starts (h_t detached there, as PyTorch's truncated BPTT does)."""
    k = op.attr("truncate", 0)
    return bool(k) and (t + 1) % k == 0


# ---- rnn_bptt: δ_t = (g_t + Uᵀ δ_{t+1}) ⊙ f'(z_t), backwards in time ---------------------------


def _bptt_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    u, h, g = op.args
    hv, gv = env[h], env[g]
    n, steps, units = hv.shape
    out = np.zeros_like(hv)
    nxt = np.zeros((n, units), dtype=hv.dtype)
    for t in reversed(range(steps)):
        if _cut(op, t):
            nxt = np.zeros_like(nxt)
        nxt = (gv[:, t] + nxt @ env[u]) * _f(op, hv[:, t], HT, "df", hv.dtype)
        out[:, t] = nxt
    return out


def _bptt_text(op: Op, ctx: Context) -> str:
    u, h, g = op.args
    steps = ctx.shape(h)[0]
    k = op.attr("truncate", 0)
    cut = f", and 0 at t+1 = {k}, {2 * k}, ... (bptt: {k})" if k else ""
    return (f"{op.out}_t = ({g}_t + {u}.T @ {op.out}_(t+1)) * {op.attr('act')}'(z_t), "
            f"t = {steps}..1, {op.out}_{steps + 1} = 0{cut}")  # fmt: skip


def _bptt_latex(op: Op, ctx: Context) -> str:
    u, h, g = op.args
    d = name_tex(op.out)
    steps = ctx.shape(h)[0]
    deriv = rf"\operatorname{{{op.attr('act')}}}'\left(\mathbf{{z}}_t\right)"
    k = op.attr("truncate", 0)
    cut = rf",\ {d}_{{t+1}} := \mathbf{{0}} \text{{ at }} t+1 = {k}, {2 * k}, \ldots" if k else ""
    end = rf"{d}_{{{steps + 1}}} = \mathbf{{0}}{cut}"
    return (rf"{d}_t = \left({name_tex(g)}_t + \left({name_tex(u)}\right)^T {d}_{{t+1}}\right)"
            rf" \odot {deriv},\ t = {steps}..1,\ {end}")  # fmt: skip


def _bptt_elements(op: Op, el: Elements) -> dict:
    """δ_t's elements in g_t, h_t, U and δ_{t+1}'s elements: the BPTT recurrence."""
    u, h, g = op.args
    steps, units = el.ctx.shape(h)
    out: dict = {}
    for t in reversed(range(steps)):
        for j in range(units):
            total = el.tensor(g, (t, j))
            if t + 1 < steps and not _cut(op, t):
                total += sp.Add(
                    *(el.param(u, (k, j)) * el.tensor(op.out, (t + 1, k)) for k in range(units))
                )
            out[(t, j)] = total * op.attr("df").xreplace({HT: el.tensor(h, (t, j))})
    return out


register(OpKind("rnn_bptt", lambda op, ctx: ctx.shape(op.args[1]), _bptt_eval, _bptt_text,
                _bptt_latex, _bptt_elements))  # fmt: skip


# ---- gradients summed over time: Σ_t δ_t inp_{t-shift}ᵀ, Σ_t δ_t; Wᵀ δ_t ------------------------


def _sgw_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, inp, _ = op.args
    k = op.attr("shift")
    gv, iv = env[g][:, k:], env[inp][:, : env[inp].shape[1] - k]
    c = scale_of(op, env, env["x"].dtype)
    return c * (gv.reshape(-1, gv.shape[-1]).T @ iv.reshape(-1, iv.shape[-1]))


def _sgw_text(op: Op, ctx: Context) -> str:
    g, inp, _ = op.args
    prev = f"{inp}_(t-1)" if op.attr("shift") else f"{inp}_t"
    return f"{op.out} = {c_text(op.scale)}sum_n sum_t {g}_t @ {prev}.T"


def _sgw_latex(op: Op, ctx: Context) -> str:
    g, inp, w = op.args
    lo, sub = (2, "t-1") if op.attr("shift") else (1, "t")
    return (rf"{name_tex('d' + w)} = {c_tex(op.scale)}\sum_n \sum_{{t={lo}}}^{{T}} "
            rf"{name_tex(g)}_{{n,t}} \left({name_tex(inp)}_{{n,{sub}}}\right)^T")  # fmt: skip


def _sgw_elements(op: Op, el: Elements) -> dict:
    g, inp, w = op.args
    rows, cols = el.ctx.shape(w)
    k = op.attr("shift")
    steps = el.ctx.shape(g)[0]
    return {(i, j): sp.Add(*(el.tensor(g, (t, i)) * el.tensor(inp, (t - k, j))
                             for t in range(k, steps)))
            for i in range(rows) for j in range(cols)}  # fmt: skip


register(OpKind("grad_seq_weight", param_shape, _sgw_eval, _sgw_text, _sgw_latex,
                _sgw_elements))  # fmt: skip


def _sgb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, _ = op.args
    return scale_of(op, env, env["x"].dtype) * env[g].sum(axis=(0, 1))


def _sgb_elements(op: Op, el: Elements) -> dict:
    g, _ = op.args
    steps, units = el.ctx.shape(g)
    return {(i,): sp.Add(*(el.tensor(g, (t, i)) for t in range(steps))) for i in range(units)}


register(OpKind("grad_seq_bias", param_shape, _sgb_eval,
                lambda op, ctx: f"{op.out} = {c_text(op.scale)}sum_n sum_t {op.args[0]}_t",
                lambda op, ctx: rf"{name_tex('d' + op.args[1])} = {c_tex(op.scale)}\sum_n "
                                rf"\sum_t {name_tex(op.args[0])}_{{n,t}}",
                _sgb_elements))  # fmt: skip


def _smt_elements(op: Op, el: Elements) -> dict:
    w, g = op.args
    units, fan_in = el.ctx.shape(w)
    steps = el.ctx.shape(g)[0]
    return {(t, j): sp.Add(*(el.param(w, (i, j)) * el.tensor(g, (t, i)) for i in range(units)))
            for t in range(steps) for j in range(fan_in)}  # fmt: skip


def _smt_shape(op: Op, ctx: Context) -> Shape:
    return (ctx.shape(op.args[1])[0], ctx.shape(op.args[0])[1])


register(OpKind("seq_matvec_t", _smt_shape,
                lambda op, env, ctx: env[op.args[1]] @ env[op.args[0]],
                lambda op, ctx: f"{op.out}_t = {op.args[0]}.T @ {op.args[1]}_t",
                lambda op, ctx: rf"{name_tex(op.out)}_t = \left({name_tex(op.args[0])}\right)^T "
                                rf"{name_tex(op.args[1])}_t",
                _smt_elements))  # fmt: skip


# ---- time_last: the last step of a sequence (many-to-one), and its pullback --------------------


def _last_pullback(op: Op, g: str, bw: Backward) -> None:
    (h,) = op.args
    if bw.requires(h):
        steps = bw.ctx.shape(h)[0]
        why = f"∂ℓ/∂{h}_t = ∂ℓ/∂{op.out} at t = {steps}, 0 before"
        bw.contribute(h, Op("time_last_backward", bw.slot(h, op.out), (g,), why=why,
                            attrs=(("steps", steps),)))  # fmt: skip


register(OpKind("time_last", lambda op, ctx: ctx.shape(op.args[0])[1:],
                lambda op, env, ctx: env[op.args[0]][:, -1].copy(),
                lambda op, ctx: f"{op.out} = {op.args[0]}_T",
                lambda op, ctx: rf"{name_tex(op.out)} = {name_tex(op.args[0])}_T",
                lambda op, el: {(i,): el.tensor(op.args[0], (el.ctx.shape(op.args[0])[0] - 1, i))
                                for i in range(el.ctx.shape(op.args[0])[1])},
                _last_pullback))  # fmt: skip


def _tlb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    gv = env[op.args[0]]
    out = np.zeros((gv.shape[0], op.attr("steps"), gv.shape[-1]), dtype=gv.dtype)
    out[:, -1] = gv
    return out


def _tlb_elements(op: Op, el: Elements) -> dict:
    (g,) = op.args
    steps, (units,) = op.attr("steps"), el.ctx.shape(g)
    return {(t, i): el.tensor(g, (i,)) if t == steps - 1 else sp.Integer(0)
            for t in range(steps) for i in range(units)}  # fmt: skip


register(OpKind("time_last_backward", lambda op, ctx: (op.attr("steps"), *ctx.shape(op.args[0])),
                _tlb_eval, lambda op, ctx: f"{op.out}_t = {op.args[0]} at t = T, else 0",
                lambda op, ctx: rf"{name_tex(op.out)}_t = [t = T]\, {name_tex(op.args[0])}",
                _tlb_elements))  # fmt: skip
