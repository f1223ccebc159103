"""Consecutive elementwise row ops of the C chunk functions in one pass over the rows.

A dense layer with batch norm and dropout is, op by op, a chain of short passes over the batch:
the activation, μ, x − μ, σ², x̂, γx̂ + β, the mask, its product; and backward the mask's
product, the four batch sums, the closed form and the activation's derivative. Each pass loads
what the previous one stored. Here the ops that run over the same rows of the same width — maps
over one row per sample, dropout masks, and sums over the batch's rows — share one row loop, in
their order, until an op reads a batch sum of the same group (which needs every row first): the
forward of such a layer is then three passes (the activation with μ; x − μ with σ²; x̂, γx̂ + β,
the mask and its product), its backward two. A value made in the group is read there from a
local, and stored only when something outside the group reads it (γx̂ + β, the closed form's
∂ℓ/∂u are not). The same operations on the same numbers in the same order, the sums over the
rows in the same order: the numbers are the same as op by op, bit for bit.

A softmax and the loss's log-sum-exp of the same logits share one pass too (``softmax_lse``): both
take the row maximum and sum the same exponentials in the same order, so the log-sum-exp is
``top + log(total)`` of the softmax's own total, and the exponentials are computed once.
"""

from __future__ import annotations

import re


def _width(o: dict) -> int | None:
    """The row width of an op that may share a row loop with its neighbours, else None."""
    plain = o.get("m_rows") == "m" and o.get("rows") == 1
    if o["kind"] == "map" and plain and o["size"] == o["units"] > 1:
        return o["units"]
    if o["kind"] == "mask" and plain and o["width"] == o["units"] > 1:
        return o["units"]
    if o["kind"] == "sums":
        return o["width"] if o["width"] > 1 else None
    flat = plain and not o.get("scalars") and not o.get("batch_reads")
    if o["kind"] == "reduce" and o["attrs"].get("over") == "batch" and flat:
        return o["width"] if o["width"] > 1 else None
    if o["kind"] == "grad_reduce" and o["attrs"].get("axes") != "all" and flat and not o["scale"]:
        return o["cols"] if o["cols"] > 1 else None
    return None


def reads(o: dict) -> set[str]:
    """The tensors an op context reads: an expression's own symbols, else its arguments."""
    if o["kind"] == "sums":
        return set().union(*(reads(p) for p in o["parts"]))
    if o["kind"] == "fused":
        return set(o["args"])
    if "expr" in o:
        return {*o["reads"], *o["batch_reads"], *o["scalars"]}
    return set(o["args"])


def _local(text: str, made: set[str]) -> str:
    """``v[i]`` of every value ``v`` made earlier in the group, as its local ``v_v``."""
    for v in sorted(made):
        text = re.sub(rf"\b{re.escape(v)}\[i\]", f"{v}_v", text)
    return text


def _same(q: dict, parts: list[dict]) -> str:
    """The batch sum of the same terms as the gradient sum ``q``, else ''. A group holds a batch
    sum only where the batch is one chunk, whose gradients start at 0: adding that sum once is
    then adding its terms one by one (0 + s = s), the same number."""
    if q["kind"] != "grad_reduce" or q["temps"]:
        return ""
    same = [p["out"] for p in parts if p["kind"] == "reduce" and not p["temps"]
            and p["expr"] == q["expr"]]  # fmt: skip
    return same[0] if same else ""


def softmax_lse(ops: list[dict]) -> list[dict]:
    """``ops`` with each log-sum-exp of a softmax's input (same rows and width) done by that
    softmax, which then also writes it (its context's ``lse``)."""
    out: list[dict] = []
    soft: dict[str, int] = {}  # a softmax's input: its index in out
    for o in ops:
        k = soft.get(o["args"][0]) if o["kind"] == "logsumexp" else None
        s = out[k] if k is not None else None
        if s and s["units"] == o["in_units"] and s["m_rows"] == o["m_rows"] and "lse" not in s:
            out[k] = {**s, "lse": o["out"]}
            continue
        if o["kind"] == "softmax":
            soft[o["args"][0]] = len(out)
        out.append(o)
    return out


def _parts(o: dict) -> list[dict]:
    return o["parts"] if o["kind"] == "sums" else [o]


