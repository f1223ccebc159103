"""Workspace sharing by liveness (``<NAME>_SHARE``): per-row tensors whose lifetimes do not overlap
share memory, as the memory planners of TVM and TFLite Micro do.

A chunk's tensors are written and read by ops in a fixed order: the forward ops (or evaluation
mode's), the loss, the backward ops and the running buffers' updates, as the C library calls them
(``backward_chunk``'s order after ``_weights_last`` and ``_fuse_sums``, with fuse.py's passes of row
ops as single ops). A tensor lives from the first op that touches it to the last one, both included:
an op never reads what another tensor writes in the same memory (no in-place hazard, and the op
macros' ``restrict`` pointers stay true). Two tensors conflict when their lifetimes overlap in any
of the call sequences; the greedy-by-size offset assignment places each tensor, largest first, at
the lowest offset where it overlaps no conflicting tensor already placed. Offsets are numbers a row,
so the shared block is ``CHUNK * units`` reals at any chunk. The output (and the logits) stay live
to the end of the forward-only sequence, where forward, predict and accuracy read them.

Per-batch tensors (batch norm's statistics) keep their own members: their size does not grow with
the chunk. The templates address every tensor as ``ws->NAME``; ``accessors`` gives the macros and
``substitute`` the source text the shared layout reads through (one place, not every op macro).
"""

from __future__ import annotations

import re

# the keys of an op's context that name the tensors it reads (args also names parameters, which
# are not in the workspace and are ignored)
_READS = ("args", "reads", "batch_reads", "scalars")


_EXPRESSION_ONLY = ("map", "loss")  # their macros read only their expression's symbols


def _touched(o: dict) -> set[str]:
    """Every name an op (or a fused run of sums) reads or writes."""
    names = {o["out"]} if o.get("out") else set()
    if o.get("lse"):  # a softmax that also writes the log-sum-exp of its input (fuse.py)
        names.add(o["lse"])
    for key in _READS[1:] if o["kind"] in _EXPRESSION_ONLY else _READS:
        names |= {a for a in o.get(key) or () if isinstance(a, str)}
    for part in o["parts"] if o["kind"] == "sums" else ():  # batch norm's fused row sums
        names |= _touched(part)
    if o["kind"] == "fused":  # a pass of row ops (fuse.py): what it reads and every value it
        names |= {p["out"] for p in o["parts"]}  # makes, stored or not (at most: never less)
    return names


def _lifetimes(sequence: list[set[str]], names: set[str]) -> dict[str, tuple[int, int]]:
    """(first, last) op index touching each of ``names`` in the sequence."""
    spans: dict[str, tuple[int, int]] = {}
    for k, touched in enumerate(sequence):
        for n in touched & names:
            first = spans.get(n, (k, k))[0]
            spans[n] = (first, k)
    return spans


def layout(ctx: dict) -> dict:
    """The shared block of a C context: {"units": reals a row, "offsets": {name: reals a row
    before it}, "arrays": the per-row arrays it holds}."""
    arrays = [a for a in ctx["arrays"] if not a["batch"]]
    names = {a["name"] for a in arrays}
    ends = {ctx["output"], ctx["logits"]} - {None}
    train = [*ctx["forward"], ctx["loss_op"], *ctx["backward"], *ctx["updates"]]
    sequences = [  # evaluation: the forward ops themselves where the modes do not differ
        [_touched(o) for o in train],
        [_touched(o) for o in (*ctx["evaluation"], ctx["loss_op"])] + [set(ends)],
    ]
    spans = [_lifetimes(s, names) for s in sequences]

    def conflict(a: str, b: str) -> bool:
        return any(a in s and b in s and s[a][0] <= s[b][1] and s[b][0] <= s[a][1] for s in spans)

    order = sorted(arrays, key=lambda a: (-a["units"], a["name"]))
    offsets: dict[str, int] = {}
    for a in order:
        taken = sorted(
            (offsets[b["name"]], offsets[b["name"]] + b["units"])
            for b in order
            if b["name"] in offsets and conflict(a["name"], b["name"])
        )
        at = 0
        for lo, hi in taken:
            if at + a["units"] <= lo:
                break
            at = max(at, hi)
        offsets[a["name"]] = at
    units = max((offsets[a["name"]] + a["units"] for a in arrays), default=0)
    return {"units": units, "offsets": offsets, "arrays": arrays}


def accessors(shared: dict) -> list[dict]:
    """Each shared tensor's macro name and its place in the shared block: the type of a pointer
    to it (to rows of units, or to reals for per-sample scalars) and its offset a row."""
    out = []
    for a in shared["arrays"]:
        kind = "real *" if a["scalar"] else f"real (*)[{a['units']}]"
        at = shared["offsets"][a["name"]]
        out.append({"name": a["name"], "macro": f"WS_{a['name']}", "shared": f"{kind}, {at}"})
    return out


def substitute(source: str, shared: dict) -> str:
    """The library source with ``ws->NAME`` of every shared tensor read through its macro (which
    is ``ws->NAME`` again without NAME_SHARE)."""
    names = sorted((a["name"] for a in shared["arrays"]), key=len, reverse=True)
    if not names:
        return source
    pattern = re.compile(r"\bws->(" + "|".join(map(re.escape, names)) + r")\b")
    return pattern.sub(lambda m: f"WS_{m.group(1)}", source)


__all__ = ["accessors", "layout", "substitute"]
