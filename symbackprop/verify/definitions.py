"""A hand derivation as people write it: ``dE/dW2 = delta2 @ a1.T`` and, on the next lines,
the definitions it uses (``delta2 = (a2 - t) * a2 * (1 - a2)``), in text or LaTeX.

This is also the form ``verify`` prints its correct formula in, so what it prints can be pasted
back whole. The first line's left side, when there is one, must be dE/d(the --wrt name) (in
LaTeX any ``\\frac{\\partial E}{...}``); every later line defines one of the net's derived
names (a δ, a z, an a, a dx, ...), which then stands for *that* expression in the lines that use
it (yours, not the net's: a wrong δ is caught). Each right side goes through the same
whitelisted parsers as a one-line formula; the definitions are bound in the order they use each
other (any order of lines), a circle is refused.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

import sympy as sp

from ..spec.errors import SpecError
from ..spec.expressions import Notation, parse_expression
from .latex import latex_to_expr
from .matrix import ShapeMismatch, entries, parse_matrix, shape_of, shape_text
from .notation import primes
from .steps import StepDefs, step_index

MAX_DEFINITIONS = 50
_NAME = re.compile(r"[A-Za-z_]\w*")
_STEP = re.compile(r"([A-Za-z_]\w*)\[([\w+\- ]+)\]")  # delta1[t], dh1[T], delta1[3]


def _top_equals(text: str) -> int:
    """Index of the first '=' outside every bracket (not part of <=, >=, ==), else -1."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif (
            ch == "="
            and depth == 0
            and text[i - 1 : i] not in ("<", ">", "=", "!")
            and text[i + 1 : i + 2] != "="
        ):
            return i
    return -1


def split(expr: str, wrt: str, latex: bool, matrix: bool) -> tuple[str, list[tuple[str, str]]]:
    """The formula (in the plain grammar) and its definitions [(name, plain right side)].

    A one-line formula without '=' is returned as it is (translated from LaTeX)."""
    translate = (lambda t: latex_to_expr(t, matrix, "--expr")) if latex else primes
    if not isinstance(expr, str):
        return expr, []
    sep = r"\n|,\s*\\quad|\\\\|\\qquad" if latex else r"\n|;"
    lines = [p.strip() for p in re.split(sep, expr) if p.strip()]
    if not lines:
        return translate(expr), []
    if len(lines) > MAX_DEFINITIONS + 1:
        raise SpecError("--expr", f"at most {MAX_DEFINITIONS} definitions")
    first, defs = lines[0], []
    at = _top_equals(first)
    if at >= 0:
        lhs, first = first[:at].strip(), first[at + 1 :]
        plain = re.sub(r"\s+", "", lhs)
        ok = (
            (r"\partialE" in plain or "dE" in plain)
            if latex
            else plain in (f"dE/d{wrt}", f"∂E/∂{wrt}")
        )
        if not ok:
            raise SpecError("--expr", f"the first line is the formula: dE/d{wrt} = ..., "
                            f"not {lhs[:40]} = ...")  # fmt: skip
    for line in lines[1:]:
        at = _top_equals(line)
        if at < 0:
            raise SpecError("--expr", f"a line after the formula defines a name (NAME = ...): "
                            f"{line[:40]}")  # fmt: skip
        name = translate(line[:at].strip()).strip("() ")
        if not _NAME.fullmatch(name) and not _STEP.fullmatch(name):
            raise SpecError("--expr", f"a definition's left side is one name, not {name[:40]}")
        defs.append((name, translate(line[at + 1 :].strip())))
    return translate(first.strip()), defs


