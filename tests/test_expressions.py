"""Tests for the safe expression parser in symbackprop.expressions."""

from __future__ import annotations

import math
import time

import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from symbackprop.spec.errors import SpecError
from symbackprop.spec.expressions import FUNCTIONS, MAX_DEPTH, MAX_LENGTH, parse_expression

x = sp.Symbol("x", real=True)
y = sp.Symbol("y", real=True)
t = sp.Symbol("t", real=True)
X = {"x": x}
YT = {"y": y, "t": t}


def parse(text: str, names: dict[str, sp.Symbol] | None = None) -> sp.Expr:
    return parse_expression(text, X if names is None else names, field="layers[0].activation")


def refuse(text: str, names: dict[str, sp.Symbol] | None = None) -> str:
    """Assert ``text`` is refused quickly with the given field; return the reason (lowercased)."""
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        parse(text, names)
    assert time.perf_counter() - start < 1.0
    assert info.value.field == "layers[0].activation"
    assert info.value.reason
    return info.value.reason.lower()


# ---------------------------------------------------------------- correct parses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x*tanh(log(1+exp(x)))", x * sp.tanh(sp.log(1 + sp.exp(x)))),
        ("x*tanh(softplus(x))", x * sp.tanh(sp.log(1 + sp.exp(x)))),
        ("sigmoid(x)", 1 / (1 + sp.exp(-x))),
        ("max(x, 0.1*x)", sp.Max(x, x / 10)),
        ("min(max(x, 0), 6)", sp.Min(sp.Max(x, 0), 6)),
        ("max(x, 1, 2*x)", sp.Max(x, 1, 2 * x)),
        ("-x**2", -(x**2)),
        ("(-x)**2", x**2),
        ("2**-1", sp.Rational(1, 2)),
        ("2**3**2", sp.Integer(512)),
        ("pi", sp.pi),
        ("2*pi", 2 * sp.pi),
        ("exp(1)", sp.E),
        ("x**0.5", sp.sqrt(x)),
        ("x**-1", 1 / x),
        ("exp(x)**3", sp.exp(x) ** 3),
        ("2**x", 2**x),
        ("+x - -x", 2 * x),
        ("abs(x) + sqrt(x) + erf(x)", sp.Abs(x) + sp.sqrt(x) + sp.erf(x)),
        ("sin(x)*cos(x)/sinh(x)-cosh(x)", sp.sin(x) * sp.cos(x) / sp.sinh(x) - sp.cosh(x)),
        ("1e-5*x + 1.5", x / 100000 + sp.Rational(3, 2)),
        ("  x + 1  ", x + 1),
        ("1000000000000000", sp.Integer(10**15)),
    ],
)
def test_parses_match_hand_built_sympy(text: str, expected: sp.Expr) -> None:
    assert parse(text) == expected


def test_loss_in_y_and_t() -> None:
    assert parse("0.5*(y-t)**2", YT) == sp.Rational(1, 2) * (y - t) ** 2
    assert parse("-t*log(y) - (1-t)*log(1-y)", YT) == -t * sp.log(y) - (1 - t) * sp.log(1 - y)


def test_hand_derivation_names() -> None:
    names = {n: sp.Symbol(n, real=True) for n in ("w2_11", "a1_1", "w2_12", "a1_2", "x1", "t2")}
    got = parse("w2_11*a1_1 + w2_12*a1_2 - t2/x1", names)
    s = names
    assert got == s["w2_11"] * s["a1_1"] + s["w2_12"] * s["a1_2"] - s["t2"] / s["x1"]


def test_float_literals_become_exact_rationals() -> None:
    got = parse("0.1 + 0.2")
    assert got == sp.Rational(3, 10)
    assert isinstance(got, sp.Rational)
    assert isinstance(parse("3"), sp.Integer)


def test_uses_the_callers_symbols() -> None:
    z = sp.Symbol("x", positive=True)
    assert parse("x", {"x": z}) is z
    assert parse("x + 1").free_symbols == {x}


def test_long_flat_sum_is_not_too_deep() -> None:
    n = 500
    assert parse("+".join(["x"] * n)) == n * x
    assert parse("*".join(["x"] * 90)) == x**90


def test_deep_functions_of_x_are_fine() -> None:
    assert parse("sigmoid(" * 25 + "x" + ")" * 25).free_symbols == {x}
    assert parse("softplus(softplus(x))") == sp.log(2 + sp.exp(x))
    assert parse("sqrt(2/pi)*exp(-0.5*x**2)") == sp.sqrt(2 / sp.pi) * sp.exp(-(x**2) / 2)


def test_functions_tuple() -> None:
    assert list(FUNCTIONS) == sorted(FUNCTIONS)
    assert {"exp", "log", "sqrt", "sigmoid", "softplus", "min", "max", "erf"} <= set(FUNCTIONS)


