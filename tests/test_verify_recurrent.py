"""verify reads a recurrent weight's whole gradient (issue 13 item 3, issue 15 item 3): the
time-indexed matrix form (``sum_t(delta1[t] @ h1[t-1].T)`` with its BPTT recurrence) in text and
LaTeX, judged against PyTorch autograd (nn.RNN with copied weights, T = 3); the mistakes people
make in BPTT refuted and named; what it cannot read refused with exit 2 in one line; and
CONTRACT §6's ``h1_1[2]`` spelling of a sequence's element."""

from __future__ import annotations

import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp
import yaml

from symbackprop import derive
from symbackprop.spec.errors import SpecError
from symbackprop.verify.api import _read, verify
from symbackprop.verify.matrix import entries, parse_matrix
from symbackprop.verify.notation import hand_notation
from symbackprop.verify.probe import ScalarNet

torch = pytest.importorskip("torch")

_SGD = {"type": "sgd", "lr": 0.1}
_SSE = {"type": "sse", "scale": 0.5, "reduction": "sum"}


def _rnn(act: str = "tanh", features: int = 2, outputs: int = 2) -> dict:
    layers = [{"type": "rnn", "units": 2, "nonlinearity": act}, {"units": outputs}]
    return {"name": f"rnn_{act}", "inputs": [3, features], "optimizer": _SGD, "loss": _SSE,
            "layers": layers}  # fmt: skip


TANH, RELU = _rnn("tanh"), _rnn("relu")
M2M = {
    "name": "m2m", "inputs": [3, 1], "optimizer": _SGD, "loss": _SSE,
    "layers": [{"type": "rnn", "units": 2, "return_sequences": True},
               {"type": "rnn", "units": 2, "return_sequences": True}, {"units": 1}],
}  # fmt: skip
TRUNC = {
    **M2M, "name": "trunc",
    "layers": [{"type": "rnn", "units": 2, "return_sequences": True, "nonlinearity": "relu",
                "bptt": 2}, {"units": 1, "activation": "sigmoid"}],
}  # fmt: skip


def _values(net: ScalarNet, seed: int) -> dict:
    """Random weights, x and t for every raw symbol of the net (float64)."""
    rng = np.random.default_rng(seed)
    return {s: float(rng.uniform(-1, 1)) for s in net.raw}


def _hand(net: ScalarNet, wrt: str, expr: str, latex: bool, point: dict) -> np.ndarray:
    """A hand formula's value at ``point``: parsed as verify parses it, written out in the raw
    symbols and evaluated."""
    notation = hand_notation(tuple(ly.activation for ly in net.d.nodes if ly.activation))
    text, names, mats = _read(net, wrt, expr, latex, True, notation, False)
    value = parse_matrix(text, names, mats, "--expr", notation, time=(net.steps, None))
    shape = next(p.shape for p in net.d.params if p.name == wrt)
    with mpmath.workdps(30):  # every definition of the net at the point, then the formula
        env = net.env({s: mpmath.mpf(v) for s, v in point.items()}, net.defs)
        got = [float(net.call(sp.sympify(e), env)) for e in entries(value)]
    return np.array(got).reshape(shape)


def _torch_grads(spec: dict, net: ScalarNet, point: dict) -> dict:
    """dE/dP of the spec's net by PyTorch autograd: nn.RNN layers and nn.Linear heads with the
    point's weights copied in (nn.RNN's layouts: W = weight_ih_l0, U = weight_hh_l0)."""
    by_name = {s.name: v for s, v in point.items()}

    def param(p):
        arr = np.zeros(p.shape)
        for name, (q, ix) in net.elements.items():
            if q.name == p.name:
                arr[ix] = by_name[name]
        return torch.tensor(arr, dtype=torch.float64, requires_grad=True)

    params = {p.name: param(p) for p in net.d.params}
    steps, features = net.d.shapes["x"]
    # x1[2] is feature 1 at step 2 (CONTRACT §6)
    x = torch.tensor([[by_name[f"x{f + 1}[{t + 1}]"] for f in range(features)]
                      for t in range(steps)], dtype=torch.float64, requires_grad=True)  # fmt: skip
    v = x[None]
    for i, ly in enumerate(spec["layers"], start=1):
        if ly.get("type") in ("rnn", "gru", "lstm"):
            act = {"nonlinearity": ly.get("nonlinearity", "tanh")} if ly["type"] == "rnn" else {}
            module = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[ly["type"]]
            rnn = module(v.shape[-1], ly["units"], batch_first=True, dtype=torch.float64, **act)
            state = {"weight_ih_l0": params[f"W{i}"], "weight_hh_l0": params[f"U{i}"],
                     "bias_ih_l0": params[f"b{i}"], "bias_hh_l0": params[f"br{i}"]}  # fmt: skip
            seq, _ = torch.func.functional_call(rnn, state, (v,))
            v = seq if ly.get("return_sequences") else seq[:, -1]
        else:
            v = v @ params[f"W{i}"].T + params[f"b{i}"]
            if ly.get("activation") == "sigmoid":
                v = torch.sigmoid(v)
    shape = tuple(net.d.shapes["t"])
    t = torch.tensor([by_name[s.name] for s in net.targets], dtype=torch.float64).reshape(shape)
    loss = 0.5 * ((v[0] - t) ** 2).sum()
    loss.backward()
    return {"x": x.grad.numpy(), **{k: p.grad.numpy() for k, p in params.items()}}


