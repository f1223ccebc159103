"""``symbackprop verify``: prove or refute a hand derivation of dE/dNAME for one sample (N = 1).

The truth is the Derivation's scalar instantiation (each element's gradient as a product of named
chain-rule factors). A hand formula is decided two ways: a randomized probe at many random points
of *all* free symbols (weights, biases, inputs, targets) in 40-digit mpmath arithmetic, and SymPy
simplification of the difference (guarded by size and time). When they differ, a counterexample,
the correct formula and, where one can be named, the missing factor or term are reported.
"""

from __future__ import annotations

import math
import random
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mpmath
import sympy as sp
from sympy.polys.polyerrors import BasePolynomialError as PolynomialError

from . import latex as lx
from .chain_rule import Derivation, N, Param, derive
from .errors import SpecError, did_you_mean
from .expressions import parse_expression
from .latex_input import ShapeMismatch, latex_to_expr, parse_matrix, shape_of, shape_text
from .scalar import Factor, Gradient, element, param_element, sym
from .spec import Spec, load_spec, parse_spec

POINTS = 30  # random probe points
DIGITS = 40  # mpmath working precision
RTOL = "1e-20"  # relative tolerance of the probe
SYMBOLIC_SECONDS = 3.0  # time budget of the SymPy proof (the probe decides when it runs out)
MAX_NODES = 3000  # larger expanded differences are left to the probe (10x: not even expanded)
MAX_PARAMS = 5000  # verification is element by element: for small and medium nets
_SYMBOLS = {"sigmoid": "σ", "custom": "f"}


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on a hand derivation of dE/d``wrt``; ``bool(result)`` is ``equivalent``.

    In matrix form ``hand_value``/``true_value`` are nested lists in the parameter's shape and
    ``element`` names the first element that differs.
    """

    wrt: str
    expr: str
    equivalent: bool
    method: str
    correct_formula: str
    correct_formula_latex: str
    counterexample: dict[str, float] | None = None
    hand_value: float | list | None = None
    true_value: float | list | None = None
    explanation: str | None = None
    hand_shape: tuple[int, ...] | None = None
    true_shape: tuple[int, ...] | None = None
    element: str | None = None

    def __bool__(self) -> bool:
        return self.equivalent

    def text(self) -> str:
        """The CLI report: ``equivalent`` or ``not equivalent`` first, then the details."""
        out = ["equivalent" if self.equivalent else "not equivalent", f"  method: {self.method}"]
        if self.counterexample is not None:
            out.append(
                "  at " + ", ".join(f"{k} = {v:.6g}" for k, v in self.counterexample.items())
            )
            out.append(f"  yours:   dE/d{self.wrt} = {_num(self.hand_value)}")
            out.append(f"  correct: dE/d{self.wrt} = {_num(self.true_value)}")
        if self.explanation:
            out.append(f"  explanation: {self.explanation}")
        if not self.equivalent:
            out.append("  correct formula (one sample, N = 1):")
            out.extend(f"    {line}" for line in self.correct_formula.splitlines())
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        out = [
            f"**{'equivalent' if self else 'not equivalent'}**: dE/d`{self.wrt}` ({self.method})"
        ]
        if self.counterexample is not None:
            point = ", ".join(f"`{k}` = {v:.6g}" for k, v in self.counterexample.items())
            out.append(
                f"At {point}: yours {_num(self.hand_value)}, correct {_num(self.true_value)}"
            )
        if self.explanation:
            out.append(f"*Explanation:* {self.explanation}")
        if not self.equivalent:
            out.append(f"Correct formula (one sample):\n\n$$\n{self.correct_formula_latex}\n$$")
        return "\n\n".join(out)


def _num(v: object) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(map(_num, v)) + "]"
    return "undefined" if v is None else f"{v:.12g}"


def _indices(p: Param) -> list[tuple[int, ...]]:
    if p.kind == "shared":
        return [()]
    if p.role == "bias":
        return [(i,) for i in range(p.shape[0])]
    return [(i, j) for i in range(p.shape[0]) for j in range(p.shape[1])]


def _lift(fn, *lists: list) -> list:
    """``fn`` pointwise over probe value lists (None where any input is undefined)."""
    return [None if None in vs else fn(*vs) for vs in zip(*lists, strict=True)]


def _same(hs: list, ts: list) -> bool:
    """Equal at every probe point to RTOL (both undefined counts as equal)."""
    tol, floor = mpmath.mpf(RTOL), mpmath.mpf("1e-35")
    return all(
        (h is None and t is None)
        or (h is not None and t is not None and abs(h - t) <= tol * max(abs(h), abs(t)) + floor)
        for h, t in zip(hs, ts, strict=True)
    )


class _Net:
    """The scalar instantiation of a net, its random probe points and mpmath evaluation."""

    def __init__(self, d: Derivation, seed: int = 0):
        self.d, self.sd = d, d.scalar()
        self.defs = [(sym(n), e) for n, e in self.sd.definitions]
        self.elements = {param_element(p, ix): (p, ix) for p in d.params for ix in _indices(p)}
        self.inputs = [sym(f"x{j}") for j in range(1, d.spec.inputs + 1)]
        self.targets = [sym(f"t{k}") for k in range(1, d.layers[-1].units + 1)]
        self.raw = [sym(n) for n in self.elements] + self.inputs + self.targets
        self.names = {s.name: s for s in self.raw} | {s.name: s for s, _ in self.defs}
        self.grads = {g.element: g for g in self.sd.gradients}
        self._fns: dict[sp.Expr, tuple] = {}
        self._defined, self._full, self._sizes = dict(self.defs), {}, {}
        for s, e in self.defs:
            self._sizes[s] = self.size(e)
        self.names["N"] = sp.Integer(1)  # one sample
        rng, self.points, self.envs, spare = random.Random(seed), [], [], []
        for _ in range(10 * POINTS):
            point = {s: mpmath.mpf(round(rng.uniform(-2, 2), 4)) for s in self.raw}
            ts = [mpmath.mpf(round(rng.uniform(0.05, 0.95), 4)) for _ in self.targets]
            if d.loss.name == "cross_entropy":  # class probabilities sum to 1
                ts = [t / mpmath.fsum(ts) for t in ts]
            point.update(zip(self.targets, ts, strict=True))
            env = self.env(point, self.defs)
            good = all(v is not None for v in env.values()) and all(
                abs(env[s]) > 1e-9 for s, _ in self.defs if s.name[0] == "z"
            )  # defined everywhere and away from kinks (relu at z = 0)
            (self.points if good else spare).append(point)
            if len(self.points) == POINTS:
                break
        self.points = (self.points + spare)[:POINTS]
        self.envs = [self.env(point, self.defs) for point in self.points]

    def env(self, point: dict, defs: list) -> dict:
        env = dict(point)
        for s, expr in defs:
            env[s] = self.call(expr, env)
        return env

    def call(self, expr: sp.Expr, env: dict) -> mpmath.mpf | None:
        """``expr`` at one point, None where undefined (log of a negative number, 1/0, ...)."""
        if expr not in self._fns:
            args = sorted(expr.free_symbols, key=lambda s: s.name)
            self._fns[expr] = (sp.lambdify(args, expr, "mpmath"), args)
        fn, args = self._fns[expr]
        vals = [env.get(a) for a in args]
        try:
            v = None if None in vals else mpmath.mpmathify(fn(*vals))
        except (ArithmeticError, ValueError, TypeError):
            return None
        if isinstance(v, mpmath.mpc):
            v = v.real if abs(v.imag) <= abs(v) * mpmath.mpf(RTOL) else None
        return v if v is not None and mpmath.isfinite(v) else None

    def values(self, expr: sp.Expr, envs: list | None = None) -> list:
        return [self.call(sp.sympify(expr), env) for env in envs or self.envs]

    def size(self, expr: sp.Expr) -> int:
        """Tree size of ``expr`` once expanded, computed without expanding it."""
        return sum(self._sizes.get(n, 1) for n in sp.preorder_traversal(expr))

    def expand(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` in raw symbols only (weights, biases, inputs, targets); memoized."""
        for s in expr.free_symbols & self._defined.keys() - self._full.keys():
            self._full[s] = self.expand(self._defined[s])
        return expr.xreplace({s: self._full[s] for s in expr.free_symbols if s in self._full})

    def gradient(self, el: str) -> Gradient:
        """The element's Gradient; for a frozen parameter, the same chain rule from its δ."""
        if el in self.grads:
            return self.grads[el]
        p, ix = self.elements[el]
        layer = self.d.layers[p.layer - 1]
        units = range(1, layer.units + 1) if p.kind == "shared" else [ix[0] + 1]
        deltas = [element(layer.delta, i) for i in units]
        if any(dn not in self.sd.delta_factors for dn in deltas):
            raise SpecError("--wrt", f"{p.name} is frozen and no gradient reaches layer {p.layer}")
        if p.kind == "shared":
            fs = (Factor("E", el, sp.Add(*map(sym, deltas))),)
        else:
            inp = f"x{ix[-1] + 1}" if layer.inp == "x" else element(layer.inp, ix[-1] + 1)
            last = sym(inp) if p.role == "weight" else sp.Integer(1)
            fs = self.sd.delta_factors[deltas[0]] + (Factor(element(layer.z, ix[0] + 1), el, last),)
        return Gradient(p.name, el, ix, fs, self.d.scale)

    def truth(self, el: str) -> sp.Expr:
        return self.gradient(el).expr.xreplace({N: 1})

    def matrices(self) -> dict[str, sp.Expr | sp.Matrix]:
        """Column vectors x, t, z1, a1, delta1, da1, p and parameters W1, b1 in scalar symbols."""
        out: dict = {"x": sp.Matrix(self.inputs), "t": sp.Matrix(self.targets)}
        for layer in self.d.layers:
            for v in (layer.z, layer.a, layer.delta, f"d{layer.a}"):
                if element(v, 1) in self.names:
                    out[v] = sp.Matrix([sym(element(v, i)) for i in range(1, layer.units + 1)])
        if "p1" in self.names:
            out["p"] = sp.Matrix([sym(f"p{k}") for k in range(1, len(self.targets) + 1)])
        for p in self.d.params:
            els = [sym(param_element(p, ix)) for ix in _indices(p)]
            out[p.name] = (
                els[0] if p.kind == "shared" else sp.Matrix(p.shape[0], len(els) // p.shape[0], els)
            )
        return out


class _Timeout(Exception):
    pass


@contextmanager
def _deadline(seconds: float):
    """SIGALRM after ``seconds`` (main thread, when nobody else uses it); yields whether set."""
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )
    if not usable:
        yield False
        return

    def alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _opaque(expr: sp.Expr, table: dict) -> sp.Expr:
    """Every function application and non-integer power as a fresh symbol (bottom-up): if the
    resulting rational function cancels to 0, the original difference is 0 too."""
    if expr.is_Atom:
        return expr
    args = [_opaque(a, table) for a in expr.args]
    if isinstance(expr, sp.core.function.Application) or (expr.is_Pow and not expr.exp.is_Integer):
        return table.setdefault(expr.func(*args), sp.Dummy())
    return expr.func(*args)


