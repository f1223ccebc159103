"""Render a Derivation as text, Markdown, LaTeX or JSON (stage: printers; nothing is written).

All formats are built from one list of sections of equations, so they say the same thing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..core.derivation import Derivation
from ..core.ir import vec
from ..core.layers import LAYER_KINDS, Node
from ..core.ops import kind
from ..core.scalar import values_at
from ..printing import latex as lx
from ..spec.errors import SpecError

# Scalar mode prints every parameter's gradient: about 5-10 ms each on this 2-core machine
# (1,001 parameters: 5-10 s by format; 20,001: 89 s), so it is for small nets (README, Choices).
MAX_SCALAR_PARAMS = 1000


@dataclass(frozen=True)
class Eq:
    """``lhs = rhs`` in LaTeX and text; ``value`` is the number at the sample, if any."""

    tex: str
    txt: str
    value: str = ""
    note: str = ""
    value_tex: str = ""  # LaTeX of the value when it is not plain text (a matrix)


@dataclass
class Section:
    """A titled block: an intro, an optional table of (LaTeX, text) cells, and equations."""

    title: str
    intro: str = ""
    eqs: list[Eq] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    rows: list[tuple[tuple[str, str], ...]] = field(default_factory=list)


def _eq(lhs_tex: str, lhs_txt: str, rhs: sp.Expr | str, *, hadamard=False, note="", value=""):
    if isinstance(rhs, str):
        return Eq(f"{lhs_tex} = {rhs}", f"{lhs_txt} = {rhs}", value, note)
    return Eq(f"{lhs_tex} = {lx.latex(rhs, hadamard)}", f"{lhs_txt} = {lx.text(rhs)}", value, note)


def _fmt(x: float) -> str:
    return f"{x:.9g}"


def _act_name(layer: Node) -> str:
    act = layer.activation
    if act is None:
        return layer.type
    if act.source:
        return f"custom: {act.source}"
    params = ", ".join(f"{k}={v}" for k, v in act.params)
    return act.name + (f" ({params})" if params else "")


def _describe(ly: Node) -> str:
    if ly.type == "dense":
        return f"{ly.units} {_act_name(ly)}"
    act = "" if ly.activation is None or ly.activation.is_identity else f" {_act_name(ly)}"
    return f"{ly.type}({', '.join(ly.inputs)}){act}"


def network_section(d: Derivation) -> Section:
    spec = d.spec
    s = Section("Network and notation", columns=("symbol", "meaning", "shape"))
    s.intro = (
        f"Network '{spec.name}': {spec.inputs} inputs, "
        + ", ".join(_describe(ly) for ly in d.nodes)
        + f"; loss {d.loss.name} ({d.loss.reduction}); optimizer {d.optimizer.name}; "
        f"{d.num_params} parameters. Vectors are one sample's columns; a batch has N samples; "
        "elementwise products are written ⊙ (* in text)."
    )

    def row(name: str, meaning: str, shape: tuple[int, ...] | str) -> None:
        dims = shape if isinstance(shape, str) else " x ".join(map(str, shape))
        s.rows.append(((lx.latex_name(name), name), (meaning, meaning), (dims, dims)))

    row("x", "input", d.shapes["x"])
    for ly in d.nodes:
        i = ly.index
        for p in ly.params:
            what = {"weight": "weights", "bias": "bias"}.get(p.role, p.role)
            frozen = "" if p.trainable else " (not trained)"
            row(p.name, f"{what} of layer {i}{frozen}", p.shape or "scalar (shared)")
        if ly.z is not None:
            row(ly.z, f"pre-activation of layer {i}", d.shapes[ly.z])
            row(ly.a, f"output of layer {i} ({_act_name(ly)})", d.shapes[ly.a])
            row(f"delta{i}", f"∂ℓ/∂z of layer {i} (one sample)", d.shapes[ly.z])
        else:
            row(ly.a, f"output of layer {i} ({ly.type})", d.shapes[ly.a])
    row("t", "target", d.shapes["t"])
    s.rows.append((("E", "E"), ("loss of the batch", "loss of the batch"), ("scalar", "scalar")))
    return s


def forward_section(d: Derivation) -> Section:
    s = Section("Forward pass")
    ctx = d.context
    for ly in d.nodes:
        for op in d.forward:
            if op.out not in (ly.z, ly.a):
                continue
            act = ly.activation
            if op.kind == "map" and op.out == ly.a and act is not None:
                expr = act.expr.xreplace({sp.Symbol("x", real=True): vec(ly.z)})
                s.eqs.append(_eq(lx.latex_name(ly.a), ly.a, expr, note=_act_name(ly)))
            else:
                k = kind(op)
                s.eqs.append(Eq(k.latex(op, ctx), k.text(op, ctx)))
    return s


def loss_section(d: Derivation) -> Section:
    s = Section("Loss")
    last = d.graph.output
    c = d.scale
    ell = d.loss.expr.xreplace({sp.Symbol("y", real=True): sp.Symbol("a", real=True)})
    s.intro = (
        f"E = c Σ_n Σ_k ℓ(a{last.index}_k, t_k) with c = {lx.text(c)} "
        f"(reduction '{d.loss.reduction}'). "
        + (
            "PyTorch computes this loss from the logits z; the stable form is used."
            if d.loss.on_logits
            else ""
        )
    )
    s.eqs.append(_eq(r"\ell(a, t)", "l(a, t)", ell, note="per output element"))
    s.eqs.append(_eq("c", "c", c))
    for step in d.loss_value.steps[1:]:
        s.eqs.append(_eq(r"\ell", "l", step.rhs, note=step.why))
    return s


def local_section(d: Derivation) -> Section:
    s = Section("Local derivatives", "Each activation's derivative, derived by SymPy; a = f(x).")
    seen = set()
    for ly in d.nodes:
        if ly.activation is None:
            continue
        key = (ly.activation.name, ly.activation.expr)
        if ly.derivative is None or key in seen:
            continue
        seen.add(key)
        for step in ly.derivative.steps:
            tex = r"f'(x)" if step.lhs == "f'(x)" else ("f(x)" if step.lhs == "f(x)" else step.lhs)
            s.eqs.append(_eq(tex, step.lhs, step.rhs, note=f"{_act_name(ly)}: {step.why}"))
    for step in d.output_delta.steps:
        s.eqs.append(
            _eq(_tex_label(step.lhs), step.lhs, step.rhs, note=f"output layer: {step.why}")
        )
    return s


def _tex_label(label: str) -> str:
    table = {
        "∂": r"\partial ",
        "ℓ": r"\ell",
        "δ": r"\delta",
        "Σ": r"\sum",
        "ᵀ": "^T",
        "⊙": r"\odot",
        "−": "-",
        "_j": "_j",
        "_k": "_k",
    }
    for k, v in table.items():
        label = label.replace(k, v)
    if label.startswith(r"\partial "):
        num, den = label.split("/")
        label = rf"\frac{{{num}}}{{{den.replace(chr(92) + 'partial', chr(92) + 'partial ')}}}"
    return label


def backward_section(d: Derivation) -> Section:
    s = Section("Backward pass (tensor form, one sample)",
                "The recurrences, then this network's instance of them.")  # fmt: skip
    for t in dict.fromkeys(ly.type for ly in d.nodes):
        s.eqs += [Eq(tex, txt, note=f"general form: {why}") for tex, txt, why in
                  LAYER_KINDS[t].textbook]  # fmt: skip
    ctx = d.context
    for op in d.backward:
        if op.kind.startswith("grad_"):
            continue
        k = kind(op)
        if op.kind == "map":
            s.eqs.append(_eq(lx.latex_name(op.out), op.out, op.expr, hadamard=True, note=op.why))
        else:
            note = "softmax Jacobian" if op.kind == "softmax_backward" else ""
            s.eqs.append(Eq(k.latex(op, ctx), k.text(op, ctx), note=note))
    return s


def gradient_section(d: Derivation) -> Section:
    s = Section("Parameter gradients", "Summed over the N samples of a batch, scaled by c.")
    ctx = d.context
    for op in d.backward:
        if op.kind.startswith("grad_"):
            s.eqs.append(Eq(kind(op).latex(op, ctx), kind(op).text(op, ctx)))
    return s


def optimizer_section(d: Derivation) -> Section:
    rule = d.optimizer
    hyper = ", ".join(f"{lx.text(s)} = {float(v):g}" for s, v in rule.hyper)
    s = Section(
        "Optimizer update",
        f"torch.optim.{rule.name}: {hyper}; for every trainable "
        "parameter element p with gradient g; k counts steps from 1; state starts at 0.",
    )
    for a in rule.assignments:
        s.eqs.append(_eq(lx.latex(a.target), lx.text(a.target), a.expr, note=a.why))
    return s


def initial_section(d: Derivation, ev) -> Section:
    """Where the worked example starts: the sample(s) and every initial parameter, so the
    numbers after it can be redone by hand even when the spec's init is random."""
    one = ev.batch == 1
    intro = ("The sample and the initial parameters (the spec's values, or its seed's draws); "
             "every number below starts from these." if one else
             f"The batch of {ev.batch} samples (one per row of X and T) and the initial "
             "parameters; every number below starts from these.")  # fmt: skip
    s = Section("Starting point", intro)
    for name in ("x", "t"):
        value = ev.values[name][0] if one else ev.values[name]
        label = name if one else name.upper()
        tex = lx.latex_name(name) if one else rf"\mathbf{{{name.upper()}}}"
        s.eqs.append(Eq(tex, label, _array_text(value), value_tex=_array_tex(value)))
    for p in d.params:
        value = ev.params[p.name]
        note = "" if p.trainable else "not trained"
        s.eqs.append(Eq(lx.latex_name(p.name), p.name, _array_text(value), note=note,
                        value_tex=_array_tex(value)))  # fmt: skip
    return s


