"""Layer kinds that only change the shape of a tensor: flatten (torch.flatten(a, 1))."""

from __future__ import annotations

import math

from ...spec.fields import _Fields
from ..ir import Op, Shape
from .base import LayerKind, LayerSpec, Node, register

# ---- flatten: a = the input's numbers in C order, one vector per sample -------------------------


def _flatten_parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
    f.done(())
    return LayerSpec("flatten", inputs, (math.prod(shapes[0]),))


def _flatten_forward(node: Node) -> tuple[Op, ...]:
    inp = node.inputs[0]
    why = f"{node.a} = flatten({inp}): torch.flatten({inp}, 1), C order"
    return (Op("reshape", node.a, (inp,), why=why, attrs=(("shape", node.shape),)),)


FLATTEN_TEXTBOOK = (
    (r"\mathbf{a}^{(l)} = \operatorname{vec}\left(A^{(l-1)}\right), \quad "
     r"\frac{\partial \ell}{\partial A^{(l-1)}} = "
     r"\operatorname{vec}^{-1}\left(\frac{\partial \ell}{\partial \mathbf{a}^{(l)}}\right)",
     "a_l = flatten(a_{l-1});  dl/da_{l-1} = reshape(dl/da_l, shape of a_{l-1})",
     "flatten: the same numbers in C order; the gradient goes back in the input's shape"),
)  # fmt: skip

register(LayerKind("flatten", _flatten_parse, lambda ls, i, shapes: (), _flatten_forward,
                   FLATTEN_TEXTBOOK, layout="vector"))  # fmt: skip
