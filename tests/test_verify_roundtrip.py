"""The round trip over every kind of mistake (issue 13, item 3): for each mistake, written in
each notation verify accepts (text element by element, NumPy's matrix form, LaTeX), verify
refutes the wrong formula and names what is wrong; and the correct formula it prints — the
whole printout, with its definitions, in text and in LaTeX — proves equivalent pasted back."""

from __future__ import annotations

import pytest

from symbackprop.verify.api import verify

_SGD = {"type": "sgd", "lr": 0.1}
SIG = {
    "name": "sig", "inputs": 2, "optimizer": _SGD,
    "layers": [{"units": 2, "activation": "sigmoid"}, {"units": 2, "activation": "sigmoid"}],
    "loss": {"type": "sse", "scale": 0.5, "reduction": "sum"},
}  # fmt: skip
RES = {
    "name": "res", "inputs": 2, "optimizer": _SGD,
    "layers": [{"units": 2, "activation": "tanh"}, {"units": 2, "activation": "tanh"},
               {"type": "add", "inputs": ["a1", "a2"]}, {"units": 2, "activation": "sigmoid"}],
    "loss": {"type": "sse", "scale": 0.5, "reduction": "sum"},
}  # fmt: skip
RNN = {
    "name": "rnn", "inputs": [3, 1], "optimizer": _SGD,
    "layers": [{"type": "rnn", "units": 2}, {"units": 1}],
    "loss": {"type": "sse", "scale": 0.5, "reduction": "sum"},
}  # fmt: skip
MEAN = {**SIG, "loss": {"type": "sse", "scale": 0.5, "reduction": "mean"}}

D2 = r"\boldsymbol{\delta}^{(2)}"
A1 = r"\mathbf{a}^{(1)}"
HIDDEN = "(delta2_1*w2_11 + delta2_2*w2_21) * a1_1*(1 - a1_1)"  # ∂ℓ/∂z1_1 of SIG

# (kind, net, wrt, wrong formula, LaTeX?, batch, what the explanation must say)
MISTAKES = [
    ("activation derivative", SIG, "w2_11", "(a2_1 - t1)*a1_1", False, None,
     "missing the activation derivative ∂a2_1/∂z2_1"),
    ("activation derivative", SIG, "W2", "(a2 - t) @ a1.T", False, None,
     "missing the activation derivative ∂a2_1/∂z2_1"),
    ("activation derivative", SIG, "w2_11", r"(a^{(2)}_1 - t_1) a^{(1)}_1", True, None,
     "missing the activation derivative ∂a2_1/∂z2_1"),
    ("activation derivative inside a delta", SIG, "W1",
     "(W2.T @ delta2) @ x.T", False, None, "missing the activation derivative ∂a1_1/∂z1_1"),
    ("transposed factor", SIG, "w1_12",
     "(delta2_1*w2_11 + delta2_2*w2_12) * a1_1*(1 - a1_1) * x2", False, None,
     "W2 is used where its transpose W2.T belongs"),
    ("transposed factor", SIG, "W1", "((W2 @ delta2) * a1 * (1 - a1)) @ x.T", False, None,
     "W2 is used where its transpose W2.T belongs"),
    ("transposed factor", SIG, "W1",
     rf"\left(\mathbf{{W}}^{{(2)}} {D2} \odot {A1} \odot (1 - {A1})\right) \mathbf{{x}}^T",
     True, None, "W2 is used where its transpose W2.T belongs"),
    ("transposed result", SIG, "W2", "a1 @ delta2.T", False, None, "the result is transposed"),
    ("skip path", RES, "w1_12", "(delta2_1*w2_11 + delta2_2*w2_21) * (1 - a1_1**2) * x2",
     False, None, "missing the skip path through the add layer a3"),
    ("skip path", RES, "W1", "((W2.T @ delta2) * (1 - a1**2)) @ x.T", False, None,
     "missing the skip path through the add layer a3"),
    ("skip path", RES, "W1",
     r"\left((\mathbf{W}^{(2)})^T \boldsymbol{\delta}^{(2)} \odot (1 - (\mathbf{a}^{(1)})^2)"
     r"\right) \mathbf{x}^T", True, None, "missing the skip path through the add layer a3"),
    ("sign", SIG, "w2_11", "(t1 - a2_1)*a2_1*(1 - a2_1)*a1_1", False, None, "sign is flipped"),
    ("sign", SIG, "W2", "((t - a2) * a2 * (1 - a2)) @ a1.T", False, None, "sign is flipped"),
    ("sign", SIG, "W2", rf"-{D2} \left({A1}\right)^T", True, None, "sign is flipped"),
    ("1/N", MEAN, "w2_11", "sum_n((a2_1 - t1)*a2_1*(1 - a2_1)*a1_1)", False, 3,
     "missing the factor 1/N = 1/3"),
    ("1/N", MEAN, "W2", "sum_n(delta2 @ a1.T)", False, 3, "missing the factor 1/N = 1/3"),
    ("1/N", MEAN, "W2", rf"\sum_n {D2} \left({A1}\right)^T", True, 3,
     "missing the factor 1/N = 1/3"),
    ("time step", RNN, "w1_11", "delta1_1[2]*x1[2] + delta1_1[3]*x1[3]", False, None,
     "missing time step 1: the term delta1_1[1]*x1[1]"),
    ("time step", RNN, "u1_12", r"\delta^{(1)}_{1}[3] h^{(1)}_{2}[2]", True, None,
     "missing time step 2: the term delta1_1[2]*h1_2[1]"),
    ("time step", RNN, "W1", "sum_t(delta1[t] @ x[t].T, 1, 2)", False, None,
     "missing time step 3: the term delta1[3] @ x[3].T"),
    ("time shift", RNN, "U1", "sum_t(delta1[t] @ h1[t].T)", False, None,
     "the wrong time shift"),
    ("time shift", RNN, "U1", r"\sum_{t=1}^{T} \boldsymbol{\delta}^{(1)}_t "
     r"\mathbf{h}^{(1)\top}_{t}", True, None, "the wrong time shift"),
    ("recurrent path", RNN, "U1", "sum_t(delta1[t] @ h1[t-1].T)\n"
     "delta1[t] = dh1[t] * (1 - h1[t]**2)\ndh1[T] = W2.T @ (a2 - t)\ndh1[t] = 0", False, None,
     "the recurrent path is missing"),
    ("activation derivative inside a delta", RNN, "b1", "sum_t(delta1[t])\n"
     "delta1[t] = dh1[t] + U1.T @ delta1[t+1]\ndh1[T] = W2.T @ (a2 - t)\ndh1[t] = 0", False,
     None, "missing the activation derivative tanh'(z) = 1 - h1[t]**2 in delta1[t]"),
    ("wrong index", SIG, "w2_11", "delta2_1*a1_2", False, None, "this is dE/dw2_12"),
    ("extra factor", SIG, "w2_11", "2*delta2_1*a1_1", False, None, "off by a factor of 2"),
]  # fmt: skip
IDS = [f"{m[0]}-{m[2]}-{'latex' if m[4] else 'numpy' if m[2][0] in 'WUb' else 'text'}"
       for m in MISTAKES]  # fmt: skip


