"""Convolution and pooling layer kinds (CONTRACT §6): conv1d, conv2d (nn.Conv1d/2d, then the
activation), maxpool1d/2d, avgpool1d/2d (nn.MaxPool*d / nn.AvgPool*d) and global_avgpool (the
mean of each channel: [C, *spatial] -> [C]). Maps are [C, L] or [C, H, W] per sample."""

from __future__ import annotations

import math
from typing import Any

from ...spec.errors import SpecError
from ...spec.fields import _Fields, _int
from ...spec.params import activation, param_spec
from ..ir import Op, Param, Shape
from ..ops.conv import out_size
from .base import MAX_DIM, LayerKind, LayerSpec, Node, activation_ops, register

CONV_TEXTBOOK = (
    (r"z^{(l)}_{o,p} = \sum_{c} \sum_{k} W^{(l)}_{o,c,k}\, a^{(l-1)}_{c,\, s p + d k - \pi}"
     r" + b^{(l)}_o",
     "z_l[o,p] = sum_c sum_k W_l[o,c,k] a_{l-1}[c, s*p + d*k - pad] + b_l[o]",
     "convolution (a cross-correlation, as PyTorch): stride s, dilation d, padding $\\pi$; with "
     "groups, c runs over the input channels of o's group"),
    (r"\frac{\partial E}{\partial W^{(l)}_{o,c,k}} = c_E \sum_n \sum_p \delta^{(l)}_{n,o,p}\,"
     r" a^{(l-1)}_{n,c,\, s p + d k - \pi}, \quad \frac{\partial E}{\partial b^{(l)}_o} = "
     r"c_E \sum_n \sum_p \delta^{(l)}_{n,o,p}",
     "dE/dW_l[o,c,k] = c sum_n sum_p delta_l[n,o,p] a_{l-1}[n,c,s*p+d*k-pad];  "
     "dE/db_l[o] = c sum_n sum_p delta_l[n,o,p]",
     "the kernel gradient is the input correlated with $\\boldsymbol{\\delta}$ (strided by s, "
     "dilated by d)"),
    (r"\frac{\partial \ell}{\partial a^{(l-1)}_{c,i}} = \sum_o \sum_{p,k:\ s p + d k - \pi = i}"
     r" W^{(l)}_{o,c,k}\, \delta^{(l)}_{o,p}",
     "dl/da_{l-1}[c,i] = sum_o sum_{p,k: s*p+d*k-pad=i} W_l[o,c,k] delta_l[o,p]",
     "the input gradient is the transposed (full) convolution of $\\boldsymbol{\\delta}$ with "
     "the kernel"),
)  # fmt: skip

POOL_TEXTBOOK = (
    (r"a^{(l)}_{c,p} = \max_{k} a^{(l-1)}_{c,\, s p + k - \pi} \;\text{or}\; "
     r"\frac{1}{|K|}\sum_k a^{(l-1)}_{c,\, s p + k - \pi}",
     "a_l[c,p] = max_k a_{l-1}[c, s*p+k-pad]  or  mean_k a_{l-1}[c, s*p+k-pad]",
     "pooling: max sends $\\boldsymbol{\\delta}$ to the first maximum of each window (as "
     "PyTorch); average shares $\\boldsymbol{\\delta}$ equally by the $|K|$ elements of the "
     "window (padding counted)"),
)  # fmt: skip

GAP_TEXTBOOK = (
    (r"a^{(l)}_c = \frac{1}{|P|}\sum_p a^{(l-1)}_{c,p}, \quad "
     r"\frac{\partial \ell}{\partial a^{(l-1)}_{c,p}} = \frac{1}{|P|}\frac{\partial \ell}"
     r"{\partial a^{(l)}_c}",
     "a_l[c] = mean_p a_{l-1}[c,p];  dl/da_{l-1}[c,p] = dl/da_l[c] / |P|",
     "global average pooling: one number per channel"),
)  # fmt: skip


