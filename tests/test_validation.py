"""train.validation and train.early_stopping (CONTRACT §7): the split, the best epoch and the
weights kept, against a hand-run PyTorch loop (torch.nn, torch.optim.SGD) over the same rows, in
the generated NumPy and C programs and `symbackprop train` for both targets."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
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
from symbackprop.core.prng import permutation

SEED, N, FRACTION, PATIENCE, LR, EPOCHS, BATCH = 7, 30, 0.3, 4, 0.2, 300, 4

SPEC = {
    "name": "early",
    "inputs": 2,
    "seed": SEED,
    "layers": [
        {"units": 24, "activation": "tanh", "weight": {"init": "xavier_normal"}},
        {"units": 1, "activation": "identity"},
    ],
    "loss": "mse",
    "optimizer": {"type": "sgd", "lr": LR},
    "train": {"epochs": EPOCHS, "batch_size": BATCH, "shuffle": True, "validation": FRACTION,
              "early_stopping": {"patience": PATIENCE, "min_delta": 0.0}},
}  # fmt: skip


def _data() -> np.ndarray:
    """A small noisy regression: 30 rows overfit by 24 tanh units, so early stopping stops."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (N, 2))
    t = np.sin(2 * x[:, :1]) * x[:, 1:] + 0.3 * rng.standard_normal((N, 1))
    return np.hstack([x, t])


def _torch_reference(init: dict, data: np.ndarray):
    """The same training by hand: the held-out rows are the last 30 % after the split shuffle
    permutation(seed, -1, n), epoch e visits the training rows in permutation(seed, e, n_train)
    order; after each epoch, the MSE of the held-out rows. Keras' EarlyStopping rule with
    restore_best_weights: returns (validation losses, best epoch, weights at each epoch)."""
    order = permutation(SEED, -1, N)
    n_train = math.floor(N * (1 - FRACTION))
    rows, held = order[:n_train], order[n_train:]
    x = torch.tensor(data[:, :2])
    t = torch.tensor(data[:, 2:])
    net = torch.nn.Sequential(torch.nn.Linear(2, 24), torch.nn.Tanh(), torch.nn.Linear(24, 1))
    net = net.double()
    with torch.no_grad():
        for layer, k in ((net[0], 1), (net[2], 2)):
            layer.weight.copy_(torch.tensor(init[f"W{k}"]))
            layer.bias.copy_(torch.tensor(init[f"b{k}"]))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    val, snapshots, best, best_epoch, wait = [], [], math.inf, None, 0
    for epoch in range(EPOCHS):
        visit = rows[permutation(SEED, epoch, n_train)]
        for start in range(0, n_train, BATCH):
            idx = torch.tensor(visit[start : start + BATCH])
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x[idx]), t[idx]).backward()
            opt.step()
        with torch.no_grad():
            val.append(float(torch.nn.functional.mse_loss(net(x[held]), t[held])))
        snapshots.append([p.detach().numpy().copy() for p in net.parameters()])
        if val[-1] < best:
            best, best_epoch, wait = val[-1], epoch, 0
        else:
            wait += 1
        if wait >= PATIENCE:
            break
    return val, best_epoch, snapshots


