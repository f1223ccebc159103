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
from ..printing.tex_tree import SYMBOLS

_MATH = re.compile(r"\$([^$]+)\$")
# Unicode mathematics in an op's or a step's prose (the text format's spelling, "∂ℓ/∂x ⊙ γ"), as
# LaTeX commands: a note reaches LaTeX and Markdown as mathematics, never as characters that
# pdflatex cannot typeset.
_UNICODE_TEX = {ch: "\\" + cmd for cmd, ch in SYMBOLS.items() if not ch.isascii()}
_UNICODE_TEX.update({  # what the text format writes that is no single command's character
    "−": "-", "′": "'", "ᵀ": "^{T}", "√": r"\surd", "²": "^{2}", "𝟙": r"\mathbb{1}",
    "ₙ": "_{n}", "ₜ": "_{t}", "ₖ": "_{k}", "₀": "_{0}", "₁": "_{1}",
})  # fmt: skip
_SUB = r"(?:_\{[^{}$]*\}|_[A-Za-z0-9]+)"
_IDENT = rf"[A-Za-z][A-Za-z0-9]*{_SUB}?"
_UNIT = rf"(?:{_IDENT})?(?:[A-Za-z]\u0302|[^\x00-\x7f])[A-Za-z0-9]*{_SUB}?|{_IDENT}(?=ᵀ)"
_UNICODE_SUB = rf"{_IDENT}_\{{[^{{}}$]*[^\x00-\x7f][^{{}}$]*\}}"  # h_{t−1}
_UNICODE_RUN = re.compile(rf"(?:{_UNICODE_SUB}|{_UNIT})(?:[ /]*(?:{_UNIT}))*")
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


def _unicode_tex(run: str) -> str:
    """A run of Unicode mathematics as LaTeX: x̂ (a letter with a combining hat) is \\hat{x},
    Σ_n is \\Sigma_{n}; a character with no LaTeX spelling is '?' (the tests look for it)."""

    def sub(m: re.Match) -> str:
        return "_{" + _unicode_tex(m.group(1) or m.group(2)) + "}"

    run = re.sub(r"_\{([^{}]*)\}|_([A-Za-z0-9]+)", sub, run)
    run = re.sub("([A-Za-z])\u0302", r"\\hat{\1}", run)
    return "".join(
        ch if ch.isascii() else _UNICODE_TEX.get(ch, "?") + ("" if ch in "−′ᵀ²" else " ")
        for ch in run
    ).strip()


def _math_prose(s: str) -> list[tuple[bool, str]]:
    """``_pieces`` with every run of Unicode mathematics in the prose made a math piece."""
    out = []
    for math, p in _pieces(s):
        if math:
            out.append((True, p))
            continue
        at = 0
        for m in _UNICODE_RUN.finditer(p):
            out += [(False, p[at : m.start()]), (True, _unicode_tex(m.group()))]
            at = m.end()
        out.append((False, p[at:]))
    return [(math, p) for math, p in out if p]


def as_text(s: str) -> str:
    return "".join(to_text(p) if math else p for math, p in _pieces(s))


def as_latex(s: str) -> str:
    return "".join(f"${p}$" if math else tex_escape(p) for math, p in _math_prose(s))


def as_markdown(s: str) -> str:
    """GitHub's Markdown: inline mathematics between dollars (Unicode mathematics made LaTeX),
    prose as it is."""
    return "".join(f"${p}$" if math else p for math, p in _math_prose(s))


__all__ = ["as_latex", "as_markdown", "as_text", "tex_escape"]
