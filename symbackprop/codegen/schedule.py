"""optimizer.schedule (CONTRACT §7) as code: the learning rate of epoch ``epoch`` (0 for the
first) from the base rate ``base``, in the closed forms of torch.optim.lr_scheduler (stepped once
per epoch), as a Python expression (NumPy target, ``symbackprop train``'s progress line) and a C
one. The torch target uses torch.optim.lr_scheduler itself (``torch_class``)."""

from __future__ import annotations

import math

from ..spec.training import ScheduleSpec


def python_expr(s: ScheduleSpec) -> str:
    """The rate in ``base`` and ``epoch`` (an int), Python floats only."""
    if s.type == "step":
        return f"base * {s.gamma!r} ** (epoch // {s.step_size})"
    if s.type == "multistep":
        return f"base * {s.gamma!r} ** sum(epoch >= m for m in {s.milestones!r})"
    if s.type == "exponential":
        return f"base * {s.gamma!r} ** epoch"
    if s.type == "cosine":
        return (f"{s.eta_min!r} + (base - {s.eta_min!r}) * (1 + math.cos({math.pi!r} * epoch / "
                f"{s.T_max})) / 2")  # fmt: skip
    span = s.end_factor - s.start_factor
    return f"base * ({s.start_factor!r} + {span!r} * min(epoch, {s.total_iters}) / {s.total_iters})"


def c_expr(s: ScheduleSpec) -> str:
    """The same in C99 (``base`` a double, ``epoch`` a long)."""
    if s.type == "step":
        return f"base * pow({s.gamma!r}, (double)(epoch / {s.step_size}))"
    if s.type == "multistep":
        hits = " + ".join(f"(epoch >= {m})" for m in s.milestones)
        return f"base * pow({s.gamma!r}, (double)({hits}))"
    if s.type == "exponential":
        return f"base * pow({s.gamma!r}, (double)epoch)"
    if s.type == "cosine":
        return (f"{s.eta_min!r} + (base - {s.eta_min!r}) * (1 + cos({math.pi!r} * (double)epoch"
                f" / {s.T_max})) / 2")  # fmt: skip
    span = s.end_factor - s.start_factor
    return (f"base * ({s.start_factor!r} + {span!r} * (double)(epoch < {s.total_iters} ? epoch : "
            f"{s.total_iters}) / {s.total_iters})")  # fmt: skip


def lr_at(s: ScheduleSpec, base: float, epoch: int) -> float:
    """The rate of epoch ``epoch``, as python_expr computes it."""
    if s.type == "step":
        return base * s.gamma ** (epoch // s.step_size)
    if s.type == "multistep":
        return base * s.gamma ** sum(epoch >= m for m in s.milestones)
    if s.type == "exponential":
        return base * s.gamma**epoch
    if s.type == "cosine":
        return s.eta_min + (base - s.eta_min) * (1 + math.cos(math.pi * epoch / s.T_max)) / 2
    span = s.end_factor - s.start_factor
    return base * (s.start_factor + span * min(epoch, s.total_iters) / s.total_iters)


def torch_class(s: ScheduleSpec) -> tuple[str, str]:
    """torch.optim.lr_scheduler's class and its keyword arguments (a dict literal)."""
    if s.type == "step":
        return "StepLR", f"{{'step_size': {s.step_size}, 'gamma': {s.gamma!r}}}"
    if s.type == "multistep":
        return "MultiStepLR", f"{{'milestones': {list(s.milestones)!r}, 'gamma': {s.gamma!r}}}"
    if s.type == "exponential":
        return "ExponentialLR", f"{{'gamma': {s.gamma!r}}}"
    if s.type == "cosine":
        return "CosineAnnealingLR", f"{{'T_max': {s.T_max}, 'eta_min': {s.eta_min!r}}}"
    return "LinearLR", (f"{{'start_factor': {s.start_factor!r}, 'end_factor': "
                        f"{s.end_factor!r}, 'total_iters': {s.total_iters}}}")  # fmt: skip


__all__ = ["c_expr", "lr_at", "python_expr", "torch_class"]
