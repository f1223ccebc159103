"""Op kinds of dense layers: affine (out = W @ inp + b) and the products and sums of its
pullback (matvec_t, grad_weight, grad_bias).

As nn.Linear, a dense layer acts on the last axis: an input [T, F] is T rows of F features
(a sequence), and the weight and bias gradients sum over every leading axis as over the batch.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ...printing.names import element_tex
from ..ir import Op, Shape
from .base import (
    Backward,
    Context,
    Elements,
    OpKind,
    c_tex,
    c_text,
    indices,
    name_tex,
    param_shape,
    register,
    scale_of,
)

# ---- affine: out = W @ inp + b ----------------------------------------------------------------


def _affine_shape(op: Op, ctx: Context) -> Shape:
    w, inp, _ = op.args
    return (*ctx.shape(inp)[:-1], ctx.shape(w)[0])


def _affine_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    w, inp, b = op.args
    z = env[inp] @ env[w].T
    return z + env[b] if b else z


def _affine_text(op: Op, ctx: Context) -> str:
    w, inp, b = op.args
    return f"{op.out} = {w} @ {inp}" + (f" + {b}" if b else "")


def _affine_latex(op: Op, ctx: Context) -> str:
    w, inp, b = op.args
    bias = ""
    if b:
        bias = " + " + name_tex(b) + (r" \mathbf{1}" if ctx.params[b].kind == "shared" else "")
    return f"{name_tex(op.out)} = {name_tex(w)} {name_tex(inp)}{bias}"


def lead(name: str, ctx: Context) -> Shape:
    """The leading axes of a tensor a dense op acts on the last axis of ([T] of [T, F])."""
    return ctx.shape(name)[:-1]


def _affine_elements(op: Op, el: Elements) -> dict:
    w, inp, b = op.args
    units, fan_in = el.ctx.shape(w)
    out = {}
    for row in indices(lead(inp, el.ctx)):
        for i in range(units):
            total = sp.Add(*(el.param(w, (i, j)) * el.tensor(inp, (*row, j))
                             for j in range(fan_in)))  # fmt: skip
            if b:
                total += el.param(b, () if not el.ctx.shape(b) else (i,))
            out[(*row, i)] = total
    return out


def _affine_pullback(op: Op, g: str, bw: Backward) -> None:
    w, inp, b = op.args
    if bw.requires(w):
        bw.emit(Op("grad_weight", f"d{w}", (g, inp, w), scale=bw.scale, why="∂E/∂W = c Σ δ inpᵀ"))
    if b and bw.requires(b):
        bw.emit(Op("grad_bias", f"d{b}", (g, b), scale=bw.scale, why="∂E/∂b = c Σ δ"))
    if bw.requires(inp):
        slot = bw.slot(inp, op.out)
        bw.contribute(inp, Op("matvec_t", slot, (w, g), why=f"∂ℓ/∂{inp} = {w}ᵀ {g}"))


register(OpKind("affine", _affine_shape, _affine_eval, _affine_text, _affine_latex,
                _affine_elements, _affine_pullback))  # fmt: skip


# ---- backward-only products and reductions ----------------------------------------------------


def _matvec_t_shape(op: Op, ctx: Context) -> Shape:
    w, g = op.args
    return (*ctx.shape(g)[:-1], ctx.shape(w)[1])


def _matvec_t_elements(op: Op, el: Elements) -> dict:
    w, g = op.args
    units, fan_in = el.ctx.shape(w)
    return {(*row, j): sp.Add(*(el.param(w, (i, j)) * el.tensor(g, (*row, i))
                                for i in range(units)))
            for row in indices(lead(g, el.ctx)) for j in range(fan_in)}  # fmt: skip


register(OpKind("matvec_t", _matvec_t_shape, lambda op, env, ctx: env[op.args[1]] @ env[op.args[0]],
                lambda op, ctx: f"{op.out} = {op.args[0]}.T @ {op.args[1]}",
                lambda op, ctx: f"{name_tex(op.out)} = ({name_tex(op.args[0])})^T "
                                f"{name_tex(op.args[1])}",
                _matvec_t_elements))  # fmt: skip


def _gw_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, inp, w = op.args
    units, fan_in = ctx.shape(w)
    rows = env[g].reshape(-1, units).T @ env[inp].reshape(-1, fan_in)
    return scale_of(op, env, env["x"].dtype) * rows


def _rows(g: str, ctx: Context) -> tuple[str, str, str]:
    """What a dense gradient sums over: the batch, and the rows r of a sequence ([T, F]): the
    text sum, its LaTeX and the subscript of one row."""
    if lead(g, ctx):
        return "sum_n sum_r", r"\sum_n \sum_r", "{n,r}"
    return "sum_n", r"\sum_n", "n"


def _gw_text(op: Op, ctx: Context) -> str:
    g, inp, _ = op.args
    over, _, sub = _rows(g, ctx)
    sub = sub.strip("{}")
    return f"{op.out} = {c_text(op.scale)}{over} {g}_{sub} @ {inp}_{sub}.T"


def _gw_latex(op: Op, ctx: Context) -> str:
    g, inp, w = op.args
    _, over, sub = _rows(g, ctx)
    return (rf"{name_tex('d' + w)} = {c_tex(op.scale)}{over} {name_tex(g)}_{sub} "
            rf"\left({name_tex(inp)}_{sub}\right)^T")  # fmt: skip


def _gw_elements(op: Op, el: Elements) -> dict:
    """One sample's term (the batch sums it; ``scale`` is apart), summed over leading axes."""
    g, inp, w = op.args
    units, fan_in = el.ctx.shape(w)
    rows = list(indices(lead(g, el.ctx)))
    return {(i, j): sp.Add(*(el.tensor(g, (*r, i)) * el.tensor(inp, (*r, j)) for r in rows))
            for i in range(units) for j in range(fan_in)}  # fmt: skip


register(OpKind("grad_weight", param_shape, _gw_eval, _gw_text, _gw_latex, _gw_elements))


def _gb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, b = op.args
    c = scale_of(op, env, env["x"].dtype)
    units = ctx.shape(g)[-1]
    return c * (env[g].sum() if not ctx.shape(b) else env[g].reshape(-1, units).sum(axis=0))


def _gb_text(op: Op, ctx: Context) -> str:
    g, b = op.args
    over, _, sub = _rows(g, ctx)
    sub = sub.strip("{}")
    inner = f"sum_i {g}_{sub},i" if not ctx.shape(b) else f"{g}_{sub}"
    return f"{op.out} = {c_text(op.scale)}{over} {inner}"


def _gb_latex(op: Op, ctx: Context) -> str:
    g, b = op.args
    _, over, sub = _rows(g, ctx)
    sub = sub.strip("{}")
    inner = (rf"\sum_i {element_tex(g, sub + ',i')}" if not ctx.shape(b)
             else element_tex(g, sub))  # fmt: skip
    return rf"{name_tex('d' + b)} = {c_tex(op.scale)}{over} {inner}"


def _gb_elements(op: Op, el: Elements) -> dict:
    g, b = op.args
    units = el.ctx.shape(g)[-1]
    rows = list(indices(lead(g, el.ctx)))
    if not el.ctx.shape(b):
        return {(): sp.Add(*(el.tensor(g, (*r, i)) for r in rows for i in range(units)))}
    return {(i,): sp.Add(*(el.tensor(g, (*r, i)) for r in rows)) for i in range(units)}


register(OpKind("grad_bias", param_shape, _gb_eval, _gb_text, _gb_latex, _gb_elements))
