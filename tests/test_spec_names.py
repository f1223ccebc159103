"""The spec's name names the generated files (<name>.py, <name>.c, the program and its Makefile
targets) and every C symbol (<name>_params, <NAME>_H): names that break any of them are refused
with the reason, and every name the rule accepts gives code that compiles, imports and runs."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from symbackprop.cli import main
from symbackprop.codegen import generate
from symbackprop.codegen.c.build import compiler
from symbackprop.codegen.c.loader import load_c
from symbackprop.codegen.numpy.loader import load_numpy
from symbackprop.core.chain_rule import derive
from symbackprop.spec.errors import SpecError
from symbackprop.spec.load import parse_spec

BASE = {
    "name": "net",
    "inputs": 2,
    "layers": [{"units": 3, "activation": "tanh"}, {"units": 2, "activation": "sigmoid"}],
    "loss": {"type": "mse"},
    "optimizer": {"type": "adam", "lr": 0.01},
}
STDLIB = "the name of a Python standard module; the generated {0}.py would shadow it"
REFUSED = [
    ("_", "must not start with '_': the C names made from it (__params, __H) are reserved"),
    ("_a", "must not start with '_'"),
    ("_stdio", "(_stdio_params, _STDIO_H)"),  # glibc's own include guard
    ("__x", "must not start with '_'"),
    ("math", "'math' is " + STDLIB.format("math")),
    ("random", "'random' is " + STDLIB.format("random")),
    ("json", "'json' is " + STDLIB.format("json")),
    ("os", "'os' is " + STDLIB.format("os")),
    ("sys", "'sys' is " + STDLIB.format("sys")),
    ("numpy", "'numpy' is NumPy's module name; the generated numpy.py would shadow it"),
    ("clean", "'clean' is a target of the generated Makefile (all, lib, clean)"),
    ("all", "'all' is a target of the generated Makefile"),
    ("lib", "'lib' is a target of the generated Makefile"),
    ("makefile", "'makefile' is a file make reads instead of the generated Makefile"),
    ("int", "'int' is a C keyword"),
    ("for", "'for' is a C keyword"),
    ("bool", "'bool' is a C keyword"),
    ("asm", "'asm' is a C keyword"),
    ("class", "'class' is a Python keyword"),
    ("lambda", "'lambda' is a Python keyword"),
    ("cblas", "'cblas' would make the C include guard CBLAS_H, cblas.h's own"),
    ("Net", "must match [a-z_][a-z0-9_]*"),
    ("n" * 41, "at most 40 characters"),
]


@pytest.mark.parametrize(("name", "reason"), REFUSED, ids=[n for n, _ in REFUSED])
def test_names_that_break_the_generated_code_are_refused(tmp_path, capsys, name, reason):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(BASE | {"name": name}))
    assert main(["generate", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {spec}: name: ") and reason in err, err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def generated(name: str, folder) -> tuple:
    """Generate both targets of BASE named ``name`` into ``folder``; the NumPy module."""
    d = derive(parse_spec(BASE | {"name": name}))
    generate(d, "numpy", folder)
    generate(d, "c", folder)
    return load_numpy(folder / f"{name}.py")


needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


@needs_cc
@pytest.mark.parametrize("name", ["a", "x1", "n_", "a__b", "x_main", "mean", "e", "n" * 40])
def test_odd_but_valid_names_give_code_that_works(tmp_path, name):
    """Compiled and loaded (the library), built with its Makefile (the program), run as a
    script (the NumPy module), and equal: the same loss and gradient from both targets.
    x_main has both x_main.c and x_main_main.c; mean_loss is a parameter name in the C."""
    module = generated(name, tmp_path)
    c = load_c(tmp_path, cflags=["-O0"])
    params = module.init_params()
    x, t = np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([[0.0, 1.0], [1.0, 0.0]])
    loss, grads = module.loss_and_grad(params, x, t)
    c_loss, c_grads = c.loss_and_grad(params, x, t)
    assert np.isclose(loss, c_loss, rtol=1e-12)
    for key, g in grads.items():
        assert np.allclose(g, c_grads[key], rtol=1e-10, atol=1e-14)
    make = subprocess.run(["make", "-C", str(tmp_path), "CFLAGS=-O0"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert make.returncode == 0 and "warning" not in make.stderr, make.stderr
    assert (tmp_path / name).is_file()
    help_ = subprocess.run([str(tmp_path / name)], capture_output=True, text=True, timeout=60)
    assert name in help_.stdout + help_.stderr
    script = subprocess.run([sys.executable, str(tmp_path / f"{name}.py"), "--help"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert script.returncode == 0, script.stderr
    clean = subprocess.run(["make", "-C", str(tmp_path), "clean"], capture_output=True, timeout=60)
    assert clean.returncode == 0 and not (tmp_path / name).exists()
    assert (tmp_path / f"{name}.c").is_file() and (tmp_path / f"{name}.py").is_file()


NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,39}", fullmatch=True)


@needs_cc
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(name=NAMES)
def test_every_accepted_name_compiles_and_imports(tmp_path_factory, name):
    """Names drawn from CONTRACT §1's pattern: refused with a reason on the name, or their
    NumPy module imports and both C files compile with -Wall -Wextra -Werror."""
    try:
        parse_spec(copy.deepcopy(BASE) | {"name": name})
    except SpecError as err:
        assert err.field == "name" and err.reason
        return
    folder = tmp_path_factory.mktemp("name")
    module = generated(name, folder)
    assert name == module.NAME
    for source in (f"{name}.c", f"{name}_main.c"):
        cc = subprocess.run(
            [*compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", source],
            cwd=folder, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cc.returncode == 0, (name, cc.stderr[:2000])
