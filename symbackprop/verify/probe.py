"""The two deciders of ``verify``: a random mpmath probe and a SymPy proof under a deadline.

``ScalarNet`` is the Derivation's scalar instantiation with its random probe points: every free
symbol (weights, biases, inputs, targets) drawn at random, every definition evaluated in mpmath
at ``DIGITS`` digits (the caller sets the precision). ``proved`` tries to show a hand formula
minus the truth is 0 with SymPy, within a size bound and a time budget; when it cannot, the
probe decides alone.
"""

from __future__ import annotations

import random
import signal
import threading
from contextlib import contextmanager

import mpmath
import sympy as sp
from sympy.polys.polyerrors import BasePolynomialError as PolynomialError

from ..core.derivation import Derivation
from ..core.ir import N, Param, element_name, step_first
from ..core.ops import indices
from ..core.scalar import Gradient, instantiate, param_element, scalar_name, sequences, sym
from ..core.symbols import as_expr

POINTS = 30  # random probe points
DIGITS = 40  # mpmath working precision
RTOL = "1e-20"  # relative tolerance of the probe
SYMBOLIC_SECONDS = 3.0  # time budget of the SymPy proof (the probe decides when it runs out)


def element_indices(p: Param) -> list[tuple[int, ...]]:
    """0-based indices of every element of ``p``, row-major (``()`` for a shared bias)."""
    return list(indices(p.shape))


def lift(fn, *lists: list) -> list:
    """``fn`` pointwise over probe value lists (None where any input is undefined)."""
    return [None if None in vs else fn(*vs) for vs in zip(*lists, strict=True)]


def same(hs: list, ts: list) -> bool:
    """Equal at every probe point to RTOL (both undefined counts as equal)."""
    tol, floor = mpmath.mpf(RTOL), mpmath.mpf("1e-35")
    return all(
        (h is None and t is None)
        or (h is not None and t is not None and abs(h - t) <= tol * max(abs(h), abs(t)) + floor)
        for h, t in zip(hs, ts, strict=True)
    )


