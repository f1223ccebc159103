"""Typesetting without defects (issue 13, item 1), as a property of the printers: every
example's document, in every format, tensor and scalar mode, with and without a worked example,
is scanned for the defects a teacher spots at once; and the formulas of two known nets are
compared with the LaTeX a textbook writes, typed here by hand."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

import symbackprop
from symbackprop.document.sections import MAX_SCALAR_PARAMS
from symbackprop.spec.errors import SpecError
from symbackprop.spec.samples import load_samples

ROOT = Path(__file__).resolve().parents[1]


@cache
def _derivation(spec: Path):
    return symbackprop.derive(spec)


def _scalar_allowed(spec: Path) -> bool:
    """Scalar mode is for small nets whose samples are independent (digits_cnn and batch norm
    are refused there, as test_documents and test_normalization check)."""
    try:
        _derivation(spec).render("text", "scalar", None)
    except SpecError:
        return False
    return _derivation(spec).num_params <= MAX_SCALAR_PARAMS


# every example with a sample, in every folder (the normalization nets too)
EXAMPLES = sorted(
    p for p in (ROOT / "examples").rglob("*.yaml")
    if "sample" not in p.name
    and any(p.with_name(p.stem + s).exists() for s in ("_sample.yaml", "_samples.yaml"))
)  # fmt: skip
SMALL = {s for s in EXAMPLES if _scalar_allowed(s)}
CASES = [(s, m, at) for s in EXAMPLES for m in ("scalar", "tensor") for at in (False, True)
         if m == "tensor" or s in SMALL]  # fmt: skip
IDS = [f"{s.stem}-{m}-{'at' if a else 'sym'}" for s, m, a in CASES]

# SymPy's own syntax and LaTeX commands, which the text format must never show
SYMPY_SYNTAX = re.compile(
    r"Piecewise|Heaviside|KroneckerDelta|Indexed|\bEq\(|\bNe\(|\bMax\(|\bMin\(|\bAbs\(|"
    r"\bSum\(|\bDerivative\(|\bexp_polar|\bzoo\b|\\[A-Za-z]+|\{\\|\bTrue\b"
)
UNICODE_MATH = re.compile("[∂ℓδΣ∑⊙ᵀ−σθ×∇∈≤≥√αβγεηλμτ𝟙]")


def _sample(spec: Path) -> Path:
    return next(
        p for p in (spec.with_name(spec.stem + s) for s in ("_sample.yaml", "_samples.yaml"))
        if p.exists()
    )  # fmt: skip


@cache
def _at(spec: Path):
    d = _derivation(spec)
    return d.at(load_samples(_sample(spec), d.spec))


def _render(spec: Path, fmt: str, mode: str, at: bool) -> str:
    return _derivation(spec).render(fmt, mode, _at(spec) if at else None)


def _math_of_latex(doc: str) -> list[str]:
    """Every piece of mathematics of a LaTeX document: displays and inline $...$."""
    displays = re.findall(r"\\\[(.*?)\\\]|\\begin\{align\*\}(.*?)\\end\{align\*\}", doc, re.S)
    inline = re.findall(r"(?<!\\)\$(.+?)(?<!\\)\$", doc)
    return [a or b for a, b in displays] + inline


@pytest.mark.parametrize(("spec", "mode", "at"), CASES, ids=IDS)
def test_latex_is_mathematics_from_a_printer(spec, mode, at):
    doc = _render(spec, "latex", mode, at)
    assert doc.isascii(), sorted({ch for ch in doc if not ch.isascii()})  # no Unicode for \sum
    assert r"\noindent{\small\emph" not in doc  # notes are tags beside their formula
    for math in _math_of_latex(doc):
        math = re.sub(r"\\tag\*\{.*\}\s*$", "", math.strip())  # a tag is prose (checked below)
        assert r"\_" not in math, math  # a_j, never the text-mode a\_j
        assert r"\theta" not in math, math  # relu' is the indicator, not SymPy's θ
        for word in re.findall(r"\\(?:mathrm|mathit)\{([^{}]*)\}", math):
            assert re.fullmatch(r"[A-Za-z]+", word), (word, math)  # one word, no prose
    prose = re.sub(r"(?<!\\)\$.+?(?<!\\)\$", "", doc)
    found = re.search(r"\b[a-z]\d?\\_[a-z0-9]{1,3}\b", prose)  # a\_j, a2\_k: math as text
    assert found is None, prose[max(0, found.start() - 80) : found.end() + 80]


@pytest.mark.parametrize(("spec", "mode", "at"), CASES, ids=IDS)
def test_markdown_math_is_latex_and_prose_is_prose(spec, mode, at):
    md = _render(spec, "markdown", mode, at)
    blocks = md.split("$$")
    for math in blocks[1::2]:
        assert math.isascii() and r"\_" not in math and r"\theta" not in math, math
    for prose in blocks[0::2]:
        inline = re.findall(r"(?<!\\)\$(.+?)(?<!\\)\$", prose)
        assert all(m.isascii() for m in inline), inline
        outside = re.sub(r"(?<!\\)\$.+?(?<!\\)\$", "", prose)
        outside = re.sub(r"^\|.*$", "", outside, flags=re.M)  # the notation table's cells
        assert not UNICODE_MATH.search(outside), UNICODE_MATH.search(outside)


@pytest.mark.parametrize(("spec", "mode", "at"), CASES, ids=IDS)
def test_markdown_notes_are_tags_or_sentences(spec, mode, at):
    """A step's annotation is a right-aligned tag inside its $$ block (\\tag*, text mode with
    $math$, as MathJax reads it) or, when long, a sentence ending in a colon that introduces the
    formula: never an italic line under the block, left-aligned like a stray caption."""
    md = _render(spec, "markdown", mode, at)
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line == "$$" and i + 1 < len(lines) and lines[i - 1] != "":
            assert not lines[i - 1].startswith("*"), lines[i - 1]  # a caption glued below
        assert not re.fullmatch(r"\*[^*].*\*", line), line  # no italic caption anywhere
    blocks = md.split("$$")
    for math in blocks[1::2]:
        tags = re.findall(r"\\tag\*\{(.*)\}\s*$", math.strip())
        assert math.count(r"\tag") == len(tags) <= 1, math  # one tag, at the end
        for tag in tags:
            assert "$" not in tag.replace("$", "", 2 * (tag.count("$") // 2)), tag  # paired
            assert len(re.sub(r"\$[^$]*\$", "m", tag)) <= 40, tag  # short: it fits beside
    for before, math in zip(blocks[0::2], blocks[1::2], strict=False):
        last = before.strip().splitlines()[-1] if before.strip() else ""
        if r"\tag" not in math and last.endswith(":"):
            assert last[0].isupper() or last[0] == "$", last  # a sentence


def test_markdown_tags_say_what_the_other_formats_say():
    """The same notes as the LaTeX document's tags, in the same places (Mazur's net)."""
    spec = ROOT / "examples/mazur.yaml"
    md, tex = (_render(spec, f, "scalar", True) for f in ("markdown", "latex"))
    md_tags = re.findall(r"\\tag\*\{(.*)\}\n\$\$", md)
    tex_tags = re.findall(r"\\tag\*\{\\small (.*)\}\n\\(?:\]|end)", tex)
    assert "sigmoid: solve $a = f(x)$ for it" in md_tags
    assert len(md_tags) >= 10 and set(md_tags) <= set(tex_tags), set(md_tags) - set(tex_tags)


@pytest.mark.parametrize(("spec", "mode", "at"), CASES, ids=IDS)
def test_text_shows_no_sympy_syntax(spec, mode, at):
    text = _render(spec, "text", mode, at)
    found = SYMPY_SYNTAX.search(text)
    assert found is None, text[max(0, found.start() - 80) : found.end() + 80]
    assert "$" not in text and "θ" not in text


def test_nielsen_network_is_typeset_as_the_textbook_writes_it():
    """Nielsen's chapter 2: sigmoid layers, quadratic cost (examples/mazur.yaml is one)."""
    doc = _render(ROOT / "examples/mazur.yaml", "latex", "tensor", False)
    expected = [
        r"\mathbf{z}^{(1)} = \mathbf{W}^{(1)} \mathbf{x} + b^{(1)} \mathbf{1}",
        r"\mathbf{a}^{(1)} = \frac{1}{1 + e^{- \mathbf{z}^{(1)}}} \tag*{\small sigmoid}",
        r"E = c \sum_{n} \sum_{k} \ell\left(a^{(2)}_{nk}, t_{nk}\right)",
        r"\ell(a, t) = \frac{\left(a - t\right)^{2}}{2} \tag*{\small per output element}",
        r"f(x) = \frac{1}{1 + e^{- x}} \tag*{\small sigmoid: definition}",
        r"f'(x) = a \left(1 - a\right) \tag*{\small sigmoid: substitute $a = f(x)$}",
        r"\frac{\partial \ell}{\partial a} = a - t",
        r"\boldsymbol{\delta}^{(2)} = \mathbf{a}^{(2)} \odot \left(1 - \mathbf{a}^{(2)}\right) "
        r"\odot \left(\mathbf{a}^{(2)} - \mathbf{t}\right)",
        r"\frac{\partial \ell}{\partial \mathbf{a}^{(1)}} = (\mathbf{W}^{(2)})^T "
        r"\boldsymbol{\delta}^{(2)}",
        r"\frac{\partial E}{\partial \mathbf{W}^{(2)}} = \sum_n \boldsymbol{\delta}^{(2)}_n "
        r"\left(\mathbf{a}^{(1)}_n\right)^T",
        r"p = p - \eta g \tag*{\small descend}",
    ]
    for line in expected:
        assert line in doc, line


