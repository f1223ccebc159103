"""Stage 4: lower a Derivation into a Program: ordered ops with shapes, elementwise maps after CSE.

A Program is target-neutral: backends turn its SymPy expressions into code with their printer
and hand templates plain strings. CSE runs with a canonical order and numbered temporaries, so
the same spec always lowers to the same Program.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sympy as sp

from ..core.derivation import Derivation
from ..core.ir import Op, Param, Shape
from ..core.ops import Context, kind
from ..core.optimizers import G, K, P, UpdateRule
from ..printing.latex import text as text_of
from ..spec.load import Spec


@dataclass(frozen=True)
class Lowered:
    """One op with its elementwise work CSE'd: ``temps`` then ``expr`` (None for matrix ops)."""

    op: Op
    shape: Shape  # per-sample shape of what it produces (() for per-sample scalars and E)
    temps: tuple[tuple[sp.Symbol, sp.Expr], ...] = ()
    expr: sp.Expr | None = None
    formula: str = ""

    @property
    def units(self) -> int:
        """Width of its last axis (1 for a per-sample scalar)."""
        return self.shape[-1] if self.shape else 1


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
    # clip_grad_norm's max_norm hyperparameter: the steps read kappa = min(1, max_norm/(‖g‖₂ +
    # 1e-6)), ‖g‖₂ over every trainable gradient, which the target computes once per step
    clip_norm: str | None = None


@dataclass(frozen=True)
class LayerInfo:
    """What a target's header says about one layer."""

    index: int
    type: str
    shape: Shape
    activation: str  # its name ('identity' for kinds without one)


@dataclass(frozen=True)
class Program:
    """Everything a backend needs, in order; no SymPy calls are left for templates and no
    backend reads the Derivation: shapes, parameters and names are all here."""

    spec: Spec
    params: tuple[Param, ...]
    forward: tuple[Lowered, ...]
    loss: Lowered
    backward: tuple[Lowered, ...]
    update: Update
    shapes: dict[str, Shape]  # every tensor's per-sample shape (x, t, z1, a1, delta1, ...)
    output: str  # the network's output tensor
    logits: str  # what the loss reads as z (the output's pre-activation, or the output)
    loss_name: str
    layers: tuple[LayerInfo, ...]
    # Training versus evaluation mode (core/modes.py): ``forward`` is the training-mode program;
    # ``evaluation`` the one of forward/predict (``forward`` itself when no op differs);
    # ``updates`` what a training step does to the buffers after its forward pass; ``batch``
    # the per-batch tensors (no sample axis).
    evaluation: tuple[Lowered, ...] = ()
    updates: tuple[Lowered, ...] = ()
    batch: frozenset[str] = frozenset()

    @property
    def context(self) -> Context:
        return Context(self.shapes, {p.name: p for p in self.params}, self.batch)

    @property
    def modes_differ(self) -> bool:
        """True when evaluation mode computes something else than training mode."""
        return tuple(o.op for o in self.evaluation) != tuple(o.op for o in self.forward)

    @property
    def min_rows(self) -> int:
        """The fewest rows of a training-mode batch (2 with batch norm over one number per
        channel and sample: core.layers.normalization.min_training_rows)."""
        from ..core.layers.normalization import min_training_rows

        return min_training_rows(self.layers)

    @property
    def buffers(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.role == "buffer")

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def summary(self) -> dict:
        """What every target states about the network (headers, metadata): plain values."""
        spec = self.spec
        return {
            "name": spec.name,
            "dtype": spec.dtype,
            "inputs": spec.inputs,
            "outputs": spec.outputs,
            "input_shape": list(spec.input_shape),
            "output_shape": list(spec.output_shape),
            "seed": spec.seed,
            "loss": self.loss_name,
            "optimizer": self.update.name,
            "digest": spec.digest,
        }


def _cse(expr: sp.Expr, prefix: str) -> tuple[tuple, sp.Expr]:
    temps, (out,) = sp.cse([expr], symbols=sp.numbered_symbols(prefix), order="canonical")
    return tuple(temps), out


def _lower_ops(d: Derivation, ops: tuple[Op, ...], prefix: str) -> tuple[Lowered, ...]:
    ctx = d.context
    out = []
    for i, op in enumerate(ops):
        temps, expr = (), op.expr
        if op.expr is not None:
            temps, expr = _cse(op.expr, f"{prefix}{i}_")
        out.append(Lowered(op, ctx.shape(op.out), temps, expr, kind(op).text(op, ctx)))
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
    if c == 1 or not ops:
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
    evaluation = forward
    if d.modes_differ:
        evaluation = _lower_ops(d, tuple(op for op in d.evaluation if op.kind != "loss"), "e")
    updates = _lower_ops(d, d.updates, "r")
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
                    tuple(steps), tuple(formulas), linear(rule),
                    "max_norm" if rule.clip_norm else None)  # fmt: skip
    shapes = dict(d.shapes)
    layers = tuple(LayerInfo(n.index, n.type, n.shape, n.spec.activation_name) for n in d.nodes)
    return Program(d.spec, d.params, forward, loss, backward, update, shapes, d.output, d.logits,
                   d.loss.name, layers, evaluation, updates, d.batch)  # fmt: skip
