"""Convolution and pooling layers (issue 14) against torch.nn: loss, gradients and 10 SGD steps
in float64 to 1e-10, for every kind and option (stride with padding, uneven 'same' padding,
dilation, grouped and depthwise convolutions, max pooling with ties, avg pooling with padding,
global average pooling, conv1d), in the generated targets; spec errors for impossible shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conv_reference import train
from test_c_memory import SANITIZE

import symbackprop
from symbackprop.codegen.c import c_module
from symbackprop.codegen.numpy import numpy_module
from symbackprop.codegen.torch.loader import torch_module
from symbackprop.spec.errors import SpecError

MAKERS = {"numpy": numpy_module, "c": c_module, "torch": torch_module}
TARGETS = list(MAKERS)
_BUILT: dict = {}


@pytest.fixture(params=TARGETS)
def conv_build(request, tmp_path_factory):
    """build(spec dict) -> the generated module of the target (derived once per spec)."""

    def _build(data: dict):
        key = (request.param, json.dumps(data, sort_keys=True))
        if key not in _BUILT:
            folder = tmp_path_factory.mktemp(f"{request.param}-conv")
            _BUILT[key] = MAKERS[request.param](symbackprop.derive(data), folder)
        return _BUILT[key]

    return _build


def net(name, inputs, layers, loss="mse", **extra):
    return {"name": name, "inputs": inputs, "seed": 7, "layers": layers,
            "loss": {"type": loss}, "optimizer": {"type": "sgd", "lr": 0.05, **extra}}  # fmt: skip


SPECS = [
    net("c2_stride_pad_max", [2, 7, 7], [
        {"type": "conv2d", "channels": 3, "kernel": 3, "stride": 2, "padding": 1,
         "activation": "relu"},
        {"type": "maxpool2d", "kernel": 2},
        {"type": "flatten"},
        {"units": 3, "activation": "softmax"}], "cross_entropy"),
    net("c2_same_dilation_avg", [1, 6, 6], [
        {"type": "conv2d", "channels": 2, "kernel": [2, 3], "padding": "same", "dilation": [2, 1],
         "activation": "tanh"},
        {"type": "avgpool2d", "kernel": 2, "stride": 2, "padding": 1},
        {"type": "flatten"},
        {"units": 2}]),
    net("c2_grouped_depthwise_gap", [4, 5, 5], [
        {"type": "conv2d", "channels": 4, "kernel": 3, "groups": 4, "padding": [1, 0],
         "activation": "relu"},
        {"type": "conv2d", "channels": 6, "kernel": 2, "groups": 2, "activation": "tanh"},
        {"type": "global_avgpool"},
        {"units": 3, "activation": "softmax"}], "cross_entropy", momentum=0.9),
    net("c1_stride_dilation", [3, 12], [
        {"type": "conv1d", "channels": 4, "kernel": 3, "stride": 2, "dilation": 2,
         "padding": 2, "activation": "relu"},
        {"type": "maxpool1d", "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avgpool1d", "kernel": 2},
        {"type": "flatten"},
        {"units": 2}]),
    net("c2_flatten_after_relu", [2, 4, 4], [
        {"type": "conv2d", "channels": 3, "kernel": 3, "activation": "relu"},
        {"type": "flatten"},
        {"units": 2, "activation": "softmax"}], "cross_entropy"),
    net("c2_overlapping_max_no_bias", [1, 6, 6], [
        {"type": "conv2d", "channels": 2, "kernel": 2, "bias": "none"},
        {"type": "maxpool2d", "kernel": 3, "stride": 1},
        {"type": "flatten"},
        {"units": 2}]),
]  # fmt: skip


def data(spec: dict, n: int, ties: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *spec["inputs"]))
    if ties:  # few distinct values: windows of max pooling tie often
        X = np.round(X)
    k = spec["layers"][-1]["units"]
    if spec["loss"]["type"] == "cross_entropy":
        T = np.eye(k)[rng.integers(0, k, n)]
    else:
        T = rng.normal(size=(n, k))
    return X, T


def close(a, b, rtol):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    assert np.allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max()))), float(
        np.abs(a - b).max()
    )


@pytest.mark.parametrize("spec", SPECS, ids=[s["name"] for s in SPECS])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_ten_steps_equal_torch(spec, ties, conv_build):
    m = conv_build(spec)
    params = m.init_params()
    X, T = data(spec, 6, ties)
    history, grads = train(spec, params, X, T, 10, spec["optimizer"]["lr"],
                           spec["optimizer"].get("momentum", 0.0))  # fmt: skip
    E, g = m.loss_and_grad(params, X, T)
    close(E, grads["E"], 1e-10)
    for name in m.TRAINABLE:
        close(g[name], grads[name], 1e-10)
    state = m.init_state(params)
    for k in range(10):
        m.step(params, state, X, T)
        for name in m.TRAINABLE:
            close(params[name], history[k][name], 1e-10)


def test_forward_takes_flat_or_shaped_rows(conv_build):
    spec = SPECS[0]
    m = conv_build(spec)
    params = m.init_params()
    X, _ = data(spec, 3)
    close(m.forward(params, X), m.forward(params, X.reshape(3, -1)), 0)


def test_derivation_evaluates_like_the_target(conv_build):
    """derive --at's NumPy interpreter and the generated module agree (gradient of a batch)."""
    from symbackprop.core.evaluate import evaluate

    spec = SPECS[2]
    d = symbackprop.derive(spec)
    m = conv_build(spec)
    params = m.init_params()
    X, T = data(spec, 2)
    ev = evaluate(d, (X, T))  # at the spec's initial parameters, as init_params()
    for name in m.TRAINABLE:
        assert np.array_equal(ev.params[name], params[name])
    _, g = m.loss_and_grad(params, X, T)
    for name in m.TRAINABLE:
        close(ev.gradients[name], g[name], 1e-12)


