"""What the spec may ask that a target does not implement yet: a SpecError naming the field,
raised by the target's ``check_size`` before any lowering, so no target silently ignores a
layer kind or a training control (issue 16 lands them target by target)."""

from __future__ import annotations

from ..core.derivation import Derivation
from ..spec.errors import SpecError

# CONTRACT §7 controls a target may not apply yet (the spec and `derive` have them all)
_CONTROLS = (("optimizer", "schedule"), ("optimizer", "clip_grad_norm"),
             ("optimizer", "clip_grad_value"), ("train", "validation"),
             ("train", "early_stopping"))  # fmt: skip
_UNSET = {"schedule": None, "clip_grad_norm": None, "clip_grad_value": None,
          "validation": 0.0, "early_stopping": None}  # fmt: skip


def refuse_unimplemented(d: Derivation, target: str, layer_types: tuple[str, ...] = (),
                         done: tuple[str, ...] = ()) -> None:  # fmt: skip
    """A SpecError for the first layer of ``layer_types`` or training control of ``d`` (but
    those in ``done``) that ``target`` cannot generate yet."""
    for node in d.nodes:
        if node.type in layer_types:
            raise SpecError(f"layers[{node.index - 1}].type", f"{node.type} is not in the "
                            f"{target} target yet; use --target numpy")  # fmt: skip
    for section, field in _CONTROLS:
        if field in done:
            continue
        value = getattr(getattr(d.spec, section), field)
        if value != _UNSET[field]:
            raise SpecError(f"{section}.{field}", f"not in the generated {target} code yet "
                            "(derive documents it); leave it out to generate")  # fmt: skip


CLIPPING = ("clip_grad_norm", "clip_grad_value")  # in the update rule (core/optimizers.py)

__all__ = ["CLIPPING", "refuse_unimplemented"]
