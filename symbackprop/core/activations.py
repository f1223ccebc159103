"""The registry of activations: each defined once by its forward expression in ``x``.

Derivatives are never tabulated: :func:`derive_activation` differentiates the forward expression
with SymPy and, where the derivative can be written in the activation's own output ``a`` as a
rational function (sigmoid' = a(1 - a), tanh' = 1 - a^2), rewrites it so, keeping every step
(with the proof obligation discharged by SymPy) for the derivation document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import sympy as sp

from .symbols import A, X


@dataclass(frozen=True)
class Activation:
    """An elementwise activation (or softmax). Its derivative is derived, never written by hand.

    Attributes:
        name: registry name ('sigmoid') or 'custom'.
        expr: forward expression in the symbol ``x`` (for softmax: exp(x), normalised by the sum).
        latex: LaTeX name of the function applied to an argument, with ``{}`` for the argument.
        params: hyperparameters shown in the derivation, e.g. (('alpha', 1/100),).
        source: the user's text for custom expressions ('' otherwise).
    """

    name: str
    expr: sp.Expr
    latex: str
    params: tuple[tuple[str, sp.Expr], ...] = ()
    source: str = ""

    @property
    def is_softmax(self) -> bool:
        return self.name == "softmax"

    @property
    def is_identity(self) -> bool:
        return self.expr == X and not self.is_softmax


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``lhs = rhs`` with a short justification.

    ``lhs`` is a label the documents know (document.sections.STEP_LABELS) or an expression;
    ``why`` is prose with $LaTeX$ mathematics (document.prose)."""

    lhs: str | sp.Expr
    rhs: sp.Expr
    why: str = ""


@dataclass(frozen=True)
class ActivationDerivative:
    """f'(x), derived. ``expr`` is in x and/or a (a = f(x)); ``in_output`` says it uses only a."""

    expr: sp.Expr
    raw: sp.Expr
    in_output: bool
    steps: tuple[Step, ...] = field(default=())


def make(name: str, alpha: sp.Expr | None = None) -> Activation:
    """The registry entry ``name`` (with ``alpha`` for leaky_relu and elu)."""
    if name == "identity":
        return Activation("identity", X, "{}")
    if name == "sigmoid":
        return Activation("sigmoid", 1 / (1 + sp.exp(-X)), r"\sigma\left({}\right)")
    if name == "tanh":
        return Activation("tanh", sp.tanh(X), r"\tanh\left({}\right)")
    if name == "relu":
        return Activation("relu", sp.Max(X, 0), r"\operatorname{{relu}}\left({}\right)")
    if name == "leaky_relu":
        al = sp.Rational(1, 100) if alpha is None else alpha
        expr = sp.Piecewise((X, X > 0), (al * X, True))
        return Activation(
            "leaky_relu", expr, r"\operatorname{{lrelu}}\left({}\right)", (("alpha", al),)
        )
    if name == "elu":
        al = sp.Integer(1) if alpha is None else alpha
        expr = sp.Piecewise((X, X > 0), (al * (sp.exp(X) - 1), True))
        return Activation("elu", expr, r"\operatorname{{elu}}\left({}\right)", (("alpha", al),))
    if name == "softplus":
        return Activation(
            "softplus", sp.log(1 + sp.exp(X)), r"\operatorname{{softplus}}\left({}\right)"
        )
    if name == "silu":
        return Activation("silu", X / (1 + sp.exp(-X)), r"\operatorname{{silu}}\left({}\right)")
    if name == "gelu":
        expr = X / 2 * (1 + sp.erf(X / sp.sqrt(2)))
        return Activation("gelu", expr, r"\operatorname{{gelu}}\left({}\right)")
    if name == "softmax":
        return Activation("softmax", sp.exp(X), r"\operatorname{{softmax}}\left({}\right)")
    raise KeyError(name)


NAMES: tuple[str, ...] = (
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "silu",
    "gelu",
    "softmax",
)
ALIASES: dict[str, str] = {"linear": "identity"}
WITH_ALPHA: tuple[str, ...] = ("leaky_relu", "elu")


