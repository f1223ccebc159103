"""The reference for sequence layers: nn.RNN/GRU/LSTM(batch_first=True) per recurrent layer and
nn.Linear per dense layer, built from the spec dict directly (it shares nothing with the package but
the input format), plus the specs, data and builders that tests/test_recurrent.py and
tests/test_gated.py share.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RECURRENT = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def builder(target: str, tmp_path_factory, label: str):
    """build(spec dict) -> the generated ``target`` (numpy, c, torch) behind the NumPy module's
    functions, built once per spec: the NumPy module, the C library (load_c) or the torch module
    (each op's backward the derived BPTT)."""
    import json

    import symbackprop
    from symbackprop.codegen.c import c_module
    from symbackprop.codegen.numpy import numpy_module
    from symbackprop.codegen.torch import torch_module

    make = {"numpy": numpy_module, "c": c_module, "torch": torch_module}[target]
    cache: dict = {}

    def _build(data: dict):
        key = json.dumps(data, sort_keys=True)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"{target}-{label}")
            cache[key] = make(symbackprop.derive(data), folder)
        return cache[key]

    return _build


ACTS = {"identity": lambda z: z, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
        "relu": torch.relu, "softmax": lambda z: z}  # fmt: skip


class Reference(torch.nn.Module):
    """The spec as torch modules: nn.RNN/GRU/LSTM for recurrent layers, nn.Linear for dense."""

    def __init__(self, spec: dict, params: dict, dtype):
        super().__init__()
        self.spec, self.mods = spec, torch.nn.ModuleList()
        width = spec["inputs"][-1]
        for i, ly in enumerate(spec["layers"], start=1):
            kind = ly.get("type", "dense")
            if kind in RECURRENT:
                extra = {"nonlinearity": ly.get("nonlinearity", "tanh")} if kind == "rnn" else {}
                m = RECURRENT[kind](width, ly["units"], bias=ly.get("bias", True),
                                    batch_first=True, dtype=dtype, **extra)  # fmt: skip
                names = {"weight_ih_l0": f"W{i}", "weight_hh_l0": f"U{i}",
                         "bias_ih_l0": f"b{i}", "bias_hh_l0": f"br{i}"}  # fmt: skip
            else:
                m = torch.nn.Linear(width, ly["units"], dtype=dtype)
                names = {"weight": f"W{i}", "bias": f"b{i}"}
            with torch.no_grad():
                for own, ours in names.items():
                    if getattr(m, own, None) is not None:
                        getattr(m, own).copy_(torch.tensor(params[ours]))
            m.names = names
            self.mods.append(m)
            width = ly["units"]

    def forward(self, x):
        for ly, m in zip(self.spec["layers"], self.mods, strict=True):
            kind = ly.get("type", "dense")
            if kind in RECURRENT:
                k = ly.get("bptt") or x.shape[1]
                parts, state = [], None
                for start in range(0, x.shape[1], k):  # truncated BPTT: windows of k steps,
                    seq, state = m(x[:, start : start + k], state)  # the state detached between
                    parts.append(seq)
                    state = (tuple(s.detach() for s in state) if isinstance(state, tuple)
                             else state.detach())  # fmt: skip
                seq = torch.cat(parts, 1)
                x = seq if ly.get("return_sequences", False) else seq[:, -1]
            else:
                x = ACTS[ly.get("activation", "identity")](m(x))
        return x

    def loss(self, x, t):
        y = self.forward(x)
        kind = self.spec.get("loss", "mse")
        if kind == "mse":
            return F.mse_loss(y, t)
        if kind == "cross_entropy":
            return F.cross_entropy(y.reshape(-1, y.shape[-1]), t.reshape(-1, t.shape[-1]))
        raise ValueError(kind)

    def named(self):
        return {ours: getattr(m, own) for m in self.mods for own, ours in m.names.items()
                if getattr(m, own, None) is not None}  # fmt: skip


def optimizer_for(spec, params):
    opt = dict(spec.get("optimizer", {"type": "sgd"}))
    kind = opt.pop("type")
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[kind]
    return cls(params, **opt)


def sequence_output(spec) -> bool:
    rnns = [ly for ly in spec["layers"] if ly.get("type") in RECURRENT]
    return bool(rnns) and rnns[-1].get("return_sequences", False)


def sequence_data(spec, n, seed=0):
    rng = np.random.default_rng(seed)
    steps, feats = spec["inputs"]
    x = rng.normal(size=(n, steps, feats))
    outputs = spec["layers"][-1]["units"]
    rows = (n, steps) if sequence_output(spec) else (n,)
    if spec.get("loss") == "cross_entropy":
        t = np.eye(outputs)[rng.integers(0, outputs, rows)]
    else:
        t = rng.normal(size=(*rows, outputs))
    return x, t


def sequence_spec(layers, steps=5, feats=3, loss="mse", optimizer=None, dtype="float64"):
    return {"name": "seq", "inputs": [steps, feats], "dtype": dtype, "seed": 3, "layers": layers,
            "loss": loss, "optimizer": optimizer or {"type": "sgd", "lr": 0.1}}  # fmt: skip


