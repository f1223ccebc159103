"""The C target's inference export: ``<name>_infer.c/.h``, one forward pass for one sample.

For a deployed device: no heap, no stdio, no training code, evaluation mode (batch norm's
running statistics, dropout the identity, as the modules' ``forward``); the weights (trained
ones from a weight file, or the spec's initial ones) are ``static const`` data, so they live in
flash. The forward ops are the library's own macros (templates/c/ops.c.j2, run for a chunk of
one row), so every layer kind of the C target is in the export as soon as it has its macro;
only the ops the output depends on are kept (not the loss's log-sum-exp).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ...core.derivation import Derivation
from ...spec.errors import SpecError
from ..program import Program, lower
from . import sbp_math
from .backend import build_id, context
from .conv_layout import scratch as conv_scratch

TEMPLATES = {"{name}_infer.c": "c/infer.c.j2", "{name}_infer.h": "c/infer.h.j2"}
_BUILD = "BUILD-ID-OF-THE-SET"


def _needed(forward: list[dict], output: str) -> list[dict]:
    """The forward ops ``output`` depends on, in their order."""
    wanted, kept = {output}, []
    for o in reversed(forward):
        if o["out"] in wanted or wanted & set(o.get("outs", ())):  # outs: a fused pass's
            kept.append(o)
            wanted.update(o["args"])
    return kept[::-1]


def _literal(value: float, dtype: str) -> str:
    """One number as an exact C literal: 17 significant digits for double, 9 and F for float."""
    v = float(value)
    if not np.isfinite(v):
        raise SpecError("--weights", f"the weights must be finite numbers, got {v}")
    text = f"{v:.9g}" if dtype == "float32" else repr(v)
    if "." not in text and "e" not in text:
        text += ".0"
    return text + ("F" if dtype == "float32" else "")


def _initializer(array: np.ndarray, dtype: str) -> str:
    """A brace initializer of a (1-D or 2-D) array; a scalar parameter is one element."""
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim == 1:
        return "{" + ", ".join(_literal(v, dtype) for v in a) + "}"
    return "{\n        " + ",\n        ".join(_initializer(row, dtype) for row in a) + "}"


def files(program: Program, weights: dict[str, np.ndarray], trained: bool = False) -> dict:
    """``<name>_infer.c`` and ``<name>_infer.h`` with ``weights`` ({param name: array}) built in
    (``trained``: they are from a weight file, which the comment above them says)."""
    from ..templating import render

    ctx = context(program)
    # a prediction is evaluation mode: batch norm's running statistics, no dropout (the
    # forward ops themselves where the modes do not differ)
    forward = [{**o, "lse": ""} if o.get("lse") else o  # no loss: a softmax only
               for o in _needed(ctx["evaluation"], ctx["output"])]  # fmt: skip
    made = {o["out"] for o in forward} | {v for o in forward for v in o.get("outs", ())}
    arrays = [a for a in ctx["arrays"] if a["name"] in made]
    values = [{"name": p["name"], "init": _initializer(weights[p["name"]], ctx["dtype"])}
              for p in ctx["params"]]  # fmt: skip
    infer = {**ctx, "forward": forward, "arrays": arrays, "values": values, "trained": trained,
             "sbp": sbp_math.used(forward, ctx["f"]),
             "conv_scratch": conv_scratch(forward)}  # fmt: skip
    texts = {
        out.format(name=ctx["name"]): render(tpl, **infer, build=_BUILD)
        for out, tpl in TEMPLATES.items()
    }
    return {name: text.replace(_BUILD, build_id(texts)) for name, text in texts.items()}


def weights_of(d: Derivation, path: str | None) -> dict[str, np.ndarray]:
    """The weights in the file ``path`` (the NumPy target's weight format, read by the NumPy
    module's own reader), or the spec's initial weights when ``path`` is None."""
    from ..numpy import numpy_module

    with tempfile.TemporaryDirectory(prefix="symbackprop-") as tmp:
        module = numpy_module(d, Path(tmp))
        if path is None:
            return module.init_params()
        try:
            return module.load(path)
        except (OSError, ValueError) as exc:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = text.removeprefix(f"{path}: ")
            raise SpecError("", reason, path) from None


def inference_files(d: Derivation, weights: str | None = None) -> dict[str, str]:
    """The inference export of ``d``, with the weights of the file ``weights`` (else initial)."""
    return files(lower(d), weights_of(d, weights), weights is not None)


__all__ = ["TEMPLATES", "files", "inference_files", "weights_of"]
