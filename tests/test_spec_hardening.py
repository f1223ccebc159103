"""Spec files the hardening issue found breaking the loader: integers too large for a float or
for Python's int-string conversion, duplicate keys, YAML 1.2 floats (``1e-3``). Bad input is one
line ``error: FILE: FIELD: reason``, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest

from symbackprop.cli import main
from symbackprop.spec.load import load_spec

SPEC = """\
name: net
inputs: 2
layers:
  - units: 3
    activation: tanh
  - units: 2
    activation: sigmoid
loss: {type: mse}
optimizer: {type: adam, lr: 0.01}
"""
BIG = "1" + "0" * 400  # an int, but beyond the largest float (about 1.8e308)
HUGE = "1" + "0" * 5000  # beyond Python's int-string conversion limit (4,300 digits)


def refuse(tmp_path, capsys, text: str, suffix: str = ".yaml", at: str | None = None) -> str:
    """Run ``derive`` on ``text`` (or on SPEC with the sample ``at``); assert exit 2, one line
    naming the file, nothing written; return the line after ``error: FILE: ``."""
    name = "at" if at is not None else "net"
    bad = tmp_path / f"{name}{suffix}"
    bad.write_text(at if at is not None else text)
    spec = bad if at is None else tmp_path / "net.yaml"
    if at is not None:
        spec.write_text(SPEC)
    out = tmp_path / "out.txt"
    args = ["derive", str(spec), "-o", str(out)] + (["--at", str(bad)] if at is not None else [])
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {bad}: "), err
    assert not out.exists()
    return err.removeprefix(f"error: {bad}: ").strip()


def with_line(old: str, new: str) -> str:
    assert old in SPEC
    return SPEC.replace(old, new)


# ---- item 5: integers too large for a float, or for Python's int conversion ---------------

TOO_BIG = [
    ("optimizer: {type: adam, lr: 0.01}", f"optimizer: {{type: adam, lr: {BIG}}}", "optimizer.lr"),
    (
        "optimizer: {type: adam, lr: 0.01}",
        f"optimizer: {{type: adam, betas: [0.9, {BIG}]}}",
        "optimizer.betas[1]",
    ),
    ("loss: {type: mse}", f"loss: {{type: sse, scale: {BIG}}}", "loss.scale"),
    (
        "activation: tanh",
        f"activation: {{name: elu, alpha: {BIG}}}",
        "layers[0].activation.alpha",
    ),
    ("activation: tanh", f"bias: {{init: {BIG}}}", "layers[0].bias.init"),
    ("activation: tanh", f"bias: {{init: [1, 2, -{BIG}]}}", "layers[0].bias.init[2]"),
    (
        "activation: tanh",
        f"weight: {{init: [[1, 2], [3, {BIG}], [5, 6]]}}",
        "layers[0].weight.init[1][1]",
    ),
    ("activation: tanh", f"weight: {{init: uniform, high: {BIG}}}", "layers[0].weight.high"),
    ("activation: tanh", f"weight: {{init: normal, std: {HUGE}}}", "layers[0].weight.std"),
    ("optimizer: {type: adam, lr: 0.01}", f"optimizer: {{type: adam, lr: {HUGE}}}", "optimizer.lr"),
]


@pytest.mark.parametrize(("old", "new", "field"), TOO_BIG, ids=[c[2] for c in TOO_BIG])
def test_numbers_beyond_a_float_are_refused_by_field(tmp_path, capsys, old, new, field):
    reason = refuse(tmp_path, capsys, with_line(old, new))
    digits = len(HUGE) if HUGE in new else len(BIG)
    assert reason == f"{field}: out of range: a {digits}-digit integer is beyond the largest float"


@pytest.mark.parametrize("field", ["inputs", "seed"])
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_integers_beyond_pythons_conversion_limit_are_refused_by_field(
    tmp_path, capsys, field, suffix
):
    """YAML and JSON parsing of a 5001-digit integer raised ValueError (a traceback)."""
    data = {"name": "net", "inputs": 2, "layers": [{"units": 1}]}
    data[field] = "HUGE"
    text = json.dumps(data).replace('"HUGE"', HUGE)
    reason = refuse(tmp_path, capsys, text, suffix)  # JSON is YAML too
    assert reason.startswith(f"{field}: must be between ") and "a 5001-digit integer" in reason


@pytest.mark.parametrize("text", [f"x*{BIG}", f"{'9' * 1500}*x", f"exp(x) - 1{'0' * 330}.0"])
def test_huge_literals_in_expressions(tmp_path, capsys, text):
    spec = with_line("activation: tanh", f"activation: {{expr: '{text}'}}")
    reason = refuse(tmp_path, capsys, spec)
    assert reason.startswith("layers[0].activation.expr: number literal too large"), reason


@pytest.mark.parametrize(
    ("sample", "field"),
    [
        (f"{{x: [1, {BIG}], t: [0, 1]}}", "x[1]"),
        (f"{{x: [1, 2], t: [{HUGE}, 1]}}", "t[0]"),
        (f"[{{x: [1, 2], t: [0, 1]}}, {{x: [-{BIG}, 2], t: [0, 1]}}]", "[1].x[0]"),
    ],
)
def test_huge_numbers_in_samples(tmp_path, capsys, sample, field):
    reason = refuse(tmp_path, capsys, "", at=sample)
    assert reason.startswith(f"{field}: expected a finite number, got a "), reason
    assert reason.endswith("-digit integer"), reason


def test_a_tag_that_cannot_construct_its_value_is_a_yaml_error(tmp_path, capsys):
    """``!!int abc`` raised ValueError out of the YAML loader (a traceback)."""
    for value, tag in (("!!int abc", "int"), ("!!float x", "float"), ("!!bool maybe", "bool")):
        reason = refuse(tmp_path, capsys, with_line("inputs: 2", f"inputs: {value}"))
        assert reason.startswith("invalid YAML at line 2 column 9: cannot read "), reason
        assert reason.endswith(f"as tag:yaml.org,2002:{tag}"), reason


# ---- item 15: duplicate keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "lines"),
    [
        ("  - units: 3\n", "  - units: 3\n    units: 4\n", "layers[0].units", "lines 4 and 5"),
        ("name: net\n", "name: net\nname: other\n", "name", "lines 1 and 2"),
        ("loss: {type: mse}", "loss: {type: mse, type: sse}", "loss.type", "line 8"),
        ("loss: {type: mse}", "loss: {type: mse}\nloss: {type: sse}", "loss", "lines 8 and 9"),
    ],
)
def test_duplicate_yaml_keys_are_refused_with_their_path(tmp_path, capsys, old, new, field, lines):
    reason = refuse(tmp_path, capsys, with_line(old, new))
    assert reason == f"{field}: duplicate key ({lines})"


def test_duplicate_json_keys_are_refused_with_their_path(tmp_path, capsys):
    text = '{"name": "net", "inputs": 2, "layers": [{"units": 1}, {"units": 2, "units": 3}]}'
    assert refuse(tmp_path, capsys, text, ".json") == "layers[1].units: duplicate key"
    text = '{"name": "net", "inputs": 2, "layers": [{"units": 1}], "inputs": 3}'
    assert refuse(tmp_path, capsys, text, ".json") == "inputs: duplicate key"


def test_duplicate_keys_in_samples(tmp_path, capsys):
    reason = refuse(tmp_path, capsys, "", at="- {x: [1, 2], t: [0, 1]}\n- {x: [1, 2], x: [3, 4]}")
    assert reason == "[1].x: duplicate key (line 2)"
    reason = refuse(tmp_path, capsys, "", ".json", at='{"x": [1, 2], "t": [0, 1], "t": [1, 0]}')
    assert reason == "t: duplicate key"


def test_keys_equal_as_values_are_duplicates(tmp_path, capsys):
    """YAML 1 and 0x1 (and true) are the same key once constructed: the last one would win."""
    assert refuse(tmp_path, capsys, SPEC + "1: a\n0x1: b\n") == "1: duplicate key (lines 10 and 11)"


# ---- item 17a: YAML 1.2 floats ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 1e-3),
        ("1E-3", 1e-3),
        ("+1e-3", 1e-3),
        ("5e0", 5.0),
        ("2.5e-1", 0.25),
        (".5e1", 5.0),
    ],
)
def test_yaml_12_floats_are_numbers(tmp_path, text, value):
    spec = tmp_path / "net.yaml"
    spec.write_text(with_line("lr: 0.01", f"lr: {text}"))
    assert load_spec(spec).optimizer.lr == value


def test_yaml_12_floats_in_inits_and_samples(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text(with_line("activation: tanh", "activation: tanh\n    bias: {init: 1E5}"))
    assert load_spec(spec).layers[0].bias.init.value == 1e5
    at = tmp_path / "at.yaml"
    at.write_text("{x: [1e-3, -2E2], t: [5e-1, 1e0]}")
    assert main(["derive", str(spec), "--at", str(at), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] > 0


def test_quoted_exponent_forms_stay_strings(tmp_path, capsys):
    reason = refuse(tmp_path, capsys, with_line("lr: 0.01", "lr: '1e-3'"))
    assert reason == "optimizer.lr: expected a number, got a string"
    reason = refuse(tmp_path, capsys, with_line("lr: 0.01", "lr: 1e-3x"))
    assert reason == "optimizer.lr: expected a number, got a string"
