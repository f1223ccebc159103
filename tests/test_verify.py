"""Tests for ``symbackprop verify``: hand derivations proved, refuted and explained."""

from __future__ import annotations

import argparse
import importlib
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symbackprop import derive
from symbackprop.spec.errors import SpecError
from symbackprop.verify.api import VerifyResult, add_parser, run, verify

ROOT = Path(__file__).resolve().parents[1]
MAZUR = ROOT / "examples" / "mazur.yaml"
SOFTMAX3 = ROOT / "examples" / "verify" / "softmax3.yaml"
XOR = ROOT / "examples" / "xor.yaml"


@pytest.fixture(scope="module")
def mazur():
    return derive(MAZUR)


@pytest.fixture(scope="module")
def softmax3():
    return derive(SOFTMAX3)


def sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def mazur_forward(p: dict[str, float]) -> dict[str, float]:
    """Mazur's forward pass by hand, in plain floats (independent of symbackprop)."""
    out = dict(p)
    for i in (1, 2):
        out[f"a1_{i}"] = sig(p[f"w1_{i}1"] * p["x1"] + p[f"w1_{i}2"] * p["x2"] + p["b1"])
    for i in (1, 2):
        z = p[f"w2_{i}1"] * out["a1_1"] + p[f"w2_{i}2"] * out["a1_2"] + p["b2"]
        out[f"a2_{i}"] = sig(z)
    return out


# The raw-weights form of a1_1, a2_1 (no intermediates at all).
A1_1 = "sigmoid(w1_11*x1 + w1_12*x2 + b1)"
A1_2 = "sigmoid(w1_21*x1 + w1_22*x2 + b1)"
A2_1 = f"sigmoid(w2_11*{A1_1} + w2_12*{A1_2} + b2)"
A2_2 = f"sigmoid(w2_21*{A1_1} + w2_22*{A1_2} + b2)"

CORRECT_MAZUR = [
    ("w2_11", "(a2_1 - t1)*a2_1*(1 - a2_1)*a1_1"),  # factored, Mazur's w5
    ("w2_11", "a2_1**2*a1_1 - a2_1**3*a1_1 - t1*a2_1*a1_1 + t1*a2_1**2*a1_1"),  # expanded
    ("w2_11", "delta2_1*a1_1"),  # intermediates
    ("w2_11", f"({A2_1} - t1)*{A2_1}*(1 - {A2_1})*{A1_1}"),  # raw weights substituted
    ("w2_11", "(sigmoid(z2_1) - t1)*exp(-z2_1)/(1 + exp(-z2_1))**2*a1_1"),  # σ' as exp
    ("w2_22", "(a2_2 - t2)*a2_2*(1 - a2_2)*a1_2"),
    ("w1_11", "(delta2_1*w2_11 + delta2_2*w2_21)*a1_1*(1 - a1_1)*x1"),  # Mazur's w1
    ("w1_11", "da1_1*a1_1*(1 - a1_1)*x1"),
    ("w1_11", "delta1_1*x1"),
    (
        "w1_12",
        "((a2_1 - t1)*a2_1*(1 - a2_1)*w2_11 + (a2_2 - t2)*a2_2*(1 - a2_2)*w2_21)"
        "*a1_1*(1 - a1_1)*x2",
    ),
    (
        "w1_21",
        f"(({A2_1} - t1)*{A2_1}*(1 - {A2_1})*w2_12 + ({A2_2} - t2)*{A2_2}*(1 - {A2_2})*w2_22)"
        f"*{A1_2}*(1 - {A1_2})*x1",
    ),
    ("b2", "delta2_1 + delta2_2"),  # a frozen shared bias still has a gradient to check
    ("W2", "((a2 - t) * a2 * (1 - a2)) @ a1.T"),
    ("W2", "delta2 @ a1.T"),
    ("W1", "((W2.T @ delta2) * a1 * (1 - a1)) @ x.T"),
    ("b1", "sum((W2.T @ delta2) * a1 * (1 - a1))"),
]


