"""Recurrent layer kinds: rnn (h_t = f(W x_t + U h_{t-1} + b + br), as nn.RNN).

The time axis is one loop op (``core.ops.recurrent``); backpropagation through time is its
pullback, so the chain rule's generic walk derives it like any other layer. Parameters and
their layouts are nn.RNN's (batch_first=True, one layer): W = weight_ih_l0 [units, F],
U = weight_hh_l0 [units, units], b = bias_ih_l0, br = bias_hh_l0, all drawn from
U(−1/√units, 1/√units) as PyTorch does.
"""

from __future__ import annotations

import math

from ...printing.names import latex_name
from ...spec.errors import SpecError
from ...spec.fields import _bool, _choice, _Fields, _int
from .. import activations
from ..ir import Init, Op, Param, Shape
from ..ops.recurrent import HT, ZT
from ..symbols import A, X
from .base import MAX_DIM, LayerKind, LayerSpec, Node, register

NONLINEARITIES = ("tanh", "relu")


def _sequence_input(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...], kind: str):
    (name,), (shape,) = inputs, shapes
    if len(shape) != 2:
        raise SpecError(f.at("input"), f"{kind} takes a sequence [T, F]; {name} is "
                        f"{list(shape)} (give inputs: [T, F], or return_sequences: true on the "
                        "recurrent layer before)")  # fmt: skip
    return shape


def _rnn_parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
    steps, _ = _sequence_input(f, inputs, shapes, "rnn")
    units = _int(f.get("units", required=True), f.at("units"), 1, MAX_DIM)
    nonlinearity = _choice(f.get("nonlinearity", "tanh"), f.at("nonlinearity"), NONLINEARITIES,
                           "nonlinearity")  # fmt: skip
    sequences = _bool(f.get("return_sequences", False), f.at("return_sequences"))
    bias = _bool(f.get("bias", True), f.at("bias"))
    truncate = 0 if f.get("bptt") is None else _int(f.get("bptt"), f.at("bptt"), 1, MAX_DIM)
    f.done(("units", "nonlinearity", "return_sequences", "bias", "bptt"))
    shape = (steps, units) if sequences else (units,)
    attrs = (("nonlinearity", nonlinearity), ("return_sequences", sequences), ("bias", bias),
             ("bptt", truncate if 0 < truncate < steps else 0))  # fmt: skip
    return LayerSpec("rnn", inputs, shape, attrs=attrs)


def _rnn_params(ls: LayerSpec, i: int, shapes: tuple[Shape, ...]) -> tuple[Param, ...]:
    fan_in, units = shapes[0][-1], ls.units
    bound = 1 / math.sqrt(units)
    init = Init("uniform", low=-bound, high=bound)  # nn.RNN.reset_parameters

    def param(name: str, role: str, kind: str, shape: Shape) -> Param:
        return Param(name, i, role, kind, shape, True, init, fan_in, units)

    out = [param(f"W{i}", "weight", "matrix", (units, fan_in)),
           param(f"U{i}", "recurrent", "matrix", (units, units))]  # fmt: skip
    if dict(ls.attrs)["bias"]:
        out += [param(f"b{i}", "bias", "per_unit", (units,)),
                param(f"br{i}", "recurrent_bias", "per_unit", (units,))]  # fmt: skip
    return tuple(out)


def step_functions(name: str):
    """f(zt) and f' written in the step's output ht (tanh' = 1 − h²; relu' = [h > 0], since
    relu(z) > 0 exactly where z > 0, with relu'(0) = 0 as PyTorch)."""
    act = activations.make(name)
    deriv = activations.derive_activation(act)
    # relu: its derivative is a step in z, and the step of relu(z) is the same step
    df = deriv.expr.xreplace({A: HT} if deriv.in_output else {X: HT})
    return activations.stabilize(act.expr).xreplace({X: ZT}), df


def _rnn_forward(node: Node) -> tuple[Op, ...]:
    attrs = dict(node.spec.attrs)
    f, df = step_functions(attrs["nonlinearity"])
    b, br = node.param("bias"), node.param("recurrent_bias")
    args = (f"W{node.index}", f"U{node.index}", b.name if b else "", br.name if br else "",
            node.inputs[0])  # fmt: skip
    h = node.a if attrs["return_sequences"] else f"h{node.index}"
    op_attrs = (("act", attrs["nonlinearity"]), ("f", f), ("df", df),
                ("delta", f"delta{node.index}"), ("truncate", attrs["bptt"]))  # fmt: skip
    f_tex = r"\tanh" if attrs["nonlinearity"] == "tanh" else r"\operatorname{relu}"
    ht, xt = latex_name(h), latex_name(node.inputs[0])
    w, u = latex_name(args[0]), latex_name(args[1])
    biases = "".join(f" + {latex_name(p)}" for p in args[2:4] if p)
    why = (f"${ht}_t = {f_tex}\\left({w} {xt}_t + {u} {ht}_{{t-1}}{biases}\\right)$, "
           f"${ht}_0 = \\mathbf{{0}}$")  # fmt: skip
    ops = [Op("rnn", h, args, why=why, attrs=op_attrs)]
    if not attrs["return_sequences"]:
        last = f"${latex_name(node.a)} = {ht}_T$ (many-to-one)"
        ops.append(Op("time_last", node.a, (h,), why=last))
    return tuple(ops)


RNN_TEXTBOOK = (
    (r"\mathbf{h}_t = f\left(W \mathbf{x}_t + U \mathbf{h}_{t-1} + \mathbf{b} + \mathbf{b}_r"
     r"\right),\quad \mathbf{h}_0 = \mathbf{0}",
     "h_t = f(W x_t + U h_(t-1) + b + br), h_0 = 0", "rnn: one loop over t = 1..T"),
    (r"\boldsymbol{\delta}_t = \left(\frac{\partial \ell}{\partial \mathbf{h}_t} + U^T"
     r" \boldsymbol{\delta}_{t+1}\right) \odot f'\left(\mathbf{z}_t\right),\quad"
     r" \boldsymbol{\delta}_{T+1} = \mathbf{0}",
     "delta_t = (dl/dh_t + U.T @ delta_(t+1)) * f'(z_t), delta_(T+1) = 0",
     "backpropagation through time: a loop over t = T..1"),
    (r"\frac{\partial E}{\partial W} = c \sum_n \sum_t \boldsymbol{\delta}_t \mathbf{x}_t^T,"
     r"\quad \frac{\partial E}{\partial U} = c \sum_n \sum_t \boldsymbol{\delta}_t"
     r" \mathbf{h}_{t-1}^T,\quad \frac{\partial E}{\partial \mathbf{b}} ="
     r" \frac{\partial E}{\partial \mathbf{b}_r} = c \sum_n \sum_t \boldsymbol{\delta}_t",
     "dE/dW = c sum_n sum_t delta_t x_t^T, dE/dU = c sum_n sum_t delta_t h_(t-1)^T, "
     "dE/db = dE/dbr = c sum_n sum_t delta_t", "the shared weights' gradients sum over time"),
)  # fmt: skip

register(LayerKind("rnn", _rnn_parse, _rnn_params, _rnn_forward, RNN_TEXTBOOK))

__all__ = ["NONLINEARITIES", "step_functions"]
