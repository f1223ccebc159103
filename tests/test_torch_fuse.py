"""The torch target's fewer-calls forms (codegen/torch/fuse.py): the softmax cross-entropy as
torch's cross_entropy, the seed times dE and 1/N in place, relu and the relu mask's product in
place. Each against an independent reference: PyTorch autograd of the same network written with
torch.nn.functional (float64, 1e-12), for dE = 1 and dE = 3, float32 included, and the inputs and
saved tensors left as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import symbackprop
from symbackprop.codegen import generate
from symbackprop.codegen.torch import runtime
from symbackprop.codegen.torch.loader import load_torch

SPECS = {
    "mean": {"type": "cross_entropy"},
    "sum": {"type": "cross_entropy", "reduction": "sum"},
}


@pytest.fixture(scope="module", params=sorted(SPECS))
def module(request, tmp_path_factory):
    """A relu-relu-softmax net with the cross-entropy of the param's reduction, generated once."""
    data = {"name": f"fuse_{request.param}", "inputs": 5, "dtype": "float64", "seed": 4,
            "layers": [{"units": 6, "activation": "relu"}, {"units": 4, "activation": "relu"},
                       {"units": 3, "activation": "softmax"}],
            "loss": SPECS[request.param]}  # fmt: skip
    out = tmp_path_factory.mktemp(data["name"])
    generate(symbackprop.derive(data), "torch", out, force=True)
    return load_torch(out / f"{data['name']}_torch.py"), request.param


def _reference(params, X, T, reduction):
    W1, b1, W2, b2, W3, b3 = params
    a = torch.relu(torch.nn.functional.linear(X, W1, b1))
    a = torch.relu(torch.nn.functional.linear(a, W2, b2))
    z = torch.nn.functional.linear(a, W3, b3)
    return -(T * torch.log_softmax(z, 1)).sum() / (X.shape[0] if reduction == "mean" else 1)


def test_fused_code_is_printed(module):
    """The forms are there: one cross_entropy call and no log-sum-exp, the seed in place, relu
    and the masks' products into intermediates (never into an input or a saved tensor)."""
    m, reduction = module
    code = Path(m.__file__).read_text()
    loss = code[code.index("def _loss(") : code.index("loss_op = ")]
    sum_arg = ', reduction="sum"' if reduction == "sum" else ""
    assert f"E = torch.nn.functional.cross_entropy(z3, t{sum_arg})" in loss
    assert not any("lse" in ln for ln in loss.splitlines() if not ln.lstrip().startswith("#"))
    assert "torch.relu_(z1)" in loss and "torch.relu_(z2)" in loss
    backward = code[code.index("def _loss_backward(") : code.index("loss_op.register_autograd")]
    if reduction == "mean":
        assert "delta3 = (a3 - t).mul_(grad).mul_(_inverse(grad, N))" in backward
    assert "delta2 = da2.mul_(a2.sign().nan_to_num_())" in backward
    assert "delta1 = da1.mul_(a1.sign().nan_to_num_())" in backward


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_fused_gradients_equal_autograd(module, dtype, scale):
    """Loss and gradients (of scale * E: the incoming dE) equal autograd's of the same network;
    the batch and the parameters are unchanged by the in-place steps."""
    m, reduction = module
    g = torch.Generator().manual_seed(1)
    X = torch.randn(7, 5, generator=g, dtype=torch.float64).to(dtype)
    T = torch.softmax(torch.randn(7, 3, generator=g, dtype=torch.float64), 1).to(dtype)
    model = m.Model().to(dtype)
    ref = [p.detach().clone().requires_grad_() for p in model._params()]
    X0, T0, P0 = X.clone(), T.clone(), [p.detach().clone() for p in ref]
    E = model(X, T)
    (scale * E).backward()
    want = _reference(ref, X, T, reduction)
    (scale * want).backward()
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(E, want, **tol)
    for p, r in zip(model._params(), ref, strict=True):
        torch.testing.assert_close(p.grad, r.grad, **tol)
    assert torch.equal(X, X0) and torch.equal(T, T0)
    for p, p0 in zip(model._params(), P0, strict=True):
        assert torch.equal(p.detach(), p0)


def test_inverse_is_a_cached_cpu_scalar_in_eager_mode_only():
    """_inverse(like, n): the same float64 CPU scalar tensor 1/n for a plain tensor and an int,
    else the Python number (a fake tensor's or a symbolic size's)."""
    like = torch.ones((), dtype=torch.float32)
    a, b = runtime._inverse(like, 8), runtime._inverse(like, 8)
    assert a is b and a.dtype == torch.float64 and a.device.type == "cpu" and a.item() == 0.125
    with torch.device("meta"):
        assert runtime._inverse(like, 6).device.type == "cpu"
    assert runtime._inverse(torch.nn.Parameter(like), 4) == 0.25  # a subclass: the number
    assert runtime._inverse(like, 4.0) == 0.25 and isinstance(runtime._inverse(like, 4.0), float)
