"""The float32 path of the portable PRNG (core/prng.py's docstring): a float32 spec's initial
weights are computed in float32 throughout, so a device with a single-precision FPU needs no
soft double. Checked against a scalar transcription of the docstring in which every float32
operation is a float64 one rounded to float32 by ``struct`` (exact for + - * / and sqrt: float64
has more than twice float32's bits), and the NumPy, C and PyTorch targets bit for bit."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c.loader import load_c
from symbackprop.codegen.numpy.loader import load_numpy
from symbackprop.codegen.torch import runtime as torch_runtime
from symbackprop.core import prng

COMMON = {"seed": 11, "k": 2, "fan_in": 100, "fan_out": 50}
EXTRA = {"low": -0.3, "high": 0.7, "std": 0.2, "gain": 1.5}
RANDOM = ["uniform", "xavier_uniform", "he_uniform", "pytorch", "normal", "xavier_normal",
          "he_normal"]  # fmt: skip


def r32(x: float) -> float:
    """x rounded to the nearest float32."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def u32(key: int, i: int) -> float:
    return float(prng.mix64(key + (i + 1) * prng.GAMMA) >> 40) * 2.0**-24


def plog32(s: float) -> float:
    m, k = s, 0
    while m < 1.0:
        m, k = r32(m * 2.0), k - 1
    if m > r32(math.sqrt(2.0)):
        m, k = r32(m / 2.0), k + 1
    f = r32(r32(m - 1.0) / r32(m + 1.0))
    f2 = r32(f * f)
    p = r32(1.0 / 13.0)
    for d in (11, 9, 7, 5, 3):
        p = r32(r32(1.0 / d) + r32(f2 * p))
    p = r32(1.0 + r32(f2 * p))
    return r32(r32(float(k) * r32(math.log(2.0))) + r32(r32(2.0 * f) * p))


def normal32(key: int, j: int, n: int) -> float:
    r = 0
    while True:
        c = 2 * (j + r * n)
        a, b = r32(2.0 * u32(key, c) - 1.0), r32(2.0 * u32(key, c + 1) - 1.0)
        s = r32(r32(a * a) + r32(b * b))
        if 0.0 < s < 1.0:
            return r32(a * r32(math.sqrt(r32(r32(-2.0 * plog32(s)) / s))))
        r += 1


def reference(scheme: str, n: int) -> np.ndarray:
    kind, a, b = prng.distribution(scheme, COMMON["fan_in"], COMMON["fan_out"], **EXTRA)
    key = prng.stream_key(COMMON["seed"], COMMON["k"])
    a, b = r32(a), r32(b)
    if kind == "normal":
        values = [r32(a * normal32(key, j, n)) for j in range(n)]
    else:
        values = [r32(a + r32(r32(b - a) * u32(key, j))) for j in range(n)]
    return np.array(values, dtype=np.float32)


@pytest.mark.parametrize("scheme", RANDOM)
def test_float32_path_equals_the_docstring(scheme):
    w = prng.init_tensor(scheme, (40, 25), **COMMON, **EXTRA, dtype="float32")
    assert w.dtype == np.float32
    assert np.array_equal(w.ravel().view(np.uint32), reference(scheme, 1000).view(np.uint32))


@pytest.mark.parametrize("scheme", RANDOM)
def test_torch_runtime_draws_the_same_float32_bits(scheme):
    want = prng.init_tensor(scheme, (300, 7), **COMMON, **EXTRA, dtype="float32")
    got = torch_runtime.init_tensor(scheme, (300, 7), **COMMON, **EXTRA, dtype=torch.float32)
    assert got.dtype == torch.float32
    assert np.array_equal(got.numpy().view(np.uint32), want.view(np.uint32))


def test_float32_statistics():
    """Still the distributions: bounds, mean and spread of 60,000 draws."""
    u = prng.init_tensor("uniform", (60000,), **COMMON, **EXTRA, dtype="float32")
    assert u.min() >= np.float32(-0.3) and u.max() < np.float32(0.7)
    assert abs(u.mean() - 0.2) < 0.01 and abs(u.std() - 1 / math.sqrt(12)) < 0.01
    z = prng.init_tensor("normal", (60000,), **COMMON, **EXTRA, dtype="float32")
    assert abs(z.mean()) < 0.01 * 0.2 * 3 and abs(z.std() / 0.2 - 1) < 0.02


def test_plog32_accuracy():
    s = np.linspace(1e-6, 1 - 1e-6, 20001).astype(np.float32)
    err = np.abs(prng.plog32(s) - np.log(s.astype(np.float64))) / np.abs(np.log(s))
    assert err[np.abs(np.log(s)) > 1e-3].max() < 1e-6


INITS = [
    [{"init": "he_uniform"}, {"init": "xavier_normal", "gain": 1.3}],
    [{"init": "normal", "std": 0.3}, {"init": "uniform", "low": -0.2, "high": 0.5}],
    [{"init": "he_normal"}, {"init": "pytorch"}],
]


