"""The torch target: a Program rendered through templates/torch into one PyTorch module.

The module registers two custom operators (torch.library.custom_op) whose backward passes are the
derived formulas (register_autograd), with fake implementations for torch.compile:

- the loss: E(x, t, params); its backward is the Program's backward program times dE.
- the forward: y(x, params); its backward is the vector-Jacobian product y -> params, derived
  by the same engine as the gradient of E = Σ y ⊙ t (a custom loss, reduction sum), so the
  incoming gradient of y plays the target t.

Each op returns, besides E or y, the forward values its backward reads (custom ops save only
inputs and outputs), marked non-differentiable. Torch is not imported here: generating the
target does not need it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
from importlib import resources

import sympy as sp

from ...core import prng
from ...core.chain_rule import derive
from ...core.ops import kind
from ...core.ops.base import full_shape
from ...core.symbols import T, Y
from ...spec.load import LossSpec, Spec
from ..numpy.backend import safe_io_source
from ..program import Lowered, Program, lower
from ..schedule import torch_class
from ..support import CLIPPING, refuse_unimplemented
from .fuse import in_place, relu_masks, seed_code, softmax_cross_entropy

TEMPLATE = "torch/module.py.j2"
RUNTIME_START = "GAMMA = "  # runtime.py is included from this line on
MAX_OP_ARGS = 64  # PyTorch's dispatcher takes no operator with more arguments
_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}


def vjp_program(spec: Spec) -> Program:
    """The Program of E = Σ_n Σ_k y ⊙ t: its backward is the vector-Jacobian product of the
    network output y with the cotangent t, for every trainable parameter."""
    loss = LossSpec("custom", "sum", 1.0, Y * T, "y*t")
    return lower(derive(dataclasses.replace(spec, loss=loss)))


def runtime_source() -> str:
    """symbackprop/codegen/torch/runtime.py from its first definition on (read, not imported:
    it imports torch), then core/prng.py's ``distribution``, which it shares with the other
    targets."""
    text = (resources.files(__package__) / "runtime.py").read_text(encoding="utf-8")
    shared = inspect.getsource(prng.distribution)  # the init schemes' bounds, as NumPy and C
    return text[text.index("\n" + RUNTIME_START) + 1 :].rstrip() + "\n\n\n" + shared


def _symbols(o: Lowered) -> set[str]:
    """Every name an op's code reads: for an op with an expression, the free symbols of its
    CSE'd expressions (its args only document what they may use), and its first arg where the
    code takes a shape from it (a constant, grad_reduce's ones_like); else its args."""
    if o.expr is None:  # a gradient op names its parameter last, for the record only
        args = o.op.args[:-1] if o.op.kind.startswith("grad_") else o.op.args
        return set(args) - {""}
    names: set[str] = set()
    for expr in [o.expr, *(e for _, e in o.temps)]:
        names |= {s.name for s in expr.free_symbols}
    names -= {"N"} | {t.name for t, _ in o.temps}
    if o.op.args and (not names or o.op.kind == "grad_reduce"):
        names.add(o.op.args[0])
    return names


def _alias(o: Lowered) -> str | None:
    """The name a map op merely renames (a3 = z3 for an identity activation), else None."""
    if o.op.kind == "map" and not o.temps and isinstance(o.expr, sp.Symbol):
        return o.expr.name
    return None


def _needed(ops: tuple[Lowered, ...], wanted: set[str]) -> tuple[Lowered, ...]:
    """The ops (in order) that ``wanted`` depends on."""
    keep, need = [], set(wanted)
    for o in reversed(ops):
        if o.op.out in need:
            keep.append(o)
            need |= _symbols(o)
    return tuple(reversed(keep))


class _Ops:
    """Turns lowered ops into the plain dicts the op macros print."""

    def __init__(self, program: Program, printer):
        self.program, self.printer = program, printer

    def _rows(self, name: str) -> bool:
        """Whether a tensor is a matrix of rows: one vector per sample (torch.mm takes it)."""
        return name not in self.program.batch and len(self.program.shapes.get(name, (0, 0))) == 1

    def __call__(self, o: Lowered) -> dict:
        op, printer = o.op, self.printer
        arrays = {s.name for s in o.expr.free_symbols} - {"N"} if o.expr is not None else set()
        scale = "" if op.scale is None or op.scale == 1 else f"({printer.doprint(op.scale)}) * "
        shared = op.kind == "grad_bias" and self.program.param(op.args[1]).kind == "shared"
        ctx = self.program.context
        rows = (op.kind == "map" and bool(arrays) and not kind(op).per_batch(op)
                and all(ctx.is_batch(a) for a in arrays))  # fmt: skip
        return {
            "kind": op.kind,
            "out": op.out,
            "args": list(op.args),
            "rows": rows,
            # a gradient of a dense layer acting on each row of a sequence (or map): rows first
            "per_row": op.kind in ("grad_weight", "grad_bias")
            and len(self.program.shapes.get(op.args[0], ())) > 1,
            "full": list(full_shape(op, ctx)) if op.kind == "reduce" else [],
            "p": repr(float(op.attr("p"))) if op.kind == "mask" else "",
            "temps": [{"name": t.name, "code": printer.doprint(e)} for t, e in o.temps],
            "expr": printer.doprint(o.expr) if o.expr is not None else "",
            "scale_mul": scale,
            "bias": f", {op.args[2]}" if op.kind == "affine" and op.args[2] else "",
            "formula": o.formula,
            "const": o.expr is not None and not arrays,
            "seeded": False,
            "mm": op.kind in ("matvec_t", "grad_weight")
            and self._rows(op.args[1])
            and (op.kind == "matvec_t" or self._rows(op.args[0])),
            "reduced": o.expr is not None and o.expr.func.__name__ == "SoftmaxCrossEntropy",
            "like": op.args[0] if op.args else "x",
            "shared": shared,
            "attrs": {
                k: printer.doprint(v)
                if isinstance(v, sp.Basic)
                else [printer.doprint(e) for e in v]  # a cell's statements
                if isinstance(v, tuple) and v and all(isinstance(e, sp.Basic) for e in v)
                else v
                for k, v in op.attrs
            },  # a loop's step functions, printed
            **_conv_fields(op, self.program),
            **_channel_fields(op, self.program),
            "seq": {
                a: list(self.program.shapes[a])
                for a in op.args
                if a in self.program.shapes and len(self.program.shapes[a]) == 2
            },
        }


def _channel_fields(op, program: Program) -> dict:
    """Batch norm over channels: a transpose's channels and positions, the axes a parameter
    gradient of [S, C] rows sums over, a map's mask drawn over its flat elements."""
    if op.kind == "transpose":
        mapped = program.shapes[op.args[0]] if op.attr("to") == "last" else op.attr("shape")
        return {"channels": mapped[0], "positions": math.prod(mapped[1:])}
    if op.kind == "grad_reduce" and op.attr("axes") == "batch":
        rank, prank = len(program.shapes[op.args[0]]), len(program.param(op.args[-1]).shape)
        if rank > prank:
            return {"sum_axes": repr(tuple(range(rank + 1 - prank)))}
    if op.kind == "mask" and len(op.attr("shape")) > 1:
        return {"width": math.prod(op.attr("shape"))}
    return {}


_CONV_KINDS = {"conv", "conv_grad_input", "grad_conv_weight", "grad_conv_bias", "maxpool",
               "maxpool_backward", "avgpool", "avgpool_backward", "global_avgpool",
               "global_avgpool_backward"}  # fmt: skip


def _conv_fields(op, program: Program) -> dict:
    """What the convolution and pooling macros print besides the op's attrs: the
    torch.nn.functional suffix (1d, 2d), padding as torch takes it (symmetric: an int per axis;
    uneven: an F.pad list, applied first), and the output_padding of a transposed convolution
    that gives back the input's exact size."""
    if op.kind not in _CONV_KINDS:
        return {}
    a = dict(op.attrs)
    if op.kind == "grad_conv_bias":
        rank = len(program.shapes[op.args[0]])
        return {"spatial_axes": repr((0, *range(2, rank + 1))),
                "shared": program.param(op.args[1]).kind == "shared"}  # fmt: skip
    if op.kind.startswith("global_avgpool"):
        shape = tuple(a.get("shape", ()))
        return {"size": math.prod(shape[1:]), "ones": ", 1" * (len(shape) - 1)}
    pad = a["padding"]
    nd = len(pad)
    wshape = repr(tuple(program.param(op.args[2]).shape)) if op.kind == "grad_conv_weight" else ""
    even = all(lo == hi for lo, hi in pad)
    out = {"nd": f"{nd}d", "pad": repr(tuple(lo for lo, _ in pad)) if even else "0",
           "fpad": "" if even else repr([v for lo, hi in reversed(pad) for v in (lo, hi)]),
           "ks": repr(tuple(a.get("kernel", ()))), "wshape": wshape,
           "dil": repr(tuple(a.get("dilation", (1,) * nd)))}  # fmt: skip
    if op.kind in ("conv_grad_input", "avgpool_backward"):
        shape = a["shape"]
        ks = a.get("kernel") or program.param(op.args[0]).shape[2:]
        dil, stride = a.get("dilation", (1,) * nd), a["stride"]
        g_shape = program.shapes[op.args[1] if op.kind == "conv_grad_input" else op.args[0]]
        made = [(p - 1) * s + d * (k - 1) + 1 for p, s, d, k in
                zip(g_shape[1:], stride, dil, ks, strict=True)]  # fmt: skip
        full = [n + lo + hi for n, (lo, hi) in zip(shape[1:], pad, strict=True)]
        out["output_padding"] = repr(tuple(f - m for f, m in zip(full, made, strict=True)))
        out["crop"] = (
            ""
            if even
            else ", ".join(
                [":", ":"] + [f"{lo}:{lo + n}" for n, (lo, _) in zip(shape[1:], pad, strict=True)]
            )
        )
        out["channels"] = shape[0]
        out["window"] = math.prod(ks)
    return out


def _custom_op(program: Program, printer, kind: str) -> dict:
    """The context of one custom op: 'loss' (E from x, t) or 'forward' (y from x, whose
    backward is the VJP program, with the incoming gradient as t).

    Where training and evaluation mode differ (batch norm, dropout): the loss op is training
    mode, takes the step count (its dropout masks') as an input after t and also returns the
    batch statistics the buffers' updates read; the forward op is evaluation mode and has no
    derived gradient (the derivation is of training mode)."""
    modes = program.modes_differ
    backward = () if modes and kind == "forward" else relu_masks(program)
    if kind == "forward" and modes:
        program = dataclasses.replace(program, forward=program.evaluation)
    program = dataclasses.replace(program, backward=backward)
    params = [p.name for p in program.params]
    head = (["x", "t", "step"] if modes else ["x", "t"]) if kind == "loss" else ["x"]
    inputs = [*head, *params]
    result = "E" if kind == "loss" else program.output
    produced = {o.op.out for o in program.backward}
    backward_reads = set().union(*(_symbols(o) for o in program.backward)) - produced
    if kind == "loss":  # the batch statistics the buffers' updates read
        backward_reads |= {a for o in program.updates for a in o.op.args} - set(params)
    aliases = {o.op.out: _alias(o) for o in program.forward if _alias(o)}

    def root(name: str) -> str:
        while name in aliases:
            name = aliases[name]
        return name

    def source(name: str) -> str:
        """Where the backward finds ``name``: an input, the result, or another output."""
        if name in inputs:
            return name
        return result if root(name) == root(result) else root(name)

    reads = sorted(backward_reads - {"t"}) if kind == "forward" else sorted(backward_reads)
    loss = ()
    if kind == "loss":
        others = program.forward + program.backward + program.updates
        loss = (softmax_cross_entropy(program, others) or program.loss,)
    ops = program.forward + loss
    forward = _needed(ops, {result} | {root(n) for n in reads})
    outputs = [result, *sorted({source(n) for n in reads} - set(inputs) - {result})]
    forward = in_place(program, forward, set(outputs))
    saved = [n for n in (*inputs, *outputs) if n in {source(m) for m in reads}]
    prelude = [(n, source(n)) for n in reads if source(n) != n]
    grads = {o.op.args[-1]: o.op.out for o in program.backward if o.op.kind.startswith("grad_")}
    shapes = {n: program.shapes[n] for n in outputs if n != "E"}

    def fake(n: str) -> str:
        if n == "E":
            return "x.new_empty(())"
        if n in program.batch:  # one for the batch: no sample axis
            return f"x.new_empty({tuple(shapes[n])!r})"
        return f"x.new_empty({_fake_shape(shapes[n])})"

    to_dict = _Ops(program, printer)
    backward = [to_dict(o) for o in in_place(program, program.backward, set(grads.values()))]
    if kind == "loss" and backward and not backward[0]["rows"] and not backward[0]["const"]:
        code = seed_code(program.backward[0], printer)
        if code:
            backward[0] |= {"expr": code, "seeded": True}
    return {
        "kind": kind,
        "inputs": inputs,
        **_arguments(inputs, params, [grads.get(n, "None") for n in inputs]),
        "params": params,
        "result": result,
        "forward": [to_dict(o) for o in forward],
        "outputs": outputs,
        "fake": [fake(n) for n in outputs],
        "saved": saved,
        "prelude": [{"name": n, "source": s} for n, s in prelude],
        "backward": backward,
        "seed": program.backward[0].op.out if kind == "loss" and program.backward else None,
        "underived": [str(i) for i, n in enumerate(inputs) if n not in grads],
        "underived_names": [f'{i}: "{n}"' for i, n in enumerate(inputs) if n not in grads],
        "updates": [to_dict(o) for o in program.updates] if kind == "loss" else [],
        "update_reads": sorted({a for o in program.updates for a in o.op.args} - set(params)),
        "update_buffers": [o.op.out for o in program.updates] if kind == "loss" else [],
    }


def _arguments(inputs: list[str], params: list[str], grads: list[str]) -> dict:
    """How an op takes its inputs: one Tensor argument each, or, past the dispatcher's limit of
    MAX_OP_ARGS arguments, the parameters as one list[Tensor] (a deep net)."""
    head = inputs[: len(inputs) - len(params)]
    nones = ["None"] * len(inputs)
    if len(inputs) <= MAX_OP_ARGS:
        return {
            "packed": False,
            "signature": ", ".join(f"{n}: Tensor" for n in inputs),
            "arguments": inputs,
            "grads": grads,
            "nones": nones,
        }

    def packed(values: list[str]) -> list[str]:
        return [*values[: len(head)], "[" + ", ".join(values[len(head) :]) + "]"]

    return {
        "packed": True,
        "signature": ", ".join([*(f"{n}: Tensor" for n in head), "params: list[Tensor]"]),
        "arguments": [*head, "params"],
        "grads": packed(grads),
        "nones": packed(nones),
    }


def _fake_shape(shape: tuple[int, ...]) -> str:
    """The batch shape of a per-sample shape as code in n (a per-sample scalar keeps an axis)."""
    return "(" + ", ".join(["n", *map(str, shape or (1,))]) + ")"


def _literal(value) -> str:
    """A Python literal for an explicit init value (a float or nested tuples of floats)."""
    if value is None:
        return "None"
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(float(value))


def _optimizer(spec: Spec) -> tuple[str, str]:
    """torch.optim's class name and keyword arguments (as a dict literal) for the spec."""
    o = spec.optimizer
    options: dict = {"lr": o.lr}
    if o.type == "sgd":
        options |= {"momentum": o.momentum, "dampening": o.dampening, "nesterov": o.nesterov}
    elif o.type in ("adam", "adamw"):
        options |= {"betas": tuple(o.betas), "eps": o.eps}
    else:
        options |= {"alpha": o.alpha, "eps": o.eps, "momentum": o.momentum}
    options["weight_decay"] = o.weight_decay
    body = ", ".join(f'"{k}": {v!r}' for k, v in options.items())
    return _OPTIMIZERS[o.type], "{" + body + "}"


def context(program: Program) -> dict:
    """The plain context the torch templates print (strings, numbers, lists)."""
    from ...printing.torch import TorchCodePrinter

    spec = program.spec
    printer = TorchCodePrinter()
    params = []
    for k, p in enumerate(program.params):
        i = p.init
        params.append({
            "name": p.name, "shape": repr(tuple(p.shape)), "trainable": p.trainable, "k": k,
            "scheme": i.scheme, "fan_in": p.fan_in, "fan_out": p.fan_out, "low": repr(i.low),
            "high": repr(i.high), "std": repr(i.std), "gain": repr(i.gain),
            "value": _literal(i.value),
        })  # fmt: skip
    optimizer, options = _optimizer(spec)
    o = spec.optimizer
    return {
        **program.summary(),
        "multi_axis": len(spec.input_shape) > 1,
        "input_shape": repr(tuple(spec.input_shape)),
        "params": params,
        "optimizer_class": optimizer,
        "optimizer_options": options,
        "train": {
            "epochs": spec.train.epochs,
            "batch_size": spec.train.batch_size,
            "shuffle": spec.train.shuffle,
        },
        "safe_io_source": safe_io_source(),
        "runtime_source": runtime_source(),
        "output": program.output,
        "modes_differ": program.modes_differ,
        "min_rows": program.min_rows,
        "clip_norm": repr(o.clip_grad_norm) if o.clip_grad_norm else "",
        "clip_value": repr(o.clip_grad_value) if o.clip_grad_value else "",
        "scheduler": torch_class(o.schedule) if o.schedule else None,
        "loss_op": _custom_op(program, printer, "loss"),
        "forward_op": _custom_op(vjp_program(spec), printer, "forward"),
    }


def check_size(d) -> None:
    """The layer kinds and training controls this target does not generate yet are refused
    (codegen/support.py)."""
    refuse_unimplemented(d, "torch", done=(*CLIPPING, "schedule", "validation", "early_stopping"))


def files(program: Program) -> dict[str, str]:
    """The torch target's files: {'<name>_torch.py': source}.

    The operators are named after the network and a hash of the module's own text (rendered
    once with a blank hash): a changed formula is a new operator, so no compiled artifact that
    torch.compile caches by operator name can outlive the code it was compiled from.
    """
    from ..templating import render

    ctx = context(program)
    draft = render(TEMPLATE, **ctx, code_hash="0" * 12)
    code_hash = hashlib.sha256(draft.encode()).hexdigest()[:12]
    return {f"{program.spec.name}_torch.py": render(TEMPLATE, **ctx, code_hash=code_hash)}


__all__ = ["TEMPLATE", "context", "files", "runtime_source", "vjp_program"]