def generate(spec: dict, folder) -> None:
    import symbackprop
    from symbackprop.codegen import render

    d = symbackprop.derive(spec)
    for target in ("c", "numpy"):
        for name, text in render(d, target).items():
            (folder / name).write_text(text)


def run(program, *args):
    import subprocess

    return subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=program.parent)  # fmt: skip


def assert_c_equals_numpy(spec: dict, folder) -> None:
    """The C library equals the NumPy module for ``spec``: the same initial weights bit for bit,
    then steps on one chunk and on several (300 rows > CHUNK), forward, and train with shuffled
    rows (float64: 1e-12 a step, 1e-11 after training)."""
    import pytest

    from symbackprop.codegen.c.loader import load_c
    from symbackprop.codegen.numpy.loader import load_numpy

    generate(spec, folder)
    c, py = load_c(folder), load_numpy(folder / f"{spec['name']}.py")
    pc, pp = c.init_params(), py.init_params()
    for name in pp:
        np.testing.assert_array_equal(pc[name], pp[name])
    sc, sp_ = c.init_state(pc), py.init_state(pp)
    x, t = sequence_data(spec, 300, seed=1)
    for rows in (slice(0, 20), slice(0, 300), slice(20, 60)):
        for _ in range(3):
            assert c.step(pc, sc, x[rows], t[rows]) == pytest.approx(
                py.step(pp, sp_, x[rows], t[rows]), rel=1e-12
            )
    for name in pp:
        np.testing.assert_allclose(pc[name], pp[name], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c.forward(pc, x), py.forward(pp, x), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(
        c.train(pc, x, t, 2, 32, True, 5, sc), py.train(pp, x, t, 2, 32, True, 5, sp_), rtol=1e-11
    )
    for name in pp:
        np.testing.assert_allclose(pc[name], pp[name], rtol=1e-11, atol=1e-12)


def assert_program_trains(spec: dict, flags: list[str], folder) -> None:
    """The C program built with ``flags`` trains and predicts on a CSV of [T·F features, targets]
    rows, with no sanitizer report, and predicts one line a row."""
    import os

    import pytest

    from symbackprop.codegen.c.build import build_program

    generate(spec, folder)
    try:
        program = build_program(folder, flags)
    except Exception:
        if "-fsanitize=address,undefined" not in flags or os.environ.get("CI"):
            raise
        pytest.skip("no sanitizer runtime on this machine")
    x, t = sequence_data(spec, 40)
    np.savetxt(folder / "seq.csv", np.hstack([x.reshape(40, -1), t]), delimiter=",")
    out = run(program, "train", folder / "seq.csv", "--epochs", "3", "--batch-size", "7",
              "--out", folder / "w.txt")  # fmt: skip
    assert out.returncode == 0 and "Sanitizer" not in out.stderr, out.stderr
    out = run(program, "predict", folder / "w.txt", folder / "seq.csv")
    assert out.returncode == 0 and "Sanitizer" not in out.stderr, out.stderr
    assert len(out.stdout.splitlines()) == 40


def assert_follows_torch(net, spec: dict, label: str = "", steps: int = 10) -> None:
    """``net`` (a built target) follows the torch Reference of ``spec`` with copied weights for
    ``steps`` optimizer steps on 7 rows (float64): the first gradients, every loss and the
    parameters after every step to 1e-10."""
    import pytest

    params = net.init_params()
    ref = Reference(spec, params, torch.float64)
    opt = optimizer_for(spec, ref.parameters())
    state = net.init_state(params)
    x, t = sequence_data(spec, 7)
    xt, tt = torch.tensor(x), torch.tensor(t)
    for step in range(steps):
        opt.zero_grad()
        want = ref.loss(xt, tt)
        want.backward()
        if step == 0:
            _, grads = net.loss_and_grad(params, x, t)
            for name, p in ref.named().items():
                np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12,
                                           err_msg=f"{label}: dE/d{name}")  # fmt: skip
        assert net.step(params, state, x, t) == pytest.approx(want.item(), rel=1e-10)
        opt.step()
        for name, p in ref.named().items():
            np.testing.assert_allclose(
                params[name], p.detach().numpy(), rtol=1e-10, atol=1e-12,
                err_msg=f"{label}: {name} after step {step + 1}")  # fmt: skip


def assert_float32_follows_torch(net, spec: dict, steps: int = 10) -> None:
    """``net`` (a float32 spec's target) ends within 1e-4 of the float32 Reference after ``steps``
    optimizer steps on 9 rows."""
    params = net.init_params()
    ref = Reference(spec, params, torch.float32)
    opt = optimizer_for(spec, ref.parameters())
    state = net.init_state(params)
    x, t = (a.astype(np.float32) for a in sequence_data(spec, 9))
    for _ in range(steps):
        opt.zero_grad()
        ref.loss(torch.tensor(x), torch.tensor(t)).backward()
        net.step(params, state, x, t)
        opt.step()
    for name, p in ref.named().items():
        np.testing.assert_allclose(params[name], p.detach().numpy(), rtol=1e-4, atol=1e-5)
