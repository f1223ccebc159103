"""Stage 1, the parts of a layer every kind shares: parameter specs (init, trainable, bias
shape) and activations, read field by field with the field path in every error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..core import activations, prng
from ..core.ir import Init
from ..core.symbols import X
from .errors import SpecError
from .expressions import parse_expression
from .fields import _bool, _choice, _Fields, _kind, _nested, _num
from .files import HugeInt

SCHEMES = tuple(s for s in prng.SCHEMES if s != "values")  # the named schemes a spec may use
MAX_DERIVATIVE_NODES = 20_000  # of a custom activation or loss (see small_derivative)


@dataclass(frozen=True)
class ParamSpec:
    """A weight or bias. ``shape`` is 'matrix' for weights, 'per_unit' or 'shared' for biases."""

    init: Init
    trainable: bool = True
    shape: str = "matrix"


def param_spec(data: Any, field: str, shape: tuple[int, ...], is_bias: bool) -> ParamSpec | None:
    if is_bias and (data is None or data == "none"):
        return None
    f = _Fields(data, field, "a mapping (e.g. {init: zeros})" + (" or none" if is_bias else ""))
    kind = "matrix"
    if is_bias:
        kind = _choice(f.get("shape", "per_unit"), f.at("shape"), ("per_unit", "shared"), "shape")
        shape = () if kind == "shared" else shape
    raw = f.get("init", "pytorch")
    extras = {
        "uniform": ("low", "high"),
        "normal": ("std",),
        "xavier_uniform": ("gain",),
        "xavier_normal": ("gain",),
    }
    allowed = extras.get(raw, ()) if isinstance(raw, str) else ()
    for key in ("low", "high", "std", "gain"):
        if f.has(key) and key not in allowed:
            raise SpecError(f.at(key), f"only allowed with init: {_owner(key)}")
    if isinstance(raw, str):
        scheme = _choice(raw, f.at("init"), SCHEMES, "init scheme")
        low = _num(f.get("low", -1.0), f.at("low"))
        high = _num(f.get("high", 1.0), f.at("high"))
        if high <= low:
            raise SpecError(f.at("high"), f"must be greater than low ({low:g})")
        std = _num(f.get("std", 1.0), f.at("std"), 0.0)
        gain = _num(f.get("gain", 1.0), f.at("gain"), 0.0)
        init = Init(scheme, None, low, high, std, gain)
    elif isinstance(raw, (int, float, HugeInt)) and not isinstance(raw, bool):
        init = Init("values", _num(raw, f.at("init")))
    elif isinstance(raw, list):
        init = Init("values", _nested(raw, shape, f.at("init")))
    else:
        raise SpecError(
            f.at("init"), f"expected a number, a list or a scheme name, got {_kind(raw)}"
        )
    trainable = _bool(f.get("trainable", True), f.at("trainable"))
    f.done(("init", "trainable", "low", "high", "std", "gain") + (("shape",) if is_bias else ()))
    return ParamSpec(init, trainable, kind)


def _owner(key: str) -> str:
    return {"low": "uniform", "high": "uniform", "std": "normal"}.get(key, "xavier_uniform/normal")


def activation(data: Any, field: str) -> activations.Activation:
    names = activations.NAMES + tuple(activations.ALIASES)
    if isinstance(data, str):
        name = activations.ALIASES.get(data, data)
        _choice(data, field, names, "activation")
        return activations.make(name)
    f = _Fields(data, field, "an activation name or a mapping")
    if f.has("expr"):
        if f.has("name"):
            raise SpecError(f.at("expr"), "give either name or expr, not both")
        text = f.get("expr")
        if not isinstance(text, str):
            raise SpecError(f.at("expr"), f"expected an expression string, got {_kind(text)}")
        expr = parse_expression(text, {"x": X}, f.at("expr"))
        f.done(("expr",))
        act = activations.custom(expr, text)
        small_derivative(expr, X, f.at("expr"))
        real_derivative(activations.derive_activation(act).expr, f.at("expr"))
        return act
    raw = f.get("name", required=True)
    name = activations.ALIASES.get(raw, raw) if isinstance(raw, str) else raw
    _choice(raw, f.at("name"), names, "activation")
    alpha = None
    if name in activations.WITH_ALPHA and f.has("alpha"):
        low_open = name == "elu"
        value = _num(f.get("alpha"), f.at("alpha"), 0.0, 1e6, low_open=low_open)
        alpha = sp.Rational(repr(value))
    f.done(("name", "alpha") if name in activations.WITH_ALPHA else ("name",))
    return activations.make(name, alpha)


_COMPLEX = (sp.re, sp.im, sp.arg, sp.conjugate, sp.Derivative, sp.Subs)


def small_derivative(expr: sp.Expr, symbol: sp.Symbol, field: str) -> sp.Expr:
    """d expr / d symbol, refused when larger than MAX_DERIVATIVE_NODES: every later stage
    (stabilizing, printing, code generation) costs time in its size, which grows as the square
    of a product's length (a product of 130 sigmoids: 140,000 nodes, 80 s to load and generate).
    """
    derivative = sp.diff(expr, symbol)
    for i, _ in enumerate(sp.preorder_traversal(derivative)):
        if i >= MAX_DERIVATIVE_NODES:
            raise SpecError(field, f"its derivative is too large (over {MAX_DERIVATIVE_NODES:,} "
                            "nodes); write a shorter expression")  # fmt: skip
    return derivative


def real_derivative(derivative: sp.Expr, field: str) -> None:
    """Refuse an expression whose derivative SymPy can only write with complex parts (e.g.
    abs(x**x): x**x is complex for x < 0), which no code target can compute."""
    if derivative.has(*_COMPLEX) or derivative.has(sp.zoo, sp.nan):
        raise SpecError(field, "its derivative is not a real function SymPy can write (e.g. a "
                        "power with x in the exponent of a base that can be negative)")  # fmt: skip
