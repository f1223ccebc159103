"""A float32 C library needs no double arithmetic (issue 17's flash goal: a Cortex-M4's FPU is
single precision, and libgcc's soft double is kilobytes): its initial weights, loss sums and
optimizer step scalars are float (tests/test_prng_float32.py checks the weights), the sample
order's index comes from integers, and the doubles of the API (a returned loss, the history)
are made from a float's bits by ``widen``, tested here equal to the cast for every kind of
float. Linked for the M4 (``footprint --arch cortex-m4``), iris 4-8-3 with Adam pulls in none
of libgcc's double adder, multiplier or divider, and is under 4 KB at chunk 1."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import symbackprop
from symbackprop.codegen import render
from symbackprop.codegen.c import cortex_m as cm, footprint as fp
from symbackprop.codegen.c.build import compiler
from symbackprop.codegen.program import lower

ROOT = Path(__file__).resolve().parents[1]


def iris32() -> dict:
    data = yaml.safe_load((ROOT / "examples/iris_softmax.yaml").read_text())
    return {**data, "dtype": "float32"}


def test_widen_equals_the_cast(tmp_path):
    """widen(x) == (double)x bit for bit: zeros, subnormals, normals, the largest, inf, nan."""
    for name, text in render(symbackprop.parse_spec(iris32()), "c").items():
        (tmp_path / name).write_text(text)
    (tmp_path / "widen_main.c").write_text(
        '#include "iris_softmax.c"\n#include <inttypes.h>\nint main(void)\n{\n'
        "    uint32_t b;\n    float x;\n    double w, c;\n    uint64_t wb, cb;\n"
        '    while (scanf("%" SCNu32, &b) == 1) {\n        memcpy(&x, &b, 4);\n'
        "        w = widen(x);\n        c = (double)x;\n        memcpy(&wb, &w, 8);\n"
        '        memcpy(&cb, &c, 8);\n        printf("%" PRIu64 " %" PRIu64 "\\n", wb, cb);\n'
        "    }\n    return 0;\n}\n"
    )
    exe = tmp_path / "widen"
    subprocess.run([*compiler(), "-std=c99", "-I", str(tmp_path), str(tmp_path / "widen_main.c"),
                    "-o", str(exe), "-lm"], check=True)  # fmt: skip
    rng = np.random.default_rng(3)
    special = [0, 1, 2, 0x7FFFFF, 0x400000, 0x800000, 0x7F7FFFFF, 0x7F800000, 0x7FC00000,
               0x7F800001, 0x3F800000, 0x00012345]  # fmt: skip
    bits = special + [b | 0x80000000 for b in special]
    bits += [int(b) for b in rng.integers(0, 2**32, 20000, dtype=np.uint64)]
    out = subprocess.run([str(exe)], input="".join(f"{b}\n" for b in bits), capture_output=True,
                         text=True, check=True).stdout.split("\n")  # fmt: skip
    pairs = [line.split() for line in out if line]
    assert len(pairs) == len(bits)
    for b, (w, c) in zip(bits, pairs, strict=True):
        x = struct.unpack("<f", struct.pack("<I", b))[0]
        if x == x:  # the cast is IEEE's: equal to Python's widening of the float
            assert int(c) == struct.unpack("<Q", struct.pack("<d", x))[0]
        assert w == c, hex(b)


SOFT_DOUBLE = ("__aeabi_dadd", "__aeabi_dsub", "__aeabi_dmul", "__aeabi_ddiv", "__aeabi_f2d",
               "__aeabi_i2d", "__aeabi_ul2d", "__aeabi_d2iz", "__aeabi_dcmplt", "pow", "exp",
               "log", "sqrt")  # fmt: skip


@pytest.mark.skipif(shutil.which(cm.CC) is None and not os.environ.get("CI"),
                    reason="no arm-none-eabi-gcc")  # fmt: skip
@pytest.mark.parametrize("lean", [False, True])
def test_iris_float32_links_no_soft_double(tmp_path, lean):
    """The probe footprint links (init_params, init_state, train with its shuffle, forward) has
    no double arithmetic (only libgcc's double-to-float, for the double hyperparameters), and
    iris 4-8-3 Adam at chunk 1 adds under 4 KB of flash (issue 17's goal)."""
    data = iris32()
    program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
    for name, text in render(symbackprop.parse_spec(data), "c").items():
        (tmp_path / name).write_text(text)
    (tmp_path / "probe.c").write_text(fp._PROBE.format(name="iris_softmax", NAME="IRIS_SOFTMAX"))
    flags = ["-DIRIS_SOFTMAX_NO_FILES", "-DIRIS_SOFTMAX_MAX_ROWS=1", "-DIRIS_SOFTMAX_CHUNK=1"]
    flags += [f"-DIRIS_SOFTMAX_{d}" for d in fp.LEAN] if lean else []
    image = tmp_path / "probe.elf"
    cm.build_firmware([tmp_path / "probe.c", tmp_path / "iris_softmax.c"], image,
                      (f"-I{tmp_path}", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion",
                       *flags))  # fmt: skip
    out = subprocess.run(["arm-none-eabi-nm", str(image)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    names = {line.split()[-1] for line in out.split("\n") if line.strip()}
    assert not names & set(SOFT_DOUBLE), names & set(SOFT_DOUBLE)
    linked = fp.code_bytes(program, "cortex-m4", fp.LEAN if lean else (), 1)
    assert linked < 4096, linked
