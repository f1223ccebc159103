"""The worked example's sections: the starting point (samples and initial parameters) and the
numbers of one training step (statistics and masks, the loss, every gradient, the updated
parameters), each value as text and as a LaTeX matrix."""

from __future__ import annotations

import re

import numpy as np

from ..core.derivation import Derivation
from ..core.layers import LAYER_KINDS
from ..printing import latex as lx
from .equations import Eq, Section, _fmt


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
    for ly in d.nodes:  # the statistics, masks and outputs of normalization and dropout
        ops = LAYER_KINDS[ly.type].forward(ly)
        if any(op.kind in ("reduce", "mask") for op in ops):
            for op in ops:
                value = ev.values[op.out]
                value = value[0] if ev.batch == 1 and op.out not in d.batch else value
                value = value[..., 0] if d.shapes[op.out] == () and op.out not in d.batch else value
                s.eqs.append(Eq(lx.latex_name(op.out), op.out, _array_text(value),
                                value_tex=_array_tex(value), note=op.why))  # fmt: skip
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