def numbers_section(d: Derivation, ev) -> Section:
    s = Section("Worked example", f"At the initial parameters, for a batch of {ev.batch}.")
    s.eqs.append(Eq("E", "E", _fmt(ev.loss)))
    for name, g in sorted(ev.gradients.items(), key=lambda kv: _order(d, kv[0])):
        lhs = lx.latex_name("d" + name)
        s.eqs.append(Eq(lhs, "d" + name, _array_text(g), value_tex=_array_tex(g)))
    for name, p in ev.updated.items():
        lhs = "{" + lx.latex_name(name) + "}^{+}"
        s.eqs.append(Eq(lhs, name + "+", _array_text(p), value_tex=_array_tex(p)))
    return s


def _array_tex(a: np.ndarray, limit: int = 6) -> str:
    """A bmatrix of at most ``limit`` rows and columns (\\cdots / \\vdots beyond); a tensor of
    more than two axes shows its rows of the last axis."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return f"{float(a):.9g}"
    # a map or a kernel of more axes: its rows (the last axis) one under the other
    m = a.reshape(-1, 1) if a.ndim == 1 else a.reshape(-1, a.shape[-1])
    rows = []
    for i, r in enumerate(m[:limit]):
        cells = [f"{v:.6g}" for v in r[:limit]] + ([r"\cdots"] if m.shape[1] > limit else [])
        rows.append(" & ".join(cells))
        if i == limit - 1 and m.shape[0] > limit:
            rows.append(r"\vdots")
    body = r" \\ ".join(rows)
    return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"


def _order(d: Derivation, name: str) -> int:
    return [p.name for p in d.params].index(name)


def _array_text(a: np.ndarray) -> str:
    """NumPy's print with 9 decimals, without the blanks it pads values with to align them
    ([0.05, 0.1], not [0.05, 0.1 ])."""
    text = np.array2string(np.asarray(a, dtype=float), precision=9, separator=", ")
    return re.sub(r", +", ", ", re.sub(r"(?<=\[) +| +(?=[,\]])", "", text))


def sections(d: Derivation, mode: str, ev=None) -> list[Section]:
    from .scalar import _scalar_updates, scalar_sections  # it imports Eq, Section from here

    mode = d.mode(mode)
    if mode == "scalar" and d.num_params > MAX_SCALAR_PARAMS:
        raise SpecError("--mode", f"scalar mode writes each parameter's gradient element by "
                        f"element, for small nets (at most {MAX_SCALAR_PARAMS:,} parameters; "
                        f"this one has {d.num_params:,}); use --mode tensor")  # fmt: skip
    out = [network_section(d)]
    if ev is not None:
        out.append(initial_section(d, ev))
    out += [forward_section(d), loss_section(d), local_section(d)]
    out += [backward_section(d), gradient_section(d)]
    if mode == "scalar":
        vals = values_at(d, ev) if ev is not None and ev.batch == 1 else None
        *secs, sd = scalar_sections(d, vals)
        out += secs
    out.append(optimizer_section(d))
    if mode == "scalar":
        out.append(_scalar_updates(d, sd, ev))
    if ev is not None:
        out.append(numbers_section(d, ev))
    return out


def to_json(d: Derivation, mode: str, ev=None) -> str:
    """With an evaluation: the contract's {loss, forward, gradients, updated}, and where it
    starts: ``initial`` (x and t, one sample's vectors or the batch's rows, and every initial
    parameter in its own shape); else the formulas, section by section."""
    if ev is not None:
        one = ev.batch == 1
        initial = {n: (ev.values[n][0] if one else ev.values[n]).tolist() for n in ("x", "t")}
        initial |= {p.name: _plain(ev.params[p.name]) for p in d.params}
        fwd = {}
        for op in d.forward:
            if op.kind not in ("loss", "logsumexp"):
                arr = ev.values[op.out]
                fwd[op.out] = (arr[0] if one else arr).tolist()
        doc = {
            "initial": initial,
            "loss": ev.loss,
            "forward": fwd,
            "gradients": {p.name: _plain(ev.gradients[p.name]) for p in d.trainable},
            "updated": {k: _plain(v) for k, v in ev.updated.items()},
        }
        return json.dumps(doc, indent=2)
    doc = {
        "name": d.spec.name,
        "mode": d.mode(mode),
        "sections": [
            {
                "title": s.title,
                "intro": s.intro,
                "equations": [{"text": e.txt, "latex": e.tex, "note": e.note} for e in s.eqs],
            }
            for s in sections(d, mode)
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _plain(a: np.ndarray):
    a = np.asarray(a, dtype=float)
    return float(a) if a.ndim == 0 else a.tolist()


def render(d: Derivation, fmt: str = "text", mode: str = "auto", ev=None) -> str:
    """The derivation of ``d`` in ``fmt`` (text, markdown, latex or json)."""
    if fmt == "json":
        return to_json(d, mode, ev)
    secs = sections(d, mode, ev)
    from .layout import FORMATS

    return FORMATS[fmt](d, secs)
