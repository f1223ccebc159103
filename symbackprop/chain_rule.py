"""Stages 2 and 3: build the layer graph from a Spec and apply the chain rule at matrix level.

The result, a :class:`Derivation`, is the one source of truth that the printers, ``verify`` and
both code targets read. Its programs are ordered ops over per-sample column vectors (x, z1, a1,
..., delta1, ...); elementwise ops carry SymPy expressions in symbols named after those vectors,
so the size of everything here grows with depth, never with layer width.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import activations, losses, optimizers
from .activations import Activation, ActivationDerivative, Step
from .spec import Init, Spec

N = sp.Symbol("N", positive=True, integer=True)  # the batch size


def vec(name: str) -> sp.Symbol:
    """The symbol standing for one element of the vector ``name`` in elementwise expressions."""
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class Param:
    """A parameter tensor: ``W1`` [units, fan_in], ``b1`` [units] (per_unit) or [] (shared)."""

    name: str
    layer: int
    role: str  # 'weight' | 'bias'
    kind: str  # 'matrix' | 'per_unit' | 'shared'
    shape: tuple[int, ...]
    trainable: bool
    init: Init
    fan_in: int
    fan_out: int


@dataclass(frozen=True)
class Layer:
    """One dense layer node: z = W @ inp + b, a = f(z)."""

    index: int
    fan_in: int
    units: int
    activation: Activation
    derivative: ActivationDerivative | None  # None for softmax
    weight: Param
    bias: Param | None
    inp: str  # 'x' or 'a{l-1}'

    @property
    def z(self) -> str:
        return f"z{self.index}"

    @property
    def a(self) -> str:
        return f"a{self.index}"

    @property
    def delta(self) -> str:
        return f"delta{self.index}"


@dataclass(frozen=True)
class Op:
    """One step of a program, on per-sample column vectors.

    Kinds: 'affine' out = W @ inp + b (args W, inp, b or ''); 'map' out = expr elementwise;
    'softmax' out = softmax(arg); 'logsumexp' out = log Σ exp(arg) (one number per sample);
    'loss' E = scale Σ_n Σ_k expr; 'softmax_backward' out = a ⊙ (g − aᵀg) (args a, g);
    'matvec_t' out = Wᵀ @ delta (args W, delta); 'grad_weight' out = scale Σ_n delta inpᵀ;
    'grad_bias' out = scale Σ_n delta (per_unit) or scale Σ_n Σ_i delta_i (shared).
    """

    kind: str
    out: str
    args: tuple[str, ...] = ()
    expr: sp.Expr | None = None
    scale: sp.Expr | None = None
    why: str = ""


@dataclass(frozen=True)
class Derivation:
    """Everything derived from one spec: forward, loss, backward, gradients and update rule."""

    spec: Spec
    params: tuple[Param, ...]
    layers: tuple[Layer, ...]
    loss: losses.Loss
    loss_value: losses.LossValue
    output_delta: losses.OutputDelta
    scale: sp.Expr  # c in E = c Σ_n Σ_k ℓ
    forward: tuple[Op, ...]
    backward: tuple[Op, ...]
    optimizer: optimizers.UpdateRule

    @property
    def trainable(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.trainable)

    @property
    def gradients(self) -> dict[str, Op]:
        """The gradient op of every trainable parameter, by parameter name."""
        return {op.args[-1]: op for op in self.backward if op.kind.startswith("grad_")}

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    @property
    def num_params(self) -> int:
        return sum(int(sp.prod(p.shape)) for p in self.params)

    def mode(self, mode: str = "auto") -> str:
        """'scalar' or 'tensor'; 'auto' is scalar for nets of at most 50 parameters."""
        if mode == "auto":
            return "scalar" if self.num_params <= 50 else "tensor"
        return mode

    def at(self, samples):
        """Evaluate everything at the initial parameters for ``samples`` (see evaluate)."""
        from .evaluate import evaluate

        return evaluate(self, samples)

    def scalar(self):
        """The element-by-element instantiation (see scalar)."""
        from .scalar import instantiate

        return instantiate(self)

    def render(self, fmt: str = "text", mode: str = "auto", at=None) -> str:
        from .report import render

        return render(self, fmt, mode, at)

    def latex(self, mode: str = "auto", at=None) -> str:
        return self.render("latex", mode, at)

    def _repr_markdown_(self) -> str:
        return self.render("markdown")

    def _repr_latex_(self) -> str:
        """The backward recurrences and gradients as display math (for notebooks)."""
        from .report import backward_section, gradient_section

        eqs = backward_section(self).eqs + gradient_section(self).eqs
        return "\n".join(f"$${e.tex}$$" for e in eqs)


def build_layers(spec: Spec) -> tuple[tuple[Param, ...], tuple[Layer, ...]]:
    """Stage 2: the layer nodes, their parameters and each activation's derived derivative."""
    params: list[Param] = []
    layers: list[Layer] = []
    fan_in, inp = spec.inputs, "x"
    for i, ls in enumerate(spec.layers, start=1):
        w = Param(
            f"W{i}",
            i,
            "weight",
            "matrix",
            (ls.units, fan_in),
            ls.weight.trainable,
            ls.weight.init,
            fan_in,
            ls.units,
        )
        params.append(w)
        b = None
        if ls.bias is not None:
            shape = () if ls.bias.shape == "shared" else (ls.units,)
            b = Param(
                f"b{i}",
                i,
                "bias",
                ls.bias.shape,
                shape,
                ls.bias.trainable,
                ls.bias.init,
                fan_in,
                ls.units,
            )
            params.append(b)
        act = ls.activation
        deriv = None if act.is_softmax else activations.derive_activation(act)
        layers.append(Layer(i, fan_in, ls.units, act, deriv, w, b, inp))
        fan_in, inp = ls.units, f"a{i}"
    return tuple(params), tuple(layers)


