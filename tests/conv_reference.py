"""The PyTorch reference of a conv spec: torch.nn modules built from the spec dict (nn.Conv1d/2d,
nn.MaxPool*d, nn.AvgPool*d, torch.flatten, nn.Linear), its loss and torch.optim.SGD, with the
generated target's initial weights copied in. Independent of symbackprop's derivation."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.flatten(2).mean(2)


def modules(spec: dict) -> tuple[nn.Sequential, list[tuple[str, nn.Parameter]]]:
    """The network as nn.Sequential and its parameters named W{i}/b{i} as the spec's."""
    shape = spec["inputs"]
    channels = shape[0]
    mods: list[nn.Module] = []
    named = []
    for i, layer in enumerate(spec["layers"], start=1):
        t = layer.get("type", "dense")
        if t in ("conv1d", "conv2d"):
            conv = (nn.Conv1d if t == "conv1d" else nn.Conv2d)(
                channels, layer["channels"], layer["kernel"], stride=layer.get("stride", 1),
                padding=layer.get("padding", 0), dilation=layer.get("dilation", 1),
                groups=layer.get("groups", 1), bias=layer.get("bias", {}) != "none",
                dtype=torch.float64,
            )  # fmt: skip
            channels = layer["channels"]
            mods += [conv, ACTS[layer.get("activation", "identity")]()]
            named.append((f"W{i}", conv.weight))
            if conv.bias is not None:
                named.append((f"b{i}", conv.bias))
        elif t.startswith(("maxpool", "avgpool")):
            cls = {"maxpool1d": nn.MaxPool1d, "maxpool2d": nn.MaxPool2d,
                   "avgpool1d": nn.AvgPool1d, "avgpool2d": nn.AvgPool2d}[t]  # fmt: skip
            mods.append(cls(layer["kernel"], layer.get("stride"), layer.get("padding", 0)))
        elif t == "global_avgpool":
            mods.append(GlobalAvgPool())
        elif t == "flatten":
            mods.append(nn.Flatten())
        else:
            lin = nn.LazyLinear(layer["units"], dtype=torch.float64)
            act = layer.get("activation", "identity")
            mods += [lin, nn.Identity() if act == "softmax" else ACTS[act]()]
            named.append((f"W{i}", lin))
            named.append((f"b{i}", lin))
    net = nn.Sequential(*mods)
    net(torch.zeros(1, *shape, dtype=torch.float64))  # materialize the lazy layers
    out = []
    for name, p in named:
        if isinstance(p, nn.Linear):
            p = p.weight if name.startswith("W") else p.bias
        out.append((name, p))
    return net, out


def loss_fn(spec: dict):
    loss = spec.get("loss", {"type": "mse"})["type"]
    if loss == "cross_entropy":
        return lambda y, t: nn.functional.cross_entropy(y, t)  # logits; t probabilities
    return lambda y, t: nn.functional.mse_loss(y, t)


def train(spec: dict, params: dict, X, T, steps: int, lr: float, momentum: float = 0.0):
    """Parameters after each of ``steps`` SGD steps on (X, T), and the first step's gradients."""
    net, named = modules(spec)
    with torch.no_grad():
        for name, p in named:
            p.copy_(torch.as_tensor(np.asarray(params[name], dtype=np.float64)))
    opt = torch.optim.SGD([p for _, p in named], lr=lr, momentum=momentum)
    X = torch.as_tensor(X, dtype=torch.float64)
    T = torch.as_tensor(T, dtype=torch.float64)
    f = loss_fn(spec)
    history, grads = [], None
    for _ in range(steps):
        opt.zero_grad()
        E = f(net(X), T)
        E.backward()
        if grads is None:
            grads = {n: p.grad.detach().numpy().copy() for n, p in named}
            grads["E"] = float(E.detach())
        opt.step()
        history.append({n: p.detach().numpy().copy() for n, p in named})
    return history, grads
