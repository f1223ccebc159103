"""Every op kind's pullback, proved equal to sympy.diff of its element-wise (index) form.

Each case instantiates one forward op on small shapes, writes its outputs element by element
(the index form the scalar mode and ``verify`` use), and checks that the ops its pullback emits
compute, element by element, Σ_i g_i ∂out_i/∂u_j for every input u and parameter (the
vector-Jacobian product), with the output's own symbols replaced by their definitions. A
registered kind with a pullback and no case here fails the completeness test.
"""

from __future__ import annotations

import random
from collections import defaultdict

import mpmath
import pytest
import sympy as sp

from symbackprop.core import ops
from symbackprop.core.activations import derive_activation, make, stabilize
from symbackprop.core.ir import Init, N, Op, Param, element_name, param_element_name, vec
from symbackprop.core.ops import OPS, Context, indices, kind
from symbackprop.core.symbols import A, X


def sym(name):
    return sp.Symbol(name, real=True)


class Names:
    def __init__(self, ctx):
        self.ctx = ctx
        self.samples = (self,)

    def tensor(self, name, index):
        return sym(element_name(name, index))

    def param(self, name, index):
        return sym(param_element_name(self.ctx.params[name], index))


class Recorder:
    """ops.Backward that records what a pullback emits (everything requires a gradient)."""

    scale = sp.Integer(1)

    def __init__(self, ctx):
        self.ctx = ctx
        self.grads: list[Op] = []
        self.contribs: dict[str, list] = defaultdict(list)
        self.n = 0

    def requires(self, name):
        return True

    def emit(self, op):
        self.grads.append(op)

    def slot(self, tensor, consumer):
        self.n += 1
        return f"c{self.n}"

    def contribute(self, tensor, op=None, alias=None):
        self.contribs[tensor].append(op if op is not None else alias)


def param(name, shape, layer=1):
    kind = "matrix" if len(shape) == 2 else ("per_unit" if shape else "shared")
    return Param(name, layer, "p", kind, shape, True, Init("zeros"), 1, 1)


def act_map(name):
    act = make(name)
    deriv = derive_activation(act)
    local = deriv.expr.xreplace({X: vec("z1"), A: vec("a1")})
    return Op("map", "a1", ("z1",), stabilize(act.expr).xreplace({X: vec("z1")}),
              partials=(local,))  # fmt: skip


def conv_attrs(nd, stride, padding, dilation, groups):
    return (
        ("stride", (stride,) * nd),
        ("padding", padding),
        ("dilation", (dilation,) * nd),
        ("groups", groups),
    )


def conv_op(nd, stride, padding, dilation, groups):
    return Op("conv", "z1", ("W1", "x", "b1"), attrs=conv_attrs(nd, stride, padding, dilation,
                                                                groups))  # fmt: skip


def pool_op(kind_, kernel, stride, padding):
    return Op(kind_, "a2", ("a1",), attrs=(("kernel", kernel), ("stride", stride),
                                           ("padding", padding)))  # fmt: skip


def rnn_op(nonlinearity, bias=True, out="h1", truncate=0):
    from symbackprop.core.layers.recurrent import step_functions

    f, df = step_functions(nonlinearity)
    attrs = (("act", nonlinearity), ("f", f), ("df", df), ("delta", "delta1"),
             ("truncate", truncate))  # fmt: skip
    b = ("b1", "br1") if bias else ("", "")
    return Op("rnn", out, ("W1", "U1", *b, "x"), attrs=attrs)


def cell_op(kind, bias=True, truncate=0, units=2):
    from symbackprop.core.layers.gated import cell_op as make

    b = ("b1", "br1") if bias else ("", "")
    return make(kind, "s1", ("W1", "U1", *b, "x"), units, 1, truncate)


def gated_params(gates, units=2, feats=2):
    return [param("W1", (gates * units, feats)), param("U1", (gates * units, units)),
            param("b1", (gates * units,)), param("br1", (gates * units,))]  # fmt: skip


RNN_PARAMS = [param("W1", (2, 2)), param("U1", (2, 2)), param("b1", (2,)), param("br1", (2,))]

