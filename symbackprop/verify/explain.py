"""Naming the mistake in a wrong hand derivation, for ``verify``.

Each check tries one simple correction (a flipped sign, a missing or repeated chain-rule factor, a
missing path, σ' dropped inside a δ, a wrong index, a transposed weight, a constant factor) and
asks the probe whether it turns the hand formula into the truth at every probe point.
"""

from __future__ import annotations

import ast
import math
import re

import mpmath
import sympy as sp

from ..core.ir import N, Param
from ..core.scalar import Factor, element, param_element, sym
from ..printing import latex as lx
from .formula import corr_formula
from .matrix import parse_matrix
from .probe import POINTS, ScalarNet, element_indices, lift, same
from .shapes import ShapeMismatch, entries

_SYMBOLS = {"sigmoid": "σ", "custom": "f"}
_SIGN_FLIPPED = "the sign is flipped (yours is −1 × the correct value)"


def _f_prime(net: ScalarNet, z: str) -> str:
    node = net.d.graph.node(z.split("_")[0])
    name = node.activation.name if node is not None and node.activation else "identity"
    return f"{_SYMBOLS.get(name, name)}'({z})"


def _describe(net: ScalarNet, f: Factor) -> str:
    if f.num.startswith("a") and f.den.startswith("z"):
        d = _f_prime(net, f.den)
        return f"the activation derivative ∂{f.num}/∂{f.den} = {d} = {lx.text(f.expr)}"
    return f"the factor ∂{f.num}/∂{f.den} = {lx.text(f.expr)}"


def _is_grad(name: str) -> bool:
    """δ's and ∂ℓ/∂a's (delta2_1, da3_1): the names a sum over paths is made of."""
    return name.startswith("delta") or (name.startswith("d") and name[1:2] in "ahz")


def _path(net: ScalarNet, p: Param, grad: str) -> str:
    """The path a term of a sum comes by: a layer's unit, a residual's skip path, a time step
    of a recurrent layer or a position of a convolution (the same weight used at each)."""
    m = re.fullmatch(r"(?:delta|d[ahz])(\d+)((?:_\d+)*)(?:\[(\d+)\])?", grad)
    if m is None:
        return f"the path through {grad}"
    tensor, index = m.group(1), m.group(2).split("_")[1:]
    if m.group(3):  # a sequence's element, delta1_1[2]: the step first, as for other axes
        index = [m.group(3), *index]
    layer = next((n for n in net.d.nodes if n.index == int(tensor)), None)
    own = next((n for n in net.d.nodes if n.index == p.layer), None)
    if layer is not None and own is not None and layer is own and len(index) >= 2:
        if own.type in ("rnn", "gru", "lstm"):
            return f"time step {index[0]}"
        if own.type.startswith("conv"):
            return f"output position ({', '.join(index[1:])})"
    if layer is not None and layer.type == "add":
        return f"the skip path through the add layer a{layer.index}"
    return f"the path through a{tensor}_{'_'.join(index)}"


def explain_element(net: ScalarNet, el: str, hand: sp.Expr, hs: list, ts: list) -> str | None:
    """Name the first simple correction that turns the hand formula into the truth."""
    g = net.gradient(el)

    def mul(*lists: list) -> list:
        return lift(lambda *vs: math.prod(vs), *lists)

    if same(hs, lift(lambda t: -t, ts)):
        return _SIGN_FLIPPED
    fvals = [net.values(f.expr) for f in g.factors]
    for f, fv in zip(g.factors, fvals, strict=True):
        if not f.expr.is_number and same(mul(hs, fv), ts):
            return f"missing {_describe(net, f)}"
        if not f.expr.is_number and same(hs, mul(ts, fv)):
            return f"an extra factor: {_describe(net, f)} (it appears twice)"
        a = sym("a" + f.den[1:])
        if f.num == "E" and f.den[0] == "z" and same(hs, mul(ts, net.values(a * (1 - a)))):
            return (
                f"an extra factor {a}*(1 - {a}): ∂E/∂{f.den} = {lx.text(f.expr)} already "
                "includes the output activation's derivative"
            )
    p = net.elements[el][0]
    for i, f in enumerate(g.factors):  # ∂E/∂a_hidden = Σ_k w_ki δ_k: a missing path
        deltas = [sorted(s.name for s in t.free_symbols if _is_grad(s.name)) for t in f.expr.args]
        if f.num != "E" or not f.expr.is_Add or not all(deltas):
            continue
        c = sp.Rational(g.scale.xreplace({N: 1}))
        rest = mul([mpmath.mpf(c.p) / c.q] * POINTS, *(fvals[:i] + fvals[i + 1 :]))
        for term, ds in zip(f.expr.args, deltas, strict=True):
            path, tv = _path(net, p, ds[0]), mul(rest, net.values(term))
            if same(hs, tv):
                return f"only {path}, but ∂E/∂{f.den} = {lx.text(f.expr)}"
            if same(lift(lambda t, h: t - h, ts, hs), tv):
                return f"missing {path}: the term {lx.text(term)} of ∂E/∂{f.den}"
    for layer in net.d.nodes:  # σ' dropped inside every δ of one layer
        if layer.z is None:
            continue
        delta = f"delta{layer.index}"
        defs = [
            (s, sp.Mul(*(f.expr for f in net.sd.delta_factors[s.name] if f.den[0] != "z")))
            if s.name.startswith(delta + "_") and s.name in net.sd.delta_factors
            else (s, e)
            for s, e in net.defs
        ]
        if defs != net.defs:
            envs = [net.env(p, defs) for p in net.points]
            if same(hs, net.values(net.truth(el), envs)):
                z = element(layer.z, 1)[:-1] + "k"
                return f"missing the activation derivative {_f_prime(net, z)} inside {delta}_k"
    for other in sorted(net.elements, key=lambda e: net.elements[e][0] is not p):
        if other != el and other in net.grads and same(hs, net.values(net.truth(other))):
            return f"this is dE/d{other}, not dE/d{el} (wrong index)"
    for w in (p for p in net.d.params if len(p.shape) == 2):
        if w.shape[0] == w.shape[1] > 1:
            swap = {
                sym(param_element(w, ix)): sym(param_element(w, ix[::-1]))
                for ix in element_indices(w)
            }
            if hand.free_symbols & set(swap) and same(net.values(hand.xreplace(swap)), ts):
                return f"{w.name} is used where its transpose {w.name}.T belongs (indices swapped)"
    k = len(net.targets)
    for c in dict.fromkeys(map(sp.Rational, (2, sp.Rational(1, 2), k, sp.Rational(1, k)))):
        if c != 1 and same(hs, lift(lambda t, c=c: t * c.p / c.q, ts)):
            return f"off by a factor of {c} (yours is {c} × the correct value)"
    return None