GRU = {**_rnn(), "name": "gru", "layers": [{"type": "gru", "units": 2}, {"units": 2}]}
LSTM = {**M2M, "name": "lstm", "layers": [{"type": "lstm", "units": 2, "return_sequences": True},
                                          {"units": 1}]}  # fmt: skip


@pytest.mark.parametrize("spec", [TANH, RELU, M2M, GRU, LSTM],
                         ids=["tanh", "relu", "many_to_many", "gru", "lstm"])  # fmt: skip
def test_printed_matrix_form_equals_torch_autograd_and_pastes_back(spec):
    """Every parameter's printed formula — text and LaTeX, with its recurrences — evaluated at
    random weights equals nn.RNN's autograd gradient to 1e-10, and verify calls it equivalent."""
    d = derive(spec)
    net = ScalarNet(d)
    for seed in (1, 2):
        point = _values(net, seed)
        want = _torch_grads(spec, net, point)
        for p in d.params:
            shown = verify(spec, p.name, "0")
            for expr, latex in (
                (shown.correct_formula, False),
                (shown.correct_formula_latex, True),
            ):
                got = _hand(net, p.name, expr, latex, point)
                np.testing.assert_allclose(got, want[p.name], rtol=1e-10, atol=1e-12,
                                           err_msg=f"{p.name}: {expr}")  # fmt: skip
                if seed == 1:
                    assert verify(spec, p.name, expr, latex=latex).equivalent, expr


def test_the_rnn_recurrence_people_write_equals_torch():
    """A textbook's BPTT, written with δ_T on its own line and the head's δ inline."""
    expr = ("dE/dU1 = sum_t(delta1[t] @ h1[t-1].T)\n"
            "delta1[T] = (W2.T @ (a2 - t)) * (1 - h1[T]**2)\n"
            "delta1[t] = (U1.T @ delta1[t+1]) * (1 - h1[t]**2)")  # fmt: skip
    tex = (
        r"\sum_{t=2}^{T} \boldsymbol{\delta}^{(1)}_t \mathbf{h}^{(1)\top}_{t-1},\quad "
        r"\boldsymbol{\delta}^{(1)}_T = (\mathbf{W}^{(2)})^T (\mathbf{a}^{(2)} - \mathbf{t}) "
        r"\odot (1 - (\mathbf{h}^{(1)}_T)^2),\quad \boldsymbol{\delta}^{(1)}_t = "
        r"(\mathbf{U}^{(1)})^T \boldsymbol{\delta}^{(1)}_{t+1} \odot (1 - (\mathbf{h}^{(1)}_t)^2)"
    )
    net = ScalarNet(derive(TANH))
    point = _values(net, 3)
    want = _torch_grads(TANH, net, point)["U1"]
    for e, latex in ((expr, False), (tex, True)):
        np.testing.assert_allclose(_hand(net, "U1", e, latex, point), want, rtol=1e-10)
        assert verify(TANH, "U1", e, latex=latex).equivalent