@pytest.mark.parametrize(("wrt", "expr"), CORRECT_MAZUR)
def test_correct_derivations_in_many_shapes_are_equivalent(mazur, wrt, expr):
    r = verify(mazur, wrt, expr)
    assert r.equivalent, r.text()
    assert bool(r) is True
    assert r.counterexample is None and r.explanation is None
    assert r.text().splitlines()[0] == "equivalent"


def test_sympy_proves_the_simple_forms(mazur):
    assert "proved by SymPy" in verify(mazur, "w2_11", "delta2_1*a1_1").method
    assert "proved by SymPy" in verify(mazur, "W2", "delta2 @ a1.T").method


def wrong(d, wrt: str, expr: str, **kw) -> VerifyResult:
    r = verify(d, wrt, expr, **kw)
    assert not r.equivalent, f"{wrt}: {expr} was accepted"
    assert r.text().splitlines()[0] == "not equivalent"
    return r


def test_missing_activation_derivative_is_named(mazur):
    r = wrong(mazur, "w2_11", "(a2_1 - t1)*a1_1")
    assert "missing the activation derivative" in r.explanation
    assert "σ'(z2_1)" in r.explanation and "a2_1*(1 - a2_1)" in r.explanation


def test_counterexample_covers_all_free_symbols_and_reproduces(mazur):
    r = wrong(mazur, "w2_11", "(a2_1 - t1)*a1_1")
    names = {f"w{k}_{i}{j}" for k in (1, 2) for i in (1, 2) for j in (1, 2)}
    assert set(r.counterexample) == names | {"b1", "b2", "x1", "x2", "t1", "t2"}
    f = mazur_forward(r.counterexample)
    hand = (f["a2_1"] - f["t1"]) * f["a1_1"]
    true = (f["a2_1"] - f["t1"]) * f["a2_1"] * (1 - f["a2_1"]) * f["a1_1"]
    assert r.hand_value == pytest.approx(hand, rel=1e-9)
    assert r.true_value == pytest.approx(true, rel=1e-9)
    assert "(a2_1 - t1) * a2_1*(1 - a2_1) * a1_1" in r.correct_formula
    assert r"w^{(2)}_{11}" in r.correct_formula_latex


def test_sign_flip_is_named(mazur):
    r = wrong(mazur, "w2_11", "(t1 - a2_1)*a2_1*(1 - a2_1)*a1_1")
    assert "sign is flipped" in r.explanation
    assert r.hand_value == pytest.approx(-r.true_value)


def test_wrong_index_is_named(mazur):
    r = wrong(mazur, "w2_11", "(a2_1 - t1)*a2_1*(1 - a2_1)*a1_2")
    assert "this is dE/dw2_12, not dE/dw2_11" in r.explanation


def test_one_path_only_through_a_hidden_unit(mazur):
    r = wrong(mazur, "w1_11", "delta2_1*w2_11*a1_1*(1 - a1_1)*x1")
    assert "only the path through a2_1" in r.explanation
    assert "delta2_1*w2_11 + delta2_2*w2_21" in r.correct_formula


def test_missing_inner_activation_derivative_of_the_next_layer(mazur):
    r = wrong(mazur, "w1_11", "((a2_1 - t1)*w2_11 + (a2_2 - t2)*w2_21)*a1_1*(1 - a1_1)*x1")
    assert "σ'(z2_k)" in r.explanation


def test_w_instead_of_its_transpose(mazur):
    r = wrong(mazur, "w1_11", "(delta2_1*w2_11 + delta2_2*w2_12)*a1_1*(1 - a1_1)*x1")
    assert "W2.T" in r.explanation
    r = wrong(mazur, "W1", "((W2 @ delta2) * a1 * (1 - a1)) @ x.T")
    assert "W2.T" in r.explanation


def test_off_by_a_factor_of_two(mazur):
    r = wrong(mazur, "w2_11", "2*(a2_1 - t1)*a2_1*(1 - a2_1)*a1_1")
    assert "factor of 2" in r.explanation


