"""Gated recurrent layers (issue 15): gru and lstm against torch.nn.GRU / nn.LSTM with copied
weights, step for step.

The reference is built from the spec dict directly (nn.GRU / nn.LSTM / nn.RNN(batch_first=True)
per recurrent layer, nn.Linear per dense layer, the loss and torch.optim from the spec), so it
shares nothing with the package but the input format. Every code target (the ``build`` fixture)
must follow it for 10 optimizer steps: float64 to 1e-10, float32 to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sequence_reference import (
    RECURRENT,
    Reference,
    assert_c_equals_numpy,
    assert_float32_follows_torch,
    assert_follows_torch,
    assert_program_trains,
    builder,
    generate,
    sequence_spec as _spec,
)


@pytest.fixture(scope="module", params=["numpy", "c", "torch"])
def build(request, tmp_path_factory):
    """build(spec dict) -> the generated target behind the NumPy module's functions."""
    return builder(request.param, tmp_path_factory, "gated")


def _cases(kind: str) -> dict:
    return {
        f"{kind} many-to-one, dense head": _spec([{"type": kind, "units": 4}, {"units": 2}]),
        f"{kind} many-to-many: dense on every step": _spec(
            [{"type": kind, "units": 4, "return_sequences": True},
             {"units": 2, "activation": "tanh"}], steps=4),
        f"{kind} stacked rnn -> {kind}, softmax head, adam, T = 12": _spec(
            [{"type": "rnn", "units": 4, "return_sequences": True}, {"type": kind, "units": 3},
             {"units": 3, "activation": "softmax"}], steps=12, loss="cross_entropy",
            optimizer={"type": "adam", "lr": 0.01}),
        f"{kind} T = 1, no bias, sgd momentum": _spec(
            [{"type": kind, "units": 3, "bias": False}, {"units": 1}], steps=1,
            optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9}),
        f"{kind} as the output layer": _spec([{"type": kind, "units": 2}], steps=4),
        f"{kind} truncated BPTT (bptt: 3 of T = 8), stacked {kind} -> {kind}": _spec(
            [{"type": kind, "units": 4, "return_sequences": True, "bptt": 3},
             {"type": kind, "units": 3, "bptt": 3}, {"units": 2}],
            steps=8, optimizer={"type": "adam", "lr": 0.01}),
    }  # fmt: skip


CASES = {**_cases("gru"), **_cases("lstm")}


@pytest.mark.parametrize("label", CASES)
def test_training_steps_follow_torch(build, label):
    spec = CASES[label]
    assert_follows_torch(build(spec), spec, label)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_float32_follows_torch(build, kind):
    spec = _spec([{"type": kind, "units": 6, "return_sequences": True}, {"units": 2}], steps=8,
                 dtype="float32", optimizer={"type": "adam", "lr": 0.01})  # fmt: skip
    assert_float32_follows_torch(build(spec), spec)


@pytest.mark.parametrize("kind, gates", [("gru", 3), ("lstm", 4)])
def test_default_init_is_pytorchs_distribution(kind, gates):
    """nn.GRU and nn.LSTM draw every parameter from U(−1/√units, 1/√units), gates stacked."""
    import symbackprop
    from symbackprop.core.evaluate import initial_params

    d = symbackprop.derive(_spec([{"type": kind, "units": 16}, {"units": 2}], feats=40))
    params = initial_params(d)
    ref = RECURRENT[kind](40, 16, batch_first=True)
    for name, own in (("W1", "weight_ih_l0"), ("U1", "weight_hh_l0"), ("b1", "bias_ih_l0"),
                      ("br1", "bias_hh_l0")):  # fmt: skip
        assert params[name].shape == tuple(getattr(ref, own).shape)
        assert np.abs(params[name]).max() <= 1 / 4
        assert np.abs(params[name]).max() > 0.9 / 4  # the whole range is used


# ---- the C target: equal to the NumPy target, strict and sanitizer-clean builds ---------------


@pytest.mark.parametrize("optimizer", [{"type": "sgd", "lr": 0.1}, {"type": "adam", "lr": 0.01}],
                         ids=["sgd (fused one-chunk steps)", "adam"])  # fmt: skip
