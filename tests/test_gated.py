"""Gated recurrent layers (issue 15): gru and lstm against torch.nn.GRU / nn.LSTM with copied
weights, step for step.

The reference is built from the spec dict directly (nn.GRU / nn.LSTM / nn.RNN(batch_first=True)
per recurrent layer, nn.Linear per dense layer, the loss and torch.optim from the spec), so it
shares nothing with the package but the input format. Every code target (the ``build`` fixture)
must follow it for 10 optimizer steps: float64 to 1e-10, float32 to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

RECURRENT = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


@pytest.fixture(scope="module", params=["numpy", "c", "torch"])
def build(request, tmp_path_factory):
    """build(spec dict) -> the generated target behind the NumPy module's functions."""
    import json

    import symbackprop
    from symbackprop.codegen.c import c_module
    from symbackprop.codegen.numpy import numpy_module
    from symbackprop.codegen.torch import torch_module

    make = {"numpy": numpy_module, "c": c_module, "torch": torch_module}[request.param]
    cache: dict = {}

    def _build(data: dict):
        key = json.dumps(data, sort_keys=True)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"{request.param}-gated")
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


def _optimizer(spec, params):
    opt = dict(spec.get("optimizer", {"type": "sgd"}))
    kind = opt.pop("type")
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[kind]
    return cls(params, **opt)


def _sequence_output(spec) -> bool:
    rnns = [ly for ly in spec["layers"] if ly.get("type") in RECURRENT]
    return bool(rnns) and rnns[-1].get("return_sequences", False)


def _data(spec, n, seed=0):
    rng = np.random.default_rng(seed)
    steps, feats = spec["inputs"]
    x = rng.normal(size=(n, steps, feats))
    outputs = spec["layers"][-1]["units"]
    rows = (n, steps) if _sequence_output(spec) else (n,)
    if spec.get("loss") == "cross_entropy":
        t = np.eye(outputs)[rng.integers(0, outputs, rows)]
    else:
        t = rng.normal(size=(*rows, outputs))
    return x, t


def _spec(layers, steps=5, feats=3, loss="mse", optimizer=None, dtype="float64"):
    return {"name": "seq", "inputs": [steps, feats], "dtype": dtype, "seed": 3, "layers": layers,
            "loss": loss, "optimizer": optimizer or {"type": "sgd", "lr": 0.1}}  # fmt: skip


def _cases(kind: str) -> dict:
    return {
        f"{kind} many-to-one, dense head": _spec([{"type": kind, "units": 4}, {"units": 2}]),
        f"{kind} many-to-many: dense on every step": _spec(
            [{"type": kind, "units": 4, "return_sequences": True},
             {"units": 2, "activation": "tanh"}], steps=4),
        f"{kind} stacked rnn -> {kind}, softmax head, adam, T = 12": _spec(
            [{"type": "rnn", "units": 4, "return_sequences": True}, {"type": kind, "units": 3},
             {"units": 3, "activation": "softmax"}], steps=12, loss="cross_entropy",
            optimizer={"type": "adam", "lr": 0.01}),
        f"{kind} T = 1, no bias, sgd momentum": _spec(
            [{"type": kind, "units": 3, "bias": False}, {"units": 1}], steps=1,
            optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9}),
        f"{kind} as the output layer": _spec([{"type": kind, "units": 2}], steps=4),
        f"{kind} truncated BPTT (bptt: 3 of T = 8), stacked {kind} -> {kind}": _spec(
            [{"type": kind, "units": 4, "return_sequences": True, "bptt": 3},
             {"type": kind, "units": 3, "bptt": 3}, {"units": 2}],
            steps=8, optimizer={"type": "adam", "lr": 0.01}),
    }  # fmt: skip


CASES = {**_cases("gru"), **_cases("lstm")}


@pytest.mark.parametrize("label", CASES)
def test_training_steps_follow_torch(build, label):
    spec = CASES[label]
    net = build(spec)
    params = net.init_params()
    ref = Reference(spec, params, torch.float64)
    opt = _optimizer(spec, ref.parameters())
    state = net.init_state(params)
    x, t = _data(spec, 7)
    xt, tt = torch.tensor(x), torch.tensor(t)
    for step in range(10):
        opt.zero_grad()
        want = ref.loss(xt, tt)
        want.backward()
        if step == 0:
            e, grads = net.loss_and_grad(params, x, t)
            for name, p in ref.named().items():
                np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12,
                                           err_msg=name)  # fmt: skip
        got = net.step(params, state, x, t)
        assert got == pytest.approx(want.item(), rel=1e-10)
        opt.step()
        for name, p in ref.named().items():
            np.testing.assert_allclose(params[name], p.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{label}: {name} after step {step + 1}")  # fmt: skip
