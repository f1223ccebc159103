"""The layer kinds: what each ``type`` of a spec's layer means, in one registry entry per kind.

A :class:`LayerKind` reads its spec fields (with the shapes of its inputs, so every error names
its field), lists its parameters with PyTorch's shapes, returns its forward ops in the IR, and
carries the textbook equations the documents print for it. Its backward pass is not written
here: the chain rule derives it from the pullbacks of the forward ops (``ops``).

A kind with an activation computes a pre-activation ``z{i}`` and its output ``a{i} = f(z{i})``;
a kind without one (``concat``) computes ``a{i}`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..spec.errors import SpecError
from ..spec.fields import _Fields, _int
from ..spec.params import ParamSpec, activation, param_spec
from . import activations
from .activations import Activation, ActivationDerivative
from .ir import Op, Param, Shape, vec
from .symbols import A, X

MAX_DIM = 100_000


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer of a spec: its kind, input names, per-sample output shape, and the
    fields its kind reads (activation, weight and bias specs, and a kind's own ``attrs``)."""

    type: str
    inputs: tuple[str, ...]
    shape: Shape
    activation: Activation | None = None
    weight: ParamSpec | None = None
    bias: ParamSpec | None = None
    attrs: tuple[tuple[str, Any], ...] = ()

    @property
    def units(self) -> int:
        """Width of the output's last axis (features)."""
        return self.shape[-1]

    @property
    def activation_name(self) -> str:
        return self.activation.name if self.activation is not None else "identity"


@dataclass(frozen=True)
class Node:
    """Layer ``index`` of the graph: its kind, inputs (names), parameters and output shape."""

    index: int
    type: str
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    shape: Shape
    params: tuple[Param, ...]
    activation: Activation | None
    derivative: ActivationDerivative | None  # None without an activation, and for softmax
    spec: LayerSpec

    @property
    def a(self) -> str:
        return f"a{self.index}"

    @property
    def z(self) -> str | None:
        """The pre-activation, for kinds with an activation."""
        return f"z{self.index}" if self.activation is not None else None

    @property
    def units(self) -> int:
        return self.shape[-1]

    def param(self, role: str) -> Param | None:
        return next((p for p in self.params if p.role == role), None)

    @property
    def weight(self) -> Param | None:
        return self.param("weight")

    @property
    def bias(self) -> Param | None:
        return self.param("bias")


@dataclass(frozen=True)
class LayerKind:
    """One kind of layer.

    Attributes:
        name: the spec's ``type``.
        parse: ``(fields, inputs, input_shapes) -> LayerSpec``; reads every field it allows
            (``type`` and ``input``/``inputs`` are read before) and calls ``fields.done``.
        params: ``(layer_spec, index, input_shapes) -> params`` in the weight file's order.
        forward: ``node -> ops`` of the IR, ending with the op that writes ``a{index}``.
        textbook: general-form equations for the documents: (LaTeX, text, note) triples.
        multi_input: reads ``inputs: [...]`` (two or more) instead of ``input``.
    """

    name: str
    parse: Callable[[_Fields, tuple[str, ...], tuple[Shape, ...]], LayerSpec]
    params: Callable[[LayerSpec, int, tuple[Shape, ...]], tuple[Param, ...]]
    forward: Callable[[Node], tuple[Op, ...]]
    textbook: tuple[tuple[str, str, str], ...] = ()
    multi_input: bool = False


LAYER_KINDS: dict[str, LayerKind] = {}


def register(kind: LayerKind) -> LayerKind:
    """Add (or replace) a layer kind: from then on specs may say ``type: <name>``."""
    LAYER_KINDS[kind.name] = kind
    return kind


def activation_ops(node: Node) -> tuple[Op, ...]:
    """``a = f(z)``: softmax, or a map carrying f' rewritten in forward quantities."""
    z, a, act = node.z, node.a, node.activation
    assert z is not None and act is not None
    if act.is_softmax:
        return (Op("softmax", a, (z,), why=f"{a} = softmax({z})"),)
    f = activations.stabilize(act.expr)  # a derivation step when changed
    assert node.derivative is not None
    local = node.derivative.expr.xreplace({X: vec(z), A: vec(a)})
    return (Op("map", a, (z,), f.xreplace({X: vec(z)}), why=f"{a} = f({z})", partials=(local,)),)


# ---- dense: a = f(W in + b) ------------------------------------------------------------------


def _dense_parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
    units = _int(f.get("units", required=True), f.at("units"), 1, MAX_DIM)
    act = activation(f.get("activation", "identity"), f.at("activation"))
    (shape,) = shapes
    weight = param_spec(f.get("weight", {}), f.at("weight"), (units, shape[-1]), False)
    bias = param_spec(f.get("bias", {}), f.at("bias"), (units,), True)
    f.done(("units", "activation", "weight", "bias"))
    return LayerSpec("dense", inputs, (*shape[:-1], units), act, weight, bias)


