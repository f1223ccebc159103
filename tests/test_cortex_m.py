"""The C target on a Cortex-M4F: the training library and the inference export build with
arm-none-eabi-gcc (-Os, hard float, -Wall -Wextra -Werror -Wdouble-promotion), and training steps
of iris 4-8-3 (float32, Adam) run on QEMU's mps2-an386 board equal the host's float32 run (the
NumPy module): the initial weights bit for bit, the losses and the weights after the steps to 1e-5;
and the inference export's predictions on the board equal the NumPy module's forward to 1e-5. The
program links train (NET_MAX_ROWS) and the library without file functions (NET_NO_FILES): the
board's linker script has no heap, so a malloc would not even link, and nm shows no stdio.

CI installs the cross compiler and QEMU (.ci/run): there this test fails rather than skips.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c import cortex_m as cm
from symbackprop.codegen.c.inference import inference_files
from symbackprop.codegen.numpy import numpy_module

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests/cortex_m/train_steps.c"
WARN = ("-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-pedantic")
ROWS, STEPS = 16, 6
HEAP_AND_STDIO = {"malloc", "_malloc_r", "free", "_free_r", "calloc", "realloc", "_sbrk", "printf",
                  "fopen", "fwrite", "_write", "time", "clock"}  # fmt: skip
pytestmark = pytest.mark.skipif(
    not cm.available() and not os.environ.get("CI"),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed (CI installs them)",
)

SPEC = {
    "name": "net",
    "dtype": "float32",
    "inputs": 4,
    "seed": 42,
    "layers": [
        {"units": 8, "activation": "relu", "weight": {"init": "he_uniform"}},
        {"units": 3, "activation": "softmax", "weight": {"init": "xavier_uniform"}},
    ],
    "loss": {"type": "cross_entropy"},
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 1, "batch_size": ROWS},
}


def iris_batch() -> tuple[np.ndarray, np.ndarray]:
    """ROWS iris flowers from every species, one-hot targets, float32."""
    table = np.loadtxt(ROOT / "examples/data/iris.csv", delimiter=",", skiprows=1)
    rows = table[np.random.default_rng(0).permutation(len(table))[:ROWS]]
    return rows[:, :4].astype(np.float32), np.eye(3, dtype=np.float32)[rows[:, 4].astype(int)]


def c_array(name: str, a: np.ndarray) -> str:
    """A static const float array, each number exactly (9 significant digits)."""
    rows = ", ".join("{" + ", ".join(f"{float(v):.8e}F" for v in row) + "}" for row in a)
    return f"static const float {name}[{a.shape[0]}][{a.shape[1]}] = {{{rows}}};\n"


def floats(words: list[str]) -> np.ndarray:
    return np.array([struct.unpack("<f", bytes.fromhex(w)[::-1])[0] for w in words], np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cortex-m")
    d = symbackprop.derive(symbackprop.parse_spec(SPEC))
    for name, text in {**render(d, "c"), **inference_files(d)}.items():
        (out / name).write_text(text)
    return out


@pytest.mark.parametrize(
    ("source", "levels"), [("net.c", ["-O2"]), ("net_infer.c", ["-Os", "-O2"])]
)
def test_builds_for_cortex_m4(folder, source, levels):
    """The library (with a fixed chunk; -O2 once warned in mac_rows about an index past a 32-bit
    address space; the board test builds it at -Os) and the inference export, warning-free."""
    for level in levels:
        obj = folder / f"{source}{level}.o"
        cm.compile_object(folder / source, obj, (*WARN, level, "-DNET_CHUNK=1"))
        assert cm.text_bytes(obj) > 0


def test_training_on_the_board_equals_the_host(folder):
    X, T = iris_batch()
    (folder / "data.h").write_text(
        f"#define ROWS {ROWS}\n#define STEPS {STEPS}\n" + c_array("X", X) + c_array("T", T)
    )
    flags = (f"-I{folder}", f"-DNET_CHUNK={ROWS}", "-DNET_NO_FILES", "-DNET_MAX_ROWS=150",
             "-Wall", "-Wextra", "-Werror")  # fmt: skip
    image = cm.build_firmware([folder / "net.c", folder / "net_infer.c", DRIVER],
                              folder / "train.elf", flags)  # fmt: skip
    nm = subprocess.run(["arm-none-eabi-nm", str(image)], capture_output=True, text=True)
    linked = {line.split()[-1] for line in nm.stdout.split("\n") if line.strip()}
    assert "net_step" in linked and not linked & HEAP_AND_STDIO, linked & HEAP_AND_STDIO
    lines = cm.run(image, timeout=60).strip().split("\n")
    first, losses, last = (line.split() for line in lines[-3 - ROWS : -ROWS])
    predictions = np.array([floats(line.split()) for line in lines[-ROWS:]])

    host = numpy_module(symbackprop.derive(symbackprop.parse_spec(SPEC)), folder / "host")
    params = host.init_params()
    flat = np.concatenate([v.ravel() for v in params.values()])
    np.testing.assert_array_equal(floats(first), flat)  # the portable PRNG, bit for bit
    state = host.init_state(params)
    want = [host.step(params, state, X, T) for _ in range(STEPS)]
    got = [struct.unpack("<d", bytes.fromhex(w)[::-1])[0] for w in losses]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert want[-1] < want[0]  # it learns
    flat = np.concatenate([v.ravel() for v in params.values()])
    np.testing.assert_allclose(floats(last), flat, rtol=1e-5, atol=1e-6)
    # the inference export on the board, with its built-in (initial) weights
    want = host.forward(host.init_params(), X)
    np.testing.assert_allclose(predictions, want, rtol=1e-5, atol=1e-6)