def custom(expr: sp.Expr, source: str) -> Activation:
    """An activation from a user's ``{expr: ...}`` (already parsed by the safe parser)."""
    return Activation("custom", expr, r"f\left({}\right)", source=source)


def _kink_convention(expr: sp.Expr) -> sp.Expr:
    """Heaviside(0) = 0, as PyTorch's relu'(0) = 0."""
    return expr.replace(sp.Heaviside, lambda arg, *rest: sp.Heaviside(arg, 0))


def _tidy(expr: sp.Expr) -> sp.Expr:
    """The shortest of the factored and expanded forms; a(1 - a) rather than -a(a - 1)."""
    factored = sp.factor(expr)
    if factored.is_Mul and factored.could_extract_minus_sign():
        factors = list(factored.args)
        for i, f in enumerate(factors):
            if f.is_Add:
                factors[i] = -f
                factored = -sp.Mul(*factors)
                break
    return min((factored, sp.expand(expr)), key=sp.count_ops)


def stabilize(expr: sp.Expr, symbols: tuple[sp.Symbol, ...] = (X,)) -> sp.Expr:
    """exp(u)/(1 + exp(u)) -> 1/(1 + exp(-u)) and exp(u)/(1 + exp(u))^2 ->
    1/((1 + exp(u))(1 + exp(-u))): equal, but finite where exp(u) overflows."""

    def fix(m: sp.Expr) -> sp.Expr:
        factors = list(m.args)
        for f in factors:
            if not isinstance(f, sp.exp):
                continue
            u = f.args[0]
            den = 1 + sp.exp(u)
            for g in factors:
                if g.is_Pow and g.base == den and g.exp in (-1, -2):
                    rest = sp.Mul(*(h for h in factors if h is not f and h is not g))
                    if g.exp == -1:
                        return rest / (1 + sp.exp(-u))
                    return rest / ((1 + sp.exp(u)) * (1 + sp.exp(-u)))
        return m

    out = expr.replace(lambda e: e.is_Mul, fix)
    if out != expr and not _probe_equal(out, expr, symbols):
        raise AssertionError(f"stabilize changed the value of {expr}")
    return out


STABLE_SOFTPLUS_WHY = (
    r"computed so, with no overflow: $\log(1 + e^u) = \max(u, 0) + \log(1 + e^{-|u|})$"
)
STABILIZE_WHY = r"rewritten so that $\exp$ cannot overflow to $\infty/\infty$"


def stable_softplus(expr: sp.Expr, symbols: tuple[sp.Symbol, ...] = (X,)) -> sp.Expr:
    """Every log(1 + exp(u)) as max(u, 0) + log(1 + exp(-|u|)): the form both printers emit
    (NumPy's logaddexp(0, u); C's fmax + log1p(exp(-fabs))), shown as a derivation step."""

    def fix(e: sp.Expr) -> sp.Expr:
        rest = e.args[0] - 1
        if not isinstance(rest, sp.exp):
            return e
        u = rest.args[0]
        return sp.Max(u, 0) + sp.log(1 + sp.exp(-sp.Abs(u)))

    out = expr.replace(lambda e: isinstance(e, sp.log) and e.args[0].is_Add, fix)
    if out != expr and not _probe_equal(out, expr, symbols):
        raise AssertionError(f"stable_softplus changed the value of {expr}")
    return out


def _probe_equal(new: sp.Expr, old: sp.Expr, symbols: tuple[sp.Symbol, ...] = (X,)) -> bool:
    """``new`` equals ``old`` at 12 points in [-4, 4] to 25 digits (both sides of every kink)
    where ``old`` is a real number (softplus(sqrt(x)) is not, for x < 0); with several
    symbols, the j-th runs through the same points in another order. Evaluated in mpmath at 40
    digits: sp.N's adaptive precision is exponential in the nesting (sigmoid of sigmoid ...)."""
    f_new, f_old = (sp.lambdify(symbols, e, "mpmath") for e in (new, old))
    with mpmath.workdps(40):
        points = [mpmath.mpf(8 * i + 3) / 12 - 4 for i in range(12)]
        for i in range(12):
            at = [points[(i + 5 * j) % 12] for j in range(len(symbols))]
            want = _value(f_old, at)
            if not isinstance(want, mpmath.mpf) or not mpmath.isfinite(want):
                continue  # outside the function's real domain
            got = _value(f_new, at)
            if got is None or abs(got - want) > mpmath.mpf("1e-25") * max(1, abs(want)):
                return False
    return True