# (label, forward op, tensor shapes, parameters)
CASES = [
    ("affine", Op("affine", "z1", ("W1", "x", "b1")), {"x": (3,)},
     [param("W1", (2, 3)), param("b1", (2,))]),
    ("affine shared bias", Op("affine", "z1", ("W1", "a0", "b1")), {"a0": (2,)},
     [param("W1", (3, 2)), param("b1", ())]),
    ("affine no bias", Op("affine", "z1", ("W1", "a0", "")), {"a0": (2,)}, [param("W1", (2, 2))]),
    ("map sigmoid (rewritten f')", act_map("sigmoid"), {"z1": (3,)}, []),
    ("map tanh (rewritten f')", act_map("tanh"), {"z1": (2,)}, []),
    ("map gelu", act_map("gelu"), {"z1": (2,)}, []),
    ("map add", Op("map", "z3", ("a1", "a2"), vec("a1") + vec("a2")), {"a1": (3,), "a2": (3,)},
     []),
    ("map product", Op("map", "y", ("u", "v"), vec("u") * sp.exp(vec("v"))),
     {"u": (2,), "v": (2,)}, []),
    ("map scalar parameter", Op("map", "a2", ("s2", "a1"), vec("s2") * vec("a1")),
     {"a1": (3,)}, [param("s2", (), 2)]),
    ("map per-unit parameter", Op("map", "y", ("g1", "u"), vec("g1") * vec("u") ** 2),
     {"u": (3,)}, [param("g1", (3,))]),
    ("softmax", Op("softmax", "a1", ("z1",)), {"z1": (3,)}, []),
    ("concat", Op("concat", "a3", ("a1", "a2")), {"a1": (2,), "a2": (3,)}, []),
    # per-sample tensors with several axes (CONTRACT §6): dense acts on the last axis
    ("affine on a sequence", Op("affine", "z1", ("W1", "x", "b1")), {"x": (2, 3)},
     [param("W1", (2, 3)), param("b1", (2,))]),
    ("affine on a sequence, shared bias", Op("affine", "z1", ("W1", "a0", "b1")),
     {"a0": (3, 2)}, [param("W1", (2, 2)), param("b1", ())]),
    ("map on a map", act_map("tanh"), {"z1": (2, 2, 2)}, []),
    ("map per-unit parameter on a sequence", Op("map", "y", ("g1", "u"), vec("g1") * vec("u")),
     {"u": (2, 3)}, [param("g1", (3,))]),
    ("softmax on each row of a sequence", Op("softmax", "a1", ("z1",)), {"z1": (2, 3)}, []),
    ("concat maps along channels", Op("concat", "a3", ("a1", "a2"), attrs=(("axis", 0),)),
     {"a1": (1, 2, 2), "a2": (2, 2, 2)}, []),
    ("concat sequences along features", Op("concat", "a3", ("a1", "a2"), attrs=(("axis", 1),)),
     {"a1": (2, 2), "a2": (2, 1)}, []),
    ("reshape (flatten)", Op("reshape", "a2", ("a1",), attrs=(("shape", (6,)),)),
     {"a1": (2, 3)}, []),
    ("transpose a map [C, H, W] to channels last", Op("transpose", "t", ("a1",),
                                                     attrs=(("to", "last"), ("shape", (6, 2)))),
     {"a1": (2, 3, 2)}, []),
    ("transpose channels last back to [C, L]", Op("transpose", "a2", ("t",),
                                                  attrs=(("to", "first"), ("shape", (2, 3)))),
     {"t": (3, 2)}, []),
    # convolution and pooling (issue 14): stride, padding (uneven too), dilation, groups
    ("conv1d", conv_op(1, 1, ((0, 0),), 1, 1), {"x": (2, 4)},
     [param("W1", (2, 2, 2)), param("b1", (2,))]),
    ("conv1d stride 2 padding 1+2 dilation 2", conv_op(1, 2, ((1, 2),), 2, 1), {"x": (2, 5)},
     [param("W1", (2, 2, 2)), param("b1", (2,))]),
    ("conv1d grouped (depthwise), shared bias", conv_op(1, 1, ((1, 1),), 1, 2), {"x": (2, 3)},
     [param("W1", (4, 1, 2)), param("b1", ())]),
    ("conv2d stride 2 padding 1", conv_op(2, 2, ((1, 1), (1, 1)), 1, 1), {"x": (2, 3, 3)},
     [param("W1", (2, 2, 2, 2)), param("b1", (2,))]),
    ("conv2d no bias, dilation", Op("conv", "z1", ("W1", "x", ""), attrs=conv_attrs(
        2, 1, ((0, 0), (0, 0)), 2, 1)), {"x": (1, 3, 3)}, [param("W1", (1, 1, 2, 2))]),
    ("maxpool1d padding", pool_op("maxpool", (2,), (2,), ((1, 1),)), {"a1": (2, 3)}, []),
    ("maxpool2d overlapping windows", pool_op("maxpool", (2, 2), (1, 1), ((0, 0), (0, 0))),
     {"a1": (1, 3, 3)}, []),
    ("avgpool2d stride 2 padding 1", pool_op("avgpool", (2, 2), (2, 2), ((1, 1), (1, 1))),
     {"a1": (1, 3, 3)}, []),
    ("avgpool1d", pool_op("avgpool", (3,), (1,), ((0, 0),)), {"a1": (2, 4)}, []),
    ("global_avgpool", Op("global_avgpool", "a2", ("a1",)), {"a1": (2, 2, 3)}, []),
    # recurrent layers (issue 15): the BPTT pullback against the unrolled index form
    ("rnn tanh, T = 3 (BPTT)", rnn_op("tanh"), {"x": (3, 2)}, RNN_PARAMS),
    ("rnn relu, T = 2 (BPTT)", rnn_op("relu"), {"x": (2, 2)}, RNN_PARAMS),
    ("rnn without bias, T = 3, 3 features", rnn_op("tanh", bias=False), {"x": (3, 3)},
     [param("W1", (2, 3)), param("U1", (2, 2))]),
    ("time_last", Op("time_last", "a1", ("h1",)), {"h1": (3, 2)}, []),
    # gated cells: every saved statement's gradient through the derived backward step
    ("gru cell, T = 2 (BPTT)", cell_op("gru", units=1), {"x": (2, 1)},
     gated_params(3, units=1, feats=1)),
    ("lstm cell without bias, T = 2 (BPTT)", cell_op("lstm", bias=False, units=1), {"x": (2, 1)},
     gated_params(4, units=1, feats=1)[:2]),
    ("slice along a sequence's features", Op("slice", "h1", ("s1",), attrs=(
        ("start", 1), ("stop", 3), ("axis", 1))), {"s1": (2, 4)}, []),
    ("map per-sample scalar broadcast", Op("map", "y", ("u", "s"), (vec("u") - vec("s")) ** 2),
     {"u": (3,), "s": ()}, []),
    ("reduce mean over features", Op("reduce", "mu", ("u",), vec("u") / 3,
                                     attrs=(("over", "features"),)), {"u": (3,)}, []),
    ("reduce variance over features", Op("reduce", "v", ("u", "m"), (vec("u") - vec("m")) ** 2 / 3,
                                         attrs=(("over", "features"),)), {"u": (3,), "m": ()}, []),
]  # fmt: skip