@pytest.mark.parametrize("layer, field, reason", [
    ({"type": "conv2d", "channels": 2, "kernel": 9}, "layers[0].kernel", "smaller than"),
    ({"type": "conv2d", "channels": 2, "kernel": 3, "stride": 2, "padding": "same"},
     "layers[0].padding", "stride 1"),
    ({"type": "conv2d", "channels": 3, "kernel": 1, "groups": 2}, "layers[0].groups", "divide"),
    ({"type": "conv1d", "channels": 2, "kernel": 2}, "layers[0].input", "[C, L]"),
    ({"type": "maxpool2d", "kernel": 2, "padding": 2}, "layers[0].padding", "half"),
    ({"type": "conv2d", "channels": 2, "kernel": [1, 2, 3]}, "layers[0].kernel", "list of 2"),
])  # fmt: skip
def test_impossible_shapes_are_spec_errors(layer, field, reason):
    spec = {"name": "bad", "inputs": [2, 4, 4], "layers": [layer, {"type": "flatten"},
                                                           {"units": 1}]}  # fmt: skip
    with pytest.raises(SpecError) as err:
        symbackprop.parse_spec(spec)
    assert err.value.field == field and reason in err.value.reason


# ---- the C target against the NumPy target, its strict build and its sanitizers -------------

STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic"]


@pytest.mark.parametrize("spec", SPECS, ids=[s["name"] for s in SPECS])
def test_c_equals_numpy(spec, tmp_path):
    """Initial weights bit for bit; loss and gradients over 300 rows (two workspace chunks) at
    1e-12; 10 steps of batches of varying size."""
    c = c_module(symbackprop.derive(spec), tmp_path / "c", cflags=STRICT)
    m = numpy_module(symbackprop.derive(spec), tmp_path / "np")
    pc, pn = c.init_params(), m.init_params()
    for name in pn:
        assert np.array_equal(pc[name], pn[name]), name
    X, T = data(spec, 300, ties=True)
    E_c, g_c = c.loss_and_grad(pc, X, T)
    E_n, g_n = m.loss_and_grad(pn, X, T)
    close(E_c, E_n, 1e-12)
    for name in g_n:
        close(g_c[name], g_n[name], 1e-12)
    close(c.forward(pc, X), m.forward(pn, X), 1e-12)
    sc, sn = c.init_state(pc), m.init_state(pn)
    for k in range(10):
        rows = slice(11 * k, 11 * k + 1 + 29 * k)
        close(c.step(pc, sc, X[rows], T[rows]), m.step(pn, sn, X[rows], T[rows]), 1e-12)
    for name in pn:
        close(pc[name], pn[name], 1e-12)


