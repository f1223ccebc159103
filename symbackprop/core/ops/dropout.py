"""The dropout mask: a per-sample tensor of ones (kept) and zeros (dropped), drawn from the
portable PRNG (core/prng.py) at the seed and the step count, so every target draws the same.

Element j of row r of a batch at step k, layer i: kept iff u(dropout_key(seed, k, i), r·F + j)
≥ p (F the numbers of a sample, j in C order: a map's flat index). In evaluation mode the mask
is its mean 1 − p (its ``eval``): u ⊙ m/(1 − p) becomes u, inverted dropout's identity.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..ir import Op, Shape
from .base import Context, Elements, OpKind, Substitution, indices, name_tex, register, rows


def _mask_shape(op: Op, ctx: Context) -> Shape:
    return tuple(op.attr("shape"))


def _mask_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    from .. import prng

    shape = _mask_shape(op, ctx)
    width = int(np.prod(shape))  # a map's elements in C order: r·size + flat index
    key = prng.dropout_key(int(env["__seed"]), int(env["__step"]), op.attr("layer"))
    keep = prng.dropout_keep(key, 0, rows(env), width, float(op.attr("p")))
    return keep.reshape(rows(env), *shape).astype(env["x"].dtype)


def _mask_text(op: Op, ctx: Context) -> str:
    p = op.attr("p")
    return f"{op.out} = [u >= {p}] for u uniform in [0, 1) at (seed, step): 1 kept, 0 dropped"


def _mask_latex(op: Op, ctx: Context) -> str:
    p = sp.latex(op.attr("p"))
    return (rf"{name_tex(op.out)}_j = [u_j \geq {p}] \sim \operatorname{{Bernoulli}}(1 - {p})"
            r",\ u_j \text{ from the PRNG at (seed, step)}")  # fmt: skip


def _mask_elements(op: Op, el: Elements) -> dict:
    """The mask is an input of the formulas, as x is: each element its own symbol."""
    return {ix: el.tensor(op.out, ix) for ix in indices(_mask_shape(op, el.ctx))}


def _mask_eval_mode(op: Op) -> tuple[tuple[Op, ...], Substitution]:
    return (), {op.out: 1 - op.attr("p")}


register(OpKind("mask", _mask_shape, _mask_eval, _mask_text, _mask_latex, _mask_elements,
                eval=_mask_eval_mode))  # fmt: skip