_REC = "delta1[t] = ({}) * (1 - h1[t]**2)\ndh1[T] = W2.T @ (a2 - t)\ndh1[t] = 0"
MISTAKES = [
    ("U1", "sum_t(delta1[t] @ h1[t].T)", False, "the wrong time shift: U1 multiplies the "
     "previous state"),
    ("U1", r"\sum_{t=1}^{T} \boldsymbol{\delta}^{(1)}_t \left(\mathbf{h}^{(1)}_t\right)^T", True,
     "the wrong time shift"),
    ("W1", "sum_t(delta1[t] @ x[t-1].T)", False, "the wrong time shift: W1 multiplies the input "
     "of the same step"),
    ("U1", "sum_t(delta1[t] @ h1[t-1].T)\n" + _REC.format("dh1[t]"), False,
     "the recurrent path is missing: delta1[t] also receives U1.T @ delta1[t+1]"),
    ("W1", "sum_t(delta1[t] @ x[t].T)\ndelta1[t] = dh1[t] + U1.T @ delta1[t+1]\n"
     "dh1[T] = W2.T @ (a2 - t)\ndh1[t] = 0", False,
     "missing the activation derivative tanh'(z) = 1 - h1[t]**2 in delta1[t]"),
    ("U1", "sum_t(delta1[t] @ h1[t-1].T)\n" + _REC.format("dh1[t] + U1 @ delta1[t+1]"), False,
     "U1 is used where its transpose U1.T belongs"),
    ("W1", "sum_t(delta1[t] @ x[t].T, 2, T)", False, "missing time step 1: the term "
     "delta1[1] @ x[1].T"),
    ("U1", r"\sum_{t=2}^{T-1} \boldsymbol{\delta}^{(1)}_t \mathbf{h}^{(1)\top}_{t-1}", True,
     "missing time step 3: the term delta1[3] @ h1[2].T"),
    ("b1", "sum_t(delta1[t], 2, 3)", False, "missing time step 1: the term delta1[1]"),
]  # fmt: skip


@pytest.mark.parametrize(("wrt", "wrong", "latex", "named"), MISTAKES)
def test_each_bptt_mistake_is_refuted_named_and_its_correction_proved(wrt, wrong, latex, named):
    r = verify(TANH, wrt, wrong, latex=latex)
    assert not r.equivalent and r.explanation and named in r.explanation, r.text()
    # the counterexample is real: the correct value there is nn.RNN's gradient, yours differs
    net = ScalarNet(derive(TANH))
    point = {s: r.counterexample[s.name] for s in net.raw}
    want = _torch_grads(TANH, net, point)[wrt]
    np.testing.assert_allclose(np.array(r.true_value, dtype=float), want, rtol=1e-10, atol=1e-12)
    assert not np.allclose(np.array(r.hand_value, dtype=float), want, rtol=1e-6)
    for fixed, tex in ((r.correct_formula, False), (r.correct_formula_latex, True)):
        assert verify(TANH, wrt, fixed, latex=tex).equivalent, fixed


@pytest.mark.parametrize("spec", [GRU, LSTM], ids=["gru", "lstm"])
def test_a_gated_weight_is_the_sum_over_t_of_its_gate_deltas(spec):
    """gru/lstm: dE/dU1 = Σ_t dq_t hs_{t-1}ᵀ (the gate deltas are the net's, the cell's own
    recurrences are in the derivation); a wrong shift and a forgotten step are named, and a
    helper name for a gate recurrence is refused in one line."""
    dq = "dq1" if spec is GRU else "dx1"  # the LSTM's dq equals its dx (tied)
    assert verify(spec, "U1", f"sum_t({dq}[t] @ hs1[t-1].T)").equivalent
    r = verify(spec, "U1", f"sum_t({dq}[t] @ hs1[t].T)")
    assert not r.equivalent and "the wrong time shift" in r.explanation, r.text()
    r = verify(spec, "W1", "sum_t(dx1[t] @ x[t].T, 1, 2)")
    assert not r.equivalent and "missing time step 3: the term dx1[3] @ x[3].T" in r.explanation
    with pytest.raises(SpecError, match=r"cannot define e\[t\]: not a sequence of this net"):
        verify(spec, "U1", f"sum_t({dq}[t] @ hs1[t-1].T)\ne[t] = dh1[t]")


def test_truncated_bptt_prints_its_cuts_and_pastes_back():
    """bptt: 2 cuts Uᵀδ_{t+1} at t = 2: printed as a step override, read back as equivalent;
    the untruncated recurrence is refuted."""
    shown = verify(TRUNC, "U1", "0")
    assert "\ndelta1[2] = da1[2] * (a1[2] > 0)" in shown.correct_formula, shown.correct_formula
    for expr, latex in ((shown.correct_formula, False), (shown.correct_formula_latex, True)):
        assert verify(TRUNC, "U1", expr, latex=latex).equivalent, expr
    full = "\n".join(ln for ln in shown.correct_formula.splitlines() if "delta1[2] =" not in ln)
    assert not verify(TRUNC, "U1", full).equivalent


