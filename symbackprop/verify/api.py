"""``symbackprop verify``: prove or refute a hand derivation of dE/dNAME for one sample (N = 1).

The truth is the Derivation's scalar instantiation (each element's gradient as a product of named
chain-rule factors). A hand formula is decided two ways: a randomized probe at many random points
of *all* free symbols (weights, biases, inputs, targets) in 40-digit mpmath arithmetic, and SymPy
simplification of the difference (guarded by size and time). When they differ, a counterexample,
the correct formula and, where one can be named, the missing factor or term are reported.

This module is the public API (``verify``, ``VerifyResult``) and the CLI command; the probe and
the proof are in ``verify_probe``, naming the mistake in ``verify_explain``, the correct formula
in ``verify_formula``, and the matrix-notation grammar in ``matrix_input``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import mpmath
import sympy as sp

from ..core.chain_rule import derive
from ..core.derivation import Derivation
from ..core.ir import step_first
from ..core.scalar import param_element
from ..spec.errors import SpecError, did_you_mean
from ..spec.expressions import Notation, parse_expression
from ..spec.load import Spec, load_spec, parse_spec
from .bptt import gate_mistake, recurrent_mistake
from .definitions import bind, split
from .explain import conv_mistake, explain_batch, explain_element, explain_matrix
from .formula import input_formula, matrix_formula, scalar_formula
from .matrix import ShapeMismatch, entries, parse_matrix, shape_of, shape_text
from .notation import hand_notation
from .probe import DIGITS, POINTS, ScalarNet, element_indices, proved, same
from .steps import step_names

MAX_NODES = 3000  # larger expanded differences are left to the probe (10x: not even expanded)
MAX_PARAMS = 1000  # element by element: 1,001 parameters take 11-19 s here, 4,997 over 3 min
MAX_BATCH = 16  # --batch: every sample's definitions are instantiated


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
    batch: int | None = None

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
            out.append(f"  correct formula ({self.scope()}):")
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
            out.append(f"Correct formula ({self.scope()}):\n\n$$\n{self.correct_formula_latex}\n$$")
        return "\n\n".join(out)

    def scope(self) -> str:
        """What the correct formula is for: one sample, or a batch summed with sum_n."""
        if self.batch is None:
            return "one sample, N = 1"
        return f"a batch of N = {self.batch}; inside sum_n the names are sample n's"


def _num(v: object) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(map(_num, v)) + "]"
    return "undefined" if v is None else f"{v:.12g}"


def verify(
    spec: Spec | Derivation | str | Path | dict,
    wrt: str,
    expr: str,
    latex: bool = False,
    batch: int | None = None,
) -> VerifyResult:
    """Check a hand derivation ``expr`` of dE/d``wrt`` for one sample, or for a batch.

    Args:
        spec: a Spec, a Derivation, a path to a spec file, or parsed spec data.
        wrt: a parameter element (``w2_11``: scalar form) or a whole parameter (``W2``: matrix
            form, column vectors for one sample with ``@``, ``.T`` and elementwise ``*``).
        expr: the hand formula in CONTRACT §2 names, or LaTeX when ``latex``.
        batch: the gradient of a batch of ``batch`` samples' loss E (mean or sum, as the spec's
            reduction): ``sum_n(...)`` (LaTeX ``\\sum_n``) sums its argument, written in one
            sample's names, over the samples, and ``N`` is the batch size. None: one sample.

    Raises:
        SpecError: bad input (unknown names or parameter, syntax, anything outside the grammar).
    """
    spec = load_spec(spec) if isinstance(spec, (str, Path)) else spec
    spec = parse_spec(spec) if isinstance(spec, dict) else spec
    name = wrt.strip() if isinstance(wrt, str) else str(wrt)[:100]
    # x, x3 or, for a sequence, CONTRACT §6's x1[2] (feature 1 at step 2; x2_1 step first)
    wrt_input = name == "x" or re.fullmatch(r"x\d+(\[\d+\]|_\d+)?", name) is not None
    if batch is not None and (
        isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH
    ):
        raise SpecError("--batch", f"expected a batch size from 1 to {MAX_BATCH}, got {batch!r}")
    if batch is not None and wrt_input:
        raise SpecError("--batch", "the input's gradient is one sample's: drop --batch")
    spec = spec.spec if isinstance(spec, Derivation) else spec
    d = _derivation(spec, wrt_input)
    if d.num_params * (batch or 1) > MAX_PARAMS:
        times = f" (times the batch of {batch})" if batch else ""
        raise SpecError("layers", f"verify works element by element, for nets of at most "
                        f"{MAX_PARAMS} parameters{times}; this one has {d.num_params}")  # fmt: skip
    with mpmath.workdps(DIGITS):
        net = _net(spec, wrt_input, batch or 1)
        if wrt_input:
            return _verify_input(net, name, expr, latex)
        result = _verify_param(net, name, expr, latex, batch is not None)
        if batch is None or result.equivalent:
            return replace(result, batch=batch)
        why = result.explanation
        if why is None and batch > 1:  # a mistake inside Σ_n: name it as for one sample
            one = _verify_param(_net(spec, wrt_input, 1), name, expr, latex, True)
            why = None if one.equivalent else one.explanation
            why = why and f"in each sample's term: {why}"
        return replace(result, batch=batch, explanation=why)


@lru_cache(maxsize=8)
def _derivation(spec: Spec, wrt_input: bool) -> Derivation:
    return derive(spec, True, wrt_input)


@lru_cache(maxsize=8)
def _net(spec: Spec, wrt_input: bool, batch: int) -> ScalarNet:
    """The net's scalar instantiation and its probe values, kept for the next call: checking
    a formula takes milliseconds, building the probe seconds, and a user (or a test) checks
    several formulas of one net. Specs are immutable and the net only memoizes."""
    with mpmath.workdps(DIGITS):
        return ScalarNet(_derivation(spec, wrt_input), batch=batch)


def _verify_param(net: ScalarNet, name: str, expr: str, latex: bool, batch: bool) -> VerifyResult:
    """dE/d(parameter or element), for one sample or (``batch``) the batch of ``net``."""
    d = net.d
    params = {p.name: p for p in d.params}
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
    notation = hand_notation(tuple(ly.activation for ly in d.nodes if ly.activation))
    if batch:
        notation = Notation({**notation.functions, "sum_n": (net.sum_n, (1,))})
    text, names, mats = _read(net, name, expr, latex, name in params, notation, batch)
    if name not in params:
        hand = _outside_sums(net, parse_expression(text, names, "--expr", notation))
        result = _decide(net, name, expr, [name], [hand], (), scalar_formula(net, name))
        if not result and result.explanation is None and net.steps and net.batch == 1:
            why = gate_mistake(net, net.values(hand), net.values(net.truth(name)))
            result = replace(result, explanation=why)
        return result
    p = params[name]
    els, formula = [param_element(p, ix) for ix in element_indices(p)], matrix_formula(net, p)
    try:
        kernel = tuple(p.shape[2:]) if len(p.shape) > 2 else None
        hand = parse_matrix(text, names, mats, "--expr", notation, kernel, (net.steps, None))
        hand = _outside_sums(net, hand)
    except ShapeMismatch as exc:
        why, shape = f"shape mismatch {exc}", None
    else:
        shape = shape_of(hand)
        if shape in (p.shape, (*p.shape, 1)) or math.prod(shape) == math.prod(p.shape) == 1:
            result = _decide(net, name, expr, els, entries(hand) if shape else [hand], p.shape,
                             formula)  # fmt: skip
            if not result and kernel is not None:
                why = conv_mistake(net, p, text, names, mats, notation)
                result = replace(result, explanation=why or result.explanation)
            if not result and net.steps and net.batch == 1:  # a BPTT mistake, named
                why = _bptt_mistake(net, p, formula[0], hand, notation)
                result = replace(result, explanation=why or result.explanation)
            return result
        why = f"shape mismatch: yours is {shape_text(shape)}, dE/d{name} is {shape_text(p.shape)}"
        if len(shape) == 2 and shape[::-1] in (p.shape, (*p.shape, 1)):
            why += " (it is transposed)"
    return VerifyResult(name, expr, False, "shape check", *formula, explanation=why,
                        hand_shape=shape, true_shape=p.shape)  # fmt: skip


def _bptt_mistake(net: ScalarNet, p, correct: str, hand, notation) -> str | None:
    """The BPTT mistake (verify.bptt) a recurrent weight's hand formula equals, if any."""

    def read(wrong: str) -> list:
        text, names, mats = _read(net, p.name, wrong, False, True, notation, False)
        value = parse_matrix(text, names, mats, "--expr", notation, time=(net.steps, None))
        return entries(value) if shape_of(value) else [value]

    hand_values = [net.values(e) for e in (entries(hand) if shape_of(hand) else [hand])]
    return recurrent_mistake(net, p, correct, hand_values, read)