def _weights(path) -> list[np.ndarray]:
    """W1, b1, W2, b2 from a weight file, flat."""
    text = Path(path).read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    return [np.array([float(v) for v in ln.split()]) for ln in lines[1::2]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The spec, its data, and the output and weights of the generated NumPy program, the C
    program and `symbackprop train` with each target."""
    folder = tmp_path_factory.mktemp("early")
    spec = folder / "early.yaml"
    spec.write_text(json.dumps(SPEC))
    data = folder / "data.csv"
    np.savetxt(data, _data(), delimiter=",", fmt="%.17g")
    d = symbackprop.derive(SPEC)
    generate(d, "numpy", folder / "numpy")
    generate(d, "c", folder / "c")
    programs = {"numpy": [sys.executable, str(folder / "numpy" / "early.py")],
                "c": [str(build_program(folder / "c"))]}  # fmt: skip
    out = {}
    for target, argv in programs.items():
        weights = folder / f"{target}.weights"
        done = subprocess.run([*argv, "train", str(data), "--out", str(weights)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
        out[target] = (done.stdout.replace(str(weights), "W"), _weights(weights))
    return spec, data, out


def test_early_stopping_keeps_the_epoch_of_lowest_validation_loss(runs):
    """Both programs stop where the PyTorch loop stops, keep its best epoch (the one of lowest
    validation loss) and save that epoch's weights (1e-10 relative, float64)."""
    _, data, out = runs
    module = numpy_module(symbackprop.derive(SPEC))
    val, best, snapshots = _torch_reference(module.init_params(), np.loadtxt(data, delimiter=","))
    assert best == int(np.argmin(val)) and len(val) < EPOCHS  # it did stop early
    assert len(val) - 1 - best == PATIENCE
    for target in ("numpy", "c"):
        text, weights = out[target]
        last = text.splitlines()[-2]
        assert last == (f"early stopping: stopped after epoch {len(val)}; kept the weights of "
                        f"epoch {best + 1} (val_loss {val[best]:.6g})"), text  # fmt: skip
        for got, want in zip(weights, snapshots[best], strict=True):
            np.testing.assert_allclose(got, want.ravel(), rtol=1e-10, atol=1e-12)
        # the weights of the epoch after the best differ: the kept ones are not the last
        assert not np.allclose(weights[0], snapshots[best + 1][0].ravel(), rtol=1e-6)


def test_numpy_and_c_agree(runs):
    """The two programs print the same lines (val_loss to 6 digits, the best epoch on each
    line) and save the same weights to 1e-12."""
    _, _, out = runs
    assert out["numpy"][0] == out["c"][0]
    assert re.search(r"  val_loss \S+  best epoch \d+\n", out["numpy"][0])
    for a, b in zip(out["numpy"][1], out["c"][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("target", ["numpy", "c", "torch"])
def test_symbackprop_train_keeps_the_same_epoch(runs, target, tmp_path, capsys):
    """`symbackprop train` (NumPy module, C library, torch Model with torch.optim) holds out the
    same rows and keeps the same epoch as the generated programs, with the same weights (1e-12;
    torch's own arithmetic 1e-10)."""
    spec, data, out = runs
    weights = tmp_path / "w"
    assert main(["train", str(spec), "--data", str(data), "--target", target,
                 "--out", str(weights)]) == 0  # fmt: skip
    text = capsys.readouterr().out.replace(str(weights), "W")
    assert text == out["numpy"][0]
    tol = 1e-10 if target == "torch" else 1e-12
    for a, b in zip(_weights(weights), out["numpy"][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol / 100)


@pytest.mark.parametrize("shuffle", [True, False])
def test_split_rows_are_documented_and_equal_in_numpy_and_c(shuffle):
    """The held-out rows: the last floor-complement of the rows after permutation(seed, -1, n)
    when shuffling (the last rows as given, as Keras' validation_split, without); the same
    rows in C; the same again for the same seed, other rows for another."""
    spec = {**SPEC, "train": {**SPEC["train"], "shuffle": shuffle}}
    d = symbackprop.derive(spec)
    X = np.arange(2 * N, dtype=float).reshape(N, 2)
    T = np.arange(N, dtype=float).reshape(N, 1)
    order = permutation(SEED, -1, N) if shuffle else np.arange(N)
    n_train = math.floor(N * (1 - FRACTION))
    for module in (numpy_module(d), c_module(d)):
        xt, tt, xv, tv = module.split_validation(X, T, FRACTION, shuffle)
        assert len(tv) == N - n_train == 9
        np.testing.assert_array_equal(tv[:, 0], order[n_train:])
        np.testing.assert_array_equal(tt[:, 0], order[:n_train])
        np.testing.assert_array_equal(xv, X[order[n_train:]])
        other = module.split_validation(X, T, FRACTION, shuffle, seed=SEED + 1)[3]
        assert (not np.array_equal(other, tv)) == shuffle
        with pytest.raises(ValueError, match="of 1 rows leaves no rows to train on"):
            module.split_validation(X[:1], T[:1], FRACTION, shuffle)


def test_too_few_rows_is_one_error_line(runs, tmp_path):
    """A split that leaves no training row: exit 2 and one line naming the data file."""
    spec, _, _ = runs
    tiny = tmp_path / "tiny.csv"
    np.savetxt(tiny, _data()[:1], delimiter=",")
    folder = tmp_path / "np"
    generate(symbackprop.derive(SPEC), "numpy", folder)
    done = subprocess.run([sys.executable, str(folder / "early.py"), "train", str(tiny)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"error: {tiny}: validation 0.3 of 1 rows leaves no rows to train on\n"


def test_progress_lines_show_the_schedules_rate(runs, tmp_path):
    """With optimizer.schedule, each progress line of both programs shows the rate its epoch
    trained at: torch.optim.lr_scheduler.MultiStepLR's get_last_lr() before its step."""
    _, data, _ = runs
    milestones, gamma = [2, 5], 0.3
    spec = {**SPEC, "name": "stepped", "train": {"epochs": 8, "batch_size": 8},
            "optimizer": {"type": "sgd", "lr": LR, "schedule": {
                "type": "multistep", "milestones": milestones, "gamma": gamma}}}  # fmt: skip
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma)
    want = []
    for _ in range(8):
        want.append(f"{scheduler.get_last_lr()[0]:.6g}")
        opt.step()
        scheduler.step()
    d = symbackprop.derive(spec)
    generate(d, "numpy", tmp_path / "numpy")
    generate(d, "c", tmp_path / "c")
    for argv in ([sys.executable, str(tmp_path / "numpy" / "stepped.py")],
                 [str(build_program(tmp_path / "c"))]):  # fmt: skip
        done = subprocess.run([*argv, "train", str(data), "--out", str(tmp_path / "w")],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert re.findall(r"  lr (\S+)\n", done.stdout) == want, done.stdout
    assert len(set(want)) == 3


def test_validation_loss_is_evaluation_mode_in_numpy_and_c():
    """A dropout net's validation loss is the loss of its evaluation-mode output (no dropout),
    computed here by hand, in the NumPy module and in the C library (its eval_loss); the
    training-mode loss differs."""
    spec = {**SPEC, "name": "drop", "layers": [SPEC["layers"][0], {"type": "dropout", "p": 0.5},
                                                SPEC["layers"][1]]}  # fmt: skip
    d = symbackprop.derive(spec)
    rows = _data()
    X, T = rows[:, :2], rows[:, 2:]
    for module in (numpy_module(d), c_module(d)):
        params = module.init_params()
        Y = np.tanh(X @ params["W1"].T + params["b1"]) @ params["W3"].T + params["b3"]
        assert module.validation_loss(params, X, T) == pytest.approx(np.mean((Y - T) ** 2), 1e-13)
        assert abs(module.loss(params, X, T) - module.validation_loss(params, X, T)) > 1e-3


class _Axes:
    """Records what _plot draws (matplotlib is optional: this checks the curves themselves)."""

    def __init__(self):
        self.curves, self.title = [], ""

    def plot(self, x, y, label=""):
        self.curves.append((list(x), list(y), label))

    def set_title(self, title):
        self.title = title

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _Figure:
    def tight_layout(self):
        pass

    def savefig(self, out, format, dpi):  # noqa: A002 - matplotlib's keyword
        out.write(b"\x89PNG")


def test_plot_draws_training_and_validation_loss(tmp_path):
    """--plot's figure has the training and the validation curve, epoch by epoch."""
    from symbackprop import cli

    ax = _Axes()

    class _Plt:
        @staticmethod
        def subplots(figsize):
            return _Figure(), ax

    cli._plot(_Plt, [3.0, 2.0, 1.5], "net", str(tmp_path / "p.png"), [2.5, 2.2, 2.4])
    assert ax.curves == [([1, 2, 3], [3.0, 2.0, 1.5], "training"),
                         ([1, 2, 3], [2.5, 2.2, 2.4], "validation")]  # fmt: skip
    assert ax.title == "net: training and validation loss"
    assert (tmp_path / "p.png").read_bytes() == b"\x89PNG"