@pytest.mark.parametrize(("kind", "net", "wrt", "wrong", "latex", "batch", "named"), MISTAKES,
                         ids=IDS)  # fmt: skip
def test_each_mistake_is_refuted_named_and_its_correction_proved(
    kind, net, wrt, wrong, latex, batch, named
):
    r = verify(net, wrt, wrong, latex=latex, batch=batch)
    assert not r.equivalent, (kind, r.text())
    assert r.explanation and named in r.explanation, (kind, r.explanation)
    text = verify(net, wrt, r.correct_formula, batch=batch)  # the whole printout, as printed
    assert text.equivalent, (kind, r.correct_formula, text.text())
    tex = verify(net, wrt, r.correct_formula_latex, latex=True, batch=batch)
    assert tex.equivalent, (kind, r.correct_formula_latex, tex.text())


@pytest.mark.parametrize("net", [SIG, RES, RNN], ids=["sig", "res", "rnn"])
def test_every_printed_formula_pastes_back(net):
    """Every parameter and element of three nets: what verify prints proves equivalent (a
    recurrent layer's whole parameters too: Σ over t with the BPTT recurrence)."""
    from symbackprop import derive

    d = derive(net)
    wrts = [p.name for p in d.params if d.gradients.get(p.name) is not None]
    from symbackprop.verify.probe import ScalarNet

    wrts += list(ScalarNet(d).elements)[::3]
    for wrt in wrts:
        shown = verify(net, wrt, "0")
        assert "None" not in shown.correct_formula, shown.correct_formula
        assert verify(net, wrt, shown.correct_formula).equivalent, shown.correct_formula
        assert verify(net, wrt, shown.correct_formula_latex, latex=True).equivalent, (
            shown.correct_formula_latex
        )


def test_a_wrong_definition_is_caught():
    """A definition line is yours: a δ defined without σ' makes the formula that uses it wrong."""
    good = "dE/dW1 = delta1 @ x.T\ndelta2 = (a2 - t) * a2 * (1 - a2)\n"
    assert verify(SIG, "W1", good + "delta1 = (W2.T @ delta2) * a1 * (1 - a1)").equivalent
    r = verify(SIG, "W1", good + "delta1 = W2.T @ delta2")
    assert not r.equivalent and "missing the activation derivative" in r.explanation
    # any order of lines; LaTeX lines separated by ,\quad
    assert verify(SIG, "W2", "delta2 @ a1.T; delta2 = (a2 - t) * a2 * (1 - a2)").equivalent
    a2 = r"\mathbf{a}^{(2)}"
    tex = rf"{D2} ({A1})^T,\quad {D2} = ({a2} - \mathbf{{t}}) \odot {a2}"
    assert not verify(SIG, "W2", tex, latex=True).equivalent  # σ' half missing


_CHAIN = ["z1_1", "z1_2", "a1_1", "a1_2", "z2_1", "z2_2", "a2_1", "a2_2", "delta1_1",
          "delta1_2", "delta2_1", "delta2_2"]  # fmt: skip
_GROWING = (
    "delta2 @ a1.T\nz1_1 = x1 + x2\n"
    + "\n".join(  # each line 3 copies of the last
        f"{b} = {a}*x1 + {a}*x2 + {a}*x1*x2" for a, b in zip(_CHAIN, _CHAIN[1:], strict=False)
    )
)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("dE/dW1 = delta2 @ a1.T", "the first line is the formula: dE/dW2 = ..."),
        ("delta2 @ a1.T\ndelta2 = delta2 * 2", "in terms of itself"),
        ("delta2 @ a1.T\ndelta2 = t\ndelta2 = t", "defined twice"),
        ("delta2 @ a1.T\nW2 = delta2", "is given"),
        ("delta2 @ a1.T\nfoo = t", "cannot define 'foo'"),
        ("delta2 @ a1.T\ndelta2 = delta1 * 2\ndelta1 = delta2", "in a circle"),
        ("delta2 @ a1.T\ndelta2 = x1", "delta2 is [2, 1], its definition a scalar"),
        (_GROWING, "too large"),
    ],
)
def test_bad_definitions_are_refused(expr, fragment):
    from symbackprop.spec.errors import SpecError

    with pytest.raises(SpecError) as info:
        verify(SIG, "W2", expr)
    assert fragment in str(info.value), str(info.value)
