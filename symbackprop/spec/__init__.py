"""Stage 1: the network spec, read and validated field by field (load, fields, parameters,
expressions, errors, user files, samples)."""

from .errors import SpecError
from .load import LossSpec, OptimizerSpec, Spec, TrainSpec, load_spec, parse_spec

__all__ = ["LossSpec", "OptimizerSpec", "Spec", "SpecError", "TrainSpec", "load_spec", "parse_spec"]
