"""Maps and kernels in a hand formula (conv layers, issue 14): ``--wrt W1`` in tensor form.

A conv layer's input, pre-activation, output and δ are N-d Arrays [channels, *positions] of
scalar symbols (``x1_2_3``, ``delta1_1_2_2``), its kernel W1 an Array [out, in/groups, *k].
Elementwise operations apply to Arrays of one shape (or an Array and a scalar), and three
functions say what a conv layer's gradient is made of:

- ``corr(x, delta1, stride=1, padding=0, dilation=1, groups=1)``: the input correlated with δ,
  ``out[o, c, k] = Σ_p x[g(o)·C/groups + c, s·p + d·k − pad] · δ[o, p]`` (zero outside the
  input), evaluated at the kernel's offsets k: the kernel's gradient of one sample (CONTRACT §6:
  PyTorch's cross-correlation). ``stride``, ``dilation`` are an int or one per axis, ``padding``
  an int, one per axis, or a (low, high) pair per axis.
- ``conv(x, delta1, ...)``: the same with δ flipped (a true convolution), which people write
  by mistake for a cross-correlation layer.
- ``reshape(v, d1, d2, ...)``: v's elements in C order in a new shape (flatten's inverse).

Keyword values are integer literals read from the syntax tree; nothing is evaluated.
"""

from __future__ import annotations

import ast
import math

import sympy as sp

from ..core.ops import indices
from ..spec.errors import SpecError
from .shapes import ShapeMismatch, entries, shape_of, shape_text

MAX_TERMS = 200_000  # products summed by one corr (a bound on the work of one formula)
_KEYWORDS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def elementwise(b, node: ast.AST, left, right, template: str) -> sp.NDimArray:
    """``template`` (in u, v) on Arrays of one shape, or an Array and a scalar."""
    ls, rs = shape_of(left), shape_of(right)
    if ls and rs and ls != rs:
        where = b.segment(node)
        raise ShapeMismatch(f"in {where}: elementwise on {shape_text(ls)} and {shape_text(rs)}")
    shape = ls or rs
    us = entries(left) if ls else [left] * math.prod(shape)
    vs = entries(right) if rs else [right] * math.prod(shape)
    return sp.Array([b.op(template, u=u, v=v) for u, v in zip(us, vs, strict=True)], shape)


def _int(b, node: ast.AST, what: str, low: int) -> int:
    if (
        not isinstance(node, ast.Constant)
        or type(node.value) is not int
        or not low <= node.value <= 1000
    ):
        raise SpecError(b.field, f"{what} is an integer from {low} to 1000: {b.segment(node)}")
    return node.value


def _per_axis(b, node: ast.AST, what: str, axes: int, low: int, pairs: bool = False) -> list:
    """An int for every axis, one per axis, or (padding) a (low, high) pair per axis."""
    if not isinstance(node, ast.Tuple):
        v = _int(b, node, what, low)
        return [(v, v) if pairs else v] * axes
    if len(node.elts) != axes:
        raise SpecError(b.field, f"{what} has one value per axis ({axes}): {b.segment(node)}")
    out = []
    for e in node.elts:
        if pairs and isinstance(e, ast.Tuple) and len(e.elts) == 2:
            out.append(tuple(_int(b, x, what, low) for x in e.elts))
        else:
            v = _int(b, e, what, low)
            out.append((v, v) if pairs else v)
    return out


def call(b, node: ast.Call):
    """``corr``, ``conv`` or ``reshape``."""
    fname = node.func.id
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise SpecError(b.field, f"starred arguments are not allowed in {fname}(...)")
    if fname == "reshape":
        if len(node.args) < 2 or node.keywords:
            raise SpecError(b.field, "reshape(v, d1, d2, ...) takes a value and its new shape")
        v = b.build(node.args[0])
        dims = tuple(_int(b, a, "a dimension", 1) for a in node.args[1:])
        vals = entries(v) if shape_of(v) else [v]
        if math.prod(dims) != len(vals):
            raise ShapeMismatch(f"in {b.segment(node)}: {shape_text(shape_of(v))} has "
                                f"{len(vals)} elements, not {math.prod(dims)}")  # fmt: skip
        return sp.Matrix(vals) if len(dims) == 1 else sp.Array(vals, dims)
    if len(node.args) != 2:
        raise SpecError(b.field, f"{fname}(x, delta, stride=..., padding=..., dilation=..., "
                        "groups=...) takes two maps")  # fmt: skip
    u, v = (b.build(a) for a in node.args)
    us, vs = shape_of(u), shape_of(v)
    if not (isinstance(u, sp.NDimArray) and isinstance(v, sp.NDimArray)) or len(us) != len(vs):
        raise ShapeMismatch(f"in {b.segment(node)}: {fname} of {shape_text(us)} and "
                            f"{shape_text(vs)} (two maps [channels, positions...])")  # fmt: skip
    axes = len(us) - 1
    given = {}
    for kw in node.keywords:
        if kw.arg not in _KEYWORDS or kw.arg in given:
            raise SpecError(b.field, f"{fname}() takes the keywords {', '.join(_KEYWORDS)}")
        given[kw.arg] = kw.value
    ones = ast.Constant(1)
    stride = _per_axis(b, given.get("stride", ones), "stride", axes, 1)
    dil = _per_axis(b, given.get("dilation", ones), "dilation", axes, 1)
    pad = _per_axis(b, given.get("padding", ast.Constant(0)), "padding", axes, 0, pairs=True)
    groups = _int(b, given.get("groups", ones), "groups", 1)
    (cin, *size), (cout, *pos) = us, vs
    if cin % groups or cout % groups:
        raise ShapeMismatch(f"in {b.segment(node)}: {cin} input and {cout} output channels "
                            f"do not split into {groups} groups")  # fmt: skip
    if b.kernel is not None and len(b.kernel) == axes:
        ks = list(b.kernel)
    else:  # every offset that reaches inside the padded input from each position
        axes_of = zip(size, pad, stride, pos, dil, strict=True)
        ks = [(n + lo + hi - 1 - s * (p - 1)) // d + 1 for n, (lo, hi), s, p, d in axes_of]
    if min(ks) < 1:
        raise ShapeMismatch(f"in {b.segment(node)}: {shape_text(tuple(pos))} positions of δ do "
                            f"not fit in the input's {shape_text(tuple(size))}")  # fmt: skip
    per_in, per_out = cin // groups, cout // groups
    if cout * per_in * math.prod(ks) * math.prod(pos) > MAX_TERMS:
        raise SpecError(b.field, f"{fname}(...) too large (over {MAX_TERMS} products)")
    flip = fname == "conv"
    out = []
    for o, c, *k in indices((cout, per_in, *ks)):
        terms = []
        for p in indices(tuple(pos)):
            i = [s * pp + d * kk - lo for s, pp, d, kk, (lo, _) in zip(stride, p, dil, k, pad,
                                                                         strict=True)]  # fmt: skip
            if all(0 <= ii < n for ii, n in zip(i, size, strict=True)):
                q = tuple(n - 1 - pp for n, pp in zip(pos, p, strict=True)) if flip else p
                terms.append(u[((o // per_out) * per_in + c, *i)] * v[(o, *q)])
        out.append(sp.Add(*terms))
    return sp.Array(out, (cout, per_in, *ks))
