"""One SGD training step of a CNN: the generated C (called through ctypes), the generated NumPy
module and the generated torch Model against the same network in PyTorch eager (nn.Conv2d,
nn.MaxPool2d, mean over positions, nn.Linear, F.cross_entropy, torch.optim.SGD), float32; then
derive + generate time for the same net on small and large images.

Nets (issue 14): digits-sized, input 1x8x8, conv 8 3x3 pad 1 relu, maxpool 2, conv 16 3x3 pad 1
relu, global average pool, dense 10 softmax, batch 32; larger, input 3x32x32, conv 32 and conv
64 (same layout), batch 64. The variants run in interleaved rounds (the machine is shared);
each number is the median over the rounds of the CPU time of this thread (time.thread_time,
torch and BLAS on one thread), per step.

Run: python benchmarks/bench_conv.py [--rounds 7] [--min-time 0.2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import symbackprop  # noqa: E402
from symbackprop.codegen.c import c_module  # noqa: E402
from symbackprop.codegen.numpy import numpy_module  # noqa: E402
from symbackprop.codegen.torch.loader import torch_module  # noqa: E402

LR = 0.01


def spec(name: str, shape: tuple[int, ...], c1: int, c2: int) -> dict:
    return {
        "name": name, "inputs": list(shape), "dtype": "float32", "seed": 1,
        "layers": [
            {"type": "conv2d", "channels": c1, "kernel": 3, "padding": 1, "activation": "relu"},
            {"type": "maxpool2d", "kernel": 2},
            {"type": "conv2d", "channels": c2, "kernel": 3, "padding": 1, "activation": "relu"},
            {"type": "global_avgpool"},
            {"units": 10, "activation": "softmax"},
        ],
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": LR},
    }  # fmt: skip


def reference(shape, c1, c2, params):
    net = nn.Sequential(
        nn.Conv2d(shape[0], c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.Flatten(2), nn.Linear(1, 1),
    )  # fmt: skip
    net[-1] = nn.Identity()
    head = nn.Linear(c2, 10)
    with torch.no_grad():
        for mod, w, b in ((net[0], "W1", "b1"), (net[3], "W3", "b3"), (head, "W5", "b5")):
            mod.weight.copy_(torch.as_tensor(params[w]))
            mod.bias.copy_(torch.as_tensor(params[b]))
    parameters = [*net.parameters(), *head.parameters()]
    opt = torch.optim.SGD(parameters, lr=LR)

    def step(X, y):
        opt.zero_grad()
        loss = F.cross_entropy(head(net(X).mean(2)), y)
        loss.backward()
        opt.step()
        return loss

    return step


def timed(fn, min_time: float) -> float:
    """CPU seconds per call of fn, over at least min_time seconds."""
    n, start = 0, time.thread_time()
    while True:
        fn()
        n += 1
        spent = time.thread_time() - start
        if spent >= min_time:
            return spent / n


def bench(name, shape, c1, c2, batch, rounds, min_time, folder: Path) -> dict:
    data = spec(name, shape, c1, c2)
    d = symbackprop.derive(data)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, *shape)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    T = np.eye(10, dtype=np.float32)[labels]
    mods = {"C": c_module(d, folder / "c"), "NumPy": numpy_module(d, folder / "np"),
            "torch target": torch_module(d, folder / "torch")}  # fmt: skip
    steps = {}
    for label, m in mods.items():
        p, s = m.init_params(), None
        s = m.init_state(p)
        steps[label] = lambda m=m, p=p, s=s: m.step(p, s, X, T)
    ref = reference(shape, c1, c2, mods["NumPy"].init_params())
    Xt, yt = torch.as_tensor(X), torch.as_tensor(labels)
    steps["PyTorch eager"] = lambda: ref(Xt, yt)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, fn in steps.items():
            times[k].append(timed(fn, min_time))
    return {k: statistics.median(v) for k, v in times.items()}


def derive_time(shape) -> float:
    start = time.perf_counter()
    d = symbackprop.derive(spec("t", shape, 8, 16))
    with tempfile.TemporaryDirectory() as tmp:
        symbackprop.codegen.generate(d, "c", tmp, force=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--quick", action="store_true", help="the digits-sized net only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = [("digits", (1, 8, 8), 8, 16, 32)]
    if not args.quick:
        cases.append(("cifar", (3, 32, 32), 32, 64, 64))
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape, c1, c2, batch in cases:
            res = bench(f"bench_{name}", shape, c1, c2, batch, args.rounds, args.min_time,
                        Path(tmp) / name)  # fmt: skip
            eager = res["PyTorch eager"]
            print(f"{name} {'x'.join(map(str, shape))}, batch {batch}: ms per step (median)")
            for k, v in res.items():
                print(f"  {k:14s} {v * 1e3:9.3f}   PyTorch eager / this = {eager / v:6.2f}")
    for shape in ((1, 8, 8), (1, 64, 64)):
        print(f"derive + generate C, input {'x'.join(map(str, shape))}: {derive_time(shape):.2f} s")


if __name__ == "__main__":
    main()
