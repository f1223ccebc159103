"""Instructions per eager training step of bench_torch.py's variants, counted by callgrind
(valgrind): exact and repeatable on a shared machine, where times are not.

Each variant runs in its own process under callgrind, instrumentation off (fast) through the
import, set-up and warm-up, then switched on (callgrind_control -i on) when the process says it
is ready; the steps run inside itertools.starmap, and only what runs inside its C function
(``--toggle-collect=starmap_next``) is counted, then divided by the steps. Instructions are not
time (a cache miss or a slow instruction counts one), but they count exactly the fixed Python and
dispatcher cost per call that matters at 64-32-10/b32.

Run: python benchmarks/torch_callgrind.py [--steps 20] [--nets 64-32-10/32,784-256-128-10/128]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = (
    "nn.Linear + autograd, eager",
    "generated Model, eager",
    "Model, torch's custom_op kernel",
    "derived functions, no custom op",
)


def run_one(widths: tuple[int, ...], batch: int, variant: str, steps: int, flag: str) -> None:
    """In the counted process: set up, warm up, write FLAG.ready, wait for FLAG.go, then
    `steps` steps inside starmap."""
    sys.path.insert(0, str(HERE))
    import bench_torch
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        step = bench_torch.variants(widths, batch, Path(tmp), modes=(False,))[variant]
        for _ in range(3):
            step()
        Path(flag + ".ready").write_text("")
        while not Path(flag + ".go").exists():
            time.sleep(0.01)
        collections.deque(itertools.starmap(step, itertools.repeat((), steps)), maxlen=0)


def count(widths: tuple[int, ...], batch: int, variant: str, steps: int) -> int:
    """Instructions per step of one variant."""
    with tempfile.TemporaryDirectory() as tmp:
        flag = str(Path(tmp) / "flag")
        code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import torch_callgrind as c; "
                f"c.run_one({widths!r}, {batch}, {variant!r}, {steps}, {flag!r})")  # fmt: skip
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             "--toggle-collect=starmap_next", "--callgrind-out-file=/dev/null",
             sys.executable, "-c", code],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        while not Path(flag + ".ready").exists() and proc.poll() is None:
            time.sleep(0.1)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                       capture_output=True)  # fmt: skip
        Path(flag + ".go").write_text("")
        _, err = proc.communicate()
    refs = re.search(r"Collected : (\d+)", err)
    assert proc.returncode == 0 and refs, err
    return int(refs.group(1)) // steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--nets", default="64-32-10/32,784-256-128-10/128")
    ap.add_argument("--variants", type=int, default=len(VARIANTS), help="the first N variants")
    args = ap.parse_args()
    for net in args.nets.split(","):
        shape, batch = net.split("/")
        widths = tuple(int(w) for w in shape.split("-"))
        counts = {v: count(widths, int(batch), v, args.steps) for v in VARIANTS[: args.variants]}
        ref = counts[VARIANTS[0]]
        for variant, n in counts.items():
            print(f"{net:<22} {variant:<33} {n:>14,} {n / ref:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
