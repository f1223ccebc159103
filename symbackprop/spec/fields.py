"""Checking and coercing single spec field values (integers, numbers, booleans, names, lists)
and reading mappings field by field, with the field path and "did you mean" hints in errors."""

from __future__ import annotations

import keyword
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from .errors import SpecError, did_you_mean
from .files import HugeInt

_FLOAT_MAX = sys.float_info.max
MAX_COUNT = 10**9  # the largest epoch count or batch size (spec, command line, programs)


class _Fields:
    """A mapping being read: tracks the field path and refuses keys nobody asked for."""

    def __init__(self, data: Any, path: str, what: str = "a mapping"):
        if not isinstance(data, Mapping):
            raise SpecError(path, f"expected {what}, got {_kind(data)}")
        for key in data:
            if not isinstance(key, str):
                raise SpecError(path, f"keys must be strings, got {key!r}")
        self.data, self.path, self.used = data, path, set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise SpecError(self.at(key), "required field is missing")
            return default
        return self.data[key]

    def done(self, allowed: tuple[str, ...] | None = None) -> None:
        for key in self.data:
            if key not in self.used:
                hint = did_you_mean(key, set(allowed or ()) | self.used)
                raise SpecError(self.at(key), f"unknown field{hint}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, HugeInt):
        return repr(value)
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _show(value: int | HugeInt) -> str:
    """An integer as written, or its length when it would swamp the message."""
    if isinstance(value, HugeInt):
        return repr(value)
    if abs(value) < 10**30:
        return str(value)
    try:
        return f"a {len(str(abs(value)))}-digit integer"
    except ValueError:  # beyond Python's int-string conversion limit (a dict from the API)
        return "an integer of thousands of digits"


def _int(value: Any, field: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, HugeInt)):
        raise SpecError(field, f"expected an integer, got {_kind(value)}")
    if isinstance(value, HugeInt) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise SpecError(field, f"must be {bound}, got {_show(value)}")
    return value


def _num(
    value: Any,
    field: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, HugeInt)):
        raise SpecError(field, f"expected a number, got {_kind(value)}")
    if isinstance(value, HugeInt) or (isinstance(value, int) and abs(value) > _FLOAT_MAX):
        raise SpecError(field, f"out of range: {_show(value)} is beyond the largest float")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(field, f"must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise SpecError(field, f"must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if high is not None and (value > high or (high_open and value == high)):
        raise SpecError(field, f"must be {'<' if high_open else '<='} {high:g}, got {value:g}")
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(field, f"expected true or false, got {_kind(value)}")
    return value


def _choice(value: Any, field: str, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str):
        raise SpecError(field, f"expected a {what} name, got {_kind(value)}")
    if value not in choices:
        raise SpecError(
            field,
            f"unknown {what} '{value}'{did_you_mean(value, choices)}; one of: {', '.join(choices)}",
        )
    return value


def _nested(value: Any, shape: tuple[int, ...], field: str) -> Any:
    """Check an explicit init list has exactly ``shape``; return it as nested tuples of floats."""
    if not shape:
        return _num(value, field)
    if not isinstance(value, list):
        raise SpecError(field, f"expected a list of {shape[0]}, got {_kind(value)}")
    if len(value) != shape[0]:
        want = "x".join(map(str, shape))
        raise SpecError(field, f"wrong shape: expected {want}, got {len(value)} entries here")
    return tuple(_nested(v, shape[1:], f"{field}[{i}]") for i, v in enumerate(value))


NAME_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")
_C_KEYWORDS = frozenset((  # C99, C23 and GCC's asm (names are lower case: no _Bool and such)
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "alignas", "alignof", "bool", "constexpr",
    "false", "nullptr", "static_assert", "thread_local", "true", "typeof", "typeof_unqual", "asm",
))  # fmt: skip
_MAKE_TARGETS = ("all", "lib", "clean")  # the generated Makefile's own targets
_C_GUARDS = {"cblas": "cblas.h", "openblas_config": "OpenBLAS's openblas_config.h"}


def _name(value: Any, field: str) -> str:
    """The spec's name: it names the generated files, the C symbols (``<name>_params``,
    ``<NAME>_H``) and the program, so it must be valid, and harmless, in all of them."""
    if not isinstance(value, str) or not NAME_RE.match(value) or len(value) > 40:
        shown = f"{value!r:.60}" if isinstance(value, str) else _kind(value)
        raise SpecError(
            field, f"must match [a-z_][a-z0-9_]* and be at most 40 characters, got {shown}"
        )
    if value.startswith("_"):
        reason = (
            f"must not start with '_': the C names made from it ({value}_params, "
            f"{value.upper()}_H) are reserved for the C compiler and library"
        )
    elif value in _C_KEYWORDS:
        reason = f"{value!r} is a C keyword"
    elif keyword.iskeyword(value):
        reason = f"{value!r} is a Python keyword; the generated module could not be imported"
    elif value in sys.stdlib_module_names or value == "numpy":
        what = "NumPy's module name" if value == "numpy" else "the name of a Python standard module"
        reason = f"{value!r} is {what}; the generated {value}.py would shadow it"
    elif value in _MAKE_TARGETS:
        reason = f"{value!r} is a target of the generated Makefile ({', '.join(_MAKE_TARGETS)})"
    elif value in ("makefile", "gnumakefile"):
        reason = f"{value!r} is a file make reads instead of the generated Makefile"
    elif value in _C_GUARDS:
        reason = (
            f"{value!r} would make the C include guard {value.upper()}_H, {_C_GUARDS[value]}'s own"
        )
    else:
        return value
    raise SpecError(field, reason)
