"""layer_norm, batch_norm and dropout in the derivation: the closed forms equal the chain rule's
op-by-op forms, and the NumPy interpreter of the Derivation (``derive --at``) follows PyTorch
(nn.BatchNorm1d, nn.LayerNorm, torch.optim) over several training steps, running buffers and
evaluation mode included."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from symbackprop.core import prng
from symbackprop.core.chain_rule import derive
from symbackprop.core.evaluate import apply_update, initial_params, run_program
from symbackprop.core.ir import N, element_name, param_element_name
from symbackprop.core.ops import kind
from symbackprop.spec.load import parse_spec


def spec(layers, optimizer=None, **extra):
    data = {"name": "norm", "inputs": 3, "seed": 5, "layers": layers,
            "loss": {"type": "cross_entropy"}, "dtype": "float64",
            "optimizer": optimizer or {"type": "sgd", "lr": 0.1}, **extra}  # fmt: skip
    return parse_spec(data)


NET = [  # tanh before batch norm: a bias right before it has no gradient (Adam amplifies noise)
    {"units": 4, "activation": "tanh"},
    {"type": "batch_norm", "momentum": 0.2},
    {"type": "dropout", "p": 0.25},
    {"units": 5, "activation": "tanh"},
    {"type": "layer_norm"},
    {"units": 2, "activation": "softmax"},
]


def batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    t = np.eye(2)[rng.integers(0, 2, n)]
    return x, t


def env_of(d, x, t, step=0):
    return {"x": x, "t": t, N.name: np.asarray(x.shape[0], dtype=x.dtype), "__step": step}


@pytest.mark.parametrize("affine", [True, False])
def test_closed_forms_equal_the_op_by_op_derivation(affine):
    """Both backward programs (op by op, and with the closed forms) give the same gradient of
    every tensor the closed forms write, and the same parameter gradients."""
    layers = [dict(ly) for ly in NET]
    layers[1]["affine"] = layers[4]["affine"] = affine
    d = derive(spec(layers))
    assert {r.name for r in d.rewrites} == {"normalize"} and len(d.rewrites) == 2
    x, t = batch(5)
    params = initial_params(d)
    rng = np.random.default_rng(1)
    params = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in params.items()}
    params["var2"] = np.abs(params["var2"])
    base = env_of(d, x, t)
    run_program(d, d.forward, base, params)
    plain, closed = dict(base), dict(base)
    run_program(d, d.derived, plain, params)
    run_program(d, d.backward, closed, params)
    for r in d.rewrites:
        written = {op.out for op in r.closed if op.kind == "map"}
        assert written
        for name in written:
            np.testing.assert_allclose(closed[name], plain[name], rtol=1e-12, atol=1e-14)
    for op in d.gradients.values():
        np.testing.assert_allclose(closed[op.out], plain[op.out], rtol=1e-12, atol=1e-14)


def _torch_net(d, params):
    lin1, lin4, lin6 = (torch.nn.Linear(*reversed(params[f"W{i}"].shape)).double()
                        for i in (1, 4, 6))  # fmt: skip
    bn = torch.nn.BatchNorm1d(4, momentum=0.2).double()
    ln = torch.nn.LayerNorm(5).double()
    with torch.no_grad():
        for lin, i in ((lin1, 1), (lin4, 4), (lin6, 6)):
            lin.weight.copy_(torch.from_numpy(params[f"W{i}"]))
            lin.bias.copy_(torch.from_numpy(params[f"b{i}"]))
        bn.weight.copy_(torch.from_numpy(params["g2"]))
        bn.bias.copy_(torch.from_numpy(params["b2"]))
        bn.running_mean.copy_(torch.from_numpy(params["mean2"]))
        bn.running_var.copy_(torch.from_numpy(params["var2"]))
        ln.weight.copy_(torch.from_numpy(params["g5"]))
        ln.bias.copy_(torch.from_numpy(params["b5"]))
    return lin1, bn, lin4, ln, lin6


def _torch_forward(mods, x, mask):
    lin1, bn, lin4, ln, lin6 = mods
    h = bn(torch.tanh(lin1(x)))
    if mask is not None:
        h = h * mask / 0.75
    return lin6(ln(torch.tanh(lin4(h))))


def test_interpreter_follows_pytorch_over_training_steps():
    """Ten AdamW steps on one batch: loss, every gradient, the parameters and the running
    buffers after each step; then evaluation mode (running statistics, no dropout)."""
    d = derive(spec(NET, {"type": "adamw", "lr": 0.05, "weight_decay": 0.1}))
    x, t = batch(6)
    params = initial_params(d)
    mods = _torch_net(d, params)
    names = {"W1": mods[0].weight, "b1": mods[0].bias, "g2": mods[1].weight,
             "b2": mods[1].bias, "W4": mods[2].weight, "b4": mods[2].bias,
             "g5": mods[3].weight, "b5": mods[3].bias, "W6": mods[4].weight,
             "b6": mods[4].bias}  # fmt: skip
    opt = torch.optim.AdamW(list(names.values()), lr=0.05, weight_decay=0.1)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    state: dict = {}
    for step in range(10):
        env = env_of(d, x, t, step)
        run_program(d, d.forward, env, params)
        run_program(d, d.backward, env, params)
        key = prng.dropout_key(d.spec.seed, step, 3)
        mask = prng.dropout_keep(key, 0, 6, 4, 0.25).astype(np.float64)
        np.testing.assert_array_equal(env["m3"], mask)
        for m in mods:
            m.train()
        opt.zero_grad()
        loss = F.cross_entropy(_torch_forward(mods, xt, torch.from_numpy(mask)), tt)
        loss.backward()
        assert abs(float(env["E"]) - loss.item()) <= 1e-12 * abs(loss.item())
        for name, op in d.gradients.items():
            want = names[name].grad.numpy()
            np.testing.assert_allclose(
                env[op.out].reshape(want.shape),
                want,
                rtol=1e-10,
                atol=1e-13,
                err_msg=f"{name} at step {step}",
            )
        opt.step()
        grads = {name: env[op.out].reshape(params[name].shape)
                 for name, op in d.gradients.items()}  # fmt: skip
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
        for name, tensor in names.items():
            np.testing.assert_allclose(
                params[name],
                tensor.detach().numpy(),
                rtol=1e-10,
                atol=1e-13,
                err_msg=f"{name} after step {step}",
            )
        np.testing.assert_allclose(params["mean2"], mods[1].running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(params["var2"], mods[1].running_var.numpy(), rtol=1e-12)
    for m in mods:
        m.eval()
    xe, te = batch(4, seed=3)
    env = env_of(d, xe, te)
    run_program(d, d.evaluation, env, params)
    want = F.softmax(_torch_forward(mods, torch.from_numpy(xe), None), dim=1)
    np.testing.assert_allclose(env[d.output], want.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_dropout_masks():
    """p = 0 keeps everything; the dropped fraction of a large mask is p within sampling error;
    evaluation mode is the identity; masks differ between steps and layers."""
    key = prng.dropout_key(5, 0, 3)
    assert prng.dropout_keep(key, 0, 50, 40, 0.0).all()
    for p in (0.1, 0.5, 0.8):
        keep = prng.dropout_keep(key, 0, 400, 500, p)
        dropped = 1 - keep.mean()
        assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / keep.size)
    a = prng.dropout_keep(prng.dropout_key(5, 0, 3), 0, 20, 20, 0.5)
    b = prng.dropout_keep(prng.dropout_key(5, 1, 3), 0, 20, 20, 0.5)
    c = prng.dropout_keep(prng.dropout_key(5, 0, 4), 0, 20, 20, 0.5)
    assert (a != b).any() and (a != c).any()
    # rows first.. of a batch are the same rows of the whole batch's mask (chunked evaluation)
    np.testing.assert_array_equal(
        prng.dropout_keep(key, 7, 5, 20, 0.5), prng.dropout_keep(key, 0, 12, 20, 0.5)[7:]
    )
    d = derive(spec([{"units": 4, "activation": "tanh"}, {"type": "dropout", "p": 0.5},
                     {"units": 2, "activation": "softmax"}]))  # fmt: skip
    x, t = batch(5)
    params = initial_params(d)
    ev, tr = env_of(d, x, t), env_of(d, x, t)
    run_program(d, d.evaluation, ev, params)
    run_program(d, d.forward, tr, params)
    assert "m2" not in ev and "m2" in tr
    z = x @ params["W1"].T + params["b1"]
    logits = np.tanh(z) @ params["W3"].T + params["b3"]
    np.testing.assert_allclose(ev["z3"], logits, rtol=1e-13)


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
    """Each op's elements over the batch (N = its size), in terms of the earlier definitions."""
    for op in ops:
        if op.kind.startswith("grad_"):
            continue
        for el in elements[:1] if kind(op).per_batch(op) else elements:
            for ix, e in kind(op).elements(op, el).items():
                defs[el.tensor(op.out, ix)] = e.xreplace({N: len(elements)}).xreplace(defs)


