"""Elementwise op kinds: map (out = expr(args)), its parameter gradients (grad_reduce), and
the loss (E = c Σ_n Σ_k expr)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from ...printing import latex as lx
from ..ir import Op, Shape, grad_name, vec
from .base import (
    Backward,
    Context,
    Elements,
    OpKind,
    c_tex,
    c_text,
    element_subs,
    elementwise,
    full_shape,
    indices,
    name_tex,
    param_shape,
    register,
    rows,
    scale_of,
)

# ---- map: out = expr(args) elementwise --------------------------------------------------------


def _map_shape(op: Op, ctx: Context) -> Shape:
    return full_shape(op, ctx)


def _map_batch(op: Op) -> bool:
    """A map over per-batch tensors (the sum of several contributions to a per-batch gradient)
    is per batch; every other map is per sample, even one that reads per-batch tensors only
    (dE/du via a batch mean: the same number for every sample)."""
    return bool(op.attr("batch", False))


def _map_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    dtype = env["x"].dtype
    shape = _map_shape(op, ctx)
    full = (*shape,) if _map_batch(op) else (rows(env), *(shape or (1,)))
    return np.broadcast_to(elementwise(op.expr, env, dtype), full).copy()


def _map_text(op: Op, ctx: Context) -> str:
    return f"{op.out} = {lx.text(op.expr)}"


def _map_latex(op: Op, ctx: Context) -> str:
    return f"{name_tex(op.out)} = {lx.latex(op.expr, hadamard=True)}"


def _map_elements(op: Op, el: Elements) -> dict:
    shape = _map_shape(op, el.ctx)
    return {ix: element_subs(op.expr, ix, el) for ix in indices(shape)}


def partial(op: Op, arg: str) -> sp.Expr:
    """∂out/∂arg of a map, elementwise: the op's own (rewritten) partial, else sympy.diff."""
    if op.partials:
        return op.partials[op.args.index(arg)]
    return sp.diff(op.expr, vec(arg))


def _map_pullback(op: Op, g: str, bw: Backward) -> None:
    ctx = bw.ctx
    shape, batch = _map_shape(op, ctx), _map_batch(op)
    for arg in dict.fromkeys(op.args):
        if not bw.requires(arg) or vec(arg) not in op.expr.free_symbols:
            continue
        local = partial(op, arg)
        inputs = (g, *dict.fromkeys((*op.args, op.out)))
        why = f"∂ℓ/∂{arg} = ∂ℓ/∂{op.out} ⊙ ∂{op.out}/∂{arg}"
        if ctx.is_param(arg):
            axes = "all" if not ctx.shape(arg) else "batch"
            bw.emit(Op("grad_reduce", f"d{arg}", (g, *inputs[1:], arg), vec(g) * local,
                       bw.scale, f"∂E/∂{arg} = c Σ ∂ℓ/∂{op.out} ⊙ ∂{op.out}/∂{arg}",
                       attrs=(("axes", axes),)))  # fmt: skip
        elif ctx.is_batch(arg) and not batch:  # the same for every sample: summed over them
            why = f"∂ℓ/∂{arg} = Σ_n ∂ℓ/∂{op.out} ⊙ ∂{op.out}/∂{arg} ({arg} is per batch)"
            # [C] into a map with its channels last, [S, C]: summed over the rows as well
            over = "batch" if len(ctx.shape(arg)) == len(shape) else "channels"
            bw.contribute(arg, Op("reduce", bw.slot(arg, op.out), inputs, vec(g) * local,
                                  why=why, attrs=(("over", over),)))  # fmt: skip
        elif len(ctx.shape(arg)) < len(shape):  # one number per sample, broadcast: summed
            why = f"∂ℓ/∂{arg} = Σ_j ∂ℓ/∂{op.out}_j ∂{op.out}_j/∂{arg}"
            bw.contribute(arg, Op("reduce", bw.slot(arg, op.out), inputs, vec(g) * local,
                                  why=why, attrs=(("over", "features"),)))  # fmt: skip
        elif local == 1:
            bw.contribute(arg, alias=g)
        else:
            why = (
                r"$\boldsymbol{\delta} = \partial\ell/\partial\mathbf{a} \odot f'(\mathbf{z})$"
                if op.partials
                else f"${name_tex(grad_name(arg))} = {name_tex(grad_name(op.out))} \\odot "
                f"\\partial {name_tex(op.out)}/\\partial {name_tex(arg)}$"
            )
            attrs = (("batch", True),) if batch else ()
            op_ = Op("map", bw.slot(arg, op.out), inputs, vec(g) * local, why=why, attrs=attrs)
            bw.contribute(arg, op_)


