"""The C target's matrix kernel (templates/c/mac_rows.c.j2) and its runtime CPU dispatch.

mac_rows(n, count, alpha, a, as, x, xs, y) adds sum_k alpha a[k as] x[k xs + 0..n) to y[0..n). The
plain build sums four rows of x a pass (a * x + y rounded twice). On x86-64 with GCC the library's
chunk functions and gemm are also compiled for AVX-512F and AVX2 (target_clones; float's kernel is
inlined there: the same text, the same numbers), and double has a second kernel (AVX2 + FMA, eight
rows a pass; built for AVX-512F too, the same bits) that the CPU picks at each call, and gemm's
four-row kernel (double with FMA: registers over all of count); ``<NAME>_NO_DISPATCH`` keeps the
plain build. Each kernel build is checked against NumPy (float64 sums of the same inputs) over sizes
that hit every remainder of its blocking: outputs n and rows count 1..9, 13, 17, 19, 33, strides
with gaps, alpha 1 and not; in float64 (1e-12) and float32; under -Wall -Wextra -Werror -pedantic
and the sanitizers. The dispatch tests show which path runs: in double the default build's numbers
are bit for bit the forced-AVX2 build's (-mavx2 -mfma), the NO_DISPATCH build's the plain one's, and
the two differ (rounded once, twice); a float32 library's default and NO_DISPATCH builds step bit
for bit alike, and only the default has the AVX2 clones. Whole float64 libraries, dispatched and
not, equal the NumPy target to 1e-12 over batch sizes 1..9, 13, 17 (the rows loop around the kernel)
for a dense net and an LSTM.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import symbackprop
from symbackprop.codegen import generate
from symbackprop.codegen.c.loader import load_c
from symbackprop.codegen.numpy import numpy_module
from symbackprop.codegen.templating import environment

CC = os.environ.get("CC", "cc")
FLAGS = ["-std=c99", "-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-Wdouble-promotion"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17, 19, 33]
pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason="no C compiler")

HARNESS = """
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef {real} real;
{kernel}
static int fill(real *v, long n)
{{
    double d;
    for (long i = 0; i < n; ++i) {{
        if (scanf("%la", &d) != 1) return 0;
        v[i] = (real)d;
    }}
    return 1;
}}

/* stdin: cases "n count as xs alpha" then count*as values of a, count*xs of x, n of y (%la);
 * stdout: y after mac_rows, one value a line (%a: exact) */
int main(void)
{{
    int n, count;
    long as, xs;
    double alpha;
    while (scanf("%d %d %ld %ld %la", &n, &count, &as, &xs, &alpha) == 5) {{
        real *a = malloc(sizeof(real) * (size_t)(count * as));
        real *x = malloc(sizeof(real) * (size_t)(count * xs));
        real *y = malloc(sizeof(real) * (size_t)n);
        if (!fill(a, count * as) || !fill(x, count * xs) || !fill(y, n)) return 2;
        mac_rows(n, count, (real)alpha, a, as, x, xs, y);
        for (long i = 0; i < n; ++i) printf("%a\\n", (double)y[i]);
        free(a);
        free(x);
        free(y);
    }}
    return 0;
}}
"""


def cases(dtype: str) -> list[tuple[int, int, int, int, float, np.ndarray, np.ndarray, np.ndarray]]:
    """(n, count, as, xs, alpha, a, x, y) over every n and count of SIZES, values exact in dtype."""
    rng = np.random.default_rng(15)
    out = []
    for n in SIZES:
        for count in SIZES:
            step_a = int(rng.integers(1, 4))  # 1: contiguous, else a column of a matrix
            xs = n + int(rng.integers(0, 3))  # rows of x with gaps
            alpha = 1.0 if (n + count) % 2 else float(rng.uniform(0.25, 2))
            a, x, y = (rng.normal(size=s).astype(dtype) for s in (count * step_a, count * xs, n))
            out.append((n, count, step_a, xs, float(np.asarray(alpha, dtype)), a, x, y))
    return out


def stdin(data) -> str:
    lines = []
    for n, count, step_a, xs, alpha, a, x, y in data:
        lines.append(f"{n} {count} {step_a} {xs} {float(alpha).hex()}")
        lines.extend(" ".join(float(v).hex() for v in arr) for arr in (a, x, y))
    return "\n".join(lines) + "\n"


def reference(data) -> np.ndarray:
    """y + alpha sum_k a_k x_k in float64 (long double would not change a float64 comparison at
    1e-12; the float32 inputs are exact in float64)."""
    out = []
    for n, count, step_a, xs, alpha, a, x, y in data:
        X = x.astype(np.float64).reshape(count, xs)[:, :n]
        A = alpha * a.astype(np.float64)[::step_a]
        out.append(y.astype(np.float64) + A @ X)
    return np.concatenate(out)


def run(tmp: Path, dtype: str, data, flags: list[str], tag: str) -> np.ndarray:
    real = "float" if dtype == "float32" else "double"
    kernel = environment().get_template("c/mac_rows.c.j2").render(real=real, NAME="T")
    source = tmp / f"{tag}_{dtype}.c"
    source.write_text(HARNESS.format(real=real, kernel=kernel))
    exe = tmp / f"{tag}_{dtype}"
    build = [CC, *FLAGS, *STRICT, *flags, "-o", str(exe), str(source), "-lm"]
    subprocess.run(build, check=True, capture_output=True, text=True)
    done = subprocess.run(
        [str(exe)], input=stdin(data), capture_output=True, text=True, check=True, timeout=120
    )
    assert not done.stderr, done.stderr
    return np.array([float.fromhex(v) for v in done.stdout.split()])


def fused_cpu() -> bool:
    """This machine runs the fused kernel (x86-64 with AVX2 and FMA, a GCC-compatible cc)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx2" in flags and "fma" in flags


