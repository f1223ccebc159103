"""What the generated C library costs on a device (CONTRACT §9, ``symbackprop footprint``).

Memory is the byte size of the library's structs, by C's layout rules from the same context the
header is printed from (the test compiles a probe and compares with ``sizeof``): parameters,
gradients (trainable tensors only), optimizer state (hyperparameters, the step count and one
gradient-shaped buffer per state name) and the workspace for a chunk of B rows. Code is the
library's text and data compiled with -Os for that chunk (NAME_CHUNK=B; NAME_NO_FILES: the file
functions are not on a device) by the host's cc, or arm-none-eabi-gcc for ``--arch cortex-m4``.
Multiply-adds per sample: the matrix products of the forward pass, and of a training step
(forward and backward: frozen layers below the lowest trainable parameter have no backward
products at all).
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
WT_MIN_CHUNK = 8  # the header's NAME_WT_COPY default: a transposed weight copy from 8 rows


def _rows(program: Program, tensor: str) -> int:
    """Rows of a tensor per sample: 1 for a vector, T for a sequence [T, K], ... (a dense layer
    acting on each row of a sequence or map does its product once a row)."""
    return math.prod(program.shapes[tensor][:-1])


def _size(program: Program, name: str) -> int:
    return math.prod(program.param(name).shape)


# Multiply-adds per sample of each op kind with products: (op, program) -> count. A kind in
# neither this table nor _NO_PRODUCTS (a new kind of another layer) makes the count None (the
# report says "not counted") rather than a count without it.
_COSTS = {
    # out = W x (+ b), W [units, fan_in], once per row of the output
    "affine": lambda o, p: _size(p, o.args[0]) * _rows(p, o.out),
    # delta_prev = W^T delta, once per row of delta
    "matvec_t": lambda o, p: _size(p, o.args[0]) * _rows(p, o.args[1]),
    # dW = sum over rows of delta x^T
    "grad_weight": lambda o, p: _size(p, o.args[2]) * _rows(p, o.args[0]),
    # each output element: the kernel over its group's input channels, W [O, C/g, k...]
    "conv": lambda o, p: math.prod(p.shapes[o.out]) * math.prod(p.param(o.args[0]).shape[1:]),
    # the input's gradient: every output gradient element times its kernel (the same count)
    "conv_grad_input": lambda o, p: (
        math.prod(p.shapes[o.args[1]]) * math.prod(p.param(o.args[0]).shape[1:])
    ),
    "grad_conv_weight": lambda o, p: (
        math.prod(p.shapes[o.args[0]]) * math.prod(p.param(o.args[2]).shape[1:])
    ),
    # h_t = f(W x_t + U h_(t-1) + b): W at every step, U from the second (h_0 = 0)
    "rnn": lambda o, p: (
        _size(p, o.args[0]) * p.shapes[o.args[4]][0]
        + _size(p, o.args[1]) * (p.shapes[o.args[4]][0] - 1)
    ),
    # delta_t = (g_t + U^T delta_(t+1)) f'(z_t): U at the steps that get a later delta
    "rnn_bptt": lambda o, p: _size(p, o.args[0]) * _bptt_steps(o, p),
    # dW = sum_t delta_t inp_(t-shift)^T
    "grad_seq_weight": lambda o, p: (
        _size(p, o.args[2]) * (p.shapes[o.args[0]][0] - o.attr("shift"))
    ),
    # x_t's gradient W^T delta_t at every step
    "seq_matvec_t": lambda o, p: _size(p, o.args[0]) * p.shapes[o.args[1]][0],
    # a gated cell (gru, lstm): the stacked gates' W x_t at every step, U h_(t-1) from the second
    # (h_0 = 0); its statements are elementwise
    "cell": lambda o, p: (
        _size(p, o.args[0]) * p.shapes[o.args[4]][0]
        + _size(p, o.args[1]) * (p.shapes[o.args[4]][0] - 1)
    ),
    # BPTT through it: U^T dq_(t+1) at the steps that get a later delta
    "cell_bptt": lambda o, p: _size(p, o.args[0]) * _bptt_steps(o, p),
}
_NO_PRODUCTS = {"map", "loss", "grad_bias", "grad_reduce", "grad_conv_bias", "grad_seq_bias",
                "softmax", "logsumexp", "softmax_backward", "concat", "slice", "reshape",
                "reduce", "running", "mask", "maxpool", "maxpool_backward", "avgpool",
                "avgpool_backward", "global_avgpool", "global_avgpool_backward", "time_last",
                "time_last_backward", "pad"}  # fmt: skip


def _bptt_steps(op, program: Program) -> int:
    """The steps t < T-1 whose delta goes back through U (not where truncated BPTT cuts)."""
    steps = program.shapes[op.args[1]][0]
    k = op.attr("truncate", 0)
    return sum(1 for t in range(steps - 1) if not (k and (t + 1) % k == 0))


def _round(n: int, align: int) -> int:
    return -(-n // align) * align


def memory(
    program: Program,
    batch: int = 1,
    pointer: int = 8,
    shuffle: bool = True,
    wt_copy: bool | None = None,
    one_chunk: bool = False,
    share: bool = False,
) -> dict[str, int]:
    """Bytes of params, grads, state and the workspace for ``batch`` rows (NAME_CHUNK);
    ``shuffle``: the workspace has room for a shuffled chunk's rows (not with NAME_NO_SHUFFLE,
    nor at one row); ``wt_copy``: it holds a transposed copy of each weight matrix (NAME_WT_COPY;
    None: the header's default, from WT_MIN_CHUNK rows); ``one_chunk``: NAME_ONE_CHUNK, which
    for a stateless linear rule (SGD) keeps the biases' gradients only; ``share``: NAME_SHARE,
    the per-row tensors in one block by liveness (share.py)."""
    ctx = context(program)
    real = 4 if ctx["dtype"] == "float32" else 8
    params = sum(p["size"] for p in ctx["params"]) * real
    trainable = sum(p["size"] for p in ctx["trainable"]) * real
    grads, grads_align = (trainable, real) if ctx["trainable"] else (1, 1)
    hyper = 8 * len(ctx["update"]["hyper"])
    state = _round(hyper + 8 + len(ctx["update"]["state"]) * grads, 8)
    rows = (ctx["inputs"] + ctx["outputs"]) * batch if shuffle and batch > 1 else 0
    if share:  # the per-batch tensors, then the shared block of the per-row ones
        rows += sum(a["units"] for a in ctx["arrays"] if a["batch"])
        rows += ctx["shared"]["units"] * batch
    else:
        rows += sum(a["units"] * (1 if a["batch"] else batch) for a in ctx["arrays"])
    if batch >= WT_MIN_CHUNK if wt_copy is None else wt_copy:
        rows += sum(w["rows"] * w["cols"] for w in ctx["transposes"])
    rows += sum(w["rows"] * w["cols"] for w in ctx["loop_transposes"])
    rows += ctx["conv_scratch"]["convbuf"]  # one sample's padded maps (NAME_BLAS adds convcols)
    if one_chunk and ctx["bias_grads"] is not None:  # no grads struct in the workspace
        rows += sum(p["size"] for p in ctx["bias_grads"])
        work = _round(2 * pointer + rows * real, max(pointer, real))
    else:
        work = 2 * pointer + rows * real
        work = _round(_round(work, grads_align) + grads, max(pointer, real))
    return {"params_bytes": params, "grads_bytes": grads, "state_bytes": state,
            "workspace_bytes": work}  # fmt: skip


def macs(program: Program) -> dict[str, int | None]:
    """Multiply-adds per sample of the forward pass and of a training step, by each op kind's
    cost rule (_COSTS); None when the network has an op kind with no rule yet."""
    ops = (*program.forward, *program.backward)
    if any(o.op.kind not in _COSTS and o.op.kind not in _NO_PRODUCTS for o in ops):
        return {"forward_macs": None, "train_macs": None}

    def total(lowered) -> int:
        return sum(_COSTS[o.op.kind](o.op, program) for o in lowered if o.op.kind in _COSTS)

    forward = total(program.forward)
    return {"forward_macs": forward, "train_macs": forward + total(program.backward)}


def _count(n: int | None) -> str:
    return "not counted (an op kind with no cost rule)" if n is None else f"{n:,}"


def code_bytes(
    program: Program, arch: str = "host", defines: tuple[str, ...] = (), batch: int | None = None
) -> int:
    """Text and data of the library compiled with -Os, without its file functions (and with
    NAME_ + each of ``defines``), for a chunk of ``batch`` rows (None: the header's default)."""
    from .build import compiler

    name = program.spec.name
    chunk = () if batch is None else (f"CHUNK={batch}",)
    flags = [f"-D{name.upper()}_NO_FILES", f"-D{name.upper()}_MAX_ROWS=1", "-Os",
             *(f"-D{name.upper()}_{d}" for d in (*chunk, *defines))]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="symbackprop-") as tmp:
        folder = Path(tmp)
        for fname, text in files(program).items():
            (folder / fname).write_text(text)
        obj = folder / "lib.o"
        if arch == "cortex-m4":
            return _linked_bytes(folder, name, tuple(flags))
        cmd = [*compiler(), "-std=c99", *flags, "-c", str(folder / f"{name}.c"), "-o", str(obj)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SpecError("CC", f"compiling the library failed: {done.stderr.strip()[:200]}")
        out = subprocess.run(["size", str(obj)], capture_output=True, text=True)
        if out.returncode != 0:
            raise SpecError("CC", "size (binutils) is needed for the code size")
        text, data = out.stdout.strip().split("\n")[-1].split()[:2]
        return int(text) + int(data)


# A device program that trains and predicts: what it links from the library and from libm,
# libgcc and newlib-nano (the baseline is the same program without the library's calls).
_PROBE = """#include "{name}.h"
static {name}_params p;
static {name}_state s;
static {name}_workspace ws;
static {name}_real X[{NAME}_INPUTS], T[{NAME}_OUTPUTS], Y[{NAME}_OUTPUTS];
int main(void)
{{
#ifndef BASELINE
    {name}_init_params(&p, {NAME}_SEED);
    {name}_init_state(&s);
    {name}_train(&p, &s, X, T, 1, 1, 1, 0, 0, 0, 0, 0, &ws);
    {name}_forward(&p, X, 1, Y, &ws);
#endif
    return 0;
}}
"""


def _linked_bytes(folder: Path, name: str, flags: tuple[str, ...]) -> int:
    """Flash (text + data) the library adds to a Cortex-M4 image, with the libm, libgcc and
    libc functions it pulls in: an image of a probe that calls init_params, init_state, train
    and forward, less the same image without the calls (--gc-sections drops what is unused)."""
    from . import cortex_m

    (folder / "probe.c").write_text(_PROBE.format(name=name, NAME=name.upper()))
    sizes = []
    for extra in ((), ("-DBASELINE",)):
        image = folder / f"probe{len(extra)}.elf"
        sources = [folder / "probe.c", folder / f"{name}.c"]
        cortex_m.build_firmware(sources, image, (f"-I{folder}", *flags, *extra))
        sizes.append(cortex_m.text_bytes(image))
    return sizes[0] - sizes[1]


LEAN = ("NO_SHUFFLE", "WT_COPY=0", "ONE_CHUNK", "SHARE")  # footprint --lean: the smallest


def footprint(program: Program, batch: int = 1, arch: str = "host", lean: bool = False) -> dict:
    """The report: CONTRACT §9's keys, plus what they are about. ``lean``: built with LEAN's
    defines (train in file order, W read in place, SGD with no gradient buffer, tensors sharing
    memory by liveness)."""
    if batch < 1:
        raise SpecError("--batch", f"must be at least 1, got {batch}")
    layout = {"shuffle": False, "wt_copy": False, "one_chunk": True, "share": True} if lean else {}
    return {
        "name": program.spec.name,
        "dtype": program.spec.dtype,
        "batch": batch,
        "arch": arch,
        "lean": lean,
        **memory(program, batch, ARCHES[arch], **layout),
        "code_bytes": code_bytes(program, arch, LEAN if lean else (), batch),
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
        f"footprint of '{r['name']}' ({r['dtype']}, {r['arch']}, a chunk of {rows}"
        + (", lean: " + ", ".join(LEAN) if r.get("lean") else "")
        + ")",
        f"  parameters        {r['params_bytes']:>10,} B",
        f"  gradients         {r['grads_bytes']:>10,} B (a grads struct; step keeps its own in "
        + (
            "the workspace, or the biases' alone under ONE_CHUNK)"
            if r.get("lean")
            else "the workspace)"
        ),
        f"  optimizer state   {r['state_bytes']:>10,} B",
        f"  workspace         {r['workspace_bytes']:>10,} B",
        f"  RAM to train      {ram:>10,} B (parameters, state and workspace)",
        f"  code              {r['code_bytes']:>10,} B (-Os, {cc}, without file functions"
        + (
            ", linked: with the libm and libgcc functions it calls)"
            if r["arch"] == "cortex-m4"
            else ")"
        ),
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


__all__ = ["ARCHES", "LEAN", "code_bytes", "footprint", "macs", "memory", "render_report",
           "summary", "text"]  # fmt: skip
