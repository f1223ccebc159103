"""Load the sample file of ``derive --at``: {x: [...], t: [...]} or a list of such samples."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..core.layers.normalization import ONE_ROW, min_training_rows
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


def _depth(value: Any) -> int:
    """How deeply lists nest at the start of ``value`` (0 for a number)."""
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def _sample(value: Any, field: str, shape: tuple[int, ...], what: str) -> list[float]:
    """One sample of a tensor of ``shape``: nested lists of exactly that shape, or its
    numbers flattened in C order; the numbers, flattened."""
    if _depth(value) == 1 and len(shape) > 1 and isinstance(value, list):
        return _matrix(value, field, math.prod(shape), what)[0].tolist()
    if not shape:
        if not _finite(value):
            shown = _show(value) if isinstance(value, (int, HugeInt)) else repr(value)[:40]
            raise SpecError(field, f"expected a finite number, got {shown}")
        return [float(value)]
    if not isinstance(value, list) or len(value) != shape[0]:
        dims = " x ".join(map(str, shape))
        raise SpecError(field, f"expected {dims} {what} (nested lists, or {math.prod(shape)} "
                        "numbers in C order)")  # fmt: skip
    return [v for i, row in enumerate(value) for v in _sample(row, f"{field}[{i}]", shape[1:],
                                                                what)]  # fmt: skip


def _tensors(value: Any, field: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    """One sample or a list of samples of ``shape`` (see _sample), as rows [n, prod(shape)]."""
    if len(shape) == 1:
        return _matrix(value, field, shape[0], what)
    depth = _depth(value)
    one = depth == len(shape) or (depth == 1 and isinstance(value, list) and value
                                  and not isinstance(value[0], list))  # fmt: skip
    rows = [value] if one else value
    if not isinstance(rows, list) or not rows:
        raise SpecError(field, f"expected {' x '.join(map(str, shape))} {what}")
    out = [_sample(r, field if one else f"{field}[{i}]", shape, what) for i, r in enumerate(rows)]
    return np.array(out, dtype=float)


def _finite(v: Any) -> bool:
    """A number that is a finite float (not inf, NaN or an integer beyond the largest float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return abs(v) <= sys.float_info.max


def _labels(value: Any, lead: tuple[int, ...], rows: int) -> list[int] | None:
    """Integer class labels, one per row of the output (one per sample for a vector, T per
    sample for a sequence), flattened; None when ``value`` is not such labels."""
    if not lead:
        if _is_int(value) and rows == 1:
            return [value]
        if rows > 1 and isinstance(value, list) and len(value) == rows:
            return value if all(map(_is_int, value)) else None
        return None
    arr = value if rows > 1 else [value]
    if not (isinstance(arr, list) and len(arr) == rows):
        return None
    flat: list = []
    for sample in arr:
        got = _ints(sample, lead)
        if got is None:
            return None
        flat += got
    return flat


def _ints(value: Any, shape: tuple[int, ...]) -> list[int] | None:
    if not shape:
        return [value] if _is_int(value) else None
    if not isinstance(value, list) or len(value) != shape[0]:
        return None
    out: list[int] = []
    for v in value:
        got = _ints(v, shape[1:])
        if got is None:
            return None
        out += got
    return out


def _targets(value: Any, field: str, spec: Spec, rows: int) -> np.ndarray:
    """Targets [n, prod(output shape)]; for cross_entropy also integer class labels (0-based):
    one per row of x (per step of each sample, for a sequence output)."""
    shape = spec.output_shape
    k = shape[-1]
    if spec.loss.type != "cross_entropy":
        return _tensors(value, field, shape, "targets")
    labels = _labels(value, shape[:-1], rows)
    if labels is not None:
        onehot = np.zeros((len(labels), k))
        for i, lab in enumerate(labels):
            if not 0 <= lab < k:
                raise SpecError(field, f"class label {_show(lab)} out of range 0..{k - 1}")
            onehot[i, lab] = 1.0
        return onehot.reshape(rows, -1)
    t = _tensors(value, field, shape, "targets")
    per = t.shape[1] // k  # rows of the output per sample
    for r, row in enumerate(t.reshape(-1, k)):
        where = field if len(t) == 1 else f"{field}[{r // per}]"
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
    """X [n, *input shape] and T [n, *output shape] from parsed sample data."""
    x, t = _flat_samples(data, spec)
    if x.shape[0] < min_training_rows(spec.layers):  # --at is one training step: as train
        raise SpecError("", f"one sample, but {ONE_ROW}; give a batch of at least 2")
    return x.reshape(-1, *spec.input_shape), t.reshape(-1, *spec.output_shape)


def _flat_samples(data: Any, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, list):
        if not data:
            raise SpecError("", "expected at least one sample")
        xs, ts = [], []
        for i, item in enumerate(data):
            try:
                x, t = _flat_samples(item, spec)
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
    x = _tensors(data["x"], "x", spec.input_shape, "inputs")
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
