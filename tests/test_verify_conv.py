"""verify --wrt W1 for a conv kernel (issue 14): the kernel's gradient in tensor form, as the
input correlated with δ — ``corr(x, delta1, stride=..., padding=..., dilation=..., groups=...)``
or LaTeX ``\\operatorname{corr}(\\mathbf{x}, \\boldsymbol{\\delta}^{(1)})``, ``\\mathbf{x} \\star
\\boldsymbol{\\delta}^{(1)}`` — proved or refuted, its mistakes named. The kernel gradient verify
reports is checked against PyTorch autograd (nn.functional.conv1d/conv2d) at its probe point."""

from __future__ import annotations

import pytest
import torch

from symbackprop.spec.errors import SpecError
from symbackprop.verify.api import verify


def _net(dims: int = 2, reduction: str = "sum", size: list | None = None, **conv) -> dict:
    size = size or ([2, 3, 3] if dims == 2 else [2, 5])
    layer = {"type": f"conv{dims}d", "channels": 2, "kernel": 2, "activation": "tanh", **conv}
    return {
        "name": "conv_net", "inputs": size, "optimizer": {"type": "sgd", "lr": 0.1},
        "layers": [layer, {"type": "flatten"}, {"units": 2, "activation": "sigmoid"}],
        "loss": {"type": "sse", "scale": 0.5, "reduction": reduction},
    }  # fmt: skip


GEOMETRIES = [
    ({}, "corr(x, delta1)"),
    ({"stride": 2}, "corr(x, delta1, stride=2)"),
    ({"stride": 2, "padding": 1}, "corr(x, delta1, stride=2, padding=1)"),
    ({"dilation": 2}, "corr(x, delta1, dilation=2)"),
    ({"groups": 2}, "corr(x, delta1, groups=2)"),  # depthwise: 2 channels in, 2 out
    ({"stride": [1, 2], "padding": [1, 0]}, "corr(x, delta1, stride=(1, 2), padding=(1, 0))"),
]


