"""The torch target's fixed cost per op call (issue 18): the runtime's linear fill-in of an op's
default arguments returns what torch's own (quadratic) one returns, for our generated ops and
for aten ops with defaults and keyword-only arguments, and a generated module installs it."""

from __future__ import annotations

import torch
from torch._library import utils

from symbackprop.codegen.torch import runtime


def _cases():
    x = torch.ones(2, 3)
    return [
        (torch.ops.aten.sum.dim_IntList._schema, (x, [1]), {}),
        (torch.ops.aten.sum.dim_IntList._schema, (x, [1], True), {"dtype": torch.float64}),
        (torch.ops.aten.sum.dim_IntList._schema, (x, [0]), {"dtype": None}),
        (torch.ops.aten.linear.default._schema, (x, x.t()), {}),
        (torch.ops.aten.linear.default._schema, (x, x.t(), None), {}),
        (torch.ops.aten.full.default._schema, ([2], 1.0), {"dtype": torch.float32}),
        (torch.ops.aten.clamp_min.default._schema, (x, 0), {}),
    ]


def test_linear_fill_defaults_equals_torchs():
    runtime._linear_fill_defaults()
    fast = utils.fill_defaults
    assert fast.linear
    slow = fast.original
    for schema, args, kwargs in _cases():
        assert fast(schema, args, kwargs) == slow(schema, args, kwargs), schema
    runtime._linear_fill_defaults()  # once: a second call keeps the same function
    assert utils.fill_defaults is fast


def test_generated_op_fills_in_the_same_arguments(tmp_path):
    """A generated module's loss op: the same (args, kwargs) either way, and its gradients
    with torch's own fill-in equal the module's (the same setup_context inputs)."""
    import symbackprop
    from symbackprop.codegen import generate
    from symbackprop.codegen.torch.loader import load_torch

    data = {"name": "fd", "inputs": 3, "dtype": "float64", "layers": [
        {"units": 4, "activation": "relu"}, {"units": 2, "activation": "softmax"}],
        "loss": {"type": "cross_entropy"}}  # fmt: skip
    generate(symbackprop.derive(data), "torch", tmp_path, force=True)
    tm = load_torch(tmp_path / "fd_torch.py")
    assert utils.fill_defaults.linear  # installed by the import
    schema = tm.loss_op._opoverload._schema
    model = tm.Model()
    X = torch.randn(5, 3, dtype=torch.float64)
    T = torch.eye(2, dtype=torch.float64)[torch.tensor([0, 1, 1, 0, 1])]
    args = (X, T, *model._params())
    fast = utils.fill_defaults
    got = fast(schema, args, {})
    assert got == fast.original(schema, args, {})
    assert got[0] == args and got[1] == {}
    grads = []
    for fill in (fast, fast.original):
        utils.fill_defaults = fill
        try:
            model.zero_grad()
            model.loss(X, T).backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        finally:
            utils.fill_defaults = fast
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
