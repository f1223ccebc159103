"""One test per validation rule: exit 2, one line `error: FILE: FIELD: reason`, nothing written."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from symbackprop.cli import main

BASE = {
    "name": "net",
    "inputs": 2,
    "layers": [
        {"units": 3, "activation": "tanh"},
        {"units": 2, "activation": "sigmoid"},
    ],
    "loss": {"type": "mse"},
    "optimizer": {"type": "sgd", "lr": 0.1},
}


def mutate(path: list, value, base=BASE) -> dict:
    data = copy.deepcopy(base)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


DELETE = object()

CASES = [
    # (id, path, value, field, words in the reason)
    ("missing name", ["name"], DELETE, "name", "required"),
    ("bad name", ["name"], "Net-1", "name", "must match"),
    ("long name", ["name"], "n" * 41, "name", "40"),
    ("inputs zero", ["inputs"], 0, "inputs", "between 1 and"),
    ("inputs text", ["inputs"], "two", "inputs", "integer"),
    ("inputs bool", ["inputs"], True, "inputs", "integer"),
    ("inputs float", ["inputs"], 2.5, "inputs", "integer"),
    ("dtype", ["dtype"], "float16", "dtype", "unknown dtype"),
    ("seed negative", ["seed"], -1, "seed", "between"),
    ("layers empty", ["layers"], [], "layers", "non-empty"),
    ("layers not list", ["layers"], {"units": 2}, "layers", "list"),
    ("units missing", ["layers", 0, "units"], DELETE, "layers[0].units", "required"),
    ("units zero", ["layers", 1, "units"], 0, "layers[1].units", "between 1 and"),
    (
        "activation typo",
        ["layers", 1, "activation"],
        "sigmoud",
        "layers[1].activation",
        "did you mean 'sigmoid'",
    ),
    ("activation type", ["layers", 1, "activation"], 3, "layers[1].activation", "mapping"),
    (
        "softmax hidden",
        ["layers", 0, "activation"],
        "softmax",
        "layers[0].activation",
        "last layer",
    ),
    (
        "alpha on tanh",
        ["layers", 0, "activation"],
        {"name": "tanh", "alpha": 0.1},
        "layers[0].activation.alpha",
        "unknown field",
    ),
    (
        "alpha negative",
        ["layers", 0, "activation"],
        {"name": "leaky_relu", "alpha": -1},
        "layers[0].activation.alpha",
        ">= 0",
    ),
    (
        "name and expr",
        ["layers", 0, "activation"],
        {"name": "tanh", "expr": "x"},
        "layers[0].activation.expr",
        "either",
    ),
    (
        "bad expr",
        ["layers", 0, "activation"],
        {"expr": "x.__class__"},
        "layers[0].activation.expr",
        "attribute",
    ),
    (
        "expr unknown name",
        ["layers", 0, "activation"],
        {"expr": "y*2"},
        "layers[0].activation.expr",
        "unknown name",
    ),
    ("unknown layer key", ["layers", 0, "unitz"], 3, "layers[0].unitz", "unknown field"),
    (
        "init shape rows",
        ["layers", 0, "weight"],
        {"init": [[1, 2]]},
        "layers[0].weight.init",
        "wrong shape",
    ),
    (
        "init shape cols",
        ["layers", 0, "weight"],
        {"init": [[1, 2], [3, 4], [5]]},
        "layers[0].weight.init[2]",
        "wrong shape",
    ),
    (
        "init not number",
        ["layers", 0, "weight"],
        {"init": [[1, 2], [3, "x"], [5, 6]]},
        "layers[0].weight.init[1][1]",
        "number",
    ),
    (
        "init scheme typo",
        ["layers", 0, "weight"],
        {"init": "xavier"},
        "layers[0].weight.init",
        "did you mean",
    ),
    (
        "low without uniform",
        ["layers", 0, "weight"],
        {"init": "zeros", "low": 0},
        "layers[0].weight.low",
        "uniform",
    ),
    (
        "high <= low",
        ["layers", 0, "weight"],
        {"init": "uniform", "low": 1, "high": 0},
        "layers[0].weight.high",
        "greater",
    ),
    (
        "std negative",
        ["layers", 0, "weight"],
        {"init": "normal", "std": -1},
        "layers[0].weight.std",
        ">= 0",
    ),
    (
        "trainable text",
        ["layers", 0, "weight"],
        {"trainable": "yes"},
        "layers[0].weight.trainable",
        "true or false",
    ),
    (
        "weight shape key",
        ["layers", 0, "weight"],
        {"shape": "shared"},
        "layers[0].weight.shape",
        "unknown field",
    ),
    (
        "bias shape",
        ["layers", 0, "bias"],
        {"shape": "per_row"},
        "layers[0].bias.shape",
        "unknown shape",
    ),
    (
        "bias per_unit length",
        ["layers", 0, "bias"],
        {"init": [1, 2]},
        "layers[0].bias.init",
        "wrong shape",
    ),
    (
        "bias shared list",
        ["layers", 0, "bias"],
        {"shape": "shared", "init": [1, 2, 3]},
        "layers[0].bias.init",
        "number",
    ),
    ("loss typo", ["loss"], {"type": "mes"}, "loss.type", "did you mean 'mse'"),
    ("loss missing type", ["loss"], {"reduction": "sum"}, "loss.type", "required"),
    ("reduction", ["loss"], {"type": "mse", "reduction": "avg"}, "loss.reduction", "unknown"),
    ("scale on mse", ["loss"], {"type": "mse", "scale": 2}, "loss.scale", "unknown field"),
    ("scale zero", ["loss"], {"type": "sse", "scale": 0}, "loss.scale", "> 0"),
    ("custom no expr", ["loss"], {"type": "custom"}, "loss.expr", "required"),
    ("custom bad expr", ["loss"], {"type": "custom", "expr": "(y-t)^2"}, "loss.expr", "**"),
    ("ce after sigmoid", ["loss"], {"type": "cross_entropy"}, "loss.type", "softmax"),
    (
        "bce after tanh",
        ["layers", 1, "activation"],
        "tanh",
        "loss.type",
        "sigmoid",
        {"loss": {"type": "binary_cross_entropy"}},
    ),
    ("optimizer typo", ["optimizer"], {"type": "adan"}, "optimizer.type", "did you mean 'adam'"),
    ("lr zero", ["optimizer"], {"type": "sgd", "lr": 0}, "optimizer.lr", "> 0"),
    ("lr text", ["optimizer"], {"type": "sgd", "lr": "fast"}, "optimizer.lr", "number"),
    ("lr inf", ["optimizer"], {"type": "sgd", "lr": float("inf")}, "optimizer.lr", "finite"),
    (
        "betas option of sgd",
        ["optimizer"],
        {"type": "sgd", "betas": [0.9, 0.9]},
        "optimizer.betas",
        "not an option of sgd",
    ),
    ("betas length", ["optimizer"], {"type": "adam", "betas": [0.9]}, "optimizer.betas", "two"),
    ("beta one", ["optimizer"], {"type": "adam", "betas": [0.9, 1.0]}, "optimizer.betas[1]", "< 1"),
    (
        "nesterov no momentum",
        ["optimizer"],
        {"type": "sgd", "nesterov": True},
        "optimizer.nesterov",
        "momentum",
    ),
    (
        "dampening range",
        ["optimizer"],
        {"type": "sgd", "dampening": 2},
        "optimizer.dampening",
        "<= 1",
    ),
    (
        "momentum negative",
        ["optimizer"],
        {"type": "rmsprop", "momentum": -0.1},
        "optimizer.momentum",
        ">= 0",
    ),
    (
        "optimizer key typo",
        ["optimizer"],
        {"type": "adam", "lr": 0.1, "weight_decy": 0.1},
        "optimizer.weight_decy",
        "did you mean 'weight_decay'",
    ),
    ("epochs zero", ["train"], {"epochs": 0}, "train.epochs", "between 1 and"),
    ("batch text", ["train"], {"batch_size": "all"}, "train.batch_size", "integer"),
    ("shuffle", ["train"], {"shuffle": 1}, "train.shuffle", "true or false"),
    ("unknown top key", ["layer"], [], "layer", "did you mean 'layers'"),
]


def run(tmp_path, capsys, text: str, suffix: str = ".yaml"):
    spec = tmp_path / f"net{suffix}"
    spec.write_text(text)
    out = tmp_path / "out.txt"
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["derive", str(spec), "-o", str(out)])
    err = capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was written"
    return code, err, str(spec)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_rule(tmp_path, capsys, case):
    _, path, value, field, words, *extra = case
    base = copy.deepcopy(BASE)
    if extra:
        base.update(extra[0])
    data = mutate(path, value, base)
    code, err, spec = run(tmp_path, capsys, json.dumps(data), ".json")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {spec}: {field}: "), lines[0]
    assert words in lines[0], lines[0]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("name: [unclosed", "invalid YAML at line 1"),
        ("- just\n- a list\n", "mapping at the top level"),
        ("name: net\ninputs: 2\n", "layers: required"),
    ],
)
def test_file_level_errors(tmp_path, capsys, text, words):
    code, err, spec = run(tmp_path, capsys, text)
    assert code == 2 and err.startswith(f"error: {spec}: ") and words in err, err
    assert err.count("\n") == 1


def test_invalid_json(tmp_path, capsys):
    code, err, spec = run(tmp_path, capsys, '{"name": "net",}', ".json")
    assert code == 2 and "invalid JSON at line 1" in err


def test_binary_file(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    assert main(["derive", str(spec)]) == 2
    assert "not a text file" in capsys.readouterr().err


def test_missing_file_and_directory(tmp_path, capsys):
    assert main(["derive", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.yaml'}: no such file\n"
    assert main(["derive", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_valid_base_passes(tmp_path, capsys):
    """The base spec itself is valid, so each failure above is caused by its one mutation."""
    spec = tmp_path / "net.yaml"
    spec.write_text(yaml.safe_dump(BASE))
    assert main(["derive", str(spec), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "net"


@pytest.mark.parametrize(
    ("sample", "field", "words"),
    [
        ({"x": [1, 2, 3], "t": [0, 1]}, "x", "list of 2"),
        ({"x": [1, 2]}, "t", "required"),
        ({"x": [1, "a"], "t": [0, 1]}, "x[1]", "finite number"),
        ({"x": [1, 2], "t": [0, 1], "y": 1}, "y", "unknown field"),
    ],
)
def test_sample_errors(tmp_path, capsys, sample, field, words):
    spec = tmp_path / "net.yaml"
    spec.write_text(yaml.safe_dump(BASE))
    at = tmp_path / "at.json"
    at.write_text(json.dumps(sample))
    assert main(["derive", str(spec), "--at", str(at)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {at}: {field}: ") and words in err, err


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["derive", "x.yaml", "--format", "pdf"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cross_entropy_targets_must_be_probabilities(tmp_path, capsys):
    # The fused gradient softmax(z) - t holds when sum(t) = 1; other targets are refused.
    spec = tmp_path / "ce.json"
    data = copy.deepcopy(BASE)
    data["layers"][1]["activation"] = "softmax"
    data["loss"] = {"type": "cross_entropy"}
    spec.write_text(json.dumps(data))
    at = tmp_path / "at.json"
    at.write_text(json.dumps({"x": [1, 2], "t": [0.5, 0.6]}))
    assert main(["derive", str(spec), "--at", str(at)]) == 2
    assert "summing to 1" in capsys.readouterr().err
    at.write_text(json.dumps({"x": [[1, 2], [3, 4]], "t": [1, 2]}))
    assert main(["derive", str(spec), "--at", str(at), "--format", "json"]) == 2
    assert "class label 2 out of range 0..1" in capsys.readouterr().err
    at.write_text(json.dumps({"x": [[1, 2], [3, 4]], "t": [1, 0]}))  # labels -> one-hot
    assert main(["derive", str(spec), "--at", str(at), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["forward"]["a2"]) == 2 and abs(sum(out["forward"]["a2"][0]) - 1) < 1e-12


@pytest.mark.parametrize("key", ["\n", "a\rb", "x\u2028y", "\x1b[31m"])
def test_control_characters_in_names_stay_on_one_line(tmp_path, capsys, key):
    """A field name with a line break or escape code (found by hypothesis) is shown escaped."""
    data = copy.deepcopy(BASE)
    data[key] = 1
    code, err, spec = run(tmp_path, capsys, json.dumps(data), ".json")
    assert code == 2 and err.count("\n") == 1 and len(err.splitlines()) == 1, repr(err)
    assert err.startswith(f"error: {spec}: ") and "unknown field" in err, err
    assert "\x1b" not in err and "\r" not in err
