"""The NumPy target: a Program rendered through templates/numpy into one standalone module."""

from __future__ import annotations

import inspect
import math

import sympy as sp

from ... import safe_io
from ...core import prng
from ...core.ops import conv_numpy, kind
from ...core.ops.base import full_shape
from ...core.optimizers import P, hyper_range
from ...printing.numpy import NumpyCodePrinter
from .. import npyfiles
from ..program import Lowered, Program
from ..schedule import python_expr
from ..support import CLIPPING, refuse_unimplemented
from . import runtime

TEMPLATE = "numpy/module.py.j2"
_PYTHON_KEYWORDS = {"lambda"}


def _verbatim(module, first: str) -> str:
    """A module's source from the line starting with ``first``: without its docstring and
    imports (the generated module imports those)."""
    src = inspect.getsource(module)
    return src[src.index("\n" + first) + 1 :].rstrip() + "\n"


def prng_source() -> str:
    """symbackprop/core/prng.py without its docstring and imports."""
    return _verbatim(prng, "GAMMA = ")


def npy_source() -> str:
    """symbackprop/codegen/npyfiles.py without its docstring and imports."""
    return _verbatim(npyfiles, "NPY_VERSIONS = ")


CONV_KINDS = {"conv", "conv_grad_input", "grad_conv_weight", "maxpool", "maxpool_backward",
              "avgpool", "avgpool_backward"}  # fmt: skip


def conv_source(program: Program) -> str:
    """symbackprop/core/ops/conv_numpy.py from its first definition on, for a program with
    convolution or pooling ops (else empty: other modules stay as they were)."""
    kinds = {o.op.kind for o in (*program.forward, *program.backward)}
    return _verbatim(conv_numpy, "_P, _K = ") if kinds & CONV_KINDS else ""


def safe_io_source() -> str:
    """symbackprop/safe_io.py without its docstring and imports."""
    return _verbatim(safe_io, "MAX_FILE_BYTES = ")


def runtime_source() -> str:
    """symbackprop/codegen/numpy/runtime.py from ``def train(`` on: training, the files and the
    command line, without the stand-ins above it."""
    return _verbatim(runtime, "def train(")


def _batch_axes(rank: int, param_rank: int) -> str:
    """The batch-array axes a parameter's gradient sums over: the batch and every per-sample
    axis the parameter does not have (it broadcasts along the last ones), as Python source."""
    axes = tuple(range(rank + 1 - param_rank))
    return str(axes[0]) if len(axes) == 1 else repr(axes)


def _op(o: Lowered, printer: NumpyCodePrinter, program: Program) -> dict:
    op = o.op
    like = op.args[0] if op.args else "x"
    expr_code = printer.doprint(o.expr) if o.expr is not None else ""
    arrays = {s.name for s in o.expr.free_symbols} - {"N"} if o.expr is not None else set()
    extra: dict = {}
    if op.kind == "grad_weight":
        units, fan_in = program.param(op.args[2]).shape
        extra = {"rows": len(program.shapes[op.args[0]]) > 1, "units": units, "fan_in": fan_in}
    elif op.kind in ("grad_bias", "grad_reduce"):
        rank = len(program.shapes[op.args[0]])
        extra = {"batch_axes": _batch_axes(rank, len(program.param(op.args[-1]).shape))}
    elif op.kind in ("concat", "slice"):
        axis = op.attr("axis", len(program.shapes[op.args[0]]) - 1)
        extra = {"attrs": {**dict(op.attrs), "axis": axis}}
    elif op.kind == "grad_conv_bias":
        rank = len(program.shapes[op.args[0]])
        extra = {"spatial_axes": repr((0, *range(2, rank + 1)))}
    elif op.kind == "global_avgpool":
        shape = program.shapes[op.args[0]]
        extra = {"attrs": {"channels": shape[0]}}
    elif op.kind == "global_avgpool_backward":
        shape = op.attr("shape")
        extra = {"attrs": {"shape": list(shape), "size": math.prod(shape[1:])}}
    elif op.kind == "transpose":  # the map side's channels and positions
        mapped = program.shapes[op.args[0]] if op.attr("to") == "last" else op.attr("shape")
        extra = {"channels": mapped[0], "positions": math.prod(mapped[1:])}
    elif op.kind == "mask" and len(op.attr("shape")) > 1:  # a map's mask, drawn flat
        extra = {"width": math.prod(op.attr("shape"))}
    ctx = program.context
    # a per-sample map of per-batch tensors only (dE/du through a batch mean) gets its rows
    rows = (op.kind == "map" and bool(arrays) and not kind(op).per_batch(op)
            and all(ctx.is_batch(a) for a in arrays))  # fmt: skip
    return {
        "kind": op.kind,
        "out": op.out,
        "args": list(op.args),
        "temps": [{"name": t.name, "code": printer.doprint(e)} for t, e in o.temps],
        "expr": expr_code,
        "scale_mul": _scale_mul(op.scale, printer),
        "bias": f" + {op.args[2]}" if op.kind == "affine" and op.args[2] else "",
        "formula": o.formula,
        "const": o.expr is not None and not arrays,
        "like": like,
        "shared": op.kind in ("grad_bias", "grad_conv_bias")
        and program.param(op.args[1]).kind == "shared",
        "attrs": _attrs(op, printer),
        "rows": rows,
        "full": list(full_shape(op, ctx)) if op.kind == "reduce" else [],
        "p": repr(float(op.attr("p"))) if op.kind == "mask" else "",
        **extra,  # after "rows": grad_weight's own (rows of a sequence)
    }


def _attrs(op, printer: NumpyCodePrinter) -> dict:
    """An op's attrs; SymPy expressions among them (a loop's step function) printed as code."""
    return {k: _printed(v, printer) for k, v in op.attrs}