register(OpKind("map", _map_shape, _map_eval, _map_text, _map_latex, _map_elements,
                _map_pullback, per_batch=_map_batch))  # fmt: skip


# ---- the loss: E = c Σ_n Σ_k expr -------------------------------------------------------------


def _loss_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    dtype = env["x"].dtype
    terms = np.broadcast_to(elementwise(op.expr, env, dtype), env[op.args[1]].shape)
    return np.asarray(float(scale_of(op, env, dtype)) * terms.sum(dtype=dtype))


def _loss_elements(op: Op, el: Elements) -> dict:
    shape = el.ctx.shape(op.args[1])
    terms = [element_subs(op.expr, ix, el) for ix in indices(shape)]
    return {(): (op.scale if op.scale is not None else 1) * sp.Add(*terms)}


register(OpKind("loss", lambda op, ctx: (), _loss_eval,
                lambda op, ctx: f"E = {lx.text(op.scale)} * sum_n sum_k {lx.text(op.expr)}",
                lambda op, ctx: rf"E = {c_tex(op.scale)}\sum_n \sum_k {lx.latex(op.expr)}",
                _loss_elements))  # fmt: skip


def _gr_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    dtype = env["x"].dtype
    p = op.args[-1]
    shape = ctx.shape(op.args[0])
    terms = np.broadcast_to(elementwise(op.expr, env, dtype), (rows(env), *shape))
    axes = tuple(range(terms.ndim - len(ctx.shape(p))))
    return scale_of(op, env, dtype) * terms.sum(axis=axes)


def _positions(op: Op, ctx: Context) -> bool:
    """A per-channel parameter's gradient over a map with its channels last: Σ over n and s."""
    shape = ctx.shape(op.args[-1])
    return bool(shape) and len(ctx.shape(op.args[0])) > len(shape)


def _gr_text(op: Op, ctx: Context) -> str:
    over = "sum_n sum_i" if not ctx.shape(op.args[-1]) else "sum_n"
    over = "sum_n,s" if _positions(op, ctx) else over
    return f"{op.out} = {c_text(op.scale)}{over} {lx.text(op.expr)}"


def _gr_latex(op: Op, ctx: Context) -> str:
    over = r"\sum_n \sum_i" if not ctx.shape(op.args[-1]) else r"\sum_n"
    over = r"\sum_{n,s}" if _positions(op, ctx) else over
    body = lx.latex(op.expr, hadamard=True)
    return rf"{name_tex(op.out)} = {c_tex(op.scale)}{over} {body}"


def _gr_elements(op: Op, el: Elements) -> dict:
    """One sample's term: the elementwise product summed over the axes the parameter lacks."""
    p = op.args[-1]
    pshape, shape = el.ctx.shape(p), el.ctx.shape(op.args[0])
    out: dict = {}
    for ix in indices(shape):
        key = ix[len(ix) - len(pshape) :] if pshape else ()
        out[key] = out.get(key, 0) + element_subs(op.expr, ix, el)
    return out


register(OpKind("grad_reduce", param_shape, _gr_eval, _gr_text, _gr_latex, _gr_elements))