EPS = sp.Rational(1, 1000)
# (label, forward op, tensor shapes, per-batch tensors): ops over a batch of samples
BATCH_CASES = [
    ("reduce mean over the batch", Op("reduce", "mu", ("u",), vec("u") / N,
                                      attrs=(("over", "batch"),)), {"u": (2,)}, set()),
    ("reduce variance over the batch", Op("reduce", "v", ("u", "mu"),
                                          (vec("u") - vec("mu")) ** 2 / N,
                                          attrs=(("over", "batch"),)),
     {"u": (2,), "mu": (2,)}, {"mu"}),
    ("map of a per-batch tensor", Op("map", "y", ("u", "v"), vec("u") / sp.sqrt(vec("v") + EPS)),
     {"u": (2,), "v": (2,)}, {"v"}),
    ("reduce mean over the batch and positions (channels)",
     Op("reduce", "mu", ("u",), vec("u") / (3 * N), attrs=(("over", "channels"),)),
     {"u": (3, 2)}, set()),
    ("reduce variance over channels", Op("reduce", "v", ("u", "mu"),
                                         (vec("u") - vec("mu")) ** 2 / (3 * N),
                                         attrs=(("over", "channels"),)),
     {"u": (3, 2), "mu": (2,)}, {"mu"}),
    ("map of a per-channel tensor", Op("map", "y", ("u", "v"), vec("u") / sp.sqrt(vec("v") + EPS)),
     {"u": (3, 2), "v": (2,)}, {"v"}),
    ("map of per-batch tensors only", Op("map", "y", ("v", "w"), vec("v") * vec("w"),
                                         attrs=(("batch", True),)),
     {"v": (2,), "w": (2,)}, {"v", "w"}),
]  # fmt: skip


def _index_form(op, ctx):
    return kind(op).elements(op, Names(ctx))


def _resolve(expr, defs):
    """Substitute definitions until none is left (a recurrence's index form names its own
    earlier elements: h1_2_1 reads h1_1_1)."""
    for _ in range(100):
        if not expr.free_symbols & defs.keys():
            return expr
        expr = expr.xreplace(defs)
    raise AssertionError("definitions do not terminate")


