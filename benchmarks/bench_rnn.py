"""One training step of a recurrent net, side by side: the generated C (via load_c, from Python)
and NumPy, against PyTorch eager's nn.RNN / nn.GRU / nn.LSTM + nn.Linear + torch.optim, and the
derive time for T = 2 and T = 100 (the time axis is a loop: deriving must not grow with T).

Net (issue 15's benchmark): T = 20 steps of 4 features, a recurrent layer of 32 units (`--kind`
rnn with tanh, gru or lstm), a softmax head of 3, cross-entropy, Adam, float32, batch 16.
Each number is the median of ``--repeat`` samples of at least ``--min-time`` seconds.

Run: python benchmarks/bench_rnn.py [--kind rnn|gru|lstm] [--repeat 7] [--min-time 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import symbackprop
from symbackprop.codegen.c import c_module
from symbackprop.codegen.numpy import numpy_module

TORCH = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def spec(steps: int = 20, dtype: str = "float32", kind: str = "rnn") -> dict:
    return {"name": f"bench_{kind}", "inputs": [steps, 4], "dtype": dtype, "seed": 0,
            "layers": [{"type": kind, "units": 32}, {"units": 3, "activation": "softmax"}],
            "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 1e-3}}  # fmt: skip


def timed(fn, repeat: int, min_time: float) -> float:
    """Median seconds per call."""
    samples = []
    for _ in range(repeat):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            if (elapsed := time.perf_counter() - start) >= min_time:
                break
        samples.append(elapsed / n)
    return statistics.median(samples)


def main(kind: str = "rnn") -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=sorted(TORCH), default=kind)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 20, 4)).astype(np.float32)
    t = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    d = symbackprop.derive(spec(kind=args.kind))
    with tempfile.TemporaryDirectory() as tmp:
        c = c_module(d, Path(tmp) / "c")
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

        times = {
            "generated C (load_c, -O3)": timed(
                lambda: c.step(pc, sc, x, t), args.repeat, args.min_time
            ),
            "generated NumPy": timed(lambda: py.step(pn, sn, x, t), args.repeat, args.min_time),
            "PyTorch eager": timed(torch_step, args.repeat, args.min_time),
        }
    base = times["PyTorch eager"]
    print(f"{args.kind} T=20 F=4 units=32, softmax 3, adam, float32, batch 16: one step")
    for name, s in times.items():
        print(f"  {name:28s} {s * 1e6:9.1f} µs   PyTorch/this {base / s:5.2f}×")
    for steps in (2, 100):  # in a fresh process each (imports done first, not timed)
        code = (f"import sys, time; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                "import symbackprop; from bench_rnn import spec; s = time.perf_counter(); "
                f"symbackprop.derive(spec({steps}, kind={args.kind!r})); "
                "print(time.perf_counter() - s)")  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        print(f"  derive T = {steps:3d}: {float(out.stdout):.3f} s")


if __name__ == "__main__":
    main()
