"""One training step: generated NumPy module vs hand-written NumPy vs PyTorch eager (float64).

The net is ``inputs - hidden... - classes`` with sigmoid or relu hidden layers, a softmax output,
cross-entropy (mean) and plain SGD.  Three implementations of one step, all from the generated
module's ``init_params()`` and on the same batch (checked to agree before timing):

- generated: ``module.step(params, state, X, T)`` of ``symbackprop.codegen.numpy.numpy_module``;
- hand:      a hand-written vectorized NumPy step (the same formulas, written as one would);
- torch:     ``torch.nn.functional`` + autograd + ``torch.optim.SGD``, float64, eager.

Each step is timed timeit-style (``number`` calls per sample, chosen so a sample lasts at least
``--min-time``; generated and hand interleaved sample by sample in a rotating order) and the
median per call is printed with the ratios generated/hand (goal: <= 1.2) and against torch.
NumPy is timed before torch is imported: importing and running torch changes how the process
allocates memory and leaves OpenMP workers spinning.  The BLAS behind NumPy is printed too;
OPENBLAS_* / OMP_* environment variables are left as they are.

At 784-256-128-10 a step allocates megabyte-sized temporaries; glibc returns them to the system
and maps fresh pages for the next step, so the step pays page faults (column "faults", per step),
and how many depends on the allocator's history (glibc's dynamic mmap threshold): the ratio
there varies from run to run.  ``--no-trim`` sets glibc's mmap and trim thresholds so freed
memory is kept and reused (no faults): the ratio of the arithmetic alone, stable across runs.

Run: python benchmarks/bench_numpy.py [--repeat 31] [--min-time 0.02] [--no-trim] [--check]
(--check exits 1 when generated/hand exceeds the goal).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import statistics
import sys
import tempfile
import time

import numpy as np

import symbackprop
from symbackprop.codegen.numpy.loader import numpy_module

GOAL = 1.2
LR = 0.01
CASES = [  # (label, widths from inputs to classes, batch size)
    ("2-2-2/b1", (2, 2, 2), 1),
    ("64-32-10/b32", (64, 32, 10), 32),
    ("784-256-128-10/b128", (784, 256, 128, 10), 128),
]
ACTIVATIONS = ("sigmoid", "relu")


def spec(widths: tuple[int, ...], activation: str) -> dict:
    hidden = [{"units": w, "activation": activation} for w in widths[1:-1]]
    return {
        "name": f"bench_{activation}_{'_'.join(map(str, widths))}",
        "inputs": widths[0],
        "seed": 1,
        "layers": [*hidden, {"units": widths[-1], "activation": "softmax"}],
        "loss": {"type": "cross_entropy", "reduction": "mean"},
        "optimizer": {"type": "sgd", "lr": LR},
    }


# ---- the hand-written step -------------------------------------------------------------------


def hand_step(params: dict, X: np.ndarray, T: np.ndarray, activation: str, lr: float) -> float:
    """Forward, softmax cross-entropy, backward and an SGD update in place; returns the loss."""
    depth = len(params) // 2
    Ws = [params[f"W{i}"] for i in range(1, depth + 1)]
    bs = [params[f"b{i}"] for i in range(1, depth + 1)]
    acts = [X]
    a = X
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        z = a @ W.T + b
        a = 1.0 / (1.0 + np.exp(-z)) if activation == "sigmoid" else np.maximum(z, 0.0)
        acts.append(a)
    z = a @ Ws[-1].T + bs[-1]
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    n = X.shape[0]
    loss = float(np.sum(T * (np.log(s) + m - z)) / n)
    delta = (e / s - T) / n  # dE/dz of the last layer
    for i in range(depth - 1, -1, -1):
        gW = delta.T @ acts[i]
        gb = delta.sum(axis=0)
        if i:
            a = acts[i]
            da = delta @ Ws[i]
            delta = da * a * (1.0 - a) if activation == "sigmoid" else da * (a > 0.0)
        Ws[i] -= lr * gW
        bs[i] -= lr * gb
    return loss


# ---- PyTorch eager ---------------------------------------------------------------------------


def torch_stepper(params: dict, X: np.ndarray, T: np.ndarray, activation: str, lr: float):
    import torch
    import torch.nn.functional as F

    depth = len(params) // 2
    tensors = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()
    }
    opt = torch.optim.SGD(list(tensors.values()), lr=lr)
    x = torch.tensor(X, dtype=torch.float64)
    t = torch.tensor(T, dtype=torch.float64)
    act = torch.sigmoid if activation == "sigmoid" else torch.relu

    def step() -> float:
        opt.zero_grad()
        a = x
        for i in range(1, depth):
            a = act(F.linear(a, tensors[f"W{i}"], tensors[f"b{i}"]))
        z = F.linear(a, tensors[f"W{depth}"], tensors[f"b{depth}"])
        loss = F.cross_entropy(z, t)
        loss.backward()
        opt.step()
        return loss.item()

    return step, tensors


# ---- timing ----------------------------------------------------------------------------------


def calibrate(fn, min_time: float) -> int:
    """timeit.autorange-style: calls per sample so that one sample lasts at least min_time."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= min_time:
            return number
        number *= 2


