"""The training library on a device: with NAME_NO_FILES, NAME_MAX_ROWS and a fixed NAME_CHUNK it
calls nothing from the heap, stdio, the file system or the clock (nm), and trains exactly as
the NumPy module does, chunk 1 (one sample at a time through the workspace) included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c import load_c
from symbackprop.codegen.numpy import numpy_module

ROOT = Path(__file__).resolve().parents[1]
CC = os.environ.get("CC", "cc")
STRICT = ["-std=c99", "-Os", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-pedantic"]
FORBIDDEN = {"malloc", "calloc", "realloc", "free", "printf", "fprintf", "snprintf", "fopen",
             "fdopen", "fclose", "fwrite", "fread", "time", "clock", "rename", "remove", "open",
             "stat", "strtod"}  # fmt: skip
pytestmark = pytest.mark.skipif(shutil.which(CC) is None and not os.environ.get("CI"),
                                reason="no cc")  # fmt: skip


def folder_of(example: str, dtype: str, out: Path) -> tuple[dict, Path]:
    data = yaml.safe_load((ROOT / f"examples/{example}.yaml").read_text())
    data["dtype"] = dtype
    for name, text in render(symbackprop.parse_spec(data), "c").items():
        (out / name).write_text(text)
    return data, out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("example", ["iris_softmax", "residual_mlp", "two_branch"])
def test_no_heap_no_stdio(example, dtype, tmp_path):
    data, folder = folder_of(example, dtype, tmp_path)
    name, NAME = data["name"], data["name"].upper()
    obj = folder / "lib.o"
    defines = [f"-D{NAME}_NO_FILES", f"-D{NAME}_MAX_ROWS=150", f"-D{NAME}_CHUNK=1"]
    cmd = [CC, *STRICT, *defines, "-c", str(folder / f"{name}.c"), "-o", str(obj)]
    subprocess.run(cmd, check=True)
    nm = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    symbols = {line.split()[-1]: line.split()[-2] for line in nm.split("\n") if line.strip()}
    undefined = {s for s, kind in symbols.items() if kind == "U"}
    assert not undefined & FORBIDDEN, undefined & FORBIDDEN
    assert symbols[f"{name}_train"] == "T" and f"{name}_save" not in symbols


LAYOUTS = [(1, []), (7, []), (16, ["-DIRIS_SOFTMAX_WT_COPY=0"]), (16, ["-DIRIS_SOFTMAX_WT_COPY=1"]),
           (3, ["-DIRIS_SOFTMAX_WT_COPY=1"])]  # fmt: skip


@pytest.mark.parametrize(("chunk", "extra"), LAYOUTS)
def test_static_order_and_small_chunks_train_as_numpy(chunk, extra, tmp_path):
    """train with MAX_ROWS (the static sample order) and CHUNK 1, 3, 7 or 16 (batches of 16 cut
    into chunks), the weights read in place (WT_COPY 0, the default below 8 rows) or through a
    transposed copy: the same weights and losses as the NumPy module, float64 to 1e-12."""
    data, folder = folder_of("iris_softmax", "float64", tmp_path)
    flags = ["-DIRIS_SOFTMAX_MAX_ROWS=40", f"-DIRIS_SOFTMAX_CHUNK={chunk}", *extra]
    c = load_c(folder, cflags=flags)
    py = numpy_module(symbackprop.derive(symbackprop.parse_spec(data)), tmp_path / "py")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 4))
    T = np.eye(3)[rng.integers(0, 3, 40)]
    results = []
    for module in (c, py):
        params = module.init_params()
        history = module.train(params, X, T, epochs=3, batch_size=16, shuffle=True, seed=9)
        results.append((history, params))
    (hc, pc), (hp, pp) = results
    np.testing.assert_allclose(hc, hp, rtol=1e-12)
    for k in pp:
        np.testing.assert_allclose(pc[k], pp[k], rtol=1e-12, atol=1e-14)
    params = c.init_params()
    with pytest.raises(ValueError, match="n=41"):  # more rows than MAX_ROWS: refused
        c.train(params, np.zeros((41, 4)), np.zeros((41, 3)), epochs=1, batch_size=16)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_no_shuffle_trains_in_file_order_as_numpy(dtype, tmp_path):
    """NAME_NO_SHUFFLE: no sample order and no copies of shuffled rows; train in file order
    equals the NumPy module's (f64 1e-12, f32 1e-5), and train with shuffle is refused."""
    data, folder = folder_of("iris_softmax", dtype, tmp_path)
    flags = ["-DIRIS_SOFTMAX_NO_SHUFFLE", "-DIRIS_SOFTMAX_CHUNK=16"]
    c = load_c(folder, cflags=flags)
    py = numpy_module(symbackprop.derive(symbackprop.parse_spec(data)), tmp_path / "py")
    rng = np.random.default_rng(6)
    X = rng.normal(size=(37, 4))
    T = np.eye(3)[rng.integers(0, 3, 37)]
    results = []
    for module in (c, py):
        params = module.init_params()
        history = module.train(params, X, T, epochs=3, batch_size=16, shuffle=False, seed=9)
        results.append((history, params))
    (hc, pc), (hp, pp) = results
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(hc, hp, rtol=tol)
    for k in pp:
        np.testing.assert_allclose(pc[k], pp[k], rtol=tol, atol=tol)
    with pytest.raises(ValueError):
        c.train(c.init_params(), X, T, epochs=1, batch_size=16, shuffle=True, seed=9)


@pytest.mark.parametrize("shuffle", [False, True])
def test_one_chunk_sgd_trains_as_numpy_without_a_gradient_buffer(shuffle, tmp_path):
    """NAME_ONE_CHUNK with SGD (weight decay: a linear rule p <- beta p + alpha g) at chunk 16:
    the weight matrices updated inside their gradient products, the biases (one shared) from
    the workspace's bias gradients; the same weights and losses as NumPy (f64 1e-12); a batch
    larger than the chunk is refused; loss_and_grad still fills the caller's grads."""
    data = {"name": "one", "inputs": 6, "seed": 4, "layers": [
        {"units": 5, "activation": "relu"},
        {"units": 4, "activation": "tanh", "bias": {"shape": "shared"}},
        {"units": 3, "activation": "softmax"}], "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.1, "weight_decay": 0.01}}  # fmt: skip
    for name, text in render(symbackprop.parse_spec(data), "c").items():
        (tmp_path / name).write_text(text)
    c = load_c(tmp_path, cflags=["-DONE_ONE_CHUNK", "-DONE_CHUNK=16"])
    py = numpy_module(symbackprop.derive(symbackprop.parse_spec(data)), tmp_path / "py")
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 6))
    T = np.eye(3)[rng.integers(0, 3, 40)]
    results = []
    for module in (c, py):
        params = module.init_params()
        history = module.train(params, X, T, epochs=3, batch_size=16, shuffle=shuffle, seed=2)
        grads = module.loss_and_grad(params, X[:16], T[:16])[1]
        results.append((history, params, grads))
    (hc, pc, gc), (hp, pp, gp) = results
    np.testing.assert_allclose(hc, hp, rtol=1e-12)
    for k in pp:
        np.testing.assert_allclose(pc[k], pp[k], rtol=1e-12, atol=1e-14)
    for k in gp:
        np.testing.assert_allclose(gc[k], gp[k], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError):
        c.train(c.init_params(), X, T, epochs=1, batch_size=17)