def _ints(value: Any, field: str, nd: int, low: int) -> tuple[int, ...]:
    """An int for every spatial axis, or a list of ``nd`` ints."""
    if isinstance(value, list):
        if len(value) != nd:
            raise SpecError(field, f"expected an int or a list of {nd}, got {len(value)} entries")
        return tuple(_int(v, f"{field}[{i}]", low, MAX_DIM) for i, v in enumerate(value))
    return (_int(value, field, low, MAX_DIM),) * nd


def _map_input(f: _Fields, shapes: tuple[Shape, ...], nd: int, kind: str) -> Shape:
    (shape,) = shapes
    if len(shape) != nd + 1:
        want = "[C, L]" if nd == 1 else "[C, H, W]"
        raise SpecError(f.at("input"), f"{kind} reads a map {want}, got {list(shape)}")
    return shape


def _out_shape(f: _Fields, field: str, spatial, ks, s, pad, d) -> tuple[int, ...]:
    out = tuple(out_size(*a) for a in zip(spatial, ks, s, pad, d, strict=False))
    if min(out) < 1:
        raise SpecError(field, f"the input {list(spatial)} is smaller than the (dilated, padded)"
                        f" kernel {list(ks)}")  # fmt: skip
    return out


# ---- conv1d, conv2d -------------------------------------------------------------------------


