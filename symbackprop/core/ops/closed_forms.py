"""Closed forms: a pullback for a whole segment of forward ops, written the way people know it,
that replaces what the chain rule derives op by op through the segment.

The segment's last op carries ``attrs`` ``closed_form`` (the registry key) and what the closed
form reads. The chain rule derives the backward pass twice: op by op (the derivation, printed
step by step), then with each segment's closed form (what the code computes); the documents
print each replacement as a derivation step, and tests/test_normalization.py proves the two
equal symbolically.

Normalization (batch norm over the batch, layer norm over the features, M terms, σ² the
biased variance, x̂ = (u − μ)/σ, y = γ ⊙ x̂ + β):

    ∂ℓ/∂u = (1/(M σ)) (M h − Σ h − x̂ ⊙ Σ(h ⊙ x̂)),   h = γ ⊙ ∂ℓ/∂y

which for batch norm, γ being the same for every sample, is the CS231n form
(γ/(N σ)) (N g − Σ_n g − x̂ ⊙ Σ_n (g ⊙ x̂)); over channels (a map with its channels last,
[S, C]) the sums run over the batch and the S positions, M = N·S.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ..ir import N, Op, vec
from .base import Backward


@dataclass(frozen=True)
class ClosedForm:
    """A segment's pullback; ``formula`` is what the documents print for it."""

    name: str
    pullback: Callable[[Op, str, Backward], None]
    formula: str
    why: str


CLOSED_FORMS: dict[str, ClosedForm] = {}


def register_closed_form(cf: ClosedForm) -> ClosedForm:
    CLOSED_FORMS[cf.name] = cf
    return cf


def _normalize_pullback(op: Op, g: str, bw: Backward) -> None:
    """dγ, dβ as the chain rule gives them; ∂ℓ/∂u in closed form (two sums over the
    normalized axis, then one elementwise pass)."""
    u, over, layer = op.attr("input"), op.attr("over"), op.attr("layer")
    xhat, var, eps = op.attr("xhat"), op.attr("var"), op.attr("eps")
    gamma, beta = op.attr("gamma"), op.attr("beta")
    if gamma and bw.requires(gamma):
        why = f"∂E/∂{gamma} = c Σ_n ∂ℓ/∂{op.out} ⊙ {xhat}"
        bw.emit(Op("grad_reduce", f"d{gamma}", (g, xhat, gamma), vec(g) * vec(xhat), bw.scale,
                   why, attrs=(("axes", "batch"),)))  # fmt: skip
    if beta and bw.requires(beta):
        bw.emit(Op("grad_reduce", f"d{beta}", (g, beta), vec(g), bw.scale,
                   f"∂E/∂{beta} = c Σ_n ∂ℓ/∂{op.out}", attrs=(("axes", "batch"),)))  # fmt: skip
    if not bw.requires(u):
        return
    batch = over != "features"  # over the batch, or over the batch and positions (channels)
    positions = op.attr("positions", 1)
    size = N * positions if batch else sp.Integer(bw.ctx.shape(u)[-1])
    axis = {"batch": "n", "channels": "n,s"}.get(over, "j")
    # h = γ ⊙ g inside the sums when γ varies along the axis (layer norm); outside (batch norm)
    h = vec(g) * vec(gamma) if gamma and not batch else vec(g)
    args = (g, gamma) if gamma and not batch else (g,)
    sg, sgx = f"sg{layer}", f"sgx{layer}"
    attrs = (("over", over),)
    what = f"{gamma} ⊙ ∂ℓ/∂{op.out}" if gamma and not batch else f"∂ℓ/∂{op.out}"
    bw.emit(Op("reduce", sg, args, h, why=f"Σ_{axis} {what} (closed form)", attrs=attrs))
    bw.emit(Op("reduce", sgx, (*args, xhat), h * vec(xhat),
               why=f"Σ_{axis} {what} ⊙ {xhat} (closed form)", attrs=attrs))  # fmt: skip
    scale = vec(gamma) if gamma and batch else 1
    body = size * h - vec(sg) - vec(xhat) * vec(sgx)
    expr = scale / (size * sp.sqrt(vec(var) + eps)) * body
    reads = tuple(dict.fromkeys((g, *((gamma,) if gamma else ()), sg, sgx, xhat, var)))
    why = (f"closed form: (γ/(Mσ)) (M g − Σ_{axis} g − x̂ ⊙ Σ_{axis} g ⊙ x̂), M = {size}"
           if over == "channels"
           else "closed form: (γ/(Nσ)) (N g − Σ_n g − x̂ ⊙ Σ_n g ⊙ x̂)" if batch
           else "closed form: (1/(Fσ)) (F h − Σ_j h − x̂ ⊙ Σ_j h ⊙ x̂), h = γ ⊙ g")  # fmt: skip
    bw.contribute(u, Op("map", bw.slot(u, op.out), reads, expr, why=why))


register_closed_form(ClosedForm(
    "normalize", _normalize_pullback,
    "∂ℓ/∂u = (1/(Mσ)) (M h − Σ h − x̂ ⊙ Σ h ⊙ x̂), h = γ ⊙ ∂ℓ/∂y",
    "the chain rule through the mean, the variance and the normalization, summed and "
    "simplified: the two sums over the normalized axis are computed once",
))  # fmt: skip


__all__ = ["CLOSED_FORMS", "ClosedForm", "register_closed_form"]