def avx512_cpu() -> bool:
    """This machine runs the AVX-512F clones and double kernel (and the fused kernel)."""
    try:
        return fused_cpu() and "avx512f" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernel_equals_numpy_in_every_build(tmp_path, dtype):
    data = cases(dtype)
    want = reference(data)
    builds = {"default": [], "plain": ["-DT_NO_DISPATCH"], "sanitized": SANITIZE}
    if fused_cpu():
        builds["avx2"] = ["-mavx2", "-mfma"]  # SBP_MAC_DISPATCH 2: the AVX2 kernel only
    for tag, flags in builds.items():
        got = run(tmp_path, dtype, data, flags, tag)
        assert got.shape == want.shape
        if dtype == "float64":
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=tag)
        else:  # float32 sums of up to 33 terms: a few ulp of the largest term
            scale = np.concatenate([np.abs(a).max() * np.abs(x).max() * (c + 1) + np.abs(y)
                                    for _, c, _, _, _, a, x, y in data])  # fmt: skip
            assert np.all(np.abs(got - want) <= 1e-6 * scale), tag


@pytest.mark.skipif(not fused_cpu(), reason="the AVX2 kernel needs x86-64 with AVX2 and FMA")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dispatch_picks_the_avx2_kernel_and_the_define_the_plain_one(tmp_path, dtype):
    data = cases(dtype)
    default = run(tmp_path, dtype, data, [], "default")
    plain = run(tmp_path, dtype, data, ["-DT_NO_DISPATCH"], "plain")
    avx2 = run(tmp_path, dtype, data, ["-mavx2", "-mfma"], "avx2")  # SBP_MAC_DISPATCH 2
    plain_forced = run(tmp_path, dtype, data, ["-DSBP_MAC_DISPATCH=0"], "plain_forced")
    # the CPU picked the AVX2 kernel, or the AVX-512 one (its text: the same numbers)
    np.testing.assert_array_equal(default, avx2)
    np.testing.assert_array_equal(plain, plain_forced)  # the define kept the plain one
    if dtype == "float64":  # two paths: fused multiply-adds (rounded once) and not
        assert np.any(default != plain)
    else:  # float's AVX2 build is the library's clones: the kernel alone is the plain one
        np.testing.assert_array_equal(default, plain)


PROBE = """#include <math.h>
typedef double real;
static int hit; /* set where mac_rows calls the AVX-512 kernel */
{kernel}
int main(void)
{{
    double y[8] = {{0}}, a[2] = {{1, 2}}, x[16] = {{0}};
    mac_rows(8, 2, 1, a, 1, x, 8, y);
    return hit ? 0 : 3;
}}
"""


