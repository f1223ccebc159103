"""verify --batch N (issue 13, item 3): a hand formula for a whole batch, with Σ_n written
``sum_n(...)`` (LaTeX ``\\sum_n``) and N the batch size, proved or refuted; a forgotten 1/N of
a mean reduction is caught and named. The batch gradient verify reports is checked against
PyTorch autograd of the batch's loss at verify's own probe point."""

from __future__ import annotations

import pytest
import torch

from symbackprop.cli import main
from symbackprop.spec.errors import SpecError
from symbackprop.verify.api import verify


def _net(loss: dict, last: str = "sigmoid") -> dict:
    return {
        "name": "batch_net",
        "inputs": 2,
        "layers": [{"units": 2, "activation": "tanh"}, {"units": 2, "activation": last}],
        "loss": loss,
        "optimizer": {"type": "sgd", "lr": 0.1},
    }


SSE_MEAN = _net({"type": "sse", "scale": 0.5, "reduction": "mean"})
SSE_SUM = _net({"type": "sse", "scale": 0.5, "reduction": "sum"})
MSE = _net({"type": "mse"})  # mean over the batch and the outputs: 1/(N K)
CE = _net({"type": "cross_entropy"}, last="softmax")

ONE = "(a2_1 - t1)*a2_1*(1 - a2_1)*a1_1"  # dℓ/dw2_11 of one sample (sse with scale 1/2)


def _torch_batch_grad(r, spec: dict, n: int) -> dict:
    """dE/dW1, dE/dW2 of the batch at the counterexample verify reports, by autograd."""
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.counterexample.items()}

    def mat(name: str, rows: int, cols: int) -> torch.Tensor:
        return torch.stack([torch.stack([p[f"{name}_{i}{j}"] for j in range(1, cols + 1)])
                            for i in range(1, rows + 1)]).requires_grad_()  # fmt: skip

    w1, w2 = mat("w1", 2, 2), mat("w2", 2, 2)
    b1, b2 = torch.stack([p["b1_1"], p["b1_2"]]), torch.stack([p["b2_1"], p["b2_2"]])
    x = torch.stack([torch.stack([p[f"x1[{s}]"], p[f"x2[{s}]"]]) for s in range(1, n + 1)])
    t = torch.stack([torch.stack([p[f"t1[{s}]"], p[f"t2[{s}]"]]) for s in range(1, n + 1)])
    z2 = torch.tanh(x @ w1.T + b1) @ w2.T + b2
    loss = spec["loss"]
    if loss["type"] == "cross_entropy":
        e = torch.nn.functional.cross_entropy(z2, t)
    elif loss["type"] == "mse":
        e = torch.nn.functional.mse_loss(torch.sigmoid(z2), t)
    else:
        e = 0.5 * ((torch.sigmoid(z2) - t) ** 2).sum()
        e = e / n if loss["reduction"] == "mean" else e
    g1, g2 = torch.autograd.grad(e, (w1, w2))
    return {"W1": g1.tolist(), "W2": g2.tolist()}


@pytest.mark.parametrize(("spec", "n"), [(SSE_MEAN, 3), (SSE_SUM, 2), (MSE, 3), (CE, 4)])
def test_batch_gradient_is_pytorchs(spec, n):
    """The correct values verify prints for a wrong formula are autograd's batch gradient."""
    for wrt in ("W1", "W2"):
        r = verify(spec, wrt, "0 * W1", batch=n)
        assert not r.equivalent and r.batch == n
        expected = _torch_batch_grad(r, spec, n)[wrt]
        for got, want in zip(r.true_value, expected, strict=True):
            assert got == pytest.approx(want, rel=1e-10, abs=1e-14)


CORRECT_MEAN = [
    ("w2_11", f"1/N * sum_n({ONE})", False),
    ("w2_11", "sum_n(delta2_1*a1_1)/N", False),
    ("w2_11", f"sum_n({ONE}/N)", False),
    ("W2", "1/N * sum_n(((a2 - t) * a2 * (1 - a2)) @ a1.T)", False),
    ("W2", "sum_n((a2 - t) * a2 * (1 - a2) * a1.T) / N", False),  # NumPy broadcasting inside
    ("W1", "1/N * sum_n(((W2.T @ delta2) * (1 - a1**2)) @ x.T)", False),
    ("b1", "1/N * sum_n((W2.T @ delta2) * tanh'(z1))", False),
    ("w2_11", r"\frac{1}{N} \sum_n (a^{(2)}_1 - t_1) a^{(2)}_1 (1 - a^{(2)}_1) a^{(1)}_1", True),
    ("w2_11", r"\frac{1}{N} \sum_{n=1}^{N} \delta^{(2)}_{n1} a^{(1)}_{n1}", True),
    ("W2", r"\frac{1}{N} \sum_{n} \boldsymbol{\delta}^{(2)}_n (\mathbf{a}^{(1)}_n)^T", True),
]


@pytest.mark.parametrize(("wrt", "expr", "latex"), CORRECT_MEAN)
def test_correct_batch_formulas_are_equivalent(wrt, expr, latex):
    r = verify(SSE_MEAN, wrt, expr, latex=latex, batch=3)
    assert r.equivalent, r.text()


