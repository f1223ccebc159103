"""Training and evaluation mode: the forward program is the training-mode one (batch statistics,
dropout masks); the evaluation-mode program and the buffer updates of a training step are
derived from it by the op kinds' ``eval`` and ``updates`` rules, so no layer kind and no
target special-cases a mode.

An op kind's ``eval`` gives its evaluation-mode ops and what its output's symbol becomes in
every later op: a batch statistic becomes its running buffer, a dropout mask its mean 1 − p
(which makes inverted dropout the identity). Maps that a substitution turns into a copy of one
tensor are dropped and their output renamed, unless a reader outside the program needs the
name (the output); a net without such kinds keeps its forward program as it is.
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from .ir import Op, vec
from .ops import kind


def _substitute(op: Op, subs: dict[str, sp.Expr]) -> Op:
    """``op`` with the substituted tensors replaced in its expression and its arguments (a
    tensor replaced by another tensor's symbol is renamed; one replaced by a number is
    dropped from the arguments of an elementwise op, and is an error in any other op)."""
    reads = set(op.args) | (
        {s.name for s in op.expr.free_symbols} if op.expr is not None else set()
    )
    if not reads & subs.keys():
        return op
    renames = {n: e.name for n, e in subs.items() if isinstance(e, sp.Symbol)}
    args = []
    for a in op.args:
        if a in renames:
            args.append(renames[a])
        elif a in subs:
            if op.expr is None:
                raise ValueError(f"{op.out}: {a} is a number in evaluation mode")
        else:
            args.append(a)
    if op.expr is None:
        return dataclasses.replace(op, args=tuple(args))
    symbols = {vec(n): e for n, e in subs.items()}
    return dataclasses.replace(op, args=tuple(dict.fromkeys(args)),
                               expr=op.expr.xreplace(symbols), partials=())  # fmt: skip


def evaluation(forward: tuple[Op, ...], keep: set[str]) -> tuple[Op, ...]:
    """The evaluation-mode forward program of a training-mode ``forward`` (the loss op
    included, if there): the same ops where no kind differs."""
    subs: dict[str, sp.Expr] = {}
    out: list[Op] = []
    for original in forward:
        op = _substitute(original, subs) if subs else original
        rule = kind(op).eval
        if rule is not None:
            ops, more = rule(op)
            out += ops
            subs.update(more)
        elif (op is not original and op.kind == "map" and isinstance(op.expr, sp.Symbol)
              and op.out not in keep and op.expr.name in op.args):  # fmt: skip
            subs[op.out] = op.expr  # a copy now (u ⊙ m/(1 − p) with m = 1 − p): read u
        else:
            out.append(op)
    return tuple(out)


def updates(forward: tuple[Op, ...]) -> tuple[Op, ...]:
    """The ops a training step runs after its forward pass: the running buffers' updates."""
    return tuple(u for op in forward if kind(op).updates is not None for u in kind(op).updates(op))


__all__ = ["evaluation", "updates"]