@pytest.mark.parametrize("spec", SPECS[:3], ids=[s["name"] for s in SPECS[:3]])
@pytest.mark.parametrize("target", ["numpy", "c", "torch"])
def test_float32_steps_near_torch(spec, target, tmp_path):
    """float32 targets follow torch's float64 steps to 1e-4."""
    spec32 = {**spec, "name": spec["name"] + "_f32", "dtype": "float32"}
    m = MAKERS[target](symbackprop.derive(spec32), tmp_path)
    params = m.init_params()
    assert all(p.dtype == np.float32 for p in params.values())
    X, T = data(spec, 6)
    history, _ = train(spec, params, X, T, 10, spec["optimizer"]["lr"],
                       spec["optimizer"].get("momentum", 0.0))  # fmt: skip
    state = m.init_state(params)
    for _ in range(10):
        m.step(params, state, X.astype(np.float32), T.astype(np.float32))
    for name in m.TRAINABLE:
        close(params[name], history[-1][name], 1e-4)


ALL_KINDS = net("all_kinds", [2, 9, 9], [
    {"type": "conv2d", "channels": 4, "kernel": 3, "stride": 2, "padding": "valid",
     "activation": "relu"},
    {"type": "conv2d", "channels": 4, "kernel": 2, "groups": 4, "padding": "same",
     "dilation": 2},
    {"type": "maxpool2d", "kernel": 2, "stride": 1, "padding": 1},
    {"type": "avgpool2d", "kernel": 3, "stride": 2, "padding": 1},
    {"type": "global_avgpool"},
    {"units": 3, "activation": "softmax"}], "cross_entropy")  # fmt: skip
ALL_KINDS_1D = net("all_kinds_1d", [2, 10], [
    {"type": "conv1d", "channels": 3, "kernel": 3, "padding": "same", "activation": "tanh"},
    {"type": "maxpool1d", "kernel": 2},
    {"type": "avgpool1d", "kernel": 2, "padding": 1},
    {"type": "flatten"},
    {"units": 2}])  # fmt: skip


@pytest.mark.parametrize("spec", [ALL_KINDS, ALL_KINDS_1D], ids=["2d", "1d"])
def test_c_program_strict_and_sanitizer_clean(spec, tmp_path):
    """Every conv and pooling kind in one net: the program builds with -Wall -Wextra -Werror
    -pedantic, and trains and predicts clean under AddressSanitizer and UBSan."""
    import subprocess

    from symbackprop.codegen import render
    from symbackprop.codegen.c.build import build_program

    for name, text in render(symbackprop.derive(spec), "c").items():
        (tmp_path / name).write_text(text)
    assert build_program(tmp_path, STRICT).exists()
    program = build_program(tmp_path, SANITIZE)
    X, T = data(spec, 13, ties=True)
    labels = T.argmax(axis=1)[:, None] if spec["loss"]["type"] == "cross_entropy" else T
    good = tmp_path / "good.csv"
    np.savetxt(good, np.hstack([X.reshape(13, -1), labels]), delimiter=",", fmt="%.17g")
    weights = tmp_path / "w.txt"
    for cmd in (["train", good, "--epochs", "3", "--batch-size", "5", "--out", weights],
                ["predict", weights, good]):  # fmt: skip
        out = subprocess.run([str(a) for a in (program, *cmd)], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)  # fmt: skip
        assert out.returncode == 0 and "Sanitizer" not in out.stderr, out.stderr
    assert len(out.stdout.splitlines()) == 13


