"""Shapes of the values of a hand formula: scalars, SymPy Matrices (vectors, weight matrices)
and N-d Arrays (a conv layer's maps and kernels)."""

from __future__ import annotations

import sympy as sp


class ShapeMismatch(Exception):
    """A shape mismatch inside a matrix expression: a wrong derivation (exit 1), not bad input."""


def shape_of(v: object) -> tuple[int, ...]:
    """(rows, cols) of a Matrix, the shape of an N-d Array (maps, kernels), () of a scalar."""
    return tuple(v.shape) if isinstance(v, (sp.MatrixBase, sp.NDimArray)) else ()


def entries(v: object) -> list:
    """The elements of a Matrix or Array, row-major (C order), as a list."""
    return list(sp.flatten(v.tolist())) if isinstance(v, sp.NDimArray) else list(v)


def shape_text(shape: tuple[int, ...] | None) -> str:
    return "a scalar" if not shape else "[" + ", ".join(map(str, shape)) + "]"
