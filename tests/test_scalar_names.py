"""CONTRACT §6's scalar names of a sequence's elements, as scalar mode prints them: h1_1[2] is
unit 1 of h1 at step 2, x1[2] feature 1 of x at step 2, s1_10[2] element 10 of a gated layer's
saved values at step 2 (``<name>_<unit>[<step>]``). Every per-step tensor of a tiny rnn, gru and
lstm net is named so in the JSON document; the numbers the worked example prints under those
names are nn.RNN / nn.GRU / nn.LSTM's (with copied weights); and verify's printed correct
formulas (text and LaTeX), which use them, prove equivalent pasted back."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import yaml
from sequence_reference import Reference

from symbackprop.cli import main

SEQUENCE_NAME = re.compile(r"^[a-z]+\d+(_\d+)*\[\d+\]$")
TOKEN = re.compile(r"\b[A-Za-z]\w*(?:\[\d+\])?")
X = [[0.5, -1.0], [0.25, 0.75], [-0.5, 0.1]]  # T = 3 steps of 2 features


def _spec(kind: str, many: bool = False) -> dict:
    return {"name": f"tiny_{kind}", "inputs": [3, 2], "seed": 1, "loss": "mse",
            "optimizer": {"type": "sgd", "lr": 0.1},
            "layers": [{"type": kind, "units": 2, "return_sequences": many},
                       {"units": 1}]}  # fmt: skip


NETS = {"rnn": _spec("rnn"), "gru": _spec("gru"), "lstm": _spec("lstm"),
        "rnn_many_to_many": _spec("rnn", many=True)}  # fmt: skip


def _tensor(token: str) -> str:
    """The tensor a scalar name is an element of: x for x1[2], h1 for h1_1[2], s1 for s1_10."""
    if re.fullmatch(r"[xtp]\d+(\[\d+\])?", token):
        return token[0]
    m = re.match(r"[a-z]+\d+", token)
    return m.group(0) if m else token


def _derive(tmp_path, capsys, spec: dict, *args: str) -> str:
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["derive", str(path), "--mode", "scalar", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("net", NETS, ids=list(NETS))
def test_every_sequence_element_is_named_the_contract_way_in_json(tmp_path, capsys, net):
    """Every name in the element-by-element sections of the JSON document that belongs to a
    per-step tensor ([T, units] per sample: x, h1, s1, delta1, dh1, ..., a many-to-many head's z2
    and t) matches <name>_<unit>[<step>] with the step in 1..T and the unit in range."""
    import symbackprop

    spec = NETS[net]
    shapes = symbackprop.derive(spec).shapes
    per_step = {n for n, s in shapes.items() if len(s) == 2 and s[0] == 3}
    doc = json.loads(_derive(tmp_path, capsys, spec, "--format", "json"))
    texts = [eq["text"] for sec in doc["sections"] if "element by element" in sec["title"]
             for eq in sec["equations"]]  # fmt: skip
    assert texts
    seen: set[str] = set()
    for text in texts:
        for token in TOKEN.findall(text):
            tensor = _tensor(token)
            if tensor not in per_step:
                continue
            seen.add(tensor)
            assert SEQUENCE_NAME.match(token), (token, text)
            unit = int(re.search(r"(\d+)\[", token).group(1))
            step = int(re.search(r"\[(\d+)\]", token).group(1))
            if tensor not in "xtp":  # x1[2]: the unit is the digits after the tensor's name
                unit = int(token[len(tensor) + 1 :].split("[")[0])
            assert 1 <= step <= 3 and 1 <= unit <= shapes[tensor][1], (token, text)
    assert {"x", "h1" if net != "rnn_many_to_many" else "a1"} <= seen, seen  # not vacuous
    if net in ("gru", "lstm"):
        assert {"s1", "hs1"} <= seen, seen
    if net == "rnn_many_to_many":
        assert {"z2", "t"} <= seen, seen


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_worked_example_numbers_under_the_names_are_pytorchs(tmp_path, capsys, kind):
    """`derive --mode scalar --at`: the value printed for h1_j[t] is nn.RNN/GRU/LSTM's hidden
    state of unit j at step t, and x_f[t] is the sample's feature f at step t."""
    import symbackprop
    from symbackprop.core.evaluate import initial_params

    spec = NETS[kind]
    sample = tmp_path / "sample.yaml"
    sample.write_text(yaml.safe_dump({"x": X, "t": [0.3]}))
    out = _derive(tmp_path, capsys, spec, "--at", str(sample))
    printed = dict(re.findall(r"^\s*(h1_\d+\[\d+\]) = .* =\s+(\S+)$", out, re.M))
    assert len(printed) == 6, out  # 2 units x 3 steps
    params = initial_params(symbackprop.derive(spec))
    ref = Reference(spec, params, torch.float64)
    seq = ref.mods[0](torch.tensor([X], dtype=torch.float64))[0].detach()
    for t in range(3):
        for j in range(2):
            want = float(seq[0, t, j])
            assert float(printed[f"h1_{j + 1}[{t + 1}]"]) == pytest.approx(want, abs=1e-8)
    for t in range(3):  # the input's elements, as the forward pass reads them
        for f in range(2):
            assert re.search(rf"w1_1{f + 1}\*x{f + 1}\[{t + 1}\]", out), (t, f)


