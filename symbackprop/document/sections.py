"""Render a Derivation as text, Markdown, LaTeX or JSON (stage: printers; nothing is written).

All formats are built from one list of sections of equations, so they say the same thing.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import sympy as sp

from ..core.derivation import Derivation
from ..core.ir import vec
from ..core.layers import LAYER_KINDS, Node
from ..core.ops import CLOSED_FORMS, kind
from ..core.scalar import values_at
from ..printing import latex as lx
from ..printing.names import notation
from ..spec.errors import SpecError
from .equations import Eq, Section, _eq
from .layout import FORMATS
from .scalar import _scalar_updates, scalar_sections
from .worked import initial_section, numbers_section

# Scalar mode prints every parameter's gradient: about 5-10 ms each on this 2-core machine
# (1,001 parameters: 5-10 s by format; 20,001: 89 s), so it is for small nets (README, Choices).
MAX_SCALAR_PARAMS = 1000


# The left sides of derivation steps (core.activations.Step), in LaTeX; a Step whose lhs is an
# expression is printed by the printers.
STEP_LABELS = {
    "f(x)": "f(x)", "f'(x)": "f'(x)", "ℓ": r"\ell", "ℓ_k": r"\ell_k", "ℓ(a, t)": r"\ell(a, t)",
    "ℓ(s, t)": r"\ell(s, t)", "∂ℓ/∂s": r"\frac{\partial \ell}{\partial s}",
    "∂ℓ/∂a": r"\frac{\partial \ell}{\partial a}",
    "∂ℓ/∂a_j": r"\frac{\partial \ell}{\partial a_j}",
    "∂a_j/∂z_k": r"\frac{\partial a_j}{\partial z_k}", "δ": r"\delta", "δ_k": r"\delta_k",
}  # fmt: skip


def _step(step, note: str) -> Eq:
    """One derivation step: its left side from STEP_LABELS or printed, its right side printed
    with scalar names (a step is about one element)."""
    if isinstance(step.lhs, str):
        lhs_tex, lhs_txt = STEP_LABELS[step.lhs], step.lhs
    else:
        lhs_tex, lhs_txt = lx.latex(step.lhs, elements=True), lx.text(step.lhs)
    return _eq(lhs_tex, lhs_txt, step.rhs, elements=True, note=note)


def _num_tex(x: float) -> str:
    """A hyperparameter in LaTeX: 0.9, and 1e-08 as 10^{-8} (not the letter e)."""
    text = f"{x:g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return ("" if mantissa == "1" else rf"{mantissa} \cdot ") + f"10^{{{int(exponent)}}}"


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


def _inputs_of(spec) -> str:
    """'4 inputs', 'sequences of 12 steps of 1 feature', or 'maps of 1 channel of 8 x 8'."""
    shape = spec.input_shape
    if len(shape) == 1:
        return f"{spec.inputs} inputs"
    if spec.input_layout == "sequence":
        steps, feats = shape
        return f"sequences of {steps} steps of {feats} feature{'s' if feats > 1 else ''}"
    channels, size = shape[0], " x ".join(map(str, shape[1:]))
    return f"maps of {channels} channel{'s' if channels > 1 else ''} of {size}"


def network_section(d: Derivation) -> Section:
    spec = d.spec
    s = Section("Network and notation", columns=("symbol", "meaning", "shape"))
    s.intro = (
        f"Network '{spec.name}': {_inputs_of(spec)}, "
        + ", ".join(_describe(ly) for ly in d.nodes)
        + f"; loss {d.loss.name} ({d.loss.reduction}); optimizer {d.optimizer.name}; "
        f"{d.num_params} parameters. Bold letters are one sample's vectors (columns) and the "
        "weight matrices, italic letters their elements and other scalars; a batch has $N$ "
        r"samples; $\odot$ is the elementwise product (* in text)."
        + (
            r" A shared bias $b$ adds $b \mathbf{1}$, with $\mathbf{1}$ a vector of ones."
            if any(not p.shape for p in d.params)
            else ""
        )  # fmt: skip
    )

    def row(name: str, meaning: str, shape: tuple[int, ...] | str) -> None:
        dims = shape if isinstance(shape, str) else " x ".join(map(str, shape))
        s.rows.append(((lx.latex_name(name), name), (meaning, meaning), (dims, dims)))

    row("x", "input", d.shapes["x"])
    for ly in d.nodes:
        i = ly.index
        for p in ly.params:
            what = _ROLES.get(p.role, p.role)
            if p.role == "buffer":
                what = "running " + ("mean" if p.name.startswith("mean") else "variance")
                frozen = " (a buffer: updated by each training step, never trained)"
            else:
                frozen = "" if p.trainable else " (not trained)"
            row(p.name, f"{what} of layer {i}{frozen}", p.shape or "scalar (shared)")
        for op in _inner_ops(ly):
            batch = " (per batch)" if op.out in d.batch else ""
            row(op.out, op.why.split(": ", 1)[-1] + batch, d.shapes[op.out] or "scalar")
        if ly.z is not None:
            row(ly.z, f"pre-activation of layer {i}", d.shapes[ly.z])
            row(ly.a, f"output of layer {i} ({_act_name(ly)})", d.shapes[ly.a])
            row(f"delta{i}", rf"$\partial\ell/\partial\mathbf{{z}}^{{({i})}}$ (one sample)",
                d.shapes[ly.z])  # fmt: skip
        else:
            row(ly.a, f"output of layer {i} ({ly.type})", d.shapes[ly.a])
    row("t", "target", d.shapes["t"])
    s.rows.append((("E", "E"), ("loss of the batch", "loss of the batch"), ("scalar", "scalar")))
    return s


_ROLES = {"weight": "weights", "bias": "bias", "scale": "scale γ", "shift": "shift β"}


def _inner_ops(ly: Node) -> tuple:
    """A layer's ops before the ones writing z and a (a normalization's statistics)."""
    return tuple(op for op in LAYER_KINDS[ly.type].forward(ly) if op.out not in (ly.z, ly.a))


def forward_section(d: Derivation) -> Section:
    s = Section("Forward pass")
    if d.modes_differ:
        s.intro = ("Training mode (what the loss, its gradients and each training step "
                   "compute); evaluation mode follows.")  # fmt: skip
    ctx = d.context
    for ly in d.nodes:
        own = {op.out for op in LAYER_KINDS[ly.type].forward(ly)}  # a loop's state (h) too
        for op in d.forward:
            if op.out not in own:
                continue
            act = ly.activation
            if op.kind == "map" and op.out == ly.a and act is not None:
                expr = act.expr.xreplace({sp.Symbol("x", real=True): vec(ly.z)})
                s.eqs.append(_eq(lx.latex_name(ly.a), ly.a, expr, note=_act_name(ly)))
            else:
                k = kind(op)
                note = op.why if op.out not in (ly.z, ly.a) else ""
                s.eqs.append(Eq(k.latex(op, ctx), k.text(op, ctx), note=note))
    return s


def modes_section(d: Derivation) -> Section:
    """Evaluation mode (``forward``, ``predict``): the ops that differ from training mode, and
    the buffer updates of a training step."""
    s = Section("Evaluation mode and the running buffers",
                "In evaluation mode batch statistics are the running buffers and dropout masks "
                "their mean 1 − p (inverted dropout is then the identity); these ops replace "
                "the training-mode ones. Each training step then updates the buffers with the "
                "batch's statistics (PyTorch's momentum m; the variance unbiased).")  # fmt: skip
    ctx = d.context
    training = set(d.forward)
    for op in d.evaluation:
        if op not in training and op.kind != "loss":
            k = kind(op)
            s.eqs.append(Eq(k.latex(op, ctx), k.text(op, ctx), note="evaluation mode"))
    for op in d.updates:
        k = kind(op)
        s.eqs.append(Eq(k.latex(op, ctx), k.text(op, ctx), note=op.why))
    return s


def loss_section(d: Derivation) -> Section:
    s = Section("Loss")
    last = d.graph.output
    c = d.scale
    logits = d.loss.on_logits
    on_z = logits and d.loss.name == "binary_cross_entropy"  # CE's y is the softmax of z
    name = f"z{last.index}" if on_z else ("p" if d.output_delta.needs_softmax else last.a)
    arg = sp.Symbol("z" if on_z else "a", real=True)
    ell = d.loss.expr.xreplace({sp.Symbol("y", real=True): arg})
    s.intro = (
        f"The loss of the batch sums the loss of each output element over the outputs $k$ and "
        f"the samples $n$, scaled by $c$ (reduction '{d.loss.reduction}')."
        + (
            " PyTorch computes this loss from the logits; so does the code, in the stable form "
            "below."
            if logits
            else ""
        )  # fmt: skip
    )
    if d.output_delta.needs_softmax:  # p, used by the output delta p - t: defined here
        op = next(op for op in d.forward if op.kind == "softmax" and op.out == "p")
        note = "the softmax of the logits, which the loss compares with $t$"
        s.eqs.append(Eq(kind(op).latex(op, d.context), kind(op).text(op, d.context), note=note))
    elem = lx.latex_name(name, True)
    s.eqs.append(Eq(rf"E = c \sum_{{n}} \sum_{{k}} \ell\left({elem}_{{nk}}, t_{{nk}}\right)",
                    f"E = c * sum_n sum_k ℓ({name}_nk, t_nk)"))  # fmt: skip
    s.eqs.append(_eq("c", "c", c))
    lhs = "z, t" if on_z else "a, t"
    note = "per output element" + (", on the logit $z$" if on_z else "")
    s.eqs.append(_eq(rf"\ell({lhs})", f"ℓ({lhs})", ell, elements=True, note=note))
    steps = d.loss_value.steps[1:]
    if d.loss_value.kind == "logsumexp":
        s.eqs.append(Eq(r"\operatorname{lse} = \log \sum_{j} e^{z_{j}}", "lse = log sum_j exp(z_j)",
                        note="the log-sum-exp of the logits, computed as "
                        r"$m + \log \sum_j e^{z_j - m}$ with $m = \max_j z_j$"))  # fmt: skip
    for step in steps:
        rhs = step.rhs.xreplace({sp.Symbol("x", real=True): sp.Symbol("z", real=True)})
        s.eqs.append(_step(dataclasses.replace(step, rhs=rhs), step.why))
    return s


def local_section(d: Derivation) -> Section:
    s = Section("Local derivatives",
                "Each activation's derivative, derived by SymPy, with $a = f(x)$.")  # fmt: skip
    seen = set()
    for ly in d.nodes:
        if ly.activation is None:
            continue
        key = (ly.activation.name, ly.activation.expr)
        if ly.derivative is None or key in seen:
            continue
        seen.add(key)
        for step in ly.derivative.steps:
            note = f"{_act_name(ly)}: {step.why}"
            if step.rhs.has(sp.Heaviside):
                note += "; $f'(0) = 0$, as PyTorch"
            s.eqs.append(_step(step, note))
    for step in d.output_delta.steps:
        s.eqs.append(_step(step, f"output layer: {step.why}"))
    return s


def backward_section(d: Derivation) -> Section:
    s = Section("Backward pass (tensor form, one sample)",
                "The recurrences, then this network's instance of them.")  # fmt: skip
    for t in dict.fromkeys(ly.type for ly in d.nodes):
        s.eqs += [Eq(tex, txt, note=f"general form: {why}") for tex, txt, why in
                  LAYER_KINDS[t].textbook]  # fmt: skip
    if d.rewrites:
        s.intro += (" Op by op, as the chain rule derives it; the closed forms that replace "
                    "some of these steps in the code follow.")  # fmt: skip
    s.eqs += _backward_eqs(d, d.derived)
    return s


def _backward_eqs(d: Derivation, ops) -> list[Eq]:
    ctx = d.context
    out = []
    for op in ops:
        if op.kind.startswith("grad_"):
            continue
        k = kind(op)
        if op.kind == "map":
            out.append(_eq(lx.latex_name(op.out), op.out, op.expr, hadamard=True, note=op.why))
        else:
            note = {"softmax_backward": "softmax Jacobian", "reduce": op.why}.get(op.kind, "")
            out.append(Eq(k.latex(op, ctx), k.text(op, ctx), note=note))
    return out


def closed_form_section(d: Derivation) -> Section:
    """Each closed form that replaces the chain rule's op-by-op steps through a segment."""
    s = Section("Closed forms", "Each replaces the op-by-op steps above through one layer; "
                "tests/test_normalization.py proves the two equal with SymPy (for every element "
                "of a small batch) and numerically.")  # fmt: skip
    for r in d.rewrites:
        node = next(n for n in d.nodes if n.index == r.layer)
        replaced = ", ".join(o.out for o in r.derived if not o.kind.startswith("grad_"))
        cf = CLOSED_FORMS[r.name]
        note = f"{node.type}: {cf.formula} replaces {replaced}; {cf.why}"
        s.eqs.append(Eq(r"\text{layer " + str(r.layer) + "}", f"layer {r.layer}", note=note))
        s.eqs += _backward_eqs(d, r.closed)
    return s