def time_all(fns: dict, repeat: int, min_time: float) -> dict:
    """Median seconds per call of each function.

    Samples are interleaved across the functions, in an order rotated every round, so that no
    function always runs right after the same other one (PyTorch's OpenMP workers and OpenBLAS's
    threads keep spinning for a while after a call and slow down whatever runs next).
    """
    numbers = {name: calibrate(fn, min_time) for name, fn in fns.items()}
    samples: dict = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, number = fns[name], numbers[name]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(s) for name, s in samples.items()}


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where getrusage is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def fault_rate(fn, calls: int = 20) -> float:
    """Minor page faults per call of fn (fresh pages the allocator had to map)."""
    before = minor_faults()
    for _ in range(calls):
        fn()
    return (minor_faults() - before) / calls


class Case:
    """One net, batch and activation: the generated module, the batch, the initial parameters."""

    def __init__(self, label: str, widths, batch: int, activation: str, folder: str):
        self.label, self.activation = label, activation
        self.module = numpy_module(symbackprop.derive(spec(widths, activation)), folder)
        rng = np.random.default_rng(0)
        self.X = rng.normal(size=(batch, widths[0]))
        self.T = np.eye(widths[-1])[rng.integers(0, widths[-1], size=batch)]
        self.start = self.module.init_params()
        self.loss = 0.0
        self.after: dict[str, np.ndarray] = {}

    def numpy_steps(self) -> dict:
        """Check the hand-written step against the generated one; return both, ready to time."""
        module, X, T, act = self.module, self.X, self.T, self.activation
        gen = {k: v.copy() for k, v in self.start.items()}
        state = module.init_state(gen)
        hand = {k: v.copy() for k, v in self.start.items()}
        self.loss = module.step(gen, state, X, T)
        self.after = {k: v.copy() for k, v in gen.items()}
        np.testing.assert_allclose(hand_step(hand, X, T, act, LR), self.loss, rtol=1e-10)
        for name, value in gen.items():
            np.testing.assert_allclose(hand[name], value, rtol=1e-10, atol=1e-14, err_msg=name)
        return {
            "generated": lambda: module.step(gen, state, X, T),
            "hand": lambda: hand_step(hand, X, T, act, LR),
        }

    def torch_steps(self) -> dict:
        """Check one PyTorch step against the generated one; return it, ready to time."""
        step, tensors = torch_stepper(self.start, self.X, self.T, self.activation, LR)
        np.testing.assert_allclose(step(), self.loss, rtol=1e-10)
        for name, value in self.after.items():
            got = tensors[name].detach().numpy()
            np.testing.assert_allclose(got, value, rtol=1e-10, atol=1e-14, err_msg=name)
        return {"torch": step}


# ---- environment -----------------------------------------------------------------------------


