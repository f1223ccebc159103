"""An independent PyTorch reference for a spec dict (CONTRACT §1), used by the parity tests.

The spec dict (what YAML gives) is read here directly, not through ``symbackprop.spec``, so the
reference shares nothing with the package but the input format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

# Custom activations {expr: ...}: the expression text -> the same function in torch.
CUSTOM_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "x*tanh(log(1+exp(x)))": lambda x: x * torch.tanh(torch.log(1 + torch.exp(x))),
    "x/(1+abs(x))": lambda x: x / (1 + torch.abs(x)),
    "sin(x) + x**2/2": lambda x: torch.sin(x) + x**2 / 2,
    "sigmoid(x)*erf(x)": lambda x: torch.sigmoid(x) * torch.erf(x),
    "softplus(x) - log(2)": lambda x: F.softplus(x) - torch.log(torch.tensor(2.0, dtype=x.dtype)),
    "cosh(x)/2 + sqrt(1 + x**2)": lambda x: torch.cosh(x) / 2 + torch.sqrt(1 + x**2),
    "tanh(tanh(tanh(tanh(x))))": lambda x: torch.tanh(torch.tanh(torch.tanh(torch.tanh(x)))),
    "sigmoid(" * 12 + "x" + ")" * 12: lambda x: _nest(torch.sigmoid, 12)(x),
}


def _nest(f: Callable[[torch.Tensor], torch.Tensor], n: int) -> Callable:
    return f if n == 1 else lambda x: f(_nest(f, n - 1)(x))


# Custom losses {type: custom, expr: ...}: the expression text -> ell(y, t) per output element.
CUSTOM_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "log(cosh(y - t))": lambda y, t: torch.log(torch.cosh(y - t)),
    "(y - t)**2/2 + (y - t)**4/4": lambda y, t: (y - t) ** 2 / 2 + (y - t) ** 4 / 4,
    "exp(y - t) - (y - t)": lambda y, t: torch.exp(y - t) - (y - t),
}

_DEFAULT_LR = {"sgd": 1e-3, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-2}


def _activation(spec) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(spec, str):
        spec = {"name": spec}
    if "expr" in spec:
        return CUSTOM_ACTIVATIONS[spec["expr"]]
    name = spec["name"]
    if name in ("identity", "linear"):
        return lambda x: x
    if name == "leaky_relu":
        alpha = float(spec.get("alpha", 0.01))
        return lambda x: F.leaky_relu(x, alpha)
    if name == "elu":
        alpha = float(spec.get("alpha", 1.0))
        return lambda x: F.elu(x, alpha)
    if name == "gelu":
        return lambda x: F.gelu(x, approximate="none")
    if name == "softmax":
        return lambda x: F.softmax(x, dim=1)
    return {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "softplus": F.softplus,
        "silu": F.silu,
    }[name]


def _loss(spec, z: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    if isinstance(spec, str):
        spec = {"type": spec}
    kind, reduction = spec["type"], spec.get("reduction", "mean")
    if kind == "mse":
        return F.mse_loss(a, t, reduction=reduction)
    if kind == "binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(z, t, reduction=reduction)
    if kind == "cross_entropy":
        return F.cross_entropy(z, t, reduction=reduction)
    if kind == "sse":
        per_sample = float(spec.get("scale", 1.0)) * ((a - t) ** 2).sum(dim=1)
    elif kind == "custom":
        per_sample = CUSTOM_LOSSES[spec["expr"]](a, t).sum(dim=1)
    else:
        raise KeyError(kind)
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


def _optimizer(spec, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if isinstance(spec, str):
        spec = {"type": spec}
    kind = spec["type"]
    kw = {k: v for k, v in spec.items() if k not in ("type", "clip_grad_norm", "clip_grad_value")}
    kw.setdefault("lr", _DEFAULT_LR[kind])
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop}[kind]  # fmt: skip
    return cls(params, **kw)


def _trainable(part) -> bool:
    return isinstance(part, dict) and part.get("trainable", True)


def torch_step(
    data: dict,
    params: dict[str, np.ndarray],
    X,
    T,
    steps: int = 1,
) -> tuple[list[float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Train the spec's network in PyTorch from ``params`` for ``steps`` optimizer steps.

    ``X``/``T`` are one batch, or sequences of batches used in turn. Returns the loss before each
    step, the gradients of the trainable parameters at the first step, and all parameters after.
    """
    dtype = torch.float32 if data.get("dtype") == "float32" else torch.float64
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    if isinstance(X, np.ndarray):
        batches: Sequence = [(X, T)]
    else:
        batches = list(zip(X, T, strict=True))

    tensors: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(data["layers"], start=1):
        if layer.get("type", "dense") != "dense":
            continue
        weight = layer.get("weight", {})
        bias = layer.get("bias", {})
        w = torch.tensor(np.asarray(params[f"W{i}"]), dtype=dtype)
        w.requires_grad_(_trainable(weight))
        tensors[f"W{i}"] = w
        if bias is not None and bias != "none":
            b = torch.tensor(np.asarray(params[f"b{i}"]), dtype=dtype)
            b.requires_grad_(_trainable(bias))
            tensors[f"b{i}"] = b
    trainable = {name: p for name, p in tensors.items() if p.requires_grad}
    opt = _optimizer(data.get("optimizer", {"type": "sgd"}), list(trainable.values()))
    loss_spec = data.get("loss", {"type": "mse"})

    losses: list[float] = []
    first: dict[str, np.ndarray] = {}
    for k in range(steps):
        xb, tb = batches[k % len(batches)]
        a = torch.tensor(np.asarray(xb), dtype=dtype)
        t = torch.tensor(np.asarray(tb), dtype=dtype)
        opt.zero_grad()
        z, a = _network(data, tensors, a)
        loss = _loss(loss_spec, z, a, t)
        loss.backward()
        opt_spec = data.get("optimizer", {})
        if isinstance(opt_spec, dict) and "clip_grad_norm" in opt_spec:
            torch.nn.utils.clip_grad_norm_(list(trainable.values()), opt_spec["clip_grad_norm"])
        if isinstance(opt_spec, dict) and "clip_grad_value" in opt_spec:
            torch.nn.utils.clip_grad_value_(list(trainable.values()), opt_spec["clip_grad_value"])
        losses.append(float(loss.detach()))
        if k == 0:
            first = {
                name: (p.grad.detach().numpy().astype(np_dtype).copy()
                       if p.grad is not None else np.zeros(p.shape, dtype=np_dtype))
                for name, p in trainable.items()
            }  # fmt: skip
        opt.step()
    after = {name: p.detach().numpy().astype(np_dtype).copy() for name, p in tensors.items()}
    return losses, first, after


