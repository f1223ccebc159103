"""batch_norm, layer_norm and dropout in the generated NumPy module and C library, against
PyTorch: 25 training steps of nn.BatchNorm1d / nn.LayerNorm / torch.optim (the same dropout masks
applied by hand), the running buffers after every step, and evaluation mode (forward: running
statistics, no dropout) afterwards; C and NumPy equal over 30 steps of changing batch sizes
(float64, 1e-12), their masks being the portable PRNG's (core/prng.py) at the seed and the
step count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_normalization import NET, _torch_forward, _torch_net, batch, spec

from symbackprop.codegen.c import c_module
from symbackprop.codegen.numpy import numpy_module
from symbackprop.codegen.torch import torch_module
from symbackprop.core import prng
from symbackprop.core.chain_rule import derive

TOL = {"float64": (1e-10, 1e-12), "float32": (1e-4, 1e-5)}


MAKE = {"numpy": numpy_module, "c": c_module, "torch": torch_module}


@pytest.mark.parametrize("target", ["numpy", "c", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", [{"type": "adamw", "lr": 0.05, "weight_decay": 0.1},
                                       {"type": "sgd", "lr": 0.1, "momentum": 0.9},
                                       {"type": "sgd", "lr": 0.1}])  # fmt: skip
def test_target_follows_pytorch(target, dtype, optimizer, tmp_path):
    d = derive(spec(NET, optimizer, dtype=dtype))
    mod = MAKE[target](d, tmp_path)
    params = mod.init_params()
    state = mod.init_state(params)
    assert set(mod.TRAINABLE) == {"W1", "b1", "g2", "b2", "W4", "b4", "g5", "b5", "W6", "b6"}
    f64 = {k: v.astype(np.float64) for k, v in params.items()}
    mods = _torch_net(d, f64)
    tdtype = torch.float32 if dtype == "float32" else torch.float64  # torch in the same dtype
    for m in mods:
        m.to(tdtype)
    tensors = [t for m in mods for t in (m.weight, m.bias)]
    kind = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[optimizer["type"]]
    opt = kind(tensors, **{k: v for k, v in optimizer.items() if k != "type"})
    rtol, atol = TOL[dtype]
    for step in range(25):
        x, t = (a.astype(dtype) for a in batch(6, seed=step))
        mask = prng.dropout_keep(prng.dropout_key(5, step, 3), 0, 6, 4, 0.25).astype(dtype)
        for m in mods:
            m.train()
        opt.zero_grad()
        out = _torch_forward(mods, torch.from_numpy(x), torch.from_numpy(mask))
        want = F.cross_entropy(out, torch.from_numpy(t))
        want.backward()
        if step == 0:  # loss_and_grad with the step's masks, and the same gradients
            e, grads = mod.loss_and_grad(params, x, t, step=step)
            assert abs(e - want.item()) <= rtol * abs(want.item())
            np.testing.assert_allclose(grads["g2"], mods[1].weight.grad.numpy(), rtol, atol)
            assert "mean2" not in grads and "var2" not in grads
        got = mod.step(params, state, x, t)
        opt.step()
        assert abs(got - want.item()) <= rtol * abs(want.item()), step
        names = {"W1": mods[0].weight, "b1": mods[0].bias, "g2": mods[1].weight,
                 "b2": mods[1].bias, "mean2": mods[1].running_mean,
                 "var2": mods[1].running_var, "W4": mods[2].weight, "b4": mods[2].bias,
                 "g5": mods[3].weight, "b5": mods[3].bias, "W6": mods[4].weight,
                 "b6": mods[4].bias}  # fmt: skip
        for name, tensor in names.items():
            np.testing.assert_allclose(
                params[name],
                tensor.detach().numpy(),
                rtol,
                atol,
                err_msg=f"{name} after step {step}",
            )
    assert state["step"] == 25
    for m in mods:
        m.eval()
    x = batch(7, seed=99)[0].astype(dtype)
    want = F.softmax(_torch_forward(mods, torch.from_numpy(x), None), dim=1)
    np.testing.assert_allclose(mod.forward(params, x), want.detach().numpy(), rtol, atol)


def test_c_equals_numpy_and_masks_bit_for_bit(tmp_path):
    """Over 30 steps on batches of changing sizes: the same losses and parameters to 1e-12
    (float64), hence the same masks; the masks themselves bit for bit (the training-mode loss
    at a step with only the mask differing)."""
    layers = [{"units": 16, "activation": "relu"}, {"type": "dropout", "p": 0.3},
              {"units": 8, "activation": "tanh"}, {"type": "layer_norm"},
              {"type": "dropout", "p": 0.6}, {"type": "batch_norm"},
              {"units": 2, "activation": "softmax"}]  # fmt: skip
    d = derive(spec(layers, {"type": "sgd", "lr": 0.05, "momentum": 0.9}))
    c, m = c_module(d, tmp_path / "c"), numpy_module(d, tmp_path / "n")
    pc, pn = c.init_params(), m.init_params()
    sc, sn = c.init_state(pc), m.init_state(pn)
    for k in range(30):
        x, t = batch(3 + k % 7, seed=k)
        ec, en = c.step(pc, sc, x, t), m.step(pn, sn, x, t)
        assert abs(ec - en) <= 1e-12 * abs(en), k
    for name in pn:
        np.testing.assert_allclose(pc[name], pn[name], rtol=1e-12, atol=1e-14, err_msg=name)
    x, t = batch(40, seed=1)
    for step in (0, 1, 7, 2**40):
        assert abs(c.loss(pc, x, t, step=step) - m.loss(pn, x, t, step=step)) <= 1e-12
    np.testing.assert_allclose(c.forward(pc, x), m.forward(pn, x), rtol=1e-12, atol=1e-15)


def test_dropout_p0_is_no_dropout_and_masks_follow_the_step(tmp_path):
    """p = 0 trains exactly as the same net without the dropout layer; with p > 0 the training
    loss depends on the step's mask and evaluation mode on none."""
    layers = [{"units": 4, "activation": "tanh"}, {"type": "dropout", "p": 0.0},
              {"units": 2, "activation": "softmax"}]  # fmt: skip
    plain = [layers[0], layers[2]]
    a = numpy_module(derive(spec(layers)), tmp_path / "a")
    b = numpy_module(derive(spec(plain)), tmp_path / "b")
    pa, pb = a.init_params(), b.init_params()
    pb = {"W1": pb["W1"], "b1": pb["b1"], "W2": pb["W2"], "b2": pb["b2"]}
    pa = {"W1": pa["W1"], "b1": pa["b1"], "W3": pa["W3"], "b3": pa["b3"]}
    pb["W2"][...], pb["b2"][...] = pa["W3"], pa["b3"]
    sa, sb = a.init_state(pa), b.init_state(pb)
    for k in range(5):
        x, t = batch(8, seed=k)
        assert a.step(pa, sa, x, t) == b.step(pb, sb, x, t)
    np.testing.assert_array_equal(pa["W1"], pb["W1"])
    layers[1]["p"] = 0.5
    c = numpy_module(derive(spec(layers)), tmp_path / "c")
    pc = c.init_params()
    x, t = batch(8)
    assert c.loss(pc, x, t, step=0) != c.loss(pc, x, t, step=1)
    assert c.loss(pc, x, t, step=3) == c.loss(pc, x, t, step=3)
    z = np.tanh(x @ pc["W1"].T + pc["b1"]) @ pc["W3"].T + pc["b3"]
    want = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(c.forward(pc, x), want / want.sum(1, keepdims=True), rtol=1e-13)
