"""A batch-norm training batch of one row (issue 16): PyTorch's batch norm raises ValueError
("Expected more than 1 value per channel when training") when a channel has one number (batch
1 over features; over conv channels when N·H·W = 1), and so does every target here: the NumPy
module's and the torch target's step, loss and loss_and_grad, the C library (NaN, nothing
changed; the loader raises), train (refused before the first step), the generated programs and
`symbackprop train` (one line, exit 2, nothing written). Evaluation mode with one row and
training on one row of several positions stay fine and follow PyTorch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from symbackprop.codegen import TARGETS, generate
from symbackprop.codegen.c.build import build_program
from symbackprop.core.chain_rule import derive
from symbackprop.core.layers.normalization import min_training_rows, short_batch
from symbackprop.spec.load import parse_spec

TARGET_NAMES = ("numpy", "c", "torch")


def dense_spec() -> dict:
    return {"name": "onerow", "inputs": 3, "seed": 2, "dtype": "float64",
            "layers": [{"units": 4, "activation": "tanh"}, {"type": "batch_norm"},
                       {"type": "dropout", "p": 0.25}, {"units": 2, "activation": "softmax"}],
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1},
            "train": {"batch_size": 4, "epochs": 2, "shuffle": False}}  # fmt: skip


def conv_spec(shape: list[int], kernel: int) -> dict:
    return {"name": "onerowc", "inputs": shape, "seed": 3, "dtype": "float64",
            "layers": [{"type": "conv2d", "channels": 3, "kernel": kernel, "activation": "tanh"},
                       {"type": "batch_norm"}, {"type": "flatten"},
                       {"units": 2, "activation": "softmax"}],
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1}}  # fmt: skip


def module(data: dict, target: str, tmp_path):
    return TARGETS[target].module(derive(parse_spec(data)), tmp_path / target)


def torch_reference(data: dict, params: dict) -> torch.nn.Module:
    """nn.Linear/nn.Conv2d, tanh, nn.BatchNorm1d/2d (train mode), the head: the reference."""
    layers = data["layers"]
    if layers[0].get("type") == "conv2d":
        c, k = data["inputs"][0], layers[0]["kernel"]
        first = torch.nn.Conv2d(c, 3, k)
        bn = torch.nn.BatchNorm2d(3)
        head = torch.nn.Linear(params["W4"].shape[1], 2)
        body = [first, torch.nn.Tanh(), bn, torch.nn.Flatten(), head]
        names = [(first, "1"), (head, "4")]
    else:
        first, bn = torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)
        head = torch.nn.Linear(4, 2)
        body = [first, torch.nn.Tanh(), bn, head]
        names = [(first, "1"), (head, "4")]
    net = torch.nn.Sequential(*body).double()
    with torch.no_grad():
        for mod, i in names:
            mod.weight.copy_(torch.from_numpy(params[f"W{i}"]))
            mod.bias.copy_(torch.from_numpy(params[f"b{i}"]))
        bn.weight.copy_(torch.from_numpy(params["g2"]))
        bn.bias.copy_(torch.from_numpy(params["b2"]))
        bn.running_mean.copy_(torch.from_numpy(params["mean2"]))
        bn.running_var.copy_(torch.from_numpy(params["var2"]))
    return net


def rows(data: dict, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = data["inputs"] if isinstance(data["inputs"], list) else [data["inputs"]]
    return rng.normal(size=(n, *shape)), np.eye(2)[rng.integers(0, 2, n)]


ONE_VALUE = [dense_spec(), conv_spec([2, 3, 3], 3)]  # batch 1 over features; a 1×1 map


@pytest.mark.parametrize("target", TARGET_NAMES)
@pytest.mark.parametrize("data", ONE_VALUE, ids=["features", "conv_1x1"])
def test_one_row_training_raises_as_pytorch(target, data, tmp_path):
    m = module(data, target, tmp_path)
    params = m.init_params()
    x, t = rows(data, 1)
    net = torch_reference(data, params).train()
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        net(torch.from_numpy(x))  # PyTorch's own refusal of the same shapes
    state = m.init_state(params)
    before = {k: v.copy() for k, v in params.items()}
    for call in (lambda: m.step(params, state, x, t), lambda: m.loss(params, x, t),
                 lambda: m.loss_and_grad(params, x, t)):  # fmt: skip
        with pytest.raises(ValueError, match="more than one value per channel"):
            call()
    assert state["step"] == 0
    for k, v in before.items():  # nothing trained, no buffer moved
        np.testing.assert_array_equal(params[k], v)
    # evaluation mode with one row: the running statistics, as PyTorch's eval()
    want = torch.softmax(net.eval()(torch.from_numpy(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(m.forward(params, x).reshape(1, 2), want, rtol=1e-10)
    # two rows train
    x2, t2 = rows(data, 2, 1)
    assert np.isfinite(m.step(params, state, x2, t2)) and state["step"] == 1


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_one_row_of_several_positions_trains_as_pytorch(target, tmp_path):
    """BatchNorm2d on [1, C, 2, 2]: four values per channel, PyTorch trains; so do we."""
    data = conv_spec([2, 3, 3], 2)
    m = module(data, target, tmp_path)
    params = m.init_params()
    x, t = rows(data, 1)
    net = torch_reference(data, params).train()
    out = net(torch.from_numpy(x))
    want = float(torch.nn.functional.cross_entropy(out, torch.from_numpy(t)).detach())
    assert m.loss(params, x, t) == pytest.approx(want, rel=1e-10)
    state = m.init_state(params)
    assert m.step(params, state, x, t) == pytest.approx(want, rel=1e-10)
    np.testing.assert_allclose(params["mean2"], net[2].running_mean.numpy(), rtol=1e-10)


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_train_refuses_a_last_batch_of_one_row(target, tmp_path):
    data = dense_spec()
    m = module(data, target, tmp_path)
    params = m.init_params()
    before = {k: v.copy() for k, v in params.items()}
    x, t = rows(data, 9)
    for batch in (4, 8, 1):  # 9 = 4 + 4 + 1; 8 + 1; every batch one row
        with pytest.raises(ValueError, match="leaves a batch of one row of 9"):
            m.train(params, x, t, 2, batch, shuffle=False)
        for k, v in before.items():
            np.testing.assert_array_equal(params[k], v)
    assert len(m.train(params, x, t, 2, 3, shuffle=False)) == 2  # 3 + 3 + 3


def test_short_batch_rule():
    """min_training_rows: 2 only with a channel of one value per sample; short_batch against
    the batches enumerated."""
    assert min_training_rows(parse_spec(dense_spec()).layers) == 2
    assert min_training_rows(parse_spec(conv_spec([2, 3, 3], 3)).layers) == 2
    assert min_training_rows(parse_spec(conv_spec([2, 3, 3], 2)).layers) == 1
    for n in range(1, 30):
        for b in range(1, 12):
            sizes = [len(range(n)[s : s + b]) for s in range(0, n, b)]
            assert short_batch(n, b, 2) == (min(sizes) < 2)
            assert not short_batch(n, b, 1)


def _write_data(path, n):
    x, t = rows(dense_spec(), n)
    np.savetxt(path, np.hstack([x, t.argmax(1)[:, None]]), delimiter=",")


def test_programs_and_cli_report_one_line(tmp_path):
    data = dense_spec()
    spec_path = tmp_path / "onerow.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    csv = tmp_path / "d.csv"
    _write_data(csv, 9)  # batch_size 4: a last batch of one row
    out = tmp_path / "w.weights"
    d = derive(parse_spec(data))
    generate(d, "numpy", tmp_path / "np")
    generate(d, "c", tmp_path / "c")
    exe = build_program(tmp_path / "c")
    runs = {
        "cli numpy": [sys.executable, "-m", "symbackprop.cli", "train", str(spec_path),
                      "--data", str(csv), "--target", "numpy", "--out", str(out)],
        "cli c": [sys.executable, "-m", "symbackprop.cli", "train", str(spec_path),
                  "--data", str(csv), "--target", "c", "--out", str(out), "--batch-size", "8"],
        "numpy program": [sys.executable, str(tmp_path / "np" / "onerow.py"), "train", str(csv),
                          "--out", str(out)],
        "c program": [str(exe), "train", str(csv), "--out", str(out), "--batch-size", "1"],
    }  # fmt: skip
    for name, argv in runs.items():
        r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        assert r.returncode == 2, (name, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {csv}: "), (name, r.stderr)
        assert "batch-size" in lines[0] or "train.batch_size" in lines[0], lines[0]
        assert "leaves a batch of one row of 9 training rows" in lines[0], lines[0]
        assert "Traceback" not in r.stderr and not out.exists(), name
    r = subprocess.run([str(exe), "train", str(csv), "--out", str(out), "--batch-size", "3",
                        "--quiet"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0 and out.exists(), r.stderr


@pytest.mark.parametrize("data", ONE_VALUE, ids=["features", "conv_1x1"])
def test_derive_at_one_sample_is_refused_as_pytorch(data, tmp_path, capsys):
    """`derive --at` runs one training step: a sample file of one row is refused (one line,
    exit 2, nothing written) where PyTorch's training-mode batch norm raises, and two rows
    work; a 2x2 map's channels have four values, and one row derives."""
    from symbackprop.cli import main

    spec_path, out = tmp_path / "net.yaml", tmp_path / "doc.txt"
    spec_path.write_text(yaml.safe_dump(data))
    x, t = rows(data, 2)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch_reference(data, module(data, "numpy", tmp_path).init_params()).train()(
            torch.from_numpy(x[:1])
        )
    for n in (1, 2):
        samples = tmp_path / f"s{n}.yaml"
        rows_n = [{"x": a.tolist(), "t": b.tolist()} for a, b in zip(x[:n], t[:n], strict=True)]
        samples.write_text(yaml.safe_dump(rows_n))
        code = main(["derive", str(spec_path), "--at", str(samples), "-o", str(out)])
        err = capsys.readouterr().err
        if n == 1:
            assert code == 2 and not out.exists(), err
            assert err.startswith(f"error: {samples}: one sample, but batch_norm needs more")
            assert err.count("\n") == 1, err
        else:
            assert code == 0 and "Worked example" in out.read_text(), err
    several = conv_spec([2, 3, 3], 2)  # one row of a 2x2 map: PyTorch trains it, and so --at
    spec_path.write_text(yaml.safe_dump(several))
    x, t = rows(several, 1)
    samples.write_text(yaml.safe_dump([{"x": x[0].tolist(), "t": t[0].tolist()}]))
    assert main(["derive", str(spec_path), "--at", str(samples), "-o", str(out)]) == 0