def _proved(net: _Net, pairs: list[tuple[sp.Expr, sp.Expr]]) -> bool:
    """SymPy proof that every hand - truth is 0 (False when it gets none within size and time)."""
    try:
        with _deadline(SYMBOLIC_SECONDS) as timed:
            for hand, truth in pairs:
                if net.size(hand) + net.size(truth) > 10 * MAX_NODES:
                    return False
                diff = net.expand(hand) - net.expand(truth)
                if diff == 0:
                    continue
                if any(i > MAX_NODES for i, _ in enumerate(sp.preorder_traversal(diff))):
                    return False
                if sp.cancel(_opaque(diff, {})) != 0 and not (timed and sp.simplify(diff) == 0):
                    return False
            return True
    except (_Timeout, ArithmeticError, ValueError, TypeError, RecursionError, PolynomialError):
        return False


def _f_prime(net: _Net, z: str) -> str:
    name = net.d.layers[int(z[1:].split("_")[0]) - 1].activation.name
    return f"{_SYMBOLS.get(name, name)}'({z})"


def _describe(net: _Net, f: Factor) -> str:
    if f.num.startswith("a") and f.den.startswith("z"):
        d = _f_prime(net, f.den)
        return f"the activation derivative ∂{f.num}/∂{f.den} = {d} = {lx.text(f.expr)}"
    return f"the factor ∂{f.num}/∂{f.den} = {lx.text(f.expr)}"