def _read(
    net: ScalarNet, name: str, expr: str, latex: bool, matrix: bool, notation, batch: bool
) -> tuple[str, dict, dict]:
    """The formula in the plain grammar, and the names and vectors it reads, each defined
    name (its later lines: ``delta2 = ...``) standing for its definition."""
    text, defs = split(expr, name, latex, matrix)
    if net.steps:  # h1_1[2] (CONTRACT §6) is read as its identifier alias h1_2_1
        text = step_names(text, net.names)
        defs = [(step_names(n, net.names), step_names(t, net.names)) for n, t in defs]
    if not batch and any(re.search(r"\bsum_n\b", t) for t in [text, *(t for _, t in defs)]):
        raise SpecError("--expr", "sum_n(...) sums over a batch: add --batch N")
    if not defs:
        return text, net.names, net.matrices()
    given = {*net.elements, *(s.name for s in net.inputs + net.targets)}
    return text, *bind(defs, net.names, net.matrices(), given, notation, net.steps)


def _outside_sums(net: ScalarNet, hand):
    """Refuse a sample's name outside every sum_n (which sample would it be?)."""
    free = hand.free_symbols if hasattr(hand, "free_symbols") else set()
    stray = sorted(s.name for s in free & net.sample_symbols)
    if stray:
        raise SpecError("--expr", "with --batch, one sample's names go inside sum_n(...); "
                        f"outside every sum_n: {', '.join(stray[:3])}")  # fmt: skip
    return hand


