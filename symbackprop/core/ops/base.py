"""The op-kind registry and what every op kind's rules share: contexts, NumPy evaluation of
elementwise expressions, index forms, formula helpers.

Arrays in the evaluator have the batch as their first axis; per-sample scalars (``lse``) keep
a trailing axis of 1 so they broadcast against vectors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import sympy as sp

from ...printing import latex as lx
from ...printing.numpy import NumpyCodePrinter
from ..ir import N, Op, Param, Shape


@dataclass(frozen=True)
class Context:
    """What the rules need to know besides the op: every tensor's and parameter's shape, and
    which tensors are per batch (computed once per batch, like batch statistics, with no
    sample axis: ``batch``) rather than per sample."""

    shapes: Mapping[str, Shape]
    params: Mapping[str, Param]
    batch: frozenset[str] = frozenset()

    def shape(self, name: str) -> Shape:
        return self.params[name].shape if name in self.params else self.shapes[name]

    def is_param(self, name: str) -> bool:
        return name in self.params

    def is_batch(self, name: str) -> bool:
        """A per-batch tensor (no sample axis), or a parameter (the same for every sample)."""
        return name in self.batch or name in self.params


class Elements(Protocol):
    """Scalar symbols of single elements (0-based indices) of one sample, for the index forms.

    ``samples`` is the batch the sample belongs to (an Elements per sample, this one among
    them): what a reduction over the batch sums over. Per-batch tensors and parameters have
    the same symbols in every sample. Scalar mode has a batch of one sample.
    """

    ctx: Context
    samples: tuple[Elements, ...]

    def tensor(self, name: str, index: tuple[int, ...]) -> sp.Symbol: ...

    def param(self, name: str, index: tuple[int, ...]) -> sp.Symbol: ...


class Backward(Protocol):
    """What a pullback may do: ask what needs a gradient, emit parameter gradients, and
    contribute to the gradient of an input (an op whose out is ``slot(...)``, or an alias)."""

    ctx: Context
    scale: sp.Expr

    def requires(self, name: str) -> bool: ...

    def emit(self, op: Op) -> None: ...

    def slot(self, tensor: str, consumer: str) -> str: ...

    def contribute(self, tensor: str, op: Op | None = None, alias: str | None = None) -> None: ...


Substitution = dict[str, sp.Expr]  # tensor name -> what replaces its symbol


def _never(op: Op) -> bool:
    return False


@dataclass(frozen=True)
class OpKind:
    """One kind of op: its rules. ``pullback`` is None for ops that only occur in backward
    programs (they are never differentiated).

    Training and evaluation mode: the forward program is the training-mode one. ``eval``, for
    kinds that differ in evaluation mode, gives the op's evaluation-mode ops and what the
    symbol of its output becomes in every later expression (a dropout mask becomes 1, a batch
    statistic its running buffer); ``updates`` gives the ops a training step runs after the
    forward pass (a running buffer's update). ``per_batch`` says the op's output has no
    sample axis (a reduction over the batch).
    """

    name: str
    shape: Callable[[Op, Context], Shape]
    evaluate: Callable[[Op, dict, Context], np.ndarray]
    text: Callable[[Op, Context], str]
    latex: Callable[[Op, Context], str]
    elements: Callable[[Op, Elements], dict[tuple[int, ...], sp.Expr]]
    pullback: Callable[[Op, str, Backward], None] | None = None
    per_batch: Callable[[Op], bool] = _never
    eval: Callable[[Op], tuple[tuple[Op, ...], Substitution]] | None = None
    updates: Callable[[Op], tuple[Op, ...]] | None = None


OPS: dict[str, OpKind] = {}


def register(kind: OpKind) -> OpKind:
    """Add (or replace) an op kind; a kind's macros in every target are looked up by name."""
    OPS[kind.name] = kind
    return kind


def kind(op: Op) -> OpKind:
    try:
        return OPS[op.kind]
    except KeyError:
        raise ValueError(f"no op kind '{op.kind}' is registered") from None


# ---- numbers ----------------------------------------------------------------------------------

_ERF = np.vectorize(math.erf, otypes=[float])


def _step(x):
    x = np.asarray(x)
    return (x > 0).astype(x.dtype)


_FUNCTIONS = {"np": np, "_erf": _ERF, "_step": _step}


@lru_cache(maxsize=1024)
def _compile(expr: sp.Expr, names: tuple[str, ...]):
    symbols = [sp.Symbol(n, real=True) for n in names]
    mapping = {s: sp.Symbol(s.name, real=True) for s in expr.free_symbols}
    return sp.lambdify(
        symbols, expr.xreplace(mapping), modules=[_FUNCTIONS, "numpy"], printer=NumpyCodePrinter()
    )


def elementwise(expr: sp.Expr, env: Mapping[str, Any], dtype) -> np.ndarray:
    """Evaluate an elementwise expression whose free symbols name arrays (or scalars) in env."""
    names = tuple(sorted(s.name for s in expr.free_symbols))
    out = _compile(expr, names)(*(env[n] for n in names))
    return np.asarray(out, dtype=dtype)


def rows(env: dict) -> int:
    return env["x"].shape[0]


def scale_of(op: Op, env: dict, dtype) -> np.ndarray:
    return elementwise(op.scale if op.scale is not None else sp.Integer(1), env, dtype)


# ---- index forms ------------------------------------------------------------------------------


def indices(shape: Shape):
    """Every 0-based index of ``shape`` in row-major order (``()`` once for a scalar)."""
    return itertools.product(*(range(n) for n in shape))


def element_subs(expr: sp.Expr, index: tuple[int, ...], el: Elements) -> sp.Expr:
    """``expr`` (in vec symbols) at one element: tensors of the element's shape at ``index``,
    per-sample scalars as themselves, parameters and per-batch tensors broadcast along the last
    axes (as NumPy broadcasts), and per-row values of lower rank (log-sum-exp: one per row of a
    sequence, one per sample for a vector) at the leading indices."""
    subs = {}
    for s in expr.free_symbols:
        if s == N:
            continue
        shape = el.ctx.shape(s.name)
        last = index[len(index) - len(shape) :] if shape else ()
        if el.ctx.is_param(s.name):
            subs[s] = el.param(s.name, last)
        elif el.ctx.is_batch(s.name):  # a statistic [C] of a map with its channels last
            subs[s] = el.tensor(s.name, last)
        else:
            subs[s] = el.tensor(s.name, index[: len(shape)])
    return expr.xreplace(subs)


# ---- text and LaTeX helpers -------------------------------------------------------------------

name_tex = lx.latex_name


def c_text(scale: sp.Expr | None) -> str:
    return "" if scale is None or scale == 1 else f"{lx.text(scale)} * "


def c_tex(scale: sp.Expr | None) -> str:
    return "" if scale is None or scale == 1 else lx.latex(scale) + " "


def param_shape(op: Op, ctx: Context) -> Shape:
    """The shape of the parameter a gradient op is for (its last argument)."""
    return ctx.shape(op.args[-1])


def full_shape(op: Op, ctx: Context) -> Shape:
    """The longest shape among an op's tensor arguments (what an elementwise expression of
    them broadcasts to)."""
    shapes = [ctx.shape(a) for a in op.args if a and not ctx.is_param(a)]
    return max(shapes, key=len) if shapes else ()


__all__ = [
    "OPS", "Backward", "Context", "Elements", "OpKind", "Substitution", "c_tex", "c_text",
    "element_subs", "elementwise", "full_shape", "indices", "kind", "name_tex", "param_shape",
    "register", "rows", "scale_of",
]  # fmt: skip
