"""Naming a mistake in a hand BPTT formula of an rnn layer's weight (issue 13/15, item 3).

The mistakes people make in backpropagation through time, each written as the correct printout
(``verify.timeform``) with one line changed: a forgotten time step's term, the recurrent path
missing (δ_t without Uᵀ δ_{t+1}), the activation derivative missing from δ_t, U where Uᵀ belongs,
and the wrong time shift (h_t where h_{t−1} belongs). A hand formula whose values equal one of
these at every probe point is named by it; the probe decides, as for every other explanation.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sympy as sp

from ..core.ir import Param, element_name
from ..core.scalar import sym
from .probe import ScalarNet, lift, same


def _layer(net: ScalarNet, p: Param):
    """The rnn or gru/lstm op whose parameter p is, and an rnn's BPTT op (else None)."""
    for o in net.d.forward:
        if o.kind in ("rnn", "cell") and p.name in o.args[:4]:
            delta = o.attr("delta")
            found = [b for b in net.d.backward if b.kind == "rnn_bptt" and b.out == delta]
            return o, (found[0] if found else None)
    return None


def candidates(net: ScalarNet, p: Param, correct: str) -> list[tuple[str, str]]:
    """(wrong formula, what is wrong) for each BPTT mistake, as the correct printout with one
    line changed."""
    found = _layer(net, p)
    if found is None:
        return []
    layer, bptt = found
    w, u, inp = layer.args[0], layer.args[1], layer.args[4]
    lines = correct.splitlines()
    first = lines[0].split(" = ", 1)[1]
    out: list[tuple[str, str]] = []

    def with_line(i: int, text: str) -> str:
        return "\n".join([*lines[:i], text, *lines[i + 1 :]])

    prev = re.search(r"@ (\w+)\[t-1\]\.T", first)
    if p.name == u and prev:
        h, d = prev.group(1), first.split("(", 1)[1].split("[", 1)[0]
        out.append((with_line(0, first.replace(f"{h}[t-1]", f"{h}[t]")),
                    f"the wrong time shift: {u} multiplies the previous state, so the term of "
                    f"step t is {d}[t] @ {h}[t-1].T, not {d}[t] @ {h}[t].T"))  # fmt: skip
    if p.name == w and f"{inp}[t]" in first:
        out.append((with_line(0, first.replace(f"{inp}[t]", f"{inp}[t-1]")),
                    f"the wrong time shift: {p.name} multiplies the input of the same step, "
                    f"{inp}[t], not {inp}[t-1]"))  # fmt: skip
    if bptt is not None:
        out += _delta_mistakes(layer, bptt, lines, with_line)
    term = re.search(r"sum_t\((.*)\)$", first)
    for k in range(1, (net.steps or 0) + 1) if term else ():
        at_k = re.sub(r"\[t([+-]\d+)?\]", lambda m, k=k: f"[{k + int(m.group(1) or 0)}]",
                      term.group(1))  # fmt: skip
        out.append((with_line(0, f"{first} - {at_k}"), f"missing time step {k}: the term {at_k}"))
    return out


def _delta_mistakes(rnn, bptt, lines: list[str], with_line) -> list[tuple[str, str]]:
    """An rnn's δ_t without its recurrent path, without f', or with U for Uᵀ."""
    u, _, g = bptt.args
    d = bptt.out
    rec = next((i for i, ln in enumerate(lines) if ln.startswith(f"{d}[t] = ")), None)
    m = rec is not None and re.fullmatch(
        rf"\(({g}\[t\]) \+ ({u}\.T @ {d}\[t\+1\])\) \* \((.*)\)", lines[rec].split(" = ", 1)[1]
    )
    if not m:
        return []
    df = m.group(3)
    return [
        (with_line(rec, f"{d}[t] = {g}[t] * ({df})"),
         f"the recurrent path is missing: {d}[t] also receives {u}.T @ {d}[t+1] from step "
         f"t+1 (backpropagation through time), not only {g}[t]"),
        (with_line(rec, f"{d}[t] = {g}[t] + {u}.T @ {d}[t+1]"),
         f"missing the activation derivative {rnn.attr('act')}'(z) = {df} in {d}[t]"),
        (with_line(rec, f"{d}[t] = ({g}[t] + {u} @ {d}[t+1]) * ({df})"),
         f"{u} is used where its transpose {u}.T belongs (in {d}[t])"),
    ]  # fmt: skip


def recurrent_mistake(
    net: ScalarNet, p: Param, correct: str, hand_values: list, read: Callable[[str], list]
) -> str | None:
    """What is wrong with a hand formula of p (values ``hand_values``, one list per element),
    when it equals one of the BPTT mistakes at every probe point; else None."""
    for wrong, why in candidates(net, p, correct):
        try:
            values = [net.values(e) for e in read(wrong)]
        except Exception:  # noqa: BLE001 - a candidate the reader cannot take is no match
            continue
        if len(values) == len(hand_values) and all(
            same(h, v) for h, v in zip(hand_values, values, strict=True)
        ):
            return why
    return None


def gate_mistake(net: ScalarNet, hand_values: list, truth_values: list) -> str | None:
    """A gru/lstm element's formula that lacks one gate's derivative (σ' = s(1 − s) or
    tanh' = 1 − s² of a saved value s at one step and unit): yours times it is the truth."""
    for o in net.d.forward:
        if o.kind != "cell":
            continue
        units, steps = o.attr("units"), net.steps or 0
        for ki, (stmt, e) in enumerate(zip(o.attr("stmts"), o.attr("fwd"), strict=False)):
            if isinstance(e, sp.tanh):
                form, name = "1 - {0}**2", "tanh'"
            elif e.is_Pow and e.exp == -1 and e.has(sp.exp):
                form, name = "{0}*(1 - {0})", "σ'"
            else:
                continue
            for t in range(1, steps + 1):
                for j in range(units):
                    s_ = sym(element_name(o.out, (t - 1, ki * units + j), sequence=True))
                    f = s_ * (1 - s_) if "(1 -" in form else 1 - s_**2
                    fv = net.values(f)
                    if same(lift(lambda h, v: h * v, hand_values, fv), truth_values):
                        return (f"missing the derivative of {stmt} ({name}) at step {t}, unit "
                                f"{j + 1}: {form.format(s_.name)}")  # fmt: skip
    return None


__all__ = ["candidates", "gate_mistake", "recurrent_mistake"]