@pytest.mark.skipif(not avx512_cpu(), reason="the AVX-512 kernel needs a CPU with AVX-512F")
def test_double_avx512_kernel_is_picked_and_equals_the_avx2_one(tmp_path):
    """On an AVX-512F CPU the default build runs mac_rows_avx512 (forced off, by building for
    AVX2 + FMA, SBP_MAC_DISPATCH 2, the AVX2 kernel runs): both give the same bits."""
    data = cases("float64")
    src = tmp_path / "probe.c"
    kernel = environment().get_template("c/mac_rows.c.j2").render(real="double", NAME="T")
    assert "mac_rows_avx512" in kernel
    probe = kernel.replace("mac_rows_avx512(n, count", "hit = 1, mac_rows_avx512(n, count")
    src.write_text(PROBE.format(kernel=probe))
    subprocess.run(
        [CC, *FLAGS, *STRICT, "-o", str(tmp_path / "probe"), str(src), "-lm"], check=True
    )
    assert subprocess.run([str(tmp_path / "probe")], timeout=60).returncode == 0
    avx512 = run(tmp_path, "float64", data, [], "default")
    avx2 = run(tmp_path, "float64", data, ["-mavx2", "-mfma"], "avx2")
    np.testing.assert_array_equal(avx512, avx2)


def dense_spec(dtype: str) -> dict:
    return {"name": f"mac_dense_{dtype}", "inputs": 13, "dtype": dtype, "seed": 3,
            "layers": [{"units": 9, "activation": "tanh"}, {"units": 17, "activation": "relu"},
                       {"units": 5, "activation": "softmax"}],
            "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 1e-2}}  # fmt: skip


def lstm_spec(dtype: str) -> dict:
    return {"name": f"mac_lstm_{dtype}", "inputs": [4, 3], "dtype": dtype, "seed": 3,
            "layers": [{"type": "lstm", "units": 5}, {"units": 3, "activation": "softmax"}],
            "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.1}}  # fmt: skip


@pytest.mark.parametrize("make", [dense_spec, lstm_spec], ids=["dense", "lstm"])
def test_library_dispatched_and_plain_equal_numpy_over_batch_sizes(tmp_path, make):
    data = make("float64")
    d = symbackprop.derive(symbackprop.parse_spec(data))
    generate(d, "c", tmp_path / "c", force=True)
    name = data["name"].upper()
    builds = {
        "default": load_c(tmp_path / "c"),
        "plain": load_c(tmp_path / "c", [f"-D{name}_NO_DISPATCH"]),
    }
    py = numpy_module(d, tmp_path / "py")
    rng = np.random.default_rng(1)
    shape = data["inputs"] if isinstance(data["inputs"], list) else [data["inputs"]]
    outputs = data["layers"][-1]["units"]
    start = py.init_params()
    for rows in [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17]:
        X = rng.normal(size=(rows, *shape))
        T = np.eye(outputs)[rng.integers(0, outputs, rows)]
        want = {k: v.copy() for k, v in start.items()}
        ws = py.init_state(want)
        for _ in range(3):
            want_loss = py.step(want, ws, X, T)
        for tag, c in builds.items():
            got = {k: v.copy() for k, v in start.items()}
            gs = c.init_state(got)
            for _ in range(3):
                loss = c.step(got, gs, X, T)
            assert loss == pytest.approx(want_loss, rel=1e-12), (tag, rows)
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12,
                                           err_msg=f"{tag} rows {rows} {k}")  # fmt: skip


@pytest.mark.skipif(not fused_cpu(), reason="the AVX2 clones need x86-64 with AVX2")
@pytest.mark.parametrize("make", [dense_spec, lstm_spec], ids=["dense", "lstm"])
def test_float32_library_clones_step_bit_for_bit_as_the_plain_build(tmp_path, make):
    data = make("float32")
    generate(symbackprop.derive(symbackprop.parse_spec(data)), "c", tmp_path, force=True)
    name = data["name"]
    plain = [f"-D{name.upper()}_NO_DISPATCH"]
    for tag, flags in {"default": [], "plain": plain}.items():  # the clones are there, or not
        obj = tmp_path / f"{tag}.o"
        cmd = [CC, *FLAGS, *STRICT, *flags, "-c", "-o", str(obj), str(tmp_path / f"{name}.c")]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True).stdout
        for fn in ("forward_chunk", "backward_chunk", "gemm"):
            for isa in ("avx2", "avx512f"):
                assert (f" {fn}.{isa}" in symbols) == (tag == "default"), (tag, fn, isa)
    builds = {"default": load_c(tmp_path), "plain": load_c(tmp_path, plain)}
    rng = np.random.default_rng(2)
    shape = data["inputs"] if isinstance(data["inputs"], list) else [data["inputs"]]
    outputs = data["layers"][-1]["units"]
    X = rng.normal(size=(13, *shape)).astype(np.float32)
    T = np.eye(outputs, dtype=np.float32)[rng.integers(0, outputs, 13)]
    got = {}
    for tag, c in builds.items():
        p = c.init_params()
        s = c.init_state(p)
        got[tag] = ([c.step(p, s, X, T) for _ in range(5)], p)
    assert got["default"][0] == got["plain"][0]
    for k, v in got["plain"][1].items():
        np.testing.assert_array_equal(got["default"][1][k], v, err_msg=k)


