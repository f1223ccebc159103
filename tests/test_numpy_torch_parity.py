"""The generated NumPy module and C library against PyTorch autograd + torch.optim, step for step.

Each spec is derived, rendered to a standalone NumPy module (``codegen.numpy.numpy_module``)
and imported; the module's ``step`` / ``train`` are then run side by side with the independent
PyTorch reference of tests/torch_reference.py from the same initial parameters (the module's own
``init_params``) on the same batches.  float64 agrees to 1e-10 relative over 25 steps (every loss
and the final parameters), float32 to 1e-4 relative against torch float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings, strategies as st
from torch_reference import CUSTOM_ACTIVATIONS, CUSTOM_LOSSES, torch_forward, torch_step

from symbackprop.core.prng import permutation

ROOT = Path(__file__).resolve().parents[1]
STEPS = 25
F64 = {"rtol": 1e-10, "atol": 1e-13}
F32 = {"rtol": 1e-4, "atol": 1e-6}


def targets(rng: np.random.Generator, loss: dict, n: int, k: int, one_hot: bool = False):
    """Targets valid for ``loss``: probabilities for the cross-entropies, reals otherwise."""
    if loss["type"] == "binary_cross_entropy":
        return rng.uniform(0.0, 1.0, size=(n, k))
    if loss["type"] == "cross_entropy":
        if one_hot:
            return np.eye(k)[rng.integers(0, k, size=n)]
        return rng.dirichlet(np.ones(k), size=n)
    return rng.normal(size=(n, k))


def make_batches(data: dict, seed: int, sizes=(5, 3, 1, 4), one_hot: bool = False) -> list:
    """Batches of the given sizes (one of a single sample) for the spec's inputs and outputs."""
    rng = np.random.default_rng(seed)
    outputs = data["layers"][-1]["units"]
    return [
        (rng.normal(size=(n, data["inputs"])), targets(rng, data["loss"], n, outputs, one_hot))
        for n in sizes
    ]


def net(hidden, last, loss: dict, optimizer: dict, widths=(5, 4, 3), inputs: int = 3, **extra):
    layers = [{"units": w, "activation": hidden} for w in widths[:-1]]
    layers.append({"units": widths[-1], "activation": last})
    return {"name": "parity", "inputs": inputs, "seed": 11, "layers": layers, "loss": loss,
            "optimizer": optimizer, **extra}  # fmt: skip


def assert_same(ours: dict, theirs: dict, tol: dict) -> None:
    assert sorted(ours) == sorted(theirs)
    for name, ref in theirs.items():
        got = np.asarray(ours[name])
        assert got.shape == np.shape(ref), name
        np.testing.assert_allclose(got, ref, **tol, err_msg=name)


def check_steps(module, data: dict, batches: list, tol: dict, steps: int = STEPS) -> dict:
    """Run ``steps`` optimizer steps in both, cycling through ``batches``; compare everything."""
    dtype = np.float32 if data.get("dtype") == "float32" else np.float64
    start = module.init_params()
    for name, shape in module.PARAM_SHAPES.items():
        assert start[name].shape == tuple(shape) and start[name].dtype == dtype, name
    params = {k: v.copy() for k, v in start.items()}
    E0, grads = module.loss_and_grad(params, *batches[0])
    assert module.loss(params, *batches[0]) == E0
    X0 = batches[0][0]
    np.testing.assert_allclose(module.forward(params, X0), torch_forward(data, start, X0), **tol)
    state = module.init_state(params)
    losses = [module.step(params, state, *batches[k % len(batches)]) for k in range(steps)]
    ref_losses, ref_grads, ref_params = torch_step(
        data, start, [b[0] for b in batches], [b[1] for b in batches], steps=steps
    )
    assert all(isinstance(e, float) for e in losses)
    assert np.isfinite(losses).all() and all(np.isfinite(v).all() for v in params.values())
    assert losses[0] == E0  # step returns the loss before the step
    np.testing.assert_allclose(losses, ref_losses, **tol, err_msg="losses")
    assert set(grads) == set(module.TRAINABLE)
    assert_same(grads, ref_grads, tol)
    assert_same(params, ref_params, tol)
    for name, value in params.items():
        assert value.dtype == dtype, name
        if name not in module.TRAINABLE:
            np.testing.assert_array_equal(value, start[name], err_msg=name)
    assert any(not np.array_equal(params[n], start[n]) for n in module.TRAINABLE)  # it trained
    return params


# 1. every optimizer (torch.optim's rules and defaults), 25 steps

