"""Convolution (nn.Conv1d / nn.Conv2d) and the three ops of its pullback.

Index form, per sample, for one or two spatial axes (p, k, i are tuples of positions):

    z[o, p] = Σ_c Σ_k W[o, c, k] · x[G(o)·C/G + c, s·p + d·k − lo] + b[o]

with zero padding (terms whose input index falls outside are absent). Its pullback, which the
op-kind test proves equal to ``sympy.diff`` of that form element by element:

    ∂E/∂W[o, c, k] = c_E Σ_n Σ_p δ[o, p] · x[G(o)·C/G + c, s·p + d·k − lo]   (a correlation)
    ∂E/∂b[o]       = c_E Σ_n Σ_p δ[o, p]
    ∂ℓ/∂x[c, i]    = Σ_o Σ_{p, k: s·p + d·k − lo = i} W[o, c mod C/G, k] · δ[o, p]
                     (the transposed, "full" convolution of δ with the kernel)

Attributes: ``stride``, ``dilation`` (one int per spatial axis), ``padding`` ((lo, hi) per
axis) and ``groups``; the backward ops also carry ``shape``, the input's per-sample shape.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp

from ..ir import Op, Shape
from . import conv_numpy as cn
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

CONV_ATTRS = ("stride", "padding", "dilation", "groups")


def geometry(op: Op) -> tuple[tuple, tuple, tuple, int]:
    """stride, padding ((lo, hi) per axis), dilation and groups of a conv op."""
    return op.attr("stride"), op.attr("padding"), op.attr("dilation"), op.attr("groups", 1)


def out_size(size: int, k: int, s: int, pad: tuple[int, int], d: int = 1) -> int:
    """Positions along one axis: ⌊(L + lo + hi − d·(k − 1) − 1) / s⌋ + 1, as PyTorch."""
    return (size + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def taps(spatial: Shape, ks: Shape, stride, pad, dil):
    """Every (p, k, i) with input position i = s·p + d·k − lo inside the input (the terms of
    the index form; positions and offsets as tuples over the spatial axes)."""
    axes = list(zip(spatial, ks, stride, pad, dil, strict=True))
    out = tuple(out_size(*a) for a in axes)
    for p in indices(out):
        for k in indices(ks):
            i = tuple(
                s * pi + d * ki - pd[0] for pi, ki, (_, _, s, pd, d) in zip(p, k, axes, strict=True)
            )
            if all(0 <= ii < n for ii, n in zip(i, spatial, strict=False)):
                yield p, k, i


def _where(op: Op) -> str:
    """stride/padding/dilation/groups for the formulas, only those not at their default."""
    s, pad, d, g = geometry(op)
    parts = []
    if any(v != 1 for v in s):
        parts.append(f"stride {'x'.join(map(str, s))}")
    if any(v != (0, 0) for v in pad):
        parts.append("padding " + "x".join(str(lo) if lo == hi else f"{lo}+{hi}" for lo, hi in pad))
    if any(v != 1 for v in d):
        parts.append(f"dilation {'x'.join(map(str, d))}")
    if g != 1:
        parts.append(f"groups {g}")
    return ", ".join(parts)


def _tail(op: Op) -> str:
    where = _where(op)
    return f", {where}" if where else ""


def _tex_tail(op: Op) -> str:
    where = _where(op)
    return rf"\quad \text{{({where})}}" if where else ""


# ---- conv: z = W ⋆ x + b ----------------------------------------------------------------------


def _conv_shape(op: Op, ctx: Context) -> Shape:
    w, inp, _ = op.args
    s, pad, d, _ = geometry(op)
    ks = ctx.shape(w)[2:]
    spatial = ctx.shape(inp)[1:]
    return (ctx.shape(w)[0], *(out_size(*a) for a in zip(spatial, ks, s, pad, d, strict=False)))


def _conv_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    w, inp, b = op.args
    return cn.conv_forward(env[inp], env[w], env[b] if b else None, *geometry(op))


def _conv_text(op: Op, ctx: Context) -> str:
    w, inp, b = op.args
    return f"{op.out} = conv({w}, {inp}{_tail(op)})" + (f" + {b}" if b else "")


def _conv_latex(op: Op, ctx: Context) -> str:
    w, inp, b = op.args
    bias = f" + {name_tex(b)}" if b else ""
    return rf"{name_tex(op.out)} = {name_tex(w)} \star {name_tex(inp)}{bias}{_tex_tail(op)}"


def _conv_elements(op: Op, el: Elements) -> dict:
    w, inp, b = op.args
    s, pad, d, groups = geometry(op)
    wshape, xshape = el.ctx.shape(w), el.ctx.shape(inp)
    per_out, per_in = wshape[0] // groups, xshape[0] // groups
    terms: dict = {}
    for p, k, i in taps(xshape[1:], wshape[2:], s, pad, d):
        for o in range(wshape[0]):
            base = (o // per_out) * per_in
            for c in range(per_in):
                terms.setdefault((o, *p), []).append(
                    el.param(w, (o, c, *k)) * el.tensor(inp, (base + c, *i))
                )
    out = {}
    for ix in indices(_conv_shape(op, el.ctx)):
        total = sp.Add(*terms.get(ix, []))
        if b:
            total += el.param(b, (ix[0],) if el.ctx.shape(b) else ())
        out[ix] = total
    return out


def _conv_pullback(op: Op, g: str, bw: Backward) -> None:
    w, inp, b = op.args
    attrs = op.attrs
    if bw.requires(w):
        why = "∂E/∂W = c Σ_n δ ⋆ x (the input correlated with δ)"
        bw.emit(Op("grad_conv_weight", f"d{w}", (g, inp, w), scale=bw.scale, why=why, attrs=attrs))
    if b and bw.requires(b):
        why = "∂E/∂b = c Σ_n Σ_positions δ"
        bw.emit(Op("grad_conv_bias", f"d{b}", (g, b), scale=bw.scale, why=why))
    if bw.requires(inp):
        shape = tuple(bw.ctx.shape(inp))
        why = f"∂ℓ/∂{inp} = the transposed (full) convolution of {g} with {w}"
        bw.contribute(inp, Op("conv_grad_input", bw.slot(inp, op.out), (w, g), why=why,
                              attrs=(*attrs, ("shape", shape))))  # fmt: skip


register(OpKind("conv", _conv_shape, _conv_eval, _conv_text, _conv_latex, _conv_elements,
                _conv_pullback))  # fmt: skip


# ---- conv_grad_input: ∂ℓ/∂x, the transposed convolution ---------------------------------------


def _gi_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    w, g = op.args
    return cn.conv_grad_input(env[g], env[w], op.attr("shape"), *geometry(op))


def _gi_text(op: Op, ctx: Context) -> str:
    w, g = op.args
    return f"{op.out} = conv_transpose({g}, {w}{_tail(op)})"


def _gi_latex(op: Op, ctx: Context) -> str:
    w, g = op.args
    return (rf"{name_tex(op.out)} = {name_tex(g)} \star^{{T}} {name_tex(w)}"
            rf"{_tex_tail(op)}")  # fmt: skip


def _gi_elements(op: Op, el: Elements) -> dict:
    w, g = op.args
    s, pad, d, groups = geometry(op)
    wshape, xshape = el.ctx.shape(w), tuple(op.attr("shape"))
    per_out, per_in = wshape[0] // groups, xshape[0] // groups
    terms: dict = {}
    for p, k, i in taps(xshape[1:], wshape[2:], s, pad, d):
        for o in range(wshape[0]):
            base = (o // per_out) * per_in
            for c in range(per_in):
                terms.setdefault((base + c, *i), []).append(
                    el.param(w, (o, c, *k)) * el.tensor(g, (o, *p))
                )
    return {ix: sp.Add(*terms.get(ix, [])) for ix in indices(xshape)}


register(OpKind("conv_grad_input", lambda op, ctx: tuple(op.attr("shape")), _gi_eval, _gi_text,
                _gi_latex, _gi_elements))  # fmt: skip


# ---- conv_grad_weight and conv_grad_bias: the parameter gradients -----------------------------


def _gw_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, inp, w = op.args
    c = scale_of(op, env, env["x"].dtype)
    return c * cn.conv_grad_weight(env[g], env[inp], ctx.shape(w), *geometry(op))


def _gw_text(op: Op, ctx: Context) -> str:
    g, inp, _ = op.args
    return f"{op.out} = {c_text(op.scale)}sum_n correlate({inp}_n, {g}_n{_tail(op)})"


def _gw_latex(op: Op, ctx: Context) -> str:
    g, inp, w = op.args
    return (rf"{name_tex('d' + w)} = {c_tex(op.scale)}\sum_n {name_tex(inp)}_n \star "
            rf"{name_tex(g)}_n{_tex_tail(op)}")  # fmt: skip


def _gw_elements(op: Op, el: Elements) -> dict:
    """One sample's term (the batch sums it; ``scale`` is apart)."""
    g, inp, w = op.args
    s, pad, d, groups = geometry(op)
    wshape, xshape = el.ctx.shape(w), el.ctx.shape(inp)
    per_out, per_in = wshape[0] // groups, xshape[0] // groups
    terms: dict = {}
    for p, k, i in taps(xshape[1:], wshape[2:], s, pad, d):
        for o, c in itertools.product(range(wshape[0]), range(per_in)):
            base = (o // per_out) * per_in
            terms.setdefault((o, c, *k), []).append(
                el.tensor(g, (o, *p)) * el.tensor(inp, (base + c, *i))
            )
    return {ix: sp.Add(*terms.get(ix, [])) for ix in indices(wshape)}


register(OpKind("grad_conv_weight", param_shape, _gw_eval, _gw_text, _gw_latex, _gw_elements))


def _gb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, b = op.args
    c = scale_of(op, env, env["x"].dtype)
    gv = env[g]
    return c * (gv.sum() if not ctx.shape(b) else gv.sum(axis=(0, *range(2, gv.ndim))))


def _gb_text(op: Op, ctx: Context) -> str:
    g, _ = op.args
    return f"{op.out} = {c_text(op.scale)}sum_n sum_p {g}_n[:, p]"


def _gb_latex(op: Op, ctx: Context) -> str:
    g, b = op.args
    return rf"{name_tex('d' + b)} = {c_tex(op.scale)}\sum_n \sum_p {name_tex(g)}_{{n,:,p}}"


def _gb_elements(op: Op, el: Elements) -> dict:
    g, b = op.args
    shape = el.ctx.shape(g)
    if not el.ctx.shape(b):
        return {(): sp.Add(*(el.tensor(g, ix) for ix in indices(shape)))}
    return {(o,): sp.Add(*(el.tensor(g, (o, *p)) for p in indices(shape[1:])))
            for o in range(shape[0])}  # fmt: skip


register(OpKind("grad_conv_bias", param_shape, _gb_eval, _gb_text, _gb_latex, _gb_elements))