@pytest.mark.parametrize("inits", INITS)
def test_targets_draw_the_same_float32_weights(tmp_path, inits):
    """init_params of the NumPy, C and PyTorch targets of a float32 spec: the same bits, and the
    scalar reference's."""
    spec = {"name": "f32init", "dtype": "float32", "inputs": 5, "seed": 9,
            "layers": [{"units": 6, "activation": "tanh", "weight": inits[0]},
                       {"units": 3, "activation": "identity", "weight": inits[1],
                        "bias": {"init": "normal", "std": 0.1}}],
            "loss": {"type": "mse"}, "optimizer": {"type": "sgd", "lr": 0.1}}  # fmt: skip
    d = symbackprop.derive(symbackprop.parse_spec(spec))
    for target in ("numpy", "c", "torch"):
        for name, text in render(d, target).items():
            (tmp_path / name).write_text(text)
    modules = {"numpy": load_numpy(tmp_path / "f32init.py"), "c": load_c(tmp_path),
               "torch": load_numpy(tmp_path / "f32init_torch.py")}  # fmt: skip
    want = {k: np.asarray(v, np.float32) for k, v in modules["numpy"].init_params().items()}
    for target, module in modules.items():
        got = module.init_params()
        for k in want:
            value = got[k].detach().numpy() if isinstance(got[k], torch.Tensor) else got[k]
            assert value.dtype == np.float32, (target, k)
            assert np.array_equal(value.view(np.uint32), want[k].view(np.uint32)), (target, k)
    for k, (scheme, extra) in {"W1": (inits[0]["init"], inits[0]),
                               "W2": (inits[1]["init"], inits[1])}.items():  # fmt: skip
        shape = want[k].shape
        kind, a, b = prng.distribution(scheme, shape[1], shape[0], extra.get("low", -1.0),
                                       extra.get("high", 1.0), extra.get("std", 1.0),
                                       extra.get("gain", 1.0))  # fmt: skip
        key = prng.stream_key(9, 0 if k == "W1" else 2)
        a, b = r32(a), r32(b)
        n = math.prod(shape)
        ref = [r32(a * normal32(key, j, n)) if kind == "normal"
               else r32(a + r32(r32(b - a) * u32(key, j))) for j in range(n)]  # fmt: skip
        assert np.array_equal(want[k].ravel(), np.array(ref, np.float32)), k


def _pick_cases() -> list[tuple[int, int]]:
    """(h, i) with h (i + 1) just below a multiple of 2^53 (where the double product may round
    up to it), and random ones."""
    rnd = np.random.default_rng(5)
    cases = []
    for m in (2, 3, 5, 7, 10, 100, 127, 1003, 65537, 1000003, 2**31 - 1):
        for k in rnd.integers(1, m, size=60) if m > 2 else [1]:
            base = (int(k) * 2**53 - 1) // m
            cases += [(h, m - 1) for h in (base - 1, base, base + 1) if 0 <= h < 2**53]
    cases += [
        (int(h), int(i))
        for h, i in zip(
            rnd.integers(0, 2**53, 3000, dtype=np.int64), rnd.integers(1, 2**31, 3000), strict=True
        )
    ]
    return cases


def test_float32_shuffle_pick_equals_the_double_product(tmp_path):
    """A float32 library's sample order takes j = floor(u (i + 1)) from integers (no soft
    double): equal to the double product's (Python floats) on cases where it rounds up."""
    import subprocess

    from symbackprop.codegen.c.build import compiler

    spec = {"name": "pk", "dtype": "float32", "inputs": 2, "layers": [{"units": 1}],
            "loss": {"type": "mse"}, "optimizer": {"type": "sgd", "lr": 0.1}}  # fmt: skip
    for name, text in render(symbackprop.derive(symbackprop.parse_spec(spec)), "c").items():
        (tmp_path / name).write_text(text)
    (tmp_path / "pick_main.c").write_text(
        '#include "pk.c"\n#include <inttypes.h>\nint main(void)\n{\n    uint64_t h;\n    long i;\n'
        '    while (scanf("%" SCNu64 " %ld", &h, &i) == 2) printf("%ld\\n", pick(h, i));\n'
        "    return 0;\n}\n"
    )
    exe = tmp_path / "pick"
    subprocess.run([*compiler(), "-std=c99", "-ffp-contract=off", "-I", str(tmp_path),
                    str(tmp_path / "pick_main.c"), "-o", str(exe), "-lm"], check=True)  # fmt: skip
    cases = _pick_cases()
    stdin = "".join(f"{h} {i}\n" for h, i in cases)
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
    got = [int(v) for v in out.stdout.split()]
    want = [int((h * 2.0**-53) * float(i + 1)) for h, i in cases]
    assert got == want
    assert sum(w != (h * (i + 1)) >> 53 for w, (h, i) in zip(want, cases, strict=True)) > 50


def test_float32_permutation_equals_numpy(tmp_path):
    """train with shuffle in C (float32) visits the samples in prng.permutation's order: one
    epoch of batches of one row, SGD, equals the NumPy module's."""
    spec = {"name": "pm", "dtype": "float32", "inputs": 3, "seed": 4,
            "layers": [{"units": 2, "activation": "identity"}],
            "loss": {"type": "mse"}, "optimizer": {"type": "sgd", "lr": 0.1}}  # fmt: skip
    d = symbackprop.derive(symbackprop.parse_spec(spec))
    for target in ("numpy", "c"):
        for name, text in render(d, target).items():
            (tmp_path / name).write_text(text)
    c, n = load_c(tmp_path), load_numpy(tmp_path / "pm.py")
    rng = np.random.default_rng(0)
    X, T = rng.normal(size=(257, 3)), rng.normal(size=(257, 2))
    pc, pn = c.init_params(), n.init_params()
    hc = c.train(pc, X, T, epochs=2, batch_size=1, shuffle=True, seed=123)
    hn = n.train(pn, X, T, epochs=2, batch_size=1, shuffle=True, seed=123)
    np.testing.assert_allclose(hc, hn, rtol=1e-5)
    for k in pn:
        np.testing.assert_allclose(pc[k], pn[k], rtol=1e-5, atol=1e-6)