def _torch_kernel_grad(r, spec: dict) -> list:
    """dE/dW1 by autograd at the counterexample verify reports (the net of ``_net``)."""
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.counterexample.items()}
    conv = spec["layers"][0]
    dims = int(conv["type"][4])
    cin, *size = spec["inputs"]
    groups = conv.get("groups", 1)
    kshape = (2, cin // groups, *[2] * dims)

    def tensor(prefix: str, shape: tuple) -> torch.Tensor:
        import itertools

        vals = [p[prefix + "_".join(str(i + 1) for i in ix)]
                for ix in itertools.product(*(range(n) for n in shape))]  # fmt: skip
        return torch.stack(vals).reshape(shape)

    w1 = tensor("w1_", kshape).requires_grad_()
    b1 = tensor("b1_", (2,))
    x = tensor("x", (cin, *size)).unsqueeze(0)
    fn = torch.nn.functional.conv2d if dims == 2 else torch.nn.functional.conv1d
    pad = conv.get("padding", 0)
    z1 = fn(x, w1, b1, stride=conv.get("stride", 1), padding=pad,
            dilation=conv.get("dilation", 1), groups=groups)  # fmt: skip
    a2 = torch.tanh(z1).flatten()
    cols = range(1, a2.numel() + 1)
    name = "w3_{}{}"  # w3_1_10 once the column has two digits
    w3 = torch.stack([torch.stack([p[name.format(o, j) if j < 10 else f"w3_{o}_{j}"] for j in cols])
                      for o in (1, 2)])  # fmt: skip
    a3 = torch.sigmoid(w3 @ a2 + tensor("b3_", (2,)))
    e = 0.5 * ((a3 - torch.stack([p["t1"], p["t2"]])) ** 2).sum()
    (g,) = torch.autograd.grad(e, w1)
    return g.tolist()


@pytest.mark.parametrize(("conv", "formula"), GEOMETRIES, ids=[g[1] for g in GEOMETRIES])
def test_kernel_gradient_as_a_correlation(conv, formula):
    """The correct values are autograd's; the printed formula is the correlation, with the
    layer's settings; pasted back whole (with its δ and reshape lines) it proves equivalent."""
    spec = _net(**conv)
    wrong = verify(spec, "W1", "0 * W1")
    assert not wrong.equivalent and wrong.true_shape == (2, 2 // conv.get("groups", 1), 2, 2)
    assert torch.allclose(
        torch.tensor(wrong.true_value, dtype=torch.float64),
        torch.tensor(_torch_kernel_grad(wrong, spec), dtype=torch.float64),
        rtol=1e-10, atol=1e-14,
    )  # fmt: skip
    assert wrong.correct_formula.splitlines()[0] == f"dE/dW1 = {formula}"
    settings = formula.removeprefix("corr(x, delta1").removesuffix(")").lstrip(", ")
    tex = wrong.correct_formula_latex
    assert tex.isprintable() or "\n" in tex and all(line.isprintable() for line in tex.split("\n"))
    assert (rf"\quad \text{{({settings})}}" in tex) == bool(settings), tex  # the layer's settings
    assert verify(spec, "W1", wrong.correct_formula).equivalent
    assert verify(spec, "W1", tex, latex=True).equivalent  # the LaTeX pastes back, settings too
    assert verify(spec, "W1", formula).equivalent


def test_conv1d_and_the_elementwise_delta():
    spec = _net(dims=1, stride=2)
    r = verify(spec, "W1", "corr(x, da1 * (1 - a1**2), stride=2)")
    assert r.equivalent, r.text()
    assert verify(spec, "W1", "corr(x, da1 * tanh'(z1), stride=2)").equivalent
    wrong = verify(spec, "W1", "0 * W1")
    assert torch.allclose(
        torch.tensor(wrong.true_value, dtype=torch.float64),
        torch.tensor(_torch_kernel_grad(wrong, spec), dtype=torch.float64), rtol=1e-10,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("conv", "wrong", "named"),
    [
        (
            {},
            "conv(x, delta1)",
            "conv flips δ (a true convolution), but the layer is a "
            "cross-correlation, as PyTorch's: its kernel gradient is corr(x, delta1)",
        ),
        (
            {"stride": 2, "size": [2, 4, 4]},
            "corr(x, delta1)",
            "stride, padding, dilation or groups differ from yours: corr(x, delta1, stride=2)",
        ),
        ({"stride": 2}, "corr(x, delta1, stride=2, padding=1)", "corr(x, delta1, stride=2)"),
        ({"stride": 2, "size": [2, 4, 4]}, "conv(x, delta1, stride=2)", "conv flips δ"),
        ({}, "corr(x, da1)", "missing the activation derivative tanh'(z1_k) inside delta1_k"),
        ({}, "-corr(x, delta1)", "sign is flipped"),
    ],
)
def test_kernel_gradient_mistakes_are_named(conv, wrong, named):
    r = verify(_net(**conv), "W1", wrong)
    assert not r.equivalent and r.explanation and named in r.explanation, r.explanation


def test_swapped_or_mismatched_maps_are_a_shape_mismatch():
    r = verify(_net(), "W1", "corr(delta1, x)")  # [2, 2, 3, 3]: not the kernel's [2, 2, 2, 2]
    assert not r.equivalent
    r = verify(_net(), "W1", "corr(x, delta1) @ x")
    assert not r.equivalent and r.method == "shape check" and "maps" in r.explanation


@pytest.mark.parametrize(
    "tex",
    [
        r"\operatorname{corr}\left(\mathbf{x}, \boldsymbol{\delta}^{(1)}\right)",
        r"\mathbf{x} \star \boldsymbol{\delta}^{(1)}",
        r"\mathbf{x} \star \left(\frac{\partial \ell}{\partial \mathbf{a}^{(1)}} \odot "
        r"\left(1 - \left(\mathbf{a}^{(1)}\right)^{2}\right)\right)",
    ],
)
def test_latex_correlation(tex):
    assert verify(_net(), "W1", tex, latex=True).equivalent


def test_batch_of_kernel_gradients():
    spec = _net(reduction="mean")
    assert verify(spec, "W1", "1/N * sum_n(corr(x, delta1))", batch=2).equivalent
    r = verify(spec, "W1", "sum_n(corr(x, delta1))", batch=2)
    assert not r.equivalent and "missing the factor 1/N = 1/2" in r.explanation


def test_one_kernel_element_still_works():
    spec = _net()
    shown = verify(spec, "w1_1_1_1_1", "0")
    rhs = shown.correct_formula.splitlines()[0].split(" = ", 1)[1]
    assert verify(spec, "w1_1_1_1_1", rhs).equivalent


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("corr(x, delta1, step=2)", "takes the keywords stride, padding, dilation, groups"),
        ("corr(x, delta1, stride=1.5)", "stride is an integer"),
        ("corr(x, delta1, stride=0)", "stride is an integer from 1"),
        ("corr(x, delta1, stride=(1, 2, 3))", "one value per axis (2)"),
        ("corr(x)", "takes two maps"),
        ("reshape(delta1)", "reshape(v, d1, d2, ...)"),
    ],
)
def test_bad_correlations_are_refused(expr, fragment):
    with pytest.raises(SpecError) as info:
        verify(_net(), "W1", expr)
    assert fragment in str(info.value), str(info.value)
