"""Gated recurrent layer kinds: gru and lstm (as nn.GRU / nn.LSTM, batch_first, one layer).

Parameters and layouts are PyTorch's, gates stacked in its order (gru: r, z, n; lstm: i, f, g,
o): W = weight_ih_l0 [G·units, F], U = weight_hh_l0 [G·units, units], b = bias_ih_l0,
br = bias_hh_l0 [G·units], all drawn from U(−1/√units, 1/√units) as PyTorch does. The cell's
step is elementwise SymPy math (``core.cells``), scanned over time by the ``cell`` op; its
backward step is derived from it, and the chain rule's generic walk runs BPTT as the pullback.
"""

from __future__ import annotations

from functools import cache

from ...printing.names import latex_name
from ...spec.fields import _bool, _Fields, _int
from ..cells import CELLS, Derived, derive_cell, show, show_backward
from ..ir import Op, Param, Shape
from ..ops.gated import cell_layout
from .base import MAX_DIM, LayerKind, LayerSpec, Node, register
from .recurrent import _rnn_params, _sequence_input


def _parse(kind: str):
    def parse(f: _Fields, inputs: tuple[str, ...], shapes: tuple[Shape, ...]) -> LayerSpec:
        steps, _ = _sequence_input(f, inputs, shapes, kind)
        units = _int(f.get("units", required=True), f.at("units"), 1, MAX_DIM)
        sequences = _bool(f.get("return_sequences", False), f.at("return_sequences"))
        bias = _bool(f.get("bias", True), f.at("bias"))
        truncate = 0 if f.get("bptt") is None else _int(f.get("bptt"), f.at("bptt"), 1, MAX_DIM)
        f.done(("units", "return_sequences", "bias", "bptt"))
        shape = (steps, units) if sequences else (units,)
        attrs = (("return_sequences", sequences), ("bias", bias),
                 ("bptt", truncate if 0 < truncate < steps else 0))  # fmt: skip
        return LayerSpec(kind, inputs, shape, attrs=attrs)

    return parse


def _params(kind: str):
    gates = len(CELLS[kind].gates)

    def params(ls: LayerSpec, i: int, shapes: tuple[Shape, ...]) -> tuple[Param, ...]:
        import dataclasses

        out = []
        for p in _rnn_params(ls, i, shapes):  # the rnn's, each with G times the rows
            out.append(dataclasses.replace(p, shape=(gates * p.shape[0], *p.shape[1:])))
        return tuple(out)

    return params


@cache
def _derived(kind: str) -> Derived:
    """The cell's derived backward step, on first use (deriving it costs SymPy work that every
    command would otherwise pay at import, gated layer or not)."""
    return derive_cell(CELLS[kind])


def cell_op(
    kind: str,
    out: str,
    args: tuple[str, ...],
    units: int,
    layer: int,
    truncate: int = 0,
    why: str = "",
) -> Op:
    """The ``cell`` op of a gru or lstm layer: args (W, U, b, br, input), b and br '' when
    absent; the cell, its derived backward step and the layout in its attrs."""
    cell, derived = CELLS[kind], _derived(kind)
    w, u, _, _, inp = args
    text, tex = show(cell, w, u, inp)
    btext, btex = show_backward(cell, derived, w, u, inp)
    attrs = (
        ("cell", kind), ("gates", cell.gates), ("stmts", cell.names),
        ("fwd", derived.forward), ("states", cell.states),
        ("btemps", tuple(t.name for t, _ in derived.temps)),
        ("bvals", tuple(e for _, e in derived.temps)), ("bouts", derived.outputs),
        ("braw", derived.raw), ("tied", derived.tied), ("delta", f"delta{layer}"),
        ("layer", layer), ("truncate", truncate), ("show", text), ("show_tex", tex),
        ("show_back", btext), ("show_back_tex", btex),
        *cell_layout(units, len(cell.gates), cell.names, cell.states, derived.tied),
    )  # fmt: skip
    return Op("cell", out, args, why=why, attrs=attrs)


def _forward(kind: str):
    cell = CELLS[kind]

    def forward(node: Node) -> tuple[Op, ...]:
        attrs = dict(node.spec.attrs)
        i = node.index
        b, br = node.param("bias"), node.param("recurrent_bias")
        args = (f"W{i}", f"U{i}", b.name if b else "", br.name if br else "", node.inputs[0])
        s = f"s{i}"
        units = node.units
        hb = cell.names.index("h")
        why = (f"the {kind} cell over t = 1..T (${latex_name(s)}_t$ keeps every gate and state "
               "of step t for BPTT)")  # fmt: skip
        ops = [cell_op(kind, s, args, units, i, attrs["bptt"], why)]
        h = node.a if attrs["return_sequences"] else f"h{i}"
        ops.append(Op("slice", h, (s,), why=f"${latex_name(h)}_t$: the hidden states",
                      attrs=(("start", hb * units), ("stop", (hb + 1) * units),
                             ("axis", 1))))  # fmt: skip
        if not attrs["return_sequences"]:
            last = f"${latex_name(node.a)} = {latex_name(h)}_T$ (many-to-one)"
            ops.append(Op("time_last", node.a, (h,), why=last))
        return tuple(ops)

    return forward


