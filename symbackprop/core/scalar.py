"""Scalar mode: the same Derivation instantiated element by element, with CONTRACT §2 names.

Every definition comes from the index form of its op kind (``ops``), so scalar mode, ``verify``
and the code targets cannot disagree. Every parameter element's gradient is the product of
named chain-rule factors (∂E/∂a2_1 · ∂a2_1/∂z2_1 · ∂z2_1/∂w2_11), read off those definitions;
the fully expanded loss is never differentiated.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import activations, losses
from .derivation import Derivation
from .ir import element_name, grad_name, param_element_name
from .ops import Context, indices, kind


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def element(tensor: str, i: int) -> str:
    """Scalar name of element i (1-based) of a vector: x1, t2, z1_2, a1_2, delta2_1, da1_2, p1."""
    return element_name(tensor, (i - 1,))


param_element = param_element_name

RECURRENT_OPS = ("rnn", "cell")  # the op kinds that scan a time axis


def sequences(d: Derivation) -> frozenset[str]:
    """The tensors with a time axis ([T, units] per sample: x, h1, s1, delta1, a many-to-many
    head's z2 and t, ...), whose elements scalar mode names ``h1_1[2]`` (CONTRACT §6)."""
    steps = {d.shapes[o.out][0] for o in d.forward if o.kind in RECURRENT_OPS}
    return frozenset(n for n, s in d.shapes.items() if len(s) == 2 and s[0] in steps)


def scalar_name(seqs: frozenset[str], tensor: str, index: tuple[int, ...]) -> str:
    """The scalar name of one element of ``tensor`` (``seqs``: ``sequences(d)``)."""
    return element_name(tensor, index, tensor in seqs)


@dataclass(frozen=True)
class Factor:
    """∂num/∂den = expr, one factor of a chain-rule product (names are scalar names)."""

    num: str
    den: str
    expr: sp.Expr


@dataclass(frozen=True)
class Gradient:
    """dE/d(param element) = scale · Π factors (per sample; summed over the batch).

    A parameter used at several places of one sample (a conv kernel at every position, a
    dense layer on every row of a sequence) has a sum of chains: ``terms`` then holds each
    place's (∂E/∂z_p, ∂z_p/∂w) pair, for the documents, and ``factors`` their sum as one
    factor."""

    param: str
    element: str
    index: tuple[int, ...]
    factors: tuple[Factor, ...]
    scale: sp.Expr
    terms: tuple[tuple[Factor, ...], ...] = ()

    @property
    def expr(self) -> sp.Expr:
        return self.scale * sp.Mul(*(f.expr for f in self.factors))


@dataclass(frozen=True)
class ScalarDerivation:
    """Definitions (in program order: forward, then the gradients of tensors), the chain-rule
    factors of every gradient element, and each trainable element's gradient."""

    definitions: tuple[tuple[str, sp.Expr], ...]
    delta_factors: dict[str, tuple[Factor, ...]]
    gradients: tuple[Gradient, ...]

    def definition(self, name: str) -> sp.Expr:
        return dict(self.definitions)[name]


class _Names:
    """ops.Elements: the CONTRACT §2 symbol of one element of a tensor or parameter. Scalar
    mode writes one sample's formulas: its batch is that sample (``samples``)."""

    def __init__(self, ctx: Context, seqs: frozenset[str] = frozenset()):
        self.ctx, self.seqs = ctx, seqs
        self.samples = (self,)

    def name(self, tensor: str, index: tuple[int, ...]) -> str:
        return scalar_name(self.seqs, tensor, index)

    def tensor(self, name: str, index: tuple[int, ...]) -> sp.Symbol:
        return sym(self.name(name, index))

    def param(self, name: str, index: tuple[int, ...]) -> sp.Symbol:
        return sym(param_element_name(self.ctx.params[name], index))


def primals(d: Derivation) -> dict[str, str]:
    """The tensor each gradient array is the gradient of: delta3 -> z3, da1 -> a1."""
    out = {}
    for name in d.shapes:
        g = grad_name(name)
        if g in d.shapes and not name.startswith(("d", "delta")):
            out[g] = name
    return out


def _seed_factors(d: Derivation, ix: tuple[int, ...], el: _Names) -> tuple[Factor, ...]:
    """The output delta's factors: one, where the loss is fused with the output activation
    (computed from the logits), else ∂ℓ/∂a · ∂a/∂z."""
    node = d.graph.output
    od = d.output_delta
    a, z = el.name(d.output, ix), el.name(d.logits, ix)
    subs = {activations.X: sym(z), activations.A: sym(a), losses.T: el.tensor("t", ix),
            losses.P: el.tensor("p", ix)}  # fmt: skip
    if od.kind == "softmax":
        (n,) = d.shapes[d.output]
        g = [od.expr.xreplace({**subs, activations.A: el.tensor(d.output, (k,)),
                               losses.T: el.tensor("t", (k,))}) for k in range(n)]  # fmt: skip
        s = sp.Add(*(el.tensor(d.output, (k,)) * g[k] for k in range(n)))
        return (Factor("E", z, sym(a) * (g[ix[0]] - s)),)
    if d.loss.on_logits:
        return (Factor("E", z, od.expr.xreplace(subs)),)
    dl = sp.diff(d.loss.expr, losses.Y).xreplace({losses.Y: activations.A})
    g = activations.stabilize(dl, (activations.A, losses.T)).xreplace(subs)
    if node.activation is None:
        return (Factor("E", a, g),)
    return (Factor("E", a, g), Factor(a, z, node.derivative.expr.xreplace(subs)))


def instantiate(d: Derivation) -> ScalarDerivation:
    """Expand ``d`` element by element (for small nets: printing and verification).

    Computed once per Derivation and kept on it (as ``functools.cached_property`` keeps a value
    on a frozen dataclass): both are immutable, and a recurrent net's expansion takes seconds,
    which every format of its document and every verify probe would otherwise pay again."""
    cached = d.__dict__.get("_scalar")
    if cached is None:
        cached = d.__dict__["_scalar"] = _instantiate(d)
    return cached


def _instantiate(d: Derivation) -> ScalarDerivation:
    ctx = d.context
    el = _Names(ctx, sequences(d))
    read = {a for op in d.backward for a in op.args} | {
        s.name for op in d.backward if op.expr is not None for s in op.expr.free_symbols
    }
    nodes = {n for node in d.nodes for n in (node.a, node.z) if n}
    for op in reversed(d.forward):  # and what those read (a gated layer's h: a1 = h1_T)
        if op.out in nodes or op.out in read:
            read |= set(op.args)
    defs: list[tuple[str, sp.Expr]] = []
    for op in d.forward:
        if op.kind != "loss" and (op.out in nodes or op.out in read):
            defs += [(el.name(op.out, ix), e) for ix, e in kind(op).elements(op, el).items()]
    back = dict(primals(d))
    seed = grad_name(d.logits)
    factors: dict[str, tuple[Factor, ...]] = {}
    defined: dict[str, sp.Expr] = {}
    for op in d.backward:
        if op.kind.startswith("grad_"):
            continue
        for ix, e in kind(op).elements(op, el).items():
            name = el.name(op.out, ix)
            defs.append((name, e))
            defined[name] = e
            if op.out == seed:
                factors[name] = _seed_factors(d, ix, el)
            elif op.out in back:
                product = op.kind == "map"  # a local partial; else a sum over paths
                factors[name] = _factors(el.name(back[op.out], ix), e, factors, defined, back,
                                         product)  # fmt: skip
    # quantities a pullback names on its own (BPTT's δ_t), neither a tensor's gradient nor one
    # path's contribution: a gradient that sums them keeps their names (each is defined above)
    named = {el.name(op.out, ix) for op in d.backward
             if not op.kind.startswith("grad_") and op.out not in back and "__via_" not in op.out
             for ix in indices(d.shapes[op.out])}  # fmt: skip
    grads: list[Gradient] = []
    for p in d.trainable:
        op = d.gradients[p.name]
        terms = kind(op).elements(op, el)
        for ix in indices(p.shape):
            pel = param_element_name(p, ix)
            fs = _factors(pel, terms[ix], factors, defined, back, True, named)
            grads.append(Gradient(p.name, pel, ix, fs, d.scale, _terms(terms[ix], factors,
                                                                        back, pel)))  # fmt: skip
    return ScalarDerivation(tuple(defs), factors, tuple(grads))


def _factors(
    den: str,
    e,
    factors,
    defined,
    back,
    product: bool,
    keep: set | frozenset = frozenset(),
):
    """Factors of one element ``den`` (a scalar name): for a ``product`` e = g · rest with g one
    element of a gradient array, g's factors then ∂primal(g)/∂(this) = rest; else the one
    factor ∂E/∂(this) = e."""
    grads = [s for s in e.free_symbols if s.name in factors]
    if product and len(grads) == 1 and e.is_Mul and grads[0] in e.args:
        g = grads[0]
        rest = e / g
        if not any(s.name in factors for s in rest.free_symbols):
            gp = _primal_element(g.name, back)
            return factors[g.name] + (Factor(gp, den, rest),)
    if product and e.is_Symbol and e.name in factors:
        return factors[e.name] + (Factor(_primal_element(e.name, back), den, sp.Integer(1)),)
    expanded = e.xreplace({s: defined[s.name] for s in e.free_symbols if s.name in defined
                           and s.name not in factors and s.name not in keep})  # fmt: skip
    return (Factor("E", den, expanded),)


def _terms(e: sp.Expr, factors: dict, back: dict, den: str) -> tuple[tuple[Factor, ...], ...]:
    """A sum of g_p · rest_p (each g_p one element of a gradient array) as its pairs
    (∂E/∂primal_p = g_p, ∂primal_p/∂den = rest_p); () unless ``e`` is such a sum."""
    if not e.is_Add:
        return ()
    out = []
    for term in sp.Add.make_args(e):
        grads = [s for s in term.free_symbols if s.name in factors]
        if len(grads) != 1 or not (term == grads[0] or (term.is_Mul and grads[0] in term.args)):
            return ()
        g = grads[0]
        gp = _primal_element(g.name, back)
        out.append((Factor("E", gp, g), Factor(gp, den, term / g)))
    return tuple(out)


def _primal_element(name: str, back: dict) -> str:
    """a1_2 for da1_2, z3_1 for delta3_1."""
    for g, primal in back.items():
        if name.startswith(g + "_"):
            return primal + name[len(g) :]
    return name


def values_at(d: Derivation, ev, sample: int = 0) -> dict[sp.Symbol, float]:
    """The numbers of every scalar name at one sample of an Evaluation (for the worked example)."""
    from .ir import N

    out: dict[sp.Symbol, float] = {N: float(ev.batch)}
    seqs = sequences(d)
    grads = {op.out for op in d.gradients.values()}
    for name, arr in ev.values.items():
        if name in ("E", N.name) or name in grads or name not in d.shapes:
            continue
        row = arr[sample]
        shape = d.shapes[name]
        for ix in indices(shape):
            out[sym(scalar_name(seqs, name, ix))] = float(row[ix] if shape else row.ravel()[0])
    for p in d.params:
        arr = ev.params[p.name]
        for ix in indices(p.shape):
            out[sym(param_element_name(p, ix))] = float(arr[ix] if ix else arr)
    return out
