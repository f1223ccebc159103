"""Evaluate a Derivation numerically: the worked example behind ``derive --at``.

This interprets the Derivation's programs with NumPy, so the numbers shown are the numbers of the
derived formulas themselves (rows of every array are samples, as in the generated code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import optimizers, prng
from .derivation import Derivation
from .ir import N, Op, Param
from .ops import elementwise, kind
from .optimizers import NORM_EPS


def initial_params(d: Derivation) -> dict[str, np.ndarray]:
    """The spec's initial parameters, drawn by the portable PRNG (see prng) in spec order."""
    out = {}
    for k, p in enumerate(d.params):
        i = p.init
        out[p.name] = prng.init_tensor(
            i.scheme,
            p.shape,
            seed=d.spec.seed,
            k=k,
            fan_in=p.fan_in,
            fan_out=p.fan_out,
            low=i.low,
            high=i.high,
            std=i.std,
            gain=i.gain,
            value=i.value,
            dtype=d.spec.dtype,
        )
    return out


@dataclass(frozen=True)
class Evaluation:
    """Numbers for one batch at the initial parameters (arrays have samples as rows)."""

    loss: float
    values: dict[str, np.ndarray]  # x, t, z1, a1, ..., delta1, ..., da1, ...
    gradients: dict[str, np.ndarray]  # by parameter name, in the parameter's shape
    params: dict[str, np.ndarray]
    updated: dict[str, np.ndarray]

    @property
    def batch(self) -> int:
        return self.values["x"].shape[0]


def run_program(d: Derivation, ops: tuple[Op, ...], env: dict, params: dict) -> None:
    """Execute ``ops`` in place on ``env`` (name -> array with samples as rows; per-batch
    tensors without that axis), each by its op kind's evaluator. Dropout masks are drawn at
    ``env['__seed']`` and ``env['__step']`` (the spec's seed and step 0 unless set)."""
    ctx = d.context
    env.setdefault("__seed", d.spec.seed)
    env.setdefault("__step", 0)
    scope = {**params, **env}
    for op in ops:
        scope[op.out] = env[op.out] = kind(op).evaluate(op, scope, ctx)


def apply_update(
    d: Derivation,
    param: Param,
    p: np.ndarray,
    g: np.ndarray,
    state: dict[str, np.ndarray],
    step: int,
    kappa: float = 1.0,
) -> np.ndarray:
    """One optimizer step for one parameter (``state`` updated in place); returns the new value.
    ``kappa`` is the step's clip_grad_norm factor (see clip_factor), read when the rule clips."""
    rule = d.optimizer
    env = {s.name: state.setdefault(s.name, np.zeros_like(p)) for s in rule.state}
    env.update(p=p, g=g, k=np.asarray(step, dtype=p.dtype), kappa=np.asarray(kappa, p.dtype))
    hyper = rule.values()
    for a in rule.assignments:
        expr = a.expr.xreplace(hyper)
        env[a.target.name] = np.broadcast_to(elementwise(expr, env, p.dtype), p.shape).copy()
    for s in rule.state:
        state[s.name] = env[s.name]
    return env["p"]


def clip_factor(d: Derivation, grads: dict[str, np.ndarray]) -> float:
    """torch.nn.utils.clip_grad_norm_'s factor min(1, max_norm/(‖g‖₂ + 1e-6)), the 2-norm over
    every trainable parameter's gradient; 1 when the spec does not clip by norm."""
    limit = d.spec.optimizer.clip_grad_norm
    if limit is None:
        return 1.0
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
    return min(1.0, limit / (total + NORM_EPS))


def evaluate(d: Derivation, samples: tuple[np.ndarray, np.ndarray]) -> Evaluation:
    """Forward (training mode), loss, backward and one training step (the optimizer, then the
    running buffers) at the spec's initial parameters."""
    dtype = np.dtype(d.spec.dtype)
    x, t = (np.asarray(s, dtype=dtype) for s in samples)
    x = x.reshape(x.shape[0], *d.graph.input_shape)  # sequences: rows of T·F, unflattened
    params = initial_params(d)
    env: dict[str, np.ndarray] = {"x": x, "t": t, N.name: np.asarray(x.shape[0], dtype=dtype)}
    run_program(d, d.forward, env, params)
    run_program(d, d.backward, env, params)
    grads = {
        name: np.asarray(env[op.out]).reshape(d.param(name).shape)
        for name, op in d.gradients.items()
    }
    updated = {}
    kappa = clip_factor(d, grads)
    for p in d.params:
        if p.trainable:
            updated[p.name] = apply_update(d, p, params[p.name], grads[p.name], {}, 1, kappa)
        else:
            updated[p.name] = params[p.name]
    buffers = dict(env)
    run_program(d, d.updates, buffers, params)
    updated |= {op.out: buffers[op.out] for op in d.updates}
    return Evaluation(float(env["E"]), env, grads, params, updated)


__all__ = [
    "Evaluation",
    "apply_update",
    "clip_factor",
    "elementwise",
    "evaluate",
    "initial_params",
    "run_program",
    "optimizers",
]