@pytest.mark.parametrize(
    ("expr", "symbol", "initial"),
    [
        ("(a2_1 - t1)*a2_1*(1 - a2_1)*a1_1*w2_11/0.4", "w2_11", 0.4),  # Mazur's w5 = 0.40
        ("(a2_1 - t1)*a2_1*(1 - a2_1)*a1_1*x1/0.05", "x1", 0.05),  # Mazur's x1 = 0.05
    ],
)
def test_factor_that_is_one_only_at_the_spec_point_is_caught(mazur, expr, symbol, initial):
    # At the spec's own point (w2_11 = 0.4, x1 = 0.05) the extra factor is exactly 1, so checking
    # there alone would accept it; the probe draws all free symbols at random.
    r = wrong(mazur, "w2_11", expr)
    assert r.counterexample[symbol] != initial
    assert r.hand_value / r.true_value == pytest.approx(r.counterexample[symbol] / initial)


def test_transposed_matrix_is_named(mazur):
    r = wrong(mazur, "W2", "a1 @ ((a2 - t) * a2 * (1 - a2)).T")
    assert "transposed" in r.explanation
    assert r.hand_shape == r.true_shape == (2, 2)
    assert len(r.hand_value) == 2 and len(r.hand_value[0]) == 2
    assert r.hand_value[0][1] == pytest.approx(r.true_value[1][0])


def test_shared_bias_feeds_every_unit(mazur):
    r = wrong(mazur, "b2", "delta2_1")  # b2 is frozen in Mazur's net: its gradient still exists
    assert "only the path through a2_1" in r.explanation


# The 3-layer softmax + cross-entropy net, every layer in matrix form (mean reduction, N = 1).
DELTA3 = "(a3 - t)"
DELTA2 = f"((W3.T @ {DELTA3}) * a2 * (1 - a2))"
DELTA1 = f"((W2.T @ {DELTA2}) * (1 - a1**2))"
MATRIX_FORMS = {
    "W3": f"{DELTA3} @ a2.T",
    "b3": DELTA3,
    "W2": f"{DELTA2} @ a1.T",
    "b2": DELTA2,
    "W1": f"{DELTA1} @ x.T",
    "b1": "(W2.T @ delta2) * (1 - tanh(z1)**2)",
}


@pytest.mark.parametrize("param", list(MATRIX_FORMS))
def test_matrix_form_for_every_layer_of_a_softmax_net(softmax3, param):
    r = verify(softmax3, param, MATRIX_FORMS[param])
    assert r.equivalent, r.text()
    shape = softmax3.param(param).shape
    assert r.true_shape == shape


WRONG_MATRIX_FORMS = {
    "W3": "(t - a3) @ a2.T",  # sign
    "b3": "a3 * (1 - a3) * (a3 - t)",  # softmax + cross-entropy: δ3 is a3 - t already
    "W2": f"0.5 * ({DELTA2} @ a1.T)",  # half
    "b2": f"(W3.T @ {DELTA3})",  # missing σ'
    "W1": f"((W2.T @ {DELTA2}) * a1 * (1 - a1)) @ x.T",  # sigmoid's derivative for tanh
    "b1": "(W2.T @ delta2) * (1 - a1)",
}


@pytest.mark.parametrize("param", list(WRONG_MATRIX_FORMS))
def test_matrix_form_wrong_for_every_layer(softmax3, param):
    r = wrong(softmax3, param, WRONG_MATRIX_FORMS[param])
    assert r.element is not None and r.counterexample is not None
    assert r.hand_shape == r.true_shape == softmax3.param(param).shape


def test_matrix_form_explanations(softmax3):
    assert "sign is flipped" in wrong(softmax3, "W3", WRONG_MATRIX_FORMS["W3"]).explanation
    assert "already includes" in wrong(softmax3, "b3", WRONG_MATRIX_FORMS["b3"]).explanation
    assert "factor of 1/2" in wrong(softmax3, "W2", WRONG_MATRIX_FORMS["W2"]).explanation
    assert "σ'(z2_1)" in wrong(softmax3, "b2", WRONG_MATRIX_FORMS["b2"]).explanation


def test_scalar_form_on_the_softmax_net(softmax3):
    assert verify(softmax3, "w1_11", "(delta2_1*w2_11 + delta2_2*w2_21)*(1 - a1_1**2)*x1")
    r = wrong(softmax3, "w3_11", "(a3_1 - t1)*a3_1*(1 - a3_1)*a2_1")
    assert "already includes" in r.explanation


