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
