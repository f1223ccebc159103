"""The C target's vectorizable exp/log/tanh/sigmoid (templates/c/sbp_math.c.j2) against libm's,
in a whole training step: a dense 64-32-10 net with tanh (or sigmoid) hidden layers, softmax,
cross-entropy and SGD at batch 32, generated C against PyTorch eager.

Variants: the generated C as emitted (``C sbp``); the same file with the sbp_* calls sent back to
libm (``C libm``: exp, log, tanh, and 1/(1 + exp(-u)) for the sigmoid, what the C target printed
before); the file built with ``<NAME>_NO_DISPATCH`` (``C NO_DISPATCH``: the matrix kernel and the
chunk functions without their AVX-512F and AVX2 builds: plain C99); PyTorch eager
(nn.Linear-free: F.linear, torch.tanh, F.cross_entropy, torch.optim.SGD, one thread). All start
from the generated ``init_params()`` and step on the same batch (checked to agree after one step
before timing). The C steps run inside the library's ``train`` loop on
the batch laid end to end (the call's own cost, the parameters copied in and out, timed with no
epoch and taken off). Times are this thread's CPU time (time.thread_time: on a shared machine
wall time measures the wait for a core); the variants run in interleaved rounds and each number
is the median over the rounds. ``--callgrind`` adds the instructions a C step executes
(valgrind's callgrind, a driver calling ``<name>_step`` 200 times, the driver without steps
taken off): a count the machine's load does not move.

Run: python benchmarks/bench_math.py [--rounds 15] [--min-time 0.1] [--callgrind] [--quick]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import symbackprop
from symbackprop.codegen import generate
from symbackprop.codegen.c.build import BASE_FLAGS
from symbackprop.codegen.c.loader import load_c

LR = 0.01
WIDTHS, BATCH = (64, 32, 10), 32
# the sbp_* functions sent back to libm: defined after the sbp definitions, before their callers
LIBM = {
    "": "#define sbp_exp exp\n#define sbp_log log\n#define sbp_tanh tanh\n"
    "#define sbp_sigmoid(u) (1.0 / (1 + exp(-(u))))\n",
    "f": "#define sbp_expf expf\n#define sbp_logf logf\n#define sbp_tanhf tanhf\n"
    "#define sbp_sigmoidf(u) (1.0F / (1 + expf(-(u))))\n",
}
ANCHOR = "/* ---- forward and backward over chunks of rows"


def spec(activation: str, dtype: str) -> dict:
    return {
        "name": f"bench_{activation}_{dtype}",
        "inputs": WIDTHS[0],
        "dtype": dtype,
        "seed": 1,
        "layers": [
            {"units": WIDTHS[1], "activation": activation},
            {"units": WIDTHS[2], "activation": "softmax"},
        ],  # fmt: skip
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": LR},
    }


def libm_copy(folder: Path, name: str, dtype: str) -> Path:
    """A copy of the generated folder whose library calls libm instead of the sbp_* functions."""
    out = folder.with_name(folder.name + "_libm")
    shutil.copytree(folder, out, dirs_exist_ok=True)
    source = out / f"{name}.c"
    text = source.read_text()
    assert ANCHOR in text
    suffix = "f" if dtype == "float32" else ""
    source.write_text(text.replace(ANCHOR, LIBM[suffix] + "\n" + ANCHOR, 1))
    return out


def torch_step(params: dict, X, T, activation: str, dtype: str):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    ts = {k: torch.tensor(v, dtype=tdt, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(ts.values()), lr=LR)
    x, t = torch.tensor(X, dtype=tdt), torch.tensor(T, dtype=tdt)
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[activation]

    def step() -> float:
        opt.zero_grad()
        a = act(F.linear(x, ts["W1"], ts["b1"]))
        loss = F.cross_entropy(F.linear(a, ts["W2"], ts["b2"]), t)
        loss.backward()
        opt.step()
        return loss.item()

    return step, ts


def c_timer(module, start: dict, X, T, min_time: float, steps: int = 1000, most: int = 64_000):
    """A function timing one sample: CPU seconds per step of the C train loop, one batch of X's
    rows a step (X tiled ``steps`` times, from ``steps`` up to ``most`` until a run takes
    min_time); the call's fixed cost (an epoch-less train) is subtracted."""

    def tile(a, n):
        return np.tile(a, (n,) + (1,) * (a.ndim - 1))

    while True:  # enough steps for min_time
        params = {k: v.copy() for k, v in start.items()}
        Xr, Tr = tile(X, steps), tile(T, steps)
        begin = time.thread_time()
        module.train(params, Xr, Tr, 1, len(X), shuffle=False)
        if time.thread_time() - begin > min_time or steps >= most:
            break
        steps *= 4

    def sample() -> float:
        params = {k: v.copy() for k, v in start.items()}
        begin = time.thread_time()
        module.train(params, Xr, Tr, 0, len(X), shuffle=False)
        call = time.thread_time() - begin
        begin = time.thread_time()
        module.train(params, Xr, Tr, 1, len(X), shuffle=False)
        return (time.thread_time() - begin - call) / steps

    return sample


def py_timer(step, min_time: float, clock=time.thread_time):
    """A function timing one sample: CPU seconds per call of step (this thread's; pass
    ``time.process_time`` for a library that computes in threads of its own, as XLA does)."""
    n, begin = 0, clock()
    while clock() - begin < min_time:
        step()
        n += 1

    def sample() -> float:
        begin = clock()
        for _ in range(n):
            step()
        return (clock() - begin) / n

    return sample


