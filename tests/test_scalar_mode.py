"""Scalar mode (element by element, explicit sums) agrees with tensor mode (matrix ops)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symbackprop
from symbackprop.core.scalar import values_at

NETS = [
    ("sigmoid", "sigmoid", {"type": "sse", "scale": 0.5}),
    ("tanh", "identity", {"type": "mse"}),
    ("relu", "softmax", {"type": "cross_entropy"}),
    ("elu", "identity", {"type": "cross_entropy", "reduction": "sum"}),
    ("gelu", "sigmoid", {"type": "binary_cross_entropy"}),
    ("silu", "identity", {"type": "binary_cross_entropy"}),
    ({"expr": "x*tanh(log(1+exp(x)))"}, "softmax", {"type": "mse"}),
    ("softplus", "tanh", {"type": "custom", "expr": "log(cosh(y - t))"}),
]


def spec(hidden, last, loss, bias="per_unit"):
    return {
        "name": "net",
        "inputs": 3,
        "seed": 11,
        "layers": [
            {"units": 4, "activation": hidden, "bias": {"shape": bias}},
            {"units": 3, "activation": hidden, "bias": {"shape": "shared"}},
            {"units": 3, "activation": last},
        ],
        "loss": loss,
        "optimizer": {"type": "sgd", "lr": 0.1},
    }


@pytest.mark.parametrize(("hidden", "last", "loss"), NETS, ids=lambda v: str(v)[:20])
def test_scalar_equals_tensor(hidden, last, loss):
    d = symbackprop.derive(spec(hidden, last, loss))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3))
    t = rng.dirichlet(np.ones(3), size=4) if loss["type"] == "cross_entropy" else rng.random((4, 3))
    ev = d.at((x, t))
    sd = d.scalar()
    per_sample = [values_at(d, ev, n) for n in range(4)]
    for g in sd.gradients:
        product = sp.Mul(*(f.expr for f in g.factors))
        total = sum(float(product.xreplace(v)) for v in per_sample)
        total *= float(g.scale.xreplace(per_sample[0]))
        tensor = ev.gradients[g.param]
        want = float(tensor[g.index] if g.index else tensor)
        assert total == pytest.approx(want, rel=1e-12, abs=1e-15), g.element
    # Every trainable element has exactly one scalar gradient.
    assert len(sd.gradients) == sum(int(np.prod(p.shape)) for p in d.trainable)


def test_scalar_definitions_reproduce_forward():
    d = symbackprop.derive(spec("tanh", "softmax", {"type": "cross_entropy"}))
    ev = d.at((np.array([[0.3, -1.0, 2.0]]), np.array([[0.0, 1.0, 0.0]])))
    vals = values_at(d, ev)
    for name, expr in d.scalar().definitions:
        assert float(expr.xreplace(vals)) == pytest.approx(
            vals[sp.Symbol(name, real=True)], rel=1e-12
        )


def test_auto_mode_threshold():
    small = symbackprop.derive("examples/mazur.yaml")
    assert small.num_params == 10 and small.mode() == "scalar"
    mid = symbackprop.derive(spec("tanh", "identity", {"type": "mse"}))
    assert mid.num_params == 12 + 4 + 12 + 1 + 9 + 3 and mid.mode() == "scalar"
    data = spec("tanh", "identity", {"type": "mse"})
    data["layers"][0]["units"] = 6
    big = symbackprop.derive(data)
    assert big.num_params == 18 + 6 + 18 + 1 + 9 + 3 and big.mode() == "tensor"
    assert big.mode("scalar") == "scalar" and small.mode("tensor") == "tensor"