def test_contract_spelling_of_a_sequence_element():
    """h1_1[2] is unit 1 of h1 at step 2 (CONTRACT §6, as scalar mode prints it; the step-first
    h1_2_1 printed before is read too), x1[2] feature 1 at step 2, in text, in definitions and in
    LaTeX (h^{(1)}_{1}[2], h^{(1)}_{1,t=2})."""
    old = "delta1_2_1*h1_1_2 + delta1_3_1*h1_2_2"
    new = "delta1_1[2]*h1_2[1] + delta1_1[3]*h1_2[2]"
    assert verify(TANH, "u1_12", old).equivalent and verify(TANH, "u1_12", new).equivalent
    assert verify(TANH, "w1_12", "delta1_1[1]*x2[1] + delta1_1[2]*x2[2] + delta1_1[3]*x2[3]")
    defined = f"dE/du1_12 = {new}\ndelta1_1[2] = (1 - h1_1[2]**2)*(dh1_1[2] + " \
              "delta1_1[3]*u1_11 + delta1_2[3]*u1_21)"  # fmt: skip
    assert verify(TANH, "u1_12", defined).equivalent
    wrong = defined.replace("(1 - h1_1[2]**2)*", "")
    assert not verify(TANH, "u1_12", wrong).equivalent
    tex = r"\delta^{(1)}_{1}[2] h^{(1)}_{2}[1] + \delta^{(1)}_{1,t=3} h^{(1)}_{2,t=2}"
    assert verify(TANH, "u1_12", tex, latex=True).equivalent
    assert not verify(TANH, "u1_12", "delta1_1[2]*h1_2[1]").equivalent


def test_the_input_gradient_of_a_sequence_element():
    """--wrt x1[2] (feature 1 at step 2; x2_1 step first) and --wrt x on a sequence net: the
    printed formula pastes back, a wrong one is refuted, and the value is autograd's dE/dx."""
    right = "delta1_1[2]*w1_11 + delta1_2[2]*w1_21"
    for name in ("x1[2]", "x2_1"):
        assert verify(TANH, name, right).equivalent
        assert not verify(TANH, name, right.replace("w1_21", "w1_22")).equivalent
    printed = verify(TANH, "x1[2]", "0").correct_formula
    assert printed == f"dE/dx1[2] = {right}"
    from symbackprop.core.chain_rule import derive as chain_rule
    from symbackprop.spec.load import parse_spec

    net = ScalarNet(chain_rule(parse_spec(TANH), True, True))  # with the input's gradient
    point = _values(net, 5)
    want = _torch_grads(TANH, net, point)["x"]
    with mpmath.workdps(30):
        env = net.env({s: mpmath.mpf(v) for s, v in point.items()}, net.defs)
        for step, feature in ((1, 1), (2, 1), (3, 2)):
            got = net.call(net.input_grads[f"x{feature}[{step}]"], env)
            assert float(got) == pytest.approx(want[step - 1, feature - 1], rel=1e-10)


REFUSED = [
    ("U1", "delta1[t] @ h1[t-1].T", "the time step t of an index is bound by sum_t(...)"),
    ("U1", "sum_t(sum_t(delta1[t] @ h1[t-1].T))", "sum_t(...) inside a sum over t"),
    ("U1", "sum_t(delta1[t] @ h1[t/2].T)", "a time index is t, T or a whole number"),
    ("U1", "sum_t(U1[t])", "only a sequence (indexed by its time step) takes [...]: U1[t]"),
    ("U1", "sum_t(delta1[t] @ h1[t-1].T)\ndelta1[7] = h1[7]", "delta1[7] is outside the steps"),
    ("U1", "sum_t(delta1[t] @ h1[t-1].T)\ndelta1[t] = delta1[t] * 2", "delta1[1] is defined in "
     "terms of itself"),
    ("U1", "sum_t(delta1[t] @ h1[t-1].T)\ndelta1[T] = U1.T @ h1[T]", "delta1[1] has no "
     "definition"),
    ("U1", "sum_t(delta1[t] @ h1[t-1].T)\ndelta1[t] = U1", "delta1[t] is [2, 1], its "
     "definition [2, 2]"),
]  # fmt: skip


