"""Numerical stability (issue 6, item 3): pre-activations and logits of about ±1e3.

Tiny nets with explicit weights drive a hidden layer (or the logits) to ±1000; losses and
gradients must be finite in the NumPy and the C target, equal to PyTorch's (float64) to 1e-10,
the two targets equal to 1e-12, and no RuntimeWarning may escape the NumPy module. Custom
expressions that overflow in PyTorch as written (log(1 + exp(x)) is inf at x = 1000, and its
autograd gives inf/inf = nan) are checked against PyTorch's stable function of the same math
(F.softplus, F.mish); a separate test records that the literal PyTorch expression is not finite.
"""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from torch_reference import CUSTOM_ACTIVATIONS, CUSTOM_LOSSES, torch_step

import symbackprop
from symbackprop.codegen.c.loader import c_module
from symbackprop.codegen.numpy.loader import numpy_module
from symbackprop.core.activations import custom, derive_activation, stable_softplus
from symbackprop.core.symbols import X as XSYM

TOL = {"rtol": 1e-10, "atol": 1e-12}
C_TOL = {"rtol": 1e-12, "atol": 1e-14}
SOFTPLUS = "log(1 + exp(x))"
MISH = "x*tanh(log(1+exp(x)))"
LOGISTIC_FN = "exp(x)/(1 + exp(x))"  # inf/inf at x = 1000 as written
# The same functions as PyTorch's stable built-ins (the literal expressions overflow in torch).
STABLE_TORCH = {SOFTPLUS: F.softplus, MISH: F.mish, LOGISTIC_FN: torch.sigmoid}
LOGISTIC = "log(1 + exp(-y*t))"  # a custom loss; t = ±1


def _logistic(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.logaddexp(torch.zeros_like(y), -y * t)


# Rows: z = W1 x + b1 reaches ±1000, ±200, ±400 and moderate values (-0.5, 10, -20, 13.5).
INPUTS = np.array([[1.0, -1.0], [-1.0, 1.0], [0.5, 0.25], [0.0, 0.0], [0.01, 0.02]])
W1 = [[1000.0, 0.0], [0.0, -1000.0], [600.0, 400.0]]
B1 = [0.0, 0.0, -0.5]
W2 = [[1e-3, -2e-3, 3e-3], [-1e-3, 5e-4, 1e-3]]
B2 = [0.0, 0.1]

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no cc")


def hidden_net(activation) -> dict:
    """3 hidden units with the activation at ±1e3, then a small identity layer and MSE."""
    return {
        "name": "stable_hidden",
        "inputs": 2,
        "layers": [
            {"units": 3, "activation": activation, "weight": {"init": W1}, "bias": {"init": B1}},
            {"units": 2, "weight": {"init": W2}, "bias": {"init": B2}},
        ],
        "loss": "mse",
        "optimizer": {"type": "sgd", "lr": 0.1},
    }


def logit_net(loss: str, last: str = "identity") -> dict:
    """One layer whose pre-activations (the logits) are about ±1e3."""
    return {
        "name": "stable_logits",
        "inputs": 2,
        "layers": [{"units": 3, "activation": last, "weight": {"init": W1}, "bias": {"init": B1}}],
        "loss": loss,
        "optimizer": {"type": "sgd", "lr": 0.1},
    }


def targets(loss, n: int, k: int, hard: bool) -> np.ndarray:
    rng = np.random.default_rng(7)
    if isinstance(loss, dict):  # the custom logistic loss
        return rng.choice([-1.0, 1.0], size=(n, k))
    if loss == "cross_entropy":
        return np.eye(k)[rng.integers(0, k, size=n)] if hard else rng.dirichlet(np.ones(k), n)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=(n, k)).astype(float) if hard else rng.uniform(size=(n, k))
    return rng.normal(size=(n, k))


def check(data: dict, tmp_path, hard: bool = False) -> None:
    """Both targets finite, warning-free, equal to torch (1e-10) and to each other (1e-12)."""
    d = symbackprop.derive(data)
    npm = numpy_module(d, tmp_path / "numpy")
    cm = c_module(d, tmp_path / "c")
    params = npm.init_params()
    T = targets(data["loss"], len(INPUTS), data["layers"][-1]["units"], hard)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(npm.forward(params, INPUTS)).all()
        E, grads = npm.loss_and_grad(params, INPUTS, T)
        assert np.isfinite(npm.loss(params, INPUTS, T))
    with np.errstate(over="ignore"):  # the private pass runs inside the public functions' errstate
        z1 = npm._forward(params, INPUTS)["z1"]
    assert np.abs(z1).max() >= 1000.0 and z1.min() <= -1000.0  # the premise: |z| reaches 1e3
    Ec, grads_c = cm.loss_and_grad(params, INPUTS, T)
    losses, ref, _ = torch_step(data, params, INPUTS, T)
    assert np.isfinite(losses[0]) and all(np.isfinite(g).all() for g in ref.values())
    assert np.isfinite(E) and np.isfinite(Ec)
    np.testing.assert_allclose(E, losses[0], **TOL)
    np.testing.assert_allclose(Ec, E, **C_TOL)
    assert sorted(grads) == sorted(ref) == sorted(grads_c)
    for name, g in ref.items():
        assert np.isfinite(grads[name]).all() and np.isfinite(grads_c[name]).all(), name
        np.testing.assert_allclose(grads[name], g, **TOL, err_msg=f"numpy {name}")
        np.testing.assert_allclose(grads_c[name], grads[name], **C_TOL, err_msg=f"c {name}")


