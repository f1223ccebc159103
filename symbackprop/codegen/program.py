"""Stage 4: lower a Derivation into a Program: ordered ops with shapes, elementwise maps after CSE.

A Program is target-neutral: backends turn its SymPy expressions into code with their printer
and hand templates plain strings. CSE runs with a canonical order and numbered temporaries, so
the same spec always lowers to the same Program.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sympy as sp

from ..chain_rule import Derivation, Op, Param
from ..printing.latex import text as text_of
from ..optimizers import G, K, P, UpdateRule


@dataclass(frozen=True)
class Lowered:
    """One op with its elementwise work CSE'd: ``temps`` then ``expr`` (None for matrix ops)."""

    op: Op
    units: int  # width of the vectors it produces (1 for per-sample scalars, 0 for E)
    temps: tuple[tuple[sp.Symbol, sp.Expr], ...] = ()
    expr: sp.Expr | None = None
    formula: str = ""


@dataclass(frozen=True)
class Update:
    """The optimizer for one element: hyperparameters, state names, CSE'd ordered assignments."""

    name: str
    hyper: tuple[tuple[str, float], ...]
    state: tuple[str, ...]
    scalars: tuple[tuple[sp.Symbol, sp.Expr], ...]  # once per step: in hyperparameters and k
    steps: tuple[tuple[sp.Symbol, sp.Expr], ...]  # targets p, g, state names or temporaries
    formulas: tuple[str, ...]
    linear: tuple[sp.Expr, sp.Expr] | None = None  # (beta, alpha): p <- beta p + alpha g


@dataclass(frozen=True)
class Program:
    """Everything a backend needs, in order; no SymPy calls are left for templates."""

    derivation: Derivation
    forward: tuple[Lowered, ...]
    loss: Lowered
    backward: tuple[Lowered, ...]
    update: Update

    @property
    def spec(self):
        return self.derivation.spec

    @property
    def params(self) -> tuple[Param, ...]:
        return self.derivation.params

    def summary(self) -> dict:
        """What every target states about the network (headers, metadata): plain values."""
        spec, d = self.spec, self.derivation
        return {
            "name": spec.name,
            "dtype": spec.dtype,
            "inputs": spec.inputs,
            "outputs": spec.outputs,
            "seed": spec.seed,
            "loss": d.loss.name,
            "optimizer": self.update.name,
            "digest": spec.digest,
        }


def _cse(expr: sp.Expr, prefix: str) -> tuple[tuple, sp.Expr]:
    temps, (out,) = sp.cse([expr], symbols=sp.numbered_symbols(prefix), order="canonical")
    return tuple(temps), out


def _formula(op: Op) -> str:
    if op.kind == "affine":
        w, inp, b = op.args
        return f"{op.out} = {w} @ {inp}" + (f" + {b}" if b else "")
    if op.kind == "map":
        return f"{op.out} = {text_of(op.expr)}"
    if op.kind == "softmax":
        return f"{op.out} = softmax({op.args[0]})"
    if op.kind == "logsumexp":
        return f"{op.out} = log(sum(exp({op.args[0]})))"
    if op.kind == "loss":
        return f"E = {text_of(op.scale)} * sum_n sum_k {text_of(op.expr)}"
    if op.kind == "softmax_backward":
        a, g = op.args
        return f"{op.out} = {a} * ({g} - sum_k({a} * {g}))"
    if op.kind == "matvec_t":
        return f"{op.out} = {op.args[0]}.T @ {op.args[1]}"
    c = "" if op.scale == 1 else f"{text_of(op.scale)} * "
    if op.kind == "grad_weight":
        dl, inp, _ = op.args
        return f"{op.out} = {c}sum_n {dl}_n {inp}_n^T"
    if op.kind == "grad_bias":
        return f"{op.out} = {c}sum_n {op.args[0]}_n"
    raise ValueError(op.kind)


def _units(d: Derivation) -> dict[str, int]:
    units = {"x": d.spec.inputs, "t": d.spec.outputs, "p": d.spec.outputs, "lse": 1, "E": 0}
    for layer in d.layers:
        for name in (layer.z, layer.a, layer.delta, "d" + layer.a):
            units[name] = layer.units
    return units