OPTIMIZERS = [
    {"type": "sgd"},
    {"type": "sgd", "lr": 0.1},
    {"type": "sgd", "lr": 0.1, "momentum": 0.9},
    {"type": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.3},
    {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
    {"type": "sgd", "lr": 0.1, "weight_decay": 0.05},
    {"type": "sgd", "lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
    {"type": "adam"},
    {"type": "adam", "lr": 0.01, "weight_decay": 0.1},
    {"type": "adam", "lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6},
    {"type": "adam", "lr": 0.02, "betas": [0.5, 0.9], "eps": 1e-4, "weight_decay": 0.01},
    {"type": "rmsprop"},
    {"type": "rmsprop", "lr": 0.005, "momentum": 0.7},
    {"type": "rmsprop", "alpha": 0.9},
    {"type": "rmsprop", "weight_decay": 0.1},
    {"type": "rmsprop", "lr": 0.003, "alpha": 0.95, "eps": 1e-6, "momentum": 0.5,
     "weight_decay": 0.05},
]  # fmt: skip


def _opt_id(o: dict) -> str:
    return "-".join(f"{k}={v}" if k != "type" else str(v) for k, v in o.items())


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=_opt_id)
def test_optimizer(build, optimizer):
    data = net("tanh", "identity", {"type": "mse"}, optimizer, widths=(6, 4, 2))
    data["layers"][1]["activation"] = "sigmoid"
    check_steps(build(data), data, make_batches(data, 1), F64)


def test_optimizer_given_as_a_bare_name(build):
    """``optimizer: adam`` is adam with torch's defaults, like ``{type: adam}``."""
    data = net("tanh", "identity", {"type": "mse"}, "adam")
    check_steps(build(data), data, make_batches(data, 2), F64)


# 2. every loss, both reductions

LOSSES = [
    ("mse", {"type": "mse"}, "identity", False),
    ("mse-softmax", {"type": "mse"}, "softmax", False),
    ("sse-scale", {"type": "sse", "scale": 0.5}, "sigmoid", False),
    ("sse-scale-2.5", {"type": "sse", "scale": 2.5}, "tanh", False),
    ("custom-logcosh", {"type": "custom", "expr": "log(cosh(y - t))"}, "identity", False),
    ("custom-quartic", {"type": "custom", "expr": "(y - t)**2/2 + (y - t)**4/4"}, "tanh", False),
    ("custom-exp", {"type": "custom", "expr": "exp(y - t) - (y - t)"}, "sigmoid", False),
    ("bce-sigmoid", {"type": "binary_cross_entropy"}, "sigmoid", False),
    ("bce-identity", {"type": "binary_cross_entropy"}, "identity", False),
    ("ce-softmax", {"type": "cross_entropy"}, "softmax", False),
    ("ce-identity", {"type": "cross_entropy"}, "identity", False),
    ("ce-softmax-onehot", {"type": "cross_entropy"}, "softmax", True),
    ("ce-identity-onehot", {"type": "cross_entropy"}, "identity", True),
]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("loss", "last", "one_hot"), [c[1:] for c in LOSSES],
                         ids=[c[0] for c in LOSSES])  # fmt: skip
def test_loss(build, loss, last, one_hot, reduction):
    optimizer = {"type": "sgd", "lr": 0.05 if reduction == "mean" else 0.01, "momentum": 0.9}
    data = net("elu", last, {**loss, "reduction": reduction}, optimizer)
    check_steps(build(data), data, make_batches(data, 3, one_hot=one_hot), F64)


# The generated BCE backward evaluates sigmoid as 1/(1 + exp(-z)): right for any z, but NumPy
# warns "overflow encountered in exp" when z < -709.
@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_bce_identity_is_stable_for_large_logits(build):
    """BCE from the logits: finite and equal to torch when the logits are in the hundreds."""
    loss = {"type": "binary_cross_entropy"}
    data = net("identity", "identity", loss, {"type": "sgd", "lr": 1e-4}, widths=(2,))
    data["layers"][0]["weight"] = {"init": [[300.0, -200.0, 0.0], [-500.0, 400.0, 1.0]]}
    batches = [(np.array([[1.0, 1.0, 1.0], [-2.0, 1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0]]))]
    check_steps(build(data), data, batches, F64)


def test_ce_identity_is_stable_for_large_logits(build):
    loss = {"type": "cross_entropy"}
    data = net("identity", "identity", loss, {"type": "sgd", "lr": 1e-4}, widths=(3,))
    data["layers"][0]["weight"] = {"init": [[900.0, 0.0], [0.0, -800.0], [1.0, 1.0]]}
    data["inputs"] = 2
    batches = [(np.array([[1.0, 1.0], [-1.0, 2.0]]), np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]]))]
    check_steps(build(data), data, batches, F64)