MISSING_1_OVER_N = [
    ("w2_11", f"sum_n({ONE})", False),
    ("W2", "sum_n(delta2 @ a1.T)", False),
    ("W1", "sum_n(((W2.T @ delta2) * (1 - a1**2)) @ x.T)", False),
    ("W2", r"\sum_n \boldsymbol{\delta}^{(2)} (\mathbf{a}^{(1)})^T", True),
]


@pytest.mark.parametrize(("wrt", "expr", "latex"), MISSING_1_OVER_N)
def test_a_forgotten_one_over_n_is_caught_and_named(wrt, expr, latex):
    r = verify(SSE_MEAN, wrt, expr, latex=latex, batch=3)
    assert not r.equivalent
    assert "missing the factor 1/N = 1/3 of the mean over the batch" in r.explanation, r.text()
    assert "1/N * sum_n(" in r.correct_formula


def test_the_other_reductions_name_their_factor():
    r = verify(SSE_SUM, "W2", "1/N * sum_n(delta2 @ a1.T)", batch=2)
    assert not r.equivalent and "an extra factor 1/N" in r.explanation
    assert verify(SSE_SUM, "W2", "sum_n(delta2 @ a1.T)", batch=2).equivalent
    # MSE averages over the outputs as well: 2 (a - t) of the square, then 1/(N K) with K = 2
    assert verify(MSE, "W2", "1/(N*2) * sum_n(2 * (a2 - t) * a2 * (1 - a2) @ a1.T)", batch=3)
    r = verify(MSE, "W2", "sum_n(2 * (a2 - t) * a2 * (1 - a2) @ a1.T)", batch=3)
    assert not r.equivalent and "1/(N K) = 1/6" in r.explanation, r.explanation
    assert verify(CE, "W2", "1/N * sum_n((a2 - t) @ a1.T)", batch=4).equivalent
    r = verify(CE, "W2", "-1/N * sum_n((a2 - t) @ a1.T)", batch=4)
    assert "sign is flipped" in r.explanation


def test_a_mistake_inside_the_sum_is_named_as_for_one_sample():
    r = verify(SSE_MEAN, "w2_11", "1/N * sum_n((a2_1 - t1)*a1_1)", batch=3)
    assert not r.equivalent
    assert r.explanation.startswith("in each sample's term: missing the activation derivative")


def test_the_printed_batch_formula_parses_back():
    """What verify prints as the batch's correct formula (text and LaTeX), pasted back."""
    for wrt in ("W1", "W2", "b1", "w1_21", "b2_2"):
        shown = verify(SSE_MEAN, wrt, "0", batch=3)
        lines = shown.correct_formula.splitlines()
        assert "sum_n(" in lines[0] and lines[0].startswith(f"dE/d{wrt} = 1/N * ")
        assert verify(SSE_MEAN, wrt, "\n".join(lines), batch=3).equivalent, lines
        first = shown.correct_formula_latex.split(r",\quad ")[0].split(" = ", 1)[1]
        assert r"\frac{1}{N} \sum_{n}" in first
        assert verify(SSE_MEAN, wrt, first, latex=True, batch=3).equivalent, first


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"expr": "sum_n(delta2 @ a1.T)"}, "sum_n(...) sums over a batch: add --batch N"),
        ({"expr": "(a2 - t) @ a1.T", "batch": 3}, "outside every sum_n: a1_1"),
        ({"expr": "0", "batch": 0}, "expected a batch size from 1 to 16"),
        ({"expr": "0", "batch": 17}, "expected a batch size from 1 to 16"),
        ({"expr": r"\sum_k \delta^{(2)}", "batch": 3, "latex": True}, r"\sum_n or"),
        ({"expr": "0", "batch": 2, "wrt": "x"}, "drop --batch"),
    ],
)
def test_bad_batch_input_is_refused(kwargs, fragment):
    wrt = kwargs.pop("wrt", "W2")
    with pytest.raises(SpecError) as info:
        verify(SSE_MEAN, wrt, **kwargs)
    assert fragment in str(info.value), str(info.value)


def test_batch_of_one_is_the_one_sample_formula():
    assert verify(SSE_MEAN, "w2_11", ONE, batch=1).equivalent
    assert verify(SSE_MEAN, "w2_11", f"sum_n({ONE})/N", batch=1).equivalent


def test_cli_batch(tmp_path, capsys):
    import json

    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(SSE_MEAN))
    base = ["verify", str(spec), "--wrt", "W2", "--batch", "3", "--expr"]
    assert main([*base, "1/N * sum_n(delta2 @ a1.T)"]) == 0
    assert capsys.readouterr().out.startswith("equivalent")
    assert main([*base, "sum_n(delta2 @ a1.T)"]) == 1
    out = capsys.readouterr().out
    assert "missing the factor 1/N" in out and "a batch of N = 3" in out and "x1[3] = " in out
    assert main([*base, "(a2 - t) @ a1.T"]) == 2
    assert "outside every sum_n" in capsys.readouterr().err
