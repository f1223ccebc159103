"""The C library's evaluation-mode loss (<name>_eval_loss: batch norm's running statistics, no
dropout), against torch.nn in model.eval() with the same weights and buffers, and the C target's
validation with early stopping for nets whose two modes differ, against the NumPy target."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import symbackprop
from symbackprop.cli import main
from symbackprop.codegen import generate
from symbackprop.codegen.c import c_module
from symbackprop.codegen.c.build import build_program
from symbackprop.codegen.numpy import numpy_module

HIDDEN = {"units": 12, "activation": "tanh", "weight": {"init": "xavier_normal"}}
NETS = {
    "dropped": [HIDDEN, {"type": "dropout", "p": 0.3}, {"units": 1, "activation": "identity"}],
    "normed": [
        HIDDEN,
        {"type": "batch_norm", "momentum": 0.2},
        {"units": 1, "activation": "identity"},
    ],  # fmt: skip
}
# the C program's build: warnings are errors, sanitizers abort on the first finding
STRICT = ["-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fsanitize=address,undefined",
          "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]  # fmt: skip
TRAIN = {"epochs": 200, "batch_size": 4, "shuffle": True, "validation": 0.3,
         "early_stopping": {"patience": 5, "min_delta": 0.0}}  # fmt: skip


def _spec(net: str, loss: str = "mse") -> dict:
    layers = [dict(layer) for layer in NETS[net]]
    if loss == "cross_entropy":
        layers[-1] = {"units": 3, "activation": "softmax"}
    return {"name": net, "inputs": 2, "seed": 5, "layers": layers, "loss": loss,
            "optimizer": {"type": "sgd", "lr": 0.2}, "train": TRAIN}  # fmt: skip


def _data(n: int = 32, loss: str = "mse") -> tuple[np.ndarray, np.ndarray]:
    """n rows (22 training rows: no batch of one row, which batch norm cannot train on)."""
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (n, 2))
    if loss == "cross_entropy":
        return x, np.eye(3)[rng.integers(0, 3, n)]
    return x, np.sin(2 * x[:, :1]) * x[:, 1:] + 0.3 * rng.standard_normal((n, 1))


def _torch_eval_loss(net: str, params: dict, X, T, loss: str) -> float:
    """The loss of torch.nn modules in model.eval() holding ``params`` (weights and buffers)."""
    hidden = torch.nn.Linear(2, 12).double()
    out = torch.nn.Linear(12, T.shape[1]).double()
    middle = torch.nn.Dropout(0.3) if net == "dropped" else torch.nn.BatchNorm1d(12).double()
    model = torch.nn.Sequential(hidden, torch.nn.Tanh(), middle, out)
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor(params["W1"]))
        hidden.bias.copy_(torch.tensor(params["b1"]))
        out.weight.copy_(torch.tensor(params["W3"]))
        out.bias.copy_(torch.tensor(params["b3"]))
        if net == "normed":
            middle.weight.copy_(torch.tensor(params["g2"]))
            middle.bias.copy_(torch.tensor(params["b2"]))
            middle.running_mean.copy_(torch.tensor(params["mean2"]))
            middle.running_var.copy_(torch.tensor(params["var2"]))
    model.eval()
    with torch.no_grad():
        Y = model(torch.tensor(X))
        if loss == "cross_entropy":
            return float(torch.nn.functional.cross_entropy(Y, torch.tensor(T).argmax(1)))
        return float(torch.nn.functional.mse_loss(Y, torch.tensor(T)))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("net", sorted(NETS))
def test_eval_loss_equals_torch_in_eval_mode(net, loss):
    """After a few training steps (running buffers moved away from 0 and 1), the C library's
    eval_loss equals torch's model.eval() loss (1e-10) and differs from the training-mode loss;
    the NumPy module's validation_loss agrees with it to 1e-12."""
    d = symbackprop.derive(_spec(net, loss))
    module, reference = c_module(d), numpy_module(d)
    X, T = _data(loss=loss)
    params = module.init_params()
    state = module.init_state(params)
    for k in range(0, 24, 4):
        module.step(params, state, X[k : k + 4], T[k : k + 4])
    if net == "normed":
        assert not np.allclose(params["mean2"], 0) and not np.allclose(params["var2"], 1)
    got = module.validation_loss(params, X, T)
    want = _torch_eval_loss(net, params, X, T, loss)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-14)
    assert got == pytest.approx(reference.validation_loss(params, X, T), rel=1e-12, abs=1e-14)
    assert abs(module.loss(params, X, T) - got) > 1e-4


def _weights(path: Path) -> list[np.ndarray]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return [np.array([float(v) for v in ln.split()]) for ln in lines[1::2]]


@pytest.mark.parametrize("net", sorted(NETS))
def test_symbackprop_train_c_keeps_the_numpy_epoch(net, tmp_path, capsys):
    """`symbackprop train --target c` and the generated C program (built strict, under ASan and
    UBSan), with validation and early stopping, print the NumPy target's lines (validation loss
    to 6 digits, the stopping epoch and the epoch kept) and save its weights and buffers to
    1e-12; it did stop early."""
    spec = tmp_path / f"{net}.yaml"
    spec.write_text(json.dumps(_spec(net)))
    data = tmp_path / "data.csv"
    np.savetxt(data, np.hstack(_data()), delimiter=",", fmt="%.17g")
    out = {}
    for target in ("numpy", "c"):
        weights = tmp_path / f"{target}.weights"
        assert main(["train", str(spec), "--data", str(data), "--target", target,
                     "--out", str(weights)]) == 0  # fmt: skip
        out[target] = capsys.readouterr().out.replace(str(weights), "W"), _weights(weights)
    generate(symbackprop.derive(_spec(net)), "c", tmp_path / "c")
    weights = tmp_path / "program.weights"
    program = build_program(tmp_path / "c", STRICT)
    done = subprocess.run([str(program), "train", str(data), "--out", str(weights)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0 and "Sanitizer" not in done.stderr, done.stderr
    out["program"] = done.stdout.replace(str(weights), "W"), _weights(weights)
    assert "early stopping: stopped after epoch" in out["numpy"][0], out["numpy"][0]
    for target in ("c", "program"):
        assert out[target][0] == out["numpy"][0]
        for a, b in zip(out[target][1], out["numpy"][1], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
