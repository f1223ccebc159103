"""Parity with PyTorch: the derived loss, gradients and optimizer steps equal torch's (float64).

The reference (tests/torch_reference.py) builds the same network with torch.nn.functional and
torch.optim from the spec dict; the package side is the Derivation, evaluated by
symbackprop.evaluate.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings, strategies as st
from torch_reference import CUSTOM_ACTIVATIONS, CUSTOM_LOSSES, torch_step

from symbackprop import Derivation, derive
from symbackprop.core.evaluate import apply_update, initial_params, run_program
from symbackprop.core.ir import N
from symbackprop.spec.load import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-10, 1e-13

HIDDEN = [
    "identity",
    "linear",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    {"name": "leaky_relu", "alpha": 0.2},
    "elu",
    {"name": "elu", "alpha": 0.5},
    "softplus",
    "silu",
    "gelu",
    *({"expr": e} for e in CUSTOM_ACTIVATIONS),
]

# (id, loss spec without reduction, last-layer activation)
LOSSES = [
    ("mse", {"type": "mse"}, "identity"),
    ("mse-softmax", {"type": "mse"}, "softmax"),
    ("sse", {"type": "sse", "scale": 0.5}, "sigmoid"),
    ("sse-tanh", {"type": "sse", "scale": 0.5}, "tanh"),
    ("custom", {"type": "custom", "expr": "log(cosh(y - t))"}, "identity"),
    ("custom-softmax", {"type": "custom", "expr": "log(cosh(y - t))"}, "softmax"),
    ("bce-sigmoid", {"type": "binary_cross_entropy"}, "sigmoid"),
    ("bce-identity", {"type": "binary_cross_entropy"}, "identity"),
    ("ce-softmax", {"type": "cross_entropy"}, "softmax"),
    ("ce-identity", {"type": "cross_entropy"}, "identity"),
]


def _id(value) -> str:
    return value if isinstance(value, str) else "-".join(str(v) for v in value.values())


@functools.cache
def _derive_json(text: str) -> Derivation:
    return derive(parse_spec(json.loads(text)))


def derivation(data: dict) -> Derivation:
    """derive(parse_spec(data)), cached per spec."""
    return _derive_json(json.dumps(data, sort_keys=True))


def targets(rng: np.random.Generator, loss: dict, n: int, k: int, one_hot: bool = False):
    """Targets valid for ``loss``: probabilities for the cross-entropies, reals otherwise."""
    if loss["type"] == "binary_cross_entropy":
        return rng.uniform(0.0, 1.0, size=(n, k))
    if loss["type"] == "cross_entropy":
        if one_hot:
            return np.eye(k)[rng.integers(0, k, size=n)]
        return rng.dirichlet(np.ones(k), size=n)
    return rng.normal(size=(n, k))


def loss_and_grad(d: Derivation, params: dict, X: np.ndarray, T: np.ndarray):
    """The package's loss and gradients at ``params`` (as evaluate does, at any parameters)."""
    dtype = np.dtype(d.spec.dtype)
    x, t = np.asarray(X, dtype=dtype), np.asarray(T, dtype=dtype)
    env = {"x": x, "t": t, N.name: np.asarray(x.shape[0], dtype=dtype)}
    run_program(d, d.forward, env, params)
    run_program(d, d.backward, env, params)
    grads = {name: np.asarray(env[op.out]).reshape(d.param(name).shape)
             for name, op in d.gradients.items()}  # fmt: skip
    return float(env["E"]), grads


def ours(d: Derivation, params: dict, batches: list, steps: int):
    """The package's training loop: (losses before each step, first gradients, params after)."""
    params = {k: np.array(v, copy=True) for k, v in params.items()}
    state: dict[str, dict] = {p.name: {} for p in d.trainable}
    losses, first = [], {}
    for k in range(1, steps + 1):
        X, T = batches[(k - 1) % len(batches)]
        loss, grads = loss_and_grad(d, params, X, T)
        losses.append(loss)
        if k == 1:
            first = grads
        for p in d.trainable:
            params[p.name] = apply_update(d, p, params[p.name], grads[p.name], state[p.name], k)
    return losses, first, params


def assert_same(ours_: dict, theirs: dict, rtol: float = RTOL, atol: float = ATOL) -> None:
    assert sorted(ours_) == sorted(theirs)
    for name in theirs:
        a, b = np.asarray(ours_[name]), np.asarray(theirs[name])
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)


