"""Optimizer update rules as ordered elementwise SymPy assignments, equal to torch.optim's.

Each rule reads the parameter ``p``, its gradient ``g``, its state and the step count ``k``
(1 on the first step) and is written once; both targets and the derivation print it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import sympy as sp

from ..spec.load import OptimizerSpec
from .symbols import number

P = sp.Symbol("p", real=True)  # the parameter element
G = sp.Symbol("g", real=True)  # its gradient element
K = sp.Symbol("k", positive=True, integer=True)  # step count, 1 on the first step
# clip_grad_norm's factor min(1, max_norm/(‖g‖ + 1e-6)), ‖g‖ the 2-norm of every trainable
# parameter's gradient together: one number per step, which the targets compute before the rule
KAPPA = sp.Symbol("kappa", positive=True)
NORM_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s


# The range the spec allows each hyperparameter (spec._optimizer checks the spec's fields by the
# same rules): (low, high, low_open, high_open). The generated programs hold --lr and a
# checkpoint's hyperparameters to it.
_RANGES = {
    "eta": (0.0, math.inf, True, False),  # lr > 0
    "lambda": (0.0, math.inf, False, False),  # weight_decay >= 0
    "mu": (0.0, math.inf, False, False),  # momentum >= 0
    "tau": (0.0, 1.0, False, False),  # dampening in [0, 1]
    "beta1": (0.0, 1.0, False, True),  # betas in [0, 1)
    "beta2": (0.0, 1.0, False, True),
    "epsilon": (0.0, math.inf, False, False),  # eps >= 0
    "alpha": (0.0, 1.0, False, False),  # alpha in [0, 1]
    "max_norm": (0.0, math.inf, True, False),  # clip_grad_norm > 0
    "clip": (0.0, math.inf, True, False),  # clip_grad_value > 0
}


def hyper_range(name: str) -> dict:
    """The values the spec allows hyperparameter ``name`` as the closed range [low, high] of
    finite doubles (an open end moved to the next double: a NaN or an infinity is outside it
    too), and the rule in words ('> 0', 'in [0, 1)')."""
    low, high, low_open, high_open = _RANGES[name]
    if math.isinf(high):
        rule = f"{'>' if low_open else '>='} {low:g}"
    else:
        rule = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return {
        "low": math.nextafter(low, math.inf) if low_open else low,
        "high": math.nextafter(high, -math.inf) if high_open else min(high, sys.float_info.max),
        "rule": rule,
    }


def _minus(p: sp.Expr, step: sp.Expr) -> sp.Expr:
    """``p - step`` kept in that order for printing (textbook form p ← p − η g)."""
    return sp.Add(p, sp.Mul(-1, step), evaluate=False)


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class Assignment:
    """``target := expr``; targets are p, state symbols or the temporary g."""

    target: sp.Symbol
    expr: sp.Expr
    why: str = ""


@dataclass(frozen=True)
class UpdateRule:
    """An optimizer: hyperparameters (symbol, value), per-parameter state, ordered assignments.

    ``clip_norm``: the rule reads KAPPA, the step's clip_grad_norm factor (see KAPPA)."""

    name: str
    hyper: tuple[tuple[sp.Symbol, sp.Expr], ...]
    state: tuple[sp.Symbol, ...]
    assignments: tuple[Assignment, ...]
    clip_norm: bool = False

    def values(self) -> dict[sp.Symbol, sp.Expr]:
        return dict(self.hyper)


