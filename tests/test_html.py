"""derive --format html (issue 13, item 4): one self-contained page whose MathML a browser
renders. The rendering test opens the page in headless Chromium (Debian's ``chromium``, which
.ci/run installs) and measures it: a fraction's numerator sits above its denominator and the
formula is taller than a line of text, which holds only if the browser laid out the MathML."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import symbackprop
from symbackprop.cli import main
from symbackprop.spec.samples import load_samples

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if "sample" not in p.name)

# Appended to a copy of the page only (the page itself has no script): measures the first
# fraction and a line of prose, and writes the numbers into the DOM that --dump-dom prints.
_PROBE = """<script>
window.addEventListener("load", () => {
  const frac = document.querySelector("mfrac");
  const [num, den] = frac.children;
  const r = (e) => e.getBoundingClientRect();
  const line = parseFloat(getComputedStyle(document.querySelector("p")).lineHeight);
  const out = {num_bottom: r(num).bottom, den_top: r(den).top, frac: r(frac).height,
               math: r(frac.closest("math")).height, line: line,
               maths: document.querySelectorAll("math").length};
  document.body.setAttribute("data-probe", JSON.stringify(out));
});
</script>"""


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run must install it")
        pytest.skip("chromium not installed (CI installs it)")
    return exe


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_page_is_self_contained_mathml(spec):
    d = symbackprop.derive(spec)
    sample = next(p for p in (spec.with_name(spec.stem + s) for s in ("_sample.yaml",
                  "_samples.yaml")) if p.exists())  # fmt: skip
    page = d.render("html", "auto", d.at(load_samples(sample, d.spec)))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and not re.search(r"(src|href)=", page)  # nothing to fetch
    assert "$" not in page  # every piece of $math$ became MathML
    for title in ("Network and notation", "Starting point", "Forward pass", "Loss",
                  "Backward pass", "Worked example"):  # fmt: skip
        assert f"<h2>{title}" in page, title
    assert page.count("<math") > 20 and "<mfrac>" in page


def test_browser_renders_the_mathematics(tmp_path):
    exe = _chromium()
    page = tmp_path / "mazur.html"
    spec, sample = ROOT / "examples/mazur.yaml", ROOT / "examples/mazur_sample.yaml"
    assert (
        main(["derive", str(spec), "--at", str(sample), "--format", "html", "-o", str(page)]) == 0
    )
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    run = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'data-probe="([^"]*)"', run.stdout)
    assert found, run.stderr[-2000:]
    m = json.loads(found.group(1).replace("&quot;", '"'))
    assert m["maths"] > 20
    assert m["num_bottom"] <= m["den_top"] + 1, m  # stacked: a laid-out fraction
    assert m["frac"] > 1.3 * m["line"] and m["math"] >= m["frac"], m  # taller than a line


def test_readme_page_is_current():
    """docs/mazur.html (the README's screenshot is of it) is what `make docs` writes."""
    d = symbackprop.derive(ROOT / "examples/mazur.yaml")
    page = d.render("html", "auto", d.at(load_samples(ROOT / "examples/mazur_sample.yaml", d.spec)))
    assert (ROOT / "docs/mazur.html").read_text() == page, "docs/mazur.html is stale: make docs"


# Every displayed formula: the horizontal extent of its laid-out content (the union of the
# <math> element's children) against its row's, and its note's box.
_LAYOUT_PROBE = """<script>
window.addEventListener("load", () => {
  const rows = [...document.querySelectorAll(".eq")].map((eq) => {
    const box = (e) => e.getBoundingClientRect();
    const formula = eq.querySelector(".formula"), math = formula.querySelector("math");
    const parts = [...math.children].map(box);
    const note = eq.querySelector(".note");
    return {row: [box(eq).left, box(eq).right],
            math: [Math.min(...parts.map((r) => r.left)), Math.max(...parts.map((r) => r.right)),
                   Math.max(...parts.map((r) => r.bottom))],
            overflows: formula.scrollWidth > formula.clientWidth + 1,
            beside: eq.classList.contains("beside"),
            note: note ? [box(note).left, box(note).right, box(note).top] : null};
  });
  document.body.setAttribute("data-probe", JSON.stringify(rows));
});
</script>"""


@pytest.mark.parametrize(
    ("name", "mode"), [("mazur", "scalar"), ("digits_cnn", "tensor"), ("sine_rnn", "tensor")]
)
def test_noted_formulas_are_centred_on_the_page(tmp_path, name, mode):
    """A formula is centred on the page whether or not it has a note, as a textbook's display:
    the note sits right-aligned beside it without pushing it off centre, or below it when the
    two do not fit on one line (as amsmath moves a tag), and never overlaps it."""
    exe = _chromium()
    d = symbackprop.derive(ROOT / f"examples/{name}.yaml")
    page = d.render("html", mode, d.at(load_samples(ROOT / f"examples/{name}_sample.yaml", d.spec)))
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _LAYOUT_PROBE + "</body>"))
    run = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'data-probe="([^"]*)"', run.stdout)
    assert found, run.stderr[-2000:]
    rows = json.loads(found.group(1).replace("&quot;", '"'))
    noted = [r for r in rows if r["note"]]
    assert len(noted) >= 3 and any(r["beside"] for r in noted), len(noted)
    for r in rows:
        if r["overflows"]:  # a formula wider than the page scrolls; it has no centre to keep
            continue
        (left, right), (m_left, m_right, m_bottom) = r["row"], r["math"]
        assert abs((m_left + m_right) / 2 - (left + right) / 2) <= 2, r  # centred on the page
        if r["note"] and r["beside"]:
            assert r["note"][0] >= m_right and abs(r["note"][1] - right) <= 1, r  # beside it
        elif r["note"]:
            assert r["note"][2] >= m_bottom - 1, r  # below it
