"""Reductions: out = Σ expr(args) over the samples of the batch (a per-batch tensor, such as a
batch statistic), over the samples and the rows of each (``over: channels``: a map with its
channels last, [S, C], summed to [C] — batch norm over channels), or over the features of one
sample (a per-sample scalar, such as a layer's mean); and the update of a running buffer from a
batch statistic.

A reduction with attr ``running`` is a batch statistic: in evaluation mode its output is the
running buffer of that name instead (the op's ``eval``), and a training step then moves the
buffer toward it (its ``updates``: (1 − m)·buffer + m·statistic, with Bessel's correction
N/(N − 1) for a variance, as torch.nn.BatchNorm does).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ...printing import latex as lx
from ..ir import N, Op, Shape, vec
from .base import (
    Backward,
    Context,
    Elements,
    OpKind,
    Substitution,
    element_subs,
    elementwise,
    full_shape,
    indices,
    name_tex,
    register,
    rows,
)
from .maps import partial


def _over(op: Op) -> str:
    return op.attr("over", "batch")


def _reduce_shape(op: Op, ctx: Context) -> Shape:
    full = full_shape(op, ctx)
    over = _over(op)
    return full if over == "batch" else full[-1:] if over == "channels" else full[:-1]


def _reduce_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    dtype = env["x"].dtype
    full = full_shape(op, ctx)
    terms = np.broadcast_to(elementwise(op.expr, env, dtype), (rows(env), *(full or (1,))))
    if _over(op) == "batch":
        return terms.sum(axis=0, dtype=dtype)
    if _over(op) == "channels":
        return terms.reshape(-1, terms.shape[-1]).sum(axis=0, dtype=dtype)
    return terms.sum(axis=-1, keepdims=True, dtype=dtype)


def _index(op: Op) -> str:
    return {"batch": "n", "channels": "n,s"}.get(_over(op), "j")


def _reduce_text(op: Op, ctx: Context) -> str:
    return f"{op.out} = sum_{_index(op)} {lx.text(op.expr)}"


def _reduce_latex(op: Op, ctx: Context) -> str:
    body = lx.latex(op.expr, hadamard=True)
    if op.expr.is_Add:
        body = rf"\left({body}\right)"
    index = _index(op)
    index = f"{{{index}}}" if "," in index else index  # \sum_{n,s} over channels
    return rf"{name_tex(op.out)} = \sum_{index} {body}"


def _reduce_elements(op: Op, el: Elements) -> dict:
    full = full_shape(op, el.ctx)
    if _over(op) == "batch":
        return {ix: sp.Add(*(element_subs(op.expr, ix, s) for s in el.samples))
                for ix in indices(full)}  # fmt: skip
    if _over(op) == "channels":  # per channel: every sample's every row
        out: dict = {}
        for s in el.samples:
            for ix in indices(full):
                out[ix[-1:]] = out.get(ix[-1:], 0) + element_subs(op.expr, ix, s)
        return out
    return {(): sp.Add(*(element_subs(op.expr, ix, el) for ix in indices(full)))}


def _reduce_pullback(op: Op, g: str, bw: Backward) -> None:
    """Each summed term's partial: an argument with the terms' shape gets g (broadcast) times
    its partial, one that is itself broadcast into the terms (a per-batch tensor in a batch
    sum, a per-sample scalar in a feature sum) gets the same sum of g times its partial.
    Parameters never occur in a sum (normalization applies γ and β after it)."""
    ctx, over = bw.ctx, _over(op)
    full = full_shape(op, ctx)
    for arg in dict.fromkeys(op.args):
        if not bw.requires(arg) or vec(arg) not in op.expr.free_symbols:
            continue
        local = partial(op, arg)
        inputs = (g, *dict.fromkeys(op.args))
        if ctx.is_param(arg):  # no layer sums a parameter; its gradient would need its own rule
            raise ValueError(f"{op.out}: a sum of a parameter is not differentiated")
        summed = ctx.is_batch(arg) if over != "features" else len(ctx.shape(arg)) < len(full)
        if summed:
            why = f"∂ℓ/∂{arg} = Σ_{_index(op)} ∂ℓ/∂{op.out} ∂{op.out}/∂{arg}"
            bw.contribute(arg, Op("reduce", bw.slot(arg, op.out), inputs, vec(g) * local,
                                  why=why, attrs=(("over", over),)))  # fmt: skip
        else:
            why = f"∂ℓ/∂{arg} = ∂ℓ/∂{op.out} ∂{op.out}/∂{arg} (every term of the sum)"
            bw.contribute(arg, Op("map", bw.slot(arg, op.out), inputs, vec(g) * local, why=why))


def _reduce_eval_mode(op: Op) -> tuple[tuple[Op, ...], Substitution]:
    """A batch statistic reads its running buffer in evaluation mode; other sums are kept."""
    running = op.attr("running")
    if running is None:
        return (op,), {}
    return (), {op.out: vec(running)}


def _reduce_updates(op: Op) -> tuple[Op, ...]:
    """buffer ← (1 − m) buffer + m statistic (× N/(N − 1) for an unbiased variance)."""
    running = op.attr("running")
    if running is None:
        return ()
    m = op.attr("momentum")
    count = N * op.attr("positions", 1)  # the terms of the statistic: N, or N·S over channels
    stat = vec(op.out) * (count / (count - 1) if op.attr("unbiased") else 1)
    expr = (1 - m) * vec(running) + m * stat
    what = "running variance (unbiased)" if op.attr("unbiased") else "running mean"
    return (Op("running", running, (running, op.out), expr, why=f"{what}, momentum {m}"),)


register(OpKind("reduce", _reduce_shape, _reduce_eval, _reduce_text, _reduce_latex,
                _reduce_elements, _reduce_pullback, per_batch=lambda op: _over(op) != "features",
                eval=_reduce_eval_mode, updates=_reduce_updates))  # fmt: skip


# ---- running: buffer := expr(buffer, statistic), once per training step ------------------------


def _running_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    dtype = env[op.args[0]].dtype
    out = elementwise(op.expr, env, dtype)
    return np.broadcast_to(out, ctx.shape(op.out)).astype(dtype)


def _running_text(op: Op, ctx: Context) -> str:
    return f"{op.out} <- {lx.text(op.expr)}"


def _running_latex(op: Op, ctx: Context) -> str:
    return rf"{name_tex(op.out)} \leftarrow {lx.latex(op.expr, hadamard=True)}"


def _running_elements(op: Op, el: Elements) -> dict:
    return {ix: element_subs(op.expr, ix, el) for ix in indices(el.ctx.shape(op.out))}


register(OpKind("running", lambda op, ctx: ctx.shape(op.out), _running_eval, _running_text,
                _running_latex, _running_elements, per_batch=lambda op: True))  # fmt: skip
