"""The registry of losses, each defined once per output element as PyTorch defines it.

The gradient at the last layer's pre-activation (the output delta) is derived: the generic chain
rule ∂ℓ/∂a ⊙ f'(z) (or the softmax Jacobian), and for the losses PyTorch computes from logits the
fused, stable forms (sigmoid + BCE → a − t, softmax + cross-entropy → a − t), each an explicit
rewrite whose equality with the generic form SymPy proves, kept as a derivation step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from ..spec.load import LossSpec
from .activations import (
    STABILIZE_WHY,
    STABLE_SOFTPLUS_WHY,
    Activation,
    ActivationDerivative,
    Step,
    stabilize,
    stable_softplus,
)
from .symbols import A, T, X, Y, number

S = sp.Symbol("s", real=True)  # the logit, in the BCE steps
P = sp.Symbol("p", real=True)  # softmax of the logits, when the last layer is identity
L = sp.Symbol("lse", real=True)  # per-sample log-sum-exp of the logits


@dataclass(frozen=True)
class Loss:
    """A loss per output element ℓ(y, t), summed over outputs, reduced over the batch.

    ``divisor`` says what ``mean`` divides by: 'N' (batch) or 'NK' (batch and outputs).
    ``on_logits``: PyTorch computes it from the last pre-activation (BCE/CE with logits).
    """

    name: str
    expr: sp.Expr
    reduction: str
    divisor: str
    on_logits: bool = False


def make(spec: LossSpec) -> Loss:
    """The registry entry for a validated loss spec."""
    if spec.type == "mse":
        return Loss("mse", (Y - T) ** 2, spec.reduction, "NK")
    if spec.type == "sse":
        return Loss("sse", number(spec.scale) * (Y - T) ** 2, spec.reduction, "N")
    if spec.type == "custom":
        return Loss("custom", spec.expr, spec.reduction, "N")
    if spec.type == "binary_cross_entropy":
        sig = 1 / (1 + sp.exp(-Y))
        expr = -(T * sp.log(sig) + (1 - T) * sp.log(1 - sig))
        return Loss("binary_cross_entropy", expr, spec.reduction, "NK", on_logits=True)
    if spec.type == "cross_entropy":  # y: the softmax probability of the output, -t log y
        return Loss("cross_entropy", -T * sp.log(Y), spec.reduction, "N", on_logits=True)
    raise KeyError(spec.type)


def scale(loss: Loss, n: sp.Expr, shape: tuple[int, ...] | int) -> sp.Expr:
    """c in E = c Σ_n Σ_k ℓ: 1 for sum, 1/N or 1/(N K) for mean (as torch's reductions).

    ``shape`` is the output's per-sample shape (an int: a vector's width). An output with
    several rows (a sequence [T, K]) counts as T samples of K outputs each, as PyTorch reduces
    the flattened [N·T, K]: 1/(N T) or 1/(N T K)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    rows = math.prod(shape[:-1])
    if loss.reduction == "sum":
        return sp.Integer(1)
    return 1 / (n * rows) if loss.divisor == "N" else 1 / (n * rows * shape[-1])


@dataclass(frozen=True)
class OutputDelta:
    """δ^L = ∂ℓ/∂z^L for one sample. ``kind``: 'elementwise' (expr in x, a, t, p) or 'softmax'
    (δ = a ⊙ (g − aᵀg) with g = expr in a, t). ``needs_softmax``: expr uses p = softmax(z)."""

    kind: str
    expr: sp.Expr
    steps: tuple[Step, ...]
    needs_softmax: bool = False


@dataclass(frozen=True)
class LossValue:
    """How the loss value is computed stably: 'elementwise' sum of expr(x, a, t) over outputs,
    or 'logsumexp': expr(x, t, lse) summed, with lse the per-sample log-sum-exp of z."""

    kind: str
    expr: sp.Expr
    steps: tuple[Step, ...]


def _probe_equal(a: sp.Expr, b: sp.Expr, symbols: tuple[sp.Symbol, ...], n: int = 20) -> bool:
    rng = random.Random(0)
    for _ in range(n):
        point = {s: sp.Float(rng.uniform(-3, 3), 30) for s in symbols}
        if abs(sp.N((a - b).subs(point), 30)) > 1e-20:
            return False
    return True


def _proved(a: sp.Expr, b: sp.Expr) -> bool:
    return sp.simplify(a - b) == 0


