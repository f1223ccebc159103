"""One training step of a recurrent net, side by side: the generated C (via load_c, from Python)
and NumPy, against PyTorch eager's nn.RNN / nn.GRU / nn.LSTM + nn.Linear + torch.optim (and JAX
jit when installed: jax_rnn.py), and the
derive time for T = 2 and T = 100 (the time axis is a loop: deriving must not grow with T).

Net (issue 15's benchmark): T = 20 steps of 4 features, a recurrent layer of 32 units (`--kind`
rnn with tanh, gru or lstm), a softmax head of 3, cross-entropy, Adam, float32, batch 16.
The C library is timed twice: as generated (the matrix kernel and chunk functions dispatched to
AVX-512F or AVX2 at run time where the CPU has them) and built with ``<NAME>_NO_DISPATCH`` (the
plain build, what the default flags gave before). The C steps run inside the library's ``train``
loop on the batch laid end to end (the call's own cost taken off), the NumPy and PyTorch steps
from Python; ``C step()`` is the ctypes ``step`` call (parameters copied in and out each call).
Times are this thread's CPU time (JAX's: the process's, as XLA computes in threads of its
own), the variants sampled in interleaved rounds (``--repeat``, each sample at least
``--min-time`` seconds), each number the median over the rounds.
``--callgrind`` adds the instructions of a C step (both builds; valgrind, a driver calling
``<name>_step``): a count the machine's load does not move.

Run: python benchmarks/bench_rnn.py [--kind rnn|gru|lstm] [--repeat 7] [--min-time 0.2]
           [--callgrind]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_math
import jax_rnn
import numpy as np
import torch
from bench_math import py_timer

import symbackprop
from symbackprop.codegen.c import c_module
from symbackprop.codegen.c.build import BASE_FLAGS
from symbackprop.codegen.c.loader import load_c
from symbackprop.codegen.numpy import numpy_module

TORCH = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def spec(steps: int = 20, dtype: str = "float32", kind: str = "rnn") -> dict:
    return {"name": f"bench_{kind}", "inputs": [steps, 4], "dtype": dtype, "seed": 0,
            "layers": [{"type": kind, "units": 32}, {"units": 3, "activation": "softmax"}],
            "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 1e-3}}  # fmt: skip


def c_timer(module, X, T, min_time: float):
    """A function timing one sample: CPU seconds per step of the C train loop (batch 16)."""
    return bench_math.c_timer(module, module.init_params(), X, T, min_time, steps=50, most=20_000)


def callgrind(folder: Path, name: str, cflags: list[str], steps: int = 20) -> float | None:
    """Instructions per step (valgrind's callgrind), or None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    from bench_math import DRIVER

    driver = folder / "drive.c"
    driver.write_text(DRIVER.format(name=name, batch=16, inputs=80, outputs=3))
    exe = folder / "drive"
    cmd = ["cc", *BASE_FLAGS, *cflags, "-o", str(exe), str(driver), str(folder / f"{name}.c")]
    subprocess.run([*cmd, "-lm"], check=True)

    def count(n: int) -> int:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/cg.out", str(exe),
             str(n)], capture_output=True, text=True, check=True,
        )  # fmt: skip
        return int(re.search(r"Collected : (\d+)", run.stderr).group(1))

    return (count(steps) - count(0)) / steps


def main(kind: str = "rnn") -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=sorted(TORCH), default=kind)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--callgrind", action="store_true", help="add callgrind instruction counts")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 20, 4)).astype(np.float32)
    t = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    d = symbackprop.derive(spec(kind=args.kind))
    name = f"bench_{args.kind}"
    plain = [f"-D{name.upper()}_NO_DISPATCH"]
    with tempfile.TemporaryDirectory() as tmp:
        c = c_module(d, Path(tmp) / "c")
        c_plain = load_c(Path(tmp) / "c", plain)
        py = numpy_module(d, Path(tmp) / "py")
        pc, pn = c.init_params(), py.init_params()
        sc, sn = c.init_state(pc), py.init_state(pn)
        rnn = TORCH[args.kind](4, 32, batch_first=True)
        head = torch.nn.Linear(32, 3)
        opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
        xt, yt = torch.tensor(x), torch.tensor(t.argmax(1))

        def torch_step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(rnn(xt)[0][:, -1]), yt)
            loss.backward()
            opt.step()

        timers = {
            "generated C (-O3, dispatch)": c_timer(c, x, t, args.min_time),
            "generated C (-O3, NO_DISPATCH)": c_timer(c_plain, x, t, args.min_time),
            "generated C, ctypes step()": py_timer(lambda: c.step(pc, sc, x, t), args.min_time),
            "generated NumPy": py_timer(lambda: py.step(pn, sn, x, t), args.min_time),
            "PyTorch eager": py_timer(torch_step, args.min_time),
        }
        if jax_rnn.available():  # JAX jit (optional: pip install jax), held to NumPy's step first
            jax_rnn.check(args.kind, py, x, t)
            step = jax_rnn.jax_step(args.kind, py.init_params(), x, t)[0]
            timers["JAX jit"] = py_timer(step, args.min_time, time.process_time)  # XLA's threads
        samples: dict[str, list[float]] = {k: [] for k in timers}
        for _ in range(args.repeat):
            for label, timer in timers.items():
                samples[label].append(timer())
        counts = {}
        if args.callgrind:
            counts["generated C (-O3, dispatch)"] = callgrind(Path(tmp) / "c", name, [])
            counts["generated C (-O3, NO_DISPATCH)"] = callgrind(Path(tmp) / "c", name, plain)
    times = {k: statistics.median(v) for k, v in samples.items()}
    base = times["PyTorch eager"]
    print(f"{args.kind} T=20 F=4 units=32, softmax 3, adam, float32, batch 16: one step "
          f"(CPU time, medians of {args.repeat} interleaved rounds)")  # fmt: skip
    print("| one training step | median | PyTorch eager / this | instructions/step |")
    print("|---|---|---|---|")
    for label, s in times.items():
        n = f"{counts[label]:,.0f}" if counts.get(label) else ""
        print(f"| {label} | {s * 1e6:.0f} µs | {base / s:.2f}× | {n} |")
    for steps in (2, 100):  # in a fresh process each (imports done first, not timed)
        code = (f"import sys, time; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                "import symbackprop; from bench_rnn import spec; s = time.perf_counter(); "
                f"symbackprop.derive(spec({steps}, kind={args.kind!r})); "
                "print(time.perf_counter() - s)")  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        print(f"  derive T = {steps:3d}: {float(out.stdout):.3f} s")


if __name__ == "__main__":
    main()
