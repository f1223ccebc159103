"""What the generated C library costs on a device (CONTRACT §9, ``symbackprop footprint``).

Memory is the byte size of the library's structs, by C's layout rules from the same context the
header is printed from (the test compiles a probe and compares with ``sizeof``): parameters,
gradients (trainable tensors only), optimizer state (hyperparameters, the step count and one
gradient-shaped buffer per state name) and the workspace for a chunk of B rows. Code is the
library's text and data compiled with -Os (NAME_NO_FILES: the file functions are not on a device)
by the host's cc, or arm-none-eabi-gcc for ``--arch cortex-m4``. Multiply-adds per sample: the
matrix products of the forward pass, and of a training step (forward and backward: frozen layers
below the lowest trainable parameter have no backward products at all).
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from pathlib import Path

from ...spec.errors import SpecError
from ..program import Program
from .backend import context, files

ARCHES = {"host": 8, "cortex-m4": 4}  # pointer bytes
_MATRIX_BACKWARD = ("matvec_t", "grad_weight")
# products of kinds whose multiply-adds are not counted yet (issue 17): the report says so
# rather than print a count without them
_UNCOUNTED = {"conv", "conv_grad_input", "grad_conv_weight", "rnn", "rnn_bptt",
              "grad_seq_weight", "seq_matvec_t"}  # fmt: skip


def _round(n: int, align: int) -> int:
    return -(-n // align) * align


def memory(program: Program, batch: int = 1, pointer: int = 8) -> dict[str, int]:
    """Bytes of params, grads, state and the workspace for ``batch`` rows (NAME_CHUNK)."""
    ctx = context(program)
    real = 4 if ctx["dtype"] == "float32" else 8
    params = sum(p["size"] for p in ctx["params"]) * real
    trainable = sum(p["size"] for p in ctx["trainable"]) * real
    grads, grads_align = (trainable, real) if ctx["trainable"] else (1, 1)
    hyper = 8 * len(ctx["update"]["hyper"])
    state = _round(hyper + 8 + len(ctx["update"]["state"]) * grads, 8)
    rows = (ctx["inputs"] + ctx["outputs"]) * batch
    rows += sum(batch * (1 if a["scalar"] else a["units"]) for a in ctx["arrays"])
    rows += sum(w["rows"] * w["cols"] for w in ctx["transposes"])
    rows += ctx["conv_scratch"]["convbuf"]  # one sample's padded maps (NAME_BLAS adds convcols)
    work = 2 * pointer + rows * real
    work = _round(_round(work, grads_align) + grads, max(pointer, real))
    return {"params_bytes": params, "grads_bytes": grads, "state_bytes": state,
            "workspace_bytes": work}  # fmt: skip


def macs(program: Program) -> dict[str, int | None]:
    """Multiply-adds per sample of the forward pass and of a training step (matrix products;
    a dense layer acting on each row of a sequence or map does its product once a row). None
    when the network has products of kinds not counted yet (convolution, recurrent layers)."""
    if {o.op.kind for o in (*program.forward, *program.backward)} & _UNCOUNTED:
        return {"forward_macs": None, "train_macs": None}

    def rows(tensor: str) -> int:
        return math.prod(program.shapes[tensor][:-1])

    forward = 0
    for o in program.forward:
        if o.op.kind == "affine":
            w = program.param(o.op.args[0])
            forward += w.shape[0] * w.shape[1] * rows(o.op.out)
    backward = 0
    for o in program.backward:
        if o.op.kind in _MATRIX_BACKWARD:
            w = program.param(o.op.args[0] if o.op.kind == "matvec_t" else o.op.args[2])
            backward += (
                w.shape[0] * w.shape[1] * rows(o.op.args[1 if o.op.kind == "matvec_t" else 0])
            )
    return {"forward_macs": forward, "train_macs": forward + backward}


def _count(n: int | None) -> str:
    return "not counted yet (convolution, recurrent layers)" if n is None else f"{n:,}"


def code_bytes(program: Program, arch: str = "host") -> int:
    """Text and data of the library compiled with -Os, without its file functions."""
    from .build import compiler

    name = program.spec.name
    flags = [f"-D{name.upper()}_NO_FILES", f"-D{name.upper()}_MAX_ROWS=1", "-Os"]
    with tempfile.TemporaryDirectory(prefix="symbackprop-") as tmp:
        folder = Path(tmp)
        for fname, text in files(program).items():
            (folder / fname).write_text(text)
        obj = folder / "lib.o"
        if arch == "cortex-m4":
            from . import cortex_m

            cortex_m.compile_object(folder / f"{name}.c", obj, tuple(flags))
            return cortex_m.text_bytes(obj)
        cmd = [*compiler(), "-std=c99", *flags, "-c", str(folder / f"{name}.c"), "-o", str(obj)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SpecError("CC", f"compiling the library failed: {done.stderr.strip()[:200]}")
        out = subprocess.run(["size", str(obj)], capture_output=True, text=True)
        if out.returncode != 0:
            raise SpecError("CC", "size (binutils) is needed for the code size")
        text, data = out.stdout.strip().split("\n")[-1].split()[:2]
        return int(text) + int(data)


def footprint(program: Program, batch: int = 1, arch: str = "host") -> dict:
    """The report: CONTRACT §9's keys, plus what they are about."""
    if batch < 1:
        raise SpecError("--batch", f"must be at least 1, got {batch}")
    return {
        "name": program.spec.name,
        "dtype": program.spec.dtype,
        "batch": batch,
        "arch": arch,
        **memory(program, batch, ARCHES[arch]),
        "code_bytes": code_bytes(program, arch),
        **macs(program),
        "frozen": [p.name for p in program.params if not p.trainable],
    }