@pytest.mark.parametrize("logit", [20.0, 40.0])
def test_bce_loss_keeps_relative_precision_for_confident_logits(build, logit):
    """torch's BCEWithLogits is log1p(exp(-|z|)) + ...: 2.0611536203e-09 at z = 20, t = 1."""
    data = net(None, "sigmoid", {"type": "binary_cross_entropy"}, {"type": "sgd"}, widths=(1,),
               inputs=1)  # fmt: skip
    data["layers"][0].update(weight={"init": [[1.0]]}, bias={"init": 0.0})
    module = build(data)
    X, T = np.array([[logit]]), np.array([[1.0]])
    losses, _, _ = torch_step(data, module.init_params(), X, T)
    assert losses[0] > 0.0
    np.testing.assert_allclose(module.loss(module.init_params(), X, T), losses[0], rtol=1e-10)


# 3. activations (every hidden layer)

ACTIVATIONS = [
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
    "identity",
    *({"expr": e} for e in CUSTOM_ACTIVATIONS),
]


def _act_id(value) -> str:
    return value if isinstance(value, str) else "-".join(str(v) for v in value.values())


@pytest.mark.parametrize("hidden", ACTIVATIONS, ids=_act_id)
def test_activation(build, hidden):
    optimizer = {"type": "adam", "lr": 0.01}
    data = net(hidden, "softmax", {"type": "cross_entropy"}, optimizer, widths=(6, 5, 3))
    check_steps(build(data), data, make_batches(data, 4), F64)


def test_relu_kink_follows_pytorch(build):
    """relu'(0) = 0 as in PyTorch: pre-activations exactly 0 on the first step."""
    data = net("relu", "identity", {"type": "mse"}, {"type": "sgd", "lr": 0.1}, widths=(3, 2))
    data["layers"][0]["weight"] = {"init": [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 1.0, -1.0]]}
    data["layers"][0]["bias"] = {"init": 0.0}
    batches = [(np.array([[1.0, 1.0, 3.0], [0.5, 0.5, 0.0]]), np.array([[1.0, -1.0], [0.5, 2.0]]))]
    check_steps(build(data), data, batches, F64)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize(("dtype", "z"), [("float64", 800.0), ("float32", 100.0)])
def test_softplus_large_preactivation(build, dtype, z):
    data = net(None, "softplus", {"type": "mse"}, {"type": "sgd"}, widths=(1,), inputs=1,
               dtype=dtype)  # fmt: skip
    data["layers"][0].update(weight={"init": [[1.0]]}, bias={"init": 0.0})
    module = build(data)
    params = module.init_params()
    X, T = np.array([[z], [1.0]]), np.array([[0.0], [0.5]])
    tol = F32 if dtype == "float32" else F64
    np.testing.assert_allclose(module.forward(params, X), torch_forward(data, params, X), **tol)
    check_steps(module, data, [(X, T)], tol, steps=1)


# 4. bias shapes, frozen parameters, a single layer

STRUCTURES = {
    "shared-bias": lambda d: [ly.update(bias={"shape": "shared", "init": 0.1}) for ly in d],
    "no-bias": lambda d: [ly.update(bias="none") for ly in d],
    "frozen-bias": lambda d: d[0].update(bias={"trainable": False, "init": "uniform"}),
    "frozen-W1": lambda d: d[0].update(weight={"trainable": False, "init": "he_normal"}),
    "frozen-layer1": lambda d: d[0].update(weight={"trainable": False},
                                           bias={"trainable": False}),
    "inits": lambda d: [d[0].update(weight={"init": "xavier_normal"}),
                        d[1].update(weight={"init": "normal", "std": 0.3}),
                        d[2].update(weight={"init": "uniform", "low": -0.2, "high": 0.4})],
}  # fmt: skip


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_structure(build, structure):
    optimizer = {"type": "rmsprop", "lr": 0.01, "momentum": 0.5}
    data = net("softplus", "identity", {"type": "sse", "reduction": "sum"}, optimizer)
    STRUCTURES[structure](data["layers"])
    check_steps(build(data), data, make_batches(data, 5), F64)


@pytest.mark.parametrize(("loss", "last"), [({"type": "binary_cross_entropy"}, "sigmoid"),
                                            ({"type": "cross_entropy"}, "softmax")],
                         ids=["logistic", "softmax"])  # fmt: skip
