"""Instructions per SGD step of bench_norm.py's nets (with and without batch norm + dropout),
counted by callgrind (valgrind): exact and repeatable on a shared machine, where times are not.

Each net's C is built with the loader's flags (build.BASE_FLAGS) into bench_conv's harness, which
takes `steps` steps on one batch; only NAME_step's instructions are counted (--toggle-collect)
and divided by the steps. The ratio is the normalized net's count over the plain net's.

Run: python benchmarks/norm_callgrind.py [--steps 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_conv import build_harness  # noqa: E402
from bench_norm import CASES, spec  # noqa: E402

from symbackprop.codegen import generate  # noqa: E402
from symbackprop.spec.load import parse_spec  # noqa: E402


def count(folder: Path, data: dict, steps: int, batch: int) -> int:
    """Instructions of NAME_step per step."""
    name = data["name"]
    out_dir = folder / name
    generate(parse_spec(data), "c", out_dir, force=True)
    exe = build_harness(out_dir, name, False)
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--toggle-collect={name}_step",
         "--callgrind-out-file=/dev/null", str(exe), str(steps), str(batch)],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    refs = re.search(r"Collected : (\d+)", out.stderr)
    assert refs, out.stderr
    return int(refs.group(1)) // steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write the generated code here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        print("| net / batch | dtype | plain instructions | batch norm + dropout | ratio |")
        print("|---|---|---:|---:|---:|")
        for widths, batch in CASES:
            for dtype in ("float32", "float64"):
                plain, norm = (count(folder, spec(widths, batch, dtype, v), args.steps, batch)
                               for v in (False, True))  # fmt: skip
                net = "-".join(map(str, widths))
                print(f"| {net} / b{batch} | {dtype} | {plain:,} | {norm:,} | "
                      f"{norm / plain:.3f}× |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