def _network(data: dict, tensors: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's pre-activation (its output, for a kind without one) and output; layers
    read x or earlier outputs by name (CONTRACT §6: dense, add, concat)."""
    out = {"x": x}
    z = a = x
    for i, layer in enumerate(data["layers"], start=1):
        kind = layer.get("type", "dense")
        if kind == "dense":
            z = out[layer.get("input", f"a{i - 1}" if i > 1 else "x")] @ tensors[f"W{i}"].T
            if f"b{i}" in tensors:
                z = z + tensors[f"b{i}"]
            a = _activation(layer.get("activation", "identity"))(z)
        elif kind == "add":
            z = sum(out[n] for n in layer["inputs"])
            a = _activation(layer.get("activation", "identity"))(z)
        elif kind == "concat":
            z = a = torch.cat([out[n] for n in layer["inputs"]], dim=1)
        else:
            raise KeyError(kind)
        out[f"a{i}"] = a
    return z, a


def torch_forward(data: dict, params: dict[str, np.ndarray], X) -> np.ndarray:
    """The spec's network output for ``X`` (rows are samples) at ``params``, in PyTorch."""
    dtype = torch.float32 if data.get("dtype") == "float32" else torch.float64
    tensors = {k: torch.tensor(np.asarray(v), dtype=dtype) for k, v in params.items()}
    with torch.no_grad():
        _, a = _network(data, tensors, torch.tensor(np.asarray(X), dtype=dtype))
    return a.numpy().copy()
