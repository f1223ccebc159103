"""Normalization layer kinds: batch_norm (nn.BatchNorm1d) and layer_norm (nn.LayerNorm).

Both are written as the textbook defines them, op by op over the normalized axis (the batch
for batch norm, the features of one sample for layer norm):

    μ = (1/M) Σ u,   u_c = u − μ,   σ² = (1/M) Σ u_c²,   x̂ = u_c / √(σ² + ε),   a = γ ⊙ x̂ + β

so the chain rule derives their backward pass through every step (ops.reduce, ops.maps), and
the closed form (ops.closed_forms) replaces it in the code. Batch norm's two batch statistics
carry their running buffers (``mean{i}``, ``var{i}``: parameters that are never trained): in
evaluation mode the statistics are the buffers, and each training step updates them with
PyTorch's momentum (the variance with Bessel's correction). Over channels (conv maps, [C, L]
or [C, H, W], as nn.BatchNorm1d/2d) the map is transposed to [S, C] first, so the statistics
sum over the batch and the S positions of each channel (M = N·S terms) and the same ops apply;
vectors are features.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import sympy as sp

from ...spec.errors import SpecError
from ...spec.fields import _bool, _Fields, _num
from ..ir import Init, N, Op, Param, Shape, vec
from ..symbols import number
from .base import LayerKind, LayerSpec, Node, register


def _parse(kind: str):
    def parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
        (shape,) = shapes
        maps = kind == "batch_norm" and len(shape) in (2, 3)  # [C, L], [C, H, W]: per channel
        if len(shape) != 1 and not maps:
            raise SpecError(f.at("input"), f"{kind} takes vectors here (the input is "
                            f"{list(shape)})")  # fmt: skip
        eps = _num(f.get("eps", 1e-5), f.at("eps"), 0.0, low_open=True)
        affine = _bool(f.get("affine", True), f.at("affine"))
        attrs: tuple = (("eps", eps), ("affine", affine))
        allowed: tuple[str, ...] = ("eps", "affine")
        if kind == "batch_norm":
            momentum = _num(f.get("momentum", 0.1), f.at("momentum"), 0.0, 1.0)
            attrs += (("momentum", momentum),)
            allowed += ("momentum",)
        f.done(allowed)
        return LayerSpec(kind, inputs, shape, attrs=attrs)

    return parse


def _params(ls: LayerSpec, i: int, shapes: tuple[Shape, ...]) -> tuple[Param, ...]:
    """γ (ones) and β (zeros) when affine, then batch norm's buffers: the running mean
    (zeros) and variance (ones); nn.BatchNorm1d's order and initial values."""
    features = shapes[0][0]  # a vector's features, a map's channels
    attrs = dict(ls.attrs)
    out = []
    ones, zeros = Init("values", 1.0), Init("zeros")

    def p(name: str, role: str, trainable: bool, init: Init) -> Param:
        return Param(f"{name}{i}", i, role, "per_unit", (features,), trainable, init, features,
                     features)  # fmt: skip

    if attrs["affine"]:
        out += [p("g", "scale", True, ones), p("b", "shift", True, zeros)]
    if ls.type == "batch_norm":
        out += [p("mean", "buffer", False, zeros), p("var", "buffer", False, ones)]
    return tuple(out)