def _equal(lhs, rhs, symbols):
    """Equal as functions: the difference expands to 0, or random points agree to 25 digits: 20
    for smooth cases (e.g. BPTT's nested tanh, where SymPy's simplify is no proof in reasonable
    time), 200 when the difference is piecewise (max pooling's derivative, Heaviside of
    differences: the points, without ties almost surely, cover the orderings of each window)."""
    diff = lhs - rhs
    if sp.count_ops(diff) < 400:  # expanding a gated cell's unrolled BPTT takes hours
        diff = sp.expand(diff)
        if diff == 0:
            return True
    piecewise = diff.has(sp.Piecewise, sp.Heaviside, sp.Max)
    rng = random.Random(0)
    symbols = sorted(symbols, key=str)
    # compiled to mpmath once, as a DAG (cse: a tree walk repeats the shared parts)
    f = sp.lambdify(symbols, diff, "mpmath", cse=True)
    with mpmath.workdps(30):
        for _ in range(200 if piecewise else 20):
            if abs(f(*(mpmath.mpf(rng.uniform(-2, 2)) for _ in symbols))) > 1e-25:
                return False
    return True


@pytest.mark.parametrize("label, op, shapes, params", CASES, ids=[c[0] for c in CASES])
def test_pullback_is_the_vector_jacobian_product(label, op, shapes, params):
    pmap = {p.name: p for p in params}
    shapes = dict(shapes)
    ctx = Context(shapes, pmap)
    shapes[op.out] = kind(op).shape(op, ctx)
    names = Names(ctx)
    forward = _index_form(op, ctx)
    out_defs = {names.tensor(op.out, ix): e for ix, e in forward.items()}
    forward = {ix: _resolve(e, out_defs) for ix, e in forward.items()}
    shapes["g"] = shapes[op.out]
    rec = Recorder(ctx)
    kind(op).pullback(op, "g", rec)
    # intermediate tensors a pullback emits (BPTT's δ sequence), by their index forms
    for o in rec.grads:
        if o.args[-1] not in pmap:
            shapes[o.out] = kind(o).shape(o, ctx)
            defs = {names.tensor(o.out, ix): e for ix, e in _index_form(o, ctx).items()}
            out_defs = {**out_defs, **defs}
    checked = 0
    # contributions to every tensor input
    for u in dict.fromkeys(a for a in op.args if a and a not in pmap):
        parts = rec.contribs.get(u, [])
        assert parts, f"no contribution to {u}"
        got = defaultdict(lambda: sp.Integer(0))
        for part in parts:
            if isinstance(part, str):  # an alias: the contribution is g itself
                for ix in indices(shapes[u]):
                    got[ix] += names.tensor(part, ix)
                continue
            shapes[part.out] = kind(part).shape(part, ctx)
            for ix, e in _index_form(part, ctx).items():
                got[ix] += e
        for ix in indices(shapes[u]):
            uj = names.tensor(u, ix)
            want = sp.Add(*(names.tensor("g", i) * sp.diff(f, uj) for i, f in forward.items()))
            lhs = _resolve(got[ix], out_defs)
            assert _equal(lhs, want, lhs.free_symbols | want.free_symbols), (label, u, ix)
            checked += 1
    # gradients of every parameter (one sample's term; the op's scale is c, 1 here)
    for p in params:
        (g_op,) = [o for o in rec.grads if o.args[-1] == p.name]
        shapes[g_op.out] = kind(g_op).shape(g_op, ctx)
        assert shapes[g_op.out] == p.shape
        terms = _index_form(g_op, ctx)
        for ix in indices(p.shape):
            pj = names.param(p.name, ix)
            want = sp.Add(*(names.tensor("g", i) * sp.diff(f, pj) for i, f in forward.items()))
            lhs = _resolve(terms[ix], out_defs)
            assert _equal(lhs, want, lhs.free_symbols | want.free_symbols), (label, p.name, ix)
            checked += 1
    assert checked


class BatchNames:
    """Sample s of a batch: its own symbols for per-sample tensors (suffix _s{s}), shared ones
    for per-batch tensors and parameters."""

    def __init__(self, ctx, s, batch):
        self.ctx, self.s, self.batch = ctx, s, batch
        self.samples: tuple = ()

    def tensor(self, name, index):
        own = "" if name in self.batch else f"_s{self.s}"
        return sym(element_name(name, index) + own)

    def param(self, name, index):
        return sym(param_element_name(self.ctx.params[name], index))


