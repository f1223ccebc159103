"""The pieces every document format is built from: equations and sections, with the number
format of a worked example. A module of its own so that the section builders (sections,
scalar) and the layouts (layout, html) all import it, and none of them imports another back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp

from ..printing import latex as lx


@dataclass(frozen=True)
class Eq:
    """``lhs = rhs`` in LaTeX and text; ``value`` is the number at the sample, if any."""

    tex: str
    txt: str
    value: str = ""
    note: str = ""
    value_tex: str = ""  # LaTeX of the value when it is not plain text (a matrix)


@dataclass
class Section:
    """A titled block: an intro, an optional table of (LaTeX, text) cells, and equations."""

    title: str
    intro: str = ""
    eqs: list[Eq] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    rows: list[tuple[tuple[str, str], ...]] = field(default_factory=list)


def _eq(
    lhs_tex: str, lhs_txt: str, rhs: sp.Expr, *, hadamard=False, elements=False, note="", value=""
):
    """``lhs = rhs``, the right side printed (``elements``: its names are scalars, as in a
    function's definition f(x) or ℓ(a, t)). ``note`` is prose with $math$ (document.prose)."""
    tex = lx.latex(rhs, hadamard, elements=elements)
    return Eq(f"{lhs_tex} = {tex}", f"{lhs_txt} = {lx.text(rhs)}", value, note)


def _fmt(x: float) -> str:
    return f"{x:.9g}"


def visible(tex: str) -> int:
    """A rough count of the characters a formula shows (commands and braces do not count)."""
    tex = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", lambda m: max(m[1], m[2], key=len), tex)
    return len(re.sub(r"\\[a-zA-Z]+|[{}^_&]|\\left|\\right", "", tex))
