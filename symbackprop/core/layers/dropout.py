"""The dropout layer kind: inverted dropout, a = u ⊙ m / (1 − p) with m a mask of ones (kept)
and zeros (dropped) from the portable PRNG (ops.dropout). In evaluation mode m is 1: the
identity. Its backward pass, from the chain rule, is the same mask: ∂ℓ/∂u = ∂ℓ/∂a ⊙ m/(1 − p).
"""

from __future__ import annotations

from ...spec.fields import _Fields, _num
from ..ir import Op, Shape, vec
from ..symbols import number
from .base import LayerKind, LayerSpec, Node, register


def _parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
    p = _num(f.get("p", 0.5), f.at("p"), 0.0, 1.0, high_open=True)
    f.done(("p",))
    return LayerSpec("dropout", inputs, shapes[0], attrs=(("p", p),))


def _forward(node: Node) -> tuple[Op, ...]:
    i, u, a = node.index, node.inputs[0], node.a
    p = number(dict(node.spec.attrs)["p"])
    mask = f"m{i}"
    attrs = (("p", p), ("layer", i), ("shape", tuple(node.shape)))
    return (
        Op("mask", mask, (), why=f"{mask}: keep each element with probability 1 − p", attrs=attrs),
        Op("map", a, (u, mask), vec(u) * vec(mask) / (1 - p), why=f"{a} = {u} ⊙ {mask} / (1 − p)"),
    )


DROPOUT_TEXTBOOK = (
    (r"\mathbf{a} = \frac{\mathbf{u} \odot \mathbf{m}}{1 - p}, \quad \frac{\partial \ell}"
     r"{\partial \mathbf{u}} = \frac{\partial \ell}{\partial \mathbf{a}} \odot "
     r"\frac{\mathbf{m}}{1 - p}, \quad m_j \sim \operatorname{Bernoulli}(1 - p)",
     "a = u * m / (1 - p);  dl/du = dl/da * m / (1 - p)",
     "dropout, training (evaluation: a = u): δ flows back only where the mask kept"),
)  # fmt: skip

register(LayerKind("dropout", _parse, lambda ls, i, shapes: (), _forward, DROPOUT_TEXTBOOK))