def test_single_layer(build, loss, last):
    data = net(None, last, loss, {"type": "sgd", "lr": 0.5}, widths=(3,), inputs=4)
    check_steps(build(data), data, make_batches(data, 6), F64)


# 5. float32 against torch float32

FLOAT32 = [
    ("sgd-nesterov-wd", {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                         "weight_decay": 0.01}, {"type": "mse"}, "identity", "tanh"),
    ("sgd-dampening", {"type": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.5},
     {"type": "binary_cross_entropy"}, "identity", {"expr": "x*tanh(log(1+exp(x)))"}),
    ("sgd-sum", {"type": "sgd", "lr": 0.02}, {"type": "cross_entropy", "reduction": "sum"},
     "identity", {"name": "leaky_relu", "alpha": 0.1}),
    ("adam", {"type": "adam"}, {"type": "cross_entropy"}, "softmax", "gelu"),
    ("adam-betas-wd", {"type": "adam", "lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6,
                       "weight_decay": 0.1}, {"type": "binary_cross_entropy"}, "sigmoid", "silu"),
    ("rmsprop-momentum", {"type": "rmsprop", "lr": 0.005, "momentum": 0.5},
     {"type": "custom", "expr": "log(cosh(y - t))"}, "identity", "elu"),
    ("rmsprop-alpha-wd", {"type": "rmsprop", "alpha": 0.9, "weight_decay": 0.1},
     {"type": "sse", "scale": 0.5, "reduction": "sum"}, "sigmoid", "relu"),
    ("sigmoid-softplus", {"type": "sgd", "lr": 0.1}, {"type": "mse", "reduction": "sum"},
     "softmax", "softplus"),
    ("sigmoid", {"type": "adam", "lr": 0.01}, {"type": "sse"}, "identity", "sigmoid"),
]  # fmt: skip


@pytest.mark.parametrize(("optimizer", "loss", "last", "hidden"), [c[1:] for c in FLOAT32],
                         ids=[c[0] for c in FLOAT32])  # fmt: skip
def test_float32(build, optimizer, loss, last, hidden):
    data = net(hidden, last, loss, optimizer, dtype="float32")
    module = build(data)
    assert module.DTYPE is np.float32
    check_steps(module, data, make_batches(data, 7), F32)


# 6. random nets (hypothesis): any depth, widths, activation, loss, optimizer and batch sizes

HIDDEN_NAMES = [a for a in ACTIVATIONS if a != "identity"]


@st.composite
def cases(draw):
    depth = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["mse", "sse", "custom", "binary_cross_entropy", "cross_entropy"]))
    widths = [draw(st.integers(1, 5)) for _ in range(depth)]
    loss: dict = {"type": kind, "reduction": draw(st.sampled_from(["mean", "sum"]))}
    if kind == "sse":
        loss["scale"] = draw(st.sampled_from([0.5, 1.0, 2.5]))
    if kind == "custom":
        loss["expr"] = draw(st.sampled_from(sorted(CUSTOM_LOSSES)))
    if kind == "binary_cross_entropy":
        last = draw(st.sampled_from(["sigmoid", "identity"]))
    elif kind == "cross_entropy":
        widths[-1] = draw(st.integers(2, 5))
        last = draw(st.sampled_from(["softmax", "identity"]))
    else:
        last = draw(st.sampled_from(["identity", "sigmoid", "tanh"]))
    hidden = draw(st.sampled_from(HIDDEN_NAMES))
    optimizer = draw(st.sampled_from(OPTIMIZERS))
    data = net(hidden, last, loss, optimizer, widths=widths, inputs=draw(st.integers(1, 4)))
    data["seed"] = draw(st.integers(0, 2**32))
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    return data, make_batches(data, draw(st.integers(0, 2**32)), sizes, draw(st.booleans()))


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(cases())
def test_property_random_nets(build, case):
    data, batches = case
    note(json.dumps(data))
    check_steps(build(data), data, batches, F64)


# 7. train(): epochs of shuffled mini-batches, the last one partial


def torch_train(data, params, X, T, epochs, batch_size, orders):
    """The torch reference over the batches train() visits; returns (per-epoch means, params)."""
    xs, ts, counts = [], [], []
    for order in orders:
        chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        xs += [X[idx] for idx in chunks]
        ts += [T[idx] for idx in chunks]
        counts.append(len(chunks))
    losses, _, after = torch_step(data, params, xs, ts, steps=len(xs))
    history, k = [], 0
    for count in counts:
        total = 0.0
        for e in losses[k : k + count]:
            total += e
        history.append(total / count)
        k += count
    return history, after


