"""A safe parser for the small math expressions users write in specs and hand derivations.

User text is never given to ``eval``, ``exec``, ``sympify`` or ``parse_expr``: it is parsed with
``ast.parse(text, mode="eval")`` and the tree is walked against a whitelist, building SymPy
objects with our own code. Bounds on length, nesting, literals, exponents and the size of every
constant keep any input from making Python or SymPy run away.
"""

from __future__ import annotations

import ast
import math
import string
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sympy as sp

from .errors import SpecError, did_you_mean

MAX_LENGTH = 2000
MAX_DEPTH = 60
MAX_EXPONENT = 100
MAX_LITERAL = 1e15
_MAX_VALUE = 1e300  # largest |value| of any constant (sub)expression
_MAX_INT = 10**300  # largest numerator / denominator of any rational number
_MAX_CONST_DEPTH = 16  # SymPy's evalf (run by its assumptions) is exponential in this depth
_MAX_MINMAX_ARGS = 16  # SymPy's Min/Max compare their arguments pairwise, so keep them few

# name -> (SymPy function, math-module function used to bound constants)
_UNARY: dict[str, tuple[Callable[[sp.Expr], sp.Expr], Callable[[float], float]]] = {
    "abs": (sp.Abs, abs),
    "cos": (sp.cos, math.cos),
    "cosh": (sp.cosh, math.cosh),
    "erf": (sp.erf, math.erf),
    "exp": (sp.exp, math.exp),
    "log": (sp.log, math.log),
    "sin": (sp.sin, math.sin),
    "sinh": (sp.sinh, math.sinh),
    "sqrt": (sp.sqrt, math.sqrt),
    "tanh": (sp.tanh, math.tanh),
}
_VARIADIC = {"max": sp.Max, "min": sp.Min}
FUNCTIONS: tuple[str, ...] = tuple(sorted([*_UNARY, *_VARIADIC, "sigmoid", "softplus"]))
_FLOAT_FUNCS: dict[object, Callable[..., float]] = {
    **dict(_UNARY.values()),
    sp.Max: max,
    sp.Min: min,
}
_UNDEFINED = frozenset({sp.nan, sp.zoo, sp.oo, -sp.oo})
_CHAINS: dict[type, str] = {ast.Add: "+", ast.Sub: "+", ast.Mult: "*", ast.Div: "*"}
_BAD_OPS: dict[type, str] = {
    ast.BitXor: "'^' is not allowed (use ** for powers)",
    ast.FloorDiv: "'//' (floor division) is not allowed",
    ast.Mod: "'%' (modulo) is not allowed",
    ast.MatMult: "'@' (matrix multiplication) is not allowed",
    ast.Not: "'not' is not allowed",
    ast.Invert: "'~' (bitwise not) is not allowed",
}
_BAD_NODES: dict[type, str] = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts (indexing) are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.IfExp: "if-expressions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators (and/or) are not allowed",
    **dict.fromkeys(
        (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp),
        "comprehensions are not allowed",
    ),
    ast.JoinedStr: "f-strings are not allowed",
    ast.Starred: "starred expressions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Tuple: "tuples are not allowed (write a single expression)",
}
_KINDS = {bool: "booleans", str: "strings", bytes: "bytes", complex: "complex numbers"}


def _approx(expr: sp.Basic) -> float:
    """Float value of a constant SymPy expression via the math module (never SymPy's evalf).

    Raises:
        ValueError, ArithmeticError: when it is undefined, not real or overflows.
    """
    if expr.is_Rational:
        return expr.p / expr.q
    if expr is sp.pi:
        return math.pi
    if expr is sp.E:
        return math.e
    args = [_approx(arg) for arg in expr.args]
    if expr.is_Add:
        return math.fsum(args)
    if expr.is_Mul:
        return math.prod(args)
    if expr.is_Pow:
        return math.pow(*args)
    if expr.func not in _FLOAT_FUNCS:
        raise NotImplementedError(expr.func)
    return _FLOAT_FUNCS[expr.func](*args)


