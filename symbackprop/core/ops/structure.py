"""Op kinds that move values without arithmetic: concat and its pullback (slice), and reshape
(flatten and its pullback)."""

from __future__ import annotations

import numpy as np
import sympy as sp

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


def concat_axis(op: Op, ctx: Context) -> int:
    """The per-sample axis a concat (or slice) works along: its attr, else the last axis."""
    rank = len(ctx.shape(op.args[0]))
    return op.attr("axis", rank - 1)


def _concat_shape(op: Op, ctx: Context) -> Shape:
    shapes = [ctx.shape(a) for a in op.args]
    axis = concat_axis(op, ctx)
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


def _concat_latex(op: Op, ctx: Context) -> str:
    rows = r" \\ ".join(name_tex(a) for a in op.args)
    return rf"{name_tex(op.out)} = \begin{{bmatrix}} {rows} \end{{bmatrix}}"


def _concat_text(op: Op, ctx: Context) -> str:
    axis = concat_axis(op, ctx)
    along = "" if axis == len(ctx.shape(op.args[0])) - 1 else f", axis {axis}"
    return f"{op.out} = concat({', '.join(op.args)}{along})"


def _concat_elements(op: Op, el: Elements) -> dict:
    axis = concat_axis(op, el.ctx)
    out, start = {}, 0
    for a in op.args:
        shape = el.ctx.shape(a)
        for ix in indices(shape):
            key = (*ix[:axis], ix[axis] + start, *ix[axis + 1 :])
            out[key] = el.tensor(a, ix)
        start += shape[axis]
    return out


def _concat_pullback(op: Op, g: str, bw: Backward) -> None:
    axis = concat_axis(op, bw.ctx)
    start = 0
    for a in op.args:
        width = bw.ctx.shape(a)[axis]
        if bw.requires(a):
            attrs = (("start", start), ("stop", start + width), ("axis", axis))
            what = "channels" if axis != len(bw.ctx.shape(a)) - 1 else "rows"
            why = f"∂ℓ/∂{a}: {what} {start + 1}..{start + width} of ∂ℓ/∂{op.out}"
            bw.contribute(a, Op("slice", bw.slot(a, op.out), (g,), why=why, attrs=attrs))
        start += width


def _concat_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    return np.concatenate([env[a] for a in op.args], axis=concat_axis(op, ctx) + 1)


register(OpKind("concat", _concat_shape, _concat_eval, _concat_text, _concat_latex,
                _concat_elements, _concat_pullback))  # fmt: skip


def _slice_shape(op: Op, ctx: Context) -> Shape:
    out = list(ctx.shape(op.args[0]))
    out[concat_axis(op, ctx)] = op.attr("stop") - op.attr("start")
    return tuple(out)


def _slice_text(op: Op, ctx: Context) -> str:
    lead = ":, " * concat_axis(op, ctx)
    return f"{op.out} = {op.args[0]}[{lead}{op.attr('start')}:{op.attr('stop')}]"


def _slice_latex(op: Op, ctx: Context) -> str:
    lo, hi = op.attr("start") + 1, op.attr("stop")
    return rf"{name_tex(op.out)} = \left({name_tex(op.args[0])}\right)_{{{lo}..{hi}}}"


def _slice_elements(op: Op, el: Elements) -> dict:
    axis, start = concat_axis(op, el.ctx), op.attr("start")
    return {ix: el.tensor(op.args[0], (*ix[:axis], ix[axis] + start, *ix[axis + 1 :]))
            for ix in indices(_slice_shape(op, el.ctx))}  # fmt: skip


def _slice_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    where = [slice(None)] * (concat_axis(op, ctx) + 1) + [slice(op.attr("start"), op.attr("stop"))]
    return env[op.args[0]][tuple(where)]


def _slice_pullback(op: Op, g: str, bw: Backward) -> None:
    (src,) = op.args
    if bw.requires(src):
        axis = concat_axis(op, bw.ctx)
        attrs = (("start", op.attr("start")), ("stop", op.attr("stop")), ("axis", axis),
                 ("size", bw.ctx.shape(src)[axis]), ("shape", bw.ctx.shape(src)))  # fmt: skip
        why = f"∂ℓ/∂{src}: ∂ℓ/∂{op.out} at {op.attr('start') + 1}..{op.attr('stop')}, 0 elsewhere"
        bw.contribute(src, Op("pad", bw.slot(src, op.out), (g,), why=why, attrs=attrs))


register(OpKind("slice", _slice_shape, _slice_eval, _slice_text, _slice_latex, _slice_elements,
                _slice_pullback))  # fmt: skip


# ---- pad: the pullback of slice (zeros outside the slice) --------------------------------------


def _pad_shape(op: Op, ctx: Context) -> Shape:
    out = list(ctx.shape(op.args[0]))
    out[concat_axis(op, ctx)] = op.attr("size")
    return tuple(out)


def _pad_elements(op: Op, el: Elements) -> dict:
    axis, start, stop = concat_axis(op, el.ctx), op.attr("start"), op.attr("stop")
    return {ix: (el.tensor(op.args[0], (*ix[:axis], ix[axis] - start, *ix[axis + 1 :]))
                 if start <= ix[axis] < stop else sp.Integer(0))
            for ix in indices(_pad_shape(op, el.ctx))}  # fmt: skip


def _pad_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g = env[op.args[0]]
    axis = concat_axis(op, ctx) + 1
    shape = list(g.shape)
    shape[axis] = op.attr("size")
    out = np.zeros(shape, dtype=g.dtype)
    where = [slice(None)] * axis + [slice(op.attr("start"), op.attr("stop"))]
    out[tuple(where)] = g
    return out


