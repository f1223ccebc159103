"""Softmax, log-sum-exp and the softmax Jacobian's product (softmax_backward), over the last
axis (each row of a sequence [T, K] is one softmax). Log-sum-exp is one number per row: its
shape is the leading axes (() for a vector), and the evaluator keeps a trailing axis of 1."""

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
    indices,
    name_tex,
    register,
)

# ---- softmax, log-sum-exp and the softmax Jacobian --------------------------------------------


def _same_shape(op: Op, ctx: Context) -> Shape:
    return ctx.shape(op.args[0])


def _softmax_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    z = env[op.args[0]]
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_latex(op: Op, ctx: Context) -> str:
    a, z = op.out, op.args[0]
    zi, zj = element_tex(z, "i"), element_tex(z, "j")
    return rf"{element_tex(a, 'i')} = \frac{{e^{{{zi}}}}}{{\sum_j e^{{{zj}}}}}"


def _softmax_elements(op: Op, el: Elements) -> dict:
    *lead, n = el.ctx.shape(op.args[0])
    out = {}
    for row in indices(tuple(lead)):
        zs = [el.tensor(op.args[0], (*row, j)) for j in range(n)]
        total = sp.Add(*(sp.exp(z) for z in zs))
        out |= {(*row, i): sp.exp(zs[i]) / total for i in range(n)}
    return out


def _softmax_pullback(op: Op, g: str, bw: Backward) -> None:
    z = op.args[0]
    if bw.requires(z):
        bw.contribute(z, Op("softmax_backward", bw.slot(z, op.out), (op.out, g), why="softmax"))


register(OpKind("softmax", _same_shape, _softmax_eval,
                lambda op, ctx: f"{op.out} = softmax({op.args[0]})", _softmax_latex,
                _softmax_elements, _softmax_pullback))  # fmt: skip


def _lse_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    z = env[op.args[0]]
    m = z.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _lse_elements(op: Op, el: Elements) -> dict:
    *lead, n = el.ctx.shape(op.args[0])
    return {row: sp.log(sp.Add(*(sp.exp(el.tensor(op.args[0], (*row, j))) for j in range(n))))
            for row in indices(tuple(lead))}  # fmt: skip


def _lse_latex(op: Op, ctx: Context) -> str:
    return rf"\operatorname{{lse}} = \log \sum_k e^{{{element_tex(op.args[0], 'k')}}}"


register(OpKind("logsumexp", lambda op, ctx: ctx.shape(op.args[0])[:-1], _lse_eval,
                lambda op, ctx: f"{op.out} = log(sum(exp({op.args[0]})))",
                _lse_latex, _lse_elements))  # fmt: skip


def _smb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    a, g = env[op.args[0]], env[op.args[1]]
    return a * (g - (a * g).sum(axis=-1, keepdims=True))


def _smb_text(op: Op, ctx: Context) -> str:
    a, g = op.args
    return f"{op.out} = {a} * ({g} - sum_k({a} * {g}))"


def _smb_latex(op: Op, ctx: Context) -> str:
    a, g = (name_tex(n) for n in op.args)
    return rf"{name_tex(op.out)} = {a} \odot \left({g} - ({a}^T {g}) \mathbf{{1}}\right)"


def _smb_elements(op: Op, el: Elements) -> dict:
    a, g = op.args
    *lead, n = el.ctx.shape(a)
    out = {}
    for row in indices(tuple(lead)):
        dot = sp.Add(*(el.tensor(a, (*row, k)) * el.tensor(g, (*row, k)) for k in range(n)))
        out |= {(*row, i): el.tensor(a, (*row, i)) * (el.tensor(g, (*row, i)) - dot)
                for i in range(n)}  # fmt: skip
    return out


register(OpKind("softmax_backward", _same_shape, _smb_eval, _smb_text, _smb_latex,
                _smb_elements))  # fmt: skip