def _dense_params(ls: LayerSpec, i: int, shapes: tuple[Shape, ...]) -> tuple[Param, ...]:
    fan_in, units = shapes[0][-1], ls.units
    assert ls.weight is not None
    w = ls.weight
    out = [Param(f"W{i}", i, "weight", "matrix", (units, fan_in), w.trainable, w.init, fan_in,
                 units)]  # fmt: skip
    if ls.bias is not None:
        b = ls.bias
        shape = () if b.shape == "shared" else (units,)
        out.append(Param(f"b{i}", i, "bias", b.shape, shape, b.trainable, b.init, fan_in, units))
    return tuple(out)


def _dense_forward(node: Node) -> tuple[Op, ...]:
    w, b, inp = node.weight, node.bias, node.inputs[0]
    bias = b.name if b else ""
    why = f"{node.z} = {w.name} @ {inp}" + (f" + {bias}" if bias else "")
    return (Op("affine", node.z, (w.name, inp, bias), why=why), *activation_ops(node))


DENSE_TEXTBOOK = (
    (r"\boldsymbol{\delta}^{(L)} = \nabla_{\mathbf{a}^{(L)}} \ell"
     r" \odot f'\left(\mathbf{z}^{(L)}\right)",
     "delta_L = grad_a l * f'(z_L)", "output layer (softmax: its Jacobian instead of f')"),
    (r"\boldsymbol{\delta}^{(l)} = \left(\left(W^{(l+1)}\right)^T"
     r" \boldsymbol{\delta}^{(l+1)}\right) \odot f'\left(\mathbf{z}^{(l)}\right)",
     "delta_l = (W_{l+1}.T @ delta_{l+1}) * f'(z_l)", "hidden layers"),
    (r"\frac{\partial E}{\partial W^{(l)}} = c \sum_n \boldsymbol{\delta}^{(l)}_n "
     r"\left(\mathbf{a}^{(l-1)}_n\right)^T, \quad \frac{\partial E}{\partial \mathbf{b}^{(l)}}"
     r" = c \sum_n \boldsymbol{\delta}^{(l)}_n",
     "dE/dW_l = c sum_n delta_l,n a_{l-1},n^T,  dE/db_l = c sum_n delta_l,n",
     "parameters (a shared bias sums over its units too; a^(0) = x)"),
)  # fmt: skip

register(LayerKind("dense", _dense_parse, _dense_params, _dense_forward, DENSE_TEXTBOOK))


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
     "add: δ flows unchanged into every input (a residual's skip path)"),
)  # fmt: skip

register(LayerKind("add", _add_parse, lambda ls, i, shapes: (), _add_forward, ADD_TEXTBOOK,
                   multi_input=True))  # fmt: skip


# ---- concat: a = [in_1; in_2; ...] along the features -------------------------------------------


def _concat_parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
    for name, shape in zip(inputs[1:], shapes[1:], strict=True):
        if shape[:-1] != shapes[0][:-1]:
            why = f"{inputs[0]} is {list(shapes[0])}, {name} is {list(shape)}"
            raise SpecError(
                f.at("inputs"), f"concat needs equal shapes but for the last axis: {why}"
            )
    f.done(())
    return LayerSpec("concat", inputs, (*shapes[0][:-1], sum(s[-1] for s in shapes)))


def _concat_forward(node: Node) -> tuple[Op, ...]:
    why = f"{node.a} = concat({', '.join(node.inputs)})"
    return (Op("concat", node.a, node.inputs, why=why),)


CONCAT_TEXTBOOK = (
    (r"\mathbf{a}^{(l)} = \begin{bmatrix} \mathbf{a}^{(j)} \\ \mathbf{a}^{(k)} \end{bmatrix},"
     r" \quad \frac{\partial \ell}{\partial \mathbf{a}^{(j)}} \mathrel{+}= "
     r"\left(\frac{\partial \ell}{\partial \mathbf{a}^{(l)}}\right)_{\text{rows of } j}",
     "a_l = concat(a_j, a_k);  dl/da_j += (dl/da_l)[rows of a_j]",
     "concat: each input gets back its own rows of the gradient"),
)  # fmt: skip

register(LayerKind("concat", _concat_parse, lambda ls, i, shapes: (), _concat_forward,
                   CONCAT_TEXTBOOK, multi_input=True))  # fmt: skip


__all__ = ["LAYER_KINDS", "LayerKind", "LayerSpec", "Node", "activation_ops", "register"]
