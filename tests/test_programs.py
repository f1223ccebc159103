"""The training programs (the NumPy module's and the C program's command lines) and
`symbackprop train` behave alike on the cases of the hardening issue, one section each."""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from symbackprop.cli import main
from symbackprop.codegen.c.build import build_program
from symbackprop.codegen.c.loader import load_c
from symbackprop.codegen.numpy.loader import load_numpy
from symbackprop.core.optimizers import _RANGES, hyper_range
from symbackprop.spec.errors import SpecError
from symbackprop.spec.load import parse_spec

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "generated/iris_softmax"  # 4 inputs, 3 outputs, cross-entropy, adam
SGD = ROOT / "generated/sgd_nesterov"  # 3 inputs, 2 outputs, sse, sgd (Nesterov momentum)
HAS_CC = shutil.which(os.environ.get("CC", "cc")) is not None
BOM = b"\xef\xbb\xbf"
M = load_numpy(IRIS / "iris_softmax.py")


@pytest.fixture(scope="module")
def programs():
    """folder -> the command of its C program, compiled on first use."""
    built: dict[Path, list[str]] = {}

    def get(folder: Path) -> list[str]:
        if not HAS_CC:
            pytest.skip("no cc")
        if folder not in built:
            built[folder] = [str(build_program(folder))]
        return built[folder]

    return get


def command(folder: Path, target: str, programs) -> list[str]:
    if target == "c":
        return programs(folder)
    return [sys.executable, str(folder / f"{folder.name}.py")]


def run(cmd: list[str], *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, errors="replace", timeout=120
    )


def regression_data(folder: Path) -> Path:
    """23 rows for sgd_nesterov: 3 inputs, 2 targets."""
    rng = np.random.default_rng(7)
    path = folder / "data.csv"
    np.savetxt(path, rng.normal(size=(23, 5)), delimiter=",", fmt="%.17g")
    return path


# ---- a UTF-8 byte-order mark at the start of a .csv file ---------------------------------------


def iris_rows() -> bytes:
    """iris.csv without its header line."""
    return (ROOT / "examples/data/iris.csv").read_bytes().split(b"\n", 1)[1]