def net(hidden, last, loss: dict, widths=(5, 4, 3), inputs: int = 3, **extra) -> dict:
    layers = [{"units": w, "activation": hidden} for w in widths[:-1]]
    layers.append({"units": widths[-1], "activation": last})
    return {"name": "parity", "inputs": inputs, "layers": layers, "loss": loss, **extra}


# 1. every activation x every loss x both reductions: loss, gradients and one SGD step


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("loss", "last"), [c[1:] for c in LOSSES], ids=[c[0] for c in LOSSES])
@pytest.mark.parametrize("hidden", HIDDEN, ids=_id)
def test_activation_loss(hidden, loss, last, reduction):
    data = net(hidden, last, {**loss, "reduction": reduction}, optimizer={"type": "sgd", "lr": 0.1})
    d = derivation(data)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5, 3))
    T = targets(rng, loss, 5, 3)
    ev = d.at((X, T))
    losses, grads, after = torch_step(data, ev.params, X, T)
    np.testing.assert_allclose(ev.loss, losses[0], rtol=RTOL, atol=ATOL)
    assert_same(ev.gradients, grads)
    assert_same(ev.updated, after)
    assert sorted(ev.gradients) == ["W1", "W2", "W3", "b1", "b2", "b3"]


@pytest.mark.parametrize("last", ["softmax", "identity"])
def test_cross_entropy_one_hot(last):
    loss = {"type": "cross_entropy"}
    data = net("tanh", last, loss, widths=(4, 5))
    d = derivation(data)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(6, 3))
    T = targets(rng, loss, 6, 5, one_hot=True)
    ev = d.at((X, T))
    losses, grads, _ = torch_step(data, ev.params, X, T)
    np.testing.assert_allclose(ev.loss, losses[0], rtol=RTOL, atol=ATOL)
    assert_same(ev.gradients, grads)


@pytest.mark.parametrize("expr", list(CUSTOM_LOSSES))
def test_custom_losses(expr):
    loss = {"type": "custom", "expr": expr, "reduction": "sum"}
    data = net("silu", "identity", loss)
    d = derivation(data)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 3))
    T = rng.normal(size=(5, 3))
    ev = d.at((X, T))
    losses, grads, _ = torch_step(data, ev.params, X, T)
    np.testing.assert_allclose(ev.loss, losses[0], rtol=RTOL, atol=ATOL)
    assert_same(ev.gradients, grads)


# 2. every optimizer and option: 25 steps over three batches of different sizes

OPTIMIZERS = [
    {"type": "sgd"},
    {"type": "sgd", "lr": 0.1},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"type": "sgd", "lr": 0.1, "weight_decay": 0.01},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"type": "sgd", "lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01},
    {"type": "adam"},
    {"type": "adam", "lr": 0.01},
    {"type": "adam", "lr": 0.01, "weight_decay": 0.01},
    {"type": "adam", "lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6},
    {"type": "adam", "lr": 0.02, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1},
    {"type": "adamw"},
    {"type": "adamw", "lr": 0.02, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1},
    {"type": "adamw", "lr": 0.01, "weight_decay": 0.0},
    {"type": "rmsprop"},
    {"type": "rmsprop", "momentum": 0.5},
    {"type": "rmsprop", "weight_decay": 0.1},
    {"type": "rmsprop", "alpha": 0.9},
    {"type": "rmsprop", "lr": 0.005, "alpha": 0.9, "eps": 1e-6, "momentum": 0.5,
     "weight_decay": 0.1},
]  # fmt: skip


def _opt_id(o: dict) -> str:
    return "-".join(f"{k}={v}" if k != "type" else str(v) for k, v in o.items())


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=_opt_id)
def test_optimizer_25_steps(optimizer):
    data = {
        "name": "opt",
        "inputs": 3,
        "layers": [
            {"units": 5, "activation": "tanh", "bias": {"trainable": False}},
            {"units": 4, "activation": "sigmoid", "bias": {"shape": "shared", "init": 0.1}},
            {"units": 2, "activation": "identity"},
        ],
        "loss": {"type": "mse"},
        "optimizer": optimizer,
    }
    d = derivation(data)
    rng = np.random.default_rng(4)
    batches = [(rng.normal(size=(n, 3)), rng.normal(size=(n, 2))) for n in (5, 4, 6)]
    params = initial_params(d)
    our_losses, our_grads, our_params = ours(d, params, batches, 25)
    losses, grads, after = torch_step(data, params, [b[0] for b in batches],
                                      [b[1] for b in batches], steps=25)  # fmt: skip
    np.testing.assert_allclose(our_losses, losses, rtol=RTOL, atol=ATOL)
    assert_same(our_grads, grads)
    assert_same(our_params, after)
    np.testing.assert_array_equal(our_params["b1"], params["b1"])  # frozen
    assert not np.allclose(our_params["W1"], params["W1"], rtol=0, atol=1e-6)  # it did train


