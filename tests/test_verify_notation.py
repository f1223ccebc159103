"""verify reads what people write (issue 13, item 3): relu' in every common notation, every
named activation's derivative as name'(z), NumPy broadcasting, and its own correct formula
pasted back."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbackprop import derive
from symbackprop.spec.errors import SpecError
from symbackprop.verify.api import verify

ROOT = Path(__file__).resolve().parents[1]
MAZUR = ROOT / "examples" / "mazur.yaml"

RELU_NET = {
    "name": "relu_net",
    "inputs": 2,
    "layers": [
        {"units": 2, "activation": "relu",
         "weight": {"init": [[0.3, -0.2], [0.5, 0.4]]}, "bias": {"init": [0.1, -0.1]}},
        {"units": 2, "activation": "sigmoid",
         "weight": {"init": [[0.2, -0.7], [0.6, 0.3]]}, "bias": {"init": [0.0, 0.1]}},
    ],
    "loss": {"type": "mse", "reduction": "sum"},
    "optimizer": {"type": "sgd", "lr": 0.1},
}  # fmt: skip


@pytest.fixture(scope="module")
def relu():
    return derive(RELU_NET)


@pytest.fixture(scope="module")
def mazur():
    return derive(MAZUR)


DELTA2 = "(2*(a2_1 - t1)*a2_1*(1 - a2_1)*w2_11 + 2*(a2_2 - t2)*a2_2*(1 - a2_2)*w2_21)"
RELU_PRIME = ["(z1_1 > 0)", "heaviside(z1_1)", "step(z1_1)", "Heaviside(z1_1, 0)",
              "heaviside(z1_1, 0)", "relu'(z1_1)", "relu' (z1_1)"]  # fmt: skip


@pytest.mark.parametrize("prime", RELU_PRIME)
def test_relu_derivative_in_every_scalar_notation(relu, prime):
    r = verify(relu, "w1_11", f"{DELTA2} * {prime} * x1")
    assert r.equivalent, r.text()


@pytest.mark.parametrize("prime", ["(z1_1 < 0)", "(z1_1 <= 0)", "step(-z1_1)", "(x1 > 0)"])
def test_a_wrong_indicator_is_caught(relu, prime):
    """1 - relu', or the indicator of the wrong variable, is not relu'. (z >= 0) differs from
    PyTorch's relu' only at z = 0 and is judged equivalent, as any probe would.)"""
    assert not verify(relu, "w1_11", f"{DELTA2} * {prime} * x1").equivalent


MATRIX_DELTA2 = "(W2.T @ (2*(a2 - t) * a2 * (1 - a2)))"


@pytest.mark.parametrize(
    "prime", ["(z1 > 0)", "heaviside(z1, 0)", "step(z1)", "relu'(z1)", "Heaviside(z1, 0)"]
)
def test_relu_derivative_in_matrix_form(relu, prime):
    r = verify(relu, "W1", f"({MATRIX_DELTA2} * {prime}) @ x.T")
    assert r.equivalent, r.text()


def test_max_in_matrix_form_is_elementwise(relu):
    """relu written as max(z1, 0) in matrix form (a1 recomputed): elementwise, as np.maximum."""
    r = verify(relu, "W2", "(2*(a2 - t) * a2 * (1 - a2)) @ max(z1, 0).T")
    assert r.equivalent, r.text()


@pytest.mark.parametrize(
    ("wrt", "expr"),
    [
        ("w2_11", "2*(a2_1 - t1)*sigmoid'(z2_1)*a1_1"),
        ("W2", "(2*(a2 - t) * sigmoid'(z2)) @ a1.T"),
    ],
)
def test_named_activation_derivatives(relu, wrt, expr):
    assert verify(relu, wrt, expr).equivalent


def test_tanh_prime_on_a_tanh_net():
    net = derive(ROOT / "examples" / "verify" / "softmax3.yaml")
    delta2 = "(W3.T @ (a3 - t)) * a2 * (1 - a2)"
    assert verify(net, "W1", f"((W2.T @ ({delta2})) * tanh'(z1)) @ x.T").equivalent
    assert not verify(net, "W1", f"((W2.T @ ({delta2})) * sigmoid'(z1)) @ x.T").equivalent


def test_numpy_broadcasting_is_judged_as_numpy_computes_it(mazur):
    """(a2 - t) * a2 * (1 - a2) * a1.T: a column times a row is their outer product in NumPy,
    the right matrix; a wrong one is still caught; shapes NumPy refuses stay a shape error."""
    assert verify(mazur, "W2", "(a2 - t) * a2 * (1 - a2) * a1.T").equivalent
    assert not verify(mazur, "W2", "(a2 - t) * a2 * a1.T").equivalent
    r = verify(mazur, "W2", "(a2 - t) * a2 * (1 - a2) * W1.T @ x")
    assert not r.equivalent


def test_comparisons_stay_out_of_specs():
    """The notation is verify's: a spec's expression still refuses comparisons."""
    from symbackprop.spec.expressions import parse_expression

    with pytest.raises(SpecError, match="comparisons are not allowed"):
        parse_expression("(x > 0)", {})
    with pytest.raises(SpecError, match="only one comparison"):
        verify(MAZUR, "w2_11", "(0 < z2_1 < 1)")


def test_the_correct_formula_verify_prints_parses_back(relu):
    """What verify prints as the correct formula of every element, pasted back: equivalent."""
    for wrt in ("w1_11", "w1_22", "b1_2", "w2_12", "b2_1"):
        shown = verify(relu, wrt, "0")
        assert not shown.equivalent
        lines = shown.text().split("correct formula", 1)[1].splitlines()[1:]
        defs = dict(line.strip().split(" = ", 1) for line in lines if " = " in line)
        rhs = defs.pop(f"dE/d{wrt}")
        for name, value in defs.items():  # the helper deltas, substituted
            rhs = rhs.replace(name, f"({value})")
        assert verify(relu, wrt, rhs).equivalent, (wrt, rhs)


LATEX_DELTA2 = (
    r"\left(2 (a^{(2)}_1 - t_1) a^{(2)}_1 (1 - a^{(2)}_1) w^{(2)}_{11}"
    r" + 2 (a^{(2)}_2 - t_2) a^{(2)}_2 (1 - a^{(2)}_2) w^{(2)}_{21}\right)"
)
LATEX_RELU_PRIME = [
    r"\mathbb{1}[z^{(1)}_1 > 0]",
    r"\mathbb{1}\left[z^{(1)}_1 > 0\right]",
    r"\mathbf{1}[z^{(1)}_1 > 0]",
    r"\mathbb{1}_{z^{(1)}_1 > 0}",
    r"[z^{(1)}_1 \gt 0]",
    r"H(z^{(1)}_1)",
    r"\operatorname{relu}'(z^{(1)}_1)",
    r"\operatorname{relu}'\left(z^{(1)}_1\right)",
]


@pytest.mark.parametrize("prime", LATEX_RELU_PRIME)
def test_relu_derivative_in_latex(relu, prime):
    r = verify(relu, "w1_11", rf"{LATEX_DELTA2} \cdot {prime} \cdot x_1", latex=True)
    assert r.equivalent, r.text()


def test_latex_derivative_names_and_matrix_indicator(relu):
    assert verify(relu, "w2_11", r"2 (a^{(2)}_1 - t_1) \sigma'(z^{(2)}_1) a^{(1)}_1", latex=True)
    assert verify(
        relu, "w2_11", r"2 (a^{(2)}_1 - t_1) \operatorname{sigmoid}'(z^{(2)}_1) a^{(1)}_1",
        latex=True,
    )  # fmt: skip
    matrix = (
        r"\left((W^{(2)})^T (2 (\mathbf{a}^{(2)} - \mathbf{t}) \odot \mathbf{a}^{(2)} \odot "
        r"(1 - \mathbf{a}^{(2)})) \odot \mathbb{1}[\mathbf{z}^{(1)} > 0]\right) \mathbf{x}^T"
    )
    assert verify(relu, "W1", matrix, latex=True).equivalent
    with pytest.raises(SpecError, match="unknown function"):
        verify(relu, "w2_11", r"\operatorname{foo}'(z^{(2)}_1)", latex=True)


def test_gradient_with_respect_to_the_input_against_torch_autograd():
    """--wrt x: the correct values verify reports at its probe point are PyTorch autograd's
    dE/dx for Mazur's net (sigmoid layers, shared biases, E = Σ (a - t)²/2) at that point."""
    import torch

    r = verify(MAZUR, "x", "W1 @ delta1")  # wrong (W1, not W1.T): shows the correct numbers
    assert not r.equivalent and r.true_shape == (2,)
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.counterexample.items()}
    w1 = torch.stack([torch.stack([p["w1_11"], p["w1_12"]]), torch.stack([p["w1_21"], p["w1_22"]])])
    w2 = torch.stack([torch.stack([p["w2_11"], p["w2_12"]]), torch.stack([p["w2_21"], p["w2_22"]])])
    x = torch.stack([p["x1"], p["x2"]]).requires_grad_()
    a1 = torch.sigmoid(w1 @ x + p["b1"])
    a2 = torch.sigmoid(w2 @ a1 + p["b2"])
    loss = ((a2 - torch.stack([p["t1"], p["t2"]])) ** 2).sum() / 2
    (grad,) = torch.autograd.grad(loss, x)
    assert r.true_value == pytest.approx(grad.tolist(), rel=1e-10)
    assert verify(MAZUR, "x", "W1.T @ delta1").equivalent
    assert verify(MAZUR, "x2", "delta1_1*w1_12 + delta1_2*w1_22").equivalent


def test_input_gradient_through_a_relu_in_every_notation(relu):
    for prime in ("(z1 > 0)", "relu'(z1)", "heaviside(z1)"):
        assert verify(relu, "x", f"W1.T @ ({MATRIX_DELTA2} * {prime})").equivalent
    assert not verify(relu, "x", f"W1.T @ {MATRIX_DELTA2}").equivalent  # relu' forgotten
    with pytest.raises(SpecError, match="the input has 2 elements"):
        verify(relu, "x3", "0")
