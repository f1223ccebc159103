"""The LaTeX of the documents, read back: as MathML (the HTML page) and as plain text (notes in
the text format).

Every formula of a derivation is produced once, as LaTeX (the printers and the op kinds'
formulas); the HTML page needs MathML, which browsers render with no script, no font download
and no network. This module parses the subset of LaTeX that mathematics is written in (fractions,
scripts, \\left...\\right, \\sum, styles, Greek, environments such as bmatrix, cases and
aligned, \\text) into a small tree and prints the tree as MathML Core or as Unicode text. A
command it does not know raises :class:`TexError`, so a new kind's formula that cannot be shown
is found by the tests (tests/test_typesetting.py) rather than by a reader.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field


class TexError(ValueError):
    """LaTeX outside the subset this module reads."""


@dataclass
class Node:
    """A node of the formula: ``kind`` is one of mi, mn, mo, text, space, row, frac, sqrt,
    scripts, fenced, table, style, accent; ``kids`` its children."""

    kind: str
    value: str = ""
    kids: list = field(default_factory=list)
    variant: str = ""  # bold, italic, normal, double-struck (mi); env name (table)
    large: bool = False  # a large operator (Σ) or a function name with limits (max)


_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ",
    "tau": "τ", "upsilon": "υ", "phi": "ϕ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ",
    "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}  # fmt: skip
_IDENT = {"ell": "ℓ", "partial": "∂", "nabla": "∇", "infty": "∞", "imath": "ı", "hbar": "ℏ"}
_OPS = {
    "odot": "⊙", "cdot": "·", "times": "×", "circ": "∘", "pm": "±", "mp": "∓", "ast": "∗",
    "star": "⋆", "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠",
    "approx": "≈", "equiv": "≡", "sim": "∼", "propto": "∝", "in": "∈", "to": "→",
    "rightarrow": "→", "leftarrow": "←", "mapsto": "↦", "Rightarrow": "⇒", "mid": "∣",
    "top": "⊤", "dots": "…", "ldots": "…", "cdots": "⋯", "vdots": "⋮", "ddots": "⋱",
    "lbrace": "{", "rbrace": "}", "langle": "⟨", "rangle": "⟩", "lvert": "|", "rvert": "|",
    "vert": "|", "gt": ">", "lt": "<", "colon": ":", "setminus": "∖", "cup": "∪", "cap": "∩",
    "otimes": "⊗", "oplus": "⊕", "prime": "′",
}  # fmt: skip
_LARGE = {"sum": "∑", "prod": "∏", "int": "∫", "bigodot": "⨀", "bigoplus": "⨁"}
_FUNCS = {"log", "ln", "exp", "sin", "cos", "tan", "tanh", "sinh", "cosh", "erf", "det",
          "max", "min", "sup", "inf", "lim", "arg", "sgn", "softmax"}  # fmt: skip
_LIMIT_FUNCS = {"max", "min", "sup", "inf", "lim", "argmax", "argmin"}
_STYLES = {"mathbf": "bold", "boldsymbol": "bold-italic", "bm": "bold-italic",
           "mathrm": "normal", "mathit": "italic", "mathbb": "double-struck",
           "mathsf": "normal", "mathtt": "normal", "mathcal": "normal", "operatorname": "op",
           "operatorname*": "op"}  # fmt: skip
_SPACES = {",": 0.1667, ":": 0.2222, ";": 0.2778, "!": -0.1667, " ": 0.25, "quad": 1.0,
           "qquad": 2.0, "enspace": 0.5, "thinspace": 0.1667}  # fmt: skip
_IGNORED = {"displaystyle", "textstyle", "limits", "nolimits", "big", "Big", "bigg", "Bigg",
            "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "nonumber", "notag"}  # fmt: skip
_ACCENTS = {"hat": "^", "bar": "¯", "tilde": "~", "vec": "→", "dot": "˙", "overline": "¯",
            "widehat": "^", "widetilde": "~"}  # fmt: skip
_ENVS = {
    "bmatrix": ("[", "]"),
    "pmatrix": ("(", ")"),
    "vmatrix": ("|", "|"),
    "matrix": ("", ""),
    "cases": ("{", ""),
    "aligned": ("", ""),
    "array": ("", ""),
    "smallmatrix": ("", ""),
}
_TOKEN = re.compile(
    r"(?P<cmd>\\(?:[A-Za-z]+\*?|[^A-Za-z]))|(?P<num>\d+(?:\.\d+)?)|(?P<space>\s+)|(?P<char>.)",
    re.DOTALL,
)


def _tokens(tex: str) -> tuple[list[str], list[int]]:
    """The tokens of ``tex`` (blanks dropped) and where each starts."""
    toks, starts = [], []
    for m in _TOKEN.finditer(tex):
        if m.lastgroup != "space":
            toks.append(m.group())
            starts.append(m.start())
    return toks, starts


class _Parser:
    def __init__(self, tex: str):
        self.tex, self.i = tex, 0
        self.toks, self.starts = _tokens(tex)

    def fail(self, why: str) -> TexError:
        return TexError(f"{why} in {self.tex[:200]!r}")

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise self.fail(f"expected {want or 'more'}, found {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        out = self.row(())
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return out

    def row(self, stops: tuple[str, ...]) -> Node:
        kids: list[Node] = []
        while (tok := self.peek()) is not None and tok not in stops:
            if tok in ("^", "_", "'"):
                base = kids.pop() if kids else Node("row")
                kids.append(self.scripts(base))
                continue
            kids.append(self.atom())
        return Node("row", kids=kids)

    def scripts(self, base: Node) -> Node:
        sub = sup = None
        primes = ""
        while self.peek() in ("^", "_", "'"):
            tok = self.take()
            if tok == "'":
                primes += "′"
            elif tok == "^":
                sup = self.argument()
            else:
                sub = self.argument()
        if primes:
            mark = Node("mo", primes)
            sup = mark if sup is None else Node("row", kids=[mark, sup])
        return Node("scripts", kids=[base, sub, sup], large=base.large)

    def argument(self) -> Node:
        """A braced group or one token (x^2, x_i, a^\\top)."""
        if self.peek() == "{":
            return self.group()
        tok = self.peek()
        if tok is None:
            raise self.fail("missing argument")
        if tok.startswith("\\"):
            return self.atom()
        self.take()
        if tok[0].isdigit() and len(tok) > 1 and "." not in tok:  # x^23 is x^2 3
            self.toks.insert(self.i, tok[1:])
            self.starts.insert(self.i, self.starts[self.i - 1] + 1)
            tok = tok[0]
        return self.char(tok)

    def group(self) -> Node:
        self.take("{")
        out = self.row(("}",))
        self.take("}")
        return out

    def raw_group(self) -> str:
        """The source text of a braced group, braces balanced (for \\text and \\begin)."""
        self.take("{")
        start, depth = self.starts[self.i - 1] + 1, 1
        while True:
            tok = self.take()
            depth += tok == "{"
            depth -= tok == "}"
            if depth == 0:
                return self.tex[start : self.starts[self.i - 1]]

    def char(self, tok: str) -> Node:
        if tok[0].isdigit() or (tok[0] == "." and len(tok) > 1):
            return Node("mn", tok)
        if tok.isalpha():
            return Node("mi", tok)
        if tok == "{" or tok == "}":
            raise self.fail(f"unbalanced {tok!r}")
        if tok == "-":
            return Node("mo", "−")
        if tok == "&" or tok == "\\":
            raise self.fail(f"{tok!r} outside an environment")
        if tok in "$%#":
            raise self.fail(f"{tok!r} in mathematics")
        return Node("mo", tok)

    def atom(self) -> Node:
        tok = self.peek()
        assert tok is not None
        if tok == "{":
            return self.group()
        if not tok.startswith("\\"):
            self.take()
            return self.char(tok)
        self.take()
        name = tok[1:]
        if name in ("frac", "dfrac", "tfrac"):
            return Node("frac", kids=[self.argument(), self.argument()])
        if name == "sqrt":
            if self.peek() == "[":
                self.take()
                index = self.row(("]",))
                self.take("]")
                return Node("sqrt", kids=[self.argument(), index])
            return Node("sqrt", kids=[self.argument()])
        if name == "left":
            return self.fenced()
        if name in _STYLES:
            return self.style(_STYLES[name])
        if name in ("text", "textrm", "textit", "textbf", "mbox"):
            return Node("text", self.raw_group().replace("~", " "))
        if name == "begin":
            return self.environment()
        if name in _GREEK:
            return Node("mi", _GREEK[name])
        if name in _IDENT:
            return Node("mi", _IDENT[name])
        if name in _OPS:
            return Node("mo", _OPS[name])
        if name in _LARGE:
            return Node("mo", _LARGE[name], large=True)
        if name in _FUNCS:
            return Node("mi", name, variant="normal", large=name in _LIMIT_FUNCS)
        if name in _SPACES:
            return Node("space", str(_SPACES[name]))
        if name in _IGNORED:
            return Node("row")
        if name in _ACCENTS:
            return Node("accent", _ACCENTS[name], kids=[self.argument()])
        if name in ("mathrel", "mathbin", "mathop", "mathord"):
            return self.argument()
        if name in ("{", "}", "|", "#", "%", "&", "$", "_"):
            return Node("mo", {"|": "‖"}.get(name, name))
        raise self.fail(f"unknown command {tok}")

    def fenced(self) -> Node:
        left = self.delimiter()
        body = self.row((r"\right",))
        self.take(r"\right")
        return Node("fenced", kids=[body], value=left + "\x00" + self.delimiter())

    def delimiter(self) -> str:
        tok = self.take()
        if tok == ".":
            return ""
        if tok.startswith("\\"):
            name = tok[1:]
            if name in _OPS:
                return _OPS[name]
            if name in ("{", "}", "|"):
                return {"|": "‖"}.get(name, name)
            raise self.fail(f"unknown delimiter {tok}")
        return tok

    def style(self, variant: str) -> Node:
        if variant == "op":
            return Node("mi", self.raw_group(), variant="normal", large=True)
        body = self.argument()
        return Node("style", variant=variant, kids=[body])

    def environment(self) -> Node:
        env = self.raw_group()
        if env.rstrip("*") not in _ENVS:
            raise self.fail(f"unknown environment {env}")
        if env == "array" and self.peek() == "{":
            self.raw_group()  # column spec
        rows, cells = [], []
        while True:
            cell = self.row(("&", "\\\\", r"\end"))
            cells.append(cell)
            tok = self.take()
            if tok == "&":
                continue
            rows.append(cells)
            cells = []
            if tok == r"\end":
                if self.raw_group() != env:
                    raise self.fail(f"\\begin{{{env}}} ended by another environment")
                break
        return Node("table", variant=env.rstrip("*"), kids=rows)


def parse(tex: str) -> Node:
    """The tree of ``tex`` (raises TexError outside the subset)."""
    return _Parser(tex).parse()


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
        left, right = _ENVS[node.variant]
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
        left, right = _ENVS[node.variant]
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
