"""Stage 1: load a network spec (YAML or JSON) into frozen dataclasses, validating every field.

Every problem is a :class:`~symbackprop.errors.SpecError` naming the field path, raised before
anything is written. Unknown keys are errors, with a "did you mean" for misspelt ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from ..core.layers import LAYER_KINDS, MAX_DIM, LayerSpec
from ..core.symbols import T, Y
from .errors import SpecError, did_you_mean
from .expressions import parse_expression
from .fields import _bool, _choice, _Fields, _int, _kind, _name, _num
from .files import read_data_file
from .params import real_derivative, small_derivative

MAX_PARAMS = 200_000_000
MAX_LAYERS = 1000
LOSSES = ("mse", "binary_cross_entropy", "cross_entropy", "sse", "custom")
OPTIMIZERS = ("sgd", "adam", "rmsprop")


@dataclass(frozen=True)
class LossSpec:
    type: str
    reduction: str = "mean"
    scale: float = 1.0
    expr: sp.Expr | None = None  # custom losses: in y and t
    source: str = ""


@dataclass(frozen=True)
class OptimizerSpec:
    """torch.optim's hyperparameters; those an optimizer does not use keep their defaults."""

    type: str
    lr: float
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    alpha: float = 0.99


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 10
    batch_size: int = 32
    shuffle: bool = True


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
    dims: tuple[int, ...] = ()  # the per-sample input shape when not a vector ([T, F])

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    @property
    def input_shape(self) -> tuple[int, ...]:
        """x's per-sample shape: (inputs,), or (T, F) for sequences (``inputs`` is then T·F,
        the width of one flattened row of a data file)."""
        return self.dims or (self.inputs,)


def _layers(data: Any, inputs: tuple[int, ...]) -> tuple[LayerSpec, ...]:
    if not isinstance(data, list) or not data:
        raise SpecError("layers", "expected a non-empty list of layers")
    if len(data) > MAX_LAYERS:
        raise SpecError("layers", f"at most {MAX_LAYERS} layers")
    shapes: dict[str, tuple[int, ...]] = {"x": inputs}
    layers: list[LayerSpec] = []
    used: set[str] = set()
    total = 0
    for i, item in enumerate(data):
        path = f"layers[{i}]"
        f = _Fields(item, path)
        kind = LAYER_KINDS[_choice(f.get("type", "dense"), f.at("type"), tuple(LAYER_KINDS),
                                   "layer type")]  # fmt: skip
        names = _inputs(f, kind.multi_input, i, shapes)
        layer = kind.parse(f, names, tuple(shapes[n] for n in names))
        if layer.activation is not None and layer.activation.is_softmax and i != len(data) - 1:
            raise SpecError(f.at("activation"), "softmax is allowed in the last layer only")
        params = kind.params(layer, i + 1, tuple(shapes[n] for n in names))
        total += sum(math.prod(p.shape) for p in params)
        if total > MAX_PARAMS:
            where = f.at("units") if f.has("units") else path
            raise SpecError(where, f"the network would have over {MAX_PARAMS} parameters")
        used.update(names)
        shapes[f"a{i + 1}"] = layer.shape
        layers.append(layer)
    if len(layers[-1].shape) != 1:
        raise SpecError(f"layers[{len(layers) - 1}]", "the network's output must be a vector "
                        f"for now, not {list(layers[-1].shape)} (sequence outputs are not "
                        "supported yet: end with return_sequences: false)")  # fmt: skip
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


_OPT_FIELDS = {
    "sgd": ("lr", "momentum", "dampening", "nesterov", "weight_decay"),
    "adam": ("lr", "betas", "eps", "weight_decay"),
    "rmsprop": ("lr", "alpha", "eps", "momentum", "weight_decay"),
}
_DEFAULT_LR = {"sgd": 1e-3, "adam": 1e-3, "rmsprop": 1e-2}


