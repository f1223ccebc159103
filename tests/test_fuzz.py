"""Issue 6, item 2: hypothesis fuzzing of the spec loader and the expression parser.

Nothing but SpecError escapes parse_spec, whatever JSON/YAML-shaped data it gets (random trees,
and mutations of valid specs at every field); and every custom activation the spec accepts prints
with both code printers, and the NumPy code computes SymPy's value.
"""

from __future__ import annotations

import copy
import json
import keyword
import math
import os
import sys
import tempfile
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp
import yaml
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from symbackprop.core import activations
from symbackprop.core.activations import derive_activation
from symbackprop.core.symbols import A
from symbackprop.printing.c import CCodePrinter
from symbackprop.printing.numpy import NumpyCodePrinter
from symbackprop.spec.errors import SpecError
from symbackprop.spec.expressions import FUNCTIONS
from symbackprop.spec.fields import NAME_RE
from symbackprop.spec.files import HugeInt, read_data_file
from symbackprop.spec.load import parse_spec
from symbackprop.spec.params import MAX_DERIVATIVE_NODES

FAST = settings(
    max_examples=700,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

VALID_SPECS = [
    {
        "name": "iris_softmax",
        "inputs": 4,
        "seed": 42,
        "layers": [
            {"units": 8, "activation": "relu", "weight": {"init": "he_uniform"}},
            {"units": 3, "activation": "softmax", "bias": {"init": "zeros"}},
        ],
        "loss": {"type": "cross_entropy", "reduction": "mean"},
        "optimizer": {"type": "adam", "lr": 0.01, "betas": [0.9, 0.999], "weight_decay": 0.01},
        "train": {"epochs": 200, "batch_size": 16, "shuffle": True},
    },
    {
        "name": "custom",
        "inputs": 2,
        "dtype": "float32",
        "layers": [
            {
                "units": 3,
                "activation": {"expr": "x*tanh(log(1+exp(x)))"},
                "weight": {"init": "normal", "std": 0.5},
                "bias": {"init": "uniform", "low": -0.1, "high": 0.1},
            },
            {"units": 2, "activation": {"name": "elu", "alpha": 0.5}, "bias": {"shape": "shared"}},
            {"units": 1, "activation": "identity", "bias": "none"},
        ],
        "loss": {"type": "custom", "expr": "log(cosh(y - t))", "reduction": "sum"},
        "optimizer": {"type": "rmsprop", "lr": 0.01, "alpha": 0.9, "momentum": 0.5},
    },
    {
        "name": "mazur",
        "inputs": 2,
        "layers": [
            {"units": 2, "activation": "sigmoid", "weight": {"init": [[0.15, 0.2], [0.25, 0.3]]}},
            {"units": 1, "activation": "sigmoid", "weight": {"init": [[0.4, 0.45]]}},
        ],
        "loss": {"type": "sse", "scale": 0.5},
        "optimizer": {"type": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True},
    },
]

WORDS = [
    "name",
    "inputs",
    "dtype",
    "seed",
    "layers",
    "units",
    "activation",
    "weight",
    "bias",
    "init",
    "loss",
    "type",
    "reduction",
    "optimizer",
    "lr",
    "train",
    "epochs",
    "batch_size",
    "shuffle",
    "expr",
    "alpha",
    "shape",
    "std",
    "low",
    "high",
    "scale",
    "betas",
    "eps",
    "momentum",
    "nesterov",
    "weight_decay",
    "dampening",
    "softmax",
    "relu",
    "sigmoid",
    "identity",
    "mse",
    "cross_entropy",
    "binary_cross_entropy",
    "sse",
    "custom",
    "sgd",
    "adam",
    "rmsprop",
    "float32",
    "float64",
    "zeros",
    "ones",
    "none",
    "shared",
    "mean",
    "sum",
    "he_uniform",
    "xavier_normal",
    "x*2",
    "y-t",
    "x**x",
    "__import__('os')",
    "1e999",
    "-1",
    "",
]
HUGE_INTS = st.one_of(  # beyond any float; the loaders' marker for beyond int conversion
    st.integers(min_value=10**308, max_value=10**420).map(lambda i: i * (-1) ** (i % 2)),
    st.integers(min_value=4301, max_value=10_000).map(HugeInt),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-3, max_value=300),
    HUGE_INTS,
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(WORDS),
)
KEYS = st.one_of(st.sampled_from(WORDS), st.text(max_size=8), st.integers(), st.none(), HUGE_INTS)
VALUES = st.recursive(
    SCALARS,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(KEYS, c, max_size=5)),
    max_leaves=24,
)


