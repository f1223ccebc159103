"""Pooling (nn.MaxPool1d/2d, nn.AvgPool1d/2d, a global average) and the ops of their pullbacks.

Index forms, per sample (windows of kernel k, stride s, padding lo; p a position, k an offset):

    maxpool:        y[c, p] = max_k x[c, s·p + k − lo]          (padding is −inf: never the max)
    avgpool:        y[c, p] = (1/|k|) Σ_k x[c, s·p + k − lo]    (padding counts as 0, as PyTorch)
    global_avgpool: y[c]    = (1/|P|) Σ_p x[c, p]

Max pooling's derivative is 1 at a window's maximum: the pullback sends δ[c, p] to the FIRST
maximum of the window in row-major order (PyTorch's choice at ties); the op-kind test proves it
equal to ``sympy.diff`` of Max at points without ties, and the target tests check the ties.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from ..ir import Op, Shape
from . import conv_numpy as cn
from .base import Backward, Context, Elements, OpKind, indices, name_tex, register
from .conv import out_size, taps


def window(op: Op) -> tuple[tuple, tuple, tuple]:
    """kernel, stride and padding ((lo, hi) per axis) of a pooling op."""
    return op.attr("kernel"), op.attr("stride"), op.attr("padding")


def _pool_shape(op: Op, ctx: Context) -> Shape:
    ks, s, pad = window(op)
    shape = ctx.shape(op.args[0])
    return (shape[0], *(out_size(*a) for a in zip(shape[1:], ks, s, pad, strict=False)))


def _describe(op: Op) -> str:
    ks, s, pad = window(op)
    out = f"{'x'.join(map(str, ks))}"
    if tuple(s) != tuple(ks):
        out += f", stride {'x'.join(map(str, s))}"
    if any(p != (0, 0) for p in pad):
        out += f", padding {'x'.join(str(lo) for lo, _ in pad)}"
    return out


def _windows(op: Op, spatial: Shape) -> dict:
    """Position -> the input positions of its window inside the input, in row-major order."""
    ks, s, pad = window(op)
    out: dict = {}
    for p, _, i in taps(spatial, ks, s, pad, (1,) * len(ks)):
        out.setdefault(p, []).append(i)
    return out


# ---- maxpool and its pullback -----------------------------------------------------------------


def _max_elements(op: Op, el: Elements) -> dict:
    inp = op.args[0]
    shape = el.ctx.shape(inp)
    wins = _windows(op, shape[1:])
    return {(c, *p): sp.Max(*(el.tensor(inp, (c, *i)) for i in wins[p]))
            for c in range(shape[0]) for p in indices(_pool_shape(op, el.ctx)[1:])}  # fmt: skip


def _max_pullback(op: Op, g: str, bw: Backward) -> None:
    inp = op.args[0]
    if bw.requires(inp):
        why = f"∂ℓ/∂{inp}: each {g} to the first maximum of its window"
        bw.contribute(inp, Op("maxpool_backward", bw.slot(inp, op.out), (g, inp), why=why,
                              attrs=op.attrs))  # fmt: skip


register(OpKind("maxpool", _pool_shape,
                lambda op, env, ctx: cn.maxpool(env[op.args[0]], *window(op)),
                lambda op, ctx: f"{op.out} = maxpool({op.args[0]}, {_describe(op)})",
                lambda op, ctx: (rf"{name_tex(op.out)} = \operatorname{{maxpool}}"
                                 rf"_{{{_describe(op)}}}\left({name_tex(op.args[0])}\right)"),
                _max_elements, _max_pullback))  # fmt: skip


def _first_max(x: sp.Symbol, before: list, after: list) -> sp.Expr:
    """1 where ``x`` is the first maximum of its window, else 0."""
    cond = sp.And(*(x > y for y in before), *(x >= y for y in after))
    return sp.Piecewise((1, cond), (0, True))


def _maxb_elements(op: Op, el: Elements) -> dict:
    g, inp = op.args
    shape = el.ctx.shape(inp)
    wins = _windows(op, shape[1:])
    terms: dict = {}
    for c in range(shape[0]):
        for p, where in wins.items():
            xs = [el.tensor(inp, (c, *i)) for i in where]
            for j, i in enumerate(where):
                hit = _first_max(xs[j], xs[:j], xs[j + 1 :])
                terms.setdefault((c, *i), []).append(el.tensor(g, (c, *p)) * hit)
    return {ix: sp.Add(*terms.get(ix, [])) for ix in indices(shape)}


register(OpKind("maxpool_backward", lambda op, ctx: ctx.shape(op.args[1]),
                lambda op, env, ctx: cn.maxpool_backward(env[op.args[0]], env[op.args[1]],
                                                         *window(op)),
                lambda op, ctx: (f"{op.out} = {op.args[0]} to the first maximum of each window "
                                 f"of {op.args[1]} ({_describe(op)})"),
                lambda op, ctx: (rf"{name_tex(op.out)} = \operatorname{{unpool}}_{{\max}}\left("
                                 rf"{name_tex(op.args[0])}; {name_tex(op.args[1])}\right)"),
                _maxb_elements))  # fmt: skip


# ---- avgpool and its pullback -----------------------------------------------------------------


def _avg_elements(op: Op, el: Elements) -> dict:
    inp = op.args[0]
    shape = el.ctx.shape(inp)
    size = math.prod(window(op)[0])
    wins = _windows(op, shape[1:])
    return {(c, *p): sp.Add(*(el.tensor(inp, (c, *i)) for i in wins[p])) / size
            for c in range(shape[0]) for p in indices(_pool_shape(op, el.ctx)[1:])}  # fmt: skip


def _avg_pullback(op: Op, g: str, bw: Backward) -> None:
    inp = op.args[0]
    if bw.requires(inp):
        why = f"∂ℓ/∂{inp}: each {g} shared equally by the elements of its window"
        attrs = (*op.attrs, ("shape", tuple(bw.ctx.shape(inp))))
        bw.contribute(inp, Op("avgpool_backward", bw.slot(inp, op.out), (g,), why=why,
                              attrs=attrs))  # fmt: skip


register(OpKind("avgpool", _pool_shape,
                lambda op, env, ctx: cn.avgpool(env[op.args[0]], *window(op)),
                lambda op, ctx: f"{op.out} = avgpool({op.args[0]}, {_describe(op)})",
                lambda op, ctx: (rf"{name_tex(op.out)} = \operatorname{{avgpool}}"
                                 rf"_{{{_describe(op)}}}\left({name_tex(op.args[0])}\right)"),
                _avg_elements, _avg_pullback))  # fmt: skip


def _avgb_elements(op: Op, el: Elements) -> dict:
    (g,) = op.args
    shape = tuple(op.attr("shape"))
    size = math.prod(window(op)[0])
    terms: dict = {}
    for c in range(shape[0]):
        for p, where in _windows(op, shape[1:]).items():
            for i in where:
                terms.setdefault((c, *i), []).append(el.tensor(g, (c, *p)) / size)
    return {ix: sp.Add(*terms.get(ix, [])) for ix in indices(shape)}


register(OpKind("avgpool_backward", lambda op, ctx: tuple(op.attr("shape")),
                lambda op, env, ctx: cn.avgpool_backward(env[op.args[0]], op.attr("shape")[1:],
                                                         *window(op)),
                lambda op, ctx: (f"{op.out} = {op.args[0]} / {math.prod(window(op)[0])} to every "
                                 f"element of its window ({_describe(op)})"),
                lambda op, ctx: (rf"{name_tex(op.out)} = \operatorname{{unpool}}_{{\text{{avg}}}}"
                                 rf"\left({name_tex(op.args[0])}\right)"),
                _avgb_elements))  # fmt: skip


# ---- global_avgpool: the mean of each channel, and its pullback -------------------------------


def _gap_elements(op: Op, el: Elements) -> dict:
    inp = op.args[0]
    shape = el.ctx.shape(inp)
    size = math.prod(shape[1:])
    return {(c,): sp.Add(*(el.tensor(inp, (c, *p)) for p in indices(shape[1:]))) / size
            for c in range(shape[0])}  # fmt: skip


def _gap_pullback(op: Op, g: str, bw: Backward) -> None:
    inp = op.args[0]
    if bw.requires(inp):
        shape = tuple(bw.ctx.shape(inp))
        why = f"∂ℓ/∂{inp}: {g} of each channel / {math.prod(shape[1:])} at every position"
        bw.contribute(inp, Op("global_avgpool_backward", bw.slot(inp, op.out), (g,), why=why,
                              attrs=(("shape", shape),)))  # fmt: skip


def _gap_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    x = env[op.args[0]]
    return x.reshape(*x.shape[:2], -1).mean(axis=-1)


register(OpKind("global_avgpool", lambda op, ctx: ctx.shape(op.args[0])[:1], _gap_eval,
                lambda op, ctx: f"{op.out} = mean of each channel of {op.args[0]}",
                lambda op, ctx: (rf"{name_tex(op.out)}_c = \frac{{1}}{{|P|}} \sum_p "
                                 rf"{name_tex(op.args[0])}_{{c,p}}"),
                _gap_elements, _gap_pullback))  # fmt: skip


def _gapb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, shape = env[op.args[0]], tuple(op.attr("shape"))
    size = math.prod(shape[1:])
    return np.broadcast_to((g / size).reshape(*g.shape, *(1,) * (len(shape) - 1)),
                           (g.shape[0], *shape)).copy()  # fmt: skip


def _gapb_elements(op: Op, el: Elements) -> dict:
    shape = tuple(op.attr("shape"))
    size = math.prod(shape[1:])
    return {ix: el.tensor(op.args[0], ix[:1]) / size for ix in indices(shape)}


register(OpKind("global_avgpool_backward", lambda op, ctx: tuple(op.attr("shape")), _gapb_eval,
                lambda op, ctx: (f"{op.out} = {op.args[0]} / {math.prod(op.attr('shape')[1:])} "
                                 "at every position of its channel"),
                lambda op, ctx: (rf"{name_tex(op.out)}_{{c,p}} = \frac{{1}}{{|P|}} "
                                 rf"{name_tex(op.args[0])}_c"),
                _gapb_elements))  # fmt: skip