def test_shape_mismatch_inside_the_expression_names_both_shapes(softmax3):
    r = wrong(softmax3, "W1", f"{DELTA1} @ x")
    assert r.method == "shape check"
    assert "[3, 1] @ [2, 1]" in r.explanation


def test_shape_mismatch_of_the_result_names_both_shapes(softmax3):
    r = wrong(softmax3, "W3", "a2 @ (a3 - t).T")
    assert "[2, 3]" in r.explanation and "[3, 2]" in r.explanation
    assert "transposed" in r.explanation
    assert r.hand_shape == (2, 3) and r.true_shape == (3, 2)
    assert "shape" in r.text()
    r = wrong(softmax3, "b3", "a3 - t1")  # a vector minus a scalar is fine, but wrong
    r = wrong(softmax3, "b3", "sum(a3 - t)")
    assert "a scalar" in r.explanation


def test_bce_on_logits_net(tmp_path):
    assert verify(XOR, "w2_11", "(a2_1 - t1)*a1_1").equivalent
    assert verify(XOR, "W1", "((W2.T @ (a2 - t)) * (1 - a1**2)) @ x.T").equivalent
    r = wrong(XOR, "w2_11", "(a2_1 - t1)*a2_1*(1 - a2_1)*a1_1")
    assert "already includes" in r.explanation


# LaTeX input
LATEX_CORRECT = [
    ("w2_11", r"(a^{(2)}_1 - t_1) a^{(2)}_1 (1 - a^{(2)}_1) a^{(1)}_1"),  # Mazur's w5
    (
        "w2_11",
        r"\left(a^{(2)}_1 - t_1\right) \cdot \sigma(z^{(2)}_1) "
        r"\left(1 - \sigma\left(z^{(2)}_{1}\right)\right) \times a^{(1)}_1",
    ),
    ("w2_11", r"\delta^{(2)}_1 \frac{1}{1 + e^{-z^{(1)}_1}}"),
    ("w2_11", r"(a^{(2)}_1 - t_1) \sigma'(z^{(2)}_1) a^{(1)}_1"),
    (
        "w1_11",
        r"\left(\delta^{(2)}_1 w^{(2)}_{11} + \delta^{(2)}_2 w^{(2)}_{2,1}\right) "
        r"a^{(1)}_1 (1 - a^{(1)}_1) x_1",
    ),
    (
        "W2",
        r"\left((\mathbf{a}^{(2)} - \mathbf{t}) \odot \mathbf{a}^{(2)} \odot "
        r"(1 - \mathbf{a}^{(2)})\right) (\mathbf{a}^{(1)})^T",
    ),
    (
        "W1",
        r"\left((W^{(2)})^{\top} \boldsymbol{\delta}^{(2)} \odot \mathbf{a}^{(1)} \odot "
        r"(1 - \mathbf{a}^{(1)})\right) \mathbf{x}^T",
    ),
    ("b2", r"\delta^{(2)}_1 + \delta^{(2)}_2"),
]


@pytest.mark.parametrize(("wrt", "expr"), LATEX_CORRECT)
def test_latex_input(mazur, wrt, expr):
    r = verify(mazur, wrt, expr, latex=True)
    assert r.equivalent, r.text()


def test_latex_wrong_formula_is_refuted_and_explained(mazur):
    r = wrong(mazur, "w2_11", r"(a^{(2)}_1 - t_1) a^{(1)}_1", latex=True)
    assert "σ'(z2_1)" in r.explanation


@pytest.mark.parametrize(
    ("wrt", "expr", "fragment"),
    [
        ("w2_11", r"\frac{1}", "expected '{'"),
        ("w2_11", r"\input{/etc/passwd}", "unexpected '\\input'"),
        ("w2_11", r"a^{(2)}_1^T", "only allowed in matrix form"),
        ("w2_11", r"a^{(3)}_1", "unknown name 'a3_1'"),
        ("w2_11", "{" * 100 + "x_1" + "}" * 100, "nested too deeply"),
        ("w2_11", "x_1 " * 300_000, "too long"),
        ("w2_11", "a^{(1)}_\u0661 x_1", "unexpected character '\u0661' at column 9"),  # Arabic 1
        ("w2_11", "a^{(1)}_1\u00a0x_1", "unexpected character '\\xa0' at column 10"),
    ],
)
def test_latex_bad_input(mazur, wrt, expr, fragment):
    with pytest.raises(SpecError) as info:
        verify(mazur, wrt, expr, latex=True)
    assert info.value.field == "--expr"
    assert fragment in info.value.reason


