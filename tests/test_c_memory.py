"""Every example's C training program runs clean under AddressSanitizer/UBSan and valgrind,
on good data and on bad data files (issue: hardening, C safety)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c.build import build_program

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (*(ROOT / "examples").glob("*.yaml"),
                             *(ROOT / "examples/normalization").glob("*.yaml"))
                  if "sample" not in p.name)  # fmt: skip
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all"]  # fmt: skip


def setup(spec_path: Path, folder: Path) -> tuple[Path, Path, list[Path]]:
    """The C target in ``folder``, a good CSV and bad data files for it."""
    spec = symbackprop.load_spec(spec_path)
    for name, text in render(symbackprop.derive(spec), "c").items():
        (folder / name).write_text(text)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(13, spec.inputs))
    if spec.loss.type == "cross_entropy":
        t = rng.integers(0, spec.outputs, size=(13, 1)).astype(float)
    elif spec.loss.type == "binary_cross_entropy":
        t = rng.integers(0, 2, size=(13, spec.outputs)).astype(float)
    else:
        t = rng.normal(size=(13, spec.outputs))
    good = folder / "good.csv"
    np.savetxt(good, np.hstack([x, t]), delimiter=",", fmt="%.17g")
    width = spec.inputs + t.shape[1]
    bad = {
        "one_column.csv": "1\n2\n",  # every example has at least 2 inputs
        "text.csv": ",".join(["1"] * (width - 1) + ["x"]) + "\n",
        "nan.csv": ",".join(["nan"] * width) + "\n",
        "empty.csv": "",
        "long_line.csv": "1" * 100_000 + "\n",
        "binary.npy": "\x93NUMPY\x01\x00\xff\xff{'descr': '<f8', 'shape': (99999999, 3), }",
    }
    paths = []
    for name, text in bad.items():
        (folder / name).write_text(text, encoding="latin-1")
        paths.append(folder / name)
    return good, folder / f"{spec.name}.weights", paths


def run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120,
                          cwd=cwd)  # fmt: skip


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_sanitizers(tmp_path, spec):
    good, weights, bad = setup(spec, tmp_path)
    program = build_program(tmp_path, SANITIZE)
    ck = tmp_path / "ck"
    out = run([program, "train", good, "--epochs", "2", "--batch-size", "5", "--out", weights,
               "--checkpoint", ck], tmp_path)  # fmt: skip
    assert out.returncode == 0 and "Sanitizer" not in out.stderr, out.stderr
    pred = run([program, "predict", weights, good], tmp_path)
    assert pred.returncode == 0 and len(pred.stdout.splitlines()) == 13, pred.stderr
    # the step count at INT64_MAX stays there (signed overflow was undefined behaviour)
    ck.write_text(re.sub(r"(?m)^step .*$", f"step {2**63 - 1}", ck.read_text()))
    out = run([program, "train", good, "--resume", ck, "--epochs", "4", "--checkpoint", ck,
               "--quiet"], tmp_path)  # fmt: skip
    assert out.returncode == 0 and "Sanitizer" not in out.stderr, out.stderr
    assert f"\nstep {2**63 - 1}\n" in ck.read_text()
    # a huge learning rate: most examples diverge (exit 1, one line); saturated sigmoids need not
    out = run([program, "train", good, "--lr", "1e300", "--quiet"], tmp_path)
    assert out.returncode in (0, 1) and "Sanitizer" not in out.stderr, out.stderr
    if out.returncode == 1:
        assert out.stderr.startswith("error: training diverged at epoch "), out.stderr
        assert out.stderr.count("\n") == 1
    for path in bad:
        res = run([program, "train", path, "--out", tmp_path / "never.weights"], tmp_path)
        assert res.returncode == 2, (path.name, res.stderr)
        assert "Sanitizer" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
        assert not (tmp_path / "never.weights").exists()


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_valgrind(tmp_path, spec):
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is missing in CI: .ci/run must install it")
        pytest.skip("valgrind not installed (CI installs it)")
    good, weights, bad = setup(spec, tmp_path)
    program = build_program(tmp_path, ["-O1", "-g"])
    vg = [
        valgrind,
        "--quiet",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=all",
    ]
    out = run([*vg, program, "train", good, "--epochs", "2", "--batch-size", "5", "--out", weights],
              tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for path in bad[:3]:
        res = run([*vg, program, "train", path], tmp_path)
        assert res.returncode == 2, (path.name, res.stderr)
