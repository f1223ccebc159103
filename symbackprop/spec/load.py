"""Stage 1: load a network spec (YAML or JSON) into frozen dataclasses, validating every field.

Every problem is a :class:`~symbackprop.errors.SpecError` naming the field path, raised before
anything is written. Unknown keys are errors, with a "did you mean" for misspelt ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from ..core.layers import (
    LAYER_KINDS,
    MAX_AXES,
    MAX_DIM,
    InputShapes,
    LayerSpec,
    default_layout,
    output_layout,
)
from ..core.symbols import T, Y
from .errors import SpecError, did_you_mean
from .expressions import parse_expression
from .fields import _choice, _Fields, _int, _kind, _name, _num
from .files import read_data_file
from .params import real_derivative, small_derivative
from .training import OptimizerSpec, TrainSpec, optimizer as _optimizer, train as _train

MAX_PARAMS = 200_000_000
MAX_LAYERS = 1000
LOSSES = ("mse", "binary_cross_entropy", "cross_entropy", "sse", "custom")


@dataclass(frozen=True)
class LossSpec:
    type: str
    reduction: str = "mean"
    scale: float = 1.0
    expr: sp.Expr | None = None  # custom losses: in y and t
    source: str = ""


@dataclass(frozen=True)
class Spec:
    """A validated network spec. ``digest`` is the SHA-256 of its canonical JSON form."""

    name: str
    inputs: int
    dtype: str
    seed: int
    layers: tuple[LayerSpec, ...]
    loss: LossSpec
    optimizer: OptimizerSpec
    train: TrainSpec
    source: str = ""
    digest: str = ""
    input_dims: tuple[int, ...] = ()  # the per-sample shape of x when it has several axes
    input_layout: str = "vector"  # 'vector', 'sequence' or 'map' (see core.layers)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The per-sample shape of x: (inputs,) for a vector, else [C, L], [C, H, W], [T, F]."""
        return self.input_dims or (self.inputs,)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The per-sample shape of the network's output (and of a sample's targets)."""
        return self.layers[-1].shape

    @property
    def outputs(self) -> int:
        """Numbers per sample in T (a data file's target columns): the output shape's size."""
        return math.prod(self.output_shape)

    @property
    def units(self) -> int:
        """Width of the output's last axis: the classes of a classifier, K of a loss's mean."""
        return self.layers[-1].units


def _input_shape(value: Any) -> tuple[int, ...]:
    """``inputs``: an int (a vector) or a list of 1 to 3 sizes ([C, L], [C, H, W], [T, F])."""
    if not isinstance(value, list):
        return (_int(value, "inputs", 1, MAX_DIM),)
    if not 1 <= len(value) <= MAX_AXES:
        raise SpecError("inputs", f"expected an int or a list of 1 to {MAX_AXES} sizes "
                        "([C, L], [C, H, W] or [T, F]), got {len(value)} entries")  # fmt: skip
    shape = tuple(_int(v, f"inputs[{i}]", 1, MAX_DIM) for i, v in enumerate(value))
    if math.prod(shape) > MAX_DIM:
        raise SpecError("inputs", f"at most {MAX_DIM} numbers per sample, got {math.prod(shape)}")
    return shape


def _x_layout(data: Any, shape: tuple[int, ...]) -> str:
    """The layout of x: by its rank, except that a two-axis x which a layer reading maps (conv1d,
    pooling) takes is a map [C, L] rather than a sequence [T, F] (it matters to concat)."""
    if len(shape) == 2 and isinstance(data, list):
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                continue
            kind = LAYER_KINDS.get(item.get("type", "dense"))
            if kind is None or not kind.reads_maps:
                continue
            reads = item.get("inputs", item.get("input", "x" if i == 0 else None))
            if reads == "x" or (isinstance(reads, list) and "x" in reads):
                return "map"
    return default_layout(shape)


def _layers(data: Any, input_shape: tuple[int, ...]) -> tuple[LayerSpec, ...]:
    if not isinstance(data, list) or not data:
        raise SpecError("layers", "expected a non-empty list of layers")
    if len(data) > MAX_LAYERS:
        raise SpecError("layers", f"at most {MAX_LAYERS} layers")
    shapes: dict[str, tuple[int, ...]] = {"x": input_shape}
    layouts: dict[str, str] = {"x": _x_layout(data, input_shape)}
    layers: list[LayerSpec] = []
    used: set[str] = set()
    total = 0
    for i, item in enumerate(data):
        path = f"layers[{i}]"
        f = _Fields(item, path)
        kind = LAYER_KINDS[_choice(f.get("type", "dense"), f.at("type"), tuple(LAYER_KINDS),
                                   "layer type")]  # fmt: skip
        names = _inputs(f, kind.multi_input, i, shapes)
        ins = InputShapes((shapes[n] for n in names), (layouts[n] for n in names))
        layer = kind.parse(f, names, ins)
        if layer.activation is not None and layer.activation.is_softmax and i != len(data) - 1:
            raise SpecError(f.at("activation"), "softmax is allowed in the last layer only")
        params = kind.params(layer, i + 1, ins)
        total += sum(math.prod(p.shape) for p in params)
        if total > MAX_PARAMS:
            where = f.at("units") if f.has("units") else path
            raise SpecError(where, f"the network would have over {MAX_PARAMS} parameters")
        used.update(names)
        shapes[f"a{i + 1}"] = layer.shape
        layouts[f"a{i + 1}"] = output_layout(layer, ins)
        layers.append(dataclasses.replace(layer, layout=layouts[f"a{i + 1}"]))
    for i in range(len(layers) - 1):
        if f"a{i + 1}" not in used:
            raise SpecError(f"layers[{i}]", f"its output a{i + 1} is used by no later layer; the "
                            f"network's output is the last layer's, a{len(layers)}")  # fmt: skip
    return tuple(layers)


def _inputs(f: _Fields, multi: bool, i: int, shapes: dict) -> tuple[str, ...]:
    """The names a layer reads: ``input`` (default: the layer before, or x), or for kinds that
    take several, ``inputs: [...]``; each is x or the output of an earlier layer."""
    own, other = ("inputs", "input") if multi else ("input", "inputs")
    if f.has(other):
        example = "inputs: [a1, a2]" if multi else "input: a1"
        raise SpecError(f.at(other), f"this layer type takes {own} (e.g. {example})")
    if multi:
        raw = f.get("inputs", required=True)
        if not isinstance(raw, list):
            raise SpecError(
                f.at("inputs"), f"expected a list of at least 2 names, got {_kind(raw)}"
            )
        if len(raw) < 2:
            raise SpecError(f.at("inputs"), "expected at least 2 names")
        return tuple(_input(v, f"{f.at('inputs')}[{k}]", i, shapes) for k, v in enumerate(raw))
    default = f"a{i}" if i else "x"
    return (_input(f.get("input", default), f.at("input"), i, shapes),)


def _input(name: Any, field: str, i: int, shapes: dict) -> str:
    if not isinstance(name, str):
        raise SpecError(field, f"expected a name (x, a1, ...), got {_kind(name)}")
    if name in shapes:
        return name
    available = ", ".join(shapes)
    m = re.fullmatch(r"a([1-9][0-9]*)", name)
    if m and int(m.group(1)) == i + 1:
        raise SpecError(field, f"{name} is this layer's own output; it can take {available}")
    if m and int(m.group(1)) > i + 1:
        why = "a layer takes x or the output of an earlier one (a network has no cycles)"
        raise SpecError(field, f"{name} is the output of a later layer; {why}: {available}")
    hint = did_you_mean(name, shapes)
    raise SpecError(field, f"unknown input '{name}'{hint}; this layer can take {available}")


def _loss(data: Any, last: LayerSpec) -> LossSpec:
    if isinstance(data, str):
        data = {"type": data}
    f = _Fields(data, "loss", "a loss name or a mapping")
    kind = _choice(f.get("type", required=True), f.at("type"), LOSSES, "loss")
    reduction = _choice(f.get("reduction", "mean"), f.at("reduction"), ("mean", "sum"), "reduction")
    allowed = ("type", "reduction") + {"sse": ("scale",), "custom": ("expr",)}.get(kind, ())
    scale = _num(f.get("scale", 1.0), f.at("scale"), 0.0, low_open=True) if kind == "sse" else 1.0
    expr, source = None, ""
    if kind == "custom":
        source = f.get("expr", required=True)
        if not isinstance(source, str):
            raise SpecError(f.at("expr"), f"expected an expression string, got {_kind(source)}")
        expr = parse_expression(source, {"y": Y, "t": T}, f.at("expr"))
        real_derivative(small_derivative(expr, Y, f.at("expr")), f.at("expr"))
    f.done(allowed)
    act = last.activation_name
    if kind == "binary_cross_entropy" and act not in ("sigmoid", "identity"):
        raise SpecError(
            "loss.type", f"binary_cross_entropy needs a sigmoid or identity last layer, not {act}"
        )
    if kind == "cross_entropy":
        if act not in ("softmax", "identity"):
            raise SpecError(
                "loss.type", f"cross_entropy needs a softmax or identity last layer, not {act}"
            )
        if last.units < 2:
            raise SpecError("loss.type", "cross_entropy needs at least 2 outputs")
    return LossSpec(kind, reduction, scale, expr, source)


def parse_spec(data: Any, source: str = "") -> Spec:
    """Validate already-parsed YAML/JSON ``data`` into a :class:`Spec`."""
    f = _Fields(data, "", "a mapping at the top level")
    name = _name(f.get("name", required=True), "name")
    input_shape = _input_shape(f.get("inputs", required=True))
    dtype = _choice(f.get("dtype", "float64"), "dtype", ("float64", "float32"), "dtype")
    seed = _int(f.get("seed", 0), "seed", 0, 2**64 - 1)
    raw_layers = f.get("layers", required=True)
    layers = _layers(raw_layers, input_shape)
    loss = _loss(f.get("loss", {"type": "mse"}), layers[-1])
    optimizer = _optimizer(f.get("optimizer", {"type": "sgd"}))
    train = _train(f.get("train", {}))
    f.done(("name", "inputs", "dtype", "seed", "layers", "loss", "optimizer", "train"))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    dims = input_shape if len(input_shape) > 1 else ()
    return Spec(name, math.prod(input_shape), dtype, seed, layers, loss, optimizer, train, source,
                digest, dims, _x_layout(raw_layers, input_shape))  # fmt: skip


def load_spec(path: str | Path) -> Spec:
    """Load and validate the spec file at ``path`` (YAML, or JSON by extension)."""
    data = read_data_file(path)
    try:
        return parse_spec(data, str(path))
    except SpecError as exc:
        raise exc.with_file(str(path)) from None