def test_softmax_classifier_steps_are_typeset():
    """CS231n's softmax classifier: the Jacobian and the cross-entropy steps, with lse defined
    before it is used and relu' as the indicator."""
    doc = _render(ROOT / "examples/iris_softmax.yaml", "latex", "tensor", False)
    expected = [
        r"\frac{\partial a_j}{\partial z_k} = a_{j} \left(\delta_{jk} - a_{k}\right)",
        r"\delta_k = a_{k} \sum_{j=1}^{K} t_{j} - t_{k}",
        r"a^{(2)}_{i} = \frac{e^{z^{(2)}_{i}}}{\sum_j e^{z^{(2)}_{j}}}",
        r"f'(x) = \mathbb{1}\left[x > 0\right] \tag*{\small relu: differentiate; $f'(0) = 0$",
        r"\odot \mathbb{1}\left[\mathbf{z}^{(1)} > 0\right]",
    ]
    for line in expected:
        assert line in doc, line
    assert doc.index(r"\operatorname{lse} = \log") < doc.index(r"\operatorname{lse} -")


def test_momentum_and_tanh_read_in_text():
    sgd = _render(ROOT / "examples/sgd_nesterov.yaml", "text", "tensor", False)
    assert "buf = {k = 1: g; otherwise: g + buf*mu}" in sgd
    assert "the state buf starts at 0" in sgd  # the buffer defined where it appears
    xor = _render(ROOT / "examples/xor.yaml", "text", "tensor", False)
    assert "tanh(x) = a    [tanh: solve a = f(x) for it]" in xor


