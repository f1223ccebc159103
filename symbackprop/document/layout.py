"""Lay out a derivation's sections as plain text, Markdown ($$ blocks) or a LaTeX document.

LaTeX equations wider than a line break at their top-level '=' (align*) and, inside a long
side, between the terms of a sum, so nothing runs off the page.
"""

from __future__ import annotations

import re

from .equations import Eq, Section, visible
from .html import html as html_page
from .prose import as_latex, as_markdown, as_text, tex_escape

_PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[utf8]{inputenc}
\usepackage{amsmath,amssymb}
\usepackage[margin=2cm]{geometry}
\usepackage{graphicx}
\let\amsmathbb\mathbb  % amsfonts has no blackboard 1: the indicator drawn as in print
\renewcommand{\mathbb}[1]{\ifx1#1\mathrm{1\!\!1}\else\amsmathbb{#1}\fi}
\allowdisplaybreaks
"""
WIDTH = 70  # visible characters per display line (10pt, 2 cm margins)


def text(d, secs: list[Section]) -> str:
    lines = [f"Derivation of the gradients of '{d.spec.name}' (symbackprop)", ""]
    for s in secs:
        lines += [s.title, "=" * len(s.title)]
        if s.intro:
            lines.append(as_text(s.intro))
        if s.rows:
            cells = [[r[0][1], *(as_text(c[1]) for c in r[1:])] for r in s.rows]
            widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(s.columns)]
            lines.append(
                "  " + "  ".join(h.ljust(w) for h, w in zip(s.columns, widths, strict=True))
            )
            lines += [
                "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells
            ]
        for e in s.eqs:
            line = "  " + e.txt
            if e.value:  # a matrix's later rows line up under its first
                line += "  =  "
                line += e.value.replace("\n", "\n" + " " * len(line))
            if e.note:
                line += f"    [{as_text(e.note)}]"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def markdown(d, secs: list[Section]) -> str:
    lines = [f"# Gradients of `{d.spec.name}`", ""]
    for s in secs:
        lines += [f"## {s.title}", ""]
        if s.intro:
            lines += [as_markdown(s.intro), ""]
        if s.rows:
            lines.append("| " + " | ".join(s.columns) + " |")
            lines.append("|" + "---|" * len(s.columns))
            for r in s.rows:
                first = f"${r[0][0]}$"
                lines.append("| " + " | ".join([first, *(as_markdown(c[1]) for c in r[1:])]) + " |")
            lines.append("")
        for e in s.eqs:
            long = e.note and len(as_text(e.note)) > MD_TAG_WIDTH
            if long:  # a sentence that introduces its formula, as a textbook page does
                lines += [_sentence(as_markdown(e.note)), ""]
            tag = rf" \tag*{{{as_markdown(e.note)}}}" if e.note and not long else ""
            lines += ["$$", e.tex + _value_tex(e) + tag, "$$", ""]
    return "\n".join(lines)


MD_TAG_WIDTH = 40  # a longer note would squeeze its formula (MathJax never moves a tag below)


def _sentence(note: str) -> str:
    """A long note as prose before its formula: capitalized, ending with a colon."""
    first = note[:1].upper() if note[:1].isalpha() else note[:1]
    return first + note[1:].rstrip(".") + ":"


def _value_tex(e: Eq) -> str:
    if e.value_tex:
        return f" = {e.value_tex}"
    if e.value:
        return " = " + e.value.replace("×", r"\times")
    return ""


def split_top(tex: str, separators: tuple[str, ...]) -> list[str]:
    """Split ``tex`` at separators outside every brace and \\left...\\right pair.

    Each piece after the first starts with its separator. One regular expression finds the
    delimiters and separators (in that order of preference at a position), so a long display is
    scanned once, not character by character."""
    tokens = re.compile(r"\\left(?!arrow)|\\right(?!arrow)|[{}]|"
                        + "|".join(re.escape(s) for s in separators))  # fmt: skip
    pieces, depth, start, pos = [], 0, 0, 0
    while m := tokens.search(tex, pos):
        token, pos = m.group(), m.end()
        if token in ("{", r"\left"):
            depth += 1
        elif token in ("}", r"\right"):
            depth -= 1
        elif depth == 0 and m.start() > start:
            pieces.append(tex[start : m.start()])
            start = m.start()
        else:  # a separator that does not split: one starting inside it still may
            pos = m.start() + 1
    pieces.append(tex[start:])
    return [p.strip() for p in pieces if p.strip()]


def _chunk_terms(side: str) -> list[str]:
    """Break one long side of an equation between the terms of its top-level sum."""
    if visible(side) <= WIDTH:
        return [side]
    terms = split_top(side, (" + ", " - ", r" \cdot ", r" \times "))
    terms = [piece for term in terms for piece in _open_parentheses(term)]
    lines, current = [], ""
    for term in terms:
        if current and visible(current + " " + term) > WIDTH:
            lines.append(current)
            current = term
        else:
            current = f"{current} {term}".strip()
    lines.append(current)
    return lines


def _open_parentheses(term: str) -> list[str]:
    """A term too wide for a line that ends in one parenthesized sum, ``F \\left(A + B +
    ...\\right)`` (F: a sign or other factors, maybe none), or in a function of one (SymPy's
    ``\\tanh{\\left(A + B\\right)}``), as pieces that break between A, B, ...: each line's
    delimiters balanced with ``\\left.`` and ``\\right.``, as amsmath needs (a function's braces
    go: ``\\tanh\\left(...\\right)`` reads the same)."""
    if visible(term) <= WIDTH:
        return [term]
    factors = split_top(term, (" ",))
    last = factors[-1]
    head = re.match(r"(\\[a-zA-Z]+\{)?\\left\(", last)
    close = r"\right)}" if head and head.group(1) else r"\right)"
    if head is None or not last.endswith(close):
        return [term]
    parts = _chunk_terms(last[head.end() : -len(close)].strip())
    if len(parts) == 1:
        return [term]
    prefix = "".join(f + " " for f in factors[:-1])
    opening = prefix + (head.group(1) or "")[:-1] + r"\left("
    n = len(parts) - 1
    return [
        (opening if i == 0 else r"\left. ") + part + (r"\right)" if i == n else r" \right.")
        for i, part in enumerate(parts)
    ]


def _tag(e: Eq) -> str:
    """The step's annotation as a right-aligned tag (amsmath moves it below when it does not
    fit beside the formula)."""
    return rf" \tag*{{\small {as_latex(e.note)}}}" if e.note else ""


def _display(e: Eq) -> str:
    tex = e.tex + _value_tex(e)
    if visible(tex) <= WIDTH:
        return "\\[\n" + tex + _tag(e) + "\n\\]"
    lhs, *sides = split_top(tex, (" = ",))
    if not sides:
        return "\\[\n" + tex + _tag(e) + "\n\\]"
    out, whole = [], False
    for n, side in enumerate(sides):
        side = side[2:].strip() if side.startswith("= ") else side
        chunks = _chunk_terms(side)
        whole |= len(chunks) == 1 and visible(chunks[0]) > WIDTH
        for m, chunk in enumerate(chunks):
            head = f"{lhs} &= " if n == 0 and m == 0 else ("&= " if m == 0 else r"&\quad ")
            out.append(head + chunk)
    if whole:  # a side with no place to break (a sigmoid's fraction): one line, shrunk if wider
        fit = r"\ifdim\width>\linewidth\linewidth\else\width\fi"
        return f"\\[\n\\resizebox{{{fit}}}{{!}}{{$\\displaystyle {tex}$}}{_tag(e)}\n\\]"
    return "\\begin{align*}\n" + " \\\\\n".join(out) + _tag(e) + "\n\\end{align*}"


def latex(d, secs: list[Section]) -> str:
    out = [_PREAMBLE, r"\title{Gradients of \texttt{" + tex_escape(d.spec.name) + "}}",
           r"\author{symbackprop}", r"\date{}", r"\begin{document}", r"\maketitle"]  # fmt: skip
    for s in secs:
        out.append(r"\section*{" + tex_escape(s.title) + "}")
        if s.intro:
            out.append(as_latex(s.intro) + "\n")
        if s.rows:
            out.append(r"\begin{center}\begin{tabular}{lll}")
            out.append(" & ".join(rf"\textbf{{{c}}}" for c in s.columns) + r" \\ \hline")
            for r in s.rows:
                cells = [f"${r[0][0]}$", as_latex(r[1][1]), as_latex(r[2][1])]
                out.append(" & ".join(cells) + r" \\")
            out.append(r"\end{tabular}\end{center}")
        for e in s.eqs:
            out.append(_display(e))
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def html(d, secs: list[Section]) -> str:
    return html_page(d, secs)


FORMATS = {"text": text, "markdown": markdown, "latex": latex, "html": html}
