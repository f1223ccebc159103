"""`symbackprop footprint` (CONTRACT §9): byte counts equal sizeof of the generated structs (a
compiled probe, read back with nm -S: for the host and, when installed, for the Cortex-M4 with
its 4-byte pointers), multiply-adds equal a count by hand, frozen layers cost no gradient, state
or backward work, and the command line prints text or JSON and refuses bad input.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import symbackprop
from symbackprop.cli import main
from symbackprop.codegen import lower, render
from symbackprop.codegen.c import cortex_m as cm
from symbackprop.codegen.c.footprint import macs, memory

ROOT = Path(__file__).resolve().parents[1]
CC = os.environ.get("CC", "cc")
pytestmark = pytest.mark.skipif(shutil.which(CC) is None and not os.environ.get("CI"),
                                reason="no cc")  # fmt: skip
IRIS = yaml.safe_load((ROOT / "examples/iris_softmax.yaml").read_text())
KEYS = ["params_bytes", "grads_bytes", "state_bytes", "workspace_bytes"]
PROBE = """#include "{name}.h"
{name}_params probe_params;
{name}_grads probe_grads;
{name}_state probe_state;
{name}_workspace probe_workspace;
"""


def frozen(layer: int) -> dict:
    data = copy.deepcopy(IRIS)
    data["name"] = f"frozen{layer}"
    data["layers"][layer - 1]["weight"]["trainable"] = False
    data["layers"][layer - 1]["bias"]["trainable"] = False
    return data


def example(stem: str, dtype: str) -> dict:
    data = yaml.safe_load((ROOT / f"examples/{stem}.yaml").read_text())
    data["dtype"] = dtype
    return data


def sizes(data: dict, batch: int, folder: Path, cc: list[str]) -> list[int]:
    """sizeof params, grads, state, workspace at NAME_CHUNK=batch, from the compiler."""
    name = data["name"]
    for fname, text in render(symbackprop.parse_spec(data), "c").items():
        (folder / fname).write_text(text)
    (folder / "probe.c").write_text(PROBE.format(name=name))
    obj = folder / "probe.o"
    flags = ["-std=c99", "-fno-common", f"-D{name.upper()}_CHUNK={batch}"]
    subprocess.run([*cc, *flags, "-c", str(folder / "probe.c"), "-o", str(obj)], check=True)
    nm = "arm-none-eabi-nm" if "arm" in cc[0] else "nm"
    out = subprocess.run([nm, "-S", str(obj)], capture_output=True, text=True, check=True).stdout
    found = {line.split()[-1]: int(line.split()[1], 16) for line in out.split("\n") if line}
    return [found[f"probe_{k}"] for k in ("params", "grads", "state", "workspace")]


SPECS = [
    ("iris64", example("iris_softmax", "float64")),
    ("iris32", example("iris_softmax", "float32")),
    ("mazur", example("mazur", "float64")),
    ("residual32", example("residual_mlp", "float32")),
    ("two_branch", example("two_branch", "float64")),
    ("gelu32", example("adam_gelu", "float32")),
    ("frozen1", frozen(1)),
]


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize(("label", "data"), SPECS, ids=[s[0] for s in SPECS])
def test_bytes_equal_sizeof(label, data, batch, tmp_path):
    program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
    mem = memory(program, batch, pointer=8)
    assert [mem[k] for k in KEYS] == sizes(data, batch, tmp_path, [CC])
    if shutil.which(cm.CC) or os.environ.get("CI"):  # CI installs the cross compiler
        mem = memory(program, batch, pointer=4)
        cc = [cm.CC, *cm.ARCH]
        assert [mem[k] for k in KEYS] == sizes(data, batch, tmp_path, cc)


def test_macs_by_hand_and_frozen_layers():
    """iris 4-8-3: forward 4*8 + 8*3 = 56; a step adds dW2 (24), the delta through W2 (24) and
    dW1 (32). Layer 1 frozen: no dW1 and no delta through W2 (nothing below needs it); layer 2
    frozen: the delta still goes through W2 to reach W1."""

    def count(data):
        return macs(lower(symbackprop.derive(symbackprop.parse_spec(data))))

    assert count(IRIS) == {"forward_macs": 56, "train_macs": 56 + 24 + 24 + 32}
    assert count(frozen(1)) == {"forward_macs": 56, "train_macs": 56 + 24}
    assert count(frozen(2)) == {"forward_macs": 56, "train_macs": 56 + 24 + 32}
    mem, frozen_mem = (memory(lower(symbackprop.derive(symbackprop.parse_spec(d)))) for d in
                       (IRIS, frozen(1)))  # fmt: skip
    assert frozen_mem["params_bytes"] == mem["params_bytes"] == 8 * (32 + 8 + 24 + 3)
    assert mem["grads_bytes"] == 8 * (32 + 8 + 24 + 3) and frozen_mem["grads_bytes"] == 8 * 27
    # Adam: lr, betas, eps, weight decay (as doubles), the step, m and v
    assert frozen_mem["state_bytes"] == 8 * len(lower(symbackprop.derive(
        symbackprop.parse_spec(IRIS))).update.hyper) + 8 + 2 * 8 * 27  # fmt: skip


def test_macs_of_dense_layers_on_sequences_and_uncounted_kinds():
    """A dense layer on each row of a sequence [T, F] multiplies once a row; kinds whose products
    are not counted yet give None rather than a count without them."""

    def count(data):
        return macs(lower(symbackprop.derive(symbackprop.parse_spec(data))))

    seq = {"name": "seq", "inputs": [3, 4], "layers": [{"units": 5}, {"units": 2}]}
    # forward 3·(4·5) + 3·(5·2); backward dW2, dW1 (3·10 + 3·20) and dW2ᵀδ2 (3·10)
    assert count(seq) == {"forward_macs": 90, "train_macs": 90 + 90 + 30}
    rnn = {"name": "seq", "inputs": [3, 4], "layers": [{"type": "rnn", "units": 5}, {"units": 2}]}
    assert count(rnn) == {"forward_macs": None, "train_macs": None}


def test_command_line(tmp_path, capsys):
    spec = str(ROOT / "examples/iris_softmax.yaml")
    assert main(["footprint", spec, "--batch", "16", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in [*KEYS, "code_bytes", "forward_macs", "train_macs"]:
        assert isinstance(report[key], int) and report[key] > 0, key
    program = lower(symbackprop.derive(symbackprop.load_spec(spec)))
    assert {k: report[k] for k in KEYS} == memory(program, 16)
    assert main(["footprint", spec]) == 0
    text = capsys.readouterr().out
    assert "a chunk of 1 row)" in text and "56 multiply-adds a sample" in text
    assert main(["footprint", spec, "--batch", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--batch: must be at least 1" in err


def test_generate_prints_the_footprint(tmp_path, capsys):
    """generate --target c says what the library costs at the default chunk (on stderr: stdout
    stays the list of files written)."""
    spec = str(ROOT / "examples/iris_softmax.yaml")
    assert main(["generate", spec, "--target", "c", "-o", str(tmp_path / "c")]) == 0
    out, err = capsys.readouterr()
    assert all(line.startswith(str(tmp_path)) for line in out.strip().split("\n"))
    mem = memory(lower(symbackprop.derive(symbackprop.load_spec(spec))), 256)
    assert err.startswith("footprint: parameters 536 B, ") and err.count("\n") == 1
    assert f"workspace {mem['workspace_bytes']:,} B at the default chunk of 256 rows" in err
    assert main(["generate", spec, "--target", "numpy", "-o", str(tmp_path / "py")]) == 0
    assert capsys.readouterr().err == ""