@pytest.mark.parametrize(("wrt", "expr", "fragment"), REFUSED)
def test_what_it_cannot_read_is_refused(wrt, expr, fragment):
    with pytest.raises(SpecError) as info:
        verify(TANH, wrt, expr)
    assert fragment in info.value.reason, info.value.reason


def test_sum_t_on_a_dense_net_is_refused():
    dense = {"name": "d", "inputs": 2, "optimizer": _SGD, "loss": _SSE, "layers": [{"units": 2}]}
    with pytest.raises(SpecError, match="a recurrent net"):
        verify(dense, "W1", "sum_t(delta1 @ x.T)")


def test_refusal_on_the_command_line_is_one_line_with_exit_2(tmp_path):
    spec = tmp_path / "rnn.yaml"
    spec.write_text(yaml.safe_dump(TANH))
    run = subprocess.run(
        [sys.executable, "-m", "symbackprop.cli", "verify", str(spec), "--wrt", "U1",
         "--expr", "delta1[t] @ h1[t-1].T"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert run.stderr.startswith(f"error: {spec}: --expr: the time step t")
    assert run.stderr.count("\n") == 1
    ok = subprocess.run(
        [sys.executable, "-m", "symbackprop.cli", "verify", str(spec), "--wrt", "U1",
         "--expr", "sum_t(delta1[t] @ h1[t].T)"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 1 and "the wrong time shift" in ok.stdout, ok.stdout + ok.stderr


LSTM1 = {"name": "lstm1", "inputs": [2, 1], "optimizer": _SGD, "loss": _SSE,
         "layers": [{"type": "lstm", "units": 1}, {"units": 1}]}  # fmt: skip


def test_a_forgotten_gate_derivative_is_named():
    """An LSTM's input-gate row of U at the last step, with the gate deltas written out in the
    saved values (s1: i, f, g, o, c, k, h) by CONTRACT's names: i' = i(1 − i) forgotten is
    named; the step-first spelling printed before (s1_2_1 for s1_1[2]) is read too."""
    good = (
        "dE/du1_11 = dx1_1[2]*hs1_1[1]\n"
        "dx1_1[2] = dh1_1[2]*s1_4[2]*(1 - s1_6[2]**2)*s1_3[2]*s1_1[2]*(1 - s1_1[2])"
    )
    assert verify(LSTM1, "u1_11", good).equivalent
    old = ("dE/du1_11 = dx1_2_1*hs1_1_1\n"
           "dx1_2_1 = dh1_2_1*s1_2_4*(1 - s1_2_6**2)*s1_2_3*s1_2_1*(1 - s1_2_1)")  # fmt: skip
    assert verify(LSTM1, "u1_11", old).equivalent  # the step-first spelling printed before
    r = verify(LSTM1, "u1_11", good.replace("*s1_1[2]*(1 - s1_1[2])", ""))
    assert not r.equivalent
    assert (
        r.explanation == "missing the derivative of i (σ') at step 2, unit 1: s1_1[2]*(1 - s1_1[2])"
    )
    r = verify(LSTM1, "u1_11", good.replace("*(1 - s1_6[2]**2)", ""))
    assert not r.equivalent and "missing the derivative of k (tanh') at step 2" in r.explanation
    # the value it is judged against is nn.LSTM's gradient
    net = ScalarNet(derive(LSTM1))
    point = {s: r.counterexample[s.name] for s in net.raw}
    want = _torch_grads(LSTM1, net, point)["U1"][0, 0]
    assert abs(r.true_value - want) <= 1e-10 * abs(want)


def test_a_batch_of_sequences():
    """--batch 2: sum_n around sum_t reads; a wrong shift inside is named per sample, and the
    printed batch formula pastes back in text and LaTeX."""
    assert verify(TANH, "U1", "sum_n(sum_t(delta1[t] @ h1[t-1].T))", batch=2).equivalent
    r = verify(TANH, "U1", "sum_n(sum_t(delta1[t] @ h1[t].T))", batch=2)
    assert not r.equivalent and r.explanation.startswith("in each sample's term: the wrong time")
    assert verify(TANH, "U1", r.correct_formula, batch=2).equivalent
    assert verify(TANH, "U1", r.correct_formula_latex, latex=True, batch=2).equivalent
