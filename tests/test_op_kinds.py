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

import pytest
import sympy as sp

from symbackprop.core import ops
from symbackprop.core.activations import derive_activation, make, stabilize
from symbackprop.core.ir import Init, Op, Param, element_name, param_element_name, vec
from symbackprop.core.ops import OPS, Context, indices, kind
from symbackprop.core.symbols import A, X


def sym(name):
    return sp.Symbol(name, real=True)


class Names:
    def __init__(self, ctx):
        self.ctx = ctx

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


def rnn_op(nonlinearity, bias=True, out="h1", truncate=0):
    from symbackprop.core.layers.recurrent import step_functions

    f, df = step_functions(nonlinearity)
    attrs = (("act", nonlinearity), ("f", f), ("df", df), ("delta", "delta1"),
             ("truncate", truncate))  # fmt: skip
    b = ("b1", "br1") if bias else ("", "")
    return Op("rnn", out, ("W1", "U1", *b, "x"), attrs=attrs)


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
    ("rnn tanh, T = 3 (BPTT)", rnn_op("tanh"), {"x": (3, 2)}, RNN_PARAMS),
    ("rnn relu, T = 2 (BPTT)", rnn_op("relu"), {"x": (2, 2)}, RNN_PARAMS),
    ("rnn without bias, T = 3, 3 features", rnn_op("tanh", bias=False), {"x": (3, 3)},
     [param("W1", (2, 3)), param("U1", (2, 2))]),
    ("time_last", Op("time_last", "a1", ("h1",)), {"h1": (3, 2)}, []),
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
    """Equal as functions: the difference expands to 0, or 20 random points agree to 25 digits
    (for the transcendental cases, e.g. BPTT's nested tanh, where SymPy's simplify is no proof
    in reasonable time). Points first, so a wrong pullback fails fast."""
    diff = sp.expand(lhs - rhs)
    if diff == 0:
        return True
    rng = random.Random(0)
    for _ in range(20):
        point = {s: sp.Float(rng.uniform(-2, 2), 30) for s in symbols}
        if abs(sp.N(diff.xreplace(point), 30)) > 1e-25:
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


def test_every_differentiable_kind_has_a_proof():
    proved = {op.kind for _, op, _, _ in CASES}
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
        env |= {n: rng.normal(size=(2, *s)) for n, s in shapes.items() if n != op.out}
        env |= {p.name: rng.normal(size=p.shape) for p in params}
        got = kind(op).evaluate(op, env, ctx)
        names = Names(ctx)
        for row in range(2):
            values = {names.tensor(n, ix): env[n][row][ix] for n, s in shapes.items()
                      if n != op.out for ix in indices(s)}  # fmt: skip
            values |= {names.param(p.name, ix): env[p.name][ix] for p in params
                       for ix in indices(p.shape)}  # fmt: skip
            own = {names.tensor(op.out, ix): e for ix, e in _index_form(op, ctx).items()}
            for ix, e in _index_form(op, ctx).items():
                want = float(_resolve(e, own).xreplace(values))
                assert abs(got[row][ix] - want) <= 1e-12 * max(1, abs(want)), (label, ix)


def test_registry_is_the_only_dispatch():
    """An op kind nobody registered is an error, never silently skipped."""
    with pytest.raises(ValueError, match="no op kind 'nonesuch'"):
        ops.kind(Op("nonesuch", "y", ("x",)))
