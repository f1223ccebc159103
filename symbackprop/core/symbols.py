"""The placeholder symbols every elementwise definition is written in."""

from __future__ import annotations

import sympy as sp

X = sp.Symbol("x", real=True)  # an activation's input (one element of z)
A = sp.Symbol("a", real=True)  # an activation's output (one element of a)
Y = sp.Symbol("y", real=True)  # a loss's prediction (one element of the network output)
T = sp.Symbol("t", real=True)  # a loss's target (one element)


def number(value: float | int) -> sp.Rational:
    """An exact SymPy number for a spec value: 0.35 -> 7/20, so derivatives stay exact."""
    if isinstance(value, bool):
        raise TypeError("bool is not a number")
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Rational(repr(float(value)))


def as_expr(value: sp.Basic | int | float) -> sp.Basic:
    """A SymPy object for the project's own values (never a string: user text goes through
    expressions.parse_expression only)."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a SymPy object or a number: {value!r}")
    return sp.Integer(value) if isinstance(value, int) else sp.Float(value)