def _explain(net: _Net, el: str, hand: sp.Expr, hs: list, ts: list) -> str | None:
    """Name the first simple correction that turns the hand formula into the truth."""
    g = net.gradient(el)

    def mul(*lists: list) -> list:
        return _lift(lambda *vs: math.prod(vs), *lists)

    if _same(hs, _lift(lambda t: -t, ts)):
        return "the sign is flipped (yours is −1 × the correct value)"
    fvals = [net.values(f.expr) for f in g.factors]
    for f, fv in zip(g.factors, fvals, strict=True):
        if not f.expr.is_number and _same(mul(hs, fv), ts):
            return f"missing {_describe(net, f)}"
        if not f.expr.is_number and _same(hs, mul(ts, fv)):
            return f"an extra factor: {_describe(net, f)} (it appears twice)"
        a = sym("a" + f.den[1:])
        if f.num == "E" and f.den[0] == "z" and _same(hs, mul(ts, net.values(a * (1 - a)))):
            return (
                f"an extra factor {a}*(1 - {a}): ∂E/∂{f.den} = {lx.text(f.expr)} already "
                "includes the output activation's derivative"
            )
    for i, f in enumerate(g.factors):  # ∂E/∂a_hidden = Σ_k w_ki δ_k: a missing path
        deltas = [
            [s.name for s in t.free_symbols if s.name.startswith("delta")] for t in f.expr.args
        ]
        if f.num != "E" or not f.expr.is_Add or not all(deltas):
            continue
        c = sp.Rational(g.scale.xreplace({N: 1}))
        rest = mul([mpmath.mpf(c.p) / c.q] * POINTS, *(fvals[:i] + fvals[i + 1 :]))
        for term, ds in zip(f.expr.args, deltas, strict=True):
            path, tv = ds[0].replace("delta", "a"), mul(rest, net.values(term))
            if _same(hs, tv):
                return f"only the path through {path}, but ∂E/∂{f.den} = {lx.text(f.expr)}"
            if _same(_lift(lambda t, h: t - h, ts, hs), tv):
                return f"missing the path through {path}: the term {lx.text(term)} of ∂E/∂{f.den}"
    for layer in net.d.layers:  # σ' dropped inside every δ of one layer
        defs = [
            (s, sp.Mul(*(f.expr for f in net.sd.delta_factors[s.name] if f.den[0] != "z")))
            if s.name.startswith(layer.delta + "_") and s.name in net.sd.delta_factors
            else (s, e)
            for s, e in net.defs
        ]
        if defs != net.defs:
            envs = [net.env(p, defs) for p in net.points]
            if _same(hs, net.values(net.truth(el), envs)):
                z = element(layer.z, 1)[:-1] + "k"
                return (
                    f"missing the activation derivative {_f_prime(net, z)} inside {layer.delta}_k"
                )
    p = net.elements[el][0]
    for other in sorted(net.elements, key=lambda e: net.elements[e][0] is not p):
        if other != el and other in net.grads and _same(hs, net.values(net.truth(other))):
            return f"this is dE/d{other}, not dE/d{el} (wrong index)"
    for w in (layer.weight for layer in net.d.layers):
        if w.shape[0] == w.shape[1] > 1:
            swap = {
                sym(param_element(w, ix)): sym(param_element(w, ix[::-1])) for ix in _indices(w)
            }
            if hand.free_symbols & set(swap) and _same(net.values(hand.xreplace(swap)), ts):
                return f"{w.name} is used where its transpose {w.name}.T belongs (indices swapped)"
    k = len(net.targets)
    for c in dict.fromkeys(map(sp.Rational, (2, sp.Rational(1, 2), k, sp.Rational(1, k)))):
        if c != 1 and _same(hs, _lift(lambda t, c=c: t * c.p / c.q, ts)):
            return f"off by a factor of {c} (yours is {c} × the correct value)"
    return None


