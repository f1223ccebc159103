"""The generated C training step of a dense net with batch norm and dropout against the same net
without them (issue 16: within 1.2×).

Nets ``inputs-hidden...-classes``, relu hidden layers, softmax, cross-entropy (mean), SGD; the
normalized variant puts ``batch_norm`` then ``dropout`` (p = 0.2) after every hidden layer. Both
are timed around the C library's own ``train`` loop on the batch repeated (bench_train.py's
``c_per_step``: the call's own cost taken off), float32 and float64, medians of ``--repeat``
samples of at least ``--min-time`` seconds, the two variants interleaved.

Run: python benchmarks/bench_norm.py [--repeat 7] [--min-time 0.2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from symbackprop.codegen import generate
from symbackprop.codegen.c.loader import load_c

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import c_per_step  # noqa: E402 (the sibling script, run from anywhere)

CASES = [((64, 128, 64, 10), 64), ((784, 256, 128, 10), 128)]


def spec(widths: tuple[int, ...], batch: int, dtype: str, normalized: bool) -> dict:
    layers: list[dict] = []
    for w in widths[1:-1]:
        layers.append({"units": w, "activation": "relu"})
        if normalized:
            layers += [{"type": "batch_norm"}, {"type": "dropout", "p": 0.2}]
    layers.append({"units": widths[-1], "activation": "softmax"})
    tag = "bn" if normalized else "plain"
    return {
        "name": f"bench_{tag}_{'_'.join(map(str, widths))}_{dtype}",
        "inputs": widths[0],
        "dtype": dtype,
        "seed": 1,
        "layers": layers,
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.01},
        "train": {"batch_size": batch},
    }


def build(data: dict, folder: Path):
    from symbackprop.spec.load import parse_spec

    out = folder / data["name"]
    generate(parse_spec(data), "c", out)
    return load_c(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--keep", type=Path, help="write the generated code here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        print("| net / batch | dtype | plain µs | batch norm + dropout µs | ratio |")
        print("|---|---|---:|---:|---:|")
        for widths, batch in CASES:
            for dtype in ("float32", "float64"):
                mods = {v: build(spec(widths, batch, dtype, v), folder) for v in (False, True)}
                rng = np.random.default_rng(0)
                X = rng.normal(size=(batch, widths[0])).astype(dtype)
                T = np.eye(widths[-1], dtype=dtype)[rng.integers(0, widths[-1], batch)]
                times: dict = {False: [], True: []}
                for _ in range(3):  # interleaved: the machine is shared
                    for v, m in mods.items():
                        start = m.init_params()
                        times[v].append(c_per_step(m, start, X, T, args.repeat, args.min_time))
                plain, norm = (float(np.median(times[v])) * 1e6 for v in (False, True))
                net = "-".join(map(str, widths))
                print(f"| {net} / b{batch} | {dtype} | {plain:.1f} | {norm:.1f} | "
                      f"{norm / plain:.2f}× |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
