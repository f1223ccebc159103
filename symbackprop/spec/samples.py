"""Load the sample file of ``derive --at``: {x: [...], t: [...]} or a list of such samples."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SpecError
from .fields import _show
from .files import HugeInt, read_data_file
from .load import Spec


def _matrix(value: Any, field: str, width: int, what: str) -> np.ndarray:
    rows = value if isinstance(value, list) and value and isinstance(value[0], list) else [value]
    out = []
    for r, row in enumerate(rows):
        where = field if len(rows) == 1 else f"{field}[{r}]"
        if not isinstance(row, list) or len(row) != width:
            raise SpecError(where, f"expected a list of {width} {what}")
        for c, v in enumerate(row):
            if not _finite(v):
                shown = _show(v) if isinstance(v, (int, HugeInt)) else repr(v)[:40]
                raise SpecError(f"{where}[{c}]", f"expected a finite number, got {shown}")
        out.append([float(v) for v in row])
    return np.array(out, dtype=float)


def _finite(v: Any) -> bool:
    """A number that is a finite float (not inf, NaN or an integer beyond the largest float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return abs(v) <= sys.float_info.max


def _targets(value: Any, field: str, spec: Spec, rows: int) -> np.ndarray:
    """Targets; for cross_entropy also integer class labels (0-based): one per row of x."""
    k = spec.outputs
    if spec.loss.type != "cross_entropy":
        return _matrix(value, field, k, "targets")
    labels = None
    if _is_int(value) and rows == 1:
        labels = [value]
    elif rows > 1 and isinstance(value, list) and len(value) == rows and all(map(_is_int, value)):
        labels = value
    if labels is not None:
        onehot = np.zeros((len(labels), k))
        for i, lab in enumerate(labels):
            if not 0 <= lab < k:
                raise SpecError(field, f"class label {_show(lab)} out of range 0..{k - 1}")
            onehot[i, lab] = 1.0
        return onehot
    t = _matrix(value, field, k, "targets")
    for r, row in enumerate(t):
        where = field if len(t) == 1 else f"{field}[{r}]"
        if (row < 0).any() or abs(row.sum() - 1) > 1e-9:
            raise SpecError(
                where,
                "cross_entropy targets are class probabilities: non-negative, summing to 1 "
                "(or give a class label)",
            )
    return t


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_samples(data: Any, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """X [n, inputs] and T [n, outputs] from parsed sample data."""
    if isinstance(data, list):
        if not data:
            raise SpecError("", "expected at least one sample")
        xs, ts = [], []
        for i, item in enumerate(data):
            try:
                x, t = parse_samples(item, spec)
            except SpecError as exc:
                raise exc.prefixed(f"[{i}]") from None
            xs.append(x)
            ts.append(t)
        return np.vstack(xs), np.vstack(ts)
    if not isinstance(data, dict):
        raise SpecError("", "expected {x: [...], t: [...]} or a list of them")
    for key in data:
        if key not in ("x", "t"):
            raise SpecError(str(key), "unknown field; a sample has x and t")
    for key in ("x", "t"):
        if key not in data:
            raise SpecError(key, "required field is missing")
    if spec.dims:  # a sequence: x is [T, F], one row per step
        steps, feats = spec.dims
        x = _matrix(data["x"], "x", feats, "features per step")
        if x.shape[0] != steps:
            raise SpecError("x", f"expected {steps} steps of {feats} features, got {x.shape[0]}")
        x = x.reshape(1, -1)
    else:
        x = _matrix(data["x"], "x", spec.inputs, "inputs")
    t = _targets(data["t"], "t", spec, x.shape[0])
    if x.shape[0] != t.shape[0]:
        raise SpecError("t", f"{x.shape[0]} inputs but {t.shape[0]} targets")
    return x, t


def load_samples(path: str | Path, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate a sample file against ``spec``."""
    data = read_data_file(path)
    try:
        return parse_samples(data, spec)
    except SpecError as exc:
        raise exc.with_file(str(path)) from None