def output_delta(loss: Loss, act: Activation, deriv: ActivationDerivative | None) -> OutputDelta:
    """Derive δ^L for ``loss`` after the last layer's activation ``act``."""
    if loss.name == "binary_cross_entropy":
        d = sp.diff(loss.expr, Y)
        fused = 1 / (1 + sp.exp(-Y)) - T
        if not _proved(d, fused):
            raise AssertionError("BCE: dl/ds != sigmoid(s) - t")
        logit = {Y: S}
        steps = [
            Step("ℓ(s, t)", loss.expr.xreplace(logit), "BCE on the logit $s = z$"),
            Step("∂ℓ/∂s", d.xreplace(logit), "differentiate"),
            Step("∂ℓ/∂s", fused.xreplace(logit), "simplify (SymPy proves it equal)"),
        ]
        if act.name == "sigmoid":
            steps.append(Step("δ", A - T, r"$a = \sigma(z)$"))
            return OutputDelta("elementwise", A - T, tuple(steps))
        return OutputDelta("elementwise", fused.subs(Y, X), tuple(steps))
    if loss.name == "cross_entropy":
        steps = _softmax_ce_steps()
        if act.is_softmax:
            return OutputDelta("elementwise", A - T, steps)
        return OutputDelta("elementwise", P - T, steps, needs_softmax=True)
    raw = sp.diff(loss.expr, Y).subs(Y, A)
    steps = [Step("ℓ(a, t)", loss.expr.subs(Y, A), "definition")]
    steps.append(Step("∂ℓ/∂a", raw, "differentiate"))
    g = stabilize(raw, (A, T))
    if g != raw:
        steps.append(Step("∂ℓ/∂a", g, STABILIZE_WHY))
    if act.is_softmax:
        j, k = sp.symbols("j k", integer=True)
        a, g_ = sp.IndexedBase("a"), sp.IndexedBase("g")
        with sp.evaluate(False):
            jac = a[k] * (g_[k] - sp.Sum(a[j] * g_[j], (j, 1, sp.Symbol("K"))))
        steps.append(Step("δ_k", jac, r"softmax Jacobian, $g = \partial\ell/\partial a$"))
        return OutputDelta("softmax", g, tuple(steps))
    assert deriv is not None
    delta = g * deriv.expr
    steps.append(Step("δ", delta, r"$\partial\ell/\partial a \cdot f'(z)$"))
    return OutputDelta("elementwise", delta, tuple(steps))


@lru_cache(maxsize=8)
def softmax_jacobian_proved(n: int = 3) -> bool:
    """∂softmax_i/∂z_j = a_i (δ_ij − a_j), proved by SymPy on an n-vector: the difference is a
    rational function of the exp(z_k), which ``cancel`` reduces to 0 exactly (polynomial
    arithmetic in those generators; ``simplify`` reached the same 0 in 25× the time)."""
    z = sp.symbols(f"z1:{n + 1}", real=True)
    s = [sp.exp(zi) / sum(sp.exp(zj) for zj in z) for zi in z]
    return all(
        sp.cancel(sp.together(sp.diff(s[i], z[j]) - s[i] * (int(i == j) - s[j]))) == 0
        for i in range(n)
        for j in range(n)
    )


@lru_cache(maxsize=8)
def _softmax_ce_steps(n: int = 3) -> tuple[Step, ...]:
    """softmax + cross-entropy: δ_k = Σ_j (−t_j/a_j) a_j(δ_jk − a_k) = a_k Σt − t_k = a_k − t_k."""
    if not softmax_jacobian_proved(n):
        raise AssertionError("softmax Jacobian")
    a = sp.symbols(f"a1:{n + 1}", positive=True)
    t = sp.symbols(f"t1:{n + 1}", real=True)
    g = [-t[j] / a[j] for j in range(n)]
    delta0 = sum(g[j] * a[j] * (int(j == 0) - a[0]) for j in range(n))
    if not _proved(delta0, a[0] * sum(t) - t[0]):
        raise AssertionError("softmax + cross-entropy")
    j, k, big_k = sp.symbols("j k", integer=True) + (sp.Symbol("K", integer=True),)
    ai, ti = sp.IndexedBase("a"), sp.IndexedBase("t")
    total = sp.Sum(ti[j], (j, 1, big_k))
    with sp.evaluate(False):
        jacobian = ai[j] * (sp.KroneckerDelta(j, k) - ai[k])
        summed = ai[k] * total - ti[k]
    return (
        Step("ℓ(a, t)", -T * sp.log(A), r"cross-entropy, $a = \operatorname{softmax}(z)$"),
        Step("∂ℓ/∂a_j", -T / A, "differentiate"),
        Step("∂a_j/∂z_k", jacobian, "softmax Jacobian (SymPy-proved)"),
        Step("δ_k", summed, r"$\sum_j (-t_j/a_j)\, a_j (\delta_{jk} - a_k)$"),
        Step("δ", A - T, r"targets are probabilities: $\sum_j t_j = 1$"),
    )


def loss_value(loss: Loss, act: Activation) -> LossValue:
    """The stable form the loss value is computed in (derivation steps show the rewrite)."""
    if loss.name == "binary_cross_entropy":
        stable = sp.Max(X, 0) - X * T + sp.log(1 + sp.exp(-sp.Abs(X)))
        raw = loss.expr.subs(Y, X)
        if not _probe_equal(raw, stable, (X, T)):
            raise AssertionError("stable BCE")
        steps = (
            Step("ℓ", raw, "definition, s = z"),
            Step("ℓ", stable, "stable for any z (equal, checked at random points)"),
        )
        return LossValue("elementwise", stable, steps)
    if loss.name == "cross_entropy":
        expr = T * (L - X)
        j, k, big_k = sp.symbols("j k", integer=True) + (sp.Symbol("K", integer=True),)
        zi, ti = sp.IndexedBase("z"), sp.IndexedBase("t")
        with sp.evaluate(False):
            softmax = sp.exp(zi[k]) / sp.Sum(sp.exp(zi[j]), (j, 1, big_k))
            definition = -ti[k] * sp.log(softmax)
        steps = (
            Step("ℓ_k", definition, "definition"),
            Step("ℓ", expr, r"$\log \operatorname{softmax}(z)_k = z_k - \operatorname{lse}$"),
        )
        return LossValue("logsumexp", expr, steps)
    expr = loss.expr.subs(Y, A)
    steps = [Step("ℓ", expr)]
    stable = stable_softplus(expr, (A, T))
    if stable != expr:
        steps.append(Step("ℓ", stable, STABLE_SOFTPLUS_WHY))
    return LossValue("elementwise", expr, tuple(steps))
