"""NAME_SHARE: the C workspace's per-row tensors share memory by liveness (codegen/c/share.py).

Every layer kind trains, computes gradients and predicts as the NumPy module does (f64 1e-12)
in the shared layout, with the other lean defines at a chunk of several rows; footprint's bytes
equal sizeof of the shared structs (a compiled probe); iris 4-8-3 Adam at batch 16 lean takes
the RAM the README claims; and no two tensors that are live at the same op ever overlap.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_c_memory import SANITIZE
from test_footprint import KEYS, sizes

import symbackprop
from symbackprop.codegen import lower, render
from symbackprop.codegen.c import load_c
from symbackprop.codegen.c.backend import context
from symbackprop.codegen.c.footprint import LEAN, memory
from symbackprop.codegen.c.share import _lifetimes, _touched
from symbackprop.codegen.numpy import numpy_module

ROOT = Path(__file__).resolve().parents[1]
CC = os.environ.get("CC", "cc")
pytestmark = pytest.mark.skipif(shutil.which(CC) is None and not os.environ.get("CI"),
                                reason="no cc")  # fmt: skip


def example(stem: str, **changes) -> dict:
    data = yaml.safe_load((ROOT / f"examples/{stem}.yaml").read_text())
    return {**data, **changes}


def gru() -> dict:
    data = copy.deepcopy(example("sine_lstm", name="sine_gru"))
    data["layers"][0]["type"] = "gru"
    return data


TINY_CNN = {"name": "tiny_cnn", "inputs": [1, 6, 6], "seed": 3, "layers": [
    {"type": "conv2d", "channels": 3, "kernel": 3, "padding": 1, "activation": "relu"},
    {"type": "maxpool2d", "kernel": 2},
    {"type": "conv2d", "channels": 4, "kernel": 2, "activation": "tanh"},
    {"type": "avgpool2d", "kernel": 2},
    {"type": "flatten"},
    {"units": 3, "activation": "softmax"}], "loss": {"type": "cross_entropy"},
    "optimizer": {"type": "adam", "lr": 0.01}}  # fmt: skip

# every layer kind: dense, add, concat, rnn, lstm, gru, conv, pooling, flatten, batch norm,
# dropout, layer norm
NETS = [
    ("iris", example("iris_softmax")),
    ("residual", example("residual_mlp")),
    ("two_branch", example("two_branch")),
    ("rnn", example("sine_rnn")),
    ("lstm", example("sine_lstm")),
    ("gru", gru()),
    ("cnn", TINY_CNN),
    ("normalized", example("normalization/normalized_mlp")),
    # SGD: the conv bias before batch norm has a gradient of roundings only, which Adam's
    # normalized step would blow up to differences of 1e-10 in either layout
    ("conv_bn", example("normalization/conv_batchnorm", optimizer={"type": "sgd", "lr": 0.1})),
]


def data_for(spec, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, *spec.input_shape))
    if spec.outputs == 1:
        return X, rng.normal(size=(n, 1))
    return X, np.eye(spec.outputs)[rng.integers(0, spec.outputs, n)]


@pytest.mark.parametrize(("label", "data"), NETS, ids=[n[0] for n in NETS])
def test_shared_layout_trains_as_numpy(label, data, tmp_path):
    """Lean with NAME_SHARE at a chunk of 8: forward (before training: after it, batch norm's
    running variance differs from NumPy's by about 1e-11 in either layout), train (2 epochs of
    batches of 8, in file order) and loss_and_grad equal the NumPy module's (float64, 1e-12)."""
    spec = symbackprop.parse_spec({**data, "dtype": "float64"})
    NAME = spec.name.upper()
    for fname, text in render(spec, "c").items():
        (tmp_path / fname).write_text(text)
    c = load_c(tmp_path, cflags=["-O1", *(f"-D{NAME}_{d}" for d in (*LEAN, "CHUNK=8"))])
    py = numpy_module(symbackprop.derive(spec), tmp_path / "py")
    X, T = data_for(spec, 24, np.random.default_rng(3))
    results = []
    for module in (c, py):
        params = module.init_params()
        Y = module.forward(params, X[:8])  # evaluation mode (batch norm's running statistics)
        history = module.train(params, X, T, epochs=2, batch_size=8, shuffle=False, seed=1)
        loss, grads = module.loss_and_grad(params, X[:8], T[:8])
        results.append((history, params, loss, grads, Y))
    (hc, pc, lc, gc, yc), (hp, pp, lp, gp, yp) = results
    np.testing.assert_allclose(hc, hp, rtol=1e-12)
    np.testing.assert_allclose(lc, lp, rtol=1e-12)
    np.testing.assert_allclose(yc, yp, rtol=1e-12, atol=1e-14)
    for k in pp:
        np.testing.assert_allclose(pc[k], pp[k], rtol=1e-12, atol=1e-14)
    for k in gp:
        np.testing.assert_allclose(gc[k], gp[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("stem", ["iris_softmax", "residual_mlp", "sine_lstm"])
def test_shared_bytes_equal_sizeof(stem, batch, tmp_path):
    """footprint's bytes with NAME_SHARE (alone, and with the other lean defines) equal sizeof
    of the compiled structs, and sharing saves memory."""
    data = example(stem, dtype="float32")
    program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
    alone = memory(program, batch, pointer=8, share=True)
    assert [alone[k] for k in KEYS] == sizes(data, batch, tmp_path, [CC], ["SHARE"])
    lean = memory(program, batch, 8, shuffle=False, wt_copy=False, one_chunk=True, share=True)
    assert [lean[k] for k in KEYS] == sizes(data, batch, tmp_path, [CC], LEAN)
    assert alone["workspace_bytes"] < memory(program, batch, pointer=8)["workspace_bytes"]


def test_iris_adam_batch_16_lean_figure():
    """The README's figure: iris 4-8-3 Adam float32 at batch 16, lean, on the host: parameters,
    state and workspace; the eight per-row tensors (42 numbers a row) in 27 a row, and no
    gradient buffer but the biases' (Adam inside the gradient products): at least 20% under
    the peer's 3,344 B."""
    data = example("iris_softmax", dtype="float32")
    program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
    assert context(program)["shared"]["units"] == 27
    m = memory(program, 16, 8, shuffle=False, wt_copy=False, one_chunk=True, share=True)
    ram = m["params_bytes"] + m["state_bytes"] + m["workspace_bytes"]
    assert ram == 2_636 and ram <= 0.8 * 3_344


@pytest.mark.parametrize(("label", "data"), NETS, ids=[n[0] for n in NETS])
def test_live_tensors_never_overlap(label, data):
    """An independent check of the offsets: at every op of the training and of the forward-only
    sequences, the tensors it touches and every tensor live across it occupy disjoint reals."""
    ctx = context(lower(symbackprop.derive(symbackprop.parse_spec(data))))
    shared = ctx["shared"]
    units = {a["name"]: a["units"] for a in shared["arrays"]}
    names = set(units)
    evaluation = ctx["evaluation"] if ctx["modes_differ"] else ctx["forward"]
    train = [*ctx["forward"], ctx["loss_op"], *ctx["backward"], *ctx["updates"]]
    ends = {ctx["output"], ctx["logits"]} & names
    for seq in ([_touched(o) for o in train],
                [*(_touched(o) for o in (*evaluation, ctx["loss_op"])), ends]):  # fmt: skip
        spans = _lifetimes(seq, names)
        for k in range(len(seq)):
            live = sorted(n for n, (lo, hi) in spans.items() if lo <= k <= hi)
            cells = [c for n in live for c in range(shared["offsets"][n],
                                                    shared["offsets"][n] + units[n])]  # fmt: skip
            assert len(cells) == len(set(cells)), (label, k, live)
    assert shared["units"] <= sum(units.values())


RULES = [
    {"type": "adam", "lr": 0.01, "weight_decay": 0.01},
    {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.001},
    {"type": "rmsprop", "lr": 0.01, "alpha": 0.9, "momentum": 0.5},
]


@pytest.mark.parametrize("rule", RULES, ids=[r["type"] for r in RULES])
def test_one_chunk_rules_with_state_update_inside_the_products(rule, tmp_path):
    """NAME_ONE_CHUNK with a rule that has state (Adam, SGD with momentum, RMSprop): the
    workspace keeps the biases' gradients only, the weights are updated element by element
    inside their gradient products; steps on batches of 1 to 8 rows (a frozen layer, a shared
    bias) equal the NumPy module's (f64 1e-12), and the default build is unchanged."""
    data = {"name": "rule", "inputs": 5, "seed": 2, "optimizer": rule, "layers": [
        {"units": 6, "activation": "relu", "weight": {"trainable": False},
         "bias": {"trainable": False}},
        {"units": 4, "activation": "tanh", "bias": {"shape": "shared"}},
        {"units": 3, "activation": "softmax"}], "loss": {"type": "cross_entropy"}}  # fmt: skip
    spec = symbackprop.parse_spec(data)
    program = lower(symbackprop.derive(spec))
    fused = memory(program, 8, one_chunk=True)["workspace_bytes"]
    assert memory(program, 8)["workspace_bytes"] - fused == 8 * (4 * 6 + 3 * 4)  # W's grads
    for fname, text in render(spec, "c").items():
        (tmp_path / fname).write_text(text)
    c = load_c(tmp_path, cflags=["-O1", "-DRULE_ONE_CHUNK", "-DRULE_CHUNK=8", "-DRULE_SHARE"])
    py = numpy_module(symbackprop.derive(spec), tmp_path / "py")
    rng = np.random.default_rng(4)
    pc, pn = c.init_params(), py.init_params()
    sc, sn = c.init_state(pc), py.init_state(pn)
    for k in range(12):
        x, t = rng.normal(size=(1 + k % 8, 5)), np.eye(3)[rng.integers(0, 3, 1 + k % 8)]
        ec, en = c.step(pc, sc, x, t), py.step(pn, sn, x, t)
        assert abs(ec - en) <= 1e-12 * abs(en), k
    for k in pn:
        np.testing.assert_allclose(pc[k], pn[k], rtol=1e-12, atol=1e-14, err_msg=k)
    with pytest.raises(ValueError):  # a batch of more than a chunk: refused
        c.train(pc, np.zeros((20, 5)), np.eye(3)[np.zeros(20, int)], epochs=1, batch_size=16)


STRICT_SANITIZE = [*SANITIZE, "-Wall", "-Wextra", "-Werror", "-pedantic"]


def test_lean_program_strict_and_sanitizer_clean(tmp_path):
    """The lean layout (shared block, Adam inside the products) builds with -Wall
    -Wextra -Werror -pedantic, and the program trains and predicts clean under AddressSanitizer
    and UBSan."""
    import subprocess

    from symbackprop.codegen.c.build import build_program

    data = example("iris_softmax", train={"epochs": 3, "batch_size": 5, "shuffle": False})
    spec = symbackprop.parse_spec(data)
    for fname, text in render(spec, "c").items():
        (tmp_path / fname).write_text(text)
    NAME = spec.name.upper()
    program = build_program(
        tmp_path, [*STRICT_SANITIZE, *(f"-D{NAME}_{d}" for d in (*LEAN, "CHUNK=5"))]
    )
    X, T = data_for(spec, 13, np.random.default_rng(1))
    good = tmp_path / "good.csv"
    np.savetxt(good, np.hstack([X, T.argmax(axis=1)[:, None]]), delimiter=",", fmt="%.17g")
    weights = tmp_path / "w.txt"
    for cmd in (["train", good, "--out", weights], ["predict", weights, good]):
        out = subprocess.run([str(a) for a in (program, *cmd)], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)  # fmt: skip
        assert out.returncode == 0 and "Sanitizer" not in out.stderr, out.stderr
    assert len(out.stdout.splitlines()) == 13