GRU_TEXTBOOK = (
    (r"\mathbf{r}_t = \sigma\left(W_r \mathbf{x}_t + \mathbf{b}_r + U_r \mathbf{h}_{t-1} + "
     r"\mathbf{b}_{hr}\right),\ \mathbf{z}_t = \sigma\left(W_z \mathbf{x}_t + \mathbf{b}_z + "
     r"U_z \mathbf{h}_{t-1} + \mathbf{b}_{hz}\right)",
     "r_t = sigmoid(W_r x_t + b_r + U_r h_(t-1) + br_r), z_t = sigmoid(W_z x_t + b_z + "
     "U_z h_(t-1) + br_z)", "gru: reset and update gates (PyTorch's order r, z, n)"),
    (r"\mathbf{n}_t = \tanh\left(W_n \mathbf{x}_t + \mathbf{b}_n + \mathbf{r}_t \odot \left("
     r"U_n \mathbf{h}_{t-1} + \mathbf{b}_{hn}\right)\right),\ \mathbf{h}_t = \left(1 - "
     r"\mathbf{z}_t\right) \odot \mathbf{n}_t + \mathbf{z}_t \odot \mathbf{h}_{t-1}",
     "n_t = tanh(W_n x_t + b_n + r_t * (U_n h_(t-1) + br_n)), h_t = (1 - z_t) * n_t + "
     "z_t * h_(t-1)", "candidate and new state, $\\mathbf{h}_0 = \\mathbf{0}$"),
    (r"\frac{\partial E}{\partial W} = c \sum_n \sum_t \boldsymbol{\delta}x_t \mathbf{x}_t^T,"
     r"\quad \frac{\partial E}{\partial U} = c \sum_n \sum_t \boldsymbol{\delta}q_t "
     r"\mathbf{h}_{t-1}^T",
     "dE/dW = c sum_n sum_t dx_t x_t^T, dE/dU = c sum_n sum_t dq_t h_(t-1)^T",
     "BPTT: δx, δq the cell's backward step (t = T..1), ∂ℓ/∂h_t carried back in time"),
)  # fmt: skip

LSTM_TEXTBOOK = (
    (r"\mathbf{i}_t, \mathbf{f}_t, \mathbf{o}_t = \sigma\left(W_\ast \mathbf{x}_t + "
     r"\mathbf{b}_\ast + U_\ast \mathbf{h}_{t-1} + \mathbf{b}_{h\ast}\right),\ \mathbf{g}_t = "
     r"\tanh\left(W_g \mathbf{x}_t + \mathbf{b}_g + U_g \mathbf{h}_{t-1} + \mathbf{b}_{hg}"
     r"\right)",
     "i_t, f_t, o_t = sigmoid(W_* x_t + b_* + U_* h_(t-1) + br_*), g_t = tanh(W_g x_t + b_g + "
     "U_g h_(t-1) + br_g)", "lstm: gates in PyTorch's order i, f, g, o"),
    (r"\mathbf{c}_t = \mathbf{f}_t \odot \mathbf{c}_{t-1} + \mathbf{i}_t \odot \mathbf{g}_t,"
     r"\ \mathbf{h}_t = \mathbf{o}_t \odot \tanh\left(\mathbf{c}_t\right)",
     "c_t = f_t * c_(t-1) + i_t * g_t, h_t = o_t * tanh(c_t)",
     "cell state and hidden state, $\\mathbf{h}_0 = \\mathbf{c}_0 = \\mathbf{0}$"),
    (r"\boldsymbol{\delta}c_t = \frac{\partial \ell}{\partial \mathbf{c}_t} + "
     r"\boldsymbol{\delta}c_{t+1} \odot \mathbf{f}_{t+1},\quad \frac{\partial E}{\partial U} = "
     r"c \sum_n \sum_t \boldsymbol{\delta}q_t \mathbf{h}_{t-1}^T",
     "dc_t = dl/dc_t + dc_(t+1) * f_(t+1), dE/dU = c sum_n sum_t dq_t h_(t-1)^T",
     "BPTT: the cell state's gradient flows back through the forget gates"),
)  # fmt: skip

for _kind, _book in (("gru", GRU_TEXTBOOK), ("lstm", LSTM_TEXTBOOK)):
    register(LayerKind(_kind, _parse(_kind), _params(_kind), _forward(_kind), _book))
