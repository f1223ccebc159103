"""Prose with mathematics: the intros and notes of a document.

A note or an intro is prose in which mathematics is written in LaTeX between dollars
(``"targets are probabilities: $\\sum_j t_j = 1$"``), once, for every format: LaTeX and Markdown
keep it as inline mathematics, the text format reads it as Unicode (∑_j t_j = 1) through
``printing.mathml.to_text``. So no formula reaches a page as text-mode characters (a\\_j) and
the text format shows no LaTeX.
"""

from __future__ import annotations

import re

from ..printing.mathml import to_text

_MATH = re.compile(r"\$([^$]+)\$")
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#",
                "$": r"\$", "{": r"\{", "}": r"\}", "^": r"\^{}", "~": r"\~{}"}  # fmt: skip


def tex_escape(s: str) -> str:
    """Plain text for LaTeX's text mode (a name such as iris_softmax)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in s)


def _pieces(s: str) -> list[tuple[bool, str]]:
    """(is_math, text) pieces of ``s``, in order."""
    out, at = [], 0
    for m in _MATH.finditer(s):
        out += [(False, s[at : m.start()]), (True, m.group(1))]
        at = m.end()
    return [*out, (False, s[at:])]


def as_text(s: str) -> str:
    return "".join(to_text(p) if math else p for math, p in _pieces(s))


def as_latex(s: str) -> str:
    return "".join(f"${p}$" if math else tex_escape(p) for math, p in _pieces(s))


def as_markdown(s: str) -> str:
    """GitHub's Markdown: inline mathematics between dollars, prose as it is."""
    return s


__all__ = ["as_latex", "as_markdown", "as_text", "tex_escape"]
