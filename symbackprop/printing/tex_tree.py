"""The LaTeX of the documents as a tree: the subset mathematics is written in (fractions,
scripts, \\left...\\right, \\sum, styles, Greek, the environments bmatrix, cases and aligned,
\\text), for ``printing.mathml`` to print as MathML or Unicode text. A command outside the subset
raises :class:`TexError`, so a new kind's formula that cannot be shown is found by the tests.
"""

from __future__ import annotations

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
# every command that stands for one character, for the way back (document.prose writes the
# Unicode mathematics of a note as these commands)
SYMBOLS = {**_GREEK, **_IDENT, **_OPS, **_LARGE}
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
ENVS = {
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
        if env.rstrip("*") not in ENVS:
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


__all__ = ["ENVS", "Node", "TexError", "parse"]
