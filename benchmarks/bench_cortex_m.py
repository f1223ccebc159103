"""The generated C library on a Cortex-M4F (QEMU's mps2-an386): RAM, flash and instructions a
training step, for the README's table.

For each net and chunk (= batch) size: the footprint report's bytes for the M4 (parameters,
optimizer state, workspace: what step needs, the workspace holding the gradients), the flash of
a whole program that trains (the library without its file functions, main, startup, and what it
pulls in from libm, libgcc's soft double and newlib-nano), what the library adds to an image with
what it links (``footprint --arch cortex-m4``: "linked"), and instructions a step: under
``-icount`` the board's SysTick ticks once every 40 instructions (benchmarks/cortex_m/steps.c
calibrates it), so counts are repeatable to 40.

Run: python benchmarks/bench_cortex_m.py  (needs arm-none-eabi-gcc and qemu-system-arm)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import yaml

import symbackprop
from symbackprop.codegen import lower, render
from symbackprop.codegen.c import cortex_m as cm
from symbackprop.codegen.c.footprint import LEAN, code_bytes, macs, memory

HERE = Path(__file__).resolve().parent
STEPS = 20
LOOPS = 1_000_000  # steps.c's calibration loop, 2 instructions an iteration


def net(sizes: list[int], optimizer: dict) -> dict:
    """A float32 relu classifier inputs-hidden...-classes with softmax and cross-entropy."""
    *hidden, classes = sizes[1:]
    layers = [{"units": u, "activation": "relu", "weight": {"init": "he_uniform"}} for u in hidden]
    layers.append({"units": classes, "activation": "softmax"})
    return {"name": "net", "dtype": "float32", "inputs": sizes[0], "seed": 1, "layers": layers,
            "loss": {"type": "cross_entropy"}, "optimizer": optimizer}  # fmt: skip


def example(name: str) -> dict:
    """examples/NAME.yaml in float32 (its training data is not used: the rows are made here)."""
    data = yaml.safe_load((HERE.parent / f"examples/{name}.yaml").read_text())
    return {**data, "name": "net", "dtype": "float32"}


NETS = [
    ("iris 4-8-3, Adam", net([4, 8, 3], {"type": "adam", "lr": 0.01})),
    ("64-32-10, SGD", net([64, 32, 10], {"type": "sgd", "lr": 0.05})),
    ("digits CNN, Adam", example("digits_cnn")),
    ("sine LSTM 12x1-8-1, Adam", example("sine_lstm")),
]
# (chunk, lean): lean = NET_NO_SHUFFLE, NET_WT_COPY=0, NET_ONE_CHUNK and NET_SHARE (no copies of
# shuffled rows, no transposed weights, no gradient buffer but the biases' for SGD and Adam,
# tensors sharing memory by liveness: a device training in file order with batches of at most a
# chunk)
LAYOUTS = [(1, False), (1, True), (16, False), (16, True)]


def measure(data: dict, rows: int, folder: Path, lean: bool = False) -> dict:
    program = lower(symbackprop.derive(symbackprop.parse_spec(data)))
    for name, text in render(symbackprop.parse_spec(data), "c").items():
        (folder / name).write_text(text)
    rng = np.random.default_rng(0)
    inputs = data["inputs"] if isinstance(data["inputs"], int) else int(np.prod(data["inputs"]))
    X = rng.normal(size=(rows, inputs))
    T = np.eye(data["layers"][-1]["units"])[rng.integers(0, data["layers"][-1]["units"], rows)]

    def array(name, a):
        body = ", ".join("{" + ", ".join(f"{v:.8e}F" for v in row) + "}" for row in a)
        return f"static const float {name}[{a.shape[0]}][{a.shape[1]}] = {{{body}}};\n"

    (folder / "data.h").write_text(
        f"#define ROWS {rows}\n#define STEPS {STEPS}\n" + array("X", X) + array("T", T)
    )
    flags = (
        f"-I{folder}",
        f"-DNET_CHUNK={rows}",
        "-DNET_NO_FILES",
        *((f"-DNET_{d}" for d in LEAN) if lean else ()),
    )
    image = cm.build_firmware(
        [folder / "net.c", HERE / "cortex_m/steps.c"], folder / "b.elf", flags
    )
    calibration, ticks = (int(w, 16) for w in cm.run(image, icount=True).split())
    per_tick = 2 * LOOPS / calibration
    lib = cm.compile_object(folder / "net.c", folder / "net.o", flags[1:])
    return {
        **memory(program, rows, 4, not lean, False if lean else None, one_chunk=lean, share=lean),
        **macs(program),
        "library": cm.text_bytes(lib),
        # footprint --arch cortex-m4: what the library adds to an image, libm and libgcc included
        "linked": code_bytes(program, "cortex-m4", LEAN if lean else (), rows),
        "flash": cm.text_bytes(image),
        "instructions": round(ticks * per_tick / STEPS),
    }


def main() -> None:
    """The table for every net, or for those whose label contains one of argv's words."""
    import sys

    words = sys.argv[1:]
    print(
        "| net | chunk | params | state | workspace | RAM to train | library | linked "
        "| program flash | instructions/step |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, data in NETS:
        if words and not any(w in label for w in words):
            continue
        for rows, lean in LAYOUTS:
            with tempfile.TemporaryDirectory() as tmp:
                m = measure(data, rows, Path(tmp), lean)
            ram = sum(m[k] for k in ("params_bytes", "state_bytes", "workspace_bytes"))
            chunk = f"{rows} lean" if lean else str(rows)
            print(f"| {label} | {chunk} | {m['params_bytes']:,} | "
                  f"{m['state_bytes']:,} | {m['workspace_bytes']:,} | {ram:,} | "
                  f"{m['library']:,} | {m['linked']:,} | {m['flash']:,} | "
                  f"{m['instructions']:,} |")  # fmt: skip


if __name__ == "__main__":
    main()