@pytest.mark.parametrize(
    "activation",
    [
        *("sigmoid", "tanh", "elu", "softplus", "silu", "gelu"),
        *({"expr": e} for e in (SOFTPLUS, MISH, LOGISTIC_FN)),
    ],
    ids=str,
)
def test_hidden_activation_at_1e3(activation, tmp_path, monkeypatch):
    for expr, fn in STABLE_TORCH.items():
        monkeypatch.setitem(CUSTOM_ACTIVATIONS, expr, fn)
    check(hidden_net(activation), tmp_path)


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize(
    ("loss", "last"),
    [
        ("cross_entropy", "identity"),
        ("cross_entropy", "softmax"),
        ("binary_cross_entropy", "identity"),
        ("binary_cross_entropy", "sigmoid"),
    ],
)
def test_loss_on_logits_at_1e3(loss, last, hard, tmp_path):
    check(logit_net(loss, last), tmp_path, hard)


@pytest.mark.parametrize("last", ["sigmoid", "tanh", "softplus", "silu", "elu", "softmax"])
def test_saturated_output_layer_with_mse(last, tmp_path):
    check(logit_net("mse", last), tmp_path)


def test_custom_logistic_loss_at_1e3(tmp_path, monkeypatch):
    """log(1 + exp(-y t)): value via logaddexp, its derivative rewritten (both derivation steps)."""
    monkeypatch.setitem(CUSTOM_LOSSES, LOGISTIC, _logistic)
    data = logit_net({"type": "custom", "expr": LOGISTIC})
    text = symbackprop.derive(data).render("text")
    assert "max(0, -a*t) + log(1 + exp(-abs(a*t)))" in text
    assert "∂ℓ/∂a = -t/(1 + exp(a*t))" in text
    check(data, tmp_path)


def test_literal_torch_expression_overflows_where_ours_does_not(tmp_path):
    """What PyTorch gives for the literal custom expressions at 1e3: not finite (ours is)."""
    z = torch.tensor([1000.0], dtype=torch.float64, requires_grad=True)
    value = CUSTOM_ACTIVATIONS[MISH](z)
    value.backward()
    assert torch.isfinite(value).all() and torch.isnan(z.grad).all()  # mish: nan gradient
    assert torch.isinf(torch.log(1 + torch.exp(z.detach()))).all()  # softplus: inf value
    npm = numpy_module(symbackprop.derive(hidden_net({"expr": SOFTPLUS})), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = npm._forward(npm.init_params(), INPUTS)
    np.testing.assert_allclose(v["a1"], F.softplus(torch.from_numpy(v["z1"])).numpy(), **TOL)
    assert v["a1"][0, 0] == 1000.0 and v["a1"][1, 0] == 0.0


def test_stable_rewrites_are_derivation_steps():
    """The derivation shows how log(1 + exp(u)) and its derivative are computed."""
    text = symbackprop.derive(hidden_net({"expr": SOFTPLUS})).render("text")
    assert "f(x) = max(0, x) + log(1 + exp(-abs(x)))" in text
    assert "log(1 + e^u) = max(u, 0) + log(1 + e^(−|u|))" in text
    assert "f'(x) = 1/(1 + exp(-x))" in text and "cannot overflow to ∞/∞" in text
    text = symbackprop.derive(hidden_net({"expr": LOGISTIC_FN})).render("text")
    assert "f(x) = 1/(1 + exp(-x))    [custom: exp(x)/(1 + exp(x)): rewritten so that exp" in text
    plain = derive_activation(custom(1 + XSYM, "1 + x"))
    assert [s.why for s in plain.steps] == ["definition", "differentiate"]  # nothing to rewrite


@pytest.mark.parametrize("x0", [-1000, -3, 0, 2, 1000])
def test_stable_softplus_is_equal(x0):
    """The rewrite is the same function: mish in both forms at 30 digits."""
    expr = XSYM * sp.tanh(sp.log(1 + sp.exp(XSYM)) + sp.log(1 + sp.exp(-2 * XSYM)))
    stable = stable_softplus(expr)
    assert not stable.has(sp.log(1 + sp.exp(XSYM)))
    assert abs(sp.N((stable - expr).subs(XSYM, x0), 30)) < 1e-25