def _forward(node: Node) -> tuple[Op, ...]:
    """The ops over features (vectors, batch statistics or each sample's), or for a map the
    same ops between two transposes: channels last, [S, C], normalized over the batch and the
    S positions of each channel, then channels first again."""
    i, u = node.index, node.inputs[0]
    attrs = dict(node.spec.attrs)
    eps = number(attrs["eps"])
    batch = node.type == "batch_norm"
    shape = tuple(node.shape)
    channels = batch and len(shape) > 1
    positions = 1
    for n in shape[1:]:
        positions *= n
    over = "channels" if channels else "batch" if batch else "features"
    size = N * positions if batch else sp.Integer(shape[-1])
    mu, xc, var, xhat = f"mu{i}", f"xc{i}", f"v{i}", f"xhat{i}"
    stat: dict[str, tuple] = {"mu": (), "var": ()}
    count = (("positions", positions),) if channels else ()
    if batch:
        m = number(attrs["momentum"])
        stat = {"mu": (("running", f"mean{i}"), ("momentum", m), *count),
                "var": (("running", f"var{i}"), ("momentum", m), ("unbiased", True),
                        *count)}  # fmt: skip
    axis = {"batch": "batch", "channels": "batch and positions"}.get(over, "features")
    gamma = node.param("scale")
    beta = node.param("shift")
    final = f"y{i}" if channels else node.a  # a map's result before channels go first again
    out = final if gamma is None else xhat
    pre: list[Op] = []
    if channels:
        t = f"cl{i}"  # channels last
        pre.append(Op("transpose", t, (u,), why=f"{t}: {u} with its channels last",
                      attrs=(("to", "last"), ("shape", (positions, shape[0])))))  # fmt: skip
        u = t
    ops = [
        *pre,
        Op("reduce", mu, (u,), vec(u) / size, why=f"{mu}: mean of {u} over the {axis}",
           attrs=(("over", over), *stat["mu"])),
        Op("map", xc, (u, mu), vec(u) - vec(mu), why=f"{xc} = {u} − {mu}"),
        Op("reduce", var, (xc,), vec(xc) ** 2 / size,
           why=f"{var}: variance over the {axis} (biased: 1/{size})",
           attrs=(("over", over), *stat["var"])),
        Op("map", out, (xc, var), vec(xc) / sp.sqrt(vec(var) + eps),
           why=f"{out} = {xc} / √({var} + ε)"),
    ]  # fmt: skip
    if gamma is not None:
        assert beta is not None
        ops.append(Op("map", final, (gamma.name, xhat, beta.name),
                      vec(gamma.name) * vec(xhat) + vec(beta.name),
                      why=f"{final} = γ ⊙ {xhat} + β"))  # fmt: skip
    names = (("gamma", gamma.name if gamma else ""), ("beta", beta.name if beta else ""))
    closed = (("closed_form", "normalize"), ("input", u), ("over", over), ("layer", i),
              ("xhat", out), ("var", var), ("eps", eps), *names, *count)  # fmt: skip
    last = ops[-1]
    ops[-1] = Op(last.kind, last.out, last.args, last.expr, why=last.why,
                 attrs=last.attrs + closed)  # fmt: skip
    if channels:
        ops.append(Op("transpose", node.a, (final,), why=f"{node.a}: {final} with its channels "
                      "first again", attrs=(("to", "first"), ("shape", shape))))  # fmt: skip
    return tuple(ops)


BATCH_NORM_TEXTBOOK = (
    (r"\boldsymbol{\mu} = \frac{1}{N} \sum_n \mathbf{u}_n, \quad \boldsymbol{\sigma}^2 = "
     r"\frac{1}{N} \sum_n (\mathbf{u}_n - \boldsymbol{\mu})^2, \quad \hat{\mathbf{x}}_n = "
     r"\frac{\mathbf{u}_n - \boldsymbol{\mu}}{\sqrt{\boldsymbol{\sigma}^2 + \epsilon}}, \quad "
     r"\mathbf{a}_n = \boldsymbol{\gamma} \odot \hat{\mathbf{x}}_n + \boldsymbol{\beta}",
     "mu = (1/N) sum_n u_n, var = (1/N) sum_n (u_n - mu)^2, xhat_n = (u_n - mu)/sqrt(var + eps),"
     " a_n = g * xhat_n + b",
     "batch norm, training: statistics of the batch, per feature"),
    (r"\frac{\partial \ell}{\partial \mathbf{u}_n} = \frac{\boldsymbol{\gamma}}{N "
     r"\boldsymbol{\sigma}} \odot \left(N \mathbf{g}_n - \sum_m \mathbf{g}_m - \hat{\mathbf{x}}_n"
     r" \odot \sum_m \mathbf{g}_m \odot \hat{\mathbf{x}}_m\right), \quad \mathbf{g} = "
     r"\frac{\partial \ell}{\partial \mathbf{a}}",
     "dl/du_n = g/(N sigma) * (N g_n - sum_m g_m - xhat_n * sum_m g_m * xhat_m),"
     " g = dl/da, sigma = sqrt(var + eps)",
     "batch norm backward, closed form (every sample's u moves μ and σ²)"),
    (r"\boldsymbol{\mu}_{\mathrm{run}} \leftarrow (1 - m) \boldsymbol{\mu}_{\mathrm{run}} + m "
     r"\boldsymbol{\mu}, \quad \boldsymbol{\sigma}^2_{\mathrm{run}} \leftarrow (1 - m) "
     r"\boldsymbol{\sigma}^2_{\mathrm{run}} + m \frac{N}{N - 1} \boldsymbol{\sigma}^2",
     "mean <- (1 - m) mean + m mu,  var <- (1 - m) var + m N/(N - 1) var_batch",
     "batch norm buffers, once per training step; evaluation mode uses them for μ and σ²"),
)  # fmt: skip

