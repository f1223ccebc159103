"""The dense layer kind: a = f(W in + b), W [units, in] as nn.Linear."""

from __future__ import annotations

from ...spec.fields import _Fields, _int
from ...spec.params import activation, param_spec
from ..ir import Op, Param, Shape
from .base import MAX_DIM, LayerKind, LayerSpec, Node, activation_ops, register

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
     "delta_L = grad_a l * f'(z_L)", "output layer (softmax: its Jacobian instead of $f'$)"),
    (r"\boldsymbol{\delta}^{(l)} = \left(\left(\mathbf{W}^{(l+1)}\right)^T"
     r" \boldsymbol{\delta}^{(l+1)}\right) \odot f'\left(\mathbf{z}^{(l)}\right)",
     "delta_l = (W_{l+1}.T @ delta_{l+1}) * f'(z_l)", "hidden layers"),
    (r"\frac{\partial E}{\partial \mathbf{W}^{(l)}} = c \sum_n \boldsymbol{\delta}^{(l)}_n "
     r"\left(\mathbf{a}^{(l-1)}_n\right)^T, \quad \frac{\partial E}{\partial \mathbf{b}^{(l)}}"
     r" = c \sum_n \boldsymbol{\delta}^{(l)}_n",
     "dE/dW_l = c sum_n delta_l,n a_{l-1},n^T,  dE/db_l = c sum_n delta_l,n",
     r"parameters (a shared bias sums over its units too; $\mathbf{a}^{(0)} = \mathbf{x}$)"),
)  # fmt: skip

register(LayerKind("dense", _dense_parse, _dense_params, _dense_forward, DENSE_TEXTBOOK))