@pytest.mark.parametrize("wrt", ["w2_11", "W2"])
def test_nested_latex_derivatives_are_refused_before_they_are_written_out(wrt):
    """Each \\sigma'(u) is written out as sigmoid(u)*(1 - sigmoid(u)), doubling u: 24 nested
    (225 characters) grew to 2**24 copies and 1.2 GB before any length check. Now refused at
    once; a subprocess with a 60 s hang guard, so a regression fails instead of swapping."""
    expr = "\\sigma'(" * 24 + "z^{(2)}_1" + ")" * 24
    assert len(expr) == 225
    run = subprocess.run(
        [sys.executable, "-m", "symbackprop.cli", "verify", str(MAZUR), "--wrt", wrt, "--latex",
         "--expr", expr],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert run.stderr.startswith(f"error: {MAZUR}: --expr: LaTeX: too long once each derivative")
    assert run.stderr.count("\n") == 1


HOSTILE = [
    ("w2_11", "__import__('os')", "strings are not allowed"),
    ("w2_11", "__import__ (os)", "unknown function '__import__'"),
    ("w2_11", "(a2_1 - t1)*a1_1  # times sigma'", "'#' at column 19 is not allowed"),
    ("w2_11", "(a2_1 - t1)\n*a1_1", "a line after the formula defines a name (NAME = ...)"),
    ("w2_11", "x1*1" + "0" * 400, "number literal too large"),  # no OverflowError
    ("w2_11", "x1.__class__", "attribute access is not allowed"),
    ("w2_11", "x1**10**10", "exponent too large"),
    ("w2_11", "10**10**10", "exponent too large"),
    ("w2_11", "exp(exp(exp(exp(1000))))", "out of range"),
    ("w2_11", "x1*" * 350_000 + "x1", "too long"),  # about 1 MB
    ("w2_11", "a2_3*x1", "did you mean 'a2_2'?"),
    ("w2_11", "(lambda: 0)()", "lambda"),
    ("w2_11", "a1 * x1", "unknown name 'a1'"),
    ("W2", "a1.__class__", "only .T"),
    ("W2", "__import__('os') @ a1", "strings are not allowed"),
    ("W2", "a1[0] @ x.T", "'[' at column 3 is not allowed"),
    ("W2", "sorted(a1) @ x.T", "not allowed in matrix form"),
    ("W2", "delta2 @ a1.T  # the outer product", "'#' at column 16 is not allowed"),
    ("W2", "delta2 @ a1.T * 1" + "0" * 400, "number literal too large"),
    ("W2", "a3 @ a1.T", "unknown name 'a3'"),
    ("W2", "(delta2 @ a1.T) ** 10**10", "exponent too large"),
    ("W2", "delta2 @ a1.T" + " + delta2 @ a1.T" * 70_000, "too long"),
    ("W2", "-(" * 150 + "a1" + ")" * 150 + " @ x.T", "nested too deeply"),
    ("W2", "", "empty expression"),
]


@pytest.mark.parametrize(("wrt", "expr", "fragment"), HOSTILE)
def test_hostile_input_is_refused_quickly(mazur, wrt, expr, fragment):
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        verify(mazur, wrt, expr)
    assert time.perf_counter() - start < 2.0
    assert info.value.field == "--expr"
    assert fragment in info.value.reason


@pytest.mark.parametrize(
    ("wrt", "fragment"),
    [
        ("W9", "unknown parameter 'W9'"),
        ("w2_13", "did you mean"),
        ("a1_1", "not a parameter"),
        ("", "unknown parameter"),
    ],
)
def test_bad_wrt(mazur, wrt, fragment):
    with pytest.raises(SpecError) as info:
        verify(mazur, wrt, "x1")
    assert info.value.field == "--wrt"
    assert fragment in info.value.reason
    assert "W1, b1, W2, b2" in info.value.reason


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="symbackprop")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["verify", *argv])


