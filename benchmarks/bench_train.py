"""One training step, side by side: generated C (loops, -O3 and -O3 -march=native, and cblas),
hand-written C (benchmarks/hand_step.c, loops and cblas), generated NumPy, a hand-written NumPy
step, PyTorch eager and (when installed) JAX jit, float64 and float32.

Nets ``inputs-hidden...-classes`` with relu hidden layers, softmax, cross-entropy (mean) and SGD,
all started from the generated ``init_params()`` and stepped on the same batch (checked to agree
before timing). The generated C is timed around its own ``train`` loop (one call runs many steps
on the batch repeated; the call's own cost, copying the parameters in and out, is timed with no
epoch and taken off), the hand-written C inside its loop, the others per call from Python. Each
number is the median over ``--repeat`` samples of at least ``--min-time`` seconds. Also prints the
emitted C size and compile time, and the machine's GEMM rates (NumPy's OpenBLAS and PyTorch's
MKL) with the bound they put on a step: its matrix products alone at that rate.

Run: python benchmarks/bench_train.py [--wide] [--repeat 7] [--min-time 0.05] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import symbackprop
from symbackprop.codegen import generate, render
from symbackprop.codegen.c.build import build_library
from symbackprop.codegen.c.loader import load_c
from symbackprop.codegen.numpy.loader import load_numpy

sys.path.insert(0, str(Path(__file__).parent))
from bench_numpy import calibrate  # noqa: E402 (the sibling script, run from anywhere)

LR = 0.01
CASES = [((2, 2, 2), 1), ((64, 32, 10), 32), ((784, 256, 128, 10), 128)]
WIDE = ((1024, 1024, 1024, 10), 256)
NATIVE = ["-O3", "-march=native"]


def spec(widths: tuple[int, ...], dtype: str) -> dict:
    hidden = [{"units": w, "activation": "relu"} for w in widths[1:-1]]
    return {
        "name": f"bench_{'_'.join(map(str, widths))}_{dtype}",
        "inputs": widths[0],
        "dtype": dtype,
        "seed": 1,
        "layers": [*hidden, {"units": widths[-1], "activation": "softmax"}],
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": LR},
    }


def flops(widths, batch: int) -> float:
    """Multiply-adds x 2 of forward, weight gradients and back-propagated deltas."""
    macs = [a * b for a, b in zip(widths, widths[1:], strict=False)]
    return 2.0 * batch * (2 * sum(macs) + sum(macs[1:]))


def hand_step(params: dict, X, T, lr: float) -> float:
    """Forward, softmax cross-entropy, backward and SGD in place, as one writes it by hand."""
    depth = len(params) // 2
    Ws = [params[f"W{i}"] for i in range(1, depth + 1)]
    bs = [params[f"b{i}"] for i in range(1, depth + 1)]
    acts = [X]
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        acts.append(np.maximum(acts[-1] @ W.T + b, 0))
    z = acts[-1] @ Ws[-1].T + bs[-1]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    s = e.sum(axis=1, keepdims=True)
    n = X.shape[0]
    loss = float(np.sum(T * (np.log(s) + z.max(axis=1, keepdims=True) - z)) / n)
    delta = (e / s - T) / n
    for i in range(depth - 1, -1, -1):
        gW, gb = delta.T @ acts[i], delta.sum(axis=0)
        if i:
            delta = (delta @ Ws[i]) * (acts[i] > 0)
        Ws[i] -= lr * gW
        bs[i] -= lr * gb
    return loss


def torch_step(params: dict, X, T, dtype: str):
    import torch
    import torch.nn.functional as F

    tdt = torch.float32 if dtype == "float32" else torch.float64
    ts = {k: torch.tensor(v, dtype=tdt, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(ts.values()), lr=LR)
    x, t = torch.tensor(X, dtype=tdt), torch.tensor(T, dtype=tdt)
    depth = len(params) // 2

    def step() -> float:
        opt.zero_grad()
        a = x
        for i in range(1, depth):
            a = torch.relu(F.linear(a, ts[f"W{i}"], ts[f"b{i}"]))
        loss = F.cross_entropy(F.linear(a, ts[f"W{depth}"], ts[f"b{depth}"]), t)
        loss.backward()
        opt.step()
        return loss.item()

    return step, ts


def per_call(fn, repeat: int, min_time: float) -> float:
    """Median seconds per call (timeit-style: enough calls per sample to last min_time)."""
    number = calibrate(fn, min_time)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def repeated(X, T, per: float, min_time: float):
    """(steps, batches, X, T): enough steps of ``per`` seconds for about 4 x min_time per call.

    Steps of over 0.1 ms run on the batch itself, in the same memory every step, as PyTorch,
    JAX and NumPy are timed (batches = 1). Shorter ones run on copies of it laid end to end
    (batches = steps), all of them in cache, so the call's cost is spread over many steps.
    """
    steps = max(2, min(100_000, int(min_time / max(per, 1e-7)) * 4))
    if per > 1e-4:
        return steps, 1, X, T
    return steps, steps, np.tile(X, (steps, 1)), np.tile(T, (steps, 1))


def c_per_step(module, start: dict, X, T, repeat: int, min_time: float) -> float:
    """Median seconds per step of the C train loop on the batch repeated."""
    per = per_call(
        lambda: module.step(
            {k: v.copy() for k, v in start.items()}, module.init_state(start), X, T
        ),
        3,
        0.01,
    )
    steps, batches, Xr, Tr = repeated(X, T, per, min_time)
    epochs = steps // batches  # one epoch of all the copies, or an epoch per step on the batch
    params = {k: v.copy() for k, v in start.items()}
    # the call's own cost (parameters and state copied in and out, megabytes for wide nets) is
    # timed with no epoch and taken off, as the hand-written C is timed inside its loop
    calls = []
    for _ in range(repeat):
        begin = time.perf_counter()
        module.train(params, Xr, Tr, 0, X.shape[0], shuffle=False)
        calls.append(time.perf_counter() - begin)
    samples = []
    for _ in range(repeat):
        begin = time.perf_counter()
        module.train(params, Xr, Tr, epochs, X.shape[0], shuffle=False)
        samples.append((time.perf_counter() - begin - statistics.median(calls)) / steps)
    return statistics.median(samples)


def gemm_rate(dtype: str, torch: bool = False) -> float:
    """GFLOP/s of a 256 x 1024 x 1024 product: NumPy's BLAS (OpenBLAS) or PyTorch's (MKL)."""
    a = np.random.rand(256, 1024).astype(dtype)
    b = np.random.rand(1024, 1024).astype(dtype)
    if torch:
        import torch as t

        a, b = t.from_numpy(a), t.from_numpy(b)
    return 2 * 256 * 1024 * 1024 / per_call(lambda: a @ b, 7, 0.05) / 1e9


def has_cblas() -> bool:
    return any(
        Path(p).exists() for p in ("/usr/include/cblas.h", "/usr/include/x86_64-linux-gnu/cblas.h")
    )


def run_case(widths, batch: int, dtype: str, folder: Path, args) -> dict:
    data = spec(widths, dtype)
    d = symbackprop.derive(symbackprop.parse_spec(data))
    out = folder / data["name"]
    generate(d, "c", out, force=True)
    generate(d, "numpy", out, force=True)
    numpy_mod = load_numpy(out / f"{data['name']}.py")
    builds = {"C -O3": load_c(out), "C native": load_c(out, NATIVE)}
    if has_cblas():
        builds["C BLAS"] = load_c(out, NATIVE, blas=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, widths[0])).astype(dtype)
    T = np.eye(widths[-1], dtype=dtype)[rng.integers(0, widths[-1], size=batch)]
    start = numpy_mod.init_params()
    # agreement after one step, before timing
    ref = {k: v.copy() for k, v in start.items()}
    numpy_mod.step(ref, numpy_mod.init_state(ref), X, T)
    hand = {k: v.copy() for k, v in start.items()}
    hand_step(hand, X, T, LR)
    for c in builds.values():
        p = {k: v.copy() for k, v in start.items()}
        c.step(p, c.init_state(p), X, T)
        for k in ref:
            np.testing.assert_allclose(p[k], ref[k], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(hand[k], ref[k], rtol=1e-4, atol=1e-6)
    times = {
        name: c_per_step(c, start, X, T, args.repeat, args.min_time) for name, c in builds.items()
    }
    hands = {"hand C": hand_c(widths, batch, dtype, folder, blas=False)}
    if has_cblas():
        hands["hand BLAS"] = hand_c(widths, batch, dtype, folder, blas=True)
    for name, train in hands.items():
        for k, v in train(start, X, T, 1)[0].items():
            np.testing.assert_allclose(v, ref[k], rtol=1e-4, atol=1e-6, err_msg=f"{name} {k}")
        times[name] = hand_c_per_step(train, start, X, T, args.repeat, args.min_time)
    params, state = {k: v.copy() for k, v in start.items()}, numpy_mod.init_state(start)
    times["NumPy gen"] = per_call(
        lambda: numpy_mod.step(params, state, X, T), args.repeat, args.min_time
    )
    hand = {k: v.copy() for k, v in start.items()}
    times["NumPy hand"] = per_call(lambda: hand_step(hand, X, T, LR), args.repeat, args.min_time)
    return {
        "label": f"{'-'.join(map(str, widths))}/b{batch}",
        "dtype": dtype,
        "times": times,
        "flops": flops(widths, batch),
        "start": start,
        "after": ref,
        "X": X,
        "T": T,
    }


HAND_C = Path(__file__).with_name("hand_step.c")


def hand_c(widths, batch: int, dtype: str, folder: Path, blas: bool):
    """benchmarks/hand_step.c built for this net (constant sizes, -O3 -march=native)."""
    real = "float" if dtype == "float32" else "double"
    defs = [f"-DDEPTH={len(widths) - 1}", f"-DBATCH={batch}", f"-DREAL={real}"]
    defs += [f"-DN{i}={w}" for i, w in enumerate(widths)]
    largest = max(a * b for a, b in zip(widths, widths[1:], strict=False))
    defs += [f"-DMAXN={max(widths)}", f"-DMAXW={largest}"]
    lib = folder / f"hand_{'_'.join(map(str, widths))}_{dtype}{'_blas' if blas else ''}.so"
    cmd = ["cc", "-std=c99", *NATIVE, *defs, "-fPIC", "-shared", "-o", str(lib), str(HAND_C)]
    if blas:
        cmd[1:1] = ["-DUSE_BLAS"]
        cmd += ["-lopenblas"]
    subprocess.run([*cmd, "-lm"], check=True)
    so = ctypes.CDLL(str(lib))
    so.train.restype = ctypes.c_double
    pointer = np.ctypeslib.ndpointer(dtype=dtype, flags="C_CONTIGUOUS")
    so.train.argtypes = [pointer, pointer, pointer, ctypes.c_long, ctypes.c_long,
                         ctypes.c_double, ctypes.POINTER(ctypes.c_double)]  # fmt: skip

    def train(params: dict, X, T, steps: int, batches: int = 1) -> tuple[dict, float]:
        """(parameters after the steps, seconds of the steps alone); step s on batch s % batches."""
        flat = np.concatenate([params[k].ravel() for k in params]).astype(dtype)
        seconds = ctypes.c_double()
        X, T = np.ascontiguousarray(X), np.ascontiguousarray(T)
        so.train(flat, X, T, steps, batches, LR, seconds)
        out, at = {}, 0
        for k, v in params.items():
            out[k] = flat[at : at + v.size].reshape(v.shape)
            at += v.size
        return out, seconds.value

    return train


def hand_c_per_step(train, start: dict, X, T, repeat: int, min_time: float) -> float:
    """Median seconds per step of the hand-written C loop on the batch repeated (timed in C,
    without the transposes in and out of its layout)."""
    steps, batches, Xr, Tr = repeated(X, T, train(start, X, T, 1)[1], min_time)
    return statistics.median(train(start, Xr, Tr, steps, batches)[1] / steps for _ in range(repeat))


def jax_step(params: dict, X, T, dtype: str):
    """A jitted JAX step (value_and_grad + SGD); the loss is read back, as PyTorch's .item()."""
    import jax
    import jax.numpy as jnp

    depth = len(params) // 2

    def loss(ps, x, t):
        a = x
        for i in range(1, depth):
            a = jax.nn.relu(a @ ps[f"W{i}"].T + ps[f"b{i}"])
        z = a @ ps[f"W{depth}"].T + ps[f"b{depth}"]
        return -jnp.sum(t * jax.nn.log_softmax(z)) / x.shape[0]

    @jax.jit
    def update(ps, x, t):
        E, g = jax.value_and_grad(loss)(ps, x, t)
        return E, {k: ps[k] - LR * g[k] for k in ps}

    state = [{k: jnp.asarray(v) for k, v in params.items()}]
    x, t = jnp.asarray(X), jnp.asarray(T)

    def step() -> float:
        E, state[0] = update(state[0], x, t)
        return float(E)

    return step, state


