"""Stage 1, the spec's ``optimizer`` and ``train`` sections (CONTRACT §1 and §7): torch.optim's
optimizers and hyperparameters, learning-rate schedules (torch.optim.lr_scheduler), gradient
clipping (torch.nn.utils), the validation split and early stopping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import SpecError
from .fields import MAX_COUNT, _bool, _choice, _Fields, _int, _kind, _num

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("step", "multistep", "exponential", "cosine", "linear")
_OPT_FIELDS = {
    "sgd": ("lr", "momentum", "dampening", "nesterov", "weight_decay"),
    "adam": ("lr", "betas", "eps", "weight_decay"),
    "adamw": ("lr", "betas", "eps", "weight_decay"),
    "rmsprop": ("lr", "alpha", "eps", "momentum", "weight_decay"),
}
_CONTROL = ("schedule", "clip_grad_norm", "clip_grad_value")  # every optimizer's
_DEFAULT_LR = {"sgd": 1e-3, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-2}
_DEFAULT_WEIGHT_DECAY = {"adamw": 1e-2}  # torch.optim.AdamW's; 0 for the others
MAX_EPOCH = MAX_COUNT  # the largest epoch count (and batch size) train allows


@dataclass(frozen=True)
class ScheduleSpec:
    """A torch.optim.lr_scheduler schedule, stepped once per epoch; fields a type does not use
    keep torch's defaults."""

    type: str
    step_size: int = 1
    gamma: float = 0.1
    milestones: tuple[int, ...] = ()
    T_max: int = 1
    eta_min: float = 0.0
    start_factor: float = 1.0 / 3
    end_factor: float = 1.0
    total_iters: int = 5


@dataclass(frozen=True)
class OptimizerSpec:
    """torch.optim's hyperparameters; those an optimizer does not use keep their defaults."""

    type: str
    lr: float
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    alpha: float = 0.99
    schedule: ScheduleSpec | None = None
    clip_grad_norm: float | None = None  # torch.nn.utils.clip_grad_norm_'s max_norm
    clip_grad_value: float | None = None  # torch.nn.utils.clip_grad_value_'s clip_value


@dataclass(frozen=True)
class EarlyStopping:
    """Stop after ``patience`` epochs whose validation loss is not below the best by more
    than ``min_delta``; keep the best epoch's weights."""

    patience: int
    min_delta: float = 0.0


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 10
    batch_size: int = 32
    shuffle: bool = True
    validation: float = 0.0  # fraction of the rows held out (0: none)
    early_stopping: EarlyStopping | None = None


