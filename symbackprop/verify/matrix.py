"""Hand derivations in matrix notation: ``((a2 - t) * a2 * (1 - a2)) @ a1.T``.

A whitelisted ``ast`` walker builds explicit SymPy matrices of scalar symbols; every scalar
operation on their entries goes through the safe scalar parser (``expressions.parse_expression``).
Nothing is ever evaluated; anything outside the grammar is a SpecError, and operands whose shapes
do not fit raise ShapeMismatch (a wrong derivation, not bad input).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import sympy as sp

from ..spec.errors import SpecError, did_you_mean
from ..spec.expressions import MAX_LENGTH, Notation, check_alphabet, parse_expression
from . import maps, steps
from .shapes import ShapeMismatch, entries, shape_of, shape_text

__all__ = ["ShapeMismatch", "entries", "parse_matrix", "shape_of", "shape_text"]

MAX_MATRIX_DEPTH = 100
_ELEMENTWISE = ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "softplus", "erf")
_BINOPS = {ast.Add: "u + v", ast.Sub: "u - v", ast.Mult: "u*v", ast.Div: "u/v", ast.Pow: "u**v"}


class _MatrixBuilder:
    """Walks the tree: ``@``, ``.T``, elementwise ``+ - * / **``, elementwise functions and
    ``sum``; subtrees without matrices are handed to the scalar parser whole."""

    def __init__(
        self,
        text: str,
        names: Mapping[str, sp.Expr],
        mats: Mapping,
        field: str,
        notation: Notation | None = None,
        kernel: tuple[int, ...] | None = None,
        time: tuple[int | None, int | None] = (None, None),
    ):
        self.text, self.names, self.mats, self.field = text, names, mats, field
        self.notation, self.kernel = notation, kernel
        self.steps, self.step = time  # a recurrent net's T, and the t of sum_t or name[t] = ...

    def extra(self, count: int) -> set[str]:
        """The notation's function names that take ``count`` arguments."""
        functions = self.notation.functions if self.notation else {}
        return {name for name, (_, counts) in functions.items() if count in counts}

    def op(self, template: str, **operands: sp.Expr) -> sp.Expr:
        return parse_expression(template, operands, self.field, self.notation)

    def segment(self, node: ast.AST) -> str:
        return (ast.get_source_segment(self.text, node) or ast.unparse(node))[:80]

    def build(self, node: ast.AST):
        if not any(
            isinstance(n, ast.Attribute)
            or (isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult))
            or (isinstance(n, ast.Name) and n.id in self.mats)
            for n in ast.walk(node)
        ):
            if isinstance(node, ast.Name) and node.id not in self.names and node.id != "pi":
                hint = did_you_mean(node.id, [*self.mats, *self.names])
                known = ", ".join(self.mats)
                raise SpecError(self.field, f"unknown name '{node.id}'{hint}; vectors: {known}")
            source = ast.get_source_segment(self.text, node) or ast.unparse(node)
            return parse_expression(source, self.names, self.field, self.notation)
        if isinstance(node, ast.Subscript):
            return steps.subscript(self, node)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "sum_t":
            return steps.sum_t(self, node)
        if isinstance(node, ast.Name):
            value = self.mats[node.id]
            return value.array(self) if isinstance(value, steps.StepDefs) else value
        if isinstance(node, ast.Attribute):
            if node.attr != "T":
                raise SpecError(self.field, f"attribute '.{node.attr}' is not allowed (only .T)")
            v = self.build(node.value)
            if isinstance(v, sp.NDimArray):
                raise ShapeMismatch(f"in {self.segment(node)}: .T of a {shape_text(v.shape)} map")
            return v.T if isinstance(v, sp.MatrixBase) else v
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return self.map(
                self.build(node.operand), "-u" if isinstance(node.op, ast.USub) else "u"
            )
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("corr", "conv", "reshape")
        ):
            return maps.call(self, node)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and len(node.args) == 1
            and not node.keywords
        ):
            if node.func.id == "sum":
                v = self.build(node.args[0])
                return self.op("u", u=sp.Add(*entries(v))) if shape_of(v) else v
            if node.func.id in _ELEMENTWISE or node.func.id in self.extra(1):
                return self.map(self.build(node.args[0]), f"{node.func.id}(u)")
        if (  # max(z1, 0), heaviside(z1, 0): elementwise, broadcast as NumPy does
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and len(node.args) == 2
            and not node.keywords
            and (node.func.id in ("max", "min") or node.func.id in self.extra(2))
        ):
            left, right = (self.build(arg) for arg in node.args)
            return self.pair(node, left, right, f"{node.func.id}(u, v)")
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and self.notation:
            symbol = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}.get(type(node.ops[0]))
            if symbol is not None:
                left, right = self.build(node.left), self.build(node.comparators[0])
                return self.pair(node, left, right, f"(u {symbol} v)")
        raise SpecError(self.field, f"not allowed in matrix form: {self.segment(node)}")

    def map(self, v, template: str):
        if isinstance(v, (sp.MatrixBase, sp.NDimArray)):
            return v.applyfunc(lambda e: self.op(template, u=e))
        return self.op(template, u=v)

    def binop(self, node: ast.BinOp):
        left, right = self.build(node.left), self.build(node.right)
        ls, rs = shape_of(left), shape_of(right)
        if isinstance(node.op, ast.MatMult) and (
            isinstance(left, sp.NDimArray) or isinstance(right, sp.NDimArray)
        ):
            where = self.segment(node)
            raise ShapeMismatch(f"in {where}: @ of {shape_text(ls)} and {shape_text(rs)} (maps)")
        if isinstance(node.op, ast.MatMult):
            if ls and rs and ls[1] != rs[0]:
                where = self.segment(node)
                raise ShapeMismatch(f"in {where}: {shape_text(ls)} @ {shape_text(rs)}")
            if ls and rs:
                return (left * right).applyfunc(lambda e: self.op("u", u=e))
            return self.pair(node, left, right, "u*v")
        if type(node.op) not in _BINOPS:
            raise SpecError(
                self.field, f"operator not allowed in matrix form: {self.segment(node)}"
            )
        if isinstance(node.op, ast.Pow) and rs:
            raise ShapeMismatch(f"in {self.segment(node)}: the exponent is {shape_text(rs)}")
        return self.pair(node, left, right, _BINOPS[type(node.op)])

    def pair(self, node: ast.AST, left, right, template: str):
        """An elementwise operation, broadcast as NumPy does: a column times a row is their
        outer product ((a2 - t) * a1.T), a [1, 1] operand acts as a scalar."""
        ls, rs = shape_of(left), shape_of(right)
        if isinstance(left, sp.NDimArray) or isinstance(right, sp.NDimArray):
            return maps.elementwise(self, node, left, right, template)
        if ls and rs and any(p != q and 1 not in (p, q) for p, q in zip(ls, rs, strict=True)):
            where = self.segment(node)
            raise ShapeMismatch(f"in {where}: elementwise on {shape_text(ls)} and {shape_text(rs)}")
        if not (ls or rs):
            return self.op(template, u=left, v=right)

        def entry(m, i: int, j: int) -> sp.Expr:
            if not isinstance(m, sp.MatrixBase):
                return m
            return m[i if m.rows > 1 else 0, j if m.cols > 1 else 0]

        rows, cols = (max(p, q) for p, q in zip(ls or rs, rs or ls, strict=True))
        return sp.Matrix(
            rows, cols, lambda i, j: self.op(template, u=entry(left, i, j), v=entry(right, i, j))
        )