def accepts_or_spec_error(data) -> None:
    try:
        parse_spec(data)
    except SpecError as err:
        assert err.field is not None and err.reason, err
        assert "\n" not in str(err)


@FAST
@given(data=VALUES)
def test_random_trees_raise_only_spec_error(data) -> None:
    accepts_or_spec_error(data)


@FAST
@given(data=st.dictionaries(st.sampled_from(WORDS[:20]), VALUES, max_size=9))
def test_random_top_level_mappings_raise_only_spec_error(data) -> None:
    accepts_or_spec_error(data)


def _nodes(tree, path=()):
    """Every (path, node) of a nested dict/list tree, the root included."""
    yield path, tree
    items = (
        tree.items()
        if isinstance(tree, dict)
        else enumerate(tree)
        if isinstance(tree, list)
        else ()
    )
    for key, child in items:
        yield from _nodes(child, (*path, key))


@settings(FAST, max_examples=1500)
@given(
    base=st.sampled_from(range(len(VALID_SPECS))),
    picks=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 3), VALUES, KEYS), min_size=1, max_size=3
    ),
)
def test_mutated_valid_specs_raise_only_spec_error(base, picks) -> None:
    spec = copy.deepcopy(VALID_SPECS[base])
    for where, how, value, key in picks:
        nodes = list(_nodes(spec))
        path, _node = nodes[where % len(nodes)]
        if not path:
            continue
        parent = spec
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        if how == 0:  # replace the field's value
            parent[last] = value
        elif how == 1:  # delete the field
            del parent[last]
        elif how == 2 and isinstance(parent, dict):  # add a field beside it
            parent[key] = value
        else:  # the same field, another type
            parent[last] = (
                [parent[last]] if not isinstance(parent[last], list) else {"x": parent[last]}
            )
    accepts_or_spec_error(spec)


def test_valid_specs_are_accepted() -> None:
    for spec in VALID_SPECS:
        parse_spec(copy.deepcopy(spec))


# ---- custom activations: grammar-built expressions through the spec and both printers ---------

x = sp.Symbol("x", real=True)
UNARY = [f for f in FUNCTIONS if f not in ("min", "max")]
LEAVES = st.one_of(
    st.just("x"),
    st.integers(min_value=1, max_value=9).map(str),
    st.sampled_from(["0.5", "0.25", "1.5", "pi", "e", "2.0e-3"]),
    st.sampled_from(["x**2", "x**3", "x**0.5", "2**x", "x**-1"]),
)


def _combine(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
        lambda p: f"({p[0]} {p[1]} {p[2]})"
    )
    unary = st.tuples(st.sampled_from(UNARY), children).map(lambda p: f"{p[0]}({p[1]})")
    pair = st.tuples(st.sampled_from(["min", "max"]), children, children).map(
        lambda p: f"{p[0]}({p[1]}, {p[2]})"
    )
    return st.one_of(binary, unary, pair, children.map(lambda c: f"-{c}"))


EXPRESSIONS = st.recursive(LEAVES, _combine, max_leaves=6)
POINTS = (-1.7, -0.3, 0.45, 1.3)
NAMESPACE = {
    "np": np,
    "_step": lambda v: np.where(v > 0, 1.0, 0.0),
    "_erf": np.vectorize(math.erf, otypes=[float]),
}


def activation_of(text: str) -> sp.Expr | None:
    spec = copy.deepcopy(VALID_SPECS[1])
    spec["layers"][0]["activation"] = {"expr": text}
    try:
        return parse_spec(spec).layers[0].activation.expr
    except SpecError:
        return None


