"""The LaTeX of the documents, read back: as MathML (the HTML page) and as plain text (notes in
the text format).

Every formula of a derivation is produced once, as LaTeX (the printers and the op kinds'
formulas); the HTML page needs MathML, which browsers render with no script, no font download
and no network. ``tex_tree`` parses the subset of LaTeX the documents use into a small tree;
this module prints the tree as MathML Core or as Unicode text. A command outside the subset
raises :class:`TexError`, so a new kind's formula that cannot be shown is found by the tests
(tests/test_typesetting.py, tests/test_html.py) rather than by a reader.
"""

from __future__ import annotations

import html
import re

from .tex_tree import ENVS, Node, TexError, parse

# ---- MathML -----------------------------------------------------------------------------------

_BOLD = {**{chr(c): chr(0x1D400 + c - 65) for c in range(65, 91)},
         **{chr(c): chr(0x1D41A + c - 97) for c in range(97, 123)},
         **{chr(c): chr(0x1D7CE + c - 48) for c in range(48, 58)}}  # fmt: skip
_BOLD_ITALIC_GREEK = {chr(c): chr(0x1D736 + c - 0x3B1) for c in range(0x3B1, 0x3CA)}
_BOLD_ITALIC = {**{chr(c): chr(0x1D468 + c - 65) for c in range(65, 91)},
                **{chr(c): chr(0x1D482 + c - 97) for c in range(97, 123)},
                **_BOLD_ITALIC_GREEK, "ϵ": "𝝐", "∂": "𝝏"}  # fmt: skip
_DOUBLE = {"1": "𝟙", "R": "ℝ", "N": "ℕ", "Z": "ℤ", "E": "𝔼"}


def _restyle(node: Node, variant: str) -> Node:
    """Apply a style: bold letters become Unicode's mathematical bold (MathML Core has no
    mathvariant but 'normal'); upright and italic become mathvariant; double-struck 𝟙."""
    if node.kind in ("mi", "mn"):
        table = {"bold": _BOLD, "bold-italic": {**_BOLD, **_BOLD_ITALIC},
                 "double-struck": _DOUBLE}.get(variant)  # fmt: skip
        if table is not None:
            text = "".join(table.get(ch, ch) for ch in node.value)
            return Node("mi" if variant != "bold" or not node.value.isdigit() else "mn",
                        text, variant="normal" if len(text) == 1 else "")  # fmt: skip
        return Node(node.kind, node.value, variant=variant if variant != "italic" else "italic")
    if node.kind == "style":
        return _restyle(node.kids[0], variant)
    kids = [_restyle(k, variant) if isinstance(k, Node) else k for k in node.kids]
    return Node(node.kind, node.value, kids, node.variant, node.large)


def _esc(s: str) -> str:
    return html.escape(s, quote=False)


def _mathml(node: Node | None, display: bool) -> str:
    if node is None:
        return "<mrow></mrow>"
    k = node.kind
    if k == "mi":
        if node.variant == "normal" and len(node.value) == 1:
            return f'<mi mathvariant="normal">{_esc(node.value)}</mi>'
        if node.variant == "italic" and len(node.value) > 1:
            return f'<mi style="font-style:italic">{_esc(node.value)}</mi>'
        return f"<mi>{_esc(node.value)}</mi>"
    if k == "mn":
        return f"<mn>{_esc(node.value)}</mn>"
    if k == "mo":
        attrs = ' largeop="true" movablelimits="true"' if node.large else ""
        attrs += ' stretchy="false"' if node.value in "()[]|" else ""
        return f"<mo{attrs}>{_esc(node.value)}</mo>"
    if k == "text":
        return f"<mtext>{_esc(node.value)}</mtext>"
    if k == "space":
        return f'<mspace width="{node.value}em"></mspace>'
    if k == "row":
        return "<mrow>" + "".join(_mathml(c, display) for c in node.kids) + "</mrow>"
    if k == "frac":
        return f"<mfrac>{_mathml(node.kids[0], display)}{_mathml(node.kids[1], display)}</mfrac>"
    if k == "sqrt":
        if len(node.kids) == 2:
            body, index = (_mathml(kid, display) for kid in node.kids)
            return f"<mroot>{body}{index}</mroot>"
        return f"<msqrt>{_mathml(node.kids[0], display)}</msqrt>"
    if k == "style":
        return _mathml(_restyle(node.kids[0], node.variant), display)
    if k == "accent":
        mark = f'<mo stretchy="false">{_esc(node.value)}</mo>'
        return f'<mover accent="true">{_mathml(node.kids[0], display)}{mark}</mover>'
    if k == "scripts":
        base, sub, sup = node.kids
        b = _mathml(base, display)
        if node.large and display:
            tag = "munderover" if sub is not None and sup is not None else (
                "munder" if sub is not None else "mover")  # fmt: skip
        else:
            tag = "msubsup" if sub is not None and sup is not None else (
                "msub" if sub is not None else "msup")  # fmt: skip
        parts = [p for p in (sub, sup) if p is not None]
        return f"<{tag}>{b}" + "".join(_mathml(p, display) for p in parts) + f"</{tag}>"
    if k == "fenced":
        left, right = node.value.split("\x00")
        out = "<mrow>"
        if left:
            out += f'<mo fence="true" stretchy="true">{_esc(left)}</mo>'
        out += _mathml(node.kids[0], display)
        if right:
            out += f'<mo fence="true" stretchy="true">{_esc(right)}</mo>'
        return out + "</mrow>"
    if k == "table":
        left, right = ENVS[node.variant]
        align = "left" if node.variant in ("cases", "aligned") else "center"
        rows = []
        for r in node.kids:
            cells = []
            for j, c in enumerate(r):
                side = ("right" if j % 2 == 0 else "left") if node.variant == "aligned" else align
                cells.append(f'<mtd style="text-align:{side}">{_mathml(c, display)}</mtd>')
            rows.append("<mtr>" + "".join(cells) + "</mtr>")
        table = "<mtable>" + "".join(rows) + "</mtable>"
        fence = (f'<mo fence="true" stretchy="true">{_esc(left)}</mo>' if left else "") + table
        fence += f'<mo fence="true" stretchy="true">{_esc(right)}</mo>' if right else ""
        return f"<mrow>{fence}</mrow>"
    raise TexError(f"cannot print a {k}")