def gradient_section(d: Derivation) -> Section:
    s = Section("Parameter gradients", "Summed over the $N$ samples of a batch, scaled by $c$.")
    ctx = d.context
    for op in d.backward:
        if op.kind.startswith("grad_"):
            s.eqs.append(Eq(kind(op).latex(op, ctx), kind(op).text(op, ctx)))
    return s


def optimizer_section(d: Derivation) -> Section:
    rule = d.optimizer
    hyper = ", ".join(f"${lx.latex(s)} = {_num_tex(float(v))}$" for s, v in rule.hyper)
    state = ", ".join(f"${lx.latex(x, elements=True)}$" for x in rule.state)
    torch_name = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}.get(rule.name, rule.name)
    s = Section(
        "Optimizer update",
        f"torch.optim.{torch_name} with {hyper}, applied to every trainable parameter element "
        "$p$ with its gradient $g$; $k$ counts the steps from 1"
        + (f"; the state {state} starts at 0." if state else "."),
    )
    for a in rule.assignments:
        target = lx.latex(a.target, elements=True)
        s.eqs.append(_eq(target, lx.text(a.target), a.expr, elements=True, note=a.why))
    return s


def sections(d: Derivation, mode: str, ev=None) -> list[Section]:
    mode = d.mode(mode)
    if mode == "scalar" and d.couples_samples:
        raise SpecError("--mode", "scalar mode writes one sample's formulas, but batch "
                        "statistics (batch_norm) make each sample's loss depend on the whole "
                        "batch; use --mode tensor")  # fmt: skip
    if mode == "scalar" and d.num_params > MAX_SCALAR_PARAMS:
        raise SpecError("--mode", f"scalar mode writes each parameter's gradient element by "
                        f"element, for small nets (at most {MAX_SCALAR_PARAMS:,} parameters; "
                        f"this one has {d.num_params:,}); use --mode tensor")  # fmt: skip
    out = [network_section(d)]
    if ev is not None:
        out.append(initial_section(d, ev))
    out.append(forward_section(d))
    if d.modes_differ:
        out.append(modes_section(d))
    out += [loss_section(d), local_section(d), backward_section(d)]
    if d.rewrites:
        out.append(closed_form_section(d))
    out.append(gradient_section(d))
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
                if op.out not in d.batch:
                    arr = arr[..., 0] if d.shapes[op.out] == () else arr
                    arr = arr[0] if one else arr
                fwd[op.out] = _plain(arr)
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


