"""Float math in float32 C libraries: every example, in float32 and float64, builds under
-Wdouble-promotion -Werror; a float32 library calls no double libm function and no pow at all
(Adam's bias corrections are binary powers), and its Adam steps still equal PyTorch's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import yaml
from torch_reference import torch_step

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c import c_module
from symbackprop.core.optimizers import K
from symbackprop.printing.c import CCodePrinter, StepScalarPrinter

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if "sample" not in p.name)
CC = os.environ.get("CC", "cc")
STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-pedantic"]
# double libm functions a float32 library must not call (fmin: the data reader's double table)
DOUBLE_MATH = {"pow", "sqrt", "exp", "log", "log1p", "expm1", "tanh", "erf", "erfc", "fmax",
               "cosh", "sinh", "cos", "sin", "atan", "cbrt", "powf"}  # fmt: skip
pytestmark = pytest.mark.skipif(shutil.which(CC) is None and not os.environ.get("CI"),
                                reason="no cc")  # fmt: skip


def test_printer_powers_and_step_scalars():
    b = sp.Symbol("beta2", positive=True)
    assert CCodePrinter().doprint(b**K) == "ipow(beta2, k)"
    assert CCodePrinter("float32").doprint(b**K) == "ipowf(beta2, k)"
    assert StepScalarPrinter("float64").doprint(1 / sp.sqrt(1 - b**K)) == (
        "1.0/sqrt(1 - ipow(beta2, k))"
    )
    assert StepScalarPrinter("float32").doprint(1 / sp.sqrt(1 - b**K)) == (
        "1.0F/sqrtf((float)(1 - ipow(beta2, k)))"
    )


def undefined(obj: Path) -> set[str]:
    out = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.split("\n") if line.strip()}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_strict_double_promotion(example, dtype, tmp_path):
    data = yaml.safe_load(example.read_text())
    data["dtype"] = dtype
    name = data["name"]
    for fname, text in render(symbackprop.parse_spec(data), "c").items():
        (tmp_path / fname).write_text(text)
    for src in (f"{name}.c", f"{name}_main.c"):
        obj = tmp_path / (src + ".o")
        done = subprocess.run([CC, *STRICT, "-c", str(tmp_path / src), "-o", str(obj)],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
    if dtype == "float32":
        calls = undefined(tmp_path / f"{name}.c.o")
        if "static double plog(" in (tmp_path / f"{name}.c").read_text():
            calls.discard("sqrt")  # normal initial weights: in double, bit-identical to NumPy's
        assert not calls & DOUBLE_MATH, calls & DOUBLE_MATH


def test_float32_adam_equals_torch(tmp_path):
    """The bias corrections by binary powers (double) and sqrtf: 30 Adam steps of a float32 net
    equal torch.optim.Adam's to float32 precision."""
    data = yaml.safe_load((ROOT / "examples/iris_softmax.yaml").read_text())
    data["dtype"] = "float32"
    d = symbackprop.derive(symbackprop.parse_spec(data))
    module = c_module(d, tmp_path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 4)).astype(np.float32)
    T = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    params = module.init_params()
    state = module.init_state(params)
    losses = [module.step(params, state, X, T) for _ in range(30)]
    want_losses, _, reference = torch_step(data, module.init_params(), X, T, steps=30)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for k in params:
        np.testing.assert_allclose(params[k], reference[k], rtol=1e-4, atol=1e-5)