LAYER_NORM_TEXTBOOK = (
    (r"\mu = \frac{1}{F} \sum_j u_j, \quad \sigma^2 = \frac{1}{F} \sum_j (u_j - \mu)^2, \quad "
     r"\hat{\mathbf{x}} = \frac{\mathbf{u} - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad \mathbf{a} = "
     r"\boldsymbol{\gamma} \odot \hat{\mathbf{x}} + \boldsymbol{\beta}",
     "mu = (1/F) sum_j u_j, var = (1/F) sum_j (u_j - mu)^2, xhat = (u - mu)/sqrt(var + eps),"
     " a = g * xhat + b",
     "layer norm: statistics of each sample's F features"),
    (r"\frac{\partial \ell}{\partial \mathbf{u}} = \frac{1}{F \sigma} \left(F \mathbf{h} - "
     r"\sum_j h_j - \hat{\mathbf{x}} \sum_j h_j \hat{x}_j\right), \quad \mathbf{h} = "
     r"\boldsymbol{\gamma} \odot \frac{\partial \ell}{\partial \mathbf{a}}",
     "dl/du = 1/(F sigma) (F h - sum_j h_j - xhat sum_j h_j xhat_j), h = g * dl/da",
     "layer norm backward, closed form"),
)  # fmt: skip

ONE_ROW = (
    "batch_norm needs more than one value per channel in training mode (as PyTorch: "
    "'Expected more than 1 value per channel when training')"
)  # every target's words (the generated NumPy and torch modules carry a copy)


def min_training_rows(layers: Iterable) -> int:
    """The fewest rows a training-mode batch may have: 2 when a batch_norm layer normalizes one
    number per channel and sample (over features, or over maps of one position), else 1.

    A channel's batch statistics over one number are no statistics (its x̂ is 0, whatever the
    input): PyTorch's batch norm refuses them ("Expected more than 1 value per channel when
    training"), and so does every target here. ``layers``: anything with ``type`` and ``shape``
    (the spec's LayerSpecs, a Program's LayerInfos).
    """
    one = any(ly.type == "batch_norm" and math.prod(ly.shape[1:]) == 1 for ly in layers)
    return 2 if one else 1


def short_batch(rows: int, batch_size: int, min_rows: int) -> bool:
    """True when training ``rows`` rows in batches of ``batch_size`` makes a batch (the last one,
    or every one) of fewer than ``min_rows`` rows."""
    last = rows - (rows - 1) // batch_size * batch_size  # the last batch's rows (rows >= 1)
    return rows >= 1 and min(batch_size, last) < min_rows


def short_batch_error(batch_size: int, rows: int) -> ValueError:
    """The loaders' refusal of training ``rows`` rows in batches of ``batch_size`` (short_batch)."""
    return ValueError(f"batch size {batch_size} leaves a batch of one row of {rows}: {ONE_ROW}")


register(LayerKind("batch_norm", _parse("batch_norm"), _params, _forward, BATCH_NORM_TEXTBOOK))
register(LayerKind("layer_norm", _parse("layer_norm"), _params, _forward, LAYER_NORM_TEXTBOOK))