def _reference(expr: sp.Expr, value: float) -> float | None:
    """expr at x = value to 30 digits, or None unless every subexpression is a finite real there
    (x**x at x < 0 is complex in SymPy even where abs() makes the whole real: NaN in NumPy)."""
    point = {x: sp.Float(value, 30)}
    try:
        for sub in sp.preorder_traversal(expr):
            if isinstance(sub, sp.Expr) and sub.free_symbols:
                v = sp.N(sub.subs(point), 30)
                if not (v.is_real and v.is_finite) or abs(v) > 1e100:
                    return None
        return float(sp.N(expr.subs(point), 30))
    except (ValueError, TypeError):  # e.g. Min(x, sqrt(x)) at x < 0: not comparable
        return None


def _numpy_values(expr: sp.Expr, forward: sp.Expr) -> np.ndarray:
    """expr (in x and a = f(x)) evaluated through NumpyCodePrinter's code at POINTS."""
    f = sp.lambdify((x, A), expr, modules=[NAMESPACE, "numpy"], printer=NumpyCodePrinter())
    g = sp.lambdify(x, forward, modules=[NAMESPACE, "numpy"], printer=NumpyCodePrinter())
    points = np.array(POINTS)
    with np.errstate(all="ignore"):
        a = np.asarray(g(points), dtype=float) * np.ones(len(POINTS))
        return np.asarray(f(points, a), dtype=float) * np.ones(len(POINTS))


@settings(FAST, max_examples=int(os.environ.get("FUZZ_EXPRESSIONS", 120)))
@given(text=EXPRESSIONS)
def test_accepted_activations_print_and_evaluate(text: str) -> None:
    expr = activation_of(text)
    assume(expr is not None)
    assert expr.free_symbols <= {x}
    d = derive_activation(activations.custom(expr, text))
    computed = activations.stabilize(expr)  # what the generated code computes for f
    for e in (computed, d.expr, d.raw):
        assert NumpyCodePrinter().doprint(e)
        for dtype in ("float64", "float32"):
            assert CCodePrinter(dtype).doprint(e)
    checks = ((computed, expr), (d.expr, d.raw))
    for printed, reference in checks:
        got = _numpy_values(printed, computed)
        for point, value in zip(POINTS, got, strict=True):
            want = _reference(reference, point)
            if want is None:
                continue
            code = NumpyCodePrinter().doprint(printed)
            assert math.isfinite(value), (text, code, point, want)
            assert math.isclose(value, want, rel_tol=1e-7, abs_tol=1e-7), (text, code, point)


def test_abs_of_x_to_the_x_is_refused_at_load() -> None:
    """Found by this fuzzing: abs(x**x) differentiates to re/im/arg, which no target prints;
    the spec is refused with a field-named error instead of failing at code generation."""
    assert activation_of("abs(x**x)") is None
    assert activation_of("abs(x)**2") is not None
    spec = copy.deepcopy(VALID_SPECS[1])
    spec["layers"][0]["activation"] = {"expr": "abs(x**x)"}
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert err.value.field == "layers[0].activation.expr" and "derivative" in err.value.reason


# ---- spec files as text: duplicate keys, huge integers, YAML 1.2 floats, tags ---------------

EDITS = st.sampled_from(["1" + "0" * 400, "-1" + "0" * 5000, "1e-3", "+1E5", "1e400", "!!int x"])


@settings(FAST, max_examples=300)
@given(
    base=st.sampled_from(range(len(VALID_SPECS))),
    as_json=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.booleans(), EDITS), min_size=1, max_size=3),
)
def test_edited_spec_files_raise_only_spec_error(base, as_json, edits) -> None:
    """Lines of a valid spec file duplicated (a duplicate key, or one more list item) or a number
    replaced: the file loads, or is refused with one SpecError naming the file."""
    text = json.dumps(VALID_SPECS[base], indent=1) if as_json else yaml.safe_dump(VALID_SPECS[base])
    lines = text.splitlines()
    for where, duplicate, value in edits:
        i = where % len(lines)
        if duplicate:
            lines.insert(i, lines[i])
        else:
            head, sep, tail = lines[i].rpartition(": ")
            number = sep and tail.rstrip(",").lstrip("-").replace(".", "", 1).isdigit()
            if number and not (as_json and value.startswith(("!", "+"))):
                lines[i] = head + sep + value + ("," if tail.endswith(",") else "")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("net.json" if as_json else "net.yaml")
        path.write_text("\n".join(lines) + "\n")
        try:
            parse_spec(read_data_file(path))
        except SpecError as err:
            assert err.reason and "\n" not in str(err), err