def optimizer(data: Any) -> OptimizerSpec:
    """The ``optimizer`` section."""
    if isinstance(data, str):
        data = {"type": data}
    f = _Fields(data, "optimizer", "an optimizer name or a mapping")
    kind = _choice(f.get("type", required=True), f.at("type"), OPTIMIZERS, "optimizer")
    for key in ("lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "alpha"):
        if f.has(key) and key not in _OPT_FIELDS[kind]:
            raise SpecError(
                f.at(key), f"not an option of {kind}; its options: {', '.join(_OPT_FIELDS[kind])}"
            )
    lr = _num(f.get("lr", _DEFAULT_LR[kind]), f.at("lr"), 0.0, low_open=True)
    momentum = _num(f.get("momentum", 0.0), f.at("momentum"), 0.0)
    dampening = _num(f.get("dampening", 0.0), f.at("dampening"), 0.0, 1.0)
    nesterov = _bool(f.get("nesterov", False), f.at("nesterov"))
    if nesterov and (momentum <= 0 or dampening != 0):
        raise SpecError(f.at("nesterov"), "nesterov needs momentum > 0 and dampening 0")
    decay = _DEFAULT_WEIGHT_DECAY.get(kind, 0.0)
    weight_decay = _num(f.get("weight_decay", decay), f.at("weight_decay"), 0.0)
    betas = f.get("betas", [0.9, 0.999])
    if not isinstance(betas, list) or len(betas) != 2:
        raise SpecError(f.at("betas"), f"expected a list of two numbers, got {_kind(betas)}")
    b = tuple(
        _num(v, f"{f.at('betas')}[{i}]", 0.0, 1.0, high_open=True) for i, v in enumerate(betas)
    )
    eps = _num(f.get("eps", 1e-8), f.at("eps"), 0.0)
    alpha = _num(f.get("alpha", 0.99), f.at("alpha"), 0.0, 1.0)
    schedule = _schedule(f.get("schedule"), f.at("schedule")) if f.has("schedule") else None
    clip_norm = clip_value = None
    if f.has("clip_grad_norm"):
        clip_norm = _num(f.get("clip_grad_norm"), f.at("clip_grad_norm"), 0.0, low_open=True)
    if f.has("clip_grad_value"):
        if clip_norm is not None:
            why = "not both (which would come first is a choice torch leaves to you)"
            raise SpecError(f.at("clip_grad_value"), f"give clip_grad_norm or this, {why}")
        clip_value = _num(f.get("clip_grad_value"), f.at("clip_grad_value"), 0.0, low_open=True)
    f.done(("type",) + _OPT_FIELDS[kind] + _CONTROL)
    return OptimizerSpec(kind, lr, momentum, dampening, nesterov, weight_decay, b, eps, alpha,
                         schedule, clip_norm, clip_value)  # fmt: skip


def _schedule(data: Any, path: str) -> ScheduleSpec:
    """``optimizer.schedule``: torch.optim.lr_scheduler's StepLR, MultiStepLR, ExponentialLR,
    CosineAnnealingLR or LinearLR, with torch's defaults and argument rules."""
    f = _Fields(data, path, "a mapping (e.g. {type: step, step_size: 10})")
    kind = _choice(f.get("type", required=True), f.at("type"), SCHEDULES, "schedule")
    s = ScheduleSpec(kind)
    if kind == "step":
        step_size = _int(f.get("step_size", required=True), f.at("step_size"), 1, MAX_EPOCH)
        gamma = _num(f.get("gamma", 0.1), f.at("gamma"), 0.0, low_open=True)
        s = ScheduleSpec(kind, step_size=step_size, gamma=gamma)
        fields: tuple[str, ...] = ("step_size", "gamma")
    elif kind == "multistep":
        raw = f.get("milestones", required=True)
        if not isinstance(raw, list) or not raw:
            raise SpecError(f.at("milestones"), f"expected a list of epochs, got {_kind(raw)}")
        milestones = tuple(
            _int(v, f"{f.at('milestones')}[{i}]", 1, MAX_EPOCH) for i, v in enumerate(raw)
        )
        gamma = _num(f.get("gamma", 0.1), f.at("gamma"), 0.0, low_open=True)
        s = ScheduleSpec(kind, gamma=gamma, milestones=milestones)
        fields = ("milestones", "gamma")
    elif kind == "exponential":
        gamma = _num(f.get("gamma", required=True), f.at("gamma"), 0.0, low_open=True)
        s = ScheduleSpec(kind, gamma=gamma)
        fields = ("gamma",)
    elif kind == "cosine":
        t_max = _int(f.get("T_max", required=True), f.at("T_max"), 1, MAX_EPOCH)
        eta_min = _num(f.get("eta_min", 0.0), f.at("eta_min"), 0.0)
        s = ScheduleSpec(kind, T_max=t_max, eta_min=eta_min)
        fields = ("T_max", "eta_min")
    else:  # linear, torch.optim.lr_scheduler.LinearLR's rules
        start = _num(f.get("start_factor", 1.0 / 3), f.at("start_factor"), 0.0, 1.0,
                     low_open=True)  # fmt: skip
        end = _num(f.get("end_factor", 1.0), f.at("end_factor"), 0.0, 1.0)
        total = _int(f.get("total_iters", 5), f.at("total_iters"), 1, MAX_EPOCH)
        s = ScheduleSpec(kind, start_factor=start, end_factor=end, total_iters=total)
        fields = ("start_factor", "end_factor", "total_iters")
    f.done(("type",) + fields)
    return s


def train(data: Any) -> TrainSpec:
    """The ``train`` section: defaults of the generated training programs."""
    f = _Fields(data, "train")
    epochs = _int(f.get("epochs", 10), f.at("epochs"), 1, MAX_EPOCH)
    batch = _int(f.get("batch_size", 32), f.at("batch_size"), 1, MAX_EPOCH)
    shuffle = _bool(f.get("shuffle", True), f.at("shuffle"))
    validation = 0.0
    if f.has("validation"):
        validation = _num(f.get("validation"), f.at("validation"), 0.0, 1.0, low_open=True,
                          high_open=True)  # fmt: skip
    stopping = None
    if f.has("early_stopping"):
        if not validation:
            raise SpecError(f.at("early_stopping"), "needs train.validation (the fraction of "
                            "the rows whose loss it watches), e.g. validation: 0.2")  # fmt: skip
        e = _Fields(f.get("early_stopping"), f.at("early_stopping"),
                    "a mapping (e.g. {patience: 5, min_delta: 0.001})")  # fmt: skip
        patience = _int(e.get("patience", required=True), e.at("patience"), 1, MAX_EPOCH)
        min_delta = _num(e.get("min_delta", 0.0), e.at("min_delta"), 0.0)
        e.done(("patience", "min_delta"))
        stopping = EarlyStopping(patience, min_delta)
    f.done(("epochs", "batch_size", "shuffle", "validation", "early_stopping"))
    return TrainSpec(epochs, batch, shuffle, validation, stopping)


__all__ = ["OPTIMIZERS", "SCHEDULES", "EarlyStopping", "OptimizerSpec", "ScheduleSpec",
           "TrainSpec", "optimizer", "train"]  # fmt: skip