def make(spec: OptimizerSpec) -> UpdateRule:
    """The update rule of torch.optim.<SGD|Adam|AdamW|RMSprop> with ``spec``'s
    hyperparameters, after torch.nn.utils' gradient clipping when the spec asks for it."""
    rule = _make(spec)
    clip: list[Assignment] = []
    hyper = list(rule.hyper)
    if spec.clip_grad_norm is not None:
        max_norm = _sym("max_norm")
        hyper.append((max_norm, number(spec.clip_grad_norm)))
        clip.append(Assignment(G, KAPPA * G, "clip_grad_norm: κ = min(1, max_norm/(‖g‖₂ + "
                               "10⁻⁶)), ‖g‖₂ over every trainable parameter"))  # fmt: skip
    if spec.clip_grad_value is not None:
        c = _sym("clip")
        hyper.append((c, number(spec.clip_grad_value)))
        clip.append(Assignment(G, sp.Min(sp.Max(G, -c), c), "clip_grad_value: g into [−c, c]"))
    if not clip:
        return rule
    return UpdateRule(rule.name, tuple(hyper), rule.state, (*clip, *rule.assignments),
                      spec.clip_grad_norm is not None)  # fmt: skip


def _make(spec: OptimizerSpec) -> UpdateRule:
    lr, wd = _sym("eta"), _sym("lambda")
    hyper = [(lr, number(spec.lr))]
    steps: list[Assignment] = []
    g = G
    if spec.type == "adamw":  # decoupled: p shrinks by η λ before the Adam step, g is not touched
        hyper.append((wd, number(spec.weight_decay)))
        if spec.weight_decay:
            steps.append(Assignment(P, P * (1 - lr * wd), "decoupled weight decay"))
    elif spec.weight_decay:
        hyper.append((wd, number(spec.weight_decay)))
        steps.append(Assignment(G, G + wd * P, "weight decay"))
    if spec.type == "sgd":
        state: tuple[sp.Symbol, ...] = ()
        if spec.momentum:
            mu, tau, buf = _sym("mu"), _sym("tau"), _sym("buf")
            hyper.append((mu, number(spec.momentum)))
            if spec.dampening:
                hyper.append((tau, number(spec.dampening)))
            else:
                tau = sp.Integer(0)
            first = sp.Piecewise((g, sp.Eq(K, 1)), (mu * buf + (1 - tau) * g, True))
            steps.append(Assignment(buf, first, "momentum buffer (= g on the first step)"))
            steps.append(
                Assignment(
                    G,
                    g + mu * buf if spec.nesterov else buf,
                    "Nesterov look-ahead" if spec.nesterov else "use the buffer",
                )
            )
            state = (buf,)
        steps.append(Assignment(P, _minus(P, lr * G), "descend"))
        return UpdateRule("sgd", tuple(hyper), state, tuple(steps))
    if spec.type in ("adam", "adamw"):
        b1, b2, eps, m, v = _sym("beta1"), _sym("beta2"), _sym("epsilon"), _sym("m"), _sym("v")
        hyper += [(b1, number(spec.betas[0])), (b2, number(spec.betas[1])), (eps, number(spec.eps))]
        steps.append(Assignment(m, b1 * m + (1 - b1) * g, "first moment"))
        steps.append(Assignment(v, b2 * v + (1 - b2) * g**2, "second moment"))
        update = lr / (1 - b1**K) * m / (sp.sqrt(v) / sp.sqrt(1 - b2**K) + eps)
        steps.append(Assignment(P, _minus(P, update), "bias-corrected step"))
        return UpdateRule(spec.type, tuple(hyper), (m, v), tuple(steps))
    if spec.type == "rmsprop":
        alpha, eps, s = _sym("alpha"), _sym("epsilon"), _sym("s")
        hyper += [(alpha, number(spec.alpha)), (eps, number(spec.eps))]
        steps.append(Assignment(s, alpha * s + (1 - alpha) * g**2, "running mean of $g^2$"))
        state = (s,)
        if spec.momentum:
            mu, buf = _sym("mu"), _sym("buf")
            hyper.append((mu, number(spec.momentum)))
            steps.append(Assignment(buf, mu * buf + g / (sp.sqrt(s) + eps), "momentum buffer"))
            steps.append(Assignment(P, _minus(P, lr * buf), "descend"))
            state = (s, buf)
        else:
            steps.append(Assignment(P, _minus(P, lr * g / (sp.sqrt(s) + eps)), "descend"))
        return UpdateRule("rmsprop", tuple(hyper), state, tuple(steps))
    raise KeyError(spec.type)