def test_c_equals_numpy(optimizer, tmp_path):
    """Many steps, batches of one chunk and of several (300 rows > CHUNK), shuffled rows; a gru
    feeding an lstm feeding a gru, truncated BPTT on one of them."""
    spec = _spec([{"type": "gru", "units": 5, "return_sequences": True},
                  {"type": "lstm", "units": 4, "return_sequences": True, "bptt": 4},
                  {"type": "gru", "units": 3}, {"units": 2}], steps=6,
                 optimizer=optimizer)  # fmt: skip
    assert_c_equals_numpy(spec, tmp_path)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_c_bptt_reads_its_inputs_in_place(kind, tmp_path):
    """A many-to-one cell's C: BPTT reads the head's gradient in place (no [T, K·units] pad of
    zeros), the sums over time read δx_t and h_t in place (no copies), the LSTM's br gradient
    is b's sums copied (the GRU's differs: r scales its n-gate part). The numbers: the C and
    NumPy test above (the same cells, pads and slices) and the PyTorch ones."""
    generate(_spec([{"type": kind, "units": 4}, {"units": 2}], steps=5), tmp_path)
    header = (tmp_path / "seq.h").read_text()
    assert " delta1[" in header and " s1[" in header
    assert not any(f" {m}[" in header for m in ("ds1", "dx1", "hs1")), header
    copied = "memcpy(grads->br1, grads->b1, sizeof grads->br1);" in (tmp_path / "seq.c").read_text()
    assert copied == (kind == "lstm")


