"""The intermediate representation every stage after the graph shares: parameters, tensors, ops.

A program is an ordered tuple of :class:`Op` over per-sample tensors named as in CONTRACT §2
(x, z1, a1, delta1, da1, ...). Elementwise ops carry SymPy expressions in symbols named after
tensors (``vec``), so the size of everything here grows with depth, never with layer width.
The meaning of each op kind (shape, evaluation, pullback, formulas) is one entry of the
registry in ``op_kinds``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sympy as sp

N = sp.Symbol("N", positive=True, integer=True)  # the batch size

Shape = tuple[int, ...]


def vec(name: str) -> sp.Symbol:
    """The symbol standing for one element of the tensor ``name`` in elementwise expressions."""
    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class Init:
    """How a parameter starts: explicit ``value`` (scheme 'values') or a named random scheme."""

    scheme: str
    value: Any = None  # a float or nested tuples, for scheme 'values'
    low: float = -1.0
    high: float = 1.0
    std: float = 1.0
    gain: float = 1.0


@dataclass(frozen=True)
class Param:
    """A parameter tensor of layer ``layer``: ``W1`` [units, fan_in], ``b1`` [units] or [].

    ``role`` says what it is to its layer ('weight', 'bias', or a kind's own role); ``kind`` is
    'matrix', 'per_unit' or 'shared' (a scalar). ``fan_in``/``fan_out`` feed the init schemes.
    """

    name: str
    layer: int
    role: str
    kind: str
    shape: Shape
    trainable: bool
    init: Init
    fan_in: int
    fan_out: int


@dataclass(frozen=True)
class Op:
    """One step of a program, on per-sample tensors (a batch adds a leading axis of N rows).

    ``args`` name tensors or parameters; ``expr`` is the elementwise expression of a map (in
    ``vec`` symbols of its args); ``partials`` are ∂out/∂arg for each arg of a map, written in
    forward quantities (an activation's derivative as a(1 − a), ...), empty to let the pullback
    differentiate ``expr``; ``scale`` multiplies a reduction over the batch; ``attrs`` holds a
    kind's own settings (offsets, axes); ``why`` is the derivation step it implements.
    """

    kind: str
    out: str
    args: tuple[str, ...] = ()
    expr: sp.Expr | None = None
    scale: sp.Expr | None = None
    why: str = ""
    partials: tuple[sp.Expr, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)


_LAYERED = re.compile(r"([a-z]+)(\d+)\Z")


def grad_name(tensor: str) -> str:
    """The name of dE/d``tensor`` for one sample: delta3 for z3 (the textbook δ), else d + name."""
    m = _LAYERED.match(tensor)
    if m and m.group(1) == "z":
        return f"delta{m.group(2)}"
    return f"d{tensor}"


def via_name(tensor: str, consumer: str) -> str:
    """One of several contributions to dE/d``tensor``: the one that comes through ``consumer``."""
    return f"{grad_name(tensor)}__via_{consumer}"


__all__ = [
    "N", "Init", "Op", "Param", "Shape", "element_name", "grad_name", "param_element_name",
    "step_first", "via_name", "vec",
]  # fmt: skip


def _idx(index: tuple[int, ...]) -> str:
    """1-based index suffix of a matrix element: '11' for (1, 1); '10_3' once an index has two
    digits; one underscore per index for other ranks (CONTRACT §2 and §6)."""
    if len(index) == 2 and all(i < 10 for i in index):
        return "".join(map(str, index))
    return "_".join(map(str, index))


def element_name(tensor: str, index: tuple[int, ...], sequence: bool = False) -> str:
    """The scalar name of one element (``index`` 0-based): x1, t2, p1, z1_2, a1_2, delta2_1.

    A ``sequence`` [T, units] (a tensor with a time axis) names element (t, j) the CONTRACT §6
    way, ``<name>_<unit>[<step>]``: h1_1[2] is unit 1 of h1 at step 2, x1[2] feature 1 of x at
    step 2 (brackets are allowed in a SymPy Symbol's name; only documents and verify see them).
    """
    if not index:
        return tensor
    ones = tuple(i + 1 for i in index)
    if sequence and len(ones) == 2:
        step, unit = ones
        joint = "" if tensor in ("x", "t", "p") else "_"
        return f"{tensor}{joint}{unit}[{step}]"
    if tensor in ("x", "t", "p"):
        return tensor + "_".join(map(str, ones))
    return f"{tensor}_" + "_".join(map(str, ones))


_AT_STEP = re.compile(r"(.+?)(\d+)\[(\d+)\]")


def step_first(name: str) -> str:
    """A sequence element's name with the step first, as scalar mode spelled it before
    CONTRACT §6's: h1_2_1 for h1_1[2], x2_1 for x1[2] (an identifier, which verify's grammar
    reads as an alias); any other name is returned as it is."""
    m = _AT_STEP.fullmatch(name)
    return f"{m.group(1)}{m.group(3)}_{m.group(2)}" if m else name


def param_element_name(p: Param, index: tuple[int, ...]) -> str:
    """w2_11 for W2[0, 0]; b1_2 for a per-unit bias; b1 for a shared one; u2_13 for U2[0, 2]."""
    if not index:
        return p.name
    base = p.name.rstrip("0123456789").lower()
    return f"{base}{p.layer}_" + _idx(tuple(i + 1 for i in index))
