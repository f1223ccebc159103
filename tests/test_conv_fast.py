"""The C target's fast convolution loops (issue 14's speed items) against the NumPy target:
the direct loops over wide rows (stride 1: forward, and ∂E/∂x as the flipped-kernel
convolution), ∂E/∂W with the output channels innermost, and `make BLAS=1`'s im2col + cblas
gemm. Each spec below sends some op down each form (groups with several output channels a
group, uneven 'same' padding with dilation, padding wider than the kernel, a 5x5 kernel,
stride with dilation, conv1d, a shared bias, no bias); loss, gradients over two workspace
chunks, outputs and steps equal the NumPy target's to 1e-12 (float64), built with -Wall -Wextra
-Werror -pedantic; the programs run clean under ASan and UBSan in both forms.

cblas is required, not optional: .ci/run installs libopenblas-dev (a test checks it says so),
and a machine without it fails these tests rather than skipping them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_c_memory import SANITIZE

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c import c_module
from symbackprop.codegen.c.build import build_program
from symbackprop.codegen.numpy import numpy_module

STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic"]


def net(name, inputs, layers, loss="cross_entropy"):
    return {"name": name, "inputs": inputs, "seed": 3, "layers": layers,
            "loss": {"type": loss}, "optimizer": {"type": "sgd", "lr": 0.05}}  # fmt: skip


SPECS = [
    net("wide_groups_pads", [4, 6, 5], [
        {"type": "conv2d", "channels": 8, "kernel": 3, "groups": 2, "padding": 1,
         "activation": "relu"},  # OPG 4: dE/dW over channels; wide forward and dE/dx
        {"type": "conv2d", "channels": 8, "kernel": [2, 3], "padding": "same",
         "dilation": [1, 2], "activation": "tanh"},  # uneven 'same' padding
        {"type": "conv2d", "channels": 4, "kernel": 2, "padding": 2},  # the flipped pad is -1
        {"type": "maxpool2d", "kernel": 2},
        {"type": "flatten"},
        {"units": 3, "activation": "softmax"}]),
    net("big_kernel_shared_bias", [2, 7, 6], [
        {"type": "conv2d", "channels": 4, "kernel": 3, "bias": "none", "activation": "relu"},
        {"type": "conv2d", "channels": 5, "kernel": 5, "padding": 2,
         "bias": {"shape": "shared"}},  # 25 taps: a loop per kernel row
        {"type": "global_avgpool"},
        {"units": 2}], "mse"),
    net("strided_and_1d", [3, 13], [
        {"type": "conv1d", "channels": 6, "kernel": 3, "padding": 1, "activation": "relu"},
        {"type": "conv1d", "channels": 4, "kernel": 2, "stride": 3, "dilation": 2,
         "padding": 1},  # rows forward, dE/dW over channels with a stride
        {"type": "flatten"},
        {"units": 3, "activation": "softmax"}]),
    net("strided_2d_depthwise", [4, 9, 8], [
        {"type": "conv2d", "channels": 4, "kernel": 3, "stride": [2, 1], "padding": 1,
         "activation": "relu"},
        {"type": "conv2d", "channels": 4, "kernel": 3, "groups": 4, "padding": "same"},
        {"type": "avgpool2d", "kernel": 2},
        {"type": "flatten"},
        {"units": 2}], "mse"),
]  # fmt: skip
IDS = [s["name"] for s in SPECS]
FORMS = {"direct": False, "blas": True}


def data(spec: dict, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *spec["inputs"]))
    k = spec["layers"][-1]["units"]
    if spec["loss"]["type"] == "cross_entropy":
        return X, np.eye(k)[rng.integers(0, k, n)]
    return X, rng.normal(size=(n, k))


def close(a, b, rtol=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(1.0, float(np.abs(b).max()))
    assert np.allclose(a, b, rtol=rtol, atol=rtol * scale), float(np.abs(a - b).max())


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_c_forms_equal_numpy(spec, form, tmp_path):
    """Loss and every gradient over 300 rows (two chunks of 256), the outputs, and 6 steps of
    batches of varying size: the C forms equal the NumPy target to 1e-12."""
    c = c_module(symbackprop.derive(spec), tmp_path / "c", cflags=STRICT, blas=FORMS[form])
    m = numpy_module(symbackprop.derive(spec), tmp_path / "np")
    pc, pn = c.init_params(), m.init_params()
    X, T = data(spec, 300)
    E_c, g_c = c.loss_and_grad(pc, X, T)
    E_n, g_n = m.loss_and_grad(pn, X, T)
    close(E_c, E_n)
    assert set(g_c) == set(g_n)
    for name in g_n:
        close(g_c[name], g_n[name])
    close(c.forward(pc, X), m.forward(pn, X))
    sc, sn = c.init_state(pc), m.init_state(pn)
    for k in range(6):
        rows = slice(13 * k, 13 * k + 1 + 31 * k)
        close(c.step(pc, sc, X[rows], T[rows]), m.step(pn, sn, X[rows], T[rows]))
    for name in pn:
        close(pc[name], pn[name])


def test_direct_and_blas_float32_agree(tmp_path):
    """float32: the two C forms' gradients agree to 1e-5 relative (different sums, same net)."""
    spec = {**SPECS[0], "name": "wide_f32", "dtype": "float32"}
    d = symbackprop.derive(spec)
    direct = c_module(d, tmp_path / "d")
    blas = c_module(d, tmp_path / "b", blas=True)
    X, T = data(spec, 40)
    X, T = X.astype(np.float32), T.astype(np.float32)
    p = direct.init_params()
    (E_d, g_d), (E_b, g_b) = direct.loss_and_grad(p, X, T), blas.loss_and_grad(p, X, T)
    close(E_d, E_b, 1e-5)
    for name in g_d:
        close(g_d[name], g_b[name], 1e-5)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_c_forms_sanitizer_clean(spec, form, tmp_path):
    """The program trains and predicts under AddressSanitizer and UBSan (every buffer read of
    the wide rows, the padded copies and im2col stays inside the workspace)."""
    for name, text in render(symbackprop.derive(spec), "c").items():
        (tmp_path / name).write_text(text)
    program = build_program(tmp_path, SANITIZE, blas=FORMS[form])
    X, T = data(spec, 11)
    labels = T.argmax(axis=1)[:, None] if spec["loss"]["type"] == "cross_entropy" else T
    good = tmp_path / "good.csv"
    np.savetxt(good, np.hstack([X.reshape(11, -1), labels]), delimiter=",", fmt="%.17g")
    weights = tmp_path / "w.txt"
    for cmd in (["train", good, "--epochs", "2", "--batch-size", "4", "--out", weights],
                ["predict", weights, good]):  # fmt: skip
        out = subprocess.run([str(a) for a in (program, *cmd)], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)  # fmt: skip
        assert out.returncode == 0 and "Sanitizer" not in out.stderr, out.stderr
    assert len(out.stdout.splitlines()) == 11


def test_ci_installs_cblas():
    """The BLAS tests need cblas.h and libopenblas: CI's setup checks for them and installs
    libopenblas-dev."""
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "cblas.h" in ci and "libopenblas-dev" in ci