def _conv_parse(nd: int):
    kind = f"conv{nd}d"

    def parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
        shape = _map_input(f, shapes, nd, kind)
        channels = _int(f.get("channels", required=True), f.at("channels"), 1, MAX_DIM)
        ks = _ints(f.get("kernel", required=True), f.at("kernel"), nd, 1)
        stride = _ints(f.get("stride", 1), f.at("stride"), nd, 1)
        dil = _ints(f.get("dilation", 1), f.at("dilation"), nd, 1)
        groups = _int(f.get("groups", 1), f.at("groups"), 1, MAX_DIM)
        if shape[0] % groups or channels % groups:
            raise SpecError(f.at("groups"), f"must divide the input channels ({shape[0]}) and "
                            f"channels ({channels}), got {groups}")  # fmt: skip
        raw = f.get("padding", 0)
        if raw == "same":
            if any(v != 1 for v in stride):
                raise SpecError(f.at("padding"), "'same' needs stride 1 (as PyTorch)")
            total = [d * (k - 1) for d, k in zip(dil, ks, strict=False)]
            pad = tuple((t // 2, t - t // 2) for t in total)
        elif raw == "valid":
            pad = ((0, 0),) * nd
        elif isinstance(raw, str):
            raise SpecError(f.at("padding"), f"expected an int, a list, 'same' or 'valid', "
                            f"got '{raw[:40]}'")  # fmt: skip
        else:
            pad = tuple((p, p) for p in _ints(raw, f.at("padding"), nd, 0))
        out = _out_shape(f, f.at("kernel"), shape[1:], ks, stride, pad, dil)
        act = activation(f.get("activation", "identity"), f.at("activation"))
        if act.is_softmax:
            raise SpecError(f.at("activation"), "softmax needs a vector: flatten or pool first")
        wshape = (channels, shape[0] // groups, *ks)
        weight = param_spec(f.get("weight", {}), f.at("weight"), wshape, False)
        bias = param_spec(f.get("bias", {}), f.at("bias"), (channels,), True)
        f.done(("channels", "kernel", "stride", "padding", "dilation", "groups", "activation",
                "weight", "bias"))  # fmt: skip
        attrs = (
            ("kernel", ks),
            ("stride", stride),
            ("padding", pad),
            ("dilation", dil),
            ("groups", groups),
        )
        return LayerSpec(kind, inputs, (channels, *out), act, weight, bias, attrs)

    return parse


def _conv_params(ls: LayerSpec, i: int, shapes: tuple[Shape, ...]) -> tuple[Param, ...]:
    channels, groups = ls.shape[0], ls.attr("groups")
    assert ls.weight is not None
    in_ch, kernel = shapes[0][0] // groups, ls.attr("kernel")
    receptive = math.prod(kernel)
    fan_in, fan_out = in_ch * receptive, channels * receptive  # torch's fans for a kernel
    w = ls.weight
    out = [Param(f"W{i}", i, "weight", "kernel", (channels, in_ch, *kernel), w.trainable, w.init,
                 fan_in, fan_out)]  # fmt: skip
    if ls.bias is not None:
        b = ls.bias
        shape = () if b.shape == "shared" else (channels,)
        out.append(Param(f"b{i}", i, "bias", b.shape, shape, b.trainable, b.init, fan_in,
                         fan_out))  # fmt: skip
    return tuple(out)


def _conv_forward(node: Node) -> tuple[Op, ...]:
    w, b, inp = node.weight, node.bias, node.inputs[0]
    bias = b.name if b else ""
    why = f"{node.z} = conv({w.name}, {inp})" + (f" + {bias}" if bias else "")
    attrs = tuple((k, v) for k, v in node.spec.attrs if k != "kernel")
    return (Op("conv", node.z, (w.name, inp, bias), why=why, attrs=attrs), *activation_ops(node))


for _nd in (1, 2):
    register(LayerKind(f"conv{_nd}d", _conv_parse(_nd), _conv_params, _conv_forward,
                       CONV_TEXTBOOK, reads_maps=True, layout="map"))  # fmt: skip


# ---- maxpool1d/2d, avgpool1d/2d ---------------------------------------------------------------


def _pool_parse(nd: int, mode: str):
    kind = f"{mode}pool{nd}d"

    def parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
        shape = _map_input(f, shapes, nd, kind)
        ks = _ints(f.get("kernel", required=True), f.at("kernel"), nd, 1)
        stride = _ints(f.get("stride", list(ks)), f.at("stride"), nd, 1)
        pads = _ints(f.get("padding", 0), f.at("padding"), nd, 0)
        if any(2 * p > k for p, k in zip(pads, ks, strict=False)):
            raise SpecError(f.at("padding"), f"must be at most half the kernel {list(ks)} (as "
                            "PyTorch)")  # fmt: skip
        pad = tuple((p, p) for p in pads)
        out = _out_shape(f, f.at("kernel"), shape[1:], ks, stride, pad, (1,) * nd)
        f.done(("kernel", "stride", "padding"))
        attrs = (("kernel", ks), ("stride", stride), ("padding", pad))
        return LayerSpec(kind, inputs, (shape[0], *out), attrs=attrs)

    return parse


def _pool_forward(mode: str):
    def forward(node: Node) -> tuple[Op, ...]:
        inp = node.inputs[0]
        why = f"{node.a} = {mode}pool({inp})"
        return (Op(f"{mode}pool", node.a, (inp,), why=why, attrs=node.spec.attrs),)

    return forward


for _nd in (1, 2):
    for _mode in ("max", "avg"):
        register(LayerKind(f"{_mode}pool{_nd}d", _pool_parse(_nd, _mode),
                           lambda ls, i, shapes: (), _pool_forward(_mode), POOL_TEXTBOOK,
                           reads_maps=True, layout="map"))  # fmt: skip


# ---- global_avgpool ---------------------------------------------------------------------------


def _gap_parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
    (shape,) = shapes
    if len(shape) < 2:
        raise SpecError(f.at("input"), f"global_avgpool reads a map [C, L] or [C, H, W], got "
                        f"{list(shape)}")  # fmt: skip
    f.done(())
    return LayerSpec("global_avgpool", inputs, (shape[0],))


def _gap_forward(node: Node) -> tuple[Op, ...]:
    inp = node.inputs[0]
    why = f"{node.a} = the mean of each channel of {inp}"
    return (Op("global_avgpool", node.a, (inp,), why=why),)


register(LayerKind("global_avgpool", _gap_parse, lambda ls, i, shapes: (), _gap_forward,
                   GAP_TEXTBOOK, reads_maps=True, layout="vector"))  # fmt: skip
