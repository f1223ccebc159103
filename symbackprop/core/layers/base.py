"""The layer-kind registry and what every kind shares: the layer spec, the graph node, and the
activation stage. A kind with an activation computes a pre-activation ``z{i}`` and its output
``a{i} = f(z{i})``; a kind without one (``concat``) computes ``a{i}`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...spec.errors import SpecError
from ...spec.fields import _Fields
from ...spec.params import ParamSpec
from .. import activations
from ..activations import Activation, ActivationDerivative
from ..ir import Op, Param, Shape, vec
from ..symbols import A, X

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


def vector_inputs(f: _Fields, kind: str, inputs: tuple[str, ...], shapes: tuple[Shape, ...]):
    """Refuse a sequence (or map) input to a kind that acts on vectors only, for now."""
    for name, shape in zip(inputs, shapes, strict=True):
        if len(shape) != 1:
            field = f.at("input") if len(inputs) == 1 else f.at("inputs")
            why = "end a recurrent layer with return_sequences: false before it"
            raise SpecError(field, f"{kind} takes vectors for now; {name} is {list(shape)} ({why})")


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


__all__ = ["LAYER_KINDS", "MAX_DIM", "LayerKind", "LayerSpec", "Node", "activation_ops", "register",
           "vector_inputs"]  # fmt: skip
