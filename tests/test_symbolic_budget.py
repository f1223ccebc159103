"""The symbolic work a spec can ask for is bounded: custom activations nested deeply load, derive
and generate in seconds (SymPy's solve took 165 s on a four-deep tanh, its LaTeX printer minutes
on nested sigmoids), and their gradients are still right; expressions whose derivative alone
would be too large to handle are refused. Each command runs in a subprocess under a generous
hang guard; the assertions are on what it does, not how long it takes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from torch_reference import torch_step

from symbackprop.codegen.numpy.loader import load_numpy
from symbackprop.spec.errors import SpecError

TANH4 = "tanh(tanh(tanh(tanh(x))))"
SIGMOID12 = "sigmoid(" * 12 + "x" + ")" * 12
DEEP = {
    "name": "deep",
    "inputs": 3,
    "layers": [
        {"units": 4, "activation": {"expr": TANH4}},
        {"units": 2, "activation": {"expr": SIGMOID12}},
    ],
    "loss": {"type": "mse"},
    "optimizer": {"type": "adam", "lr": 0.01},
}


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The command line in a subprocess; ``timeout`` is only a hang guard."""
    return subprocess.run([sys.executable, "-m", "symbackprop.cli", *args],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_nested_activations_load_derive_and_generate_with_right_gradients(tmp_path):
    spec = tmp_path / "deep.json"
    spec.write_text(json.dumps(DEEP))
    for fmt in ("text", "latex"):
        run = cli("derive", str(spec), "--format", fmt)
        assert run.returncode == 0 and run.stderr == "", run.stderr
    assert "tanh" in run.stdout
    run = cli("generate", str(spec), "-o", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    module = load_numpy(tmp_path / "out" / "deep.py")
    params = module.init_params(seed=3)
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(5, 3)), rng.uniform(size=(5, 2))
    loss, grads = module.loss_and_grad(params, x, t)
    losses, torch_grads, _ = torch_step(copy.deepcopy(DEEP), params, x, t)
    assert np.isclose(loss, losses[0], rtol=1e-12)
    for name, g in torch_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize(
    "expr",
    [
        "*".join(f"sigmoid({i}*x)" for i in range(1, 60)),  # 59 factors: 25,000 nodes
        "*".join(f"tanh({i}*x)" for i in range(1, 130)),
    ],
)
def test_activations_with_too_large_a_derivative_are_refused(tmp_path, expr):
    data = copy.deepcopy(DEEP)
    data["layers"][0]["activation"] = {"expr": expr}
    spec = tmp_path / "big.json"
    spec.write_text(json.dumps(data))
    run = cli("derive", str(spec))
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert run.stderr == (
        f"error: {spec}: layers[0].activation.expr: its derivative is too large "
        "(over 20,000 nodes); write a shorter expression\n"
    )


def test_custom_losses_with_too_large_a_derivative_are_refused(tmp_path):
    data = copy.deepcopy(DEEP)
    data["loss"] = {"type": "custom", "expr": "*".join(f"sigmoid({i}*y - t)" for i in range(1, 70))}
    spec = tmp_path / "big.json"
    spec.write_text(json.dumps(data))
    run = cli("derive", str(spec))
    assert run.returncode == 2 and "loss.expr: its derivative is too large" in run.stderr


# ---- item 14: what cannot finish in reasonable time is refused, with what to use instead ------


def net(tmp_path, layers: list, inputs: int = 2):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"name": "net", "inputs": inputs, "layers": layers}))
    return spec


def test_scalar_mode_is_refused_for_large_nets(tmp_path):
    """derive --mode scalar at width 5000 (20,001 parameters) took 89 s."""
    spec = net(tmp_path, [{"units": 5000, "activation": "sigmoid"}, {"units": 1}])
    for fmt in ("text", "latex", "markdown", "json"):
        run = cli("derive", str(spec), "--mode", "scalar", "--format", fmt)
        assert run.returncode == 2 and run.stdout == "", run.stderr
        assert run.stderr == (
            f"error: {spec}: --mode: scalar mode writes each parameter's gradient element by "
            "element, for small nets (at most 1,000 parameters; this one has 20,001); use "
            "--mode tensor\n"
        )
    run = cli("derive", str(spec))  # auto: tensor mode
    assert run.returncode == 0 and "Backward" in run.stdout, run.stderr


def test_scalar_mode_limit_is_on_the_parameter_count(tmp_path):
    from symbackprop import derive

    d = derive(json.loads(net(tmp_path, [{"units": 250}, {"units": 1}]).read_text()))
    assert d.num_params == 1001
    with pytest.raises(SpecError, match="at most 1,000 parameters; this one has 1,001"):
        d.render("text", "scalar")
    small = derive(json.loads(net(tmp_path, [{"units": 3}, {"units": 1}]).read_text()))
    assert "dE/dw2_13" in small.render("text", "scalar")


def test_c_target_is_refused_above_its_depth_limit(tmp_path):
    """The C of 1,000 layers did not compile in 300 s (gcc -O3 on one function per pass)."""
    spec = net(tmp_path, [{"units": 3, "activation": "tanh"}] * 101)
    out = tmp_path / "out"
    reason = (
        "layers: the C target is for nets of at most 100 layers (this one has 101): gcc -O3 "
        "compiles each pass over the layers as one function, in minutes above that; use "
        "--target numpy\n"
    )
    run = cli("generate", str(spec), "--target", "c", "-o", str(out))
    assert run.returncode == 2 and run.stderr == f"error: {spec}: {reason}"
    assert not out.exists()
    data = tmp_path / "data.csv"
    data.write_text("1,2,0,0,0\n3,4,1,1,1\n")
    run = cli("train", str(spec), "--data", str(data), "--target", "c", "--epochs", "1")
    assert run.returncode == 2 and run.stderr == f"error: {spec}: {reason}"
    run = cli("generate", str(spec), "--target", "numpy", "-o", str(out))
    assert run.returncode == 0, run.stderr
    one = {"units": 1, "weight": {"init": 1.0}, "bias": {"init": 0.0}}  # no vanishing gradient
    spec = net(tmp_path, [one] * 101, inputs=1)
    run = cli("check", str(spec))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "the C target was not checked: it is for nets of at most 100 layers" in run.stdout
    assert "numpy vs finite differences" in run.stdout and "c vs" not in run.stdout
