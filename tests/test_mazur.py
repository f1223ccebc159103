"""Mazur's "A Step by Step Backpropagation Example": the published step-1 numbers, 9 digits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# From the post (forward pass, total error, backward pass, updated weights).
PUBLISHED = {
    "E": 0.298371109,
    "out_h1": 0.593269992,
    "out_h2": 0.596884378,
    "out_o1": 0.75136507,
    "out_o2": 0.772928465,
    "dE/dw5": 0.082167041,
    "dE/dw1": 0.000438568,
    "w5+": 0.35891648,
    "w6+": 0.408666186,
    "w7+": 0.511301270,
    "w8+": 0.561370121,
    "w1+": 0.149780716,
    "w2+": 0.19956143,
    "w3+": 0.24975114,
    "w4+": 0.29950229,
}


@pytest.fixture(scope="module")
def result() -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "symbackprop.cli",
            "derive",
            str(ROOT / "examples/mazur.yaml"),
            "--at",
            str(ROOT / "examples/mazur_sample.yaml"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def close(ours: float, published: float) -> bool:
    """Equal to the published figure to the digits it was published with."""
    decimals = len(repr(published).split(".")[1])
    return abs(ours - published) <= 0.5 * 10**-decimals + 1e-15


def test_step_one_numbers(result):
    f, g, u = result["forward"], result["gradients"], result["updated"]
    ours = {
        "E": result["loss"],
        "out_h1": f["a1"][0],
        "out_h2": f["a1"][1],
        "out_o1": f["a2"][0],
        "out_o2": f["a2"][1],
        "dE/dw5": g["W2"][0][0],
        "dE/dw1": g["W1"][0][0],
        "w5+": u["W2"][0][0],
        "w6+": u["W2"][0][1],
        "w7+": u["W2"][1][0],
        "w8+": u["W2"][1][1],
        "w1+": u["W1"][0][0],
        "w2+": u["W1"][0][1],
        "w3+": u["W1"][1][0],
        "w4+": u["W1"][1][1],
    }
    for key, published in PUBLISHED.items():
        assert close(ours[key], published), (key, ours[key], published)


def test_json_shape(result):
    # Gradients only for trainable parameters (the biases are frozen); a shared bias is a number;
    # `initial` (the sample and the starting parameters, issue 13) comes first.
    assert set(result["gradients"]) == {"W1", "W2"}
    assert result["updated"]["b1"] == 0.35 and result["updated"]["b2"] == 0.6
    assert set(result) == {"initial", "loss", "forward", "gradients", "updated"}


def test_scalar_text_shows_mazur_product():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "symbackprop.cli",
            "derive",
            str(ROOT / "examples/mazur.yaml"),
            "--at",
            str(ROOT / "examples/mazur_sample.yaml"),
            "--mode",
            "scalar",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # dE/dw5 = dE/dout_o1 * dout_o1/dnet_o1 * dnet_o1/dw5, with the post's three numbers.
    assert "dE/dw2_11 = dE/da2_1 * da2_1/dz2_1 * dz2_1/dw2_11" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("dE/dw2_11 ="))
    numbers, product = line.split("  =  ")[1].split(" = ")
    assert numbers == "0.74136507 × 0.186815602 × 0.593269992"
    assert close(float(product), PUBLISHED["dE/dw5"])
    assert "w2_11+ = w2_11 - eta*dE/dw2_11  =  0.35891648" in out
