"""``symbackprop check``: generated gradients against central finite differences (and targets
against each other), as a table; a pure function returning rows plus a verdict."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.chain_rule import derive
from ..core.derivation import Derivation
from ..spec.errors import SpecError
from ..spec.load import Spec

TOLERANCE = 1e-6  # relative, for float64 central differences along random directions


@dataclass(frozen=True)
class Row:
    param: str
    check: str
    expected: float
    got: float
    rel_error: float

    @property
    def ok(self) -> bool:
        return self.rel_error <= TOLERANCE


def batch(spec: Spec, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A random batch with targets of the loss's kind (probabilities for cross-entropy)."""
    rng = np.random.default_rng(spec.seed)
    x = rng.normal(size=(n, spec.inputs))
    k = spec.outputs
    if spec.loss.type == "cross_entropy":
        t = rng.dirichlet(np.ones(k), size=n)
    elif spec.loss.type == "binary_cross_entropy":
        t = rng.random((n, k))
    else:
        t = rng.normal(size=(n, k))
    return x, t


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-8)


def gradient_rows(module, params: dict, x, t, seed: int, label: str) -> list[Row]:
    """Directional derivatives <grad, v> against (L(p + hv) - L(p - hv)) / 2h, 3 directions."""
    rng = np.random.default_rng(seed + 1)
    _, grads = module.loss_and_grad(params, x, t)
    rows = []
    for name in module.TRAINABLE:
        worst = None
        for _ in range(3):
            v = rng.normal(size=np.shape(params[name]))
            v /= max(np.linalg.norm(v), 1e-300)
            h = 1e-5
            plus = {**params, name: params[name] + h * v}
            minus = {**params, name: params[name] - h * v}
            numeric = (module.loss(plus, x, t) - module.loss(minus, x, t)) / (2 * h)
            analytic = float(np.sum(grads[name] * v))
            row = Row(name, f"{label} vs finite differences", numeric, analytic,
                      _rel(numeric, analytic))  # fmt: skip
            worst = row if worst is None or row.rel_error > worst.rel_error else worst
        rows.append(worst)
    return rows


def _worst(label: str, name: str, expected, got) -> Row:
    """The element of ``got`` farthest (relatively) from ``expected``, as one row."""
    e = np.ravel(np.asarray(expected, dtype=np.float64))
    g = np.ravel(np.asarray(got, dtype=np.float64))
    rel = np.abs(e - g) / np.maximum(np.maximum(np.abs(e), np.abs(g)), 1e-8)
    i = int(np.argmax(rel)) if rel.size else 0
    return Row(name, label, float(e[i]), float(g[i]), float(rel[i])) if rel.size else None


def target_rows(reference, other, params: dict, x, t, label: str, steps: int = 3) -> list[Row]:
    """``other`` against ``reference``: initial weights, loss, gradients, and every parameter
    after ``steps`` optimizer steps (the worst element of each)."""
    rows = [_worst(f"{label} initial weights", n, v, other.init_params()[n])
            for n, v in reference.init_params().items()]  # fmt: skip
    e_ref, g_ref = reference.loss_and_grad(params, x, t)
    e_other, g_other = other.loss_and_grad(params, x, t)
    rows.append(_worst(f"{label} loss", "E", e_ref, e_other))
    rows += [_worst(f"{label} gradient", n, g_ref[n], g_other[n]) for n in reference.TRAINABLE]
    p_ref = {k: np.array(v) for k, v in params.items()}
    p_other = {k: np.array(v) for k, v in params.items()}
    s_ref, s_other = reference.init_state(p_ref), other.init_state(p_other)
    for _ in range(steps):
        reference.step(p_ref, s_ref, x, t)
        other.step(p_other, s_other, x, t)
    rows += [_worst(f"{label} after {steps} steps", n, p_ref[n], p_other[n]) for n in p_ref]
    return [r for r in rows if r is not None]


def skipped(d: Derivation) -> dict[str, str]:
    """{target: why} for the targets ``check`` leaves out: the net is too large for them, or
    an optional package they need is not installed."""
    from . import TARGETS

    out = {}
    for name, target in TARGETS.items():
        if not target.available():
            needs = ", ".join(target.needs)
            out[name] = f"{needs} is not installed (pip install {' '.join(target.needs)})"
            continue
        try:
            target.check_size(d)
        except SpecError as exc:
            out[name] = exc.reason
    return out


def check(spec: Spec) -> list[Row]:
    """Generate every target the net is not too large for (in float64) into a temporary
    folder, build and load it, and check each against finite differences and every other
    target against NumPy (see skipped for the targets left out)."""
    from . import TARGETS

    d: Derivation = derive(dataclasses.replace(spec, dtype="float64"))
    names = [name for name in TARGETS if name not in skipped(d)]
    with tempfile.TemporaryDirectory(prefix="symbackprop-check-") as tmp:
        # loaded (imported, or built into the cache): tmp may go
        modules = {name: TARGETS[name].module(d, Path(tmp) / name) for name in names}
    reference = modules["numpy"]
    rng = np.random.default_rng(spec.seed)
    params = {k: v + 0.1 * rng.normal(size=np.shape(v))
              for k, v in reference.init_params().items()}  # fmt: skip
    x, t = batch(spec)
    rows = []
    for name, module in modules.items():
        rows += gradient_rows(module, params, x, t, spec.seed, name)
    for name, module in modules.items():
        if module is not reference:
            rows += target_rows(reference, module, params, x, t, f"{name} vs numpy")
    return rows


def table(rows: list[Row]) -> str:
    head = f"{'param':<8} {'check':<30} {'expected':>14} {'got':>14} {'rel error':>10}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.param:<8} {r.check:<30} {r.expected:>14.6e} {r.got:>14.6e} "
                     f"{r.rel_error:>10.2e}  {'yes' if r.ok else 'NO'}")  # fmt: skip
    return "\n".join(lines)