DRIVER = """#include <stdlib.h>
#include "{name}.h"
static {name}_params params;
static {name}_state state;
static {name}_workspace ws;
static {name}_real X[{batch} * {inputs}], T[{batch} * {outputs}];
int main(int argc, char **argv)
{{
    long steps = argc > 1 ? atol(argv[1]) : 0;
    {name}_init_params(&params, 1);
    {name}_init_state(&state);
    for (long i = 0; i < {batch} * {inputs}; ++i) X[i] = ({name}_real)((i * 37 % 101) - 50) / 25;
    for (long i = 0; i < {batch}; ++i) T[i * {outputs} + i % {outputs}] = 1;
    double loss = 0;
    for (long s = 0; s < steps; ++s) loss += {name}_step(&params, &state, X, T, {batch}, &ws);
    return loss < 0;
}}
"""


def callgrind(folder: Path, name: str, cflags=(), steps: int = 200) -> float | None:
    """Instructions per step (valgrind's callgrind), or None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    driver = folder / "drive.c"
    driver.write_text(DRIVER.format(name=name, batch=BATCH, inputs=WIDTHS[0], outputs=WIDTHS[-1]))
    exe = folder / "drive"
    cmd = ["cc", *BASE_FLAGS, *cflags, "-o", str(exe), str(driver), str(folder / f"{name}.c")]
    cmd.append("-lm")
    subprocess.run(cmd, check=True)

    def count(n: int) -> int:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/cg.out", str(exe),
             str(n)], capture_output=True, text=True, check=True,
        )  # fmt: skip
        return int(re.search(r"Collected : (\d+)", run.stderr).group(1))

    return (count(steps) - count(0)) / steps


def run_case(activation: str, dtype: str, folder: Path, args) -> dict:
    data = spec(activation, dtype)
    name = data["name"]
    out = folder / name
    generate(symbackprop.derive(symbackprop.parse_spec(data)), "c", out, force=True)
    plain = [f"-D{name.upper()}_NO_DISPATCH"]
    builds = {"C sbp": (out, []), "C libm": (libm_copy(out, name, dtype), []),
              "C NO_DISPATCH": (out, plain)}  # fmt: skip
    modules = {k: load_c(v, f) for k, (v, f) in builds.items()}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(BATCH, WIDTHS[0])).astype(dtype)
    T = np.eye(WIDTHS[-1], dtype=dtype)[rng.integers(0, WIDTHS[-1], size=BATCH)]
    start = modules["C sbp"].init_params()
    step, ts = torch_step(start, X, T, activation, dtype)
    step()
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=1e-4, atol=1e-6)
    for label, module in modules.items():  # one step of each agrees with PyTorch's
        p = {k: v.copy() for k, v in start.items()}
        module.step(p, module.init_state(p), X, T)
        for k in p:
            want = ts[k].detach().numpy()
            np.testing.assert_allclose(p[k], want, **tol, err_msg=f"{label} {k}")
    step, _ = torch_step(start, X, T, activation, dtype)
    timers = {label: c_timer(m, start, X, T, args.min_time) for label, m in modules.items()}
    timers["PyTorch eager"] = py_timer(step, args.min_time)
    samples: dict[str, list[float]] = {k: [] for k in timers}
    for _ in range(args.rounds):
        for label, timer in timers.items():
            samples[label].append(timer())
    row = {
        "net": f"{'-'.join(map(str, WIDTHS))} {activation}/b{BATCH}",
        "dtype": dtype,
        "times": {k: statistics.median(v) for k, v in samples.items()},
    }
    if args.callgrind:
        row["instructions"] = {k: callgrind(v, name, f) for k, (v, f) in builds.items()}
    return row


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.3g} µs"


def table(rows: list[dict]) -> str:
    head = ["net", "dtype", "C sbp", "C libm", "C NO_DISPATCH", "PyTorch eager",
            "PyTorch / C sbp", "PyTorch / C libm", "PyTorch / C NO_DISPATCH",
            "C libm / C sbp"]  # fmt: skip
    if any("instructions" in r for r in rows):
        head += ["instructions/step sbp", "libm", "NO_DISPATCH"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        t = r["times"]
        cells = [r["net"], r["dtype"], _fmt(t["C sbp"]), _fmt(t["C libm"]),
                 _fmt(t["C NO_DISPATCH"]), _fmt(t["PyTorch eager"]),
                 f"{t['PyTorch eager'] / t['C sbp']:.1f}×",
                 f"{t['PyTorch eager'] / t['C libm']:.1f}×",
                 f"{t['PyTorch eager'] / t['C NO_DISPATCH']:.1f}×",
                 f"{t['C libm'] / t['C sbp']:.2f}×"]  # fmt: skip
        if "instructions" in r:
            cells += [f"{r['instructions'][k]:,.0f}" for k in ("C sbp", "C libm", "C NO_DISPATCH")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--min-time", type=float, default=0.1)
    p.add_argument("--callgrind", action="store_true", help="add callgrind instruction counts")
    p.add_argument("--quick", action="store_true", help="the tanh float64 net only, 5 rounds")
    args = p.parse_args(argv)
    cases = [("tanh", "float64"), ("tanh", "float32"), ("sigmoid", "float64"),
             ("sigmoid", "float32")]  # fmt: skip
    if args.quick:
        cases, args.rounds = cases[:1], 5
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_case(a, d, Path(tmp), args) for a, d in cases]
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