def test_worked_example_values_equal_pytorch_to_1e10():
    """values_at (the worked example's numbers, by scalar name) at full precision: h1_j[t] and
    the gates' saved values' h row (s1_13..14[t] of an LSTM) are nn.LSTM's."""
    import sympy as sp

    import symbackprop
    from symbackprop.core.evaluate import initial_params
    from symbackprop.core.scalar import values_at

    spec = NETS["lstm"]
    d = symbackprop.derive(spec)
    params = initial_params(d)
    ev = d.at((np.array([X]), np.array([[0.3]])))
    vals = {s.name: v for s, v in values_at(d, ev).items() if isinstance(s, sp.Symbol)}
    lstm = Reference(spec, params, torch.float64).mods[0]
    seq = lstm(torch.tensor([X], dtype=torch.float64))[0].detach()
    for t in range(3):
        for j in range(2):
            want = float(seq[0, t, j])
            assert vals[f"h1_{j + 1}[{t + 1}]"] == pytest.approx(want, rel=1e-10, abs=1e-14)
            assert vals[f"s1_{13 + j}[{t + 1}]"] == pytest.approx(want, rel=1e-10, abs=1e-14)
            assert vals[f"x{j + 1}[{t + 1}]"] == X[t][j]
    assert not any(re.fullmatch(r"h1_\d+_\d+", n) for n in vals)  # no step-first name left


LSTM1 = {"name": "lstm1", "inputs": [2, 1], "seed": 2, "loss": "mse",
         "optimizer": {"type": "sgd", "lr": 0.1},
         "layers": [{"type": "lstm", "units": 1}, {"units": 1}]}  # fmt: skip
GRU1 = {**LSTM1, "name": "gru1", "layers": [{"type": "gru", "units": 1}, {"units": 1}]}


@pytest.mark.parametrize("spec", [LSTM1, GRU1], ids=["lstm", "gru"])
def test_printed_scalar_formula_pastes_back(spec):
    """verify's correct formula of a recurrent weight's element names the sequence elements the
    CONTRACT way (h1_1[1], s1_..[2]), and pasted back, text and LaTeX, it is equivalent."""
    from symbackprop.verify.api import verify

    shown = verify(spec, "u1_11", "0")
    assert not shown.equivalent
    assert re.search(r"\b[a-z]+1_\d+\[2\]", shown.correct_formula), shown.correct_formula
    assert not re.search(r"\b(s|h|hs|dx|dq|dh)1_\d+_\d+\b", shown.correct_formula)
    assert re.search(r"_\{[\d,]+\}\[2\]", shown.correct_formula_latex)  # x_{1,1}[2]
    assert verify(spec, "u1_11", shown.correct_formula).equivalent, shown.correct_formula
    assert verify(spec, "u1_11", shown.correct_formula_latex, latex=True).equivalent, (
        shown.correct_formula_latex
    )
