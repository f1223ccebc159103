"""Instructions per SGD step of the generated C for bench_conv.py's nets, counted by callgrind
(valgrind): exact and repeatable on a shared machine, where times are not. Each net's C is
built with the loader's flags (build.BASE_FLAGS), with its direct loops and with -D NAME_BLAS
(cblas), into bench_conv's program, which takes `steps` steps on one batch; only the step
function's instructions are counted (--toggle-collect), cblas's included, and divided by the steps.

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

from bench_conv import NETS, build_harness, spec  # noqa: E402

import symbackprop  # noqa: E402


def count(folder: Path, name: str, blas: bool, steps: int, batch: int) -> int:
    """Instructions of NAME_step per step."""
    exe = build_harness(folder, name, blas)
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