def _fuse(group: list[dict], keep: set[str], again: list[dict]) -> dict:
    """One context of kind ``fused`` for the ops of ``group`` (their parts, in order), after the
    maps ``again`` of earlier passes made again here from what they read (not stored here)."""
    parts = [*again, *(p for o in group for p in _parts(o))]
    made: set[str] = set()
    out_parts = []
    for p in parts:
        formula = p["formula"] + (" (again, from what it reads)" if p in again else "")
        q = {"kind": p["kind"], "out": p["out"], "formula": formula, "store": False}
        if p["kind"] == "mask":
            q.update(threshold=p["threshold"], p=p["p"], layer=p["attrs"]["layer"])
        else:
            q["temps"] = [{**t, "code": _local(t["code"], made)} for t in p["temps"]]
            q["expr"] = _local(p["expr"], made)
            q["roots"] = p["roots"]
            q["batch_scale"] = p["batch_scale"]
        if p["kind"] == "grad_reduce":
            q["target"] = f"grads->{p['args'][-1]}"
        elif p["kind"] == "reduce":
            q["target"] = f"ws->{p['out']}"
        else:
            q["store"] = p["out"] in keep and p not in again
            made.add(p["out"])
        out_parts.append(q)
    for q in out_parts:  # Σ g and Σ g ⊙ x̂ are γ's and β's gradients: summed once (see _same)
        q["same"] = _same(q, out_parts)
    ext = set().union(*(reads(p) for p in parts)) - made
    batch = set().union(*(p.get("batch_reads", ()) for p in parts))
    scalars = set().union(*(p.get("scalars", ()) for p in parts))
    rowwise = bool(batch or scalars) or any(
        p["kind"] != "mask" and (p["rowwise"] or p["roots"] or p["kind"] != "map") for p in parts
    )
    return {
        "kind": "fused",
        "rowwise": rowwise,  # else one loop over the chunk's m * width numbers
        "out": parts[-1]["out"],
        "outs": [q["out"] for q in out_parts if q.get("store")],
        "args": sorted(ext),
        "width": _width(group[0]),
        "parts": out_parts,
        "reads": sorted(ext - batch - scalars),
        "batch_reads": sorted(batch),
        "scalars": sorted(scalars),
    }


def fuse_rows(ops: list[dict], keep: set[str]) -> list[dict]:
    """``ops`` with each run of two or more consecutive row ops of one width (see ``_width``)
    as one op ``fused``; ``keep``: the tensors read outside ``ops`` (their values are stored)."""
    runs: list[list[dict]] = []
    made_sums: set[str] = set()
    for o in ops:
        w = _width(o)
        parts = o["parts"] if o["kind"] == "sums" else [o]
        run = runs[-1] if runs and _width(runs[-1][0]) is not None else None
        needs = set().union(*(p.get("batch_reads", ()) for p in parts))
        if w is None or run is None or _width(run[0]) != w or needs & made_sums:
            runs.append([o])
            made_sums = set()
        else:
            run.append(o)
        made_sums |= {p["out"] for p in parts if p["kind"] == "reduce"}
    fused = [run for run in runs if len(run) > 1]
    maps = {p["out"]: p for run in fused for o in run for p in _parts(o) if p["kind"] == "map"}
    alone = set().union(*(reads(run[0]) for run in runs if len(run) == 1))
    again = {v for v, p in maps.items() if v not in keep | alone and _cheap(p)}
    remade = [_again(run, again, maps) if len(run) > 1 else [] for run in runs]
    needs = [_needs(run, more) for run, more in zip(runs, remade, strict=True)]
    out = []
    for k, run in enumerate(runs):
        if len(run) < 2:
            out += run
            continue
        later = set().union(*needs[k + 1 :])  # what later passes load, their remade maps' too
        out.append(_fuse(run, keep | later, remade[k]))
    return out


def _needs(run: list[dict], remade: list[dict]) -> set[str]:
    """What a run of ops reads from memory: what its parts and the maps it makes again read,
    less what it makes."""
    parts = [*remade, *(p for o in run for p in _parts(o))]
    return set().union(*(reads(p) for p in parts)) - {p["out"] for p in parts}


def _cheap(p: dict) -> bool:
    """A map whose value a later pass makes again rather than load: no call, no division
    (relu, x − μ, a product by the mask)."""
    code = " ".join([p["expr"], *(t["code"] for t in p["temps"])])
    code = re.sub(r"\(\d[\d.]*F?/\d[\d.]*F?\)", "c", code)  # a constant: (5.0F/4.0F)
    return not p["roots"] and not re.search(r"[\w)]\s*\(|/", code)


def _again(run: list[dict], again: set[str], maps: dict) -> list[dict]:
    """The maps of earlier passes that ``run`` makes again (those it reads, and what they read
    of the same kind), in their order of the program."""
    made = {p["out"] for o in run for p in _parts(o)}
    want, todo = [], sorted(set().union(*(reads(p) for o in run for p in _parts(o))) & again - made)
    while todo:
        v = todo.pop()
        if v not in want:
            want.append(v)
            todo += sorted(reads(maps[v]) & again - made)
    order = list(maps)
    return [maps[v] for v in sorted(want, key=order.index)]


__all__ = ["fuse_rows", "reads"]