def test_first_step_matches_evaluate():
    """ev.updated (one step from evaluate) equals the first step of the loop used above."""
    data = net("elu", "identity", {"type": "mse"}, optimizer={"type": "adam", "lr": 0.01})
    d = derivation(data)
    rng = np.random.default_rng(5)
    X, T = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    ev = d.at((X, T))
    _, _, params = ours(d, ev.params, [(X, T)], 1)
    assert_same(ev.updated, params, rtol=0, atol=0)


def test_float32():
    data = net("gelu", "softmax", {"type": "cross_entropy"}, dtype="float32",
               optimizer={"type": "adam", "lr": 0.01})  # fmt: skip
    d = derivation(data)
    rng = np.random.default_rng(6)
    X = rng.normal(size=(5, 3)).astype(np.float32)
    T = targets(rng, data["loss"], 5, 3).astype(np.float32)
    ev = d.at((X, T))
    assert ev.params["W1"].dtype == np.float32
    for g in ev.gradients.values():
        assert np.asarray(g).dtype == np.float32
    losses, grads, after = torch_step(data, ev.params, X, T)
    np.testing.assert_allclose(ev.loss, losses[0], rtol=1e-5)
    assert_same(ev.gradients, grads, rtol=1e-4, atol=1e-6)
    assert_same(ev.updated, after, rtol=1e-5, atol=1e-6)


# 3. bias variants and frozen weights

BIASES = {
    "per_unit": {},
    "per_unit-init": {"init": 0.25},
    "shared": {"shape": "shared"},
    "shared-init": {"shape": "shared", "init": -0.3},
    "frozen": {"trainable": False, "init": "uniform", "low": -0.5, "high": 0.5},
    "shared-frozen": {"shape": "shared", "init": 0.35, "trainable": False},
    "none": "none",
}


@pytest.mark.parametrize("frozen_weight", [None, 1, 2], ids=["all-W", "W1-frozen", "W2-frozen"])
@pytest.mark.parametrize("bias", list(BIASES))
@pytest.mark.parametrize(("loss", "last"), [({"type": "sse", "reduction": "sum"}, "sigmoid"),
                                            ({"type": "cross_entropy"}, "softmax")],
                         ids=["sse", "ce"])  # fmt: skip
def test_bias_and_frozen(bias, frozen_weight, loss, last):
    data = net("tanh", last, loss, optimizer={"type": "sgd", "lr": 0.2, "momentum": 0.9})
    for layer in data["layers"]:
        layer["bias"] = BIASES[bias]
    if frozen_weight:
        data["layers"][frozen_weight - 1]["weight"] = {"trainable": False}
    d = derivation(data)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(5, 3))
    T = targets(rng, loss, 5, 3)
    ev = d.at((X, T))
    shapes = {"shared": (), "shared-init": (), "shared-frozen": ()}
    for i, units in enumerate((5, 4, 3), start=1):
        if bias == "none":
            assert f"b{i}" not in ev.params
        else:
            assert ev.params[f"b{i}"].shape == shapes.get(bias, (units,))
    losses, grads, after = torch_step(data, ev.params, X, T)
    np.testing.assert_allclose(ev.loss, losses[0], rtol=RTOL, atol=ATOL)
    assert_same(ev.gradients, grads)
    assert_same(ev.updated, after)
    our_losses, _, our_params = ours(d, ev.params, [(X, T)], 5)
    losses, _, after = torch_step(data, ev.params, X, T, steps=5)
    np.testing.assert_allclose(our_losses, losses, rtol=RTOL, atol=ATOL)
    assert_same(our_params, after)
    for p in d.params:
        if not p.trainable:
            np.testing.assert_array_equal(our_params[p.name], ev.params[p.name])


def test_first_layer_entirely_frozen():
    """No trainable parameter in layer 1: its delta is never needed, gradients still match."""
    data = net("softplus", "identity", {"type": "mse"}, optimizer={"type": "sgd", "lr": 0.1})
    data["layers"][0]["weight"] = {"trainable": False}
    data["layers"][0]["bias"] = {"trainable": False}
    d = derivation(data)
    rng = np.random.default_rng(8)
    X, T = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    ev = d.at((X, T))
    assert sorted(ev.gradients) == ["W2", "W3", "b2", "b3"]
    losses, grads, after = torch_step(data, ev.params, X, T)
    np.testing.assert_allclose(ev.loss, losses[0], rtol=RTOL, atol=ATOL)
    assert_same(ev.gradients, grads)
    assert_same(ev.updated, after)


