"""CONTRACT §7's gradient clipping (optimizer.clip_grad_norm, optimizer.clip_grad_value) in every
target and in the derivation's one-step evaluation, against torch.nn.utils.clip_grad_norm_ /
clip_grad_value_ before torch.optim's step (tests/torch_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
from torch_reference import torch_step

import symbackprop
from symbackprop.codegen.c import c_module
from symbackprop.codegen.numpy import numpy_module
from symbackprop.codegen.torch import torch_module

MAKE = {"numpy": numpy_module, "c": c_module, "torch": torch_module}
CLIPS = [
    {"type": "adam", "lr": 0.05, "clip_grad_norm": 0.2},
    {"type": "sgd", "lr": 0.1, "momentum": 0.9, "clip_grad_norm": 0.5},
    {"type": "adamw", "lr": 0.05, "clip_grad_value": 0.02},
    {"type": "sgd", "lr": 0.3, "clip_grad_value": 0.05},
]


def net(optimizer: dict, dtype: str = "float64") -> dict:
    return {"name": "clip", "inputs": 3, "seed": 3, "dtype": dtype, "loss": {"type": "mse"},
            "optimizer": optimizer, "layers": [{"units": 6, "activation": "tanh"},
                                               {"units": 2, "activation": "identity"}]}  # fmt: skip


def batches(dtype="float64"):
    rng = np.random.default_rng(2)
    return [(rng.normal(size=(n, 3)).astype(dtype), 3 * rng.normal(size=(n, 2)).astype(dtype))
            for n in (5, 7, 4)]  # fmt: skip


@pytest.mark.parametrize("target", ["numpy", "c", "torch"])
@pytest.mark.parametrize("optimizer", CLIPS, ids=lambda o: "-".join(map(str, o.values())))
def test_clipping_follows_torch(target, optimizer, tmp_path):
    """25 steps over three batches: losses and parameters (float64, 1e-10); the clipping is
    active (the clipped run differs from the unclipped one)."""
    data = net(optimizer)
    mod = MAKE[target](symbackprop.derive(data), tmp_path)
    start = mod.init_params()
    bs = batches()
    losses, _, after = torch_step(data, start, [b[0] for b in bs], [b[1] for b in bs], steps=25)
    params = {k: np.array(v, copy=True) for k, v in start.items()}
    state = mod.init_state(params)
    ours = [mod.step(params, state, *bs[k % 3]) for k in range(25)]
    np.testing.assert_allclose(ours, losses, rtol=1e-10)
    for name, value in after.items():
        np.testing.assert_allclose(params[name], value, rtol=1e-10, atol=1e-13, err_msg=name)
    plain = {k: v for k, v in optimizer.items() if not k.startswith("clip")}
    _, _, unclipped = torch_step(net(plain), start, [b[0] for b in bs], [b[1] for b in bs], 25)
    assert not np.allclose(unclipped["W1"], after["W1"], rtol=1e-6)


@pytest.mark.parametrize("optimizer", CLIPS, ids=lambda o: "-".join(map(str, o.values())))
def test_derive_at_step_is_clipped(optimizer):
    """The derivation's evaluation (derive --at) takes one clipped step, as torch does."""
    data = net(optimizer)
    d = symbackprop.derive(data)
    x, t = batches()[0]
    ev = d.at((x, t))
    _, _, after = torch_step(data, ev.params, x, t, steps=1)
    for name, value in after.items():
        np.testing.assert_allclose(ev.updated[name], value, rtol=1e-12, atol=1e-14)


def test_float32_clipping(tmp_path):
    data = net({"type": "adam", "lr": 0.05, "clip_grad_norm": 0.2}, "float32")
    bs = batches("float32")
    for target in ("numpy", "c"):
        mod = MAKE[target](symbackprop.derive(data), tmp_path / target)
        start = mod.init_params()
        _, _, after = torch_step(data, start, [b[0] for b in bs], [b[1] for b in bs], steps=25)
        params = {k: np.array(v, copy=True) for k, v in start.items()}
        state = mod.init_state(params)
        for k in range(25):
            mod.step(params, state, *bs[k % 3])
        for name, value in after.items():
            np.testing.assert_allclose(params[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
