"""Instructions per SGD step of bench_norm.py's nets (with and without batch norm + dropout),
counted by callgrind (valgrind): exact and repeatable on a shared machine, where times are not.

Each net's C is built with the loader's flags (build.BASE_FLAGS) into bench_conv's harness, which
takes `steps` steps on one batch; only NAME_step's instructions are counted (--toggle-collect)
and divided by the steps. The ratio is the normalized net's count over the plain net's.

With --time R: instead, CPU seconds per step of the same harnesses (clock_gettime's process
CPU time inside the program, no Python), R rounds of --sample seconds each (0.3), the two
variants interleaved; medians, and minima (on a loaded machine many short samples, e.g.
--time 101 --sample 0.03, and their minimum are steadier than a few long ones).

Run: python benchmarks/norm_callgrind.py [--steps 3] [--keep DIR] [--time 9] [--sample 0.3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_conv import build_harness  # noqa: E402
from bench_norm import CASES, spec  # noqa: E402

from symbackprop.codegen import generate  # noqa: E402
from symbackprop.spec.load import parse_spec  # noqa: E402


def harness(folder: Path, data: dict) -> Path:
    """The generated C of ``data`` in bench_conv's step loop."""
    out_dir = folder / data["name"]
    generate(parse_spec(data), "c", out_dir, force=True)
    return build_harness(out_dir, data["name"], False)


def count(folder: Path, data: dict, steps: int, batch: int) -> int:
    """Instructions of NAME_step per step."""
    name = data["name"]
    exe = harness(folder, data)
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
    ap.add_argument("--time", type=int, default=0, help="time R interleaved rounds instead")
    ap.add_argument("--sample", type=float, default=0.3, help="seconds of one timed round")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        if args.time:
            return timed(folder, args.time, args.sample)
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


def timed(folder: Path, rounds: int, sample: float = 0.3) -> int:
    """Medians (and minima) of interleaved CPU times per step, plain and normalized, for every
    case."""
    print("| net / batch | dtype | plain µs | batch norm + dropout µs | ratio | ratio of minima |")
    print("|---|---|---:|---:|---:|---:|")
    for widths, batch in CASES:
        for dtype in ("float32", "float64"):
            exes = [harness(folder, spec(widths, batch, dtype, v)) for v in (False, True)]
            times: list[list[float]] = [[], []]
            for _ in range(rounds):
                for k, exe in enumerate(exes):
                    run = [str(exe), "1", str(batch), str(sample)]
                    out = subprocess.run(run, capture_output=True, text=True, check=True)
                    times[k].append(float(out.stdout))
            plain, norm = (statistics.median(t) * 1e6 for t in times)
            least = min(times[1]) / min(times[0])
            net = "-".join(map(str, widths))
            print(f"| {net} / b{batch} | {dtype} | {plain:.1f} | {norm:.1f} | "
                  f"{norm / plain:.3f}× | {least:.3f}× |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
