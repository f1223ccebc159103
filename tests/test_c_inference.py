"""The C inference export (`generate --target c --inference [--weights FILE]`): equal to the NumPy
module's forward with the same weights (float64 1e-12, float32 1e-5), strict builds
(-Wdouble-promotion -pedantic), no heap and no stdio in the object, the weights read-only, and
bad command lines refused with nothing written.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import symbackprop
from symbackprop.cli import main
from symbackprop.codegen.c.inference import inference_files
from symbackprop.codegen.numpy import numpy_module

ROOT = Path(__file__).resolve().parents[1]
# the examples and the normalization nets (evaluation mode: running statistics, no dropout)
EXAMPLES = sorted(p for p in [*(ROOT / "examples").glob("*.yaml"),
                              *(ROOT / "examples/normalization").glob("*.yaml")]
                  if "sample" not in p.name)  # fmt: skip
CC = os.environ.get("CC", "cc")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-pedantic"]
FORBIDDEN = {"malloc", "calloc", "realloc", "free", "printf", "fprintf", "puts", "fopen",
             "fwrite", "fread", "time", "rename"}  # fmt: skip
pytestmark = pytest.mark.skipif(shutil.which(CC) is None and not os.environ.get("CI"),
                                reason="no cc")  # fmt: skip


def spec_data(path: Path, dtype: str) -> dict:
    data = yaml.safe_load(path.read_text())
    data["dtype"] = dtype
    return data


def trained(module, steps: int = 3):
    """Weights a few optimizer steps away from the initial ones (so a test sees the file's)."""
    rng = np.random.default_rng(1)
    params, state = module.init_params(), None
    state = module.init_state(params)
    X = rng.normal(size=(16, module.INPUTS)).astype(module.DTYPE)
    T = np.eye(module.OUTPUTS, dtype=module.DTYPE)[rng.integers(0, module.OUTPUTS, 16)]
    for _ in range(steps):
        module.step(params, state, X, T)
    return params


def compile_shared(folder: Path, name: str) -> ctypes.CDLL:
    src = folder / f"{name}_infer.c"
    lib = folder / f"lib{name}_infer.so"
    cmd = [CC, *STRICT, "-O2", "-fPIC", "-shared", str(src), "-o", str(lib), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(lib))


def predict(lib, name: str, X: np.ndarray, outputs: int) -> np.ndarray:
    fn = getattr(lib, f"{name}_predict")
    fn.restype = None
    Y = np.zeros((len(X), outputs), dtype=X.dtype)
    for i, x in enumerate(X):
        row, y = np.ascontiguousarray(x), Y[i]
        fn(row.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p))
    return Y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_export_equals_numpy_forward(example, dtype, tmp_path):
    """Trained weights through a weight file and the command line: predict equals forward."""
    data = spec_data(example, dtype)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    module = numpy_module(symbackprop.derive(symbackprop.parse_spec(data)), tmp_path / "py")
    params = trained(module)
    module.save(params, str(tmp_path / "w.txt"))
    out = tmp_path / "c"
    args = ["generate", str(spec_file), "--target", "c", "--inference", "--weights"]
    assert main([*args, str(tmp_path / "w.txt"), "-o", str(out)]) == 0
    name = data["name"]
    assert sorted(p.name for p in out.iterdir()) == [f"{name}_infer.c", f"{name}_infer.h"]
    lib = compile_shared(out, name)
    X = np.random.default_rng(2).normal(size=(12, module.INPUTS)).astype(module.DTYPE)
    got = predict(lib, name, X, module.OUTPUTS)
    want = module.forward(params, X)
    assert got.dtype == want.dtype == np.dtype(dtype)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))
    # the trained weights are in the file, not the initial ones
    assert not np.allclose(module.forward(module.init_params(), X), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_no_heap_no_stdio_and_const_weights(dtype, tmp_path):
    """The object defines predict and predict_with, keeps the weights read-only, and calls
    nothing from the heap, stdio or the clock."""
    data = spec_data(ROOT / "examples/iris_softmax.yaml", dtype)
    for name, text in inference_files(symbackprop.derive(symbackprop.parse_spec(data))).items():
        (tmp_path / name).write_text(text)
    obj = tmp_path / "iris_softmax_infer.o"
    src = tmp_path / "iris_softmax_infer.c"
    subprocess.run([CC, *STRICT, "-Os", "-c", str(src), "-o", str(obj)], check=True)
    symbols = {}
    for line in subprocess.run(["nm", str(obj)], capture_output=True, text=True).stdout.split("\n"):
        parts = line.split()
        if len(parts) >= 2:
            symbols[parts[-1]] = parts[-2]
    assert symbols["iris_softmax_predict"] == "T" and symbols["iris_softmax_predict_with"] == "T"
    assert symbols["WEIGHTS"] in ("r", "R")  # read-only data: flash on a microcontroller
    undefined = {s for s, t in symbols.items() if t == "U"}
    assert not undefined & FORBIDDEN, undefined
    expf = "expf" if dtype == "float32" else "exp"
    assert undefined <= {expf, "memcpy"}, undefined


def test_initial_weights_and_determinism(tmp_path):
    """Without --weights the built-in weights are the spec's initial ones (predict equals
    forward at init_params); the same spec gives byte-identical files."""
    d = symbackprop.derive(symbackprop.load_spec(ROOT / "examples/residual_mlp.yaml"))
    files = inference_files(d)
    assert files == inference_files(d)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    module = numpy_module(d, tmp_path / "py")
    lib = compile_shared(tmp_path, "residual_mlp")
    X = np.random.default_rng(3).normal(size=(5, module.INPUTS))
    got = predict(lib, "residual_mlp", X, module.OUTPUTS)
    np.testing.assert_allclose(got, module.forward(module.init_params(), X), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "c", "--weights", "w.txt"], "--weights: goes with --inference"),
        (["--target", "numpy", "--inference"], "no inference export (use --target c)"),
        (["--target", "c", "--inference", "--weights", "missing.txt"], "missing.txt: No such file"),
        (["--target", "c", "--inference", "--weights", "bad.txt"], "bad.txt: missing parameter W1"),
    ],
)
def test_bad_command_lines(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.txt").write_text("")
    (tmp_path / "bad.txt").write_text("# nothing\n")
    spec = str(ROOT / "examples/iris_softmax.yaml")
    assert main(["generate", spec, *extra, "-o", "out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()
