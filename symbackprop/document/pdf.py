"""Compile a derivation's LaTeX document with pdflatex (reproducibly: fixed dates)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..codegen.files import write_atomic
from ..spec.errors import SpecError

INSTALL_HINT = (
    "needs pdflatex, which is not installed: install TeX Live "
    "(Debian/Ubuntu: apt-get install texlive-latex-base texlive-latex-recommended; "
    "macOS: brew install --cask mactex-no-gui)"
)


def check_pdflatex() -> str:
    """The pdflatex executable, or a SpecError saying how to install it."""
    exe = shutil.which("pdflatex")
    if exe is None:
        raise SpecError("--pdf", INSTALL_HINT)
    return exe


def compile_pdf(tex: str, target: Path) -> None:
    """Compile ``tex`` in a temporary folder and write the PDF to ``target`` (atomically, or in
    place for a device: see codegen.files.write_atomic)."""
    exe = check_pdflatex()
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
    with tempfile.TemporaryDirectory(prefix="symbackprop-tex-") as tmp:
        (Path(tmp) / "doc.tex").write_text(tex, encoding="utf-8")
        run = subprocess.run(
            [exe, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=tmp, capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        if run.returncode != 0:
            log = (Path(tmp) / "doc.log").read_text(errors="replace")
            first = next((ln for ln in log.splitlines() if ln.startswith("!")), "unknown error")
            raise SpecError("--pdf", f"pdflatex failed: {first}")
        write_atomic(target, (Path(tmp) / "doc.pdf").read_bytes(), "--pdf")