def test_digits_example_trains_to_97_percent_in_c(tmp_path):
    """examples/digits_cnn.yaml, trained by the generated C on the shipped training split,
    classifies at least 97% of the held-out digits."""
    root = Path(__file__).resolve().parents[1]
    spec = symbackprop.load_spec(root / "examples/digits_cnn.yaml")
    c = c_module(symbackprop.derive(spec), tmp_path)

    def load(name):
        a = np.loadtxt(root / "examples/data" / name, delimiter=",", skiprows=1)
        return a[:, :64].reshape(-1, 1, 8, 8), np.eye(10)[a[:, 64].astype(int)]

    X, T = load("digits_train.csv")
    Xt, Tt = load("digits_test.csv")
    assert len(X) == 1437 and len(Xt) == 360
    params = c.init_params()
    c.train(params, X, T, spec.train.epochs, spec.train.batch_size, seed=1,
            state=c.init_state(params))  # fmt: skip
    assert c.accuracy(params, Xt, Tt) >= 0.97


# ---- the documents: scalar mode, the worked example, verify ---------------------------------

WORKED = net("conv_worked", [1, 4, 4], [
    {"type": "conv2d", "channels": 2, "kernel": 2, "activation": "relu"},
    {"type": "maxpool2d", "kernel": 3, "stride": 1},
    {"type": "flatten"},
    {"units": 1}])  # fmt: skip
WORKED_X = np.array([[[[1, 2, 0, -1], [0, 1, 3, 1], [2, -1, 1, 0], [1, 0, 2, 1]]]], float)


def test_scalar_mode_gradients_equal_torch():
    """One 4x4 input, two 2x2 kernels, max pooling: every kernel element's scalar-mode chain
    (Σ_p ∂E/∂z_p ∂z_p/∂w, element by element, w1_2_1_1_1 ...) equals torch's gradient, and so
    does the worked example (derive --at) of the tensor mode."""
    import sympy as sp

    from symbackprop.core.scalar import values_at

    d = symbackprop.derive(WORKED)
    T = np.array([[0.5]])
    ev = d.at((WORKED_X, T))
    _, grads = train(WORKED, ev.params, WORKED_X, T, 1, 0.05)
    sd = d.scalar()
    values = values_at(d, ev, 0)
    names = set()
    for g in sd.gradients:
        total = float(sp.Mul(*(f.expr for f in g.factors)).xreplace(values))
        total *= float(g.scale.xreplace(values))
        close(total, grads[g.param][g.index], 1e-12)
        names.add(g.element)
    assert {"w1_2_1_1_1", "w1_1_1_2_2", "b1_2", "w4_12"} <= names
    for name, g in ev.gradients.items():
        close(g, grads[name], 1e-12)


def test_worked_example_document_prints_the_kernel_sums(tmp_path):
    """derive --mode scalar --at: each kernel gradient written as its sum over positions, with
    the numbers, ending in torch's value."""
    from symbackprop.cli import main

    spec, sample = tmp_path / "w.json", tmp_path / "s.json"
    spec.write_text(json.dumps(WORKED))
    sample.write_text(json.dumps({"x": WORKED_X[0].tolist(), "t": [0.5]}))
    out = tmp_path / "doc.txt"
    assert main(["derive", str(spec), "--mode", "scalar", "--at", str(sample), "-o", str(out)]) == 0
    text = out.read_text()
    d = symbackprop.derive(WORKED)
    ev = d.at((WORKED_X, np.array([[0.5]])))
    _, grads = train(WORKED, ev.params, WORKED_X, np.array([[0.5]]), 1, 0.05)
    line = next(x for x in text.splitlines() if x.strip().startswith("dE/dw1_2_1_1_1 ="))
    assert "sum_p dE/dz1_p * dz1_p/dw1_2_1_1_1" in line and "delta1_2_1_1*x1_1_1" in line
    assert float(line.rsplit("=", 1)[1]) == pytest.approx(grads["W1"][1, 0, 0, 0], rel=1e-8)


def test_verify_takes_a_hand_formula_for_a_kernel_element(tmp_path):
    from symbackprop.cli import main

    spec = tmp_path / "w.json"
    spec.write_text(json.dumps(WORKED))
    right = " + ".join(f"delta1_1_{i}_{j}*x1_{i}_{j}" for i in (1, 2, 3) for j in (1, 2, 3))
    assert main(["verify", str(spec), "--wrt", "w1_1_1_1_1", "--expr", right]) == 0
    assert main(["verify", str(spec), "--wrt", "w1_1_1_1_1", "--expr", "delta1_1_1_1*x1_1_1"]) == 1
