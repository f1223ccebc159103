"""Recurrent layers (issue 15) against torch.nn.RNN with copied weights, step for step.

The reference is built from the spec dict directly (nn.RNN(batch_first=True) per rnn layer,
nn.Linear per dense layer, the loss and torch.optim from the spec), so it shares nothing with
the package but the input format. Both code targets (the ``build`` fixture) must follow it for
10 optimizer steps: float64 to 1e-10, float32 to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sequence_reference import (
    Reference,
    assert_c_equals_numpy,
    assert_float32_follows_torch,
    assert_follows_torch,
    assert_program_trains,
    builder,
    run as _run,
    sequence_data as _data,
    sequence_spec as _spec,
)


@pytest.fixture(scope="module", params=["numpy", "c", "torch"])
def build(request, tmp_path_factory):
    """build(spec dict) -> the generated target behind the NumPy module's functions."""
    return builder(request.param, tmp_path_factory, "rnn")


CASES = {
    "many-to-one tanh, dense head": _spec([{"type": "rnn", "units": 4}, {"units": 2}]),
    "many-to-one relu, sgd momentum": _spec(
        [{"type": "rnn", "units": 5, "nonlinearity": "relu"}, {"units": 3, "activation": "tanh"}],
        optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9}),
    "stacked rnn -> rnn, softmax head, adam": _spec(
        [{"type": "rnn", "units": 4, "return_sequences": True}, {"type": "rnn", "units": 3},
         {"units": 3, "activation": "softmax"}], steps=12, loss="cross_entropy",
        optimizer={"type": "adam", "lr": 0.01}),
    "T = 1, no bias": _spec([{"type": "rnn", "units": 3, "bias": False}, {"units": 1}], steps=1),
    "rnn as the output layer": _spec([{"type": "rnn", "units": 2}], steps=4),
    "truncated BPTT (bptt: 3 of T = 8), stacked": _spec(
        [{"type": "rnn", "units": 4, "return_sequences": True, "bptt": 3},
         {"type": "rnn", "units": 3, "nonlinearity": "relu", "bptt": 3}, {"units": 2}],
        steps=8, optimizer={"type": "adam", "lr": 0.01}),
    "truncated BPTT, windows dividing T (bptt: 2 of T = 6)": _spec(
        [{"type": "rnn", "units": 4, "bptt": 2}, {"units": 2}], steps=6),
    "many-to-many: return_sequences, dense on every step": _spec(
        [{"type": "rnn", "units": 4, "return_sequences": True}, {"units": 2, "activation": "tanh"}],
        steps=4),
}  # fmt: skip


@pytest.mark.parametrize("label", CASES)
def test_training_steps_follow_torch_rnn(build, label):
    spec = CASES[label]
    assert_follows_torch(build(spec), spec, label)


def test_float32_follows_torch(build):
    spec = _spec([{"type": "rnn", "units": 6}, {"units": 2}], steps=8, dtype="float32",
                 optimizer={"type": "adam", "lr": 0.01})  # fmt: skip
    assert_float32_follows_torch(build(spec), spec)


def test_sequence_rows_may_come_flattened(build):
    """Data files hold X as [n, T·F] rows (CONTRACT §6): the same numbers as [n, T, F]."""
    spec = CASES["many-to-one tanh, dense head"]
    net = build(spec)
    params = net.init_params()
    x, _ = _data(spec, 4)
    np.testing.assert_array_equal(net.forward(params, x), net.forward(params, x.reshape(4, -1)))


def test_default_init_is_pytorchs_distribution():
    """nn.RNN draws every parameter from U(−1/√units, 1/√units)."""
    import symbackprop
    from symbackprop.core.evaluate import initial_params

    d = symbackprop.derive(_spec([{"type": "rnn", "units": 16}, {"units": 2}], feats=40))
    params = initial_params(d)
    bound = 1 / 4
    for name in ("W1", "U1", "b1", "br1"):
        assert np.abs(params[name]).max() <= bound
        assert np.abs(params[name]).max() > 0.9 * bound  # the whole range is used
    assert params["W1"].shape == (16, 40) and params["U1"].shape == (16, 16)


# ---- the C target: equal to the NumPy target, strict and sanitizer-clean builds ---------------


@pytest.mark.parametrize("optimizer", [{"type": "sgd", "lr": 0.1}, {"type": "adam", "lr": 0.01}],
                         ids=["sgd (fused one-chunk steps)", "adam"])  # fmt: skip