def parse_matrix(
    text: str,
    names: Mapping[str, sp.Expr],
    mats: Mapping,
    field: str = "--expr",
    notation: Notation | None = None,
    kernel: tuple[int, ...] | None = None,
    time: tuple[int | None, int | None] = (None, None),
) -> sp.Expr | sp.Matrix:
    """Parse matrix notation into a SymPy Matrix (or a scalar expression).

    Args:
        text: e.g. ``((a2 - t) * a2 * (1 - a2)) @ a1.T``.
        names: the scalar names (w2_11, a1_2, ...) and their symbols.
        mats: the vector and parameter names (a1, W2, b1, ...) and their Matrices (or a
            symbol for a shared bias).
        field: the field path reported in errors.
        kernel: the spatial shape of the kernel whose gradient ``corr`` computes (the offsets it
            is evaluated at), when the formula is a conv kernel's gradient.
        time: a recurrent net's number of steps T (sequences are indexed, ``sum_t`` sums over
            the steps; ``verify.steps``) and the step t a definition ``name[t] = ...`` is
            evaluated at; (None, None) otherwise.

    Raises:
        ShapeMismatch: operands whose shapes do not fit.
        SpecError: anything outside the grammar or the bounds.
    """
    if not isinstance(text, str) or len(text) > MAX_LENGTH or not text.strip():
        return parse_expression(text, names, field, notation)  # its message for each
    extra = "@" + ("<>=" if notation and notation.comparisons else "") + ("[]" if time[0] else "")
    check_alphabet(text, field, extra=extra)
    text = text.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return parse_expression(text, names, field, notation)
    stack = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_MATRIX_DEPTH:
            raise SpecError(field, f"expression nested too deeply (more than {MAX_MATRIX_DEPTH})")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    try:
        return _MatrixBuilder(text, names, mats, field, notation, kernel, time).build(tree.body)
    except RecursionError:
        raise SpecError(field, "expression nested too deeply") from None