def _const_depth(expr: sp.Basic) -> int:
    """Deepest nesting of any symbol-free part of ``expr``."""
    if expr.is_Atom:
        return 0
    inner = max(_const_depth(arg) for arg in expr.args)
    return inner + 1 if expr.is_number else inner


def _depth(tree: ast.AST) -> int:
    """Nesting depth of ``tree``, measured iteratively; flat ``a + b - c`` chains count once."""
    deepest, stack = 0, [(tree, 1)]
    while stack and deepest <= MAX_DEPTH:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in ast.iter_child_nodes(node):
            flat = (
                isinstance(node, ast.BinOp)
                and child is node.left
                and isinstance(child, ast.BinOp)
                and _CHAINS.get(type(child.op), "?") == _CHAINS.get(type(node.op))
            )
            stack.append((child, depth if flat else depth + 1))
    return deepest


@dataclass(frozen=True)
class Notation:
    """What a reader of hand formulas (verify) accepts beyond the spec grammar.

    Attributes:
        functions: extra function names and the SymPy expression each builds from its arguments
            (``heaviside``, ``relu_`` for relu', ...), with the number of arguments allowed.
        comparisons: ``(u > v)`` is the indicator 1[u > v] (as NumPy's True is 1):
            ``Heaviside(u - v, 0)``; ``>=`` is ``Heaviside(u - v, 1)``.
    """

    functions: Mapping[str, tuple[Callable[..., sp.Expr], tuple[int, ...]]]
    comparisons: bool = True


_COMPARE = {ast.Gt: (1, 0), ast.GtE: (1, 1), ast.Lt: (-1, 0), ast.LtE: (-1, 1)}


