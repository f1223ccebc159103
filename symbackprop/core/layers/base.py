"""The layer-kind registry and what every kind shares: the layer spec, the graph node, and the
activation stage. A kind with an activation computes a pre-activation ``z{i}`` and its output
``a{i} = f(z{i})``; a kind without one (``concat``) computes ``a{i}`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...spec.fields import _Fields
from ...spec.params import ParamSpec
from .. import activations
from ..activations import Activation, ActivationDerivative
from ..ir import Op, Param, Shape, vec
from ..symbols import A, X

MAX_DIM = 100_000
MAX_AXES = 3  # per-sample axes of a tensor: [C, H, W] (more are refused by the spec)

LAYOUTS = ("vector", "sequence", "map")


def default_layout(shape: Shape) -> str:
    """What a tensor of ``shape`` is when nothing says otherwise: one axis a vector [F], two a
    sequence [T, F], three a map [C, H, W] (a two-axis map [C, L] comes from a kind that says
    so: conv1d, pooling)."""
    return {1: "vector", 2: "sequence"}.get(len(shape), "map")


class InputShapes(tuple):
    """The per-sample shapes of a layer's inputs (a tuple of shapes, one per input) and, in
    ``layouts``, what each is ('vector', 'sequence' or 'map'): a map's features are its
    channels (axis 0), a vector's and a sequence's the last axis. ``concat`` joins maps along
    channels and the others along features; normalizations pick their axis the same way."""

    layouts: tuple[str, ...]

    def __new__(cls, shapes, layouts=None) -> InputShapes:
        obj = super().__new__(cls, tuple(shapes))
        obj.layouts = tuple(layouts) if layouts is not None else tuple(map(default_layout, obj))
        return obj


def feature_axis(layout: str) -> int:
    """The per-sample axis of a tensor's features: channels (0) for a map, else the last."""
    return 0 if layout == "map" else -1


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
    layout: str = ""  # of the output: set by the loader (output_layout); "" until then

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)

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
        reads_maps: its input is a map (conv, pooling): a two-axis x it reads is [C, L].
        layout: the layout of its output ('map', 'vector', ...); "" keeps the first input's
            when the rank is the same, else the default for the rank (see default_layout).
    """

    name: str
    parse: Callable[[_Fields, tuple[str, ...], tuple[Shape, ...]], LayerSpec]
    params: Callable[[LayerSpec, int, tuple[Shape, ...]], tuple[Param, ...]]
    forward: Callable[[Node], tuple[Op, ...]]
    textbook: tuple[tuple[str, str, str], ...] = ()
    multi_input: bool = False
    reads_maps: bool = False
    layout: str = ""


LAYER_KINDS: dict[str, LayerKind] = {}


def register(kind: LayerKind) -> LayerKind:
    """Add (or replace) a layer kind: from then on specs may say ``type: <name>``."""
    LAYER_KINDS[kind.name] = kind
    return kind


def output_layout(layer: LayerSpec, inputs: InputShapes) -> str:
    """The layout of a layer's output: its kind's, else its first input's (same rank), else the
    default for its rank."""
    own = LAYER_KINDS[layer.type].layout
    if own:
        return own
    if inputs and len(inputs[0]) == len(layer.shape):
        return inputs.layouts[0]
    return default_layout(layer.shape)


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


__all__ = [
    "LAYER_KINDS", "LAYOUTS", "MAX_AXES", "MAX_DIM", "InputShapes", "LayerKind", "LayerSpec",
    "Node", "activation_ops", "default_layout", "feature_axis", "output_layout", "register",
]  # fmt: skip