def _value(fn, args: list) -> mpmath.mpf | mpmath.mpc | None:
    try:
        return mpmath.mpmathify(fn(*args))
    except (ArithmeticError, ValueError, TypeError):
        return None


@lru_cache(maxsize=256)
def derive_activation(act: Activation) -> ActivationDerivative:
    """Differentiate ``act`` with SymPy and rewrite f'(x) in terms of a = f(x) where possible."""
    if act.is_softmax:
        raise ValueError("softmax has a Jacobian, not an elementwise derivative")
    raw = _kink_convention(sp.diff(act.expr, X))
    steps = [Step("f(x)", act.expr, "definition")]
    computed = stabilize(act.expr)  # what the code computes for f (chain_rule.forward)
    if computed != act.expr:
        steps.append(Step("f(x)", computed, STABILIZE_WHY))
    printed = stable_softplus(computed)  # the printers' logaddexp, written out
    if printed != computed:
        steps.append(Step("f(x)", printed, STABLE_SOFTPLUS_WHY))
    steps.append(Step("f'(x)", raw, "differentiate"))
    rewritten = _rewrite_in_output(act.expr, raw)
    if rewritten is None:
        stable = stabilize(raw)
        if stable != raw:
            steps.append(Step("f'(x)", stable, STABILIZE_WHY))
        return ActivationDerivative(stable, raw, False, tuple(steps))
    kernel, solved, expr = rewritten
    steps.append(Step(kernel, solved, "solve $a = f(x)$ for it"))
    steps.append(Step("f'(x)", expr, "substitute $a = f(x)$"))
    return ActivationDerivative(expr, raw, True, tuple(steps))


MAX_REWRITE_NODES = 500  # larger derivatives are kept as differentiated, not rewritten


def _rewrite_in_output(f: sp.Expr, d: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """Find a kernel u(x) of f with f = g(u), solve a = g(u) for u and substitute into f'.

    Only where that is cheap and certain, so no user expression can make it run away (SymPy's
    solve took minutes on a = tanh(tanh(tanh(u))), for the four-deep tanh): g must be a
    rational function of u of degree at most 2 (sigmoid: 1/(1 + u), u = exp(-x); tanh: u),
    f' must be at most MAX_REWRITE_NODES nodes, and the result is accepted only when it is a
    rational function of a alone and f' = result(g(u)) cancels to 0 as a rational function of
    u (a proof, since u = kernel(x)). Otherwise f' stays as differentiated: correct, longer.
    """
    if f.has(sp.Piecewise, sp.Max, sp.Min, sp.Abs) or f == X or _too_big(d):
        return None
    kernels = sorted(f.atoms(sp.Function), key=sp.default_sort_key)
    u = sp.Dummy("u", real=True)  # as x: without it SymPy's assumptions on f(u) are exponential
    for kernel in kernels:
        g, du = f.subs(kernel, u), d.subs(kernel, u)
        if X in g.free_symbols or X in du.free_symbols or not _low_degree(g, u):
            continue
        sols = sp.solve(sp.Eq(A, g), u)
        if len(sols) != 1:
            continue
        out = _tidy(sp.cancel(du.subs(u, sols[0])))
        if X in out.free_symbols or not out.is_rational_function(A):
            continue
        if sp.cancel(out.subs(A, g) - du) == 0:
            return kernel, sols[0], out
    return None


def _too_big(expr: sp.Expr) -> bool:
    nodes = sp.preorder_traversal(expr)
    return any(i >= MAX_REWRITE_NODES for i, _ in enumerate(nodes))


def _low_degree(g: sp.Expr, u: sp.Symbol) -> bool:
    """g is a rational function of u whose numerator and denominator have degree <= 2."""
    if not g.is_rational_function(u):
        return False
    num, den = sp.fraction(sp.cancel(g))
    return all(sp.degree(p, u) <= 2 for p in (num, den))
