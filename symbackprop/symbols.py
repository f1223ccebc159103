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
