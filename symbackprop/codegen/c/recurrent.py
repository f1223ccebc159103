"""The C target's lowering of a gated cell's BPTT input (the lstm and gru ops of core/ops/gated.py).

The cell's backward step reads ∂ℓ/∂(each saved value) from outside the cell (``k_e{s}``), a
tensor [T, K·units] that the chain rule builds as a ``pad``: the layer above's gradient (h's, or
[T, units] with return_sequences) in h's block, zeros elsewhere. Built, it is a memset of K·units
numbers a step and a copy, then K loads a unit of which K - 1 are zeros. Here, where the pad is
read by that step only (pad_folds), the step reads the padded tensor itself and the zero blocks
are -0 constants (x + -0 is x, which the compiler folds away: the same numbers); the pad and its
array go.

Likewise the gradient sums over time (grad_seq_weight, grad_seq_bias) read the slices of the
cell's saved values they need (δx_t of the BPTT output, h_t of the forward's) in place, with the
source's stride, instead of copies made for them (slice_folds): the same numbers, read from
elsewhere.
"""

from __future__ import annotations

from ..program import Program


def _readers(program: Program) -> dict[str, list]:
    """{tensor: the ops (of every pass) that read it}."""
    readers: dict[str, list] = {}
    for o in (*program.forward, *program.evaluation, *program.backward, program.loss,
              *program.updates):  # fmt: skip
        for a in o.op.args:
            readers.setdefault(a, []).append(o.op)
    return readers


def pad_folds(program: Program) -> dict[str, dict]:
    """{a cell_bptt op's output: {"pad": the pad it no longer needs, "src": what the pad
    spreads, "width": src's numbers a step, "at": {statement: its offset in src's step}}} for
    each pad read only by a cell_bptt, along the value axis, in whole blocks of units."""
    readers = _readers(program)
    folds = {}
    for o in program.backward:
        op = o.op
        users = readers.get(op.out, [])
        if op.kind != "pad" or len(users) != 1 or users[0].kind != "cell_bptt":
            continue
        cell = users[0]
        units, stmts = cell.attr("units"), cell.attr("stmts")
        start, stop = op.attr("start"), op.attr("stop")
        shape = program.shapes[op.out]
        if (cell.args[2] != op.out or len(shape) != 2 or op.attr("axis", 1) != 1
                or start % units or stop % units or shape[1] != len(stmts) * units):  # fmt: skip
            continue
        at = {s: k * units - start for k, s in enumerate(stmts) if start <= k * units < stop}
        folds[cell.out] = {"pad": op.out, "src": op.args[0], "width": stop - start, "at": at}
    return folds


def slice_folds(program: Program) -> dict[str, dict]:
    """{a slice's output: {"src": what it slices, "at": its offset in a step of src, "stride":
    src's numbers a step}} for each slice of a [T, K] tensor along its last axis that only the
    sums over time (grad_seq_weight, grad_seq_bias) read."""
    readers = _readers(program)
    folds = {}
    for o in (*program.forward, *program.backward):
        op = o.op
        users = readers.get(op.out, [])
        shape = program.shapes.get(op.args[0]) if op.args else None
        sums = all(u.kind in ("grad_seq_weight", "grad_seq_bias") for u in users)
        if op.kind != "slice" or not users or not sums or shape is None or len(shape) != 2:
            continue
        if op.attr("axis", 1) != 1:
            continue
        folds[op.out] = {"src": op.args[0], "at": op.attr("start"), "stride": shape[1]}
    return folds


__all__ = ["pad_folds", "slice_folds"]