# 4. Matt Mazur's worked example


def test_mazur():
    path = ROOT / "examples" / "mazur.yaml"
    data = yaml.safe_load(path.read_text())
    d = derive(load_spec(path))
    X, T = np.array([[0.05, 0.10]]), np.array([[0.01, 0.99]])
    ev = d.at((X, T))
    losses, grads, after = torch_step(data, ev.params, X, T)
    np.testing.assert_allclose(ev.loss, losses[0], rtol=RTOL, atol=ATOL)
    assert_same(ev.gradients, grads)
    assert_same(ev.updated, after)
    # the numbers printed in the blog post
    np.testing.assert_allclose(ev.loss, 0.298371109, atol=1e-9)
    np.testing.assert_allclose(
        ev.updated["W2"], [[0.35891648, 0.408666186], [0.511301270, 0.561370121]], atol=1e-8
    )
    np.testing.assert_allclose(ev.updated["W1"], [[0.149780716, 0.19956143],
                                                  [0.24975114, 0.29950229]], atol=1e-8)  # fmt: skip
    np.testing.assert_array_equal(ev.updated["b1"], 0.35)
    np.testing.assert_array_equal(ev.updated["b2"], 0.60)


# 5. property: random nets, losses and optimizers

HYP_LOSSES = ["mse", "sse", "custom", "binary_cross_entropy", "cross_entropy"]


@st.composite
def cases(draw):
    depth = draw(st.integers(1, 3))
    inputs = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(HYP_LOSSES))
    widths = [draw(st.integers(1, 5)) for _ in range(depth)]
    if kind == "cross_entropy":
        widths[-1] = draw(st.integers(2, 5))
    loss: dict = {"type": kind, "reduction": draw(st.sampled_from(["mean", "sum"]))}
    if kind == "sse":
        loss["scale"] = draw(st.sampled_from([0.5, 1.0, 2.5]))
    if kind == "custom":
        loss["expr"] = draw(st.sampled_from(sorted(CUSTOM_LOSSES)))
    if kind == "binary_cross_entropy":
        last = draw(st.sampled_from(["sigmoid", "identity"]))
    elif kind == "cross_entropy":
        last = draw(st.sampled_from(["softmax", "identity"]))
    else:
        choices = ["identity", "sigmoid", "tanh", *HIDDEN[3:]]
        last = draw(st.sampled_from(choices + (["softmax"] if widths[-1] >= 2 else [])))
    optimizer = draw(st.sampled_from(OPTIMIZERS))
    normalised = last == "softmax" or kind == "cross_entropy"
    layers = []
    for i, units in enumerate(widths):
        is_last = i == depth - 1
        act = last if is_last else draw(st.sampled_from(HIDDEN))
        bias = draw(st.sampled_from(list(BIASES)))
        if is_last and normalised and optimizer["type"] != "sgd" and "shared" in bias:
            # A shared bias before softmax has gradient exactly 0 in exact arithmetic, so both
            # sides hold rounding noise (~1e-17) that Adam/RMSprop scale up to +-lr.
            bias = "per_unit"
        weight = {"init": draw(st.sampled_from(["pytorch", "xavier_uniform", "he_normal"]))}
        if not is_last and draw(st.integers(0, 4)) == 0:
            weight["trainable"] = False
        layers.append({"units": units, "activation": act, "weight": weight,
                       "bias": BIASES[bias]})  # fmt: skip
    data = {"name": "prop", "inputs": inputs, "seed": draw(st.integers(0, 2**32)),
            "layers": layers, "loss": loss, "optimizer": optimizer}  # fmt: skip
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    X = rng.normal(size=(n, inputs))
    T = targets(rng, loss, n, widths[-1], one_hot=draw(st.booleans()))
    return data, X, T


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_property_random_nets(case):
    data, X, T = case
    note(json.dumps(data))
    d = derive(parse_spec(data))
    ev = d.at((X, T))
    losses, grads, after = torch_step(data, ev.params, X, T, steps=1)
    np.testing.assert_allclose(ev.loss, losses[0], rtol=1e-9, atol=1e-12)
    assert_same(ev.gradients, grads, rtol=1e-9, atol=1e-12)
    assert_same(ev.updated, after, rtol=1e-9, atol=1e-12)
