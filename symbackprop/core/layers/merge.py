"""Layer kinds that merge tensors: add (a residual: a = f(in_1 + in_2 + ...)) and concat."""

from __future__ import annotations

import sympy as sp

from ...spec.errors import SpecError
from ...spec.fields import _Fields
from ...spec.params import activation
from ..ir import Op, Shape, vec
from .base import InputShapes, LayerKind, LayerSpec, Node, activation_ops, feature_axis, register

# ---- add: a = f(in_1 + in_2 + ...), a residual -------------------------------------------------


def _add_parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
    for name, shape in zip(inputs[1:], shapes[1:], strict=True):
        if shape != shapes[0]:
            raise SpecError(f.at("inputs"), f"add needs equal shapes: {inputs[0]} is "
                            f"{list(shapes[0])}, {name} is {list(shape)}")  # fmt: skip
    act = activation(f.get("activation", "identity"), f.at("activation"))
    f.done(("activation",))
    return LayerSpec("add", inputs, shapes[0], act)


def _add_forward(node: Node) -> tuple[Op, ...]:
    total = sp.Add(*(vec(n) for n in node.inputs))
    why = f"{node.z} = " + " + ".join(node.inputs)
    return (Op("map", node.z, tuple(dict.fromkeys(node.inputs)), total, why=why),
            *activation_ops(node))  # fmt: skip


ADD_TEXTBOOK = (
    (r"\mathbf{z}^{(l)} = \sum_{k} \mathbf{a}^{(k)}, \quad "
     r"\frac{\partial \ell}{\partial \mathbf{a}^{(k)}} \mathrel{+}= \boldsymbol{\delta}^{(l)}",
     "z_l = sum_k a_k;  dl/da_k += delta_l",
     r"add: $\boldsymbol{\delta}$ flows unchanged into every input (a residual's skip path)"),
)  # fmt: skip

register(LayerKind("add", _add_parse, lambda ls, i, shapes: (), _add_forward, ADD_TEXTBOOK,
                   multi_input=True))  # fmt: skip


# ---- concat: a = [in_1; in_2; ...] along the features (the channels of maps) -----------------


def _concat_parse(f: _Fields, inputs: tuple[str, ...], shapes: InputShapes) -> LayerSpec:
    layouts = set(shapes.layouts)
    if len(layouts) > 1 or any(len(s) != len(shapes[0]) for s in shapes):
        kinds = ", ".join(f"{n} is a {lay} {list(s)}" for n, lay, s in
                          zip(inputs, shapes.layouts, shapes, strict=True))  # fmt: skip
        raise SpecError(f.at("inputs"), f"concat needs inputs of one kind: {kinds}")
    axis = feature_axis(shapes.layouts[0]) % len(shapes[0])
    what = "channels" if shapes.layouts[0] == "map" else "the last axis"
    for name, shape in zip(inputs[1:], shapes[1:], strict=True):
        if _without(shape, axis) != _without(shapes[0], axis):
            why = f"{inputs[0]} is {list(shapes[0])}, {name} is {list(shape)}"
            raise SpecError(f.at("inputs"), f"concat needs equal shapes but for {what}: {why}")
    f.done(())
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    return LayerSpec("concat", inputs, tuple(shape), attrs=(("axis", axis),))


def _without(shape: Shape, axis: int) -> Shape:
    return shape[:axis] + shape[axis + 1 :]


def _concat_forward(node: Node) -> tuple[Op, ...]:
    why = f"{node.a} = concat({', '.join(node.inputs)})"
    axis = node.spec.attr("axis", len(node.shape) - 1)
    return (Op("concat", node.a, node.inputs, why=why, attrs=(("axis", axis),)),)


CONCAT_TEXTBOOK = (
    (r"\mathbf{a}^{(l)} = \begin{bmatrix} \mathbf{a}^{(j)} \\ \mathbf{a}^{(k)} \end{bmatrix},"
     r" \quad \frac{\partial \ell}{\partial \mathbf{a}^{(j)}} \mathrel{+}= "
     r"\left(\frac{\partial \ell}{\partial \mathbf{a}^{(l)}}\right)_{\text{rows of } j}",
     "a_l = concat(a_j, a_k);  dl/da_j += (dl/da_l)[rows of a_j]",
     "concat: each input gets back its own rows of the gradient"),
)  # fmt: skip

register(LayerKind("concat", _concat_parse, lambda ls, i, shapes: (), _concat_forward,
                   CONCAT_TEXTBOOK, multi_input=True))  # fmt: skip