TRAIN_NET = net("tanh", "softmax", {"type": "cross_entropy"},
                {"type": "adam", "lr": 0.02, "weight_decay": 0.01}, widths=(6, 3), inputs=4,
                seed=3)  # fmt: skip


@pytest.mark.parametrize(("shuffle", "seed"), [(True, 7), (True, None), (False, None)],
                         ids=["shuffle-seed7", "shuffle-spec-seed", "in-order"])  # fmt: skip
def test_train_matches_torch_loop(build, shuffle, seed):
    module = build(TRAIN_NET)
    rng = np.random.default_rng(8)
    n, batch_size, epochs = 23, 5, 3  # 4 full batches and one of 3 per epoch
    X, T = rng.normal(size=(n, 4)), targets(rng, TRAIN_NET["loss"], n, 3, one_hot=True)
    start = module.init_params()
    params = {k: v.copy() for k, v in start.items()}
    calls = []
    history = module.train(params, X, T, epochs, batch_size, shuffle=shuffle, seed=seed,
                           progress=lambda *a: calls.append(a))  # fmt: skip
    used = TRAIN_NET["seed"] if seed is None else seed
    orders = [permutation(used, e, n) if shuffle else np.arange(n) for e in range(epochs)]
    if shuffle:
        assert not np.array_equal(orders[0], np.arange(n)) and sorted(orders[0]) == list(range(n))
        assert not np.array_equal(orders[0], orders[1])
    ref_history, ref_params = torch_train(TRAIN_NET, start, X, T, epochs, batch_size, orders)
    assert len(history) == epochs
    np.testing.assert_allclose(history, ref_history, **F64)
    assert_same(params, ref_params, F64)
    assert [c[:2] for c in calls] == [(e, epochs) for e in range(epochs)]
    assert [c[2] for c in calls] == history


def test_train_continues_from_a_state(build):
    """train(..., state=s) carries the optimizer state (Adam's moments and step) over."""
    module = build(TRAIN_NET)
    rng = np.random.default_rng(9)
    n, batch_size = 10, 4
    X, T = rng.normal(size=(n, 4)), targets(rng, TRAIN_NET["loss"], n, 3)
    start = module.init_params()
    params = {k: v.copy() for k, v in start.items()}
    state = module.init_state(params)
    first = module.train(params, X, T, 2, batch_size, seed=5, state=state)
    second = module.train(params, X, T, 1, batch_size, seed=5, state=state)
    assert state["step"] == 9
    orders = [permutation(5, 0, n), permutation(5, 1, n), permutation(5, 0, n)]
    ref_history, ref_params = torch_train(TRAIN_NET, start, X, T, 3, batch_size, orders)
    np.testing.assert_allclose(first + second, ref_history, **F64)
    assert_same(params, ref_params, F64)


# 8. the demo's classifier: iris, the spec's own epochs / batch size / shuffle


def test_iris_demo_reaches_pytorch_accuracy(build):
    spec_path = ROOT / "examples" / "iris_softmax.yaml"
    data = yaml.safe_load(spec_path.read_text())
    module = build(data)
    X, T = module.load_data(str(ROOT / "examples" / "data" / "iris.csv"))
    assert X.shape == (150, 4) and T.shape == (150, 3)
    tr = data["train"]
    epochs, batch_size, shuffle = tr["epochs"], tr["batch_size"], tr["shuffle"]
    assert shuffle and 150 % batch_size  # shuffled, with a partial last batch every epoch
    start = module.init_params()
    params = {k: v.copy() for k, v in start.items()}
    history = module.train(params, X, T, epochs, batch_size, shuffle)
    n = len(X)
    orders = [permutation(data["seed"], e, n) for e in range(epochs)]
    ref_history, ref_params = torch_train(data, start, X, T, epochs, batch_size, orders)
    np.testing.assert_allclose(history, ref_history, rtol=1e-8, atol=0)
    np.testing.assert_allclose(history[-1], ref_history[-1], rtol=1e-8)
    ours = module.accuracy(params, X, T)
    labels = T.argmax(axis=1)
    theirs = float((torch_forward(data, ref_params, X).argmax(axis=1) == labels).mean())
    assert ours == theirs
    assert ours >= 0.95, ours
    assert_same(params, ref_params, {"rtol": 1e-7, "atol": 1e-9})