NUMERIC_CASES = [
    ("x*tanh(log(1+exp(x)))", lambda v: v * math.tanh(math.log(1 + math.exp(v)))),
    ("sigmoid(x)", lambda v: 1 / (1 + math.exp(-v))),
    ("softplus(x) - x**2/3", lambda v: math.log(1 + math.exp(v)) - v**2 / 3),
    ("max(x, 0.1*x) + min(x, -1)", lambda v: max(v, 0.1 * v) + min(v, -1)),
    ("sqrt(x**2 + 1) * erf(x/2)", lambda v: math.sqrt(v**2 + 1) * math.erf(v / 2)),
    (
        "abs(sin(x)) - cos(2*x)/cosh(x) + sinh(x/4)",
        lambda v: abs(math.sin(v)) - math.cos(2 * v) / math.cosh(v) + math.sinh(v / 4),
    ),  # noqa: E501
    ("2**x - pi*exp(1)", lambda v: 2**v - math.pi * math.e),
]


@pytest.mark.parametrize(("text", "reference"), NUMERIC_CASES)
@settings(max_examples=25, deadline=None)
@given(value=st.floats(min_value=-20, max_value=20, allow_nan=False))
def test_numeric_value_matches_math(text: str, reference, value: float) -> None:
    got = float(parse(text).evalf(30, subs={x: sp.Float(value, 30)}))
    assert math.isclose(got, reference(value), rel_tol=1e-9, abs_tol=1e-12)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("__import__('os')", "string"),
        ("x.__class__", "attribute"),
        ("x.real", "attribute"),
        ("(lambda: 1)()", "lambda"),
        ("lambda: 1", "lambda"),
        ("[x for x in y]", "comprehension"),
        ("x[0]", "subscript"),
        ("x if x else 1", "if-expression"),
        ("x < 1", "comparison"),
        ("x and 1", "boolean"),
        ("not x", "not"),
        ("10**10**10", "exponent"),
        ("2**1000", "exponent"),
        ("x**1000", "exponent"),
        ("2**-1000", "exponent"),
        ("x**(2**10)", "exponent"),
        ("9" * 20, "too large"),
        ("1" + "0" * 400, "too large"),  # an int beyond any float: no OverflowError
        ("x*-1" + "0" * 400, "too large"),
        ("1e400", "too large"),
        ("-1e16", "too large"),
        ("1j", "complex"),
        ("'abc'", "string"),
        ("b'abc'", "string"),
        ("True", "boolean"),
        ("None", "none"),
        ("x ^ 2", "**"),
        ("e", "exp(1)"),
        ("e*x", "euler"),
        ("sigmod(x)", "did you mean 'sigmoid'"),
        ("exp(x, 2)", "exp"),
        ("exp()", "1 argument"),
        ("sigmoid(x, x)", "sigmoid"),
        ("max(x)", "max"),
        ("min()", "2 or more"),
        ("foo(x)", "unknown function"),
        ("exp", "function"),
        ('f"{x}"', "string"),
        ("x // 2", "//"),
        ("x % 2", "%"),
        ("x @ x", "@"),
        ("x & 1", "not allowed"),
        ("~x", "~"),
        ("1/0", "division by zero"),
        ("x/(x-x)", "division by zero"),
        ("0**-1", "division by zero"),
        ("log(0)", "undefined"),
        ("log(-1)", "real"),
        ("sqrt(-2)", "real"),
        ("(-8)**(1/3)", "real"),
        ("exp(exp(exp(exp(10))))", "range"),
        ("sin(exp(exp(exp(3))))", "range"),
        ("x**sin(exp(exp(exp(3))))", "range"),
        ("(999999999999999**20)**2", "range"),
        ("(1/999999999999999**20)/999999999999999**20", "range"),
        ("", "empty"),
        ("   ", "empty"),
        ("\n\t", "empty"),
        ("x = 1", "assignment"),
        ("import os", "syntax"),
        ("x; y", "one expression"),
        ("*x", "syntax"),
        ("x +", "syntax"),
        ("(x", "syntax"),
        ("f(x=1)", "keyword"),
        ("exp(x=1)", "keyword"),
        ("exp(*[x])", "lists"),
        ("x, 1", "tuple"),
        ("(y := 1)", "assignment"),
        ("max(" + ",".join(f"x+{i}" for i in range(20)) + ")", "min/max"),
        ("max(" * 9 + "x" + ", x)" * 9, "min/max"),
        ("sigmoid(" * 12 + "3" + ")" * 12, "nested too deeply"),
        ("abs(1 - sin(" * 9 + "3" + "))" * 9, "nested too deeply"),
    ],
)
def test_refusals(text: str, word: str) -> None:
    assert word.lower() in refuse(text)


def test_unknown_name_lists_allowed_names() -> None:
    reason = refuse("z")
    assert "unknown name 'z'" in reason
    assert "allowed names: x" in reason
    assert "did you mean 'x'" in refuse("xx")
    assert "allowed names: t, y" in refuse("x", YT)


