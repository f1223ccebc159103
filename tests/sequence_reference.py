"""The reference for sequence layers: nn.RNN/GRU/LSTM(batch_first=True) per recurrent layer and
nn.Linear per dense layer, built from the spec dict directly (it shares nothing with the package but
the input format), plus the specs, data and builders that tests/test_recurrent.py and
tests/test_gated.py share.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RECURRENT = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def builder(target: str, tmp_path_factory, label: str):
    """build(spec dict) -> the generated ``target`` (numpy, c, torch) behind the NumPy module's
    functions, built once per spec: the NumPy module, the C library (load_c) or the torch module
    (each op's backward the derived BPTT)."""
    import json

    import symbackprop
    from symbackprop.codegen.c import c_module
    from symbackprop.codegen.numpy import numpy_module
    from symbackprop.codegen.torch import torch_module

    make = {"numpy": numpy_module, "c": c_module, "torch": torch_module}[target]
    cache: dict = {}

    def _build(data: dict):
        key = json.dumps(data, sort_keys=True)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"{target}-{label}")
            cache[key] = make(symbackprop.derive(data), folder)
        return cache[key]

    return _build


ACTS = {"identity": lambda z: z, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
        "relu": torch.relu, "softmax": lambda z: z}  # fmt: skip


class Reference(torch.nn.Module):
    """The spec as torch modules: nn.RNN/GRU/LSTM for recurrent layers, nn.Linear for dense."""

    def __init__(self, spec: dict, params: dict, dtype):
        super().__init__()
        self.spec, self.mods = spec, torch.nn.ModuleList()
        width = spec["inputs"][-1]
        for i, ly in enumerate(spec["layers"], start=1):
            kind = ly.get("type", "dense")
            if kind in RECURRENT:
                extra = {"nonlinearity": ly.get("nonlinearity", "tanh")} if kind == "rnn" else {}
                m = RECURRENT[kind](width, ly["units"], bias=ly.get("bias", True),
                                    batch_first=True, dtype=dtype, **extra)  # fmt: skip
                names = {"weight_ih_l0": f"W{i}", "weight_hh_l0": f"U{i}",
                         "bias_ih_l0": f"b{i}", "bias_hh_l0": f"br{i}"}  # fmt: skip
            else:
                m = torch.nn.Linear(width, ly["units"], dtype=dtype)
                names = {"weight": f"W{i}", "bias": f"b{i}"}
            with torch.no_grad():
                for own, ours in names.items():
                    if getattr(m, own, None) is not None:
                        getattr(m, own).copy_(torch.tensor(params[ours]))
            m.names = names
            self.mods.append(m)
            width = ly["units"]

    def forward(self, x):
        for ly, m in zip(self.spec["layers"], self.mods, strict=True):
            kind = ly.get("type", "dense")
            if kind in RECURRENT:
                k = ly.get("bptt") or x.shape[1]
                parts, state = [], None
                for start in range(0, x.shape[1], k):  # truncated BPTT: windows of k steps,
                    seq, state = m(x[:, start : start + k], state)  # the state detached between
                    parts.append(seq)
                    state = (tuple(s.detach() for s in state) if isinstance(state, tuple)
                             else state.detach())  # fmt: skip
                seq = torch.cat(parts, 1)
                x = seq if ly.get("return_sequences", False) else seq[:, -1]
            else:
                x = ACTS[ly.get("activation", "identity")](m(x))
        return x

    def loss(self, x, t):
        y = self.forward(x)
        kind = self.spec.get("loss", "mse")
        if kind == "mse":
            return F.mse_loss(y, t)
        if kind == "cross_entropy":
            return F.cross_entropy(y.reshape(-1, y.shape[-1]), t.reshape(-1, t.shape[-1]))
        raise ValueError(kind)

    def named(self):
        return {ours: getattr(m, own) for m in self.mods for own, ours in m.names.items()
                if getattr(m, own, None) is not None}  # fmt: skip


def optimizer_for(spec, params):
    opt = dict(spec.get("optimizer", {"type": "sgd"}))
    kind = opt.pop("type")
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[kind]
    return cls(params, **opt)


def sequence_output(spec) -> bool:
    rnns = [ly for ly in spec["layers"] if ly.get("type") in RECURRENT]
    return bool(rnns) and rnns[-1].get("return_sequences", False)


def sequence_data(spec, n, seed=0):
    rng = np.random.default_rng(seed)
    steps, feats = spec["inputs"]
    x = rng.normal(size=(n, steps, feats))
    outputs = spec["layers"][-1]["units"]
    rows = (n, steps) if sequence_output(spec) else (n,)
    if spec.get("loss") == "cross_entropy":
        t = np.eye(outputs)[rng.integers(0, outputs, rows)]
    else:
        t = rng.normal(size=(*rows, outputs))
    return x, t


def sequence_spec(layers, steps=5, feats=3, loss="mse", optimizer=None, dtype="float64"):
    return {"name": "seq", "inputs": [steps, feats], "dtype": dtype, "seed": 3, "layers": layers,
            "loss": loss, "optimizer": optimizer or {"type": "sgd", "lr": 0.1}}  # fmt: skip


def generate(spec: dict, folder) -> None:
    import symbackprop
    from symbackprop.codegen import render

    d = symbackprop.derive(spec)
    for target in ("c", "numpy"):
        for name, text in render(d, target).items():
            (folder / name).write_text(text)


def run(program, *args):
    import subprocess

    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=program.parent)  # fmt: skip