def _optimizer(data: Any) -> OptimizerSpec:
    if isinstance(data, str):
        data = {"type": data}
    f = _Fields(data, "optimizer", "an optimizer name or a mapping")
    kind = _choice(f.get("type", required=True), f.at("type"), OPTIMIZERS, "optimizer")
    for key in ("lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "alpha"):
        if f.has(key) and key not in _OPT_FIELDS[kind]:
            raise SpecError(
                f.at(key), f"not an option of {kind}; its options: {', '.join(_OPT_FIELDS[kind])}"
            )
    lr = _num(f.get("lr", _DEFAULT_LR[kind]), f.at("lr"), 0.0, low_open=True)
    momentum = _num(f.get("momentum", 0.0), f.at("momentum"), 0.0)
    dampening = _num(f.get("dampening", 0.0), f.at("dampening"), 0.0, 1.0)
    nesterov = _bool(f.get("nesterov", False), f.at("nesterov"))
    if nesterov and (momentum <= 0 or dampening != 0):
        raise SpecError(f.at("nesterov"), "nesterov needs momentum > 0 and dampening 0")
    weight_decay = _num(f.get("weight_decay", 0.0), f.at("weight_decay"), 0.0)
    betas = f.get("betas", [0.9, 0.999])
    if not isinstance(betas, list) or len(betas) != 2:
        raise SpecError(f.at("betas"), f"expected a list of two numbers, got {_kind(betas)}")
    b = tuple(
        _num(v, f"{f.at('betas')}[{i}]", 0.0, 1.0, high_open=True) for i, v in enumerate(betas)
    )
    eps = _num(f.get("eps", 1e-8), f.at("eps"), 0.0)
    alpha = _num(f.get("alpha", 0.99), f.at("alpha"), 0.0, 1.0)
    f.done(("type",) + _OPT_FIELDS[kind])
    return OptimizerSpec(kind, lr, momentum, dampening, nesterov, weight_decay, b, eps, alpha)


def _train(data: Any) -> TrainSpec:
    f = _Fields(data, "train")
    epochs = _int(f.get("epochs", 10), f.at("epochs"), 1, 10**9)
    batch = _int(f.get("batch_size", 32), f.at("batch_size"), 1, 10**9)
    shuffle = _bool(f.get("shuffle", True), f.at("shuffle"))
    f.done(("epochs", "batch_size", "shuffle"))
    return TrainSpec(epochs, batch, shuffle)


def parse_spec(data: Any, source: str = "") -> Spec:
    """Validate already-parsed YAML/JSON ``data`` into a :class:`Spec`."""
    f = _Fields(data, "", "a mapping at the top level")
    name = _name(f.get("name", required=True), "name")
    dims = _input_dims(f.get("inputs", required=True))
    inputs = math.prod(dims)
    dtype = _choice(f.get("dtype", "float64"), "dtype", ("float64", "float32"), "dtype")
    seed = _int(f.get("seed", 0), "seed", 0, 2**64 - 1)
    layers = _layers(f.get("layers", required=True), dims)
    loss = _loss(f.get("loss", {"type": "mse"}), layers[-1])
    optimizer = _optimizer(f.get("optimizer", {"type": "sgd"}))
    train = _train(f.get("train", {}))
    f.done(("name", "inputs", "dtype", "seed", "layers", "loss", "optimizer", "train"))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return Spec(name, inputs, dtype, seed, layers, loss, optimizer, train, source, digest,
                dims if len(dims) > 1 else ())  # fmt: skip


def _input_dims(raw: Any) -> tuple[int, ...]:
    """``inputs``: an int (a vector of features) or [T, F] (a sequence of T steps of F)."""
    if not isinstance(raw, list):
        return (_int(raw, "inputs", 1, MAX_DIM),)
    if len(raw) != 2:
        raise SpecError("inputs", f"expected an int or [T, F] (a sequence), got a list of "
                        f"{len(raw)}")  # fmt: skip
    dims = tuple(_int(v, f"inputs[{k}]", 1, MAX_DIM) for k, v in enumerate(raw))
    if math.prod(dims) > MAX_DIM:
        raise SpecError("inputs", f"T·F must be at most {MAX_DIM}")
    return dims


def load_spec(path: str | Path) -> Spec:
    """Load and validate the spec file at ``path`` (YAML, or JSON by extension)."""
    data = read_data_file(path)
    try:
        return parse_spec(data, str(path))
    except SpecError as exc:
        raise exc.with_file(str(path)) from None
