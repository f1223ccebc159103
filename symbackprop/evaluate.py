"""Evaluate a Derivation numerically: the worked example behind ``derive --at``.

This interprets the Derivation's programs with NumPy, so the numbers shown are the numbers of the
derived formulas themselves (rows of every array are samples, as in the generated code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from . import optimizers, prng
from .chain_rule import Derivation, N, Op, Param
from .printing.numpy import NumpyCodePrinter

_ERF = np.vectorize(math.erf, otypes=[float])


def _step(x):
    x = np.asarray(x)
    return (x > 0).astype(x.dtype)


_FUNCTIONS = {"np": np, "_erf": _ERF, "_step": _step}


@lru_cache(maxsize=512)
def _compile(expr: sp.Expr, names: tuple[str, ...]):
    symbols = [sp.Symbol(n, real=True) for n in names]
    mapping = {s: sp.Symbol(n, real=True) for s in expr.free_symbols for n in names if s.name == n}
    expr = expr.xreplace(mapping)
    return sp.lambdify(symbols, expr, modules=[_FUNCTIONS, "numpy"], printer=NumpyCodePrinter())


def elementwise(expr: sp.Expr, env: dict[str, np.ndarray], dtype) -> np.ndarray:
    """Evaluate an elementwise expression whose free symbols name arrays (or scalars) in env."""
    names = tuple(sorted(s.name for s in expr.free_symbols))
    fn = _compile(expr, names)
    out = fn(*(env[n] for n in names))
    return np.asarray(out, dtype=dtype)


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
    """Execute ``ops`` in place on ``env`` (name -> array with samples as rows)."""
    dtype = env["x"].dtype
    for op in ops:
        if op.kind == "affine":
            w, inp, b = op.args
            z = env[inp] @ params[w].T
            env[op.out] = z + params[b] if b else z
        elif op.kind == "map":
            env[op.out] = np.broadcast_to(elementwise(op.expr, env, dtype), env[op.args[0]].shape)
        elif op.kind == "softmax":
            z = env[op.args[0]]
            e = np.exp(z - z.max(axis=1, keepdims=True))
            env[op.out] = e / e.sum(axis=1, keepdims=True)
        elif op.kind == "logsumexp":
            z = env[op.args[0]]
            m = z.max(axis=1, keepdims=True)
            env[op.out] = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        elif op.kind == "loss":
            terms = np.broadcast_to(elementwise(op.expr, env, dtype), env[op.args[1]].shape)
            env[op.out] = float(elementwise(op.scale, env, dtype)) * terms.sum(dtype=dtype)
        elif op.kind == "softmax_backward":
            a, g = env[op.args[0]], env[op.args[1]]
            env[op.out] = a * (g - (a * g).sum(axis=1, keepdims=True))
        elif op.kind == "matvec_t":
            env[op.out] = env[op.args[1]] @ params[op.args[0]]
        elif op.kind == "grad_weight":
            c = elementwise(op.scale, env, dtype)
            env[op.out] = c * (env[op.args[0]].T @ env[op.args[1]])
        elif op.kind == "grad_bias":
            c = elementwise(op.scale, env, dtype)
            delta = env[op.args[0]]
            p = d.param(op.args[1])
            env[op.out] = c * (delta.sum() if p.kind == "shared" else delta.sum(axis=0))
        else:  # pragma: no cover - every kind is handled above
            raise ValueError(op.kind)


def apply_update(
    d: Derivation,
    param: Param,
    p: np.ndarray,
    g: np.ndarray,
    state: dict[str, np.ndarray],
    step: int,
) -> np.ndarray:
    """One optimizer step for one parameter (``state`` updated in place); returns the new value."""
    rule = d.optimizer
    env = {s.name: state.setdefault(s.name, np.zeros_like(p)) for s in rule.state}
    env.update(p=p, g=g, k=np.asarray(step, dtype=p.dtype))
    hyper = rule.values()
    for a in rule.assignments:
        expr = a.expr.xreplace(hyper)
        env[a.target.name] = np.broadcast_to(elementwise(expr, env, p.dtype), p.shape).copy()
    for s in rule.state:
        state[s.name] = env[s.name]
    return env["p"]


def evaluate(d: Derivation, samples: tuple[np.ndarray, np.ndarray]) -> Evaluation:
    """Forward, loss, backward and one optimizer step at the spec's initial parameters."""
    dtype = np.dtype(d.spec.dtype)
    x, t = (np.asarray(s, dtype=dtype) for s in samples)
    params = initial_params(d)
    env: dict[str, np.ndarray] = {"x": x, "t": t, N.name: np.asarray(x.shape[0], dtype=dtype)}
    run_program(d, d.forward, env, params)
    run_program(d, d.backward, env, params)
    grads = {
        name: np.asarray(env[op.out]).reshape(d.param(name).shape)
        for name, op in d.gradients.items()
    }
    updated = {}
    for p in d.params:
        if p.trainable:
            updated[p.name] = apply_update(d, p, params[p.name], grads[p.name], {}, 1)
        else:
            updated[p.name] = params[p.name]
    return Evaluation(float(env["E"]), env, grads, params, updated)


__all__ = [
    "Evaluation",
    "apply_update",
    "elementwise",
    "evaluate",
    "initial_params",
    "run_program",
    "optimizers",
]