PDF_CASES = [(s, m) for s in EXAMPLES for m in ("tensor", "scalar") if m == "tensor" or s in SMALL]


@pytest.mark.parametrize(("spec", "mode"), PDF_CASES, ids=[f"{s.stem}-{m}" for s, m in PDF_CASES])
def test_every_example_compiles_with_pdflatex(spec, mode, tmp_path):
    """pdflatex typesets every example's worked document with no overfull box: no Unicode
    character it cannot set (a batch norm note's γ once stopped it), no double superscript (a
    transposed map's)."""
    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex not installed (CI installs it)")
    tex = tmp_path / "doc.tex"
    tex.write_text(_render(spec, "latex", mode, True))
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, re.findall(r"^!.*", run.stdout, re.M)
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Overfull" not in log, re.findall(r"Overfull.*", log)  # nothing runs off the page


def test_pdf_shows_no_underscores_or_theta(tmp_path):
    """The compiled page, read back by pdftotext: no literal underscore from a\\_j, no θ."""
    if not (shutil.which("pdflatex") and shutil.which("pdftotext")):
        pytest.skip("pdflatex/pdftotext not installed (CI installs them)")
    for name in ("iris_softmax", "xor"):
        tex = tmp_path / f"{name}.tex"
        tex.write_text(_render(ROOT / f"examples/{name}.yaml", "latex", "tensor", True))
        subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
                       cwd=tmp_path, check=True, capture_output=True, timeout=120)  # fmt: skip
        log = tex.with_suffix(".log").read_text(errors="replace")
        assert "Overfull" not in log, re.findall(r"Overfull.*", log)
        out = subprocess.run(["pdftotext", str(tex.with_suffix(".pdf")), "-"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        body = out.split("Network and notation", 1)[1]
        assert "_" not in body and "θ" not in body, name
        assert "∂ℓ" in body and "⊙" in body


def test_softmax_of_logits_is_defined_before_its_use():
    """Cross-entropy on an identity last layer: δ = p - t, with p defined in the Loss section."""
    from symbackprop.spec.load import parse_spec

    spec = {"name": "logits", "inputs": 2, "layers": [{"units": 3, "activation": "identity"}],
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1}}  # fmt: skip
    d = symbackprop.derive(parse_spec(spec))
    text = d.render("text", "tensor")
    assert text.index("p = softmax(z1)") < text.index("delta1 = p - t")
    tex = d.render("latex", "tensor")
    assert tex.index(r"p_{i} = \frac{e^{z^{(1)}_{i}}}") < tex.index(r"= \mathbf{p} - \mathbf{t}")