def names_of(d: Derivation):
    """The notation of ``d``'s documents (printing.names): which names are one number per
    sample (a shared bias, lse), which are parameters, which are tensors."""
    scalars = [p.name for p in d.params if not p.shape]
    scalars += [t for t, shape in d.shapes.items() if shape == ()]
    tensors = [t for t, shape in d.shapes.items() if shape != ()]
    return notation(scalars, [p.name for p in d.params], tensors)


def render(d: Derivation, fmt: str = "text", mode: str = "auto", ev=None) -> str:
    """The derivation of ``d`` in ``fmt`` (text, markdown, latex or json)."""
    with names_of(d):
        if fmt == "json":
            return to_json(d, mode, ev)
        return FORMATS[fmt](d, _last_sections(d, mode, ev))


def _last_sections(d: Derivation, mode: str, ev) -> list[Section]:
    """sections(d, mode, ev), the last ones kept on ``d`` (as instantiate keeps its expansion):
    the formats only read them, and rendering a document in several formats (derive --pdf, a
    notebook) then prints its formulas once. One entry, so it never grows."""
    last = d.__dict__.get("_sections")
    if last is None or last[0] != mode or last[1] is not ev:
        last = d.__dict__["_sections"] = (mode, ev, sections(d, mode, ev))
    return last[2]