# ---- custom activations nested deeply: bounded work, and still the right derivative ---------

CHAINS = st.lists(st.sampled_from(UNARY), min_size=1, max_size=30)
INNER = st.sampled_from(["x", "x/3", "2*x - 1", "x**2", "sigmoid(x)*x"])


@settings(FAST, max_examples=int(os.environ.get("FUZZ_DEEP", 20)))
@given(chain=CHAINS, inner=INNER)
def test_deeply_nested_activations_are_derived_right_or_refused(chain, inner) -> None:
    """f1(f2(...(inner))) up to 30 deep: refused with a reason, or derived (within the size
    budget, no SymPy solve/simplify on it) to a derivative equal to finite differences."""
    text = "".join(f"{f}(" for f in chain) + inner + ")" * len(chain)
    expr = activation_of(text)
    assume(expr is not None)
    d = derive_activation(activations.custom(expr, text))
    assert sum(1 for _ in sp.preorder_traversal(d.raw)) <= MAX_DERIVATIVE_NODES
    f = sp.lambdify(x, expr, "mpmath")
    fp = sp.lambdify((x, A), d.expr, "mpmath")
    with mpmath.workdps(30):
        for point in (mpmath.mpf("-0.7"), mpmath.mpf("0.45")):
            h = mpmath.mpf("1e-12")
            try:
                fd = (f(point + h) - f(point - h)) / (2 * h)
                got = fp(point, f(point))
            except (ArithmeticError, ValueError, TypeError):
                continue  # outside the domain (log or sqrt of a negative number)
            if isinstance(fd, mpmath.mpc) or isinstance(got, mpmath.mpc) or abs(fd) > 1e10:
                continue
            assert abs(got - fd) <= mpmath.mpf("1e-8") * max(1, abs(fd)), (text, point, got, fd)


# ---- names: only the ones the generated code can carry ------------------------------------

NAMES = st.one_of(
    st.text(max_size=45),
    st.from_regex(r"[a-z_][a-z0-9_]{0,42}", fullmatch=True),
    st.sampled_from(sorted(sys.stdlib_module_names) + keyword.kwlist + ["all", "lib", "clean"]),
)


@settings(FAST, max_examples=500)
@given(name=NAMES)
def test_names_are_accepted_only_when_every_target_can_carry_them(name) -> None:
    spec = copy.deepcopy(VALID_SPECS[2])
    spec["name"] = name
    try:
        assert parse_spec(spec).name == name
    except SpecError as err:
        assert err.field == "name" and err.reason and "\n" not in str(err)
        return
    assert NAME_RE.match(name) and len(name) <= 40 and not name.startswith("_")
    assert not keyword.iskeyword(name) and name not in sys.stdlib_module_names
    assert name not in ("numpy", "all", "lib", "clean", "makefile", "int", "for", "while")


def test_softplus_of_a_function_real_only_for_positive_x() -> None:
    """Found by this fuzzing: the check that log(1 + exp(u)) = max(u, 0) + log(1 + exp(-|u|))
    compared both sides where u = sqrt(x) is complex, and raised ValueError (a traceback). It
    compares where the function is real."""
    expr = activation_of("softplus(sqrt(x))")
    assert expr is not None
    d = derive_activation(activations.custom(expr, "softplus(sqrt(x))"))
    f = sp.lambdify(x, expr, "mpmath")
    fp = sp.lambdify((x, A), d.expr, "mpmath")
    for point in (0.5, 2.0):
        want = mpmath.diff(lambda v: mpmath.log(1 + mpmath.exp(mpmath.sqrt(v))), point)
        assert abs(fp(point, f(point)) - want) < 1e-12