def explain_matrix(
    net: ScalarNet, p: Param, els: list, hands: list, hs: list, ts: list
) -> str | None:
    """Name what is wrong with a matrix-form dE/dP: transposed, sign, else its first bad element."""
    n = p.shape[0] if p.shape else 0
    if p.shape == (n, n) and all(
        same(hs[r * n + c], ts[c * n + r]) for r in range(n) for c in range(n)
    ):
        return f"the result is transposed: it is (dE/d{p.name}).T (swap the outer product)"
    if all(same(h, lift(lambda v: -v, t)) for h, t in zip(hs, ts, strict=True)):
        return _SIGN_FLIPPED
    for el, hand, h, t in zip(els, hands, hs, ts, strict=True):
        if not same(h, t) and (why := explain_element(net, el, hand, h, t)):
            return f"in element {el}: {why}"
    return None


def explain_batch(net: ScalarNet, hs: list, ts: list) -> str | None:
    """A batch's gradient off by a constant factor of the reduction (1/N of a mean, 1/K of
    MSE's mean over the outputs) or by its sign, for every element (``hs``, ``ts``: the hand's
    and the truth's probe values per element). None: the mistake is elsewhere."""
    n, k = net.batch, len(net.targets)
    scale = sp.nsimplify(net.d.scale.xreplace({N: n}) / net.d.scale.xreplace({N: 1}))
    factors: dict[sp.Rational, str] = {}
    for c, why in (  # truth = c × yours; the first reading of a factor wins (N = K)
        (
            sp.Rational(1, n),
            f"missing the factor 1/N = 1/{n} of the mean over the batch "
            f"(yours is N = {n} × the correct value)",
        ),
        (
            sp.Integer(n),
            f"an extra factor 1/N = 1/{n}: the loss sums over the batch "
            "(reduction 'sum'), it does not average",
        ),
        (sp.Rational(1, k), f"missing the factor 1/K = 1/{k} of the mean over the {k} outputs"),
        (
            sp.Rational(1, n * k),
            f"missing the factor 1/(N K) = 1/{n * k} of the mean over the "
            f"batch and the {k} outputs",
        ),
        (sp.Integer(-1), _SIGN_FLIPPED),
    ):
        mean = "mean over the batch" in why
        if (scale == 1 and mean) or (scale != 1 and why.startswith("an extra")):
            continue  # a sum over the batch: 1/N is extra, never missing; a mean: the reverse
        factors.setdefault(c, why)
    for c, why in factors.items():
        if c != 1 and all(
            same(lift(lambda h, c=c: h * c.p / c.q, h), t) for h, t in zip(hs, ts, strict=True)
        ):
            return why
    return None


def conv_mistake(net: ScalarNet, p: Param, text: str, names, mats, notation) -> str | None:
    """A conv kernel's gradient written with ``conv`` (δ flipped) for a cross-correlation
    layer, or with the wrong stride, padding, dilation or groups: the rewrite that makes it
    right, named. None when neither is the mistake."""
    op = net.d.gradients[p.name]
    right = ast.parse(corr_formula(op)[0], mode="eval").body
    tree = ast.parse(text, mode="eval")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name) and n.func.id in ("corr", "conv")]  # fmt: skip
    if not calls:
        return None
    flipped = any(c.func.id == "conv" for c in calls)
    geometry = any(ast.dump(ast.Tuple(c.keywords)) != ast.dump(ast.Tuple(right.keywords))
                   for c in calls)  # fmt: skip
    for c in calls:
        c.func.id, c.keywords = "corr", right.keywords
    truths = [net.values(net.truth(param_element(p, ix))) for ix in element_indices(p)]
    try:
        fixed = parse_matrix(ast.unparse(tree), names, mats, "--expr", notation, p.shape[2:])
    except (ShapeMismatch, ValueError):
        return None
    if not all(same(net.values(h), t) for h, t in zip(entries(fixed), truths, strict=True)):
        return None
    want = ast.unparse(right)
    if flipped and not geometry:
        return (f"conv flips δ (a true convolution), but the layer is a cross-correlation, as "
                f"PyTorch's: its kernel gradient is {want}")  # fmt: skip
    return f"the layer's stride, padding, dilation or groups differ from yours: {want}"
