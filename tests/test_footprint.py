"""`symbackprop footprint` (CONTRACT §9): byte counts equal sizeof of the generated structs (a
compiled probe, read back with nm -S: for the host and, when installed, for the Cortex-M4 with
its 4-byte pointers), multiply-adds equal a count by hand, frozen layers cost no gradient, state
or backward work, and the command line prints text or JSON and refuses bad input.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import symbackprop
from symbackprop.cli import main
from symbackprop.codegen import lower, render
from symbackprop.codegen.c import cortex_m as cm
from symbackprop.codegen.c.footprint import macs, memory

ROOT = Path(__file__).resolve().parents[1]
CC = os.environ.get("CC", "cc")
pytestmark = pytest.mark.skipif(shutil.which(CC) is None and not os.environ.get("CI"),
                                reason="no cc")  # fmt: skip
IRIS = yaml.safe_load((ROOT / "examples/iris_softmax.yaml").read_text())
KEYS = ["params_bytes", "grads_bytes", "state_bytes", "workspace_bytes"]
PROBE = """#include "{name}.h"
{name}_params probe_params;
{name}_grads probe_grads;
{name}_state probe_state;
{name}_workspace probe_workspace;
"""


def frozen(layer: int) -> dict:
    data = copy.deepcopy(IRIS)
    data["name"] = f"frozen{layer}"
    data["layers"][layer - 1]["weight"]["trainable"] = False
    data["layers"][layer - 1]["bias"]["trainable"] = False
    return data


def example(stem: str, dtype: str) -> dict:
    data = yaml.safe_load((ROOT / f"examples/{stem}.yaml").read_text())
    data["dtype"] = dtype
    return data


def sizes(data: dict, batch: int, folder: Path, cc: list[str], defines=()) -> list[int]:
    """sizeof params, grads, state, workspace at NAME_CHUNK=batch, from the compiler."""
    name = data["name"]
    for fname, text in render(symbackprop.parse_spec(data), "c").items():
        (folder / fname).write_text(text)
    (folder / "probe.c").write_text(PROBE.format(name=name))
    obj = folder / "probe.o"
    flags = [
        "-std=c99",
        "-fno-common",
        f"-D{name.upper()}_CHUNK={batch}",
        *(f"-D{name.upper()}_{d}" for d in defines),
    ]
    subprocess.run([*cc, *flags, "-c", str(folder / "probe.c"), "-o", str(obj)], check=True)
    nm = "arm-none-eabi-nm" if "arm" in cc[0] else "nm"
    out = subprocess.run([nm, "-S", str(obj)], capture_output=True, text=True, check=True).stdout
    found = {line.split()[-1]: int(line.split()[1], 16) for line in out.split("\n") if line}
    return [found[f"probe_{k}"] for k in ("params", "grads", "state", "workspace")]


SPECS = [
    ("iris64", example("iris_softmax", "float64")),
    ("iris32", example("iris_softmax", "float32")),
    ("mazur", example("mazur", "float64")),
    ("residual32", example("residual_mlp", "float32")),
    ("two_branch", example("two_branch", "float64")),
    ("gelu32", example("adam_gelu", "float32")),
    ("frozen1", frozen(1)),
    ("normalized32", example("normalization/normalized_mlp", "float32")),
]


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize(("label", "data"), SPECS, ids=[s[0] for s in SPECS])
def test_bytes_equal_sizeof(label, data, batch, tmp_path):
    program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
    mem = memory(program, batch, pointer=8)
    assert [mem[k] for k in KEYS] == sizes(data, batch, tmp_path, [CC])
    if shutil.which(cm.CC) or os.environ.get("CI"):  # CI installs the cross compiler
        mem = memory(program, batch, pointer=4)
        cc = [cm.CC, *cm.ARCH]
        assert [mem[k] for k in KEYS] == sizes(data, batch, tmp_path, cc)


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize(("shuffle", "wt_copy"), [(False, False), (True, False), (False, True)])
def test_bytes_of_the_layout_options(shuffle, wt_copy, batch, tmp_path):
    """NAME_NO_SHUFFLE (no copies of shuffled rows) and NAME_WT_COPY 0/1 (a transposed copy of
    each weight matrix, or none): the report's workspace equals sizeof for each."""
    data = example("iris_softmax", "float32")
    program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
    mem = memory(program, batch, pointer=8, shuffle=shuffle, wt_copy=wt_copy)
    defines = [f"WT_COPY={int(wt_copy)}", *([] if shuffle else ["NO_SHUFFLE"])]
    assert [mem[k] for k in KEYS] == sizes(data, batch, tmp_path, [CC], defines)