def _explain_matrix(net: _Net, p: Param, els: list, hands: list, hs: list, ts: list) -> str | None:
    n = p.shape[0] if p.shape else 0
    if p.shape == (n, n) and all(
        _same(hs[r * n + c], ts[c * n + r]) for r in range(n) for c in range(n)
    ):
        return f"the result is transposed: it is (dE/d{p.name}).T (swap the outer product)"
    if all(_same(h, _lift(lambda v: -v, t)) for h, t in zip(hs, ts, strict=True)):
        return "the sign is flipped (yours is −1 × the correct value)"
    for el, hand, h, t in zip(els, hands, hs, ts, strict=True):
        if not _same(h, t) and (why := _explain(net, el, hand, h, t)):
            return f"in element {el}: {why}"
    return None


def _scalar_formula(net: _Net, el: str) -> tuple[str, str]:
    """dE/d(element) as its chain-rule product, with each δ it uses, in text and LaTeX."""
    g = net.gradient(el)

    def product(fs: tuple[Factor, ...], tex: bool, scale: sp.Expr) -> str:
        show = (lambda e: lx.latex(e)) if tex else lx.text
        parts = [show(scale)] if scale != 1 else []
        parts += [f"({show(f.expr)})" if f.expr.is_Add else show(f.expr) for f in fs if f.expr != 1]
        return (r" \cdot " if tex else " * ").join(parts) or "1"

    c = g.scale.xreplace({N: 1})
    txt = [f"dE/d{g.element} = {product(g.factors, False, c)}"]
    tex = [f"{lx.latex_name('dE_' + g.element)} = {product(g.factors, True, c)}"]
    used, todo = set(), {s.name for f in g.factors for s in f.expr.free_symbols}
    while todo:
        name = todo.pop()
        used.add(name)
        todo |= {s.name for f in net.sd.delta_factors.get(name, ()) for s in f.expr.free_symbols}
        todo -= used
    for name, _ in net.sd.definitions:
        if name in used and name in net.sd.delta_factors:
            fs, one = net.sd.delta_factors[name], sp.Integer(1)
            txt.append(f"{name} = {product(fs, False, one)}")
            tex.append(f"{lx.latex_name(name)} = {product(fs, True, one)}")
    return "\n".join(txt), r",\quad ".join(tex)