@pytest.mark.parametrize("header", [b"", b"a,b,c,d,species\n"], ids=["no_header", "header"])
def test_bom_csv_is_read_as_without_it(header, programs, tmp_path):
    """The mark made the first row look like a header: its sample was lost in every target."""
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_bytes(header + iris_rows())
    marked.write_bytes(BOM + header + iris_rows())
    for module in (M, load_c(IRIS)):
        X, T = module.load_data(str(plain))
        Xm, Tm = module.load_data(str(marked))
        assert len(X) == 150 and np.array_equal(X, Xm) and np.array_equal(T, Tm)
    weights = tmp_path / "w"
    M.save(M.init_params(3), str(weights))
    for target in ("numpy", "c"):
        cmd = command(IRIS, target, programs)
        expected = run(cmd, "predict", weights, plain)
        assert expected.returncode == 0 and len(expected.stdout.splitlines()) == 150
        assert run(cmd, "predict", weights, marked).stdout == expected.stdout


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_cli_train_reads_a_bom_csv_as_without_it(target, tmp_path, capsys):
    spec = str(ROOT / "examples/iris_softmax.yaml")
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_bytes(iris_rows())
    marked.write_bytes(BOM + iris_rows())
    for data, out in ((plain, "a.w"), (marked, "b.w")):
        args = ["train", spec, "--data", str(data), "--target", target, "--epochs", "2"]
        assert main([*args, "--quiet", "--out", str(tmp_path / out)]) == 0, capsys.readouterr()
    assert (tmp_path / "a.w").read_bytes() == (tmp_path / "b.w").read_bytes()


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_cli_train_lr_is_the_programs_lr(target, programs, tmp_path, capsys):
    """`symbackprop train --lr` trains as the generated program's own --lr does (CONTRACT §7),
    and as not without it; a value the spec would refuse for lr is one error line, exit 2."""
    spec = str(ROOT / "examples/iris_softmax.yaml")
    data = tmp_path / "iris.csv"
    data.write_bytes(iris_rows())
    args = ["train", spec, "--data", str(data), "--target", target, "--epochs", "2", "--quiet"]
    assert main([*args, "--lr", "0.05", "--out", str(tmp_path / "a.w")]) == 0
    assert main([*args, "--out", str(tmp_path / "c.w")]) == 0
    out = run(command(IRIS, target, programs), "train", data, "--epochs", "2", "--lr", "0.05",
              "--out", tmp_path / "b.w", "--quiet")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.w").read_bytes() == (tmp_path / "b.w").read_bytes()
    assert (tmp_path / "a.w").read_bytes() != (tmp_path / "c.w").read_bytes()
    capsys.readouterr()
    for bad in ("0", "-1", "nan", "inf", "1e999", "fast"):
        assert main([*args, "--lr", bad, "--out", str(tmp_path / "never.w")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "--lr" in err and err.count("\n") == 1, err
        assert not (tmp_path / "never.w").exists()


# ---- .npz files: not a zip archive, damaged, or claiming more than they hold -------------------


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def npy_header(shape: tuple) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


# name -> (the file's bytes, the reason the NumPy module and `symbackprop train` give)
NPZ_CASES = {
    "text.npz": (b"1,2,3,4,0\n", "not a .npz file (a zip archive of .npy files)"),
    "damaged.npz": (
        b"PK\x03\x04 and then garbage",
        "damaged .npz archive (File is not a zip file)",
    ),
    "huge.npz": (
        zip_of({"X.npy": npy_header((10**12, 4)) + bytes(64), "y.npy": npy_header((3,))}),
        "64 data bytes for shape (1000000000000, 4), expected 32000000000000",
    ),
    "text_member.npz": (
        zip_of({"X.npy": b"1,2\n", "y.npy": b""}),
        "not a .npy file of version 1 to 3",
    ),
    "no_x.npz": (zip_of({"T.npy": npy_header((0, 3))}), "needs the arrays X and T (or y)"),
}


@pytest.mark.parametrize("name", NPZ_CASES)
def test_bad_npz_is_one_line(name, programs, tmp_path, capsys):
    content, reason = NPZ_CASES[name]
    path = tmp_path / name
    path.write_bytes(content)
    out = run(command(IRIS, "numpy", programs), "train", path, "--out", tmp_path / "w")
    assert (out.returncode, out.stderr, out.stdout) == (2, f"error: {path}: {reason}\n", "")
    with pytest.raises(SpecError) as exc:  # the C target's load_data, as `symbackprop train`
        load_c(IRIS).load_data(path)  # uses it: the CLI prints the one line and exits 2
    assert f"error: {exc.value.format()}\n" == f"error: {path}: {reason}\n"
    out = run(command(IRIS, "c", programs), "train", path, "--out", tmp_path / "w")
    assert out.returncode == 2 and out.stderr.startswith(f"error: {path}: ")
    assert out.stderr.count("\n") == 1 and not (tmp_path / "w").exists()


def test_good_npz_is_read(tmp_path):
    X, y = np.arange(12.0).reshape(3, 4), np.array([0.0, 2, 1])
    np.savez_compressed(tmp_path / "good.npz", X=X, y=y)
    for module in (M, load_c(IRIS)):
        Xr, Tr = module.load_data(str(tmp_path / "good.npz"))
        assert np.array_equal(Xr, X) and np.array_equal(Tr, np.eye(3)[[0, 2, 1]])


# ---- --lr, and the hyperparameters of a checkpoint (more in test_weight_files) -----------------

BAD_LR = ["nan", "inf", "-1", "0", "1e999", "0x1p-3", "nan(1)", "fast", ""]


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_lr_outside_the_spec_range_is_refused(target, programs, tmp_path):
    cmd, data, out = command(SGD, target, programs), regression_data(tmp_path), tmp_path / "w"
    for lr in BAD_LR:
        result = run(cmd, "train", data, "--lr", lr, "--out", out)
        assert result.returncode == 2, (lr, result.stderr)
        assert result.stderr == "error: --lr must be a finite number > 0\n", (lr, result.stderr)
        assert not out.exists()
    assert run(cmd, "train", data, "--lr", "0.01", "--epochs", "1", "--out", out).returncode == 0


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_usage_errors_are_one_line(target, programs, tmp_path):
    cmd, data = command(SGD, target, programs), regression_data(tmp_path)
    for args in (["--lr", "-inf"], ["--bogus"], ["--epochs", "x"], ["--epochs"]):
        out = run(cmd, "train", data, *args)
        assert out.returncode == 2 and out.stderr.startswith("error: "), (args, out.stderr)
        assert out.stderr.count("\n") == 1 and out.stdout == "", (args, out.stderr)


# spec field of each hyperparameter: (optimizer, field, index in a list field)
SPEC_FIELDS = {
    "eta": ("sgd", "lr", None),
    "lambda": ("sgd", "weight_decay", None),
    "mu": ("sgd", "momentum", None),
    "tau": ("sgd", "dampening", None),
    "beta1": ("adam", "betas", 0),
    "beta2": ("adam", "betas", 1),
    "epsilon": ("adam", "eps", None),
    "alpha": ("rmsprop", "alpha", None),
    "max_norm": ("sgd", "clip_grad_norm", None),
    "clip": ("sgd", "clip_grad_value", None),
}


def spec_accepts(kind: str, field: str, index: int | None, value: float) -> bool:
    optimizer = {"type": kind}
    if index is None:
        optimizer[field] = value
    else:
        optimizer[field] = [0.9, 0.999]
        optimizer[field][index] = value
    data = {"name": "n", "inputs": 1, "layers": [{"units": 1}], "optimizer": optimizer}
    try:
        parse_spec(data)
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(_RANGES))
def test_hyper_ranges_are_the_spec_rules(name):
    """The programs hold --lr and checkpoints to [low, high] of hyper_range: the spec's rules."""
    assert set(SPEC_FIELDS) == set(_RANGES)
    low, high, _, _ = _RANGES[name]
    r = hyper_range(name)
    values = [low - 0.5, low, r["low"], low + 0.25, math.nan, math.inf, -math.inf]
    values += [] if math.isinf(high) else [high - 0.25, r["high"], high, high + 0.5]
    for value in values:
        assert spec_accepts(*SPEC_FIELDS[name], value) == (r["low"] <= value <= r["high"]), value


# ---- a directory where a file is expected --------------------------------------------------------


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_directories_are_called_directories(target, programs, tmp_path):
    cmd, data = command(IRIS, target, programs), tmp_path / "data.csv"
    data.write_bytes(iris_rows())
    weights = tmp_path / "w"
    M.save(M.init_params(), str(weights))
    for name in ("folder.csv", "folder.npy", "folder"):
        folder = tmp_path / name
        folder.mkdir()
        for args in (
            ["train", folder],
            ["predict", weights, folder],
            ["predict", folder, data],
            ["train", data, "--init", folder],
            ["train", data, "--resume", folder],
        ):
            out = run(cmd, *args, *(["--out", tmp_path / "out"] if args[0] == "train" else []))
            assert out.returncode == 2, (args, out.stderr)
            assert out.stderr == f"error: {folder}: Is a directory\n", (args, out.stderr)
            assert not (tmp_path / "out").exists()


def test_cli_train_says_a_directory_is_one(tmp_path, capsys):
    spec = str(ROOT / "examples/iris_softmax.yaml")
    assert main(["train", spec, "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: --data: is a directory\n"
    assert main(["train", spec, "--data", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.csv'}: --data: no such file\n"


# ---- the step count at 2**63 - 1 ---------------------------------------------------------------


def test_step_count_stops_at_int64_max():
    """C's int64_t step count overflowed (undefined; Adam's bias correction became NaN); both
    targets now stop counting at 2**63 - 1, and their steps stay equal and finite."""
    X, T = M.load_data(str(ROOT / "examples/data/iris.csv"))
    results = []
    for module in (M, load_c(IRIS)):
        params = module.init_params(5)
        state = module.init_state(params)
        state["step"] = 2**63 - 2
        for _ in range(3):
            module.step(params, state, X[:10], T[:10])
            assert state["step"] == 2**63 - 1
        assert all(np.isfinite(v).all() for v in params.values())
        results.append(params)
    for name in M.PARAM_SHAPES:
        np.testing.assert_allclose(results[0][name], results[1][name], rtol=1e-12, atol=1e-15)


# ---- training that diverges ----------------------------------------------------------------------


def finite_weights(path: Path) -> bool:
    """Every value of a weight file is finite (lines: header, then name and values by turns)."""
    lines = path.read_text().splitlines()
    return all(math.isfinite(float(v)) for line in lines[2::2] for v in line.split())


def diverged(epoch: int, out: Path) -> str:
    kept = f"the weights of epoch {epoch - 1}" if epoch > 1 else "the initial weights"
    why = "loss nan, weights not finite"
    return f"error: training diverged at epoch {epoch} ({why}); saved {kept} to {out}\n"


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_diverging_program_saves_the_last_finite_weights(target, programs, tmp_path):
    """lr 1000 makes sgd_nesterov's weights overflow in epoch 2: exit 1, one line, the weights and
    checkpoint of epoch 1 (as a run of one epoch writes them), nothing about NaN on stdout."""
    cmd, data = command(SGD, target, programs), regression_data(tmp_path)
    w1, ck1, w, ck = (tmp_path / f for f in ("w1", "ck1", "w", "ck"))
    one = run(cmd, "train", data, "--lr", "1e3", "--epochs", "1", "--out", w1, "--checkpoint", ck1)
    assert one.returncode == 0, one.stderr
    out = run(cmd, "train", data, "--lr", "1e3", "--epochs", "5", "--out", w, "--checkpoint", ck)
    assert (out.returncode, out.stderr) == (1, diverged(2, w)), out.stderr
    assert out.stdout.splitlines()[0].startswith("epoch 1/5") and "nan" not in out.stdout
    assert w.read_bytes() == w1.read_bytes() and ck.read_bytes() == ck1.read_bytes()
    assert finite_weights(w)
    # diverging in the first epoch keeps the initial weights (here: those of --init)
    out = run(cmd, "train", data, "--lr", "1e300", "--init", w1, "--out", w, "--quiet")
    assert (out.returncode, out.stderr, out.stdout) == (1, diverged(1, w), "")
    assert w.read_bytes() == w1.read_bytes()
    # a resumed run names the epochs as a straight one
    out = run(cmd, "train", data, "--lr", "1e3", "--resume", ck1, "--epochs", "5", "--out", w)
    assert (out.returncode, out.stderr) == (1, diverged(2, w))


DIVERGING_SPEC = """
name: diverges
inputs: 3
seed: 7
layers:
  - {units: 5, activation: tanh}
  - {units: 2, activation: identity}
loss: mse
optimizer: {type: sgd, lr: 1000}
train: {epochs: 30, batch_size: 8}
"""


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_cli_train_divergence(target, tmp_path, capsys):
    spec = tmp_path / "diverges.yaml"
    spec.write_text(DIVERGING_SPEC)
    data, w, w_before = regression_data(tmp_path), tmp_path / "w", tmp_path / "w_before"
    args = ["train", str(spec), "--data", str(data), "--target", target, "--quiet"]
    assert main([*args, "--out", str(w)]) == 1
    err = capsys.readouterr().err
    match = re.fullmatch(
        r"error: training diverged at epoch (\d+) \((.*)\); saved (.*) to (.*)\n", err
    )
    assert match, err
    epoch = int(match[1])
    assert 1 < epoch < 30 and match[3] == f"the weights of epoch {epoch - 1}" and match[4] == str(w)
    assert main([*args, "--out", str(w_before), "--epochs", str(epoch - 1)]) == 0
    assert w.read_bytes() == w_before.read_bytes()
    assert finite_weights(w)