def _forward(
    layers: tuple[Layer, ...], value: losses.LossValue, c: sp.Expr, delta: losses.OutputDelta
) -> tuple[Op, ...]:
    ops: list[Op] = []
    for layer in layers:
        b = layer.bias.name if layer.bias else ""
        ops.append(
            Op(
                "affine",
                layer.z,
                (layer.weight.name, layer.inp, b),
                why=f"{layer.z} = {layer.weight.name} @ {layer.inp}" + (f" + {b}" if b else ""),
            )
        )
        if layer.activation.is_softmax:
            ops.append(Op("softmax", layer.a, (layer.z,), why=f"{layer.a} = softmax({layer.z})"))
        else:
            f = activations.stabilize(layer.activation.expr)  # a derivation step when changed
            expr = f.subs(activations.X, vec(layer.z))
            ops.append(Op("map", layer.a, (layer.z,), expr, why=f"{layer.a} = f({layer.z})"))
    last = layers[-1]
    if delta.needs_softmax:
        ops.append(Op("softmax", "p", (last.z,), why=f"p = softmax({last.z})"))
    if value.kind == "logsumexp":
        ops.append(Op("logsumexp", "lse", (last.z,), why=f"lse = log Σ exp({last.z})"))
    subs = {
        activations.X: vec(last.z),
        activations.A: vec(last.a),
        losses.T: vec("t"),
        losses.L: vec("lse"),
    }
    ops.append(Op("loss", "E", (last.z, last.a, "t"), value.expr.subs(subs), c, why="E"))
    return tuple(ops)


def _backward(layers: tuple[Layer, ...], delta: losses.OutputDelta, c: sp.Expr) -> tuple[Op, ...]:
    ops: list[Op] = []
    last = layers[-1]
    subs = {
        activations.X: vec(last.z),
        activations.A: vec(last.a),
        losses.T: vec("t"),
        losses.P: vec("p"),
    }
    if delta.kind == "softmax":
        ops.append(Op("map", f"d{last.a}", (last.a, "t"), delta.expr.subs(subs), why="∂ℓ/∂a"))
        ops.append(Op("softmax_backward", last.delta, (last.a, f"d{last.a}"), why="softmax"))
    else:
        ops.append(Op("map", last.delta, (last.z, last.a, "t"), delta.expr.subs(subs), why="δ^L"))
    for layer in reversed(layers):
        if layer.weight.trainable:
            ops.append(
                Op(
                    "grad_weight",
                    f"d{layer.weight.name}",
                    (layer.delta, layer.inp, layer.weight.name),
                    scale=c,
                    why="∂E/∂W = c Σ δ inpᵀ",
                )
            )
        if layer.bias is not None and layer.bias.trainable:
            ops.append(
                Op(
                    "grad_bias",
                    f"d{layer.bias.name}",
                    (layer.delta, layer.bias.name),
                    scale=c,
                    why="∂E/∂b = c Σ δ",
                )
            )
        if layer.index == 1:
            break
        prev = layers[layer.index - 2]
        if not _needs_delta(layers, prev.index):
            break
        ops.append(
            Op(
                "matvec_t",
                f"d{prev.a}",
                (layer.weight.name, layer.delta),
                why=f"∂ℓ/∂{prev.a} = {layer.weight.name}ᵀ {layer.delta}",
            )
        )
        assert prev.derivative is not None
        local = prev.derivative.expr.subs({activations.X: vec(prev.z), activations.A: vec(prev.a)})
        ops.append(
            Op(
                "map",
                prev.delta,
                (f"d{prev.a}", prev.z, prev.a),
                vec(f"d{prev.a}") * local,
                why="δ = ∂ℓ/∂a ⊙ f'(z)",
            )
        )
    return tuple(ops)


def _needs_delta(layers: tuple[Layer, ...], index: int) -> bool:
    """Whether δ of layer ``index`` is needed: some layer at or below it has a trainable param."""
    for layer in layers[:index]:
        if layer.weight.trainable or (layer.bias is not None and layer.bias.trainable):
            return True
    return False


def derive(spec: Spec) -> Derivation:
    """Stage 3: the full Derivation of ``spec`` (cost independent of layer width)."""
    params, layers = build_layers(spec)
    loss = losses.make(spec.loss)
    last = layers[-1]
    delta = losses.output_delta(loss, last.activation, last.derivative)
    value = losses.loss_value(loss, last.activation)
    c = losses.scale(loss, N, last.units)
    forward = _forward(layers, value, c, delta)
    backward = _backward(layers, delta, c)
    rule = optimizers.make(spec.optimizer)
    return Derivation(spec, params, layers, loss, value, delta, c, forward, backward, rule)


__all__ = ["Derivation", "Layer", "Op", "Param", "Step", "build_layers", "derive", "vec", "N"]
