"""The time axis of a hand formula for a recurrent net (issue 13/15): ``h1[t-1]``, ``sum_t(...)``.

A sequence (``x``, ``h1``, ``delta1``, ``dh1``, a many-to-many head's ``z2``, ``a2``, ``t``, ...)
is an Array [T, units] of scalar symbols; ``name[k]`` is its step k (1-based) as a column
vector, and a step outside 1..T is the zero vector (h_0 = 0, δ_{T+1} = 0: the boundary values
BPTT starts from). The index is an integer expression in ``t`` (the step of the enclosing
``sum_t`` or of a definition ``name[t] = ...``), ``T`` (the number of steps) and integer
literals with ``+`` and ``-``: read from the syntax tree, nothing is evaluated.

``sum_t(v)`` is Σ_{t=1}^{T} v; ``sum_t(v, lo, hi)`` is Σ_{t=lo}^{hi} v (LaTeX
``\\sum_{t=2}^{T}``). A definition ``delta1[t] = ...`` is a recurrence: it may use ``delta1``
at other steps (``delta1[t+1]``), is evaluated step by step where it is needed, and a
definition of one step (``delta1[T] = ...``, ``dh1[3] = ...``) overrides it there.
"""

from __future__ import annotations

import ast
import re

import sympy as sp

from ..spec.errors import SpecError
from .shapes import ShapeMismatch, shape_of, shape_text

MAX_STEPS = 64  # a hand formula's time axis (verify nets are small)
_ELEMENT_AT = re.compile(r"\b([A-Za-z]\w*?\d+)_(\d+(?:_\d+)*)\[(\d+)\]")  # h1_1[2]
_INPUT_AT = re.compile(r"\b([xt])(\d+)\[(\d+)\]")  # x1[2]: feature 1 at step 2


def step_names(text: str, names) -> str:
    """CONTRACT §6's spelling of a sequence's element, ``h1_1[2]`` (unit 1 of h1 at step 2,
    ``x1[2]``: feature 1 of x at step 2), the name scalar mode prints, as the identifier
    ``h1_2_1`` (``x2_1``) the grammar reads: the step first, the spelling printed before, which
    ``ScalarNet.names`` maps to the same symbol. A spelling that names no element is left as
    it is."""

    def element(m: re.Match) -> str:
        new = f"{m.group(1)}_{m.group(3)}_{m.group(2)}"
        return new if new in names else m.group(0)

    def feature(m: re.Match) -> str:
        new = f"{m.group(1)}{m.group(3)}_{m.group(2)}"
        return new if new in names else m.group(0)

    return _INPUT_AT.sub(feature, _ELEMENT_AT.sub(element, text))


def step_index(b, node: ast.AST) -> int:
    """The integer value of an index expression in t, T and integer literals."""
    if isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value <= 10_000:
        return node.value
    if isinstance(node, ast.Name) and node.id == "T":
        return b.steps
    if isinstance(node, ast.Name) and node.id == "t":
        if b.step is None:
            raise SpecError(b.field, "the time step t of an index is bound by sum_t(...) or by "
                            f"a definition name[t] = ...: {b.segment(node)}")  # fmt: skip
        return b.step
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left, right = step_index(b, node.left), step_index(b, node.right)
        return left + right if isinstance(node.op, ast.Add) else left - right
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -step_index(b, node.operand)
    raise SpecError(b.field, "a time index is t, T or a whole number, with + and -: "
                    f"{b.segment(node)}")  # fmt: skip


def is_sequence(b, value: object) -> bool:
    return isinstance(value, StepDefs) or (
        b.steps is not None and isinstance(value, sp.NDimArray) and value.rank() == 2
        and value.shape[0] == b.steps
    )  # fmt: skip


def subscript(b, node: ast.Subscript) -> sp.Matrix:
    """``name[k]``: step k of a sequence as a column (zeros outside 1..T)."""
    value = b.mats.get(node.value.id) if isinstance(node.value, ast.Name) else None
    if value is None or not is_sequence(b, value):
        what = "a sequence (indexed by its time step)" if b.steps else "a recurrent net's sequence"
        raise SpecError(b.field, f"only {what} takes [...]: {b.segment(node)}")
    k = step_index(b, node.slice)
    if isinstance(value, StepDefs):
        return value.at(k, b)
    units = value.shape[1]
    if not 1 <= k <= b.steps:
        return sp.zeros(units, 1)
    return sp.Matrix([value[k - 1, j] for j in range(units)])


def sum_t(b, node: ast.Call):
    """``sum_t(v)`` (t = 1..T) or ``sum_t(v, lo, hi)``: the sum of v at every step."""
    if b.steps is None:
        raise SpecError(b.field, "sum_t(...) sums over the time steps of a recurrent net")
    if node.keywords or len(node.args) not in (1, 3):
        raise SpecError(b.field, f"sum_t(v) or sum_t(v, first, last): {b.segment(node)}")
    if b.step is not None:
        raise SpecError(b.field, f"sum_t(...) inside a sum over t: {b.segment(node)}")
    lo, hi = (1, b.steps) if len(node.args) == 1 else (step_index(b, a) for a in node.args[1:])
    terms = []
    try:
        for k in range(max(lo, 0), min(hi, b.steps + 1) + 1):
            b.step = k
            terms.append(b.build(node.args[0]))
    finally:
        b.step = None
    total = terms[0] if terms else sp.Integer(0)
    for v in terms[1:]:
        total = b.pair(node, total, v, "u + v")
    return total


class StepDefs:
    """A sequence defined step by step: ``name[t] = ...`` and overrides ``name[k] = ...``.

    Steps are evaluated where a formula needs them, each once (a recurrence reads its own
    later or earlier steps); a step that needs itself is refused."""

    def __init__(self, name: str, units: int, steps: int, rules: dict, parse):
        self.name, self.units, self.steps, self.rules, self.parse = name, units, steps, rules, parse
        self.done: dict[int, sp.Matrix] = {}
        self.busy: set[int] = set()

    def at(self, k: int, b) -> sp.Matrix:
        if not 1 <= k <= self.steps:
            return sp.zeros(self.units, 1)
        if k in self.done:
            return self.done[k]
        if k in self.busy:
            raise SpecError(b.field, f"{self.name}[{k}] is defined in terms of itself")
        text = self.rules.get(k, self.rules.get("t"))
        if text is None:
            raise SpecError(b.field, f"{self.name}[{k}] has no definition ({self.name}[t] = ... "
                            f"or {self.name}[{k}] = ...)")  # fmt: skip
        self.busy.add(k)
        try:
            value = self.parse(text, k)
        except ShapeMismatch as exc:
            raise SpecError(b.field, f"in the definition of {self.name}[t]: shape mismatch "
                            f"{exc}") from None  # fmt: skip
        finally:
            self.busy.discard(k)
        if value == 0 and not shape_of(value):
            value = sp.zeros(self.units, 1)
        if shape_of(value) not in ((self.units, 1), (self.units,)):
            raise SpecError(b.field, f"{self.name}[t] is [{self.units}, 1], its definition "
                            f"{shape_text(shape_of(value))}")  # fmt: skip
        self.done[k] = sp.Matrix(value)
        return self.done[k]

    def array(self, b) -> sp.Array:
        """Every step, as the Array [T, units] the plain name stands for."""
        rows = [self.at(k, b) for k in range(1, self.steps + 1)]
        return sp.Array([[r[j] for j in range(self.units)] for r in rows])


__all__ = [
    "MAX_STEPS", "StepDefs", "is_sequence", "step_index", "step_names", "subscript", "sum_t",
]  # fmt: skip