@pytest.mark.parametrize("flags", [["-Wall", "-Wextra", "-Werror", "-pedantic"],
                                   ["-O1", "-g", "-fsanitize=address,undefined",
                                    "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]],
                         ids=["strict", "sanitizers"])  # fmt: skip
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_c_program_trains_on_flattened_sequence_rows(flags, dtype, tmp_path):
    """The program trains and predicts on a CSV of [T·F features, targets] rows (rnn -> lstm ->
    gru, with and without bias)."""
    spec = _spec([{"type": "rnn", "units": 4, "return_sequences": True},
                  {"type": "lstm", "units": 3, "return_sequences": True, "bias": False},
                  {"type": "gru", "units": 3, "bptt": 2}, {"units": 2}], steps=3, feats=2,
                 dtype=dtype)  # fmt: skip
    assert_program_trains(spec, flags, tmp_path)


# ---- bad specs: one line naming the field, exit 2 -----------------------------------------------

BAD = [
    ({"inputs": 4, "layers": [{"type": "gru", "units": 3}, {"units": 1}]},
     "layers[0].input", "gru takes a sequence [T, F]; x is [4]"),
    ({"layers": [{"type": "lstm", "units": 3, "nonlinearity": "relu"}, {"units": 1}]},
     "layers[0].nonlinearity", "unknown field"),
    ({"layers": [{"type": "lstm", "units": 3, "bptt": 0}, {"units": 1}]}, "layers[0].bptt", ""),
    ({"layers": [{"type": "gru", "units": 0}, {"units": 1}]}, "layers[0].units", ""),
    ({"layers": [{"type": "gru", "units": 3, "return_sequences": "yes"}, {"units": 1}]},
     "layers[0].return_sequences", ""),
]  # fmt: skip


@pytest.mark.parametrize("change, field, reason", BAD, ids=[b[1] + " " + b[2] for b in BAD])
def test_bad_gated_specs_are_refused(tmp_path, capsys, change, field, reason):
    import yaml

    from symbackprop.cli import main

    data = {"name": "bad", "inputs": [4, 2], "layers": [], **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["derive", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {field}: ") and reason in err, err
    assert err.count("\n") == 1


# ---- documents: scalar mode and the worked example ---------------------------------------------


def _tiny(kind: str) -> dict:
    return {"name": f"tiny_{kind}", "inputs": [2, 2], "seed": 1, "loss": "mse",
            "optimizer": {"type": "sgd", "lr": 0.1},
            "layers": [{"type": kind, "units": 2}, {"units": 1}]}  # fmt: skip


TINY_X = [[0.5, -1.0], [0.25, 0.75]]


def _tiny_torch(spec):
    import symbackprop
    from symbackprop.core.evaluate import initial_params

    params = initial_params(symbackprop.derive(spec))
    ref = Reference(spec, params, torch.float64)
    ref.loss(
        torch.tensor([TINY_X], dtype=torch.float64), torch.tensor([[0.3]], dtype=torch.float64)
    ).backward()
    return params, {k: p.grad.numpy() for k, p in ref.named().items()}


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_scalar_mode_gradients_are_pytorchs(kind):
    """Every element's gradient in scalar mode (every gate, state and δ named per step,
    substituted back by their own definitions down to x, t and the parameters) equals autograd
    through nn.GRU / nn.LSTM."""
    import sympy as sp

    import symbackprop
    from symbackprop.core.ir import param_element_name
    from symbackprop.core.ops import indices
    from symbackprop.core.scalar import instantiate

    spec = _tiny(kind)
    d = symbackprop.derive(spec)
    sd = instantiate(d)
    defs = {sp.Symbol(n, real=True): e for n, e in sd.definitions}
    params, want = _tiny_torch(spec)
    values = {sp.Symbol(f"x{f + 1}[{t + 1}]", real=True): TINY_X[t][f]
              for t in range(2) for f in range(2)}  # fmt: skip
    # x1[2] is feature 1 at step 2 (CONTRACT §6)
    values[sp.Symbol("t1", real=True)] = 0.3
    values[sp.Symbol("N", positive=True, integer=True)] = 1
    for p in d.params:
        for ix in indices(p.shape):
            values[sp.Symbol(param_element_name(p, ix), real=True)] = float(params[p.name][ix])
    assert sd.gradients
    numbers: dict = {}  # each definition's value, once (the chains share them)

    def value(e):
        e = sp.sympify(e)
        for s in e.free_symbols - values.keys() - numbers.keys():
            numbers[s] = value(defs[s])
        return float(e.xreplace({**values, **numbers}))

    for g in sd.gradients:
        assert value(g.expr) == pytest.approx(want[g.param][g.index], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_worked_example_json_is_pytorchs(tmp_path, capsys, kind):
    """`derive --at --format json`: the loss, gradients and SGD update as autograd."""
    import json

    import yaml

    from symbackprop.cli import main

    spec, sample = tmp_path / "tiny.yaml", tmp_path / "sample.yaml"
    spec.write_text(yaml.safe_dump(_tiny(kind)))
    sample.write_text(yaml.safe_dump({"x": TINY_X, "t": [0.3]}))
    assert main(["derive", str(spec), "--at", str(sample), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    params, want = _tiny_torch(_tiny(kind))
    for name, g in want.items():
        np.testing.assert_allclose(out["gradients"][name], g, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(out["updated"][name], params[name] - 0.1 * g, rtol=1e-12)


def test_documents_print_the_gate_and_cell_state_recurrences():
    import symbackprop
    from symbackprop.document.sections import render as render_document

    text = render_document(symbackprop.derive(_tiny("lstm")), "text")
    assert "c_t = c_(t-1)*f_t + g_t*i_t; k_t = tanh(c_t); h_t = k_t*o_t" in text
    assert "i_t = sigma((U1 @ h_(t-1) + br)_i + (W1 @ x_t + b)_i)" in text
    assert "dc_t (direct) = f_t*(dc_(t+1)" in text  # the cell state's path back in time
    assert "dU1 = 1/N * sum_n sum_t dx1_t @ hs1_(t-1).T" in text
    text = render_document(symbackprop.derive(_tiny("gru")), "text")
    assert "n_t = tanh((W1 @ x_t + b)_n + m_t*r_t); h_t = h_(t-1)*z_t + n_t*(1 - z_t)" in text
    assert "dh_t (direct) = z_t*(dh_(t+1) + dl/dh_t)" in text
    latex = render_document(symbackprop.derive(_tiny("gru")), "latex")
    assert r"\sigma" in latex and r"\tanh" in latex
