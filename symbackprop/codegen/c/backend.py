"""The C target: a Program rendered through templates/c into a C99 library, program and Makefile.

Shapes are compile-time constants; elementwise code comes from CCodePrinter on the same CSE'd
expressions the NumPy target prints; matrix ops are loops (or cblas with ``make BLAS=1``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import sympy as sp

from ... import safe_io
from ...core import prng
from ...core.derivation import Derivation
from ...core.ops.base import full_shape
from ...core.optimizers import hyper_range
from ...printing.c import CCodePrinter, StepScalarPrinter
from ...spec.errors import SpecError
from ..program import Lowered, Program
from ..schedule import c_expr
from ..support import CLIPPING, refuse_unimplemented
from . import fuse, recurrent, sbp_math, share
from .conv_layout import layout as conv_layout, scratch as conv_scratch

# In the order write_files renames them into place: the sources, which check the header's build
# id, before the header, so a set interrupted halfway does not compile.
TEMPLATES = {
    "{name}.c": "c/source.c.j2",
    "{name}_main.c": "c/main.c.j2",
    "{name}.h": "c/header.h.j2",
    "Makefile": "c/Makefile.j2",
}
_BUILD = "BUILD-ID-OF-THE-SET"  # stands for the build id while the set is rendered
CHUNK = 256  # default rows per workspace chunk (<NAME>_CHUNK); any batch size works
CACHE_BLOCK = 1 << 18  # bytes of one matrix operand the loops keep in cache (256 KB)
_SCALARS = {"lse"}  # per-sample values: one number per row, not per unit
# gcc -O3 compiles each pass over the layers (forward, backward) as one function, in time that
# grows faster than the depth: 25 layers 8 s, 50 17 s, 100 44 s, 200 185 s (README, Choices).
MAX_LAYERS = 100


def c_string(text: str) -> str:
    """``text`` as a C string literal (ASCII; quotes and backslashes escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _element_names(symbols, params: dict, scalars: set[str]) -> dict[str, str]:
    """How a symbol of an elementwise expression reads inside the row and unit loops: tensors
    (per sample or per batch) at [i], per-sample scalars by name, parameters from params (one
    number, or per unit)."""
    names = {}
    for s in symbols:
        if s.name == "N":
            names["N"] = "Nr"
        elif s.name in scalars:
            names[s.name] = s.name
        elif s.name in params:
            names[s.name] = f"params->{s.name}[{'i' if params[s.name].shape else '0'}]"
        else:
            names[s.name] = f"{s.name}[i]"
    return names


def _scale(scale, printer: CCodePrinter) -> str:
    """The scale as double C code in ``Nd`` (the batch size), or '' for 1."""
    if scale is None or scale == 1:
        return ""
    return printer.doprint(scale)


def _block(width: int, dtype: str, limit: int) -> int:
    """Rows of ``width`` reals (a multiple of 4) filling about CACHE_BLOCK bytes, at most limit."""
    rows = CACHE_BLOCK // (width * (4 if dtype == "float32" else 8)) // 4 * 4
    return min(max(4, rows), limit)


_BRANCHES = (sp.Heaviside, sp.Piecewise, sp.Max, sp.Min)


def _branch_temps(temps, expr, prefix: str):
    """Every conditional (Heaviside, Piecewise, Max, Min) inside a larger expression as a temp.

    gcc -O3 vectorizes ``h = (z > 0 ? 1 : 0); y = d*h`` but not ``y = d*(z > 0 ? 1 : 0)``: its C
    front end folds the product into both branches, and since d*0 may raise an FP exception
    (-ftrapping-math, the default) the branches are not if-converted and the loop stays scalar.
    Same operations and values; only the statements differ.
    """
    names = sp.numbered_symbols(prefix)
    out: list = []

    def lift(e: sp.Expr) -> sp.Expr:
        found = [n for n in sp.postorder_traversal(e) if isinstance(n, _BRANCHES) and n != e]
        subs: dict = {}
        for node in dict.fromkeys(found):  # innermost first, each once
            name = next(names)
            out.append((name, node.xreplace(subs)))
            subs[node] = name
        return e.xreplace(subs)

    for t, e in temps:
        out.append((t, lift(e)))
    expr = lift(expr)
    return tuple(out), expr


def _column_roots(op, exprs, program: Program, printer: CCodePrinter) -> list[dict]:
    """Square roots of per-batch numbers in a map over rows (batch norm's √(σ² + ε)): each is
    the same for every row, so it is computed once per unit before the row loop, and the
    printer reads it there. The same sqrt of the same operands, so the same numbers: only a
    division (or product) by it stays per element."""
    if op.kind != "map" or not program.batch:
        return []
    per_batch = program.batch | {p.name for p in program.params} | {"N"}
    bases = [n.base for e in exprs for n in sp.preorder_traversal(e)
             if isinstance(n, sp.Pow) and n.exp in (sp.S.Half, -sp.S.Half)
             and {s.name for s in n.base.free_symbols} & program.batch
             and {s.name for s in n.base.free_symbols} <= per_batch]  # fmt: skip
    roots = []
    for k, base in enumerate(dict.fromkeys(bases)):
        name = f"{op.out}_root{k}"
        roots.append({"name": name, "code": printer.doprint(sp.sqrt(base))})
        printer.roots[base] = f"{name}[i]"
    return roots


def _column_factors(op, expr, program: Program) -> tuple[sp.Expr, sp.Expr]:
    """(the product of a map's factors that are the same for every row, the rest): batch norm's
    γ/(N √(σ² + ε)) in its backward and 1/√(σ² + ε) in x̂, computed once per unit so that one
    product, not a division, stays per element. Only when a division moves out of the loop
    (the numbers then differ from NumPy's by roundings, far below the 1e-12 the targets keep)."""
    if op.kind != "map" or not program.batch or not isinstance(expr, sp.Mul):
        return sp.S.One, expr
    per_batch = program.batch | {p.name for p in program.params} | {"N"}
    column = [f for f in expr.args if f.free_symbols
              and {s.name for s in f.free_symbols} <= per_batch]  # fmt: skip
    divides = any(isinstance(n, sp.Pow) and n.exp.is_negative
                  for f in column for n in sp.preorder_traversal(f))  # fmt: skip
    if not divides or not {s.name for f in column for s in f.free_symbols} & program.batch:
        return sp.S.One, expr
    return sp.Mul(*column), sp.Mul(*(f for f in expr.args if f not in column))


def _batch_scale(op, expr) -> tuple[sp.Expr, sp.Expr]:
    """(the factors of a batch sum's terms that hold only N and numbers, the rest): Σ a/N is
    computed as (Σ a)·(1/N), one product per unit instead of a division per element."""
    if op.kind != "reduce" or op.attr("over") == "features" or not isinstance(expr, sp.Mul):
        return sp.S.One, expr
    scale = [f for f in expr.args if {s.name for s in f.free_symbols} <= {"N"}]
    if not any(f.free_symbols for f in scale):
        return sp.S.One, expr
    return sp.Mul(*scale), sp.Mul(*(f for f in expr.args if f not in scale))


_CONV_KINDS = {"conv", "conv_grad_input", "grad_conv_weight", "grad_conv_bias", "maxpool",
               "maxpool_backward", "avgpool", "avgpool_backward", "global_avgpool",
               "global_avgpool_backward"}  # fmt: skip


def _conv_dims(op, program: Program) -> dict:
    """The sizes the convolution and pooling loops run over, as 2-d maps (a 1-d map [C, L] is
    [C, 1, L]): input C x H x W, output O x OH x OW, kernel KH x KW, stride, dilation, padding
    (the low side: the high side only bounds the output size), groups."""
    shapes = program.shapes
    if op.kind in ("conv", "maxpool", "avgpool", "global_avgpool"):
        inp, out = shapes[op.args[1] if op.kind == "conv" else op.args[0]], shapes[op.out]
    elif op.kind in ("maxpool_backward", "grad_conv_weight"):
        inp, out = shapes[op.args[1]], shapes[op.args[0]]
    elif op.kind == "grad_conv_bias":
        inp, out = shapes[op.args[0]], shapes[op.args[0]]
    else:  # conv_grad_input, avgpool_backward, global_avgpool_backward: g -> the input's shape
        g = op.args[1] if op.kind == "conv_grad_input" else op.args[0]
        inp, out = tuple(op.attr("shape")), shapes[g]

    def two(v: tuple, fill: int) -> tuple:
        return ((fill,) * (2 - len(v)) + tuple(v))[-2:]

    if op.kind.startswith("global_avgpool") or op.kind == "grad_conv_bias":
        spatial = inp[1:] if op.kind != "grad_conv_bias" else out[1:]
        return {"C": inp[0], "S": math.prod(spatial)}
    kernel = op.attr("kernel")
    if kernel is None:  # a convolution: the kernel is the weight's
        w = op.args[0] if op.kind in ("conv", "conv_grad_input") else op.args[2]
        kernel = program.param(w).shape[2:]
    groups = op.attr("groups", 1)
    extra = {}
    if op.kind in ("conv", "conv_grad_input", "grad_conv_weight"):
        w = program.param(op.args[2] if op.kind == "grad_conv_weight" else op.args[0])
        extra["wzero"] = "[0]" * len(w.shape)
        if op.kind == "conv" and op.args[2]:
            extra["bias_shared"] = program.param(op.args[2]).kind == "shared"
    H, W = two(inp[1:], 1)
    OH, OW = two(out[1:], 1)
    KH, KW = two(kernel, 1)
    SH, SW = two(op.attr("stride"), 1)
    DH, DW = two(op.attr("dilation", (1,) * len(kernel)), 1)
    PH, PW = two(tuple(lo for lo, _ in op.attr("padding")), 0)
    outc = out[0]
    return {"C": inp[0], "H": H, "W": W, "O": outc, "OH": OH, "OW": OW, "KH": KH, "KW": KW,
            "SH": SH, "SW": SW, "DH": DH, "DW": DW, "PH": PH, "PW": PW, "groups": groups,
            "CPG": inp[0] // groups, "OPG": outc // groups, **extra}  # fmt: skip


def _scalars(program: Program) -> set[str]:
    """Per-sample scalars: one number per row (lse, a layer norm's statistics)."""
    return _SCALARS | {n for n, shape in program.shapes.items()
                       if shape == () and n not in program.batch and n != "E"}  # fmt: skip


def _op(
    o: Lowered,
    program: Program,
    dtype: str,
    widths: dict,
    scalar: CCodePrinter,
    folds: dict | None = None,
) -> dict:
    """The plain context of one op (folds: recurrent.pad_folds)."""
    op = o.op
    params = {p.name: p for p in program.params}
    shape = o.shape
    if op.kind == "loss":  # it runs over the output's elements
        shape = program.shapes[program.output]
    elif op.kind.startswith("grad_"):  # over the rows of what it reads
        shape = program.shapes[op.args[0]]
    rows = math.prod(shape[:-1])
    scalars = _scalars(program)
    out = {
        "kind": op.kind,
        "out": op.out,
        "args": list(op.args),
        "formula": o.formula,
        "units": shape[-1] if shape else 1,
        "rows": rows,  # rows of `units` numbers per sample (T of a sequence [T, K])
        "size": math.prod(shape),
        "m_rows": "m" if rows == 1 else f"m * {rows}",
        "scale": _scale(op.scale, scalar),
        "attrs": dict(op.attrs),
    }
    if o.expr is not None:
        temps, expr = _branch_temps(o.temps, o.expr, f"{op.out}_c")
        temp_names = {t.name for t, _ in temps}
        symbols = set(expr.free_symbols).union(*(e.free_symbols for _, e in temps))
        symbols = {s for s in symbols if s.name not in temp_names}
        printer = CCodePrinter(dtype, _element_names(symbols, params, scalars))
        column, expr = _column_factors(op, expr, program)
        out["batch_scale"], expr = _batch_scale(op, expr)
        out["roots"] = []
        if column != 1:  # before the roots: its square root, if any, is computed here once
            name = f"{op.out}_col"
            out["roots"].append({"name": name, "code": printer.doprint(column)})
            expr = expr * sp.Symbol(name)
            printer.names[name] = f"{name}[i]"
        out["roots"] += _column_roots(op, (expr, *(e for _, e in temps)), program, printer)
        out["temps"] = [{"name": t.name, "code": printer.doprint(e)} for t, e in temps]
        out["expr"] = printer.doprint(expr)
        scale = out["batch_scale"]
        out["batch_scale"] = printer.doprint(scale) if scale != 1 else ""
        reads = {s.name for s in symbols if s.name in widths and s.name not in scalars}
        out["reads"] = sorted(reads - program.batch)
        out["batch_reads"] = sorted(reads & program.batch)  # one row for the whole batch
        out["scalars"] = sorted(s.name for s in symbols if s.name in scalars)
        out["uses_n"] = any(s.name == "N" for s in symbols)
        # the unit index must be the loop's own when a parameter or per-batch tensor is read
        out["rowwise"] = bool(out["scalars"] or out["batch_reads"]) or any(
            s.name in params and params[s.name].shape for s in symbols
        )
    if op.kind == "affine":
        w = program.param(op.args[0])
        bias = program.param(op.args[2]).kind if op.args[2] else ""
        out["fan_in"], out["bias_kind"] = w.shape[1], bias
        out["block"] = _block(o.units, dtype, w.shape[1])
    elif op.kind in ("matvec_t", "grad_weight"):
        w = program.param(op.args[0] if op.kind == "matvec_t" else op.args[2])
        out["w_rows"], out["cols"] = w.shape  # units of delta, width of the other vector
        if op.kind == "matvec_t":
            out["block"] = _block(w.shape[1], dtype, w.shape[0])
        else:  # rows of the layer input per pass over the gradient
            out["block"] = _block(w.shape[1], dtype, CHUNK)
    elif op.kind in _CONV_KINDS:
        out["cv"] = _conv_dims(op, program)
        if op.kind in ("conv", "conv_grad_input", "grad_conv_weight"):
            out["cl"] = conv_layout(op.kind, out["cv"])
        if op.kind == "grad_conv_bias":
            out["shared"] = program.param(op.args[1]).kind == "shared"
    elif op.kind == "grad_bias":
        out["shared"] = program.param(op.args[1]).kind == "shared"
        out["cols"] = out["units"]
    elif op.kind == "logsumexp":
        shape = program.shapes[op.args[0]]
        out["in_units"], out["rows"] = shape[-1], math.prod(shape[:-1])
        out["m_rows"] = "m" if out["rows"] == 1 else f"m * {out['rows']}"
    elif op.kind == "grad_reduce":
        out["param"], out["cols"] = op.args[-1], out["units"]
    elif op.kind in ("concat", "slice"):
        out.update(_blocks(op, program))
    elif op.kind == "reduce":  # the terms' width: the op's own (batch) or its input's (features)
        out["width"] = max(widths.get(a, 1) for a in op.args if a not in params)
        if op.attr("over") == "channels":  # [S, C] rows of C summed into [C]
            full = full_shape(op, program.context)
            out["rows"], out["units"] = math.prod(full[:-1]), full[-1]
            out["m_rows"] = f"m * {out['rows']}"
    elif op.kind == "transpose":  # the map side's channels and positions
        mapped = program.shapes[op.args[0]] if op.attr("to") == "last" else op.attr("shape")
        out["channels"], out["positions"] = mapped[0], math.prod(mapped[1:])
    elif op.kind == "mask":  # a map's mask is drawn over its flat elements
        out["p"], out["width"] = repr(float(op.attr("p"))), math.prod(op.attr("shape"))
        # u >= p, u = h·2⁻³², is h >= T = ⌈p·2³²⌉ exactly, that is h > T − 1 (T ≥ 1)
        out["threshold"] = prng.dropout_threshold(float(op.attr("p")))
    elif op.kind in _SEQUENCE_OPS:
        _sequence_op(out, o, program, widths, dtype)
        if op.kind in ("grad_seq_weight", "grad_seq_bias"):
            _strides(out, folds or {})
    elif op.kind in ("cell", "cell_bptt"):
        _cell_op(out, o, program, dtype, (folds or {}).get(op.out))
    elif op.kind == "pad":
        out.update(_blocks(op, program))
    return out


def _cell_op(out: dict, o: Lowered, program: Program, dtype: str, fold: dict | None) -> None:
    """A gated cell's loops: its statements (or backward step) printed as C on scalars, and
    which of the cell's symbols each pass reads (only those are declared: -Wunused); the
    backward step's outside gradients as ``ext_at`` (each statement's offset in a step of
    ``ext_width`` numbers; those a fold (recurrent.pad_folds) leaves out are zeros)."""
    op = o.op
    printer = CCodePrinter(dtype)
    stmts, units = op.attr("stmts"), op.attr("units")
    at = fold["at"] if fold else {s: k * units for k, s in enumerate(stmts)}
    attrs = {}
    for k, v in op.attrs:
        if isinstance(v, tuple) and v and all(isinstance(e, sp.Basic) for e in v):
            attrs[k] = [printer.doprint(e) for e in v]
        elif not isinstance(v, sp.Basic):
            attrs[k] = v
    exprs = op.attr("fwd") if op.kind == "cell" else (*op.attr("bvals"), *op.attr("bouts"))
    attrs["reads"] = sorted({s.name for e in exprs for s in e.free_symbols})
    attrs["ext_at"], attrs["ext_width"] = at, fold["width"] if fold else len(stmts) * units
    if fold:
        out["args"][2] = fold["src"]
    out["attrs"] = attrs
    seq = op.args[4] if op.kind == "cell" else op.args[1]
    out["steps"] = program.shapes[seq][0]
    if op.kind == "cell":
        out["fan_in"] = program.param(op.args[0]).shape[1]
        out["scratch"] = f"k{op.attr('layer')}"


def _strides(out: dict, folds: dict) -> None:
    """A sum over time's two tensors (g, and the input of a weight's): each one's offset in a
    step and numbers a step, read in place from what a folded slice (recurrent.slice_folds)
    slices."""
    names = ("g", "in")[: 2 if out["kind"] == "grad_seq_weight" else 1]
    widths = (out["rows"], out["cols"]) if out["kind"] == "grad_seq_weight" else (out["cols"],)
    for k, (name, width) in enumerate(zip(names, widths, strict=True)):
        fold = folds.get(out["args"][k])
        if fold:
            out["args"][k] = fold["src"]
        out[f"{name}_at"] = fold["at"] if fold else 0
        out[f"{name}_stride"] = fold["stride"] if fold else width


def _blocks(op, program: Program) -> dict:
    """concat and slice along a per-sample axis: a sample is ``outer`` blocks of ``inner``
    numbers (one block when the axis is the first), each input ``width`` of a block."""
    shapes = program.shapes
    src = shapes[op.out] if op.kind in ("concat", "pad") else shapes[op.args[0]]
    axis = op.attr("axis", len(src) - 1)
    outer, inner = math.prod(src[:axis]), math.prod(src[axis:])
    if op.kind in ("slice", "pad"):
        step = math.prod(src[axis + 1 :])
        start, stop = op.attr("start"), op.attr("stop")
        return {"outer": outer, "inner": inner, "start": start * step,
                "width": (stop - start) * step}  # fmt: skip
    start, parts = 0, []
    for a in op.args:
        width = math.prod(shapes[a][axis:])
        parts.append({"name": a, "start": start, "width": width})
        start += width
    return {"outer": outer, "inner": inner, "parts": parts}


_SEQUENCE_OPS = ("rnn", "rnn_bptt", "grad_seq_weight", "grad_seq_bias", "seq_matvec_t",
                 "time_last", "time_last_backward")  # fmt: skip


def _sequence_op(out: dict, o: Lowered, program: Program, widths: dict, dtype: str) -> None:
    """Steps and widths of a recurrent op's loops; its step functions (attrs that are SymPy
    expressions, in zt and ht) printed as C on scalars."""
    op = o.op
    printer = CCodePrinter(dtype, {"zt": "zt", "ht": "ht"})
    out["attrs"] = {k: printer.doprint(v) if isinstance(v, sp.Basic) else v for k, v in op.attrs}
    shapes = program.shapes
    if op.kind in ("rnn", "seq_matvec_t"):
        w = program.param(op.args[0]).shape
        seq = op.args[4] if op.kind == "rnn" else op.args[1]
        out["steps"], out["units"], out["fan_in"] = shapes[seq][0], w[0], w[1]
    elif op.kind == "rnn_bptt":
        out["steps"], out["units"] = shapes[op.args[1]]
    elif op.kind == "grad_seq_weight":
        out["steps"], (out["rows"], out["cols"]) = (
            shapes[op.args[0]][0],
            program.param(op.args[2]).shape,
        )
    elif op.kind == "grad_seq_bias":
        out["steps"], out["cols"] = shapes[op.args[0]]
    elif op.kind == "time_last":
        out["steps"], out["units"] = shapes[op.args[0]]
    else:  # time_last_backward
        out["steps"], out["units"] = op.attr("steps"), shapes[op.args[0]][0]


def _literal(v: float, dtype: str) -> str:
    """A number of the init table as a C literal of the spec's real type: a float32 spec's
    is the double rounded once to float, printed exactly with an F (no double at run time)."""
    return repr(float(v)) if dtype != "float32" else f"{float(np.float32(v))!r}F"


def _param(p, k: int, dtype: str = "float64") -> dict:
    i = p.init
    values, dist = None, ("values", 0.0, 0.0)
    if i.scheme == "values":
        flat = sp.flatten([i.value]) if isinstance(i.value, tuple) else [i.value]
        values = [_literal(v, dtype) for v in flat]
    elif i.scheme != "zeros":
        dist = prng.distribution(i.scheme, p.fan_in, p.fan_out, i.low, i.high, i.std, i.gain)
    size = 1
    for n in p.shape:
        size *= n
    dims = "".join(f"[{n}]" for n in p.shape) or "[1]"
    return {
        "name": p.name,
        "shape": list(p.shape),
        "dims": dims,
        "size": size,
        "k": k,
        "trainable": p.trainable,
        "kind": p.kind,
        "scheme": i.scheme,
        "dist": dist[0],
        "dist_args": f"{_literal(dist[1], dtype)}, {_literal(dist[2], dtype)}",
        "init_values": values,
        "zero": "[0]" * max(len(p.shape), 1),
        "header": " ".join([p.name, *map(str, p.shape)]),
        "dims2": ", ".join(map(str, (*p.shape, 0, 0)[: max(2, len(p.shape))])),
    }


def _update(program: Program, dtype: str) -> dict:
    upd = program.update
    hyper = [h for h, _ in upd.hyper]
    scalar = StepScalarPrinter(dtype)
    # a float32 library built for a device (NAME_NO_FILES) computes them in float: no soft double
    device = CCodePrinter(dtype) if dtype == "float32" else None
    element = CCodePrinter(dtype)
    fixed = {"p", "g", *upd.state}
    used = set().union(*(e.free_symbols for _, e in upd.steps)) if upd.steps else set()
    used_names = {s.name for s in used}
    scalar_used = set().union(*(e.free_symbols for _, e in upd.scalars)) if upd.scalars else set()
    consts = [{"name": n, "source": f"state->hyper.{n}"} for n in hyper if n in used_names]
    consts += [{"name": s.name, "source": s.name} for s, _ in upd.scalars if s.name in used_names]
    if upd.clip_norm:
        consts.append({"name": "kappa", "source": "kappa"})
    return {
        "hyper": [{"name": h, "value": repr(v), **hyper_range(h)} for h, v in upd.hyper],
        "state": list(upd.state),
        "scalars": [
            {
                "name": s.name,
                "code": scalar.doprint(e),
                "device": device.doprint(e) if device else None,
            }
            for s, e in upd.scalars
        ],
        "scalar_hyper": [h for h in hyper if h in {s.name for s in scalar_used}],
        "scalar_uses_k": any(s.name == "k" for s in scalar_used),
        "consts": consts,
        "uses_k": "k" in used_names,
        "steps": [
            {"target": t.name, "code": element.doprint(e), "decl": t.name not in fixed}
            for t, e in upd.steps
        ],
        "formulas": list(upd.formulas),
        "linear": _linear(upd, scalar),
        "clip_norm": upd.clip_norm,
    }


def _linear(upd, printer: CCodePrinter) -> dict | None:
    """beta and alpha of a stateless p <- beta p + alpha g rule as double C code, or None."""
    if upd.linear is None:
        return None
    beta, alpha = upd.linear
    names = {s.name for s in beta.free_symbols | alpha.free_symbols}
    return {
        "beta": printer.doprint(beta),
        "alpha": printer.doprint(alpha),
        "hyper": [h for h, _ in upd.hyper if h in names],
    }


def _weights_last(ops: list[dict]) -> list[dict]:
    """Each layer's gradient ops after the product that reads its weights (delta W): then a step
    may overwrite W with its gradient gemm. The values are the same in either order."""
    out, pending = [], []
    for o in ops:
        if o["kind"] in ("grad_weight", "grad_bias", "grad_seq_weight", "grad_seq_bias"):
            pending.append(o)
        elif o["kind"] in ("matvec_t", "seq_matvec_t"):
            out += [o, *pending]
            pending = []
        else:
            out += [*pending, o]
            pending = []
    return out + pending


def _equal_bias_sums(ops: list[dict]) -> list[dict]:
    """A gated cell's two biases (b and br) have one gradient, Σ_n Σ_t dx_t: the second of two
    sums of the same tensor (same scale) copies the first's result (``copy_of``, the first's
    parameter) instead of a second pass over dx. The same numbers: both start at zero and get
    the same additions in the same order."""
    first: dict[tuple, str] = {}
    for o in ops:
        if o["kind"] == "grad_seq_bias":
            key = (o["args"][0], o["g_at"], o["scale"])  # g_at: a folded slice's offset
            o["copy_of"] = first.get(key)
            first.setdefault(key, o["args"][1])
    return ops


def _row_sum(o: dict) -> int | None:
    """The width of a sum over the batch's rows that may share its row loop with its neighbours
    (batch norm's backward: Σ g, Σ g ⊙ x̂ and the gradients of γ and β), else None."""
    plain = o["m_rows"] == "m" and not o.get("scalars") and not o.get("batch_reads")
    if o["kind"] == "reduce" and o["attrs"].get("over") == "batch" and plain:
        return o["width"]
    if o["kind"] == "grad_reduce" and o["attrs"].get("axes") != "all" and plain and not o["scale"]:
        return o["cols"]
    return None


def _fuse_sums(ops: list[dict]) -> list[dict]:
    """Consecutive row sums of one width, none reading another's result, become one op ``sums``:
    one pass over the rows instead of one each (the same sums, added in the same order)."""
    out: list[dict] = []
    for o in ops:
        prev = out[-1] if out else None
        width = _row_sum(o)
        if prev is not None and width is not None:
            parts = prev["parts"] if prev["kind"] == "sums" else [prev]
            written = {q["out"] for q in parts}
            if _row_sum(parts[0]) == width and not written & set(o["reads"]):
                reads = sorted({v for q in (*parts, o) for v in q["reads"]})
                out[-1] = {"kind": "sums", "parts": [*parts, o], "width": width, "reads": reads}
                continue
        out.append(o)
    return out


def _metadata(program: Program, params: list[dict]) -> list[str]:
    """The library's self-description (JSON), as C string literal lines."""
    spec, upd = program.spec, program.update
    meta = {
        **program.summary(),
        "min_rows": program.min_rows,
        "params": [[p["name"], p["shape"], p["trainable"]] for p in params],
        "hyper": [[h, v] for h, v in upd.hyper],
        "state": list(upd.state),
        "train": {
            "epochs": spec.train.epochs,
            "batch_size": spec.train.batch_size,
            "shuffle": spec.train.shuffle,
        },
        "logits": program.logits,
        "output": program.output,
    }
    if len(spec.input_shape) > 1:  # a sequence [T, F] per sample (rows of X are flattened)
        meta["input_shape"] = list(spec.input_shape)
    lines = []
    for i, (key, value) in enumerate(meta.items()):
        sep = "{" if i == 0 else " "
        end = "}" if i == len(meta) - 1 else ","
        lines.append(c_string(f"{sep}{json.dumps(key)}: {json.dumps(value)}{end}"))
    return lines


def _label(la) -> str:
    """'sigmoid' for a dense layer, else its type and any activation: 'add relu', 'concat'."""
    if la.type == "dense":
        return la.activation
    return la.type + ("" if la.activation == "identity" else f" {la.activation}")


def context(program: Program) -> dict:
    """The plain context the C templates print (strings, numbers, lists)."""
    spec = program.spec
    dtype = spec.dtype
    f = "f" if dtype == "float32" else ""
    scalar = CCodePrinter(dtype, {"N": "Nd"})  # Nd: the batch size as acc (source.c.j2)
    params = [_param(p, k, dtype) for k, p in enumerate(program.params)]
    widths: dict[str, int] = {"x": spec.inputs, "t": spec.outputs}
    buffers = {p.name for p in program.buffers}
    folds = recurrent.pad_folds(program)
    slices = recurrent.slice_folds(program)
    folded = {f["pad"] for f in folds.values()} | set(slices)
    for o in (*program.forward, *program.evaluation, *program.backward):
        if not o.op.kind.startswith("grad_") and o.op.out not in buffers | folded:
            widths[o.op.out] = math.prod(o.shape)
    forward = [
        _op(o, program, dtype, widths, scalar, slices)
        for o in program.forward
        if o.op.out not in folded
    ]
    evaluation = [
        _op(o, program, dtype, widths, scalar) for o in program.evaluation if o.op.out not in folded
    ]
    updates = [_op(o, program, dtype, widths, scalar) for o in program.updates]
    by_name = {p["name"]: p for p in params}
    loss = _op(program.loss, program, dtype, widths, scalar)
    backward = _weights_last(
        [
            _op(o, program, dtype, widths, scalar, {**folds, **slices})
            for o in program.backward
            if o.op.out not in folded
        ]
    )
    for o in backward:
        if o["kind"] in (
            "grad_weight",
            "grad_bias",
            "grad_reduce",
            "grad_conv_weight",
            "grad_conv_bias",
            "grad_seq_weight",
            "grad_seq_bias",
        ):
            o["param"] = by_name[o["args"][-1]]
            o["alpha"] = f"scale_{o['out']}" if o["scale"] else "1"
    backward = _fuse_sums(_equal_bias_sums(backward))
    scalars = _scalars(program)
    arrays = [
        {"name": n, "units": u, "scalar": n in scalars, "batch": n in program.batch}
        for n, u in widths.items()
        if n not in ("x", "t")
    ]  # a per-sample scalar (lse) has `units` numbers: one per row of the output
    ctx = {
        "name": spec.name,
        "NAME": spec.name.upper(),
        "digest": spec.digest,
        "dtype": dtype,
        "real": "float" if dtype == "float32" else "double",
        "f": f,
        "blas": "cblas_sgemm" if dtype == "float32" else "cblas_dgemm",
        "inputs": spec.inputs,
        "outputs": spec.outputs,
        "labels": spec.outputs // spec.units,
        "classes": spec.units,
        "input_shape": list(spec.input_shape),
        "output_shape": list(spec.output_shape),
        "seed": spec.seed,
        "loss": program.loss_name,
        "optimizer": program.update.name,
        "chunk": CHUNK,
        "max_file_bytes": safe_io.MAX_FILE_BYTES,
        "layers": [
            {
                "index": la.index,
                "units": la.shape[-1],
                "label": _label(la),
                "shape": list(la.shape),
                "size": math.prod(la.shape),
            }
            for la in program.layers
        ],  # fmt: skip
        "params": params,
        "trainable": [p for p in params if p["trainable"]],
        "arrays": arrays,
        "max_ndim": max(2, *(len(p["shape"]) for p in params)) if params else 2,
        "conv_scratch": conv_scratch([*forward, *evaluation, *backward]),
        "has_conv": any(o["kind"] in _CONV_KINDS for o in (*forward, *backward)),
        "transposes": [
            {"name": op["args"][0], "rows": op["fan_in"], "cols": op["units"]}
            for op in forward
            if op["kind"] == "affine"
        ],
        "loop_transposes": [
            {"name": op["args"][k], "rows": rows, "cols": op["units"]}
            for op in forward
            if op["kind"] == "rnn"
            for k, rows in ((0, op["fan_in"]), (1, op["units"]))
        ]
        + [  # a gated cell's W^T, U^T and its scratch (W x_t + b, U h_(t-1) + br)
            w
            for op in forward
            if op["kind"] == "cell"
            for w in (
                {"name": op["args"][0], "rows": op["fan_in"], "cols": op["attrs"]["gh"]},
                {"name": op["args"][1], "rows": op["attrs"]["units"], "cols": op["attrs"]["gh"]},
                {"name": op["scratch"], "rows": 1, "cols": 2 * op["attrs"]["gh"]},
            )
        ],
        "forward": forward,
        "forward_uses_n": any(o.get("uses_n") for o in forward),
        "modes_differ": program.modes_differ,
        "evaluation": evaluation,
        "evaluation_uses_n": any(o.get("uses_n") for o in evaluation),
        "updates": updates,
        "couples": bool(program.batch),
        # a rule of each element alone (stateless and linear, or with state but no clipping by
        # the norm of every gradient) whose gradients are all weight products and biases: with
        # NAME_ONE_CHUNK its step keeps only the biases' gradients (bias_grads), each weight
        # matrix updated inside its gradient product
        "bias_grads": [p for p in params if p["trainable"] and p["kind"] != "matrix"]
        if (program.update.linear is not None or not program.update.clip_norm)
        and all(
            o.op.kind in ("grad_weight", "grad_bias")
            for o in program.backward
            if o.op.kind.startswith("grad_")
        )
        else None,
        "dropout": any(o["kind"] == "mask" for o in forward),
        "min_rows": program.min_rows,
        "loss_op": loss,
        "backward": backward,
        "backward_uses_n": any(o.get("uses_n") for o in backward),
        "update": _update(program, dtype),
        "output": program.output,
        "logits": program.logits,
        "train": {
            "epochs": spec.train.epochs,
            "batch_size": spec.train.batch_size,
            "shuffle": int(spec.train.shuffle),
            "validation": repr(spec.train.validation),
            "validating": bool(spec.train.validation),
            "patience": spec.train.early_stopping.patience if spec.train.early_stopping else 0,
            "min_delta": repr(
                spec.train.early_stopping.min_delta if spec.train.early_stopping else 0.0
            ),
        },
        "metadata": _metadata(program, params),
        "schedule": c_expr(spec.optimizer.schedule) if spec.optimizer.schedule else "",
        "runtime_io_source": runtime_io_source(),
        "sbp": sbp_math.used([*forward, *evaluation, *updates, loss, *backward], f),
    }
    ctx = _fused(ctx)
    # NAME_SHARE: per-row tensors share memory by liveness, over the fused passes' order
    ctx["shared"] = share.layout(ctx)
    ctx["shared_access"] = share.accessors(ctx["shared"])
    return ctx


def _fused(ctx: dict) -> dict:
    """``ctx`` with the consecutive row ops of each chunk function in one pass (fuse.py); what
    each pass must store: what the others, the loss and the templates read."""
    after = {ctx["output"], ctx["logits"], *fuse.reads(ctx["loss_op"])}
    after |= {v for o in ctx["updates"] for v in fuse.reads(o)}
    backward = {v for o in ctx["backward"] for v in fuse.reads(o)}
    return {
        **ctx,
        "forward": fuse.fuse_rows(fuse.softmax_lse(ctx["forward"]), after | backward),
        "evaluation": fuse.fuse_rows(fuse.softmax_lse(ctx["evaluation"]), after | backward),
        "backward": fuse.fuse_rows(ctx["backward"], after),
    }


RUNTIME_IO = Path(__file__).with_name("runtime_io.c")
_RUNTIME_MARK = "/* ---- symbackprop runtime: reading files (copied from the next line on)"


def runtime_io_source() -> str:
    """symbackprop/codegen/c/runtime_io.c after its marker line: the file reading every
    generated program carries (templates/c/io.c.j2 includes it), without the stand-ins above."""
    text = RUNTIME_IO.read_text(encoding="utf-8")
    start = text.index("\n", text.index(_RUNTIME_MARK)) + 1
    return text[start:].rstrip() + "\n"


def check_size(d: Derivation) -> None:
    """Refuse a net the C compiler cannot build in reasonable time (before any lowering)."""
    if len(d.nodes) > MAX_LAYERS:
        raise SpecError("layers", f"the C target is for nets of at most {MAX_LAYERS} layers (this "
                        f"one has {len(d.nodes)}): gcc -O3 compiles each pass over the layers as "
                        "one function, in minutes above that; use --target numpy")  # fmt: skip
    # the validation loss is evaluation mode's: <name>_eval_loss where the modes differ
    validation = ("validation", "early_stopping")
    refuse_unimplemented(d, "C", done=(*CLIPPING, "schedule", *validation))


def files(program: Program) -> dict[str, str]:
    """The C target's files, in the order they are renamed into place (see TEMPLATES)."""
    from ..templating import render

    ctx = context(program)
    texts = {
        out.format(name=ctx["name"]): render(tpl, **ctx, build=_BUILD)
        for out, tpl in TEMPLATES.items()
    }
    source = f"{ctx['name']}.c"  # its tensors read through the NAME_SHARE accessors
    texts[source] = share.substitute(texts[source], ctx["shared"])
    return {name: text.replace(_BUILD, build_id(texts)) for name, text in texts.items()}


def build_id(texts: dict[str, str]) -> str:
    """48 bits of the SHA-256 of the whole set (rendered with the id's placeholder): the files
    of one run of generate agree on it, a file of another run does not."""
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(f"{name}\0{texts[name]}\0".encode())
    return digest.hexdigest()[:12]


__all__ = ["CHUNK", "MAX_LAYERS", "RUNTIME_IO", "TEMPLATES", "build_id", "c_string", "check_size",
           "context", "files", "runtime_io_source"]  # fmt: skip
