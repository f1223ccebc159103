"""`symbackprop demo`: Mazur's published numbers, iris trained, and the C target equal to NumPy."""

from __future__ import annotations

import re

from symbackprop.cli import main


def test_demo(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "E  =  0.298371109" in out  # Mazur's total error before the step
    assert "w2_11+ = w2_11 - eta*dE/dw2_11  =  0.35891648" in out  # Mazur's w5+
    accuracy = float(re.search(r"loss [\d.]+ -> [\d.]+, training accuracy ([\d.]+)%", out)[1])
    assert accuracy >= 95.0
    c_line = re.search(r"accuracy ([\d.]+)%, .* within (\S+) relative", out)
    assert float(c_line[1]) == accuracy and float(c_line[2]) <= 1e-12, out
    names = {p.name for p in (tmp_path / "d").iterdir()}
    assert {"iris_softmax.py", "iris_softmax.c", "iris_softmax.h", "Makefile"} <= names
    assert main(["demo", "-o", str(tmp_path / "d")]) == 0  # its own files are rewritten


def test_demo_without_a_compiler(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    monkeypatch.setenv("SYMBACKPROP_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "-o", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "skipped: " in out and "no C compiler found" in out
    assert re.search(r"training accuracy ([\d.]+)%", out)
