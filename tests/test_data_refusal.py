"""Issue 6, item 5: both targets' training commands refuse bad data files.

Each bad file must give exit status 2, exactly one stderr line `error: ...` naming the file, no
traceback and no weights file, from the NumPy module and from the C program alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symbackprop.codegen.c.build import build_program

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "generated/iris_softmax"  # 4 inputs, 3 outputs, cross-entropy
XOR = ROOT / "generated/xor"  # 2 inputs, 1 output, binary cross-entropy
HAS_CC = shutil.which(os.environ.get("CC", "cc")) is not None

# name -> bytes, for iris (4 inputs, then one label column or 3 target columns)
IRIS_BAD = {
    "missing.csv": None,
    "empty.csv": b"",
    "blank.csv": b"\n  \n\t\n",
    "header_only.csv": b"a,b,c,d,label\n",
    "ragged.csv": b"1,2,3,4,0\n1,2,3\n",
    "ragged_long.csv": b"1,2,3,4,0\n1,2,3,4,0,1\n",
    "too_few_columns.csv": b"1,2,3\n",
    "two_target_columns.csv": b"1,2,3,4,0,1\n",
    "four_target_columns.csv": b"1,2,3,4,0,1,0,0\n",
    "text.csv": b"1,2,3,4,0\n1,2,x,4,0\n",
    "text_label.csv": b"1,2,3,4,setosa\n",
    "empty_cell.csv": b"1,2,3,4,0\n1,,3,4,0\n",
    "underscore.csv": b"1,2,3,4,0\n1_0,2,3,4,0\n",
    "nan.csv": b"1,2,3,4,0\nnan,2,3,4,1\n",
    "inf.csv": b"1,2,3,4,0\n1,inf,3,4,1\n",
    "minus_inf_label.csv": b"1,2,3,4,-inf\n",
    "nan_label.csv": b"1,2,3,4,nan\n",
    "label_high.csv": b"1,2,3,4,0\n1,2,3,4,3\n",
    "label_negative.csv": b"1,2,3,4,-1\n",
    "label_fraction.csv": b"1,2,3,4,0.5\n",
    "label_huge.csv": b"1,2,3,4,1e300\n",
    "soft_negative.csv": b"1,2,3,4,1.5,-0.5,0\n",
    "soft_sum_low.csv": b"1,2,3,4,0.2,0.3,0.4\n",
    "soft_sum_high.csv": b"1,2,3,4,0.2,0.3,0.50001\n",
    "soft_nan.csv": b"1,2,3,4,0.2,nan,0.5\n",
    "binary.csv": bytes(range(256)) * 4,
    "huge_cell.csv": b"1" * 5000 + b",2,3,4,0\n",
    "three_d.npy": None,
    "nan.npy": None,
    "soft.npy": None,
}
XOR_BAD = {
    "empty.csv": b"",
    "text.csv": b"0,0,0\n0,1,yes\n",
    "nan_target.csv": b"0,0,0\n0,1,nan\n",
    "target_high.csv": b"0,0,0\n0,1,1.5\n",  # binary cross-entropy: targets in [0, 1]
    "target_negative.csv": b"0,0,-0.25\n",
    "too_many.csv": b"0,0,0,1\n",
    "too_few.csv": b"0,0\n",
}


def write(folder: Path, files: dict) -> list[Path]:
    paths = []
    for name, content in files.items():
        path = folder / name
        paths.append(path)
        if content is not None:
            path.write_bytes(content)
    if "three_d.npy" in files:
        np.save(folder / "three_d.npy", np.zeros((2, 3, 5)))
        np.save(folder / "nan.npy", np.array([[1, 2, 3, 4, 0], [1, 2, np.nan, 4, 1.0]]))
        np.save(folder / "soft.npy", np.array([[1, 2, 3, 4, 0.5, 0.5, 0.5]]))
    return paths


def program(folder: Path, tmp_path_factory) -> Path:
    if not HAS_CC:
        pytest.skip("no cc")
    old = os.environ.get("SYMBACKPROP_CACHE")
    os.environ["SYMBACKPROP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return build_program(folder)
    finally:
        if old is None:
            os.environ.pop("SYMBACKPROP_CACHE")
        else:
            os.environ["SYMBACKPROP_CACHE"] = old


@pytest.fixture(scope="module")
def iris_program(tmp_path_factory) -> Path:
    return program(IRIS, tmp_path_factory)


@pytest.fixture(scope="module")
def xor_program(tmp_path_factory) -> Path:
    return program(XOR, tmp_path_factory)


def numpy_command(folder: Path) -> list[str]:
    return [sys.executable, str(folder / f"{folder.name}.py")]


def assert_refused(command: list, path: Path, weights: Path):
    out = subprocess.run(
        [*map(str, command), "train", str(path), "--out", str(weights), "--epochs", "1"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    assert out.returncode == 2, (path.name, out.stdout, out.stderr)
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, (path.name, out.stderr)
    assert str(path) in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "Warning" not in out.stderr, out.stderr
    assert out.stdout == "", out.stdout
    assert not weights.exists(), path.name


@pytest.mark.parametrize("name", IRIS_BAD)
def test_numpy_module_refuses_bad_data(name, tmp_path):
    path = write(tmp_path, IRIS_BAD)[list(IRIS_BAD).index(name)]
    assert_refused(numpy_command(IRIS), path, tmp_path / "w")


@pytest.mark.parametrize("name", IRIS_BAD)
def test_c_program_refuses_bad_data(name, iris_program, tmp_path):
    path = write(tmp_path, IRIS_BAD)[list(IRIS_BAD).index(name)]
    assert_refused([iris_program], path, tmp_path / "w")


@pytest.mark.parametrize("name", XOR_BAD)
def test_numpy_module_refuses_bad_regression_data(name, tmp_path):
    path = write(tmp_path, XOR_BAD)[list(XOR_BAD).index(name)]
    assert_refused(numpy_command(XOR), path, tmp_path / "w")


@pytest.mark.parametrize("name", XOR_BAD)
def test_c_program_refuses_bad_regression_data(name, xor_program, tmp_path):
    path = write(tmp_path, XOR_BAD)[list(XOR_BAD).index(name)]
    assert_refused([xor_program], path, tmp_path / "w")


def test_numpy_module_refuses_bad_npz(tmp_path):
    good = np.zeros((3, 4))
    cases = {
        "no_x.npz": {"T": np.eye(3)},
        "nan.npz": {"X": np.full((3, 4), np.nan), "y": np.arange(3.0)},
        "labels.npz": {"X": good, "y": np.array([0.0, 1, 3])},
        "soft.npz": {"X": good, "T": np.full((3, 3), 0.5)},
        "rows.npz": {"X": good, "y": np.arange(2.0)},
        "empty.npz": {"X": np.zeros((0, 4)), "y": np.zeros(0)},
        "text.npz": {"X": np.array([["a"] * 4] * 3), "y": np.arange(3.0)},
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        assert_refused(numpy_command(IRIS), tmp_path / name, tmp_path / "w")


def run_train(command: list, path: Path, weights: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*map(str, command), "train", str(path), "--out", str(weights), "--epochs", "2", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_good_soft_targets_and_labels_accepted(target, request, tmp_path):
    command = (
        numpy_command(IRIS) if target == "numpy" else [request.getfixturevalue("iris_program")]
    )
    good = {
        "soft.csv": b"x1,x2,x3,x4,a,b,c\n1,2,3,4,0.2,0.3,0.5\n4,3,2,1,0,0,1\n"
        b"1,1,1,1,0.1,0.2,0.7000001\n",
        "labels.csv": b"1,2,3,4,0\n4,3,2,1,2\n\n1,1,1,1,1\n",
    }
    for path in write(tmp_path, good):
        out = run_train(command, path, tmp_path / "w")
        assert out.returncode == 0 and out.stderr == "", (path.name, out.stderr)
        assert (tmp_path / "w").exists()
        (tmp_path / "w").unlink()
    np.save(tmp_path / "good.npy", np.array([[1, 2, 3, 4, 0.0], [4, 3, 2, 1, 2]]))
    out = run_train(command, tmp_path / "good.npy", tmp_path / "w")
    assert out.returncode == 0 and out.stderr == "", out.stderr


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_predict_refuses_bad_inputs(target, request, tmp_path):
    command = (
        numpy_command(IRIS) if target == "numpy" else [request.getfixturevalue("iris_program")]
    )
    weights = tmp_path / "w"
    assert run_train(command, IRIS.parents[1] / "examples/data/iris.csv", weights).returncode == 0
    for name, content in {
        "text.csv": b"1,2,x,4\n",
        "nan.csv": b"1,nan,3,4\n",
        "few.csv": b"1,2\n",
    }.items():
        (tmp_path / name).write_bytes(content)
        out = subprocess.run(
            [*map(str, command), "predict", str(weights), str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and out.stderr.startswith("error: "), (name, out.stderr)
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