def _lower_ops(d: Derivation, ops: tuple[Op, ...], prefix: str) -> tuple[Lowered, ...]:
    units = _units(d)
    out = []
    for i, op in enumerate(ops):
        temps, expr = (), op.expr
        if op.expr is not None:
            temps, expr = _cse(op.expr, f"{prefix}{i}_")
        out.append(Lowered(op, units.get(op.out, 0), temps, expr, _formula(op)))
    return tuple(out)


def hoist(expr: sp.Expr, scalars: set[sp.Symbol], out: list) -> sp.Expr:
    """Replace the largest subexpressions that depend only on ``scalars`` (hyperparameters and
    the step count) by new symbols appended to ``out``, so they are computed once per step."""
    if expr.is_Atom:
        return expr
    free = expr.free_symbols
    if free and free <= scalars and not expr.is_Atom:
        sym = sp.Symbol(f"s{len(out)}", real=True)
        out.append((sym, expr))
        return sym
    if isinstance(expr, (sp.Mul, sp.Add)):
        inner = [a for a in expr.args if not (a.free_symbols and a.free_symbols <= scalars)]
        const = [a for a in expr.args if a.free_symbols and a.free_symbols <= scalars]
        if const and inner:
            hoisted = hoist(expr.func(*const), scalars, out)
            return expr.func(hoisted, *(hoist(a, scalars, out) for a in inner))
    if isinstance(expr, sp.Piecewise):
        return expr
    return expr.func(*(hoist(a, scalars, out) for a in expr.args))


def _fold_scale(ops: tuple[Op, ...], c: sp.Expr) -> tuple[Op, ...]:
    """Multiply the first backward map (the output delta, or dl/da before a softmax Jacobian,
    which is linear) by c and drop c from every gradient: one scaling of one small array
    instead of one per parameter. Deltas in the Program then carry c; gradients are equal."""
    if c == 1:
        return ops
    first, rest = ops[0], ops[1:]
    assert first.kind == "map"
    scaled = dataclasses.replace(first, expr=c * first.expr, why=f"{first.why}, times c")
    return (scaled, *(dataclasses.replace(op, scale=sp.Integer(1)) if op.scale is not None
                      else op for op in rest))  # fmt: skip


def linear(rule: UpdateRule) -> tuple[sp.Expr, sp.Expr] | None:
    """(beta, alpha) in the hyperparameters and k when ``rule`` is p <- beta p + alpha g with no
    state (SGD, with or without weight decay): an update a gemm can apply as it sums g."""
    if rule.state:
        return None
    env: dict[sp.Symbol, sp.Expr] = {}
    for a in rule.assignments:
        env[a.target] = a.expr.xreplace(env)
    new = env.get(P, P)
    beta, alpha = sp.diff(new, P), sp.diff(new, G)
    scalars = {s for s, _ in rule.hyper} | {K}
    if not (beta.free_symbols | alpha.free_symbols) <= scalars:
        return None
    if sp.expand(new - beta * P - alpha * G) != 0:
        return None
    return beta, alpha


def lower(d: Derivation) -> Program:
    """Stage 4: the Program of ``d``."""
    forward = _lower_ops(d, tuple(op for op in d.forward if op.kind != "loss"), "f")
    (loss,) = _lower_ops(d, tuple(op for op in d.forward if op.kind == "loss"), "l")
    backward = _lower_ops(d, _fold_scale(d.backward, d.scale), "b")
    rule = d.optimizer
    hyper = tuple((s.name, float(v)) for s, v in rule.hyper)
    scalars = {s for s, _ in rule.hyper} | {K}
    steps, formulas, once = [], [], []
    for n, a in enumerate(rule.assignments):
        temps, expr = _cse(hoist(a.expr, scalars, once), f"u{n}_")
        steps += [*temps, (a.target, expr)]
        formulas.append(f"{a.target.name} = {text_of(a.expr)}")
    update = Update(rule.name, hyper, tuple(s.name for s in rule.state), tuple(once),
                    tuple(steps), tuple(formulas), linear(rule))  # fmt: skip
    return Program(d, forward, loss, backward, update)