def test_cli_equivalent_exits_0(capsys):
    code = run(cli([str(MAZUR), "--wrt", "w2_11", "--expr", "delta2_1*a1_1"]))
    assert code == 0
    assert capsys.readouterr().out.splitlines()[0] == "equivalent"


def test_cli_not_equivalent_exits_1_with_point_values_and_formula(capsys):
    code = run(cli([str(MAZUR), "--wrt", "w2_11", "--expr", "(a2_1 - t1)*a1_1"]))
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0] == "not equivalent"
    assert "w2_11 = " in out and "x1 = " in out and "t2 = " in out
    assert "yours:" in out and "correct:" in out
    assert "dE/dw2_11 = (a2_1 - t1) * a2_1*(1 - a2_1) * a1_1" in out
    assert "σ'(z2_1)" in out


def test_cli_latex_flag(capsys):
    argv = [str(MAZUR), "--wrt", "w2_11", "--latex", "--expr"]
    assert run(cli([*argv, r"(a^{(2)}_1 - t_1) a^{(2)}_1 (1 - a^{(2)}_1) a^{(1)}_1"])) == 0


def test_cli_bad_input_is_a_spec_error_naming_the_file():
    with pytest.raises(SpecError) as info:
        run(cli([str(MAZUR), "--wrt", "w2_11", "--expr", "a2_3"]))
    assert info.value.file == str(MAZUR)
    assert info.value.format().startswith(f"{MAZUR}: --expr: unknown name 'a2_3'")


def test_markdown_for_notebooks(mazur):
    md = verify(mazur, "w2_11", "(a2_1 - t1)*a1_1")._repr_markdown_()
    assert md.startswith("**not equivalent**")
    assert "$$" in md and r"w^{(2)}_{11}" in md
    assert verify(mazur, "w2_11", "delta2_1*a1_1")._repr_markdown_().startswith("**equivalent**")


def test_spec_as_path_and_matrix_formula_text():
    r = wrong(str(MAZUR), "W1", "delta1 @ x")
    assert "dE/dW1 = delta1 @ x.T" in r.correct_formula
    assert "da1 = W2.T @ delta2" in r.correct_formula


def test_latex_translation_uses_the_names_of_the_contract():
    from symbackprop.verify.latex import latex_to_expr

    text = latex_to_expr(r"(a^{(2)}_1 - t_1) a^{(2)}_1 (1 - a^{(2)}_1) w^{(2)}_{12} x_1")
    assert text.replace("(", "").replace(")", "") == "a2_1 - t1 * a2_1 * 1 - a2_1 * w2_12 * x1"
    assert latex_to_expr(r"\boldsymbol\delta^{(2)} \mathbf{a}^{(1)T}", matrix=True) == (
        "((delta2 @ (a1).T))"
    )


def test_large_nets_are_refused_before_any_work():
    spec = {
        "name": "wide",
        "inputs": 100,
        "layers": [{"units": 60, "activation": "relu"}, {"units": 10, "activation": "softmax"}],
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.1},
    }
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        verify(spec, "W1", "delta1 @ x.T")
    assert time.perf_counter() - start < 5
    assert "at most 1000 parameters; this one has 6670" in info.value.reason
    spec["inputs"], spec["layers"] = 2, [{"units": 200}, {"units": 3, "activation": "softmax"}]
    with pytest.raises(SpecError, match="at most 1000 parameters; this one has 1203"):
        verify(spec, "W1", "delta1 @ x.T")


def test_the_probe_decides_alone_when_sympy_is_skipped(mazur, monkeypatch):
    # the module itself, even when symbackprop/__init__.py exports the function by this name
    module = importlib.import_module("symbackprop.verify.api")

    monkeypatch.setattr(module, "MAX_NODES", 0)
    r = verify(mazur, "w1_11", "delta1_1*x1 + 0*x2")
    assert r.equivalent and r.method.startswith("random probe")
    assert not verify(mazur, "w1_11", "delta1_1*x2").equivalent
