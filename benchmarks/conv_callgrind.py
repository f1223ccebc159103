"""Instructions per SGD step of the generated C for bench_conv.py's nets, counted by callgrind
(valgrind): exact and repeatable on a shared machine, where times are not. Each net's C is
built with the loader's flags (build.BASE_FLAGS), with its direct loops and with -D NAME_BLAS
(cblas), into a small program that takes `steps` steps on one batch; only the step function's
instructions are counted (--toggle-collect), cblas's included, and divided by the steps.

Run: python benchmarks/conv_callgrind.py [--steps 3] [--nets digits,cifar_small]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_conv import NETS, spec  # noqa: E402

import symbackprop  # noqa: E402
from symbackprop.codegen.c.build import BASE_FLAGS  # noqa: E402

HARNESS = r"""
#include "NAME.h"
#include <stdlib.h>
int main(int argc, char **argv)
{
    const long steps = atol(argv[1]), n = atol(argv[2]);
    static NAME_params p;
    static NAME_state s;
    NAME_workspace *ws = malloc(sizeof *ws);
    NAME_real *X = malloc(sizeof(NAME_real) * n * UP_INPUTS);
    NAME_real *T = calloc(n * UP_OUTPUTS, sizeof(NAME_real));
    NAME_init_params(&p, 1);
    NAME_init_state(&s);
    for (long i = 0; i < n * UP_INPUTS; ++i) X[i] = (NAME_real)((i * 7919) % 1000) / 1000 - 0.5f;
    for (long i = 0; i < n; ++i) T[i * UP_OUTPUTS + i % UP_OUTPUTS] = 1;
    for (long i = 0; i < steps; ++i) NAME_step(&p, &s, X, T, n, ws);
    return 0;
}
"""


def count(folder: Path, name: str, blas: bool, steps: int, batch: int) -> int:
    """Instructions of NAME_step per step."""
    (folder / "harness.c").write_text(
        HARNESS.replace("NAME", name).replace("UP_", name.upper() + "_")
    )
    flags = [*BASE_FLAGS, *([f"-D{name.upper()}_BLAS"] if blas else [])]
    libs = ["-lopenblas", "-lm"] if blas else ["-lm"]
    exe = folder / ("h_blas" if blas else "h")
    subprocess.run(["cc", *flags, "-o", exe, folder / "harness.c", folder / f"{name}.c", *libs],
                   check=True)  # fmt: skip
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--toggle-collect={name}_step",
         "--callgrind-out-file=/dev/null", str(exe), str(steps), str(batch)],
        capture_output=True, text=True, check=True,
        env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    refs = re.search(r"Collected : (\d+)", out.stderr)
    assert refs, out.stderr
    return int(refs.group(1)) // steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--nets", default="digits,cifar_small")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for net in args.nets.split(","):
            shape, c1, c2, head, batch = NETS[net]
            name = f"cg_{net}"
            folder = Path(tmp) / net
            d = symbackprop.derive(spec(name, shape, c1, c2, head))
            symbackprop.codegen.generate(d, "c", folder, force=True)
            direct = count(folder, name, False, args.steps, batch)
            blas = count(folder, name, True, args.steps, batch)
            print(f"{net} batch {batch}: instructions per step: direct {direct:,}  "
                  f"BLAS {blas:,}")  # fmt: skip


if __name__ == "__main__":
    main()
