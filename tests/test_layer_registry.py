"""A layer kind added from this file alone, without touching the package: ``scale``, out = s·in
with one trainable scalar s. Its spec field, derivation, NumPy and C gradients all follow from
the registry entry (forward ops only; the backward comes from the op kinds' pullbacks), and
they equal PyTorch autograd's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import symbackprop
from symbackprop.codegen.c.loader import c_module
from symbackprop.codegen.numpy.loader import numpy_module
from symbackprop.core.ir import Init, Op, Param, vec
from symbackprop.core.layers import LAYER_KINDS, LayerKind, LayerSpec
from symbackprop.spec.errors import SpecError
from symbackprop.spec.fields import _num


def _parse(f, inputs, shapes):
    init = _num(f.get("init", 0.5), f.at("init"))
    f.done(("init",))
    return LayerSpec("scale", inputs, shapes[0], attrs=(("init", init),))


def _params(ls, i, shapes):
    init = Init("values", dict(ls.attrs)["init"])
    return (Param(f"s{i}", i, "scale", "shared", (), True, init, 1, 1),)


def _forward(node):
    s, inp = node.params[0].name, node.inputs[0]
    return (Op("map", node.a, (s, inp), vec(s) * vec(inp), why=f"{node.a} = {s} {inp}"),)


TEXTBOOK = ((r"\mathbf{a}^{(l)} = s \, \mathbf{a}^{(l-1)}", "a_l = s a_{l-1}", "scale"),)
SCALE = LayerKind("scale", _parse, _params, _forward, TEXTBOOK)

SPEC = {
    "name": "scaled",
    "inputs": 3,
    "seed": 4,
    "layers": [
        {"units": 4, "activation": "tanh"},
        {"type": "scale", "init": 0.7},
        {"units": 2, "activation": "sigmoid"},
    ],
    "loss": {"type": "mse"},
    "optimizer": {"type": "sgd", "lr": 0.1},
}


@pytest.fixture
def scale_kind(monkeypatch):
    monkeypatch.setitem(LAYER_KINDS, "scale", SCALE)


def _torch(params, x, t):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    a1 = torch.tanh(torch.tensor(x) @ p["W1"].T + p["b1"])
    a2 = p["s2"] * a1
    a3 = torch.sigmoid(a2 @ p["W3"].T + p["b3"])
    loss = torch.nn.functional.mse_loss(a3, torch.tensor(t))
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in p.items()}


@pytest.mark.parametrize("make", [numpy_module, c_module], ids=["numpy", "c"])
def test_toy_kind_trains_like_pytorch(scale_kind, tmp_path, make):
    d = symbackprop.derive(SPEC)
    assert [p.name for p in d.params] == ["W1", "b1", "s2", "W3", "b3"]
    assert d.gradients["s2"].kind == "grad_reduce"
    module = make(d, tmp_path)
    params = module.init_params()
    assert float(params["s2"]) == 0.7
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(6, 3)), rng.uniform(size=(6, 2))
    loss, grads = module.loss_and_grad(params, x, t)
    ref_loss, ref = _torch(params, x, t)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name, g in ref.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-14, err_msg=name)


def test_toy_kind_in_the_derivation(scale_kind):
    d = symbackprop.derive(SPEC)
    text = d.render("text", "tensor")
    assert "a2 = a1*s2" in text and "ds2 = " in text
    x = np.array([[0.1, -0.2, 0.3]])
    ev = d.at((x, np.array([[0.2, 0.9]])))
    _, ref = _torch(ev.params, x, np.array([[0.2, 0.9]]))
    assert float(ev.gradients["s2"]) == pytest.approx(float(ref["s2"]), rel=1e-12)
    # scalar mode and its worked numbers come from the same registry entry
    for g in d.scalar().gradients:
        if g.param == "s2":
            assert g.element == "s2"


def test_unknown_kind_is_refused_without_it():
    with pytest.raises(SpecError, match="unknown layer type 'scale'"):
        symbackprop.derive(SPEC)