SGD_NET = {"name": "sgd_net", "inputs": 12, "dtype": "float32", "layers": [
    {"units": 7, "activation": "relu"},
    {"units": 5, "activation": "tanh", "bias": {"shape": "shared"}},
    {"units": 3, "activation": "softmax"}], "loss": {"type": "cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 0.1}}  # fmt: skip


@pytest.mark.parametrize("batch", [1, 16])
def test_bytes_with_one_chunk(batch, tmp_path):
    """NAME_ONE_CHUNK with SGD, and with Adam (updated element by element inside the gradient
    products): the workspace holds the biases' gradients, no grads struct."""
    for data in (SGD_NET, example("iris_softmax", "float32")):
        program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
        mem = memory(program, batch, pointer=8, one_chunk=True)
        assert [mem[k] for k in KEYS] == sizes(data, batch, tmp_path, [CC], ["ONE_CHUNK"])
    adam = memory(program, batch)["workspace_bytes"] - mem["workspace_bytes"]  # iris: Adam
    assert adam == 4 * (8 * 4 + 3 * 8)  # the weight matrices' gradients
    sgd = lower(symbackprop.derive(symbackprop.parse_spec(SGD_NET)))
    saved = memory(sgd, batch)["workspace_bytes"] - memory(sgd, batch, one_chunk=True)[
        "workspace_bytes"]  # fmt: skip
    assert saved >= 4 * (12 * 7 + 7 * 5 + 5 * 3)  # at least the weight matrices' gradients


def test_macs_by_hand_and_frozen_layers():
    """iris 4-8-3: forward 4*8 + 8*3 = 56; a step adds dW2 (24), the delta through W2 (24) and
    dW1 (32). Layer 1 frozen: no dW1 and no delta through W2 (nothing below needs it); layer 2
    frozen: the delta still goes through W2 to reach W1."""

    def count(data):
        return macs(lower(symbackprop.derive(symbackprop.parse_spec(data))))

    assert count(IRIS) == {"forward_macs": 56, "train_macs": 56 + 24 + 24 + 32}
    assert count(frozen(1)) == {"forward_macs": 56, "train_macs": 56 + 24}
    assert count(frozen(2)) == {"forward_macs": 56, "train_macs": 56 + 24 + 32}
    mem, frozen_mem = (memory(lower(symbackprop.derive(symbackprop.parse_spec(d)))) for d in
                       (IRIS, frozen(1)))  # fmt: skip
    assert frozen_mem["params_bytes"] == mem["params_bytes"] == 8 * (32 + 8 + 24 + 3)
    assert mem["grads_bytes"] == 8 * (32 + 8 + 24 + 3) and frozen_mem["grads_bytes"] == 8 * 27
    # Adam: lr, betas, eps, weight decay (as doubles), the step, m and v
    assert frozen_mem["state_bytes"] == 8 * len(lower(symbackprop.derive(
        symbackprop.parse_spec(IRIS))).update.hyper) + 8 + 2 * 8 * 27  # fmt: skip


def test_macs_of_dense_layers_on_sequences():
    """A dense layer on each row of a sequence [T, F] multiplies once a row."""

    def count(data):
        return macs(lower(symbackprop.derive(symbackprop.parse_spec(data))))

    seq = {"name": "seq", "inputs": [3, 4], "layers": [{"units": 5}, {"units": 2}]}
    # forward 3·(4·5) + 3·(5·2); backward dW2, dW1 (3·10 + 3·20) and dW2ᵀδ2 (3·10)
    assert count(seq) == {"forward_macs": 90, "train_macs": 90 + 90 + 30}


def _torch_macs(net, params, x) -> tuple[int, int]:
    """Multiply-adds of net(x) forward, and forward plus backward to the parameters, counted by
    PyTorch's FlopCounterMode (2 flops a multiply-add) for one sample."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fwd:
        net(x)
    with FlopCounterMode(display=False) as step:
        net(x).sum().backward()
    del params
    return fwd.get_total_flops() // 2, step.get_total_flops() // 2


CONV_NETS = [
    ("digits_cnn", yaml.safe_load((ROOT / "examples/digits_cnn.yaml").read_text())),
    ("strided", {"name": "sg", "inputs": [4, 9, 7], "layers": [
        {"type": "conv2d", "channels": 6, "kernel": [3, 2], "stride": 2, "padding": 1,
         "activation": "relu"},
        {"type": "conv2d", "channels": 4, "kernel": 2, "dilation": 2, "activation": "tanh"},
        {"type": "flatten"}, {"units": 3}]}),
    ("conv1d_frozen", {"name": "c1", "inputs": [2, 11], "layers": [
        {"type": "conv1d", "channels": 3, "kernel": 3, "weight": {"trainable": False},
         "bias": {"trainable": False}},
        {"type": "conv1d", "channels": 5, "kernel": 2, "stride": 2},
        {"type": "flatten"}, {"units": 2}]}),
]  # fmt: skip


@pytest.mark.parametrize(("label", "data"), CONV_NETS, ids=[c[0] for c in CONV_NETS])
def test_conv_macs_equal_torch_flop_counter(label, data):
    """Convolutions (grouped, strided, dilated, padded, 1-d and 2-d, a frozen first layer):
    forward and training-step multiply-adds equal PyTorch's FlopCounterMode on nn.Conv and
    nn.Linear, whose backward computes the input's gradient only where a parameter below
    needs it, as the lowering does."""
    import torch
    from conv_reference import modules

    net, named = modules(data)
    for i, layer in enumerate(data["layers"], start=1):
        if layer.get("weight", {}).get("trainable", True) is False:
            for name, p in named:
                if name in (f"W{i}", f"b{i}"):
                    p.requires_grad_(False)
    x = torch.zeros(1, *data["inputs"], dtype=torch.float64)
    forward, step = _torch_macs(net, named, x)
    assert macs(lower(symbackprop.derive(symbackprop.parse_spec(data)))) == {
        "forward_macs": forward,
        "train_macs": step,
    }


def test_grouped_conv_macs():
    """groups = 2: forward equals FlopCounterMode's; its backward formula for a grouped weight
    gradient ignores the groups (it counts C·K products an output, not C/g·K), so the step is
    counted by hand: the weight gradient and the input's gradient each cost what the forward
    product does (every weight meets every output position once)."""
    import torch
    from conv_reference import modules

    data = {"name": "g", "inputs": [4, 9, 7], "layers": [
        {"type": "conv2d", "channels": 6, "kernel": [3, 2], "groups": 2},
        {"type": "conv2d", "channels": 4, "kernel": 2, "groups": 2}, {"type": "flatten"},
        {"units": 3}]}  # fmt: skip
    net, named = modules(data)
    forward, _ = _torch_macs(net, named, torch.zeros(1, 4, 9, 7, dtype=torch.float64))
    conv1, conv2, dense = 6 * 7 * 6 * (2 * 3 * 2), 4 * 6 * 5 * (3 * 2 * 2), 3 * 4 * 6 * 5
    assert forward == conv1 + conv2 + dense
    assert macs(lower(symbackprop.derive(symbackprop.parse_spec(data)))) == {
        "forward_macs": forward,
        "train_macs": forward + conv1 + 2 * conv2 + 2 * dense,
    }


@pytest.mark.parametrize(("bptt", "sequences"), [(0, False), (0, True), (4, True)])
def test_rnn_macs_equal_torch_flop_counter(bptt, sequences):
    """An rnn (T = 10 steps, h_0 = 0) under a dense layer (on the last step, or on every step):
    the step unrolled in torch as x_t W^T + h_(t-1) U^T (no U product at t = 1), counted by
    FlopCounterMode; truncated BPTT (h detached where a window starts) skips the delta through U
    there. (With the output on the last step only, torch would skip the earlier windows whose
    gradient is zero; the C loops still run them, so that case is the untruncated one.)"""
    import torch

    steps, feats, units = 10, 3, 6
    rnn = {"type": "rnn", "units": units, "return_sequences": sequences}
    data = {"name": "r", "inputs": [steps, feats],
            "layers": [{**rnn, **({"bptt": bptt} if bptt else {})}, {"units": 2}]}  # fmt: skip
    g = torch.Generator().manual_seed(0)
    W, U = (torch.randn(units, n, generator=g, requires_grad=True) for n in (feats, units))
    b = torch.zeros(units, requires_grad=True)
    W2 = torch.randn(2, units, generator=g, requires_grad=True)

    def net(x):
        h, hs = None, []
        for t in range(steps):
            if bptt and h is not None and t % bptt == 0:
                h = h.detach()
            z = x[:, t] @ W.T + b + (h @ U.T if h is not None else 0)
            h = torch.tanh(z)
            hs.append(h)
        return (torch.stack(hs, 1) if sequences else h) @ W2.T

    forward, step = _torch_macs(net, None, torch.zeros(1, steps, feats))
    assert macs(lower(symbackprop.derive(symbackprop.parse_spec(data)))) == {
        "forward_macs": forward,
        "train_macs": step,
    }


def test_kinds_without_a_cost_rule_are_not_counted(monkeypatch):
    """An op kind with neither a cost rule nor a place among the kinds without products (a
    new layer's) makes the count None, which the report prints as not counted."""
    from symbackprop.codegen.c import footprint as fp

    monkeypatch.delitem(fp._COSTS, "affine")
    assert macs(lower(symbackprop.derive(symbackprop.parse_spec(IRIS)))) == {
        "forward_macs": None,
        "train_macs": None,
    }
    report = {"name": "iris", "dtype": "float64", "arch": "host", "batch": 1, "frozen": [],
              "params_bytes": 1, "grads_bytes": 1, "state_bytes": 1, "workspace_bytes": 1,
              "code_bytes": 1, "forward_macs": None, "train_macs": None}  # fmt: skip
    assert "not counted" in fp.text(report)


def test_command_line(tmp_path, capsys):
    spec = str(ROOT / "examples/iris_softmax.yaml")
    assert main(["footprint", spec, "--batch", "16", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in [*KEYS, "code_bytes", "forward_macs", "train_macs"]:
        assert isinstance(report[key], int) and report[key] > 0, key
    program = lower(symbackprop.derive(symbackprop.load_spec(spec)))
    assert {k: report[k] for k in KEYS} == memory(program, 16)
    assert main(["footprint", spec]) == 0
    text = capsys.readouterr().out
    assert "a chunk of 1 row)" in text and "56 multiply-adds a sample" in text
    assert main(["footprint", spec, "--batch", "16", "--lean", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    lean = memory(program, 16, shuffle=False, wt_copy=False, one_chunk=True, share=True)
    assert {k: report[k] for k in KEYS} == lean and report["lean"] is True
    assert main(["footprint", spec, "--batch", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--batch: must be at least 1" in err


def test_generate_prints_the_footprint(tmp_path, capsys):
    """generate --target c says what the library costs at the default chunk (on stderr: stdout
    stays the list of files written)."""
    spec = str(ROOT / "examples/iris_softmax.yaml")
    assert main(["generate", spec, "--target", "c", "-o", str(tmp_path / "c")]) == 0
    out, err = capsys.readouterr()
    assert all(line.startswith(str(tmp_path)) for line in out.strip().split("\n"))
    mem = memory(lower(symbackprop.derive(symbackprop.load_spec(spec))), 256)
    assert err.startswith("footprint: parameters 536 B, ") and err.count("\n") == 1
    assert f"workspace {mem['workspace_bytes']:,} B at the default chunk of 256 rows" in err
    assert main(["generate", spec, "--target", "numpy", "-o", str(tmp_path / "py")]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(shutil.which(cm.CC) is None and not os.environ.get("CI"),
                    reason="no arm-none-eabi-gcc")  # fmt: skip
def test_cortex_m4_code_counts_the_libm_it_links(tmp_path):
    """--arch cortex-m4: the flash a probe that trains and predicts adds to an image, libm and
    libgcc included: at least the library's functions in the image plus the sizes nm gives for
    the libm functions in it (softplus's log1pf: exp, log and tanh are the C target's
    own vectorizable functions, not libm's)."""
    from symbackprop.codegen.c import footprint as fp

    data = example("iris_softmax", "float32")
    data["layers"][0]["activation"] = "softplus"
    program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
    linked = fp.code_bytes(program, "cortex-m4", batch=1)
    for fname, text in render(symbackprop.parse_spec(data), "c").items():
        (tmp_path / fname).write_text(text)
    flags = ("-DIRIS_SOFTMAX_NO_FILES", "-DIRIS_SOFTMAX_MAX_ROWS=1", "-DIRIS_SOFTMAX_CHUNK=1")
    obj = cm.compile_object(tmp_path / "iris_softmax.c", tmp_path / "lib.o", flags)
    image = tmp_path / "probe.elf"
    (tmp_path / "probe.c").write_text(fp._PROBE.format(name="iris_softmax", NAME="IRIS_SOFTMAX"))
    cm.build_firmware([tmp_path / "probe.c", tmp_path / "iris_softmax.c"], image,
                      (f"-I{tmp_path}", *flags))  # fmt: skip
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(image)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    words = [line.split() for line in out.split("\n")]
    libm_names = re.compile(r"__ieee754_\w+|(log1p|exp|expm1|log|sqrt|pow)f?")
    by_address = {w[0]: int(w[1], 16) for w in words if len(w) == 4 and libm_names.fullmatch(w[-1])}
    libm = sum(by_address.values())  # aliases counted once
    assert libm > 200, by_address  # log1pf is there
    # the library's own functions and tables in the image (--gc-sections drops the rest: loss,
    # accuracy, ... that the probe does not call), each by the object's symbol names
    own = subprocess.run(["arm-none-eabi-nm", "--defined-only", str(obj)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    names = {line.split()[-1].split(".")[0] for line in own.split("\n") if line.strip()}
    library = {w[0]: int(w[1], 16) for w in words if len(w) == 4 and w[-1].split(".")[0] in names}
    assert sum(library.values()) > 1000
    assert cm.text_bytes(obj) > sum(library.values())  # unused functions are in the object
    assert linked >= sum(library.values()) + libm - 64  # alignment slack


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize(("bptt", "sequences"), [(0, False), (0, True), (3, True)])
def test_gated_macs_equal_torch_flop_counter(kind, bptt, sequences):
    """A gru or lstm (T = 7 steps, h_0 = c_0 = 0) under a dense layer: the cell unrolled in torch
    as x_t W^T + b and h_(t-1) U^T + br (PyTorch's gate equations, no U product at t = 1),
    counted by FlopCounterMode (its gates' elementwise products are no matrix products, nor
    ours); truncated BPTT (h and c detached where a window starts) skips U^T dq there."""
    import torch

    steps, feats, units = 7, 3, 5
    gates = 3 if kind == "gru" else 4
    cell = {"type": kind, "units": units, "return_sequences": sequences}
    data = {"name": "g", "inputs": [steps, feats],
            "layers": [{**cell, **({"bptt": bptt} if bptt else {})}, {"units": 2}]}  # fmt: skip
    g = torch.Generator().manual_seed(0)
    W, U = (torch.randn(gates * units, n, generator=g, requires_grad=True) for n in (feats, units))
    b, br = (torch.zeros(gates * units, requires_grad=True) for _ in range(2))
    W2 = torch.randn(2, units, generator=g, requires_grad=True)

    def net(x):
        h = c = None
        hs = []
        for t in range(steps):
            if bptt and h is not None and t % bptt == 0:
                h, c = h.detach(), c.detach()
            xa = x[:, t] @ W.T + b
            qa = (h @ U.T if h is not None else 0) + br
            if kind == "gru":
                xr, xz, xn = xa.chunk(3, 1)
                qr, qz, qn = (qa if h is not None else qa.expand_as(xa)).chunk(3, 1)
                r, z = torch.sigmoid(xr + qr), torch.sigmoid(xz + qz)
                n = torch.tanh(xn + r * qn)
                h = (1 - z) * n + z * (h if h is not None else 0)
                c = h
            else:
                i, f, gg, o = (xa + qa).chunk(4, 1)
                c0 = c if c is not None else 0
                c = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(gg)
                h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        return (torch.stack(hs, 1) if sequences else h) @ W2.T

    forward, step = _torch_macs(net, None, torch.zeros(1, steps, feats))
    assert forward == gates * units * (feats * steps + units * (steps - 1)) + (
        2 * units * (steps if sequences else 1)
    )
    assert macs(lower(symbackprop.derive(symbackprop.parse_spec(data)))) == {
        "forward_macs": forward,
        "train_macs": step,
    }
