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


def test_derived_op_equals_torchs_custom_op(tmp_path, monkeypatch):
    """runtime.derived_op: the generated loss op and a torch.library.custom_op of the same
    forward, setup_context and backward give the same loss, outputs and gradients bit for bit;
    an eager training step takes derived_op's own kernel (no call of torch's fill-in of
    defaults, which torch's kernel makes once per call), and a call without grad takes torch's."""
    import symbackprop
    from symbackprop.codegen import generate
    from symbackprop.codegen.torch.loader import load_torch

    data = {"name": "lean", "inputs": 3, "dtype": "float64", "layers": [
        {"units": 4, "activation": "tanh"}, {"units": 2, "activation": "softmax"}],
        "loss": {"type": "cross_entropy"}}  # fmt: skip
    generate(symbackprop.derive(data), "torch", tmp_path, force=True)
    tm = load_torch(tmp_path / "lean_torch.py")
    assert isinstance(tm.loss_op, torch._library.custom_ops.CustomOpDef)
    plain = torch.library.custom_op("symbackprop_test::lean_plain", tm._loss, mutates_args=())
    plain.register_fake(tm._loss_fake)
    plain.register_autograd(tm._loss_backward, setup_context=tm._loss_setup)
    calls = []
    fill = utils.fill_defaults
    monkeypatch.setattr(utils, "fill_defaults", lambda *a: calls.append(1) or fill(*a))
    model = tm.Model()
    X = torch.randn(5, 3, dtype=torch.float64)
    T = torch.eye(2, dtype=torch.float64)[torch.tensor([0, 1, 1, 0, 1])]
    results = []
    for op in (tm.loss_op, plain):
        params = [p.detach().clone().requires_grad_() for p in model._params()]
        calls.clear()
        out = op(X, T, *params)
        (3 * out[0]).backward()
        results.append(([o.detach() for o in out], [p.grad for p in params], len(calls)))
        assert type(out[0].grad_fn).__name__.startswith("GeneratedBackwardFor_symbackprop")
        assert not out[1].requires_grad  # the saved values are not differentiable outputs
    (ours, our_grads, our_calls), (theirs, their_grads, their_calls) = results
    assert (our_calls, their_calls) == (0, 1)
    for a, b in zip(ours + our_grads, theirs + their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    calls.clear()
    with torch.no_grad():  # torch's kernel: no autograd node, the same values
        for a, b in zip(tm.loss_op(X, T, *model._params()), ours, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_eager_call_skips_the_dispatcher_round_trip(tmp_path, monkeypatch):
    """An eager call with grad wanted goes straight to the op's autograd Function (no
    OpOverload call), with the same node, values and gradients bit for bit as the call through
    the dispatcher; without grad, or under a __torch_function__ mode, the op goes through the
    dispatcher as any custom op."""
    import symbackprop
    from symbackprop.codegen import generate
    from symbackprop.codegen.torch.loader import load_torch

    data = {"name": "hop", "inputs": 3, "dtype": "float64", "layers": [
        {"units": 4, "activation": "relu"}, {"units": 2, "activation": "softmax"}],
        "loss": {"type": "cross_entropy"}}  # fmt: skip
    generate(symbackprop.derive(data), "torch", tmp_path, force=True)
    tm = load_torch(tmp_path / "hop_torch.py")
    model = tm.Model()
    X = torch.randn(5, 3, dtype=torch.float64)
    T = torch.eye(2, dtype=torch.float64)[torch.tensor([0, 1, 1, 0, 1])]
    overload, calls = tm.loss_op._opoverload, []
    through = type(overload).__call__

    def spy(self, *args, **kwargs):
        calls.append(self is overload)
        return through(self, *args, **kwargs)

    monkeypatch.setattr(type(overload), "__call__", spy)
    results = []
    for call in (tm.loss_op, overload):  # our eager path, then the dispatcher's
        model.zero_grad()
        out = call(X, T, *model._params())
        out[0].backward()
        assert type(out[0].grad_fn).__name__.startswith("GeneratedBackwardFor_symbackprop")
        results.append([o.detach() for o in out] + [p.grad for p in model._params()])
    assert calls == [True]  # the second call only
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():
        tm.loss_op(X, T, *model._params())
    assert calls == [True] * 2

    class Passthrough(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Passthrough():
        out = tm.loss_op(X, T, *model._params())
    assert len(calls) > 2 and all(calls) and out[0].grad_fn is not None
