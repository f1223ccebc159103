"""Issue 6, item 4: the generated training programs write weights and checkpoints atomically and
resume: 4 epochs straight equal 2 epochs, a checkpoint, and a resumed run to 4, bit for bit, in
the NumPy module and in the C program of every example."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symbackprop.codegen.c.build import build_program

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.name for p in (ROOT / "generated").iterdir() if (p / f"{p.name}.py").exists())
HAS_CC = shutil.which(os.environ.get("CC", "cc")) is not None


def module(name: str):
    spec = importlib.util.spec_from_file_location(
        f"ckpt_{name}", ROOT / f"generated/{name}/{name}.py"
    )
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """name -> the compiled C program, built on first use."""
    old = os.environ.get("SYMBACKPROP_CACHE")
    os.environ["SYMBACKPROP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if not HAS_CC:
            pytest.skip("no cc")
        if name not in built:
            built[name] = build_program(ROOT / "generated" / name)
        return built[name]

    yield get
    if old is None:
        os.environ.pop("SYMBACKPROP_CACHE")
    else:
        os.environ["SYMBACKPROP_CACHE"] = old


def command(name: str, target: str, programs) -> list[str]:
    if target == "c":
        return [str(programs(name))]
    return [sys.executable, str(ROOT / f"generated/{name}/{name}.py")]


def write_data(name: str, folder: Path, rows: int = 23) -> Path:
    """Random inputs and fitting targets (labels for cross-entropy, 0/1 for BCE) as .csv."""
    m = module(name)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(rows, m.INPUTS))
    if m.LOSS == "cross_entropy":
        T = rng.integers(0, m.OUTPUTS, size=(rows, 1)).astype(float)
    elif m.LOSS == "binary_cross_entropy":
        T = rng.integers(0, 2, size=(rows, m.OUTPUTS)).astype(float)
    else:
        T = rng.normal(size=(rows, m.OUTPUTS))
    path = folder / "data.csv"
    np.savetxt(path, np.hstack([X, T]), delimiter=",", fmt="%.17g")
    return path


def run(cmd: list[str], *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cmd, "train", *map(str, args), "--batch-size", "5", "--seed", "11", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("target", ["numpy", "c"])
@pytest.mark.parametrize("name", NAMES)
def test_resume_is_bit_for_bit(name, target, programs, tmp_path):
    cmd = command(name, target, programs)
    data = write_data(name, tmp_path)
    a, b, b2, ck, ck4 = (tmp_path / f for f in ("a.w", "b.w", "b2.w", "ck", "ck4"))
    out = run(cmd, data, "--epochs", "4", "--out", a, "--checkpoint", ck4)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    out = run(cmd, data, "--epochs", "2", "--out", b2, "--checkpoint", ck)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert ck.read_text().splitlines()[1] == "epoch 2"
    ck2 = ck.read_bytes()
    out = run(cmd, data, "--epochs", "4", "--resume", ck, "--checkpoint", ck, "--out", b)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert a.read_bytes() == b.read_bytes()
    assert ck4.read_bytes() == ck.read_bytes()
    assert a.read_bytes() != b2.read_bytes()
    ck.write_bytes(ck2)  # resuming a finished run only writes its weights
    out = run(cmd, data, "--epochs", "2", "--resume", ck, "--out", b)
    assert out.returncode == 0 and b.read_bytes() == b2.read_bytes(), out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.w",
        "b.w",
        "b2.w",
        "ck",
        "ck4",
        "data.csv",
    ]


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_checkpoint_errors_are_one_line(target, programs, tmp_path):
    cmd = command("iris_softmax", target, programs)
    data = write_data("iris_softmax", tmp_path)
    weights, out_file = tmp_path / "w", tmp_path / "out.w"
    assert run(cmd, data, "--epochs", "1", "--out", weights).returncode == 0
    (tmp_path / "cut").write_text(
        "# symbackprop checkpoint iris_softmax float64\nepoch 1\nseed 1\n"
    )
    (tmp_path / "minus").write_text("epoch -1\n")
    cases = [
        ["--resume", weights],  # a weights file is no checkpoint
        ["--resume", tmp_path / "cut"],
        ["--resume", tmp_path / "minus"],
        ["--resume", tmp_path / "missing"],
        ["--resume", weights, "--init", weights],
        ["--init", tmp_path / "missing"],
        ["--init", data],
        ["--checkpoint", tmp_path / "no/such/dir/ck"],
    ]
    for extra in cases:
        out = run(cmd, data, "--epochs", "2", "--out", out_file, *extra)
        assert out.returncode == 2, (extra, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, (extra, out.stderr)
        assert "Traceback" not in out.stderr and not out_file.exists(), extra
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_targets_resume_each_others_checkpoints(programs, tmp_path):
    name = "iris_softmax"
    data = write_data(name, tmp_path)
    np_cmd, c_cmd = command(name, "numpy", programs), command(name, "c", programs)
    for first, second in ((np_cmd, c_cmd), (c_cmd, np_cmd)):
        assert (
            run(
                first,
                data,
                "--epochs",
                "2",
                "--out",
                tmp_path / "x",
                "--checkpoint",
                tmp_path / "ck",
            ).returncode
            == 0
        )
        out = run(
            second, data, "--epochs", "4", "--resume", tmp_path / "ck", "--out", tmp_path / "r"
        )
        assert out.returncode == 0, out.stderr
        assert run(first, data, "--epochs", "4", "--out", tmp_path / "s").returncode == 0
        m = module(name)
        resumed, straight = m.load(str(tmp_path / "r")), m.load(str(tmp_path / "s"))
        for key in straight:
            np.testing.assert_allclose(resumed[key], straight[key], rtol=1e-9, atol=1e-12)


def test_numpy_checkpoint_api(tmp_path):
    m = module("sgd_nesterov")
    rng = np.random.default_rng(3)
    X, T = rng.normal(size=(17, m.INPUTS)), rng.normal(size=(17, m.OUTPUTS))
    params = m.init_params(4)
    straight = m.train(params, X, T, 3, 4, seed=2)
    again = m.init_params(4)
    state = m.init_state(again)
    first = m.train(again, X, T, 1, 4, seed=2, state=state)
    m.save_checkpoint(again, state, 1, 2, str(tmp_path / "ck"))
    p2, s2, epoch, seed, hyper = m.load_checkpoint(str(tmp_path / "ck"))
    assert (epoch, seed, hyper, s2["step"]) == (1, 2, m.HYPER, state["step"])
    rest = m.train(p2, X, T, 2, 4, seed=seed, state=s2, first_epoch=epoch)
    assert first + rest == straight
    for key in params:
        assert np.array_equal(params[key], p2[key])


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_temporary_file_is_private_to_the_run(target, programs, tmp_path):
    """Weights and checkpoints go through a temporary file of the run's own (not a fixed
    OUT.tmp another run could be writing): with a directory in the way at OUT.tmp, both save."""
    name = "iris_softmax"
    data, out, ck = write_data(name, tmp_path), tmp_path / "w", tmp_path / "ck"
    (tmp_path / "w.tmp").mkdir()
    (tmp_path / "ck.tmp").mkdir()
    cmd = command(name, target, programs)
    result = run(cmd, data, "--epochs", "2", "--out", out, "--checkpoint", ck)
    assert result.returncode == 0, result.stderr
    assert set(module(name).load(out)) == set(module(name).PARAM_SHAPES)
    assert ck.read_text().startswith(f"# symbackprop checkpoint {name} ")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [data.name, "w", "ck", "w.tmp", "ck.tmp"]
    )
