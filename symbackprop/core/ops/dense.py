"""Op kinds of dense layers: affine (out = W @ inp + b) and the products and sums of its
pullback (matvec_t, grad_weight, grad_bias)."""

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


def _affine_elements(op: Op, el: Elements) -> dict:
    w, inp, b = op.args
    units, fan_in = el.ctx.shape(w)
    out = {}
    for (i,) in indices((units,)):
        total = sp.Add(*(el.param(w, (i, j)) * el.tensor(inp, (j,)) for j in range(fan_in)))
        if b:
            total += el.param(b, () if not el.ctx.shape(b) else (i,))
        out[(i,)] = total
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
    return {(j,): sp.Add(*(el.param(w, (i, j)) * el.tensor(g, (i,)) for i in range(units)))
            for j in range(fan_in)}  # fmt: skip


register(OpKind("matvec_t", _matvec_t_shape, lambda op, env, ctx: env[op.args[1]] @ env[op.args[0]],
                lambda op, ctx: f"{op.out} = {op.args[0]}.T @ {op.args[1]}",
                lambda op, ctx: f"{name_tex(op.out)} = ({name_tex(op.args[0])})^T "
                                f"{name_tex(op.args[1])}",
                _matvec_t_elements))  # fmt: skip


def _gw_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, inp, _ = op.args
    return scale_of(op, env, env["x"].dtype) * (env[g].T @ env[inp])


def _gw_text(op: Op, ctx: Context) -> str:
    g, inp, _ = op.args
    return f"{op.out} = {c_text(op.scale)}sum_n {g}_n @ {inp}_n.T"


def _gw_latex(op: Op, ctx: Context) -> str:
    g, inp, w = op.args
    return (rf"{name_tex('d' + w)} = {c_tex(op.scale)}\sum_n {name_tex(g)}_n "
            rf"\left({name_tex(inp)}_n\right)^T")  # fmt: skip


def _gw_elements(op: Op, el: Elements) -> dict:
    """One sample's term (the batch sums it; ``scale`` is apart)."""
    g, inp, w = op.args
    units, fan_in = el.ctx.shape(w)
    return {(i, j): el.tensor(g, (i,)) * el.tensor(inp, (j,))
            for i in range(units) for j in range(fan_in)}  # fmt: skip


register(OpKind("grad_weight", param_shape, _gw_eval, _gw_text, _gw_latex, _gw_elements))


def _gb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, b = op.args
    c = scale_of(op, env, env["x"].dtype)
    return c * (env[g].sum() if not ctx.shape(b) else env[g].sum(axis=0))


def _gb_text(op: Op, ctx: Context) -> str:
    g, b = op.args
    inner = f"sum_i {g}_n,i" if not ctx.shape(b) else f"{g}_n"
    return f"{op.out} = {c_text(op.scale)}sum_n {inner}"


def _gb_latex(op: Op, ctx: Context) -> str:
    g, b = op.args
    inner = rf"\sum_i {element_tex(g, 'n,i')}" if not ctx.shape(b) else f"{name_tex(g)}_n"
    return rf"{name_tex('d' + b)} = {c_tex(op.scale)}\sum_n {inner}"


def _gb_elements(op: Op, el: Elements) -> dict:
    g, b = op.args
    (units,) = el.ctx.shape(g)
    if not el.ctx.shape(b):
        return {(): sp.Add(*(el.tensor(g, (i,)) for i in range(units)))}
    return {(i,): el.tensor(g, (i,)) for i in range(units)}


register(OpKind("grad_bias", param_shape, _gb_eval, _gb_text, _gb_latex, _gb_elements))