class _Builder:
    """Walks a parsed tree against the whitelist and builds the SymPy expression."""

    def __init__(
        self, names: Mapping[str, sp.Symbol], field: str, notation: Notation | None = None
    ):
        self.names, self.field, self.minmax_args = names, field, 0
        self.notation = notation

    def fail(self, reason: str) -> SpecError:
        return SpecError(self.field, reason)

    def checked(self, make: Callable[[], sp.Expr]) -> sp.Expr:
        """Run ``make`` and refuse results that are undefined, not real or out of range."""
        try:
            expr = make()
        except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as exc:
            raise self.fail(f"cannot build this expression ({type(exc).__name__})") from None
        atoms = expr.atoms()
        if atoms & _UNDEFINED:
            raise self.fail("value is undefined or infinite (e.g. log(0))")
        if sp.I in atoms:
            raise self.fail("value is not a real number")
        if any(a.is_Rational and max(abs(a.p), a.q) > _MAX_INT for a in atoms):
            raise self.fail("value out of range (a number beyond 1e300)")
        if _const_depth(expr) > _MAX_CONST_DEPTH:
            raise self.fail("constant part nested too deeply")
        if expr.is_number:
            try:
                value = _approx(expr)
            except OverflowError:
                raise self.fail("value out of range (beyond 1e300)") from None
            except NotImplementedError as exc:
                raise self.fail(f"cannot evaluate a constant containing {exc}") from None
            except (ArithmeticError, ValueError):
                raise self.fail("value is undefined or not a real number") from None
            if not (math.isfinite(value) and abs(value) <= _MAX_VALUE):
                raise self.fail("value out of range (beyond 1e300)")
        return expr

    def build(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Constant):
            return self.constant(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise self.fail(_BAD_OPS.get(type(node.op), "this unary operator is not allowed"))
            operand = self.build(node.operand)
            return self.checked(lambda: -operand) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Compare) and self.notation and self.notation.comparisons:
            return self.compare(node)
        raise self.fail(_BAD_NODES.get(type(node), f"{type(node).__name__} is not allowed"))

    def constant(self, value: object) -> sp.Expr:
        if type(value) not in (int, float):
            kind = _KINDS.get(type(value), repr(value))
            raise self.fail(f"only int and float numbers are allowed, not {kind}")
        if abs(value) > MAX_LITERAL:  # exact for ints of any size (no float conversion); inf
            raise self.fail("number literal too large (at most 1e15 in absolute value)")
        if isinstance(value, float):
            return self.checked(lambda: sp.Rational(repr(value)))
        return sp.Integer(value)

    def name(self, ident: str) -> sp.Expr:
        if ident in self.names:
            return self.names[ident]
        if ident == "pi":
            return sp.pi
        if ident in FUNCTIONS:
            raise self.fail(f"'{ident}' is a function; call it as {ident}(...)")
        hint = did_you_mean(ident, [*self.names, "pi"])
        if ident == "e":
            hint = " (Euler's number is written exp(1))"
        allowed = ", ".join(sorted(self.names)) or "(none)"
        raise self.fail(f"unknown name '{ident}'{hint}; allowed names: {allowed}")

    def binop(self, node: ast.BinOp) -> sp.Expr:
        if isinstance(node.op, ast.Pow):
            return self.power(self.build(node.left), self.build(node.right))
        chain = _CHAINS.get(type(node.op))
        if chain is None:
            raise self.fail(_BAD_OPS.get(type(node.op), "this operator is not allowed"))
        pending: list[tuple[ast.operator, ast.expr]] = []
        left: ast.expr = node
        while isinstance(left, ast.BinOp) and _CHAINS.get(type(left.op)) == chain:
            pending.append((left.op, left.right))
            left = left.left
        terms = [self.build(left)]
        for op, right in reversed(pending):
            term = self.build(right)
            if isinstance(op, ast.Sub):
                term = self.checked(lambda t=term: -t)
            elif isinstance(op, ast.Div):
                if term == 0:
                    raise self.fail("division by zero")
                term = self.checked(lambda t=term: sp.Pow(t, -1))
            terms.append(term)
        return self.checked(lambda: sp.Add(*terms) if chain == "+" else sp.Mul(*terms))

    def power(self, base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
        if exponent.is_number:
            value = exponent if exponent.is_Rational else _approx(exponent)
            if abs(value) > MAX_EXPONENT:
                raise self.fail(f"exponent too large (at most {MAX_EXPONENT} in absolute value)")
            if base == 0 and value < 0:
                raise self.fail("division by zero (0 to a negative power)")
        return self.checked(lambda: sp.Pow(base, exponent))

    def compare(self, node: ast.Compare) -> sp.Expr:
        """``(u > v)``: 1 where it holds, else 0, so relu' is ``(z > 0)`` (0 at the kink, as
        PyTorch); one comparison at a time (``0 < z < 1`` is refused)."""
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            raise self.fail("only one comparison with >, >=, < or <= at a time is allowed")
        sign, at_zero = _COMPARE[type(node.ops[0])]
        left, right = self.build(node.left), self.build(node.comparators[0])
        return self.checked(lambda: sp.Heaviside(sign * (left - right), at_zero))

    def call(self, node: ast.Call) -> sp.Expr:
        allowed = ", ".join(FUNCTIONS)
        if not isinstance(node.func, ast.Name):
            raise self.fail(f"calls are only allowed to: {allowed}")
        fname = node.func.id
        extra = self.notation.functions if self.notation else {}
        if fname in extra and not node.keywords:
            make, counts = extra[fname]
            if len(node.args) not in counts or any(isinstance(a, ast.Starred) for a in node.args):
                want = " or ".join(map(str, counts))
                raise self.fail(f"{fname}() takes {want} argument(s), got {len(node.args)}")
            args = [self.build(arg) for arg in node.args]
            return self.checked(lambda: make(*args))
        if fname not in FUNCTIONS:
            hint = did_you_mean(fname, FUNCTIONS)
            raise self.fail(
                f"unknown function '{fname}'{hint}; calls are only allowed to: {allowed}"
            )
        if node.keywords:
            raise self.fail(f"keyword arguments are not allowed in {fname}(...)")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise self.fail(f"starred arguments are not allowed in {fname}(...)")
        if fname in _VARIADIC:
            if len(node.args) < 2:
                raise self.fail(f"{fname}() takes 2 or more arguments, got {len(node.args)}")
            self.minmax_args += len(node.args)
            if self.minmax_args > _MAX_MINMAX_ARGS:
                raise self.fail(f"too many min/max arguments (at most {_MAX_MINMAX_ARGS} in all)")
            args = [self.build(arg) for arg in node.args]
            return self.checked(lambda: _VARIADIC[fname](*args))
        if len(node.args) != 1:
            raise self.fail(f"{fname}() takes exactly 1 argument, got {len(node.args)}")
        arg = self.build(node.args[0])
        if fname == "sigmoid":
            neg_exp = self.checked(lambda: sp.exp(-arg))
            return self.power(self.checked(lambda: 1 + neg_exp), sp.Integer(-1))
        if fname == "softplus":
            pos_exp = self.checked(lambda: sp.exp(arg))
            return self.checked(lambda: sp.log(1 + pos_exp))
        return self.checked(lambda: _UNARY[fname][0](arg))


ALPHABET = frozenset(string.ascii_letters + string.digits + "_ +-*/().,")
_SAME_LINE = "write the expression on one line, words separated by spaces"
_HINTS = {
    "^": "use ** for powers",
    "#": "comments are not allowed",
    **dict.fromkeys("'\"", "strings are not allowed"),
    **dict.fromkeys("[]{}", "subscripts, lists, sets and comprehensions are not allowed"),
    "=": "assignments, comparisons and keyword arguments are not allowed",
    **dict.fromkeys("<>!", "comparisons are not allowed"),
    "%": "modulo is not allowed",
    **dict.fromkeys("&|~", "bitwise operators are not allowed"),
    ":": "lambda, slices and assignment expressions (:=) are not allowed",
    ";": "write one expression",
    "\\": "for LaTeX use verify --latex",
    **dict.fromkeys("\n\r\t\v\f\x85\u2028\u2029", _SAME_LINE),
}


def check_alphabet(text: str, field: str, extra: str = "") -> None:
    """Refuse the first character outside the grammar's alphabet (CONTRACT §4): ASCII letters,
    digits, ``_``, spaces and ``+ - * / ( ) . ,`` (and ``extra``). So no comment, line break,
    control character or look-alike Unicode letter gets past the parser or into a document."""
    for i, ch in enumerate(text):
        if ch in ALPHABET or ch in extra:
            continue
        code = "" if ch.isascii() and ch.isprintable() else f" (U+{ord(ch):04X})"
        symbols = " ".join("+-*/().," + extra)
        hint = _HINTS.get(ch, f"an expression has ASCII letters, digits, _, spaces and {symbols}")
        raise SpecError(field, f"character {ch!r}{code} at column {i + 1} is not allowed: {hint}")


def parse_expression(
    text: str,
    names: Mapping[str, sp.Symbol],
    field: str = "expr",
    notation: Notation | None = None,
) -> sp.Expr:
    """Parse ``text`` into a SymPy expression using only the whitelisted grammar.

    Args:
        text: the user's expression, e.g. ``"x*tanh(softplus(x))"``.
        names: each allowed variable name and the Symbol to use for it.
        field: the field path reported in errors.
        notation: what a hand formula may use beyond a spec's grammar (verify); None: a spec.

    Returns:
        The SymPy expression (built with normal evaluation).

    Raises:
        SpecError: ``SpecError(field, reason)`` on anything outside the grammar or the bounds.
    """
    if not isinstance(text, str):
        raise SpecError(field, f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SpecError(field, f"expression too long ({len(text)} > {MAX_LENGTH} characters)")
    stripped = text.lstrip()
    if not stripped.strip():
        raise SpecError(field, "empty expression")
    check_alphabet(text, field, "<>=" if notation and notation.comparisons else "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        column = (exc.offset or len(stripped) + 1) + (
            len(text) - len(stripped) if (exc.lineno or 1) == 1 else 0
        )
        line = f"line {exc.lineno}, " if exc.lineno and exc.lineno > 1 else ""
        raise SpecError(field, f"syntax error at {line}column {column}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError, OverflowError):
        raise SpecError(field, "expression nested too deeply") from None
    if _depth(tree) > MAX_DEPTH:
        raise SpecError(field, f"expression nested too deeply (more than {MAX_DEPTH} levels)")
    try:
        return _Builder(names, field, notation).build(tree.body)
    except RecursionError:
        raise SpecError(field, "expression nested too deeply") from None
