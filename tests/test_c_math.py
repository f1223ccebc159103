"""The C target's own exp, log, tanh, sigmoid and erf (templates/c/sbp_math.c.j2), float and double:
within 2 ulp of the exact value on millions of points (tests/c_math/check.c against a more
precise libm: long double for double, double for float), on a sample of them against mpmath,
and at the extremes (±0, ±inf, NaN, subnormals, the overflow and underflow thresholds) as
libm; they build under -Wall -Wextra -Werror -pedantic -Wdouble-promotion, gcc -O3 vectorizes
loops calling them, and the printer and templates call them.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import mpmath
import numpy as np
import pytest

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c import sbp_math
from symbackprop.codegen.templating import environment

ROOT = Path(__file__).resolve().parents[1]
CC = os.environ.get("CC", "cc")
FLAGS = ["-std=c99", "-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-Wdouble-promotion"]
ALL = [f"sbp_{n}{f}" for n in sbp_math.FUNCTIONS for f in ("", "f")]
POINTS = 1_000_000  # random points a function (and about 45 special ones)
# the functions in check.c's order; the float ones
ORDER = ["exp", "log", "tanh", "sigmoid", "erf", "expf", "logf", "tanhf", "sigmoidf", "erff"]
SINGLE = set(ORDER[5:])
pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason="no C compiler")


def header(tmp: Path) -> Path:
    """sbp_math.h: the template rendered with every function, and the headers it needs."""
    text = environment().get_template("c/sbp_math.c.j2").render(sbp=ALL)
    path = tmp / "sbp_math.h"
    path.write_text("#include <math.h>\n#include <stdint.h>\n#include <string.h>\n" + text)
    return path


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """check.c's report {name: (max ulp, its argument, bad specials)} and its sample file."""
    tmp = tmp_path_factory.mktemp("c_math")
    header(tmp)
    exe = tmp / "check"
    cmd = [CC, *FLAGS, *STRICT, f"-I{tmp}", "-o", str(exe), str(ROOT / "tests/c_math/check.c")]
    subprocess.run([*cmd, "-lm"], check=True, capture_output=True, text=True)
    run = subprocess.run(
        [str(exe), str(POINTS), "15", str(tmp / "sample.bin")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and not run.stderr, run.stderr
    report = {}
    for line in run.stdout.splitlines():
        name, worst, at, bad = line.split()
        report[name] = (float(worst), float.fromhex(at), int(bad))
    return report, np.fromfile(tmp / "sample.bin", dtype=np.float64).reshape(len(ORDER), -1, 2)


@pytest.mark.parametrize("name", ORDER)
def test_within_two_ulp_on_a_million_points_and_the_extremes(checked, name):
    worst, at, bad = checked[0][name]
    assert bad == 0, f"{name}: {bad} special points wrong (see check.c's stderr)"
    assert worst <= 2.0, f"{name}: {worst} ulp at {at!r}"


def _exact(name: str, x: float):
    """The exact value (mpmath, 120 bits), or None where it is NaN (x NaN, log of x < 0)."""
    if math.isnan(x) or (name.startswith("log") and x < 0):
        return None
    v = mpmath.mpf(x)
    base = name[:-1] if name in SINGLE else name
    if base == "exp":
        return mpmath.exp(v)
    if base == "log":
        return mpmath.log(v) if x != 0 else -mpmath.inf
    if base == "tanh":
        return mpmath.tanh(v)
    if base == "erf":
        return mpmath.erf(v)
    return 1 / (1 + mpmath.exp(-v))


def _ulps(y: float, exact, single: bool) -> float:
    """|y - exact| in units in the last place of float or double at the exact value."""
    bits, emin = (24, -126) if single else (53, -1022)
    top = mpmath.mpf(2) ** (128 if single else 1024)
    if mpmath.isinf(exact) or abs(exact) >= top * (1 - 2.0 ** (-bits - 1)):  # rounds to inf
        return 0.0 if math.isinf(y) and (y > 0) == (exact > 0) else math.inf
    if math.isinf(y) or math.isnan(y):
        return math.inf
    e = max(int(mpmath.floor(mpmath.log(abs(exact), 2))) if exact else emin, emin)
    return float(abs(mpmath.mpf(y) - exact) / mpmath.mpf(2) ** (e + 1 - bits))


@pytest.mark.parametrize("k", range(len(ORDER)), ids=ORDER)
def test_a_sample_against_mpmath(checked, k):
    """2000 of the random points (random bit patterns, the interesting range, tiny and huge
    magnitudes) of each function against mpmath's value at 120 bits."""
    name, sample = ORDER[k], checked[1][k][:2000]
    single = name in SINGLE
    worst = 0.0
    with mpmath.workprec(120):
        for x, y in sample:
            exact = _exact(name, float(x))
            if exact is None:
                assert math.isnan(y), (name, x, y)
                continue
            err = _ulps(float(y), exact, single)
            assert err <= 2.0, (name, float(x).hex(), float(y).hex(), err)
            worst = max(worst, err)
    assert worst > 0.1  # the sample reached the polynomials, not only the extremes


def test_loops_calling_them_vectorize(tmp_path):
    """gcc -O3 (the C target's flags) vectorizes a loop over each function."""
    version = subprocess.run([CC, "--version"], capture_output=True, text=True).stdout
    if "gcc" not in version.lower() and "free software foundation" not in version.lower():
        pytest.skip("the vectorizer report is gcc's")
    header(tmp_path)
    loops = [
        f"void loop_{fn}({t} *restrict y, const {t} *restrict x, long n)\n"
        f"{{ for (long i = 0; i < n; ++i) y[i] = {fn}(x[i]); }}\n"
        for fn in ALL
        for t in ["float" if fn[4:] in SINGLE else "double"]
    ]
    src = tmp_path / "loops.c"
    src.write_text('#include "sbp_math.h"\n' + "".join(loops))
    run = subprocess.run(
        [CC, *FLAGS, *STRICT, "-fopt-info-vec-optimized", "-c", "-o", os.devnull, str(src)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = {int(ln.split(":")[1]) for ln in run.stderr.splitlines() if "loop vectorized" in ln}
    assert lines == set(range(3, 3 + 2 * len(ALL), 2)), run.stderr


def test_printed_and_emitted_only_where_called():
    """tanh and sigmoid layers call sbp_tanh and sbp_sigmoid (float: sbp_tanhf, ...), the
    softmax and the loss's log-sum-exp sbp_exp and sbp_log; a file defines exactly those and
    what they call, and calls no libm exp, log or tanh."""

    def files(dtype: str, activation: str) -> dict:
        spec = {
            "name": "net",
            "inputs": 3,
            "dtype": dtype,
            "layers": [
                {"units": 4, "activation": activation},
                {"units": 2, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
            "optimizer": "sgd",
        }
        return render(symbackprop.parse_spec(spec), "c")

    for dtype, f in (("float64", ""), ("float32", "f")):
        source = files(dtype, "tanh")["net.c"]
        real = "float" if f else "double"
        defined = {n for n in ALL if f"static inline {real} {n}(" in source}
        assert defined == {f"sbp_exp{f}", f"sbp_log{f}", f"sbp_tanh{f}"}
        assert f"sbp_tanh{f}(" in source.split("forward and backward over chunks")[1]
        code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
        for libm in ("exp", "log", "tanh"):
            assert not re.search(rf"\b{libm}{f}\(", code), libm
        relu = files(dtype, "relu")["net.c"]
        assert f"sbp_tanh{f}" not in relu and f"sbp_exp{f}(" in relu
        sigmoid = files(dtype, "sigmoid")["net.c"]
        assert f"sbp_sigmoid{f}(" in sigmoid.split("forward and backward over chunks")[1]


def test_sigmoid_pattern_and_softplus():
    import sympy as sp

    from symbackprop.printing.c import CCodePrinter

    z = sp.Symbol("z")
    assert CCodePrinter().doprint(1 / (1 + sp.exp(-z))) == "sbp_sigmoid(z)"
    assert CCodePrinter("float32").doprint(z / (1 + sp.exp(-z))) == "z*sbp_sigmoidf(z)"
    assert CCodePrinter().doprint(1 / (1 + sp.exp(z))) == "sbp_sigmoid(-z)"
    assert CCodePrinter().doprint(sp.log(1 + sp.exp(z))) == (
        "(fmax(z, 0) + log1p(sbp_exp(-fabs(z))))"
    )