register(OpKind("pad", _pad_shape, _pad_eval,
                lambda op, ctx: f"{op.out}[{':, ' * concat_axis(op, ctx)}{op.attr('start')}:"
                                f"{op.attr('stop')}] = {op.args[0]}, 0 elsewhere",
                lambda op, ctx: rf"{name_tex(op.out)} = \left(\mathbf{{0}}, "
                                rf"{name_tex(op.args[0])}, \mathbf{{0}}\right)",
                _pad_elements))  # fmt: skip


# ---- reshape: the same numbers in C order, another per-sample shape (flatten) ----------------


def _reshape_shape(op: Op, ctx: Context) -> Shape:
    return tuple(op.attr("shape"))


def _reshape_text(op: Op, ctx: Context) -> str:
    shape = op.attr("shape")
    if len(shape) == 1:
        return f"{op.out} = flatten({op.args[0]})"
    return f"{op.out} = reshape({op.args[0]}, {list(shape)})"


def _reshape_latex(op: Op, ctx: Context) -> str:
    shape = op.attr("shape")
    if len(shape) == 1:
        return rf"{name_tex(op.out)} = \operatorname{{vec}}\left({name_tex(op.args[0])}\right)"
    dims = r" \times ".join(map(str, shape))
    return (rf"{name_tex(op.out)} = \operatorname{{reshape}}_{{{dims}}}"
            rf"\left({name_tex(op.args[0])}\right)")  # fmt: skip


def _reshape_elements(op: Op, el: Elements) -> dict:
    src = el.ctx.shape(op.args[0])
    flat = [el.tensor(op.args[0], ix) for ix in indices(src)]
    return dict(zip(indices(tuple(op.attr("shape"))), flat, strict=True))


def _reshape_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    a = env[op.args[0]]
    return a.reshape(a.shape[0], *op.attr("shape"))


def _reshape_pullback(op: Op, g: str, bw: Backward) -> None:
    inp = op.args[0]
    if bw.requires(inp):
        shape = bw.ctx.shape(inp)
        why = f"∂ℓ/∂{inp}: ∂ℓ/∂{op.out} back in the shape {list(shape)}"
        bw.contribute(inp, Op("reshape", bw.slot(inp, op.out), (g,), why=why,
                              attrs=(("shape", tuple(shape)),)))  # fmt: skip


register(OpKind("reshape", _reshape_shape, _reshape_eval, _reshape_text, _reshape_latex,
                _reshape_elements, _reshape_pullback))  # fmt: skip


# ---- transpose: a map [C, *S] with its channels last, [S, C], and back ------------------------
# Batch norm over channels (nn.BatchNorm1d/2d on maps) normalizes each channel over the batch
# and the positions: with the channels last, its ops are those over features, per-batch
# statistics of shape [C] broadcasting along the last axis as everywhere else.


def _transpose_shape(op: Op, ctx: Context) -> Shape:
    return tuple(op.attr("shape"))


def _channels_positions(op: Op, ctx: Context) -> tuple[int, int]:
    """(C, S): the channels and positions of the map side of the transpose."""
    mapped = ctx.shape(op.args[0]) if op.attr("to") == "last" else tuple(op.attr("shape"))
    size = 1
    for n in mapped[1:]:
        size *= n
    return mapped[0], size


def _transpose_text(op: Op, ctx: Context) -> str:
    what = "channels last" if op.attr("to") == "last" else "channels first"
    return f"{op.out} = {op.args[0]} with its {what}, {list(op.attr('shape'))}"


def _transpose_latex(op: Op, ctx: Context) -> str:
    return rf"{name_tex(op.out)} = \left({name_tex(op.args[0])}\right)^{{\top}}"


def _transpose_elements(op: Op, el: Elements) -> dict:
    c, s = _channels_positions(op, el.ctx)
    src = el.ctx.shape(op.args[0])
    flat = [el.tensor(op.args[0], ix) for ix in indices(src)]
    out_shape = tuple(op.attr("shape"))
    outs = list(indices(out_shape))
    if op.attr("to") == "last":  # in[c, s] (flat c·S + s) -> out[s, c] (flat s·C + c)
        return {outs[p * c + ch]: flat[ch * s + p] for ch in range(c) for p in range(s)}
    return {outs[ch * s + p]: flat[p * c + ch] for ch in range(c) for p in range(s)}


def _transpose_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    a = env[op.args[0]]
    c, s = _channels_positions(op, ctx)
    if op.attr("to") == "last":
        return np.ascontiguousarray(a.reshape(len(a), c, s).transpose(0, 2, 1))
    return np.ascontiguousarray(a.transpose(0, 2, 1)).reshape(len(a), *op.attr("shape"))


def _transpose_pullback(op: Op, g: str, bw: Backward) -> None:
    inp = op.args[0]
    if bw.requires(inp):
        back = "first" if op.attr("to") == "last" else "last"
        shape = bw.ctx.shape(inp)
        why = f"∂ℓ/∂{inp}: ∂ℓ/∂{op.out} with its channels {back} again"
        bw.contribute(inp, Op("transpose", bw.slot(inp, op.out), (g,), why=why,
                              attrs=(("to", back), ("shape", tuple(shape)))))  # fmt: skip


register(OpKind("transpose", _transpose_shape, _transpose_eval, _transpose_text,
                _transpose_latex, _transpose_elements, _transpose_pullback))  # fmt: skip