def _printed(v, printer):
    """A SymPy attr as code; a tuple of them (a cell's statements) as a list of code."""
    if isinstance(v, sp.Basic):
        return printer.doprint(v)
    if isinstance(v, tuple) and v and all(isinstance(e, sp.Basic) for e in v):
        return [printer.doprint(e) for e in v]
    return v


def _assignment(target, expr, printer: NumpyCodePrinter) -> dict:
    """``p -= step`` in place when the rule is p - step (no new array, no copy back)."""
    if target == P and expr.is_Add and P in expr.args:
        return {"target": "p", "op": "-=", "code": printer.doprint(P - expr)}
    return {"target": target.name, "op": "=", "code": printer.doprint(expr)}


def _scale_mul(scale, printer: NumpyCodePrinter) -> str:
    """'' for a scale of 1, else '(c) * '."""
    if scale is None or scale == 1:
        return ""
    return f"({printer.doprint(scale)}) * "


def context(program: Program) -> dict:
    """The plain context the NumPy templates print (strings, numbers, lists)."""
    spec = program.spec
    hyper_names = {h: (f"h_{h}" if h in _PYTHON_KEYWORDS else h) for h, _ in program.update.hyper}
    printer = NumpyCodePrinter(hyper_names)
    forward = [_op(o, printer, program) for o in program.forward]
    evaluation = [_op(o, printer, program) for o in program.evaluation]
    updates = [_op(o, printer, program) for o in program.updates]
    loss = {**_op(program.loss, printer, program), "like": program.output}
    backward = [_op(o, printer, program) for o in program.backward]
    produced = ["x"] + [o["out"] for o in forward]
    update_inputs = sorted({a for lo in program.updates for a in lo.op.args if a in produced})
    needed_back = sorted({a for lo in program.backward for a in lo.op.args if a in produced}
                         | {s.name for lo in program.backward if lo.expr is not None
                            for s in lo.expr.free_symbols if s.name in produced})  # fmt: skip
    loss_inputs = sorted(s.name for s in program.loss.expr.free_symbols if s.name in produced)
    loss_inputs += [program.output] if program.output not in loss_inputs else []
    params = []
    for k, p in enumerate(program.params):
        i = p.init
        params.append({
            "name": p.name, "shape": repr(tuple(p.shape)), "trainable": p.trainable, "k": k,
            "scheme": i.scheme, "fan_in": p.fan_in, "fan_out": p.fan_out, "low": repr(i.low),
            "high": repr(i.high), "std": repr(i.std), "gain": repr(i.gain),
            "value": _literal(i.value),
        })  # fmt: skip
    upd = program.update
    stop = spec.train.early_stopping
    multi = len(spec.input_shape) > 1 or len(spec.output_shape) > 1
    return {
        **program.summary(),
        "multi_axis": multi,
        "input_shape": repr(tuple(spec.input_shape)),
        "output_shape": repr(tuple(spec.output_shape)),
        "target": (
            "np.asarray(T, dtype=DTYPE).reshape(len(T), *OUTPUT_SHAPE)"
            if multi
            else "np.asarray(T, dtype=DTYPE)"
        ),  # fmt: skip
        "params": params,
        "hyper": [
            {"name": h, "value": repr(v), "local": hyper_names[h], **hyper_range(h)}
            for h, v in upd.hyper
        ],
        # Python floats, so float32 arrays are never promoted by a NumPy float64 scalar:
        "scalars": [
            {"name": s.name, "code": f"float({printer.doprint(e)})"} for s, e in upd.scalars
        ],  # fmt: skip
        "state": list(upd.state),
        "state_names": ", ".join(upd.state),
        "update": [_assignment(t, e, printer) for t, e in upd.steps],
        "update_formulas": list(upd.formulas),
        "clip_norm": upd.clip_norm,
        "schedule": python_expr(spec.optimizer.schedule) if spec.optimizer.schedule else "",
        "train": {
            "epochs": spec.train.epochs,
            "batch_size": spec.train.batch_size,
            "shuffle": spec.train.shuffle,
            "validation": repr(spec.train.validation),
            "patience": stop.patience if stop else None,
            "min_delta": repr(stop.min_delta if stop else 0.0),
        },  # fmt: skip
        "prng_source": prng_source(),
        "npy_source": npy_source(),
        "safe_io_source": safe_io_source(),
        "conv_source": conv_source(program),
        "runtime_source": runtime_source(),
        "forward": forward,
        "forward_values": produced,
        "modes_differ": program.modes_differ,
        "min_rows": program.min_rows,
        "evaluation": evaluation,
        "evaluation_values": ["x"] + [o["out"] for o in evaluation],
        "updates": updates,
        "update_inputs": update_inputs,
        "output": program.output,
        "logits": program.logits,
        "loss_op": loss,
        "loss_inputs": loss_inputs,
        "backward": backward,
        "backward_inputs": needed_back,
    }


def _literal(value) -> str:
    """A Python literal for an explicit init value (a float or nested tuples of floats)."""
    if value is None:
        return "None"
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(float(value))


def check_size(d) -> None:
    """Any net the spec allows (MAX_LAYERS layers) generates and imports in seconds; the
    training controls not generated yet are refused (codegen/support.py)."""
    refuse_unimplemented(d, "NumPy", done=(*CLIPPING, "schedule", "validation", "early_stopping"))


def files(program: Program) -> dict[str, str]:
    """The NumPy target's files: {'<name>.py': source}."""
    from ..templating import render

    return {f"{program.spec.name}.py": render(TEMPLATE, **context(program))}


__all__ = ["TEMPLATE", "check_size", "context", "files", "npy_source", "prng_source",
           "runtime_source", "safe_io_source"]  # fmt: skip
