"""batch_norm over the channels of conv maps (nn.BatchNorm1d on [C, L], nn.BatchNorm2d on
[C, H, W]): statistics over the batch and the positions of each channel, running buffers with
PyTorch's momentum and the unbiased variance (M = N·positions terms), evaluation mode with the
running statistics. The interpreter of the Derivation (``derive --at``) and the generated NumPy,
C and torch targets follow nn.Conv*d + nn.BatchNorm*d + torch.optim for 10 steps (float64,
1e-10; C equals NumPy to 1e-12); the closed form equals the op-by-op derivation."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from symbackprop.codegen.c import c_module
from symbackprop.codegen.numpy import numpy_module
from symbackprop.codegen.torch import torch_module
from symbackprop.core import prng
from symbackprop.core.chain_rule import derive
from symbackprop.core.evaluate import apply_update, initial_params, run_program
from symbackprop.core.ir import N, element_name, param_element_name
from symbackprop.core.ops import kind
from symbackprop.spec.load import parse_spec

SHAPES = {"conv1d": [2, 7], "conv2d": [2, 5, 4]}


def spec(conv: str, optimizer: dict | None = None, affine: bool = True):
    data = {"name": "bnc", "inputs": SHAPES[conv], "seed": 5, "dtype": "float64",
            "layers": [{"type": conv, "channels": 3, "kernel": 3, "padding": 1,
                        "activation": "tanh"},
                       {"type": "batch_norm", "momentum": 0.2, "affine": affine},
                       {"type": "flatten"}, {"units": 2, "activation": "softmax"}],
            "loss": {"type": "cross_entropy"},
            "optimizer": optimizer or {"type": "sgd", "lr": 0.1, "momentum": 0.9}}  # fmt: skip
    return parse_spec(data)


def batch(conv: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *SHAPES[conv]))
    t = np.eye(2)[rng.integers(0, 2, n)]
    return x, t


class TorchNet(torch.nn.Module):
    """nn.Conv*d, tanh, nn.BatchNorm*d, flatten, nn.Linear: the reference."""

    def __init__(self, conv: str, params: dict, affine: bool = True):
        super().__init__()
        two = conv == "conv2d"
        self.conv = (torch.nn.Conv2d if two else torch.nn.Conv1d)(2, 3, 3, padding=1).double()
        self.bn = (torch.nn.BatchNorm2d if two else torch.nn.BatchNorm1d)(
            3, momentum=0.2, affine=affine
        ).double()
        features = params["W4"].shape[1]
        self.lin = torch.nn.Linear(features, 2).double()
        with torch.no_grad():
            for t, name in self.named():
                t.copy_(torch.from_numpy(params[name]))

    def named(self):
        out = [
            (self.conv.weight, "W1"),
            (self.conv.bias, "b1"),
            (self.bn.running_mean, "mean2"),
            (self.bn.running_var, "var2"),
            (self.lin.weight, "W4"),
            (self.lin.bias, "b4"),
        ]
        if self.bn.affine:
            out += [(self.bn.weight, "g2"), (self.bn.bias, "b2")]
        return out

    def forward(self, x):
        return self.lin(torch.flatten(self.bn(torch.tanh(self.conv(x))), 1))


def _trainable(net: TorchNet) -> list:
    return [t for t, name in net.named() if not name.startswith(("mean", "var"))]


@pytest.mark.parametrize("conv", ["conv1d", "conv2d"])
def test_interpreter_follows_pytorch(conv):
    """Ten SGD steps on changing batches: loss, gradients, parameters and running buffers after
    each; then evaluation mode (running statistics)."""
    d = derive(spec(conv))
    params = initial_params(d)
    net = TorchNet(conv, params)
    opt = torch.optim.SGD(_trainable(net), lr=0.1, momentum=0.9)
    state: dict = {}
    for step in range(10):
        x, t = batch(conv, 4 + step % 3, step)
        env = {"x": x, "t": t, N.name: np.asarray(len(x), dtype=x.dtype), "__step": step}
        run_program(d, d.forward, env, params)
        run_program(d, d.backward, env, params)
        net.train()
        opt.zero_grad()
        loss = F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(t))
        loss.backward()
        assert abs(float(env["E"]) - loss.item()) <= 1e-12 * abs(loss.item())
        grads = {name: env[op.out].reshape(params[name].shape)
                 for name, op in d.gradients.items()}  # fmt: skip
        for tensor, name in net.named():
            if name in grads:
                np.testing.assert_allclose(grads[name], tensor.grad.numpy(), 1e-10, 1e-13,
                                           err_msg=f"d{name} at step {step}")  # fmt: skip
        opt.step()
        new = dict(params)
        for p in d.params:
            if p.trainable:
                new[p.name] = apply_update(
                    d, p, params[p.name], grads[p.name], state.setdefault(p.name, {}), step + 1
                )
        buffers = dict(env)
        run_program(d, d.updates, buffers, params)
        new |= {op.out: buffers[op.out] for op in d.updates}
        params = new
        for tensor, name in net.named():
            np.testing.assert_allclose(params[name], tensor.detach().numpy(), 1e-10, 1e-13,
                                       err_msg=f"{name} after step {step}")  # fmt: skip
    net.eval()
    x, t = batch(conv, 5, 99)
    env = {"x": x, "t": t, N.name: np.asarray(len(x), dtype=x.dtype), "__step": 0}
    run_program(d, d.evaluation, env, params)
    want = F.softmax(net(torch.from_numpy(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(env[d.output], want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("conv", ["conv1d", "conv2d"])
@pytest.mark.parametrize("affine", [True, False])
def test_closed_form_equals_the_op_by_op_derivation(conv, affine):
    """Both backward programs (op by op, and with the closed form over channels) give the same
    gradient of the tensor the closed form writes and the same parameter gradients."""
    d = derive(spec(conv, affine=affine))
    (r,) = d.rewrites
    assert r.name == "normalize"
    x, t = batch(conv, 5, 1)
    rng = np.random.default_rng(1)
    params = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in initial_params(d).items()}
    base = {"x": x, "t": t, N.name: np.asarray(5.0), "__step": 0}
    run_program(d, d.forward, base, params)
    plain, closed = dict(base), dict(base)
    run_program(d, d.derived, plain, params)
    run_program(d, d.backward, closed, params)
    written = {op.out for op in r.closed if op.kind == "map"}
    assert written
    for name in written | {op.out for op in d.gradients.values()}:
        np.testing.assert_allclose(closed[name], plain[name], rtol=1e-12, atol=1e-14)


class _Element:
    """ops.Elements for sample s of a batch: per-batch tensors share their symbols."""

    def __init__(self, ctx, s, batch):
        self.ctx, self.s, self.batch = ctx, s, batch
        self.samples: tuple = ()

    def tensor(self, name, index):
        own = "" if name in self.batch else f"_s{self.s}"
        return sp.Symbol(element_name(name, index) + own, real=True)

    def param(self, name, index):
        return sp.Symbol(param_element_name(self.ctx.params[name], index), real=True)


def _define(ops, elements, defs):
    for op in ops:
        if op.kind.startswith("grad_"):
            continue
        for el in elements[:1] if kind(op).per_batch(op) else elements:
            for ix, e in kind(op).elements(op, el).items():
                defs[el.tensor(op.out, ix)] = e.xreplace({N: len(elements)}).xreplace(defs)


def test_closed_form_proved_by_sympy():
    """Every element of ∂ℓ/∂u over a batch of 2 maps of 2 channels × 2 positions: the closed
    form minus the chain rule's op-by-op form simplifies to 0 in the inputs, the incoming
    gradient and γ (the forward ops substituted)."""
    data = {"name": "s", "inputs": [1, 3], "loss": "mse", "layers": [
        {"type": "conv1d", "channels": 2, "kernel": 2}, {"type": "batch_norm"},
        {"type": "flatten"}, {"units": 2, "activation": "identity"}]}  # fmt: skip
    d = derive(parse_spec(data))
    (r,) = d.rewrites
    elements = [_Element(d.context, s, d.batch) for s in range(2)]
    for el in elements:
        el.samples = tuple(elements)
    base: dict = {}
    forward = [op for op in d.forward if op.out in ("cl2", "mu2", "xc2", "v2", "xhat2", "y2")]
    assert len(forward) == 6
    _define(forward, elements, base)
    derived, closed = dict(base), dict(base)
    _define(r.derived, elements, derived)
    _define(r.closed, elements, closed)
    (out,) = {op.out for op in r.closed if op.kind == "map"}
    for el in elements:
        for ix in ((0, 0), (0, 1), (1, 0), (1, 1)):
            name = el.tensor(out, ix)
            assert derived[name] != closed[name]  # two different formulas...
            assert sp.simplify(sp.together(derived[name] - closed[name])) == 0  # ...equal


MAKE = {"numpy": numpy_module, "c": c_module, "torch": torch_module}


@pytest.mark.parametrize("target", ["numpy", "c", "torch"])
@pytest.mark.parametrize("conv", ["conv1d", "conv2d"])
def test_targets_follow_pytorch(target, conv, tmp_path):
    """The generated module's ``step`` for 10 steps on batches of changing sizes (the C
    library's chunks split none: batch statistics need the whole batch): losses, parameters
    and running buffers as nn.Conv*d + nn.BatchNorm*d + torch.optim.Adam; then ``forward`` in
    evaluation mode."""
    d = derive(spec(conv, {"type": "adam", "lr": 0.01}))
    mod = MAKE[target](d, tmp_path)
    params = mod.init_params()
    state = mod.init_state(params)
    net = TorchNet(conv, {k: np.asarray(v, dtype=np.float64) for k, v in params.items()})
    opt = torch.optim.Adam(_trainable(net), lr=0.01)
    for step in range(10):
        x, t = batch(conv, 3 + step % 4 * 5, step)
        net.train()
        opt.zero_grad()
        want = F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(t))
        want.backward()
        opt.step()
        got = mod.step(params, state, x, t)
        assert abs(got - want.item()) <= 1e-10 * abs(want.item()), step
        for tensor, name in net.named():
            np.testing.assert_allclose(params[name], tensor.detach().numpy(), 1e-10, 1e-13,
                                       err_msg=f"{name} after step {step}")  # fmt: skip
    net.eval()
    x = batch(conv, 6, 99)[0]
    want = F.softmax(net(torch.from_numpy(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(mod.forward(params, x), want, rtol=1e-12, atol=1e-14)


def test_dropout_on_maps_and_c_equals_numpy(tmp_path):
    """conv2d, batch_norm over channels, dropout on the maps: C and torch equal NumPy over 12
    steps of changing batch sizes (float64, 1e-12), the masks being the portable PRNG's over
    each map's flat elements (drawn as the interpreter draws them); evaluation mode too."""
    data = {"name": "bnd", "inputs": [2, 4, 3], "seed": 3, "dtype": "float64",
            "layers": [{"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1},
                       {"type": "batch_norm"}, {"type": "dropout", "p": 0.4},
                       {"type": "conv2d", "channels": 2, "kernel": 2, "activation": "relu"},
                       {"type": "batch_norm", "affine": False},
                       {"type": "flatten"}, {"units": 3, "activation": "softmax"}],
            "loss": {"type": "cross_entropy"},
            "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9}}  # fmt: skip
    d = derive(parse_spec(data))
    mods = {t: MAKE[t](d, tmp_path / t) for t in MAKE}
    params = {t: m.init_params() for t, m in mods.items()}
    states = {t: m.init_state(params[t]) for t, m in mods.items()}
    rng = np.random.default_rng(0)
    for k in range(12):
        n = 2 + k % 5
        x, t = rng.normal(size=(n, 2, 4, 3)), np.eye(3)[rng.integers(0, 3, n)]
        if k == 0:  # the interpreter draws the same mask for this step
            env = {"x": x, "t": t, N.name: np.asarray(float(n)), "__step": 0, "__seed": 3}
            run_program(d, d.forward, env, {k: v.copy() for k, v in params["numpy"].items()})
            want = prng.dropout_keep(prng.dropout_key(3, 0, 3), 0, n, 48, 0.4)
            np.testing.assert_array_equal(env["m3"], want.reshape(n, 4, 4, 3))
            assert abs(float(env["E"]) - mods["numpy"].loss(params["numpy"], x, t)) < 1e-12
        losses = {name: m.step(params[name], states[name], x, t) for name, m in mods.items()}
        for name in ("c", "torch"):
            assert abs(losses[name] - losses["numpy"]) <= 1e-12 * abs(losses["numpy"]), k
    for name in ("c", "torch"):
        for p in params["numpy"]:
            np.testing.assert_allclose(params[name][p], params["numpy"][p], rtol=1e-12,
                                       atol=1e-14, err_msg=f"{name} {p}")  # fmt: skip
    x = rng.normal(size=(5, 2, 4, 3))
    want = mods["numpy"].forward(params["numpy"], x)
    for name in ("c", "torch"):
        np.testing.assert_allclose(mods[name].forward(params[name], x), want, 1e-12, 1e-15)