def has_jax() -> bool:
    try:
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64
        return True
    except ImportError:
        return False


def add_jax(row: dict, args) -> None:
    """JAX jit (when installed), checked against the NumPy module's step before timing."""
    step, state = jax_step(row["start"], row["X"], row["T"], row["dtype"])
    step()
    for k, v in row["after"].items():
        np.testing.assert_allclose(np.asarray(state[0][k]), v, rtol=1e-4, atol=1e-6)
        assert np.asarray(state[0][k]).dtype == v.dtype, k
    row["times"]["JAX jit"] = per_call(step, args.repeat, args.min_time)


def add_torch(row: dict, args) -> None:
    step, ts = torch_step(row["start"], row["X"], row["T"], row["dtype"])
    row["times"]["PyTorch"] = per_call(step, args.repeat, args.min_time)


def code_stats(folder: Path) -> list[str]:
    """Emitted C size and compile time (-O3, cold cache) for 64-32-10 and a 1024-wide net.

    The nets are named 'mlp', as a user might: every function and type carries the name, so
    each further character adds about 0.2 KB (measured here with a second, longer name).
    """
    lines, saved = [], os.environ.get("SYMBACKPROP_CACHE")
    for widths in ((64, 32, 10), (1024, 1024, 1024, 10)):
        sizes = {}
        for name in ("mlp", "mlp_net"):
            data = {**spec(widths, "float64"), "name": name}
            files = render(symbackprop.parse_spec(data), "c")
            program = len(files[f"{name}_main.c"])
            sizes[name] = (len(files[f"{name}.c"]) + len(files[f"{name}.h"]), program)
        per_char = (sizes["mlp_net"][0] - sizes["mlp"][0]) / 4
        library, program = sizes["mlp"]
        out = folder / f"stats_{len(lines)}"
        generate(
            symbackprop.parse_spec({**spec(widths, "float64"), "name": "mlp"}), "c", out, force=True
        )
        os.environ["SYMBACKPROP_CACHE"] = str(folder / f"cold-{len(lines)}")
        begin = time.perf_counter()
        build_library(out)
        lines.append(
            f"{'-'.join(map(str, widths))}: emitted C {library / 1024:.1f} KB for the library "
            f"(.c + .h, {per_char:.0f} bytes more per character of name) and "
            f"{program / 1024:.1f} KB for the program (_main.c); "
            f"library compiled in {time.perf_counter() - begin:.2f} s"
        )
    if saved is None:
        os.environ.pop("SYMBACKPROP_CACHE", None)
    else:
        os.environ["SYMBACKPROP_CACHE"] = saved
    return lines