def _verify_input(net: ScalarNet, name: str, expr: str, latex: bool) -> VerifyResult:
    """dE/dx (``--wrt x``, column-vector notation) or dE/dx_j (``--wrt x1``): the gradient of
    one sample's loss with respect to the input, as an attack or a saliency map needs it."""
    inputs = [x.name for x in net.inputs]
    name = next((x for x in inputs if step_first(x) == name), name)  # x2_1: x1[2]
    if name != "x" and name not in inputs:
        raise SpecError("--wrt", f"the input has {len(inputs)} elements: {', '.join(inputs)}")
    if not isinstance(expr, str):
        raise SpecError("--expr", f"expected an expression string, got {type(expr).__name__}")
    notation = hand_notation(tuple(ly.activation for ly in net.d.nodes if ly.activation))
    text, names, mats = _read(net, name, expr, latex, name == "x", notation, False)
    formula = input_formula(net, inputs if name == "x" else [name])
    if name != "x":
        hand = parse_expression(text, names, "--expr", notation)
        return _decide(net, name, expr, [name], [hand], (), formula)
    shape = (len(inputs),)
    try:
        hand = parse_matrix(text, names, mats, "--expr", notation, time=(net.steps, None))
    except ShapeMismatch as exc:
        why, got = f"shape mismatch {exc}", None
    else:
        got = shape_of(hand)
        if got in (shape, (*shape, 1)):
            return _decide(net, name, expr, inputs, entries(hand), shape, formula)
        why = f"shape mismatch: yours is {shape_text(got)}, dE/dx is {shape_text(shape)}"
    return VerifyResult(name, expr, False, "shape check", *formula, explanation=why,
                        hand_shape=got, true_shape=shape)  # fmt: skip


def _decide(
    net: ScalarNet, wrt: str, expr: str, els: list, hands: list, shape: tuple, formula
) -> VerifyResult:
    """The probe's verdict (elements row-major), upgraded to a proof by SymPy when it can."""
    truths = [net.truth(el) for el in els]
    hs, ts = [net.values(h) for h in hands], [net.values(t) for t in truths]
    bad = [[i for i in range(len(els)) if not same([hs[i][k]], [ts[i][k]])] for k in range(POINTS)]
    if not any(bad):
        by_sympy = proved(net, list(zip(hands, truths, strict=True)), MAX_NODES)
        how = "proved by SymPy; agrees" if by_sympy else "random probe: agrees to 20 digits"
        method = f"{how} at {POINTS} random points of all free symbols"
        return VerifyResult(wrt, expr, True, method, *formula, hand_shape=shape, true_shape=shape)
    small = [
        (h, t) for h, t in zip(hands, truths, strict=True) if net.size(h) + net.size(t) < MAX_NODES
    ]
    assert len(small) < len(hands) or any(net.expand(h) != net.expand(t) for h, t in small)
    k = next(k for k in range(POINTS) if bad[k])

    def at_k(vals: list) -> float | list:
        flat = [None if v[k] is None else float(v[k]) for v in vals]
        if len(shape) >= 2:  # nested lists in the parameter's shape
            return sp.Array(flat, shape).tolist()
        return flat if shape else flat[0]

    if els[0] in net.input_grads:
        why = None  # the explanations name chain-rule factors of parameters
    elif net.batch > 1:
        why = explain_batch(net, hs, ts)
    elif shape:
        why = explain_matrix(net, net.elements[els[0]][0], els, hands, hs, ts)
    else:
        why = explain_element(net, els[0], hands[0], hs[0], ts[0])
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
    v.add_argument("--wrt", required=True, metavar="NAME",
                   help="w2_11 (scalar), W2 (matrix), x1 or x (the input)")  # fmt: skip
    v.add_argument("--expr", required=True, metavar="EXPR", help="e.g. delta2_1*a1_1")
    v.add_argument("--latex", action="store_true", help="EXPR is LaTeX")
    v.add_argument("--batch", type=int, metavar="N",
                   help="the gradient of a batch of N samples: sum_n(...) in EXPR")  # fmt: skip
    return v


def run(args) -> int:
    """The ``verify`` command: print the verdict; 0 equivalent, 1 not (SpecError -> exit 2)."""
    spec = load_spec(args.spec)
    try:
        result = verify(spec, args.wrt, args.expr, latex=args.latex, batch=args.batch)
    except SpecError as exc:
        raise exc.with_file(str(args.spec)) from None
    print(result.text())
    return 0 if result.equivalent else 1