HARNESS4 = """
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
typedef double real;
{kernel}
/* stdin: cases "n count ar as xs ys alpha", then the a, x and y values (%la); stdout: y after
 * mac_rows4 */
int main(void)
{{
    int n, count;
    long ar, as, xs, ys;
    double alpha;
    while (scanf("%d %d %ld %ld %ld %ld %la", &n, &count, &ar, &as, &xs, &ys, &alpha) == 7) {{
        const long sizes[3] = {{4 * count, count * xs, 4 * ys}};
        double *v[3];
        for (int b = 0; b < 3; ++b) {{
            v[b] = malloc(sizeof(double) * (size_t)sizes[b]);
            for (long i = 0; i < sizes[b]; ++i)
                if (scanf("%la", &v[b][i]) != 1) return 2;
        }}
        mac_rows4(n, count, alpha, v[0], ar, as, v[1], xs, v[2], ys);
        for (long i = 0; i < 4 * ys; ++i) printf("%a\\n", v[2][i]);
        for (int b = 0; b < 3; ++b) free(v[b]);
    }}
    return 0;
}}
"""


def test_four_row_kernel_equals_numpy_in_every_build(tmp_path):
    """mac_rows4 (gemm's four rows of C a pass in double): the AVX-512 (16 columns a block), AVX2
    (8) and plain builds each equal NumPy to 1e-12 over widths hitting every block remainder,
    with a's rows contiguous or interleaved (gemm's A and A^T), and leave y's gaps alone."""
    rng = np.random.default_rng(4)
    data, want = [], []
    for n in [1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 64]:
        for count in [1, 2, 5, 10, 32]:
            ar, as_ = (count, 1) if (n + count) % 2 else (1, 4)
            xs, ys = n + int(rng.integers(0, 3)), n + int(rng.integers(0, 3))
            alpha = 1.0 if n % 3 else float(rng.uniform(0.25, 2))
            a, x, y = (rng.normal(size=s) for s in (4 * count, count * xs, 4 * ys))
            data.append((n, count, ar, as_, xs, ys, alpha, a, x, y))
            rows = np.array([[a[r * ar + k * as_] for k in range(count)] for r in range(4)])
            out = y.reshape(4, ys).copy()
            out[:, :n] += alpha * rows @ x.reshape(count, xs)[:, :n]
            want.append(out.ravel())
    text = "".join(
        f"{n} {c} {ar} {as_} {xs} {ys} {alpha.hex()}\n"
        + "\n".join(" ".join(float(v).hex() for v in arr) for arr in (a, x, y))
        + "\n"
        for n, c, ar, as_, xs, ys, alpha, a, x, y in data
    )
    kernel = environment().get_template("c/mac_rows.c.j2").render(real="double", NAME="T")
    source = tmp_path / "rows4.c"
    source.write_text(HARNESS4.format(kernel=kernel))
    builds = {"default": [], "plain": ["-DT_NO_DISPATCH"], "sanitized": SANITIZE}
    if fused_cpu():
        builds["avx2"] = ["-mavx2", "-mfma"]  # SBP_MAC_DISPATCH 2: the AVX2 kernels only
    for tag, flags in builds.items():
        exe = tmp_path / f"rows4_{tag}"
        build = [CC, *FLAGS, *STRICT, *flags, "-o", str(exe), str(source), "-lm"]
        subprocess.run(build, check=True, capture_output=True, text=True)
        done = subprocess.run(
            [str(exe)], input=text, capture_output=True, text=True, check=True, timeout=120
        )
        got = np.array([float.fromhex(v) for v in done.stdout.split()])
        np.testing.assert_allclose(got, np.concatenate(want), rtol=1e-12, atol=1e-12, err_msg=tag)