SAMPLES = 3


def _batch_form(op, batch, ctx, names):
    """{symbol of an output element: its definition} over the whole batch (N = SAMPLES)."""
    per_batch = kind(op).per_batch(op)
    if per_batch:
        batch.add(op.out)
    out = {}
    for el in names[:1] if per_batch else names:
        for ix, e in kind(op).elements(op, el).items():
            out[el.tensor(op.out, ix)] = e.xreplace({N: SAMPLES})
    return out


@pytest.mark.parametrize("label, op, shapes, batch", BATCH_CASES, ids=[c[0] for c in BATCH_CASES])
def test_batch_pullback_is_the_vector_jacobian_product(label, op, shapes, batch):
    """The same proof over a batch of SAMPLES samples: a per-batch output (a batch sum) depends
    on every sample's input, and a per-batch input gets the sum of every sample's terms."""
    shapes, batch = dict(shapes), set(batch)
    ctx = Context(shapes, {}, frozenset(batch))
    shapes[op.out] = kind(op).shape(op, ctx)
    names = [BatchNames(ctx, s, batch) for s in range(SAMPLES)]
    for el in names:
        el.samples = tuple(names)
    forward = _batch_form(op, batch, ctx, names)
    shapes["g"] = shapes[op.out]
    if op.out in batch:
        batch.add("g")
    rec = Recorder(Context(shapes, {}, frozenset(batch)))
    kind(op).pullback(op, "g", rec)
    ctx = Context(shapes, {}, frozenset(batch))  # g per batch too: its elements broadcast
    for el in names:
        el.ctx = ctx
    g_of = {f: sym(f.name.replace(op.out, "g", 1)) for f in forward}
    checked = 0
    for u in dict.fromkeys(op.args):
        got: dict = defaultdict(lambda: sp.Integer(0))
        for part in rec.contribs[u]:
            assert not isinstance(part, str)
            shapes[part.out] = kind(part).shape(part, ctx)
            assert kind(part).per_batch(part) == (u in batch), (label, u)
            for name, e in _batch_form(part, batch, ctx, names).items():
                got[name.name.replace(part.out, u, 1)] += e
        targets = {el.tensor(u, ix) for el in names for ix in indices(shapes[u])}
        for uj in targets:
            want = sp.Add(*(g_of[f] * sp.diff(e, uj) for f, e in forward.items()))
            lhs = got[uj.name].xreplace(forward)
            assert _equal(lhs, want, lhs.free_symbols | want.free_symbols), (label, u, uj)
            checked += 1
    assert checked


def test_every_differentiable_kind_has_a_proof():
    proved = {op.kind for _, op, _, _ in CASES} | {op.kind for _, op, _, _ in BATCH_CASES}
    assert proved == {name for name, k in OPS.items() if k.pullback is not None}


def test_evaluator_agrees_with_the_index_form():
    """The NumPy evaluator computes what the index form says, for every case (batch of 2)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for label, op, shapes, params in CASES:
        pmap = {p.name: p for p in params}
        shapes = dict(shapes)
        ctx = Context(shapes, pmap)
        shapes[op.out] = kind(op).shape(op, ctx)
        env = {"x": rng.normal(size=(2, *shapes.get("x", (3,))))}
        env |= {n: rng.normal(size=(2, *(s or (1,)))) for n, s in shapes.items() if n != op.out}
        env |= {p.name: rng.normal(size=p.shape) for p in params}
        got = kind(op).evaluate(op, env, ctx)
        names = Names(ctx)
        for row in range(2):
            values = {names.tensor(n, ix): env[n][row].reshape(s)[ix] for n, s in shapes.items()
                      if n != op.out for ix in indices(s)}  # fmt: skip
            values |= {names.param(p.name, ix): env[p.name][ix] for p in params
                       for ix in indices(p.shape)}  # fmt: skip
            own = {names.tensor(op.out, ix): e for ix, e in _index_form(op, ctx).items()}
            for ix, e in _index_form(op, ctx).items():
                want = float(_resolve(e, own).xreplace(values))
                value = got[row].reshape(shapes[op.out])[ix]
                assert abs(value - want) <= 1e-12 * max(1, abs(want)), (label, ix)


def test_registry_is_the_only_dispatch():
    """An op kind nobody registered is an error, never silently skipped."""
    with pytest.raises(ValueError, match="no op kind 'nonesuch'"):
        ops.kind(Op("nonesuch", "y", ("x",)))
