"""One SGD training step of a CNN: the generated C (its direct loops, and with cblas: make
BLAS=1's im2col + gemm; called through ctypes), the generated NumPy module and the generated
torch Model against the same network in PyTorch eager (nn.Conv2d, nn.MaxPool2d, mean over
positions, nn.Linear, F.cross_entropy, torch.optim.SGD), float32; then derive + generate time for
the same net on small and large images.

Nets: "digits" (issue 14): input 1x8x8, conv 8 3x3 pad 1 relu, maxpool 2, conv 16 3x3 pad 1 relu,
global average pool, dense 10 softmax, batch 32; "cifar_small": input 3x32x32, conv 16 3x3 pad 1
relu, maxpool 2, conv 32 3x3 pad 1 relu, maxpool 2, dense 10 softmax, batch 32; "cifar" (issue
14's larger one): input 3x32x32, the digits layout with conv 32 and conv 64, batch 64. "C loop"
is the same generated C called in a loop by a compiled program (HARNESS: no Python, no ctypes).
The variants run in interleaved rounds (the machine is shared); each number is the median over
the rounds of the CPU time of this thread (time.thread_time; the loop's process time), torch
and BLAS on one thread, per step.

Run: python benchmarks/bench_conv.py [--rounds 7] [--min-time 0.2] [--quick] [--nets a,b]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# OpenBLAS 0.3.21 does not know this machine's CPU (Sapphire Rapids) and falls back to its SSE3
# (Prescott) kernels, 2x slower: name an AVX2 core it knows when the CPU has AVX2 and FMA.
try:
    _FLAGS = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n")[0].split()
except (OSError, IndexError):
    _FLAGS = []
if {"avx2", "fma"} <= set(_FLAGS):
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import symbackprop  # noqa: E402
from symbackprop.codegen.c import c_module  # noqa: E402
from symbackprop.codegen.c.build import BASE_FLAGS  # noqa: E402
from symbackprop.codegen.numpy import numpy_module  # noqa: E402
from symbackprop.codegen.torch.loader import torch_module  # noqa: E402

LR = 0.01


def layers(c1: int, c2: int, head: str) -> list[dict]:
    """conv c1 -> relu -> maxpool -> conv c2 -> relu -> head (global_avgpool or maxpool +
    flatten) -> dense 10 softmax."""
    conv = {"type": "conv2d", "kernel": 3, "padding": 1, "activation": "relu"}
    tail = ([{"type": "global_avgpool"}] if head == "gap"
            else [{"type": "maxpool2d", "kernel": 2}, {"type": "flatten"}])  # fmt: skip
    return [{**conv, "channels": c1}, {"type": "maxpool2d", "kernel": 2},
            {**conv, "channels": c2}, *tail, {"units": 10, "activation": "softmax"}]  # fmt: skip


def spec(name: str, shape: tuple[int, ...], c1: int, c2: int, head: str = "gap") -> dict:
    return {
        "name": name, "inputs": list(shape), "dtype": "float32", "seed": 1,
        "layers": layers(c1, c2, head),
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": LR},
    }  # fmt: skip


def reference(data: dict, params: dict):
    """The spec's net as torch.nn modules with the generated weights; one SGD step."""
    channels, mods, named = data["inputs"][0], [], []
    size = list(data["inputs"])
    for i, la in enumerate(data["layers"], start=1):
        kind = la.get("type", "dense")
        if kind == "conv2d":
            mod = nn.Conv2d(channels, la["channels"], la["kernel"], padding=la["padding"])
            channels = size[0] = la["channels"]
            mods += [mod, nn.ReLU()]
            named.append((mod, f"W{i}", f"b{i}"))
        elif kind == "maxpool2d":
            mods.append(nn.MaxPool2d(la["kernel"]))
            size[1:] = [v // la["kernel"] for v in size[1:]]
        elif kind == "global_avgpool":
            mods.append(nn.AdaptiveAvgPool2d(1))
            mods.append(nn.Flatten())
            size = [channels, 1, 1]
        elif kind == "flatten":
            mods.append(nn.Flatten())
        else:  # the dense softmax head: cross_entropy takes its logits
            mod = nn.Linear(size[0] * size[1] * size[2], la["units"])
            mods.append(mod)
            named.append((mod, f"W{i}", f"b{i}"))
    net = nn.Sequential(*mods)
    with torch.no_grad():
        for mod, w, b in named:
            mod.weight.copy_(torch.as_tensor(params[w]))
            mod.bias.copy_(torch.as_tensor(params[b]))
    opt = torch.optim.SGD(net.parameters(), lr=LR)

    def step(X, y):
        opt.zero_grad()
        loss = F.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        return loss

    return step


HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include "NAME.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
/* steps n [min_seconds]: steps SGD steps on one batch of n rows; with min_seconds, steps until
 * that much CPU time has passed and print the seconds per step */
int main(int argc, char **argv)
{
    const long steps = atol(argv[1]), n = atol(argv[2]);
    const double min_time = argc > 3 ? atof(argv[3]) : 0;
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
    if (min_time > 0) {
        long k = 0;
        const double start = cpu();
        do NAME_step(&p, &s, X, T, n, ws), ++k; while (cpu() - start < min_time);
        printf("%.9g\n", (cpu() - start) / k);
    }
    return 0;
}
"""


def build_harness(folder: Path, name: str, blas: bool) -> Path:
    """A program that calls the generated C's NAME_step in a loop (HARNESS), compiled with the
    loader's flags (and -D NAME_BLAS, cblas)."""
    (folder / "harness.c").write_text(
        HARNESS.replace("NAME", name).replace("UP_", name.upper() + "_")
    )
    flags = [*BASE_FLAGS, *([f"-D{name.upper()}_BLAS"] if blas else [])]
    libs = ["-lopenblas", "-lm"] if blas else ["-lm"]
    exe = folder / ("harness_blas" if blas else "harness")
    subprocess.run(["cc", *flags, "-o", exe, folder / "harness.c", folder / f"{name}.c", *libs],
                   check=True)  # fmt: skip
    return exe


def native(exe: Path, batch: int, min_time: float):
    """CPU seconds per step of the compiled loop (no Python, no ctypes), after one warm step."""
    run = [str(exe), "1", str(batch), str(min_time)]
    return lambda: float(subprocess.run(run, capture_output=True, text=True, check=True).stdout)


def timed(fn, min_time: float) -> float:
    """CPU seconds per call of fn, over at least min_time seconds."""
    n, start = 0, time.thread_time()
    while True:
        fn()
        n += 1
        spent = time.thread_time() - start
        if spent >= min_time:
            return spent / n


def bench(data: dict, batch: int, rounds: int, min_time: float, folder: Path) -> dict:
    d = symbackprop.derive(data)
    shape = tuple(data["inputs"])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, *shape)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    T = np.eye(10, dtype=np.float32)[labels]
    mods = {"C": c_module(d, folder / "c"), "C BLAS": c_module(d, folder / "cb", blas=True),
            "NumPy": numpy_module(d, folder / "np"),
            "torch target": torch_module(d, folder / "torch")}  # fmt: skip
    steps = {}
    for label, m in mods.items():
        p = m.init_params()
        s = m.init_state(p)
        steps[label] = lambda m=m, p=p, s=s: m.step(p, s, X, T)
    symbackprop.codegen.generate(d, "c", folder / "native", force=True)
    natives = {f"C loop{' BLAS' if blas else ''}": native(
        build_harness(folder / "native", data["name"], blas), batch, min_time)
        for blas in (False, True)}  # fmt: skip
    ref = reference(data, mods["NumPy"].init_params())
    Xt, yt = torch.as_tensor(X), torch.as_tensor(labels)
    steps["PyTorch eager"] = lambda: ref(Xt, yt)
    losses = {k: float(torch.as_tensor(fn()).detach()) for k, fn in steps.items()}  # same loss
    assert max(losses.values()) - min(losses.values()) < 1e-4 * max(1.0, losses["C"]), losses
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, fn in steps.items():
            times[k].append(timed(fn, min_time))
        for k, fn in natives.items():
            times.setdefault(k, []).append(fn())
    return {k: statistics.median(v) for k, v in times.items()}