def blas_info() -> str:
    """Which BLAS NumPy calls, and with how many threads (threadpoolctl if installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            return "; ".join(
                f"{p['internal_api']} {p.get('version')}, {p['num_threads']} threads, "
                f"{p.get('architecture')} (threadpoolctl)"
                for p in pools
            )
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception as exc:  # NumPy < 1.26: show_config has no mode
        return f"unknown ({exc.__class__.__name__})"
    detail = " ".join(str(blas.get("openblas configuration", "")).split())
    return f"{blas.get('name')} {blas.get('version')} [{detail}] (numpy.show_config)"


def torch_info() -> str:
    import torch

    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return (
        f"torch {torch.__version__}, BLAS: {found.group(1) if found else 'unknown'}, "
        f"intra-op threads: {torch.get_num_threads()}"
    )


def set_malloc_no_trim() -> str:
    """glibc: serve every allocation from the heap and never give it back (no page faults)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        # M_MMAP_THRESHOLD = 32 MiB (glibc's maximum), M_TRIM_THRESHOLD = 1 GiB
        ok = libc.mallopt(-3, 32 << 20) and libc.mallopt(-1, 1 << 30)
    except (OSError, AttributeError):
        ok = 0
    return "glibc mallopt: no mmap, no trim" if ok else "mallopt unavailable: default allocator"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=31, help="samples per implementation")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per sample")
    parser.add_argument(
        "--no-trim",
        action="store_true",
        help="glibc only: keep freed memory mapped, so temporaries cost no page faults",
    )
    parser.add_argument("--check", action="store_true", help=f"exit 1 if generated/hand > {GOAL}")
    args = parser.parse_args(argv)

    allocator = set_malloc_no_trim() if args.no_trim else "default allocator"
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))}
    print(f"numpy {np.__version__}, BLAS: {blas_info()}")
    print(f"CPUs: {os.cpu_count()}; thread env: {env or 'none set'}; {allocator}")
    with tempfile.TemporaryDirectory(prefix="bench-numpy-") as tmp:
        cases = [
            Case(label, widths, batch, act, os.path.join(tmp, f"{act}{len(widths)}_{widths[0]}"))
            for label, widths, batch in CASES
            for act in ACTIVATIONS
        ]
        # NumPy first, torch only afterwards (see the module docstring).  All cases are timed
        # round-robin, so a few seconds of machine noise spread thin over every median.
        fns = {(i, k): fn for i, case in enumerate(cases) for k, fn in case.numpy_steps().items()}
        times = time_all(fns, args.repeat, args.min_time)
        faults = {key: fault_rate(fn) for key, fn in fns.items()}
        print(torch_info())
        fns = {(i, k): fn for i, case in enumerate(cases) for k, fn in case.torch_steps().items()}
        times.update(time_all(fns, args.repeat, args.min_time))

    print(f"median of {args.repeat} samples per step, float64, softmax cross-entropy + SGD")
    print()
    header = (
        f"{'net/batch':<21} {'hidden':<8} {'generated':>10} {'hand':>10} {'torch':>10} "
        f"{'gen/hand':>9} {'gen/torch':>10} {'hand/torch':>11} {'faults gen/hand':>16}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for i, case in enumerate(cases):
        gen, hand, torch_ = times[i, "generated"], times[i, "hand"], times[i, "torch"]
        worst = max(worst, gen / hand)
        fault_text = f"{faults[i, 'generated']:.0f}/{faults[i, 'hand']:.0f}"
        print(
            f"{case.label:<21} {case.activation:<8} {gen * 1e6:8.1f}us {hand * 1e6:8.1f}us "
            f"{torch_ * 1e6:8.1f}us {gen / hand:8.2f}x {gen / torch_:9.2f}x "
            f"{hand / torch_:10.2f}x {fault_text:>16}"
        )
    print()
    verdict = "met" if worst <= GOAL else "NOT met"
    print(f"worst generated/hand: {worst:.2f}x (goal <= {GOAL}x: {verdict})")
    return 1 if args.check and worst > GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
