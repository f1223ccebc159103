"""A derivation as one self-contained HTML page (``derive --format html``).

The page's mathematics is MathML Core, which browsers render natively: no script, no font
download, no network. Every formula is the same LaTeX the other formats print (the op kinds'
formulas and the printers' output), read into MathML by ``printing.mathml`` (SymPy's own
MathML printer cannot be used here: most formulas of a page are LaTeX written by the op kinds,
not SymPy expressions). Prose is escaped; its ``$...$`` mathematics becomes inline MathML.
"""

from __future__ import annotations

import html as _html

from ..printing.mathml import to_mathml
from .equations import Eq, Section, visible
from .prose import _pieces, as_text

_STYLE = """
body { font-family: Georgia, "Times New Roman", serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.45; color: #111; }
h1 { font-weight: normal; text-align: center; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1rem auto; }
th, td { padding: 0.15rem 0.8rem; text-align: left; }
th { border-bottom: 1px solid #333; }
.eq { margin: 0.6rem 0; }
.eq .formula { overflow-x: auto; overflow-y: hidden; padding: 0.25rem 0; text-align: center; }
.eq .note { text-align: right; font-size: 0.85rem; color: #444; }
.eq.beside { display: grid; grid-template-columns: minmax(0, 1fr) auto minmax(0, 1fr);
             align-items: center; column-gap: 1rem; }
.eq.beside .formula { grid-column: 2; }
.eq.beside .note { grid-column: 3; }
math[display="block"] { margin: 0; }
"""


def _prose(s: str) -> str:
    """Escaped prose with its $math$ as inline MathML."""
    return "".join(to_mathml(p) if math else _html.escape(p) for math, p in _pieces(s))


def _value(e: Eq) -> str:
    if e.value_tex:
        return f" = {e.value_tex}"
    if e.value:
        return " = " + e.value.replace("×", r"\times ")
    return ""


BESIDE = 40  # visible characters of formula and note that fit on one line (60rem page)


def _equation(e: Eq) -> str:
    """A formula centred on the page, as a textbook's display; its note right-aligned beside it
    when both fit on one line (a grid whose side columns are equal, so the note does not push
    the formula off centre), else below it, as amsmath moves a tag that does not fit."""
    tex = e.tex + _value(e)
    formula = to_mathml(tex, display=True)
    if not e.note:
        return f'<div class="eq"><div class="formula">{formula}</div></div>'
    note = f'<div class="note">{_prose(e.note)}</div>'
    beside = " beside" if visible(tex) <= BESIDE and len(as_text(e.note)) <= 2 * BESIDE else ""
    return f'<div class="eq{beside}"><div class="formula">{formula}</div>{note}</div>'


def _section(s: Section) -> list[str]:
    out = [f"<h2>{_html.escape(s.title)}</h2>"]
    if s.intro:
        out.append(f"<p>{_prose(s.intro)}</p>")
    if s.rows:
        out.append("<table><tr>" + "".join(f"<th>{_html.escape(c)}</th>" for c in s.columns))
        for r in s.rows:
            cells = [to_mathml(r[0][0]), *(_prose(c[1]) for c in r[1:])]
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        out.append("</table>")
    out += [_equation(e) for e in s.eqs]
    return out


def html(d, secs: list[Section]) -> str:
    """The page: a head with its style, then every section as the other formats have them."""
    title = f"Gradients of {d.spec.name}"
    body = [f"<h1>Gradients of <code>{_html.escape(d.spec.name)}</code></h1>"]
    for s in secs:
        body += _section(s)
    head = (f'<meta charset="utf-8"><title>{_html.escape(title)}</title>'
            f"<style>{_STYLE}</style>")  # fmt: skip
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>" + head + "</head>\n<body>\n"
        + "\n".join(body) + "\n</body>\n</html>\n"
    )  # fmt: skip


__all__ = ["html"]