def derive_time(shape) -> float:
    start = time.perf_counter()
    d = symbackprop.derive(spec("t", shape, 8, 16))
    with tempfile.TemporaryDirectory() as tmp:
        symbackprop.codegen.generate(d, "c", tmp, force=True)
    return time.perf_counter() - start


NETS = {  # name: (input, conv channels, head, batch)
    "digits": ((1, 8, 8), 8, 16, "gap", 32),
    "cifar_small": ((3, 32, 32), 16, 32, "maxpool", 32),
    "cifar": ((3, 32, 32), 32, 64, "gap", 64),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--quick", action="store_true", help="the digits-sized net only")
    ap.add_argument("--nets", default=",".join(NETS), help="comma-separated: " + ", ".join(NETS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = ["digits"] if args.quick else args.nets.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            shape, c1, c2, head, batch = NETS[name]
            data = spec(f"bench_{name}", shape, c1, c2, head)
            res = bench(data, batch, args.rounds, args.min_time, Path(tmp) / name)
            eager = res["PyTorch eager"]
            print(f"{name} {'x'.join(map(str, shape))}, batch {batch}: ms per step (median)")
            for k, v in res.items():
                print(f"  {k:15s} {v * 1e3:9.3f}   PyTorch eager / this = {eager / v:6.2f}")
    for shape in ((1, 8, 8), (1, 64, 64)):
        print(f"derive + generate C, input {'x'.join(map(str, shape))}: {derive_time(shape):.2f} s")


if __name__ == "__main__":
    main()
