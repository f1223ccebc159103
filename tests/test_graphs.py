"""Networks that are DAGs (CONTRACT §6: `input`, `add`, `concat`) against PyTorch autograd.

Residual and two-branch nets, fan-out, a skip from x, a frozen layer inside a branch, a concat
as the output, float32: the generated NumPy module and the C library follow the independent
PyTorch reference (tests/torch_reference.py) for 25 optimizer steps, float64 to 1e-10 and
float32 to 1e-4 relative. Scalar mode's per-weight gradients and ``verify`` on a residual net
are checked against PyTorch too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch_reference import torch_forward, torch_step

import symbackprop
from symbackprop.codegen.numpy.loader import numpy_module
from symbackprop.core.scalar import values_at

STEPS = 25
F64 = {"rtol": 1e-10, "atol": 1e-13}
F32 = {"rtol": 1e-4, "atol": 1e-6}


def spec(name, inputs, layers, loss="mse", optimizer=None, **extra):
    return {"name": name, "inputs": inputs, "seed": 3, "layers": layers,
            "loss": {"type": loss} if isinstance(loss, str) else loss,
            "optimizer": optimizer or {"type": "adam", "lr": 0.01}, **extra}  # fmt: skip


RESIDUAL = spec("residual", 3, [
    {"units": 4, "activation": "tanh"},
    {"units": 4, "activation": "relu"},
    {"type": "add", "inputs": ["a1", "a2"], "activation": "tanh"},
    {"units": 2},
])  # fmt: skip

NETS = {
    "residual": RESIDUAL,
    "skip from x": spec("skip_x", 3, [
        {"units": 3, "activation": "sigmoid"},
        {"type": "add", "inputs": ["x", "a1"]},
        {"units": 2, "activation": "tanh"},
    ], optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.9}),
    "two branches": spec("branches", 3, [
        {"units": 4, "activation": "tanh", "input": "x"},
        {"units": 3, "activation": "sigmoid", "input": "x"},
        {"type": "concat", "inputs": ["a1", "a2"]},
        {"units": 3, "activation": "softmax"},
    ], loss="cross_entropy"),
    "fan-out": spec("fanout", 2, [
        {"units": 4, "activation": "gelu"},
        {"units": 3, "activation": "relu"},
        {"units": 3, "activation": "sigmoid", "input": "a1"},
        {"type": "concat", "inputs": ["a2", "a3", "a1"]},
        {"units": 2, "activation": "sigmoid"},
    ], loss="binary_cross_entropy", optimizer={"type": "rmsprop", "lr": 0.01}),
    "frozen layer in a branch": spec("frozen", 3, [
        {"units": 3, "activation": "tanh"},
        {"units": 3, "activation": "tanh", "input": "x",
         "weight": {"trainable": False}, "bias": {"trainable": False}},
        {"type": "add", "inputs": ["a1", "a2", "a1"], "activation": "silu"},
        {"units": 2},
    ], loss={"type": "sse", "scale": 0.5}),
    "concat output": spec("concat_out", 3, [
        {"units": 2, "activation": "tanh"},
        {"units": 1, "input": "x"},
        {"type": "concat", "inputs": ["a2", "a1"]},
    ], optimizer={"type": "sgd", "lr": 0.05}),
    "add output, logits": spec("add_out", 3, [
        {"units": 2},
        {"units": 2, "input": "x", "bias": "none"},
        {"type": "add", "inputs": ["a1", "a2"], "activation": "sigmoid"},
    ], loss="binary_cross_entropy"),
    "residual float32": {**RESIDUAL, "name": "residual32", "dtype": "float32"},
    "branches float32": {**spec("branches32", 3, [
        {"units": 4, "activation": "elu", "input": "x"},
        {"units": 3, "activation": "softplus", "input": "x"},
        {"type": "concat", "inputs": ["a2", "a1"]},
        {"units": 3},
    ], loss="cross_entropy"), "dtype": "float32"},
}  # fmt: skip


def outputs(data: dict) -> int:
    d = symbackprop.derive(data)
    return d.shapes["t"][0]


def batches(data: dict, seed: int = 0, sizes=(5, 3, 1, 4)) -> list:
    rng = np.random.default_rng(seed)
    k, kind = outputs(data), data["loss"]["type"]
    out = []
    for n in sizes:
        x = rng.normal(size=(n, data["inputs"]))
        if kind == "cross_entropy":
            t = rng.dirichlet(np.ones(k), size=n)
        elif kind == "binary_cross_entropy":
            t = rng.uniform(size=(n, k))
        else:
            t = rng.normal(size=(n, k))
        out.append((x, t))
    return out


@pytest.mark.parametrize("label", list(NETS))
def test_follows_pytorch_for_25_steps(build, label):
    data = NETS[label]
    tol = F32 if data.get("dtype") == "float32" else F64
    module = build(data)
    bs = batches(data)
    start = module.init_params()
    params = {k: v.copy() for k, v in start.items()}
    E0, grads = module.loss_and_grad(params, *bs[0])
    np.testing.assert_allclose(module.forward(params, bs[0][0]),
                               torch_forward(data, start, bs[0][0]), **tol)  # fmt: skip
    state = module.init_state(params)
    losses = [module.step(params, state, *bs[k % len(bs)]) for k in range(STEPS)]
    ref_losses, ref_grads, ref_params = torch_step(
        data, start, [b[0] for b in bs], [b[1] for b in bs], steps=STEPS
    )
    assert losses[0] == E0
    np.testing.assert_allclose(losses, ref_losses, **tol, err_msg="losses")
    assert sorted(grads) == sorted(ref_grads)
    for name, ref in ref_grads.items():
        np.testing.assert_allclose(grads[name], ref, **tol, err_msg=name)
    for name, ref in ref_params.items():
        np.testing.assert_allclose(params[name], ref, **tol, err_msg=name)
    assert any(not np.array_equal(params[n], start[n]) for n in module.TRAINABLE)


def test_frozen_branch_gets_no_gradient_and_stays():
    d = symbackprop.derive(NETS["frozen layer in a branch"])
    assert {"W2", "b2"}.isdisjoint(d.gradients)
    assert {"W1", "b1", "W4", "b4"} == set(d.gradients)


def test_fan_out_sums_are_explicit_steps():
    """a1 feeds three layers: its gradient is one printed sum of three contributions."""
    d = symbackprop.derive(NETS["fan-out"])
    (total,) = [op for op in d.backward if op.out == "da1"]
    assert total.kind == "map" and len(total.args) == 3 and "summed" in total.why
    text = d.render("text", "tensor")
    assert "da1 = " in text and "summed" in text


def _one_sample(data):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, data["inputs"]))
    return x, rng.normal(size=(1, outputs(data)))


def test_scalar_mode_gradients_equal_pytorch_on_a_residual_net():
    data = spec("tiny_res", 2, [
        {"units": 2, "activation": "tanh"},
        {"units": 2, "activation": "sigmoid"},
        {"type": "add", "inputs": ["a1", "a2"]},
        {"units": 1},
    ])  # fmt: skip
    d = symbackprop.derive(data)
    assert d.mode() == "scalar"
    x, t = _one_sample(data)
    ev = d.at((x, t))
    vals = values_at(d, ev)
    _, ref, _ = torch_step(data, ev.params, x, t, steps=1)
    seen = set()
    for g in d.scalar().gradients:
        value = float(g.expr.xreplace(vals))
        want = ref[g.param][g.index] if g.index else float(ref[g.param])
        assert abs(value - want) <= 1e-12 * max(1.0, abs(want)), g.element
        seen.add(g.param)
    assert seen == {"W1", "b1", "W2", "b2", "W4", "b4"}
    # dE/da1 is printed as the sum of the skip path (da3) and the path through layer 2
    doc = d.render("text", "scalar", ev)
    assert "da1 = da1__via_z2 + da3" in doc and "da1_1 = da1__via_z2_1 + da3_1" in doc


def test_verify_proves_the_skip_path_and_refutes_forgetting_it():
    data = spec("verify_res", 2, [
        {"units": 2, "activation": "tanh"},
        {"units": 2, "activation": "tanh"},
        {"type": "add", "inputs": ["a1", "a2"]},
        {"units": 1},
    ])  # fmt: skip
    # dE/da3 = W4.T @ delta4 reaches a1 twice: unchanged through the skip, and through layer 2
    skip = "W4.T @ delta4"
    through = "W2.T @ ((W4.T @ delta4) * (1 - a2 * a2))"
    right = f"(({skip} + {through}) * (1 - a1 * a1)) @ x.T"
    r = symbackprop.verify(data, "W1", right)
    assert r.equivalent, r.text()
    wrong = f"(({through}) * (1 - a1 * a1)) @ x.T"  # forgets the skip
    r = symbackprop.verify(data, "W1", wrong)
    assert not r.equivalent and r.counterexample is not None
    # the true value really is PyTorch's
    d = symbackprop.derive(data)
    x, t = _one_sample(data)
    ev = d.at((x, t))
    _, ref, _ = torch_step(data, ev.params, x, t, steps=1)
    np.testing.assert_allclose(ev.gradients["W1"], ref["W1"], rtol=1e-12)


def test_torch_reference_is_independent_of_the_package():
    """The reference builds the residual block with torch alone (guards the checks above)."""
    data = NETS["residual"]
    params = numpy_module(symbackprop.derive(data)).init_params()
    x = np.random.default_rng(1).normal(size=(4, 3))
    xt = torch.tensor(x)
    a1 = torch.tanh(xt @ torch.tensor(params["W1"]).T + torch.tensor(params["b1"]))
    a2 = torch.relu(a1 @ torch.tensor(params["W2"]).T + torch.tensor(params["b2"]))
    a3 = torch.tanh(a1 + a2)
    y = a3 @ torch.tensor(params["W4"]).T + torch.tensor(params["b4"])
    np.testing.assert_allclose(torch_forward(data, params, x), y.numpy(), rtol=1e-15)


@pytest.mark.parametrize("name", ["residual_mlp", "two_branch"])
def test_example_worked_numbers_equal_pytorch(name):
    """The examples' worked example (docs/<name>.md, `derive --at --format json`): the loss
    and every gradient at the sample equal PyTorch's."""
    root = Path(__file__).resolve().parents[1]
    data = yaml.safe_load((root / f"examples/{name}.yaml").read_text())
    sample = yaml.safe_load((root / f"examples/{name}_sample.yaml").read_text())
    x, t = np.array([sample["x"]], float), np.array([sample["t"]], float)
    d = symbackprop.derive(data)
    ev = d.at((x, t))
    losses, ref, _ = torch_step(data, ev.params, x, t, steps=1)
    assert ev.loss == pytest.approx(losses[0], rel=1e-12)
    for pname, g in ref.items():
        np.testing.assert_allclose(ev.gradients[pname], g, rtol=1e-10, atol=1e-14)