def _matrix_formula(net: _Net, p: Param) -> tuple[str, str]:
    """dE/dP in column-vector notation with the backward recurrences it needs."""
    layer, name, c = net.d.layers[p.layer - 1], lx.latex_name, net.d.scale.xreplace({N: 1})
    dl, inp = layer.delta, layer.inp
    if p.role == "weight":
        txt, tex = f"{dl} @ {inp}.T", rf"{name(dl)} \left({name(inp)}\right)^T"
    else:
        shared = p.kind == "shared"
        txt, tex = (f"sum({dl})", rf"\sum_i {name(dl)}_i") if shared else (dl, name(dl))
    txts = [f"dE/d{p.name} = " + ("" if c == 1 else f"{lx.text(c)} * ") + txt]
    texs = [f"{name('d' + p.name)} = " + ("" if c == 1 else lx.latex(c) + " ") + tex]
    for op in net.d.backward:
        o, a = op.out, op.args
        if op.kind == "map":
            txts.append(f"{o} = {lx.text(op.expr)}")
            texs.append(f"{name(o)} = {lx.latex(op.expr, hadamard=True)}")
        elif op.kind == "matvec_t":
            txts.append(f"{o} = {a[0]}.T @ {a[1]}")
            texs.append(f"{name(o)} = ({name(a[0])})^T {name(a[1])}")
        elif op.kind == "softmax_backward":
            txts.append(f"{o} = {a[0]} * ({a[1]} - {a[0]}.T @ {a[1]})")
            texs.append(
                rf"{name(o)} = {name(a[0])} \odot ({name(a[1])} - {name(a[0])}^T {name(a[1])})"
            )
        if o == dl:
            break
    return "\n".join(txts), r",\quad ".join(texs)


def verify(
    spec: Spec | Derivation | str | Path | dict, wrt: str, expr: str, latex: bool = False
) -> VerifyResult:
    """Check a hand derivation ``expr`` of dE/d``wrt`` for one sample.

    Args:
        spec: a Spec, a Derivation, a path to a spec file, or parsed spec data.
        wrt: a parameter element (``w2_11``: scalar form) or a whole parameter (``W2``: matrix
            form, column vectors for one sample with ``@``, ``.T`` and elementwise ``*``).
        expr: the hand formula in CONTRACT §2 names, or LaTeX when ``latex``.

    Raises:
        SpecError: bad input (unknown names or parameter, syntax, anything outside the grammar).
    """
    spec = load_spec(spec) if isinstance(spec, (str, Path)) else spec
    spec = parse_spec(spec) if isinstance(spec, dict) else spec
    d = spec if isinstance(spec, Derivation) else derive(spec)
    if d.num_params > MAX_PARAMS:
        raise SpecError("layers", f"verify works element by element, for nets of at most "
                        f"{MAX_PARAMS} parameters; this one has {d.num_params}")  # fmt: skip
    with mpmath.workdps(DIGITS):
        net = _Net(d)
        params = {p.name: p for p in net.d.params}
        name = wrt.strip() if isinstance(wrt, str) else str(wrt)[:100]
        if name not in params and name not in net.elements:
            what = "not a parameter" if name in net.names else "unknown parameter"
            hint = "" if name in net.names else did_you_mean(name, [*params, *net.elements])
            example = next(iter(net.elements))
            raise SpecError(
                "--wrt",
                f"{what} '{name}'{hint}; the net has {', '.join(params)} "
                f"(or their elements, such as {example})",
            )
        if not isinstance(expr, str):
            raise SpecError("--expr", f"expected an expression string, got {type(expr).__name__}")
        text = latex_to_expr(expr, name in params, "--expr") if latex else expr
        if name not in params:
            hand = parse_expression(text, net.names, "--expr")
            return _decide(net, name, expr, [name], [hand], (), _scalar_formula(net, name))
        p = params[name]
        els, formula = [param_element(p, ix) for ix in _indices(p)], _matrix_formula(net, p)
        for el in els:
            net.gradient(el)  # a frozen parameter that no gradient reaches: SpecError
        try:
            hand = parse_matrix(text, net.names, net.matrices(), "--expr")
        except ShapeMismatch as exc:
            why, shape = f"shape mismatch {exc}", None
        else:
            shape = shape_of(hand)
            if shape in (p.shape, (*p.shape, 1)) or math.prod(shape) == math.prod(p.shape) == 1:
                return _decide(
                    net, name, expr, els, list(hand) if shape else [hand], p.shape, formula
                )
            why = (
                f"shape mismatch: yours is {shape_text(shape)}, dE/d{name} is {shape_text(p.shape)}"
            )
            if len(shape) == 2 and shape[::-1] in (p.shape, (*p.shape, 1)):
                why += " (it is transposed)"
        return VerifyResult(
            name,
            expr,
            False,
            "shape check",
            *formula,
            explanation=why,
            hand_shape=shape,
            true_shape=p.shape,
        )