@pytest.mark.parametrize("layer", ["batch_norm", "layer_norm"])
def test_closed_forms_proved_by_sympy(layer):
    """Every element of ∂ℓ/∂u over a batch of 3 samples of 3 features: the closed form minus
    the chain rule's op-by-op form simplifies to 0, in the inputs u, the incoming gradient and
    γ (the forward ops substituted)."""
    data = {"name": "s", "inputs": 2, "loss": "mse", "layers": [
        {"units": 3, "activation": "identity"}, {"type": layer},
        {"units": 2, "activation": "identity"}]}  # fmt: skip
    d = derive(parse_spec(data))
    (r,) = d.rewrites
    elements = [_Element(d.context, s, d.batch) for s in range(3)]
    for el in elements:
        el.samples = tuple(elements)
    base: dict = {}
    _define([op for op in d.forward if op.out in ("mu2", "xc2", "v2", "xhat2", "a2")],
            elements, base)  # fmt: skip
    derived, closed = dict(base), dict(base)
    _define(r.derived, elements, derived)
    _define(r.closed, elements, closed)
    for el in elements:
        for j in range(3):
            name = el.tensor("da1", (j,))
            assert derived[name] != closed[name]  # two different formulas...
            assert sp.simplify(sp.together(derived[name] - closed[name])) == 0  # ...equal
