"""Markdown renders on GitHub/Jupyter; notebook reprs; --pdf; LaTeX line breaking."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import symbackprop
from symbackprop.cli import main
from symbackprop.document.layout import WIDTH, _display, split_top
from symbackprop.document.sections import MAX_SCALAR_PARAMS, Eq
from symbackprop.spec.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if "sample" not in p.name)
AMSMATH_ENVS = {"bmatrix", "aligned", "matrix", "pmatrix", "cases"}


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("mode", ["scalar", "tensor"])
def test_markdown_is_github_math(spec, mode):
    d = symbackprop.derive(spec)
    if mode == "scalar" and d.num_params > MAX_SCALAR_PARAMS:  # digits_cnn: tensor mode only
        with pytest.raises(SpecError, match="use --mode tensor"):
            d.render("markdown", mode)
        return
    md = d.render("markdown", mode)
    blocks = md.split("$$")
    assert len(blocks) % 2 == 1, "unbalanced $$"
    outside, inside = blocks[0::2], blocks[1::2]
    for text in outside:  # no LaTeX environments outside math blocks
        assert r"\begin" not in text and r"\[" not in text
    for math in inside:
        for env in re.findall(r"\\begin\{(\w+\*?)\}", math):
            assert env in AMSMATH_ENVS, env
        assert "\\\\\n" not in math and "\n\n" not in math.strip("\n")  # one paragraph each
        assert math.count("{") == math.count("}"), math


def test_notebook_reprs():
    d = symbackprop.derive(ROOT / "examples/mazur.yaml")
    assert d._repr_markdown_().startswith("# Gradients of `mazur`")
    latex = d._repr_latex_()
    assert latex.startswith("$$") and r"\boldsymbol{\delta}^{(1)}" in latex


def test_long_equations_break_at_equals_and_terms():
    long_sum = " + ".join(f"w^{{(1)}}_{{1{i}}} x_{{{i}}}" for i in range(1, 30))
    out = _display(Eq(f"z^{{(1)}}_{{1}} = {long_sum}", "z1_1 = ...", value="1.5"))
    lines = out.splitlines()
    assert lines[0] == r"\begin{align*}" and lines[-1] == r"\end{align*}"
    body = [ln for ln in lines[1:-1]]
    assert body[0].startswith("z^{(1)}_{1} &= ") and body[-1] == "&= 1.5"
    assert all(len(re.sub(r"\\[a-zA-Z]+|[{}^_&]", "", ln)) <= WIDTH + 10 for ln in body)
    assert split_top(r"\left(a + b\right) + c", (" + ",)) == [r"\left(a + b\right)", "+ c"]
    wide = r"\frac{1}{N} \cdot \left(" + " + ".join(f"d_{{{i}}} w_{{{i}1}}" for i in range(40))
    out = _display(Eq("y = " + wide + r"\right) \cdot x_{1}", "..."))  # a long sum in ( )
    body = out.splitlines()[1:-1]
    opened = [ln for ln in body if r"\left(" in ln]
    assert len(body) > 2 and len(opened) == 1 and opened[0].endswith(r"\right. \\")
    assert all(ln.count(r"\left") == ln.count(r"\right") for ln in body)  # balanced per line


def test_pdf_option(tmp_path, capsys, monkeypatch):
    pdf = tmp_path / "mazur.pdf"
    spec = str(ROOT / "examples/mazur.yaml")
    if shutil.which("pdflatex"):
        assert main(["derive", spec, "--pdf", str(pdf), "-o", str(tmp_path / "m.txt")]) == 0
        assert pdf.read_bytes()[:5] == b"%PDF-"
    monkeypatch.setenv("PATH", str(tmp_path))  # no pdflatex on PATH: a clear message, exit 2
    other = tmp_path / "other.pdf"
    assert main(["derive", spec, "--pdf", str(other)]) == 2
    err = capsys.readouterr().err
    assert "needs pdflatex" in err and "apt-get install texlive-latex-base" in err
    assert not other.exists()


def test_text_matrices_line_up(capsys):
    """In text, each later row of a matrix value starts under its first row, values intact."""
    main(
        [
            "derive",
            str(ROOT / "examples/mazur.yaml"),
            "--at",
            str(ROOT / "examples/mazur_sample.yaml"),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  dW2  =  [["))
    column = lines[first].index("[[") + 1
    assert lines[first + 1].index("[") == column and lines[first + 1].endswith("]]")
    rows = [lines[first][column:], lines[first + 1][column:]]
    values = [[float(v) for v in r.strip("[], ").split(",")] for r in rows]
    assert values == [[0.082167041, 0.082667628], [-0.02260254, -0.022740242]]  # Mazur's dW2


@pytest.mark.parametrize("name", ["residual_mlp", "two_branch", "normalization/normalized_mlp"])
def test_graph_example_derivations_are_current(name):
    """docs/<name>.md is `derive --at --format markdown` of the example (`make docs` rewrites
    it); its numbers are checked against PyTorch in tests/test_graphs.py (normalization: the
    same interpreter in tests/test_normalization.py)."""
    spec, sample = ROOT / f"examples/{name}.yaml", ROOT / f"examples/{name}_sample.yaml"
    name = name.rsplit("/", 1)[-1]
    from symbackprop.spec.samples import load_samples

    d = symbackprop.derive(spec)
    md = d.render("markdown", "auto", d.at(load_samples(sample, d.spec)))
    current = (ROOT / f"docs/{name}.md").read_text()
    assert md.rstrip("\n") == current.rstrip("\n"), f"docs/{name}.md is stale: run `make docs`"


def test_worked_example_shows_where_it_starts(capsys):
    """--at prints the sample and the initial parameters before any number computed from them:
    Mazur's published start, and for a random init the NumPy module's own draws."""
    import json

    from symbackprop.codegen.numpy import numpy_module

    mazur, sample = ROOT / "examples/mazur.yaml", ROOT / "examples/mazur_sample.yaml"
    assert main(["derive", str(mazur), "--at", str(sample), "--format", "json"]) == 0
    initial = json.loads(capsys.readouterr().out)["initial"]
    assert initial == {"x": [0.05, 0.1], "t": [0.01, 0.99], "W1": [[0.15, 0.2], [0.25, 0.3]],
                       "b1": 0.35, "W2": [[0.4, 0.45], [0.5, 0.55]], "b2": 0.6}  # fmt: skip
    assert main(["derive", str(mazur), "--at", str(sample), "--mode", "scalar"]) == 0
    text = capsys.readouterr().out
    start = text.index("Starting point")
    assert start < text.index("Forward pass, element by element") < text.index("Worked example")
    assert "W1  =  [[0.15, 0.2]," in text[start:] and "x  =  [0.05, 0.1]" in text[start:]
    iris = ROOT / "examples/iris_softmax.yaml"
    d = symbackprop.derive(iris)
    assert main(["derive", str(iris), "--at", str(ROOT / "examples/iris_softmax_sample.yaml"),
                 "--format", "json"]) == 0  # fmt: skip
    initial = json.loads(capsys.readouterr().out)["initial"]
    for name, value in numpy_module(d).init_params().items():
        assert initial[name] == value.tolist(), name
    latex = d.render("latex", "tensor", d.at((np.ones((2, 4)), np.eye(3)[:2])))
    assert r"\mathbf{X}" in latex and "Starting point" in latex
