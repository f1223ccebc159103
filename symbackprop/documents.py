"""Lay out a derivation's sections as plain text, Markdown ($$ blocks) or a LaTeX document."""

from __future__ import annotations

from .report import Section

_PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[utf8]{inputenc}
\usepackage{amsmath,amssymb}
\usepackage[margin=2cm]{geometry}
\DeclareUnicodeCharacter{2202}{\ensuremath{\partial}}
\DeclareUnicodeCharacter{03A3}{\ensuremath{\Sigma}}
\DeclareUnicodeCharacter{2113}{\ensuremath{\ell}}
\DeclareUnicodeCharacter{03B4}{\ensuremath{\delta}}
\DeclareUnicodeCharacter{2299}{\ensuremath{\odot}}
\DeclareUnicodeCharacter{1D40}{\ensuremath{^T}}
\DeclareUnicodeCharacter{2212}{\ensuremath{-}}
\DeclareUnicodeCharacter{03C3}{\ensuremath{\sigma}}
\DeclareUnicodeCharacter{00D7}{\ensuremath{\times}}
\allowdisplaybreaks
"""


def text(d, secs: list[Section]) -> str:
    lines = [f"Derivation of the gradients of '{d.spec.name}' (symbackprop)", ""]
    for s in secs:
        lines += [s.title, "=" * len(s.title)]
        if s.intro:
            lines.append(s.intro)
        for e in s.eqs:
            line = "  " + e.txt
            if e.value:
                line += f"  =  {e.value}"
            if e.note:
                line += f"    [{e.note}]"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def markdown(d, secs: list[Section]) -> str:
    lines = [f"# Gradients of `{d.spec.name}`", ""]
    for s in secs:
        lines += [f"## {s.title}", ""]
        if s.intro:
            lines += [s.intro, ""]
        for e in s.eqs:
            tex = e.tex + (rf" = {_num_tex(e.value)}" if e.value else "")
            lines += ["$$", tex, "$$"]
            if e.note:
                lines.append(f"*{e.note}*")
            lines.append("")
    return "\n".join(lines)


def _num_tex(value: str) -> str:
    return value.replace("×", r"\times").replace("[", r"\left[").replace("]", r"\right]")


def _tex_escape(s: str) -> str:
    for k, v in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("#", r"\#"),
        ("$", r"\$"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("^", r"\^{}"),
    ):
        s = s.replace(k, v)
    return s


def latex(d, secs: list[Section]) -> str:
    out = [
        _PREAMBLE,
        r"\title{Gradients of \texttt{" + _tex_escape(d.spec.name) + "}}",
        r"\author{symbackprop}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
    ]
    for s in secs:
        out.append(r"\section*{" + _tex_escape(s.title) + "}")
        if s.intro:
            out.append(_tex_escape(s.intro))
        for e in s.eqs:
            tex = e.tex + (rf" = {_num_tex(e.value)}" if e.value else "")
            out.append(r"\[" + "\n" + tex + "\n" + r"\]")
            if e.note:
                out.append(r"\noindent{\small\emph{" + _tex_escape(e.note) + "}}\n")
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


FORMATS = {"text": text, "markdown": markdown, "latex": latex}
