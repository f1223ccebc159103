"""Op kinds that move values without arithmetic: concat and its pullback, slice."""

from __future__ import annotations

import numpy as np

from ..ir import Op, Shape
from .base import (
    Backward,
    Context,
    Elements,
    OpKind,
    indices,
    name_tex,
    register,
)

# ---- concat and its pullback, slice -----------------------------------------------------------


def _concat_shape(op: Op, ctx: Context) -> Shape:
    shapes = [ctx.shape(a) for a in op.args]
    return (*shapes[0][:-1], sum(s[-1] for s in shapes))


def _concat_latex(op: Op, ctx: Context) -> str:
    rows = r" \\ ".join(name_tex(a) for a in op.args)
    return rf"{name_tex(op.out)} = \begin{{bmatrix}} {rows} \end{{bmatrix}}"


def _concat_elements(op: Op, el: Elements) -> dict:
    out, k = {}, 0
    for a in op.args:
        for (j,) in indices(el.ctx.shape(a)):
            out[(k,)] = el.tensor(a, (j,))
            k += 1
    return out


def _concat_pullback(op: Op, g: str, bw: Backward) -> None:
    start = 0
    for a in op.args:
        width = bw.ctx.shape(a)[-1]
        if bw.requires(a):
            attrs = (("start", start), ("stop", start + width))
            why = f"∂ℓ/∂{a}: rows {start + 1}..{start + width} of ∂ℓ/∂{op.out}"
            bw.contribute(a, Op("slice", bw.slot(a, op.out), (g,), why=why, attrs=attrs))
        start += width


register(OpKind("concat", _concat_shape,
                lambda op, env, ctx: np.concatenate([env[a] for a in op.args], axis=-1),
                lambda op, ctx: f"{op.out} = concat({', '.join(op.args)})", _concat_latex,
                _concat_elements, _concat_pullback))  # fmt: skip


def _slice_shape(op: Op, ctx: Context) -> Shape:
    return (*ctx.shape(op.args[0])[:-1], op.attr("stop") - op.attr("start"))


def _slice_text(op: Op, ctx: Context) -> str:
    return f"{op.out} = {op.args[0]}[{op.attr('start')}:{op.attr('stop')}]"


def _slice_latex(op: Op, ctx: Context) -> str:
    lo, hi = op.attr("start") + 1, op.attr("stop")
    return rf"{name_tex(op.out)} = \left({name_tex(op.args[0])}\right)_{{{lo}..{hi}}}"


def _slice_elements(op: Op, el: Elements) -> dict:
    start = op.attr("start")
    return {(j,): el.tensor(op.args[0], (start + j,)) for j in range(_slice_shape(op, el.ctx)[0])}


register(OpKind("slice", _slice_shape,
                lambda op, env, ctx: env[op.args[0]][..., op.attr("start") : op.attr("stop")],
                _slice_text, _slice_latex, _slice_elements))  # fmt: skip