def to_mathml(tex: str, display: bool = False) -> str:
    """``tex`` as a MathML ``<math>`` element (``display``: a block, limits above and below)."""
    body = _mathml(parse(tex), display)
    mode = ' display="block"' if display else ""
    return f"<math{mode}>{body}</math>"


# ---- text -------------------------------------------------------------------------------------

_SUPERSCRIPT = dict(zip("0123456789+-−()T⊤n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁽⁾ᵀᵀⁿ", strict=True))


def _text(node: Node | None) -> str:
    if node is None:
        return ""
    k = node.kind
    if k in ("mi", "mn"):
        return {"𝟙": "1"}.get(node.value, node.value)
    if k == "mo":
        return {"−": " − ", "=": " = ", "+": " + ", "⊙": " ⊙ ", "×": " × ", ",": ", ",
                "·": " · ", ">": " > ", "<": " < ", "≤": " ≤ ", "≥": " ≥ ", "→": " → ",
                "∑": "Σ"}.get(node.value, node.value)  # fmt: skip
    if k == "text":
        return node.value
    if k == "space":
        return " " if float(node.value) >= 0.25 else ""
    if k == "row":
        return _join([_text(c) for c in node.kids])
    if k == "frac":
        num, den = (_text(c) for c in node.kids)
        return f"{_wrap(num)}/{_wrap(den)}"
    if k == "sqrt":
        return f"√({_text(node.kids[0])})"
    if k in ("style", "accent"):
        kid = node.kids[0]
        if node.variant == "bold" and _text(kid) == "1":
            return "𝟏"  # the vector of ones
        if kid.kind == "row" and all(c.kind in ("mi", "mn") for c in kid.kids):
            return "".join(_text(c) for c in kid.kids)  # \mathit{buf}: one word
        return _text(kid)
    if k == "scripts":
        base, sub, sup = node.kids
        out = _text(base)
        if sup is not None:
            s = _text(sup).replace(" ", "")
            layer = re.fullmatch(r"\((\w+)\)", s)
            if layer:  # a^{(1)}: the layer, as in the names of CONTRACT §2 (a1)
                out += layer.group(1)
            elif s.strip() and set(s) <= {"′"}:  # f'(x)
                out += s
            elif all(ch in _SUPERSCRIPT for ch in s):
                out += "".join(_SUPERSCRIPT[ch] for ch in s)
            else:
                out += f"^{_wrap(s)}"
        if sub is not None:
            out += f"_{_wrap(_text(sub).replace(' ', ''))}"
        return out
    if k == "fenced":
        left, right = node.value.split("\x00")
        return f"{left}{_text(node.kids[0])}{right}"
    if k == "table":
        left, right = ENVS[node.variant]
        if node.variant == "cases":
            return "{" + "; ".join(" ".join(_text(c) for c in r) for r in node.kids) + "}"
        rows = ["; ".join(", ".join(_text(c) for c in r) for r in node.kids)]
        return left + rows[0] + right
    raise TexError(f"cannot print a {k}")


_WORD_END = re.compile(r"[\w′)\]]\Z")
_WORD_START = re.compile(r"\A[^\W_]|\A[Σ∂ℓδ]")


def _join(parts: list[str]) -> str:
    """Concatenate a row's pieces: a blank between two words (c Σ_n, log Σ_j e^z_j), a unary
    minus (−t, (−a) ) written without the blanks of a binary one."""
    out = ""
    for part in parts:
        if part == " − " and (not out.strip() or out.rstrip()[-1] in "([{,=<>"):
            part = "−"
        elif out and _WORD_END.search(out) and _WORD_START.search(part):
            out += " "
        out += part
    return out


def _wrap(s: str) -> str:
    s = s.strip()
    return s if re.fullmatch(r"[^\W_]+|[∂ℓδ′']+\w*|\(.*\)", s) else f"({s})"


def to_text(tex: str) -> str:
    """``tex`` as Unicode text (∂ℓ/∂a1, δ1, Σ_j): the text format's rendering of math in notes."""
    return re.sub(r"  +", " ", _text(parse(tex))).strip()


__all__ = ["Node", "TexError", "parse", "to_mathml", "to_text"]