def bind(
    defs: list[tuple[str, str]],
    names: Mapping[str, sp.Expr],
    mats: Mapping,
    raw: set[str],
    notation: Notation,
    steps: int | None = None,
) -> tuple[dict, dict]:
    """``names`` and ``mats`` with each defined name standing for its definition (a
    recurrent net's ``steps``: ``name[t] = ...`` defines a sequence step by step)."""
    names, mats = dict(names), dict(mats)
    spellings: dict[sp.Expr, list[str]] = {}  # h1_1[2] and its alias h1_2_1: the same symbol
    for key, value in names.items():
        if isinstance(value, sp.Symbol):
            spellings.setdefault(value, []).append(key)
    canon = {k: v.name for k, v in names.items() if isinstance(v, sp.Symbol)}
    defs, rules = _steps(defs, mats, steps)
    given = dict(defs)
    if len(given) < len(defs):
        twice = next(n for n, _ in defs if [m for m, _ in defs].count(n) > 1)
        raise SpecError("--expr", f"'{twice}' is defined twice")
    for name in given:
        own = canon.get(name, name)  # x2_1 is x1[2]: an input
        if own in raw or name in ("N", "t", "x") or (name in mats and name[0] in "Wbx"):
            raise SpecError("--expr", f"'{name}' is given (a parameter, input or target), "
                            "not defined by a derivation")  # fmt: skip
        if name not in names and name not in mats:
            raise SpecError("--expr", f"cannot define '{name}': not a name of this net's "
                            "forward or backward pass")  # fmt: skip
    uses = {n: set(_NAME.findall(rhs)) & given.keys() - {n} for n, rhs in given.items()}
    done: list[str] = []
    while len(done) < len(given):
        ready = [n for n in given if n not in done and uses[n] <= set(done)]
        if not ready:
            circle = sorted(set(given) - set(done))
            raise SpecError("--expr", f"the definitions of {', '.join(circle)} use each other "
                            "in a circle")  # fmt: skip
        for n in ready:
            if n in rules:
                want = mats[n]

                def parse(text: str, k: int, names=names, mats=mats) -> object:
                    return parse_matrix(text, names, mats, "--expr", notation, time=(steps, k))

                mats[n] = StepDefs(n, want.shape[1], steps, rules[n], parse)
                value = mats[n].array(_Where(steps))
                mats[n] = value
                for s, v in zip(entries(want), entries(value), strict=True):
                    names.update(dict.fromkeys(spellings.get(s, [s.name]), v))
                _bounded(n, entries(value))
                done.append(n)
                continue
            if n in set(_NAME.findall(given[n])):
                raise SpecError("--expr", f"'{n}' is defined in terms of itself")
            if n in mats and isinstance(mats[n], (sp.MatrixBase, sp.NDimArray)):
                try:
                    value = parse_matrix(given[n], names, mats, "--expr", notation)
                except ShapeMismatch as exc:
                    why = f"in the definition of {n}: shape mismatch {exc}"
                    raise SpecError("--expr", why) from None
                want = mats[n]
                if shape_of(value) != shape_of(want):
                    raise SpecError("--expr", f"{n} is {shape_text(want.shape)}, its definition "
                                    f"{shape_text(shape_of(value))}")  # fmt: skip
                mats[n] = value
                for s, v in zip(entries(want), entries(value), strict=True):
                    names.update(dict.fromkeys(spellings.get(s, [s.name]), v))
            else:
                own = sp.Symbol(canon.get(n, n), real=True)
                value = parse_expression(given[n], names, "--expr", notation)
                names.update(dict.fromkeys(spellings.get(own, [n]), value))
                mats = _refresh(mats, {own: names[n]})
            _bounded(n, entries(mats[n]) if n in mats and shape_of(mats[n]) else names[n])
            done.append(n)
    return names, mats


class _Where:
    """Where a step index is read outside a formula (a definition's left side)."""

    field, step = "--expr", None

    def __init__(self, steps: int | None):
        self.steps = steps

    def segment(self, node: ast.AST) -> str:
        return ast.unparse(node)[:40]


def _steps(defs: list, mats: Mapping, steps: int | None) -> tuple[list, dict]:
    """The definitions ``name[t] = ...`` and ``name[k] = ...`` of each sequence gathered into
    one (name, all right sides) entry, and their rules {"t" or k: right side}."""
    out, rules = [], {}
    for name, rhs in defs:
        m = _STEP.fullmatch(name)
        if m is None:
            out.append((name, rhs))
            continue
        base, index = m.group(1), m.group(2).strip()
        value = mats.get(base)
        if steps is None:
            raise SpecError("--expr", f"only a recurrent net's sequence is defined step by step "
                            f"(name[t] = ...), not {name[:40]}")  # fmt: skip
        if not isinstance(value, sp.NDimArray) or value.rank() != 2:
            known = ", ".join(n for n, v in mats.items()
                              if isinstance(v, sp.NDimArray) and v.rank() == 2)  # fmt: skip
            raise SpecError("--expr", f"cannot define {name[:40]}: not a sequence of this net "
                            f"(its sequences: {known})")  # fmt: skip
        if index == "t":
            key = "t"
        else:
            try:
                key = step_index(_Where(steps), ast.parse(index, mode="eval").body)
            except SyntaxError:
                raise SpecError("--expr", f"a step is t, T or T - 1, ...: {name[:40]}") from None
            if not 1 <= key <= steps:
                raise SpecError("--expr", f"{name} is outside the steps 1..{steps} (a sequence "
                                "is 0 there)")  # fmt: skip
        if key in rules.setdefault(base, {}):
            raise SpecError("--expr", f"'{name}' is defined twice")
        rules[base][key] = rhs
        if base not in dict(out):
            out.append((base, ""))
    joined = {b: " ".join(r.values()) for b, r in rules.items()}
    return [(n, joined.get(n, rhs)) for n, rhs in out], rules


MAX_NODES = 20_000  # a definition written out in the names it uses (d2 = d1*d1, d3 = d2*d2...)


def _bounded(name: str, value) -> None:
    """Refuse definitions that grow without bound once substituted into each other."""
    count = 0
    for count, _ in enumerate(sp.preorder_traversal(value)):  # noqa: B007
        if count > MAX_NODES:
            raise SpecError("--expr", f"the definition of {name} is too large once the names it "
                            f"uses are written out (over {MAX_NODES} nodes)")  # fmt: skip


def _refresh(mats: dict, override: dict) -> dict:
    """The vectors with an element defined on its own (delta2_1 = ...) hold that definition."""
    return {
        k: v.xreplace(override)
        if isinstance(v, sp.MatrixBase)
        else v.applyfunc(lambda e: e.xreplace(override))
        if isinstance(v, sp.NDimArray)
        else override.get(v, v)
        for k, v in mats.items()
    }


__all__ = ["bind", "split"]