def test_syntax_error_reports_column() -> None:
    assert refuse("x y").startswith("syntax error at column 3")
    assert refuse("  x y").startswith("syntax error at column 5")


def test_deep_parentheses_refused_quickly() -> None:
    assert "too long" in refuse("(" * 10_000 + "x" + ")" * 10_000)
    assert "syntax" in refuse("(" * 900 + "x" + ")" * 900)


def test_deep_unary_minus_refused_quickly() -> None:
    assert "too long" in refuse("-" * 10_000 + "x")
    assert "nested too deeply" in refuse("-" * 1_500 + "x")
    assert "nested too deeply" in refuse("x" + "**x" * 400)
    assert "nested too deeply" in refuse("exp(" * 100 + "x" + ")" * 100)


def test_depth_limit_boundary() -> None:
    assert parse("-" * (MAX_DEPTH - 5) + "x") in (x, -x)
    assert "nested too deeply" in refuse("-" * (MAX_DEPTH + 5) + "x")


def test_huge_string_refused_before_parsing() -> None:
    assert "too long" in refuse("x+" * 500_000 + "x")
    assert parse("x" + " " * (MAX_LENGTH - 1)) == x
    assert "too long" in refuse("x" + " " * MAX_LENGTH)


def test_nul_byte_refused() -> None:
    assert "'\\x00' (u+0000) at column 2" in refuse("x\x00+1")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("x  # a comment", "'#' at column 4"),
        ("(x +\n 1)", "'\\n' (u+000a) at column 5"),
        ("x\t+ 1", "'\\t' (u+0009) at column 2"),
        ("x +\r1", "'\\r' (u+000d) at column 4"),
        ("x\x1b[31m", "'\\x1b' (u+001b) at column 2"),
        ("2*\uff58", "(u+ff58) at column 3"),  # fullwidth x: Python's parser would read x
        ("x*\u03c0", "(u+03c0) at column 3"),  # Greek pi
        ("x\u00a0+ 1", "(u+00a0) at column 2"),
        ("x\u2028", "(u+2028) at column 2"),
        ("x**2 \\\n+ 1", "'\\\\' at column 6"),
    ],
)
def test_characters_outside_the_alphabet_are_refused_with_their_column(text, where) -> None:
    """CONTRACT §4's grammar has ASCII letters, digits, _, spaces and + - * / ( ) . , only:
    comments, line breaks, control characters and Unicode (which Python's parser would accept
    or normalize, and the documents would echo raw) are refused at their column."""
    reason = refuse(text)
    assert reason.startswith("character ") and f"{where} is not allowed" in reason, reason


def test_non_string_refused() -> None:
    with pytest.raises(SpecError) as info:
        parse_expression(3, X, field="loss")  # type: ignore[arg-type]
    assert info.value.field == "loss"


# ---------------------------------------------------------------- property tests


@settings(max_examples=2000, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_spec_error(text: str) -> None:
    try:
        result = parse_expression(text, X, field="f")
    except SpecError as err:
        assert err.field == "f"
        assert err.reason
    else:
        assert isinstance(result, sp.Basic)


GRAMMAR_CHARS = st.sampled_from(list("x0123456789.+-*/()e ,") + [f"{f}(" for f in FUNCTIONS])


@settings(max_examples=500, deadline=None)
@given(text=st.lists(GRAMMAR_CHARS, max_size=60).map("".join))
def test_grammar_shaped_text_parses_or_raises_spec_error(text: str) -> None:
    try:
        result = parse_expression(text, X, field="f")
    except SpecError as err:
        assert err.field == "f"
    else:
        assert isinstance(result, sp.Basic)


UNARY = [f for f in FUNCTIONS if f not in ("min", "max")]
LEAVES = st.one_of(
    st.just("x"),
    st.integers(min_value=1, max_value=9).map(str),
    st.sampled_from(["0.5", "0.25", "1.5", "pi"]),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from("+-*/"), children).map(
        lambda p: f"({p[0]} {p[1]} {p[2]})"
    )
    unary = st.tuples(st.sampled_from(UNARY), children).map(lambda p: f"{p[0]}({p[1]})")
    return st.one_of(binary, unary, children.map(lambda c: f"-{c}"))


VALID = st.recursive(LEAVES, _combine, max_leaves=12)
# Refusals a valid-looking expression may still earn from its value, e.g. log(x - x).
VALUE_REASONS = ("division by zero", "undefined", "not a real number", "out of range")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=VALID)
def test_random_valid_expressions_parse(text: str) -> None:
    try:
        result = parse_expression(text, X, field="f")
    except SpecError as err:
        assert any(r in err.reason for r in VALUE_REASONS), (text, err.reason)
        assume(False)
    assert isinstance(result, sp.Expr)
    assert result.free_symbols <= {x}