def table(rows: list[dict], rates: dict) -> str:
    """Medians, ratios, achieved GFLOP/s, and the GEMM bound: the step's products alone at this
    machine's OpenBLAS rate (what no BLAS build can beat) and at PyTorch's MKL rate."""
    names = list(rows[0]["times"])
    rivals = [n for n in ("PyTorch", "JAX jit") if n in names]
    head = (
        f"| net | dtype | {' | '.join(names)} | {' | '.join(f'{n} / C' for n in rivals)} "
        "| NumPy gen / C | C GFLOP/s | GEMM bound OpenBLAS | MKL |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        t, dt = r["times"], r["dtype"]
        best = min(v for k, v in t.items() if k.startswith("C "))
        cells = " | ".join(_fmt(t[n]) for n in names)
        bound = r["flops"] / (rates["openblas", dt] * 1e9)
        mkl = r["flops"] / (rates["mkl", dt] * 1e9)
        out.append(
            f"| {r['label']} | {dt} | {cells} | "
            + " | ".join(f"{t[n] / best:.2f}x" for n in rivals)
            + " | "
            f"{t['NumPy gen'] / best:.1f}x | {r['flops'] / best / 1e9:.1f} | {_fmt(bound)} "
            f"| {_fmt(mkl)} |"
        )
    out.append(
        "\nTimes per SGD step; C = the fastest C build. GEMM rate of this machine "
        "(256x1024x1024 product, GFLOP/s): "
        + ", ".join(f"{lib} {dt} {v:.0f}" for (lib, dt), v in sorted(rates.items()))
        + "."
    )
    return "\n".join(out)


def _fmt(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:.3g} µs" if us < 1000 else f"{us / 1000:.3g} ms"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wide", action="store_true", help="add 1024-1024-1024-10/b256")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.05)
    p.add_argument("--quick", action="store_true", help="small nets only, few repeats")
    args = p.parse_args(argv)
    cases = CASES[:2] if args.quick else CASES + ([WIDE] if args.wide else [])
    if args.quick:
        args.repeat, args.min_time = 3, 0.01
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        folder = Path(tmp)
        rows = []
        for widths, batch in cases:
            for dtype in ("float64", "float32"):
                rows.append(run_case(widths, batch, dtype, folder, args))
                print(f"timed {rows[-1]['label']} {dtype}", file=sys.stderr, flush=True)
        rates = {("openblas", dt): gemm_rate(dt) for dt in ("float64", "float32")}
        if has_jax():
            for row in rows:
                add_jax(row, args)
        for row in rows:  # torch last: its thread pool slows down whatever runs after it
            add_torch(row, args)
        rates.update({("mkl", dt): gemm_rate(dt, torch=True) for dt in ("float64", "float32")})
        stats = code_stats(folder)
    print("C -O3: load_c's default flags; C native: -O3 -march=native; C BLAS: native + cblas")
    print(table(rows, rates))
    print("\n".join(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