class ScalarNet:
    """The scalar instantiation of a net, its random probe points and mpmath evaluation."""

    def __init__(self, d: Derivation, seed: int = 0, batch: int = 1):
        self.d, self.sd, self.batch = d, instantiate(d), batch
        self.seqs = sequences(d)  # tensors with a time axis: h1_1[2] is unit 1 at step 2
        one = [(sym(n), e) for n, e in self.sd.definitions]
        self.elements = {
            param_element(p, ix): (p, ix) for p in d.params for ix in element_indices(p)
        }
        # x1, x2, ... for a vector; x1_2_3 for a map's element [0, 1, 2] (as scalar mode)
        self.inputs = [sym(scalar_name(self.seqs, "x", ix)) for ix in indices(d.shapes["x"])]
        self.targets = [sym(scalar_name(self.seqs, "t", ix)) for ix in indices(d.shapes["t"])]
        params = [sym(n) for n in self.elements]
        # a batch: every sample's own copy of the inputs, targets and definitions (x1[2] is
        # sample 2's x1); the one-sample names stand for sample n inside sum_n(...)
        per_sample = self.inputs + self.targets + [s for s, _ in one]
        self.samples = [{s: sym(f"{s.name}[{n}]") for s in per_sample} for n in range(1, batch + 1)]
        self.sample_symbols = frozenset(per_sample) if batch > 1 else frozenset()
        if batch == 1:
            self.defs = one
            self.raw = params + self.inputs + self.targets
        else:
            self.defs = [(r[s], e.xreplace(r)) for r in self.samples for s, e in one]
            self.raw = params + [r[s] for r in self.samples for s in self.inputs + self.targets]
        self.names = {s.name: s for s in params + self.inputs + self.targets}
        self.names |= {s.name: s for s, _ in one}
        # a sequence's element h1_1[2] is read as the identifier h1_2_1 (the step first, the
        # spelling scalar mode printed before CONTRACT §6's; verify.steps rewrites the new one)
        self.names |= {step_first(n): s for n, s in list(self.names.items()) if "[" in n}
        self.grads = {g.element: g for g in self.sd.gradients}
        defined = {n for n, _ in self.sd.definitions}  # dx_j when d has the input's gradient
        # dx's element of input x: by x's own index (a sequence's dx_1[2]), else flat (dx_5)
        self.input_grads = {}
        for j, (x, ix) in enumerate(zip(self.inputs, indices(d.shapes["x"]), strict=True)):
            for g in (scalar_name(self.seqs, "dx", ix), element_name("dx", (j,))):
                if g in defined:
                    self.input_grads[x.name] = sym(g)
                    break
        # a recurrent net's number of steps T: its sequences are indexed (h1[t-1]) in formulas
        recurrent = any(o.kind in ("rnn", "cell") for o in d.forward)
        self.steps = d.shapes["x"][0] if recurrent else None
        self._fns: dict[sp.Expr, tuple] = {}
        self._defined, self._full, self._sizes = dict(self.defs), {}, {}
        for s, e in self.defs:
            self._sizes[s] = self.size(e)
        self.names["N"] = sp.Integer(batch)
        targets = (
            [[r[t] for t in self.targets] for r in self.samples] if batch > 1 else [self.targets]
        )
        rng, self.points, self.envs, spare = random.Random(seed), [], [], []
        for _ in range(10 * POINTS):
            point = {s: mpmath.mpf(round(rng.uniform(-2, 2), 4)) for s in self.raw}
            for sample in targets:
                ts = [mpmath.mpf(round(rng.uniform(0.05, 0.95), 4)) for _ in sample]
                if d.loss.name == "cross_entropy":  # class probabilities sum to 1
                    ts = [t / mpmath.fsum(ts) for t in ts]
                point.update(zip(sample, ts, strict=True))
            env = self.env(point, self.defs)
            good = all(v is not None for v in env.values()) and all(
                abs(env[s]) > 1e-9 for s, _ in self.defs if s.name[0] == "z"
            )  # defined everywhere and away from kinks (relu at z = 0)
            (self.points if good else spare).append(point)
            if len(self.points) == POINTS:
                break
        self.points = (self.points + spare)[:POINTS]
        self.envs = [self.env(point, self.defs) for point in self.points]

    def sum_n(self, u: sp.Expr) -> sp.Expr:
        """Σ_n over the batch: ``u`` in one sample's names, for each sample in turn."""
        if self.batch == 1:
            return u
        return sp.Add(*(u.xreplace(r) for r in self.samples))

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
        return [self.call(as_expr(expr), env) for env in envs or self.envs]

    def size(self, expr: sp.Expr) -> int:
        """Tree size of ``expr`` once expanded, computed without expanding it."""
        return sum(self._sizes.get(n, 1) for n in sp.preorder_traversal(expr))

    def expand(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` in raw symbols only (weights, biases, inputs, targets); memoized."""
        for s in expr.free_symbols & self._defined.keys() - self._full.keys():
            self._full[s] = self.expand(self._defined[s])
        return expr.xreplace({s: self._full[s] for s in expr.free_symbols if s in self._full})

    def gradient(self, el: str) -> Gradient:
        """The element's Gradient (frozen parameters too: ``d`` derives every parameter's)."""
        return self.grads[el]

    def truth(self, el: str) -> sp.Expr:
        if el in self.input_grads:  # dE/dx_j = c dx_j (one sample)
            return self.d.scale.xreplace({N: 1}) * self.input_grads[el]
        g = self.gradient(el)
        if self.batch == 1:
            return g.expr.xreplace({N: 1})
        return g.scale.xreplace({N: self.batch}) * self.sum_n(sp.Mul(*(f.expr for f in g.factors)))

    def matrices(self) -> dict[str, sp.Expr | sp.Matrix]:
        """Column vectors of every vector with a scalar name (x, t, z1, a1, delta1, da1, p, ...),
        N-d Arrays of every map (a conv layer's x, z1, delta1, ...), and the parameters W1 (a
        matrix, or a conv kernel's Array), b1 (a column or, shared, a scalar) in scalar symbols."""
        out: dict = {}
        for name, shape in self.d.shapes.items():
            if shape and scalar_name(self.seqs, name, (0,) * len(shape)) in self.names:
                els = [sym(scalar_name(self.seqs, name, ix)) for ix in indices(shape)]
                # a vector is a column; a map [channels, positions...] an N-d Array
                out[name] = sp.Matrix(els) if len(shape) == 1 else sp.Array(els, shape)
        for p in self.d.params:
            els = [sym(param_element(p, ix)) for ix in element_indices(p)]
            if len(p.shape) > 2:  # a conv kernel [out, in/groups, k...]
                out[p.name] = sp.Array(els, p.shape)
            else:
                out[p.name] = (
                    els[0] if not p.shape else sp.Matrix(p.shape[0], len(els) // p.shape[0], els)
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


def proved(net: ScalarNet, pairs: list[tuple[sp.Expr, sp.Expr]], max_nodes: int) -> bool:
    """SymPy proof that every hand - truth is 0 (False when it gets none within size and time).

    Differences of more than ``max_nodes`` nodes once expanded are not tried (more than
    ``10 * max_nodes`` before expanding: not even expanded).
    """
    try:
        with _deadline(SYMBOLIC_SECONDS) as timed:
            for hand, truth in pairs:
                if net.size(hand) + net.size(truth) > 10 * max_nodes:
                    return False
                diff = net.expand(hand) - net.expand(truth)
                if diff == 0:
                    continue
                if any(i > max_nodes for i, _ in enumerate(sp.preorder_traversal(diff))):
                    return False
                if sp.cancel(_opaque(diff, {})) != 0 and not (timed and sp.simplify(diff) == 0):
                    return False
            return True
    except (_Timeout, ArithmeticError, ValueError, TypeError, RecursionError, PolynomialError):
        return False
