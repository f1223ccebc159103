"""Stage 1: load a network spec (YAML or JSON) into frozen dataclasses, validating every field.

Every problem is a :class:`~symbackprop.errors.SpecError` naming the field path, raised before
anything is written. Unknown keys are errors, with a "did you mean" for misspelt ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from . import activations, prng
from .datafiles import HugeInt, read_data_file
from .errors import SpecError
from .expressions import parse_expression
from .spec_fields import _bool, _choice, _Fields, _int, _kind, _name, _nested, _num
from .symbols import T, X, Y

MAX_DIM = 100_000
MAX_PARAMS = 200_000_000
MAX_LAYERS = 1000
MAX_DERIVATIVE_NODES = 20_000  # of a custom activation or loss (see _small_derivative)
SCHEMES = tuple(s for s in prng.SCHEMES if s != "values")  # the named schemes a spec may use
LOSSES = ("mse", "binary_cross_entropy", "cross_entropy", "sse", "custom")
OPTIMIZERS = ("sgd", "adam", "rmsprop")


@dataclass(frozen=True)
class Init:
    """How a parameter starts: explicit ``value`` (scheme 'values') or a named random scheme."""

    scheme: str
    value: Any = None  # a float or nested tuples, for scheme 'values'
    low: float = -1.0
    high: float = 1.0
    std: float = 1.0
    gain: float = 1.0


@dataclass(frozen=True)
class ParamSpec:
    """A weight or bias. ``shape`` is 'matrix' for weights, 'per_unit' or 'shared' for biases."""

    init: Init
    trainable: bool = True
    shape: str = "matrix"


@dataclass(frozen=True)
class LayerSpec:
    units: int
    activation: activations.Activation
    weight: ParamSpec
    bias: ParamSpec | None


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

    @property
    def outputs(self) -> int:
        return self.layers[-1].units


def _param(data: Any, field: str, shape: tuple[int, ...], is_bias: bool) -> ParamSpec | None:
    if is_bias and (data is None or data == "none"):
        return None
    f = _Fields(data, field, "a mapping (e.g. {init: zeros})" + (" or none" if is_bias else ""))
    kind = "matrix"
    if is_bias:
        kind = _choice(f.get("shape", "per_unit"), f.at("shape"), ("per_unit", "shared"), "shape")
        shape = () if kind == "shared" else shape
    raw = f.get("init", "pytorch")
    extras = {
        "uniform": ("low", "high"),
        "normal": ("std",),
        "xavier_uniform": ("gain",),
        "xavier_normal": ("gain",),
    }
    allowed = extras.get(raw, ()) if isinstance(raw, str) else ()
    for key in ("low", "high", "std", "gain"):
        if f.has(key) and key not in allowed:
            raise SpecError(f.at(key), f"only allowed with init: {_owner(key)}")
    if isinstance(raw, str):
        scheme = _choice(raw, f.at("init"), SCHEMES, "init scheme")
        low = _num(f.get("low", -1.0), f.at("low"))
        high = _num(f.get("high", 1.0), f.at("high"))
        if high <= low:
            raise SpecError(f.at("high"), f"must be greater than low ({low:g})")
        std = _num(f.get("std", 1.0), f.at("std"), 0.0)
        gain = _num(f.get("gain", 1.0), f.at("gain"), 0.0)
        init = Init(scheme, None, low, high, std, gain)
    elif isinstance(raw, (int, float, HugeInt)) and not isinstance(raw, bool):
        init = Init("values", _num(raw, f.at("init")))
    elif isinstance(raw, list):
        init = Init("values", _nested(raw, shape, f.at("init")))
    else:
        raise SpecError(
            f.at("init"), f"expected a number, a list or a scheme name, got {_kind(raw)}"
        )
    trainable = _bool(f.get("trainable", True), f.at("trainable"))
    f.done(("init", "trainable", "low", "high", "std", "gain") + (("shape",) if is_bias else ()))
    return ParamSpec(init, trainable, kind)


def _owner(key: str) -> str:
    return {"low": "uniform", "high": "uniform", "std": "normal"}.get(key, "xavier_uniform/normal")


def _activation(data: Any, field: str) -> activations.Activation:
    names = activations.NAMES + tuple(activations.ALIASES)
    if isinstance(data, str):
        name = activations.ALIASES.get(data, data)
        _choice(data, field, names, "activation")
        return activations.make(name)
    f = _Fields(data, field, "an activation name or a mapping")
    if f.has("expr"):
        if f.has("name"):
            raise SpecError(f.at("expr"), "give either name or expr, not both")
        text = f.get("expr")
        if not isinstance(text, str):
            raise SpecError(f.at("expr"), f"expected an expression string, got {_kind(text)}")
        expr = parse_expression(text, {"x": X}, f.at("expr"))
        f.done(("expr",))
        act = activations.custom(expr, text)
        _small_derivative(expr, X, f.at("expr"))
        _real_derivative(activations.derive_activation(act).expr, f.at("expr"))
        return act
    raw = f.get("name", required=True)
    name = activations.ALIASES.get(raw, raw) if isinstance(raw, str) else raw
    _choice(raw, f.at("name"), names, "activation")
    alpha = None
    if name in activations.WITH_ALPHA and f.has("alpha"):
        low_open = name == "elu"
        value = _num(f.get("alpha"), f.at("alpha"), 0.0, 1e6, low_open=low_open)
        alpha = sp.Rational(repr(value))
    f.done(("name", "alpha") if name in activations.WITH_ALPHA else ("name",))
    return activations.make(name, alpha)


_COMPLEX = (sp.re, sp.im, sp.arg, sp.conjugate, sp.Derivative, sp.Subs)


def _small_derivative(expr: sp.Expr, symbol: sp.Symbol, field: str) -> sp.Expr:
    """d expr / d symbol, refused when larger than MAX_DERIVATIVE_NODES: every later stage
    (stabilizing, printing, code generation) costs time in its size, which grows as the square
    of a product's length (a product of 130 sigmoids: 140,000 nodes, 80 s to load and generate).
    """
    derivative = sp.diff(expr, symbol)
    for i, _ in enumerate(sp.preorder_traversal(derivative)):
        if i >= MAX_DERIVATIVE_NODES:
            raise SpecError(field, f"its derivative is too large (over {MAX_DERIVATIVE_NODES:,} "
                            "nodes); write a shorter expression")  # fmt: skip
    return derivative


def _real_derivative(derivative: sp.Expr, field: str) -> None:
    """Refuse an expression whose derivative SymPy can only write with complex parts (e.g.
    abs(x**x): x**x is complex for x < 0), which no code target can compute."""
    if derivative.has(*_COMPLEX) or derivative.has(sp.zoo, sp.nan):
        raise SpecError(field, "its derivative is not a real function SymPy can write (e.g. a "
                        "power with x in the exponent of a base that can be negative)")  # fmt: skip


def _layers(data: Any, inputs: int) -> tuple[LayerSpec, ...]:
    if not isinstance(data, list) or not data:
        raise SpecError("layers", "expected a non-empty list of layers")
    if len(data) > MAX_LAYERS:
        raise SpecError("layers", f"at most {MAX_LAYERS} layers")
    layers, fan_in, total = [], inputs, 0
    for i, item in enumerate(data):
        path = f"layers[{i}]"
        f = _Fields(item, path)
        units = _int(f.get("units", required=True), f.at("units"), 1, MAX_DIM)
        act = _activation(f.get("activation", "identity"), f.at("activation"))
        if act.is_softmax and i != len(data) - 1:
            raise SpecError(f.at("activation"), "softmax is allowed in the last layer only")
        weight = _param(f.get("weight", {}), f.at("weight"), (units, fan_in), False)
        bias = _param(f.get("bias", {}), f.at("bias"), (units,), True)
        f.done(("units", "activation", "weight", "bias"))
        total += units * fan_in + units
        if total > MAX_PARAMS:
            raise SpecError(f.at("units"), f"the network would have over {MAX_PARAMS} parameters")
        layers.append(LayerSpec(units, act, weight, bias))
        fan_in = units
    return tuple(layers)


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
        _real_derivative(_small_derivative(expr, Y, f.at("expr")), f.at("expr"))
    f.done(allowed)
    act = last.activation.name
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
    inputs = _int(f.get("inputs", required=True), "inputs", 1, MAX_DIM)
    dtype = _choice(f.get("dtype", "float64"), "dtype", ("float64", "float32"), "dtype")
    seed = _int(f.get("seed", 0), "seed", 0, 2**64 - 1)
    layers = _layers(f.get("layers", required=True), inputs)
    loss = _loss(f.get("loss", {"type": "mse"}), layers[-1])
    optimizer = _optimizer(f.get("optimizer", {"type": "sgd"}))
    train = _train(f.get("train", {}))
    f.done(("name", "inputs", "dtype", "seed", "layers", "loss", "optimizer", "train"))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return Spec(name, inputs, dtype, seed, layers, loss, optimizer, train, source, digest)


def load_spec(path: str | Path) -> Spec:
    """Load and validate the spec file at ``path`` (YAML, or JSON by extension)."""
    data = read_data_file(path)
    try:
        return parse_spec(data, str(path))
    except SpecError as exc:
        raise exc.with_file(str(path)) from None