def test_c_equals_numpy(optimizer, tmp_path):
    """Many steps, batches of one chunk and of several (300 rows > CHUNK) and shuffled rows."""
    spec = _spec([{"type": "rnn", "units": 5, "return_sequences": True},
                  {"type": "rnn", "units": 4, "nonlinearity": "relu"}, {"units": 2}], steps=6,
                 optimizer=optimizer)  # fmt: skip
    assert_c_equals_numpy(spec, tmp_path)


@pytest.mark.parametrize("flags", [["-Wall", "-Wextra", "-Werror", "-pedantic"],
                                   ["-O1", "-g", "-fsanitize=address,undefined",
                                    "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]],
                         ids=["strict", "sanitizers"])  # fmt: skip
def test_c_program_trains_on_flattened_sequence_rows(flags, tmp_path):
    """The program trains and predicts on a CSV of [T·F features, targets] rows."""
    spec = _spec([{"type": "rnn", "units": 4, "return_sequences": True},
                  {"type": "rnn", "units": 3}, {"units": 2}], steps=3, feats=2)  # fmt: skip
    assert_program_trains(spec, flags, tmp_path)


# ---- documents: scalar mode and the worked example (T = 3) -----------------------------------

TINY = {"name": "tiny_rnn", "inputs": [3, 2], "seed": 1, "loss": "mse",
        "optimizer": {"type": "sgd", "lr": 0.1},
        "layers": [{"type": "rnn", "units": 2}, {"units": 1}]}  # fmt: skip
TINY_X = [[0.5, -1.0], [0.25, 0.75], [-0.5, 0.1]]


def _tiny_torch():
    import symbackprop
    from symbackprop.core.evaluate import initial_params

    params = initial_params(symbackprop.derive(TINY))
    ref = Reference(TINY, params, torch.float64)
    ref.loss(
        torch.tensor([TINY_X], dtype=torch.float64), torch.tensor([[0.3]], dtype=torch.float64)
    ).backward()
    return params, {k: p.grad.numpy() for k, p in ref.named().items()}


def test_scalar_mode_gradients_are_pytorchs():
    """Every element's gradient in scalar mode (δ_t and h_t named, substituted back by their
    own definitions down to x, t and the parameters) equals autograd through nn.RNN."""
    import sympy as sp

    import symbackprop
    from symbackprop.core.ir import param_element_name
    from symbackprop.core.ops import indices
    from symbackprop.core.scalar import instantiate

    d = symbackprop.derive(TINY)
    sd = instantiate(d)
    defs = {sp.Symbol(n, real=True): e for n, e in sd.definitions}
    params, want = _tiny_torch()
    values = {sp.Symbol(f"x{f + 1}[{t + 1}]", real=True): TINY_X[t][f]
              for t in range(3) for f in range(2)}  # fmt: skip
    # x1[2] is feature 1 at step 2 (CONTRACT §6)
    values[sp.Symbol("t1", real=True)] = 0.3
    values[sp.Symbol("N", positive=True, integer=True)] = 1
    for p in d.params:
        for ix in indices(p.shape):
            values[sp.Symbol(param_element_name(p, ix), real=True)] = float(params[p.name][ix])
    assert sd.gradients
    for g in sd.gradients:
        e = g.expr
        for _ in range(50):
            if not e.free_symbols & defs.keys():
                break
            e = e.xreplace(defs)
        assert float(e.xreplace(values)) == pytest.approx(want[g.param][g.index], rel=1e-12)


def test_worked_example_json_is_pytorchs(tmp_path, capsys):
    """`derive --at --format json` on T = 3: the loss, gradients and SGD update as autograd."""
    import json

    import yaml

    from symbackprop.cli import main

    spec, sample = tmp_path / "tiny.yaml", tmp_path / "sample.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    sample.write_text(yaml.safe_dump({"x": TINY_X, "t": [0.3]}))
    assert main(["derive", str(spec), "--at", str(sample), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    params, want = _tiny_torch()
    for name, g in want.items():
        np.testing.assert_allclose(out["gradients"][name], g, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(out["updated"][name], params[name] - 0.1 * g, rtol=1e-12)


def test_documents_print_the_recurrences():
    """The forward loop and BPTT in text and LaTeX; scalar mode names h and δ per step."""
    import symbackprop
    from symbackprop.document.sections import render as render_document

    d = symbackprop.derive(TINY)
    text = render_document(d, "text")
    assert "h1_t = tanh(W1 @ x_t + U1 @ h1_(t-1) + b1 + br1), t = 1..3, h1_0 = 0" in text
    assert "delta1_t = (dh1_t + U1.T @ delta1_(t+1)) * tanh'(z_t), t = 3..1" in text
    assert "dU1 = 1/N * sum_n sum_t delta1_t @ h1_(t-1).T" in text
    # CONTRACT §6's names: delta1_1[2] is unit 1 of δ1 at step 2
    delta = "delta1_1[2] = (1 - h1_1[2]**2)*(dh1_1[2] + delta1_1[3]*u1_11 + delta1_2[3]*u1_21)"
    assert delta in text
    assert "dE/du1_12 = 1/N * dE/du1_12 = 1/N * (delta1_1[2]*h1_2[1] + delta1_1[3]*h1_2[2])" in text
    latex = render_document(d, "latex")
    assert r"\operatorname{tanh}'" in latex


@pytest.mark.parametrize("name", ["sine_rnn", "sine_lstm"])
def test_sine_example_trains_with_the_generated_c(tmp_path, name):
    """examples/sine_rnn.yaml and sine_lstm.yaml: the golden C program learns next-value
    prediction on the noisy sine (the mean squared error falls from about 0.5, the signal's
    variance, to the noise's)."""
    import re
    from pathlib import Path

    from symbackprop.codegen.c.build import build_program

    root = Path(__file__).resolve().parents[1]
    program = build_program(root / f"generated/{name}", ["-Wall", "-Wextra", "-Werror"])
    out = _run(program, "train", root / "examples/data/sine.csv", "--out", tmp_path / "w.txt")
    assert out.returncode == 0, out.stderr
    losses = [float(v) for v in re.findall(r"loss ([0-9.e+-]+)", out.stdout + out.stderr)]
    assert losses[0] > 0.05 and losses[-1] < 0.003, losses


@pytest.mark.parametrize("expr, ok", [
    ("delta1_1[2]*h1_2[1] + delta1_1[3]*h1_2[2]", True),  # Σ_t δ_t h_{t-1}ᵀ, t = 2..3
    ("delta1_1[3]*h1_2[2]", False),  # a time step's term forgotten
    ("delta1_1[1]*h1_2[1] + delta1_1[2]*h1_2[2]", False),  # h_t instead of h_{t-1}
    ("(1 - h1_1[2]**2)*dh1_1[2]*h1_2[1] + delta1_1[3]*h1_2[2]", False),  # δ_2 without U δ_3
    # the step-first spelling scalar mode printed before (h1_1_2 is h1_2[1]) is still read
    ("delta1_2_1*h1_1_2 + delta1_3_1*h1_2_2", True),
    ("delta1_3_1*h1_2_2", False),  # a time step's term forgotten
    ("delta1_1_1*h1_1_2 + delta1_2_1*h1_2_2", False),  # h_t instead of h_{t-1}
    ("(1 - h1_2_1**2)*dh1_2_1*h1_1_2 + delta1_3_1*h1_2_2", False),  # δ_2 without U δ_3
])  # fmt: skip
def test_verify_a_hand_bptt_formula(tmp_path, capsys, expr, ok):
    """verify --wrt u1_12 (the sequence's scalar names x1[1] .. x2[3] are probed too)."""
    import yaml

    from symbackprop.cli import main

    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    code = main(["verify", str(spec), "--wrt", "u1_12", "--expr", expr])
    assert code == (0 if ok else 1), capsys.readouterr().out
    assert capsys.readouterr().out.startswith("equivalent" if ok else "not equivalent")


# ---- bad specs: one line naming the field, exit 2 -----------------------------------------------

BAD = [
    ({"inputs": 4, "layers": [{"type": "rnn", "units": 3}, {"units": 1}]},
     "layers[0].input", "rnn takes a sequence [T, F]; x is [4]"),
    ({"layers": [{"type": "rnn", "units": 3, "nonlinearity": "sigmoid"}, {"units": 1}]},
     "layers[0].nonlinearity", "sigmoid"),
    ({"layers": [{"type": "rnn", "units": 3, "bptt": 0}, {"units": 1}]}, "layers[0].bptt", ""),
    ({"inputs": [3, 0], "layers": [{"units": 1}]}, "inputs[1]", ""),
    ({"layers": [{"type": "rnn", "units": 3, "weight": {}}, {"units": 1}]}, "layers[0].weight",
     "unknown field"),
]  # fmt: skip


@pytest.mark.parametrize("change, field, reason", BAD, ids=[b[1] + " " + b[2] for b in BAD])
def test_bad_recurrent_specs_are_refused(tmp_path, capsys, change, field, reason):
    import yaml

    from symbackprop.cli import main

    data = {"name": "bad", "inputs": [4, 2], "layers": [], **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["derive", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {field}: ") and reason in err, err
    assert err.count("\n") == 1
