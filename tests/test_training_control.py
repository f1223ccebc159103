"""CONTRACT §7's gradient clipping (optimizer.clip_grad_norm, optimizer.clip_grad_value) in every
target and in the derivation's one-step evaluation, against torch.nn.utils.clip_grad_norm_ /
clip_grad_value_ before torch.optim's step (tests/torch_reference.py); the learning-rate
schedules in every target's train() against torch.optim.lr_scheduler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_reference
from torch_reference import torch_step

import symbackprop
from symbackprop.codegen.c import c_module
from symbackprop.codegen.numpy import numpy_module
from symbackprop.codegen.schedule import lr_at
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


SCHEDULES = [  # (spec, torch.optim.lr_scheduler class, its arguments)
    ({"type": "step", "step_size": 2, "gamma": 0.5}, "StepLR", {"step_size": 2, "gamma": 0.5}),
    ({"type": "multistep", "milestones": [1, 4], "gamma": 0.3}, "MultiStepLR",
     {"milestones": [1, 4], "gamma": 0.3}),
    ({"type": "exponential", "gamma": 0.8}, "ExponentialLR", {"gamma": 0.8}),
    ({"type": "cosine", "T_max": 4, "eta_min": 0.01}, "CosineAnnealingLR",
     {"T_max": 4, "eta_min": 0.01}),
    ({"type": "linear", "start_factor": 0.25, "end_factor": 1.0, "total_iters": 3}, "LinearLR",
     {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 3}),
]  # fmt: skip


def torch_train(data, params, X, T, epochs, batch, cls, kwargs, momentum):
    """The reference: torch.optim.SGD stepped per batch, the scheduler once per epoch."""
    tensors = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(tensors.values()), lr=data["optimizer"]["lr"], momentum=momentum)
    scheduler = getattr(torch.optim.lr_scheduler, cls)(opt, **kwargs)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        for s in range(0, X.shape[0], batch):
            opt.zero_grad()
            z, a = torch_reference._network(data, tensors, torch.from_numpy(X[s : s + batch]))
            torch_reference._loss(data["loss"], z, a, torch.from_numpy(T[s : s + batch])).backward()
            opt.step()
        scheduler.step()
    return {k: v.detach().numpy() for k, v in tensors.items()}, rates


@pytest.mark.parametrize("target", ["numpy", "c", "torch"])
@pytest.mark.parametrize("schedule", SCHEDULES, ids=[s[0]["type"] for s in SCHEDULES])
def test_schedules_follow_torch(target, schedule, tmp_path):
    """7 epochs of 3 batches without shuffling: the parameters after train() equal those of
    torch.optim.SGD under the torch.optim.lr_scheduler class (f64, 1e-10); the rate is back at
    its base afterwards; the schedule's rates are torch's."""
    spec, cls, kwargs = schedule
    data = net({"type": "sgd", "lr": 0.2, "momentum": 0.5, "schedule": spec})
    d = symbackprop.derive(data)
    mod = MAKE[target](d, tmp_path)
    params = mod.init_params()
    start = {k: np.array(v, copy=True) for k, v in params.items()}
    rng = np.random.default_rng(8)
    X, T = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
    mod.train(params, X, T, 7, 4, False)
    want, rates = torch_train(data, start, X, T, 7, 4, cls, kwargs, 0.5)
    for name, value in want.items():
        np.testing.assert_allclose(params[name], value, rtol=1e-10, atol=1e-13, err_msg=name)
    got = [lr_at(d.spec.optimizer.schedule, 0.2, e) for e in range(7)]
    np.testing.assert_allclose(got, rates, rtol=1e-13)
    assert len(set(np.round(rates, 12))) > 1  # it did change the rate


def test_cli_progress_shows_the_scheduled_rate(tmp_path, capsys):
    """`symbackprop train` with a schedule prints each epoch's rate on its progress line."""
    import yaml

    from symbackprop.cli import main

    spec = tmp_path / "s.yaml"
    data = net({"type": "sgd", "lr": 0.2, "schedule": {"type": "step", "step_size": 2}})
    data["loss"] = "mse"
    spec.write_text(yaml.safe_dump(data))
    rng = np.random.default_rng(1)
    csv = tmp_path / "d.csv"
    np.savetxt(csv, rng.normal(size=(10, 5)), delimiter=",")
    args = ["train", str(spec), "--data", str(csv), "--epochs", "5", "--out", str(tmp_path / "w")]
    assert main(args) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")]
    assert [ln.rsplit("lr ", 1)[1] for ln in lines] == ["0.2", "0.2", "0.02", "0.02", "0.002"]