def text(report: dict) -> str:
    """The report as aligned lines, with totals."""
    r = report
    ram = r["params_bytes"] + r["state_bytes"] + r["workspace_bytes"]
    cc = "arm-none-eabi-gcc" if r["arch"] == "cortex-m4" else "cc"
    rows = "1 row" if r["batch"] == 1 else f"{r['batch']} rows"
    lines = [
        f"footprint of '{r['name']}' ({r['dtype']}, {r['arch']}, a chunk of {rows})",
        f"  parameters        {r['params_bytes']:>10,} B",
        f"  gradients         {r['grads_bytes']:>10,} B (a grads struct; step keeps its own in "
        "the workspace)",
        f"  optimizer state   {r['state_bytes']:>10,} B",
        f"  workspace         {r['workspace_bytes']:>10,} B",
        f"  RAM to train      {ram:>10,} B (parameters, state and workspace)",
        f"  code              {r['code_bytes']:>10,} B (-Os, {cc}, without file functions)",
        f"  forward           {_count(r['forward_macs']):>10} multiply-adds a sample",
        f"  training step     {_count(r['train_macs']):>10} multiply-adds a sample",
    ]
    if r["frozen"]:
        lines.append(f"  frozen (no gradient, no state): {', '.join(r['frozen'])}")
    return "\n".join(lines)


def summary(program: Program) -> str:
    """The line ``generate --target c`` prints: memory at the default chunk, and the work."""
    from .backend import CHUNK

    m, w = memory(program, CHUNK), macs(program)
    return (
        f"footprint: parameters {m['params_bytes']:,} B, optimizer state {m['state_bytes']:,} B, "
        f"workspace {m['workspace_bytes']:,} B at the default chunk of {CHUNK} rows "
        f"(-D{program.spec.name.upper()}_CHUNK=B; symbackprop footprint --batch B); "
        + (
            f"{w['forward_macs']:,} multiply-adds a sample forward, {w['train_macs']:,} a "
            "training step"
            if w["forward_macs"] is not None
            else f"multiply-adds {_count(None)}"
        )
    )


def render_report(report: dict, fmt: str) -> str:
    """``text`` or ``json``."""
    return json.dumps(report, indent=2) if fmt == "json" else text(report)


__all__ = ["ARCHES", "code_bytes", "footprint", "macs", "memory", "render_report", "summary",
           "text"]  # fmt: skip