def _decide(
    net: _Net, wrt: str, expr: str, els: list, hands: list, shape: tuple, formula
) -> VerifyResult:
    """The probe's verdict (elements row-major), upgraded to a proof by SymPy when it can."""
    truths = [net.truth(el) for el in els]
    hs, ts = [net.values(h) for h in hands], [net.values(t) for t in truths]
    bad = [[i for i in range(len(els)) if not _same([hs[i][k]], [ts[i][k]])] for k in range(POINTS)]
    if not any(bad):
        proved = _proved(net, list(zip(hands, truths, strict=True)))
        how = "proved by SymPy; agrees" if proved else "random probe: agrees to 20 digits"
        method = f"{how} at {POINTS} random points of all free symbols"
        return VerifyResult(wrt, expr, True, method, *formula, hand_shape=shape, true_shape=shape)
    small = [
        (h, t) for h, t in zip(hands, truths, strict=True) if net.size(h) + net.size(t) < MAX_NODES
    ]
    assert len(small) < len(hands) or any(net.expand(h) != net.expand(t) for h, t in small)
    k = next(k for k in range(POINTS) if bad[k])

    def at_k(vals: list) -> float | list:
        flat = [None if v[k] is None else float(v[k]) for v in vals]
        if len(shape) == 2:
            return [flat[r * shape[1] : (r + 1) * shape[1]] for r in range(shape[0])]
        return flat if shape else flat[0]

    if shape:
        why = _explain_matrix(net, net.elements[els[0]][0], els, hands, hs, ts)
    else:
        why = _explain(net, els[0], hands[0], hs[0], ts[0])
    return VerifyResult(
        wrt, expr, False, "random probe: differs at a random point of all free symbols", *formula,
        counterexample={s.name: float(net.envs[k][s]) for s in net.raw},
        hand_value=at_k(hs), true_value=at_k(ts), explanation=why, hand_shape=shape,
        true_shape=shape, element=els[bad[k][0]] if shape else None,
    )  # fmt: skip


def add_parser(subparsers):
    """Register ``verify SPEC --wrt NAME --expr EXPR [--latex]`` on an argparse subparsers."""
    v = subparsers.add_parser(
        "verify",
        help="check a hand derivation of dE/dNAME (exit 0 equivalent, 1 not)",
        description="Check a hand derivation of dE/dNAME for one sample. Write --expr=EXPR "
        "when EXPR starts with '-'.",
    )
    v.add_argument("spec", help="network spec (YAML or JSON)")
    v.add_argument("--wrt", required=True, metavar="NAME", help="w2_11 (scalar) or W2 (matrix)")
    v.add_argument("--expr", required=True, metavar="EXPR", help="e.g. delta2_1*a1_1")
    v.add_argument("--latex", action="store_true", help="EXPR is LaTeX")
    return v


def run(args) -> int:
    """The ``verify`` command: print the verdict; 0 equivalent, 1 not (SpecError -> exit 2)."""
    spec = load_spec(args.spec)
    try:
        result = verify(spec, args.wrt, args.expr, latex=args.latex)
    except SpecError as exc:
        raise exc.with_file(str(args.spec)) from None
    print(result.text())
    return 0 if result.equivalent else 1
