"""Hand derivations typed in LaTeX, translated into the plain expression grammar.

A small tokenizer and recursive-descent translator turns
``(a^{(2)}_1 - t_1) a^{(2)}_1 (1 - a^{(2)}_1) a^{(1)}_1`` into the plain expression
``((a2_1 - t1)*a2_1*(1 - a2_1)*a1_1)`` in CONTRACT §2 names, which is then parsed by the same
whitelisted parsers as typed input (``expressions.parse_expression``, or
``matrix_input.parse_matrix`` in matrix form), so every name check and bound applies.
"""

from __future__ import annotations

import re

from ..spec.errors import SpecError
from ..spec.expressions import FUNCTIONS, MAX_DEPTH, MAX_LENGTH
from .latex_names import TRANSPOSE, NameSyntax
from .latex_steps import TimeSyntax
from .notation import DERIVABLE

MAX_LATEX_LENGTH = 4000
MAX_NESTING = 2 * MAX_DEPTH  # as many levels of parentheses as the scalar parser allows

_TOKEN = re.compile(
    r"\s+|~|\\[,;:! ]|\\left\.|\\right\.|(?P<cmd>\\[A-Za-z]+)|(?P<num>\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<char>[A-Za-z{}()\[\]^_+\-*/',|<>=])",
    re.ASCII,  # \d and \s: ASCII digits and blanks only, as the plain grammar has
)
_SKIP = {r"\left", r"\right", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr", r"\big", r"\Big"}
_FUNCS = {r"\sigma": "sigmoid", r"\exp": "exp", r"\log": "log", r"\ln": "log", r"\tanh": "tanh"}
_FUNCS.update({rf"\{f}": f for f in ("sinh", "cosh", "sin", "cos", "max", "min", "sqrt")})
_PRIME = {"sigmoid": "(sigmoid({0})*(1 - sigmoid({0})))", "tanh": "(1 - tanh({0})**2)"}
_WRAPPERS = {r"\mathbf", r"\boldsymbol", r"\bm", r"\vec", r"\mathrm", r"\operatorname", r"\text"}
_MULS = {r"\cdot", r"\times", "*"}
_MAPS = ("corr", "conv")  # a conv kernel's gradient: \operatorname{corr}(x, \delta), x \star \delta
_HADAMARD = {r"\odot", r"\circ"}

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_COMPARISONS = {">": ">", "<": "<", r"\gt": ">", r"\lt": "<", r"\geq": ">=", r"\ge": ">=",
                r"\leq": "<=", r"\le": "<=", r"\geqslant": ">=", r"\leqslant": "<="}  # fmt: skip
_ONE = {r"\mathbb", r"\mathbf", r"\mathds", r"\mathbbm", r"\boldsymbol", r"\mathrm"}


class _Parser(NameSyntax, TimeSyntax):
    """Recursive descent over the token list, producing a parenthesized plain expression."""

    def __init__(self, text: str, matrix: bool, field: str):
        self.field, self.matrix, self.depth = field, matrix, 0
        self.toks: list[tuple[str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise self.fail(f"unexpected character {text[pos]!r}", pos)
            tok = m.group("cmd") or m.group("num") or m.group("char")
            if tok and tok not in _SKIP:
                self.toks.append((tok, pos))
            pos = m.end()
        self.i = 0

    def fail(self, reason: str, pos: int | None = None) -> SpecError:
        if pos is None:
            pos = self.toks[self.i][1] if self.i < len(self.toks) else -1
        where = "at the end of the input" if pos < 0 else f"at column {pos + 1}"
        return SpecError(self.field, f"LaTeX: {reason} {where}")

    def peek(self, k: int = 0) -> str | None:
        return self.toks[self.i + k][0] if self.i + k < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            want = f"expected '{expected}'" if expected else "incomplete expression"
            raise self.fail(f"{want}, found '{tok}'" if tok else want)
        self.i += 1
        return tok

    def parse(self) -> str:
        if not self.toks:
            raise SpecError(self.field, "empty expression")
        out = self.expr()
        if self.peek() is not None:
            raise self.fail(f"unexpected '{self.peek()}'")
        return out

    def nest(self, delta: int) -> None:
        self.depth += delta
        if self.depth > MAX_NESTING:
            raise self.fail(f"nested too deeply (more than {MAX_NESTING} levels)")

    def expr(self) -> str:
        self.nest(1)
        out = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            out = f"{out} {op} {self.term()}"
        if self.peek() in _COMPARISONS:  # [z > 0]: an indicator (Iverson bracket)
            op = _COMPARISONS[self.take()]
            out = f"({out}) {op} {self.term()}"
        self.nest(-1)
        return f"({out})"

    def indicator(self) -> str | None:
        r"""``\mathbb{1}[z > 0]``, ``\mathbf{1}_{z > 0}``: the indicator, as ``(z > 0)``."""
        if not (self.peek(1) == "{" and self.peek(2) == "1" and self.peek(3) == "}"):
            return None
        if self.peek(4) not in ("[", "(", "_", r"\left"):
            return None
        self.i += 4
        if self.peek() == "_":
            self.take()
            return self.braced()
        close = _OPENERS[self.take()]
        out = self.expr()
        self.take(close)
        return out

    def term(self) -> str:
        if self.peek() in ("-", "+"):
            sign = self.take()
            self.nest(1)
            rest = self.term()
            self.nest(-1)
            return f"(-{rest})" if sign == "-" else rest
        out = self.power()
        while True:
            tok = self.peek()
            if tok == r"\star" and self.matrix:
                self.take()
                out = f"corr({out}, {self.power()})"
            elif tok in _MULS or tok in _HADAMARD or tok == "/":
                self.take()
                op = "/" if tok == "/" else "@" if self.matrix and tok in _MULS else "*"
                out = f"({out} {op} {self.power()})"
            elif self.starts_primary(tok):
                out = f"({out} {'@' if self.matrix else '*'} {self.power()})"
            else:
                return out

    def starts_primary(self, tok: str | None) -> bool:
        if tok is None:
            return False
        if tok[0].isalpha() or tok[0].isdigit() or tok[0] == "." or tok in ("(", "[", "{"):
            return True
        return (
            tok in _FUNCS
            or tok in _WRAPPERS
            or tok in (r"\frac", r"\dfrac", r"\tfrac", r"\delta", r"\pi", r"\sum")
        )

    def power(self) -> str:
        self.nest(1)
        out = self.primary()
        self.nest(-1)
        while self.peek() == "^":
            self.take()
            out = self.transposed(out) if self.transpose_next() else f"({out})**{self.group()}"
        return out

    def transposed(self, out: str) -> str:
        if not self.matrix:
            raise self.fail(
                "transpose (^T) is only allowed in matrix form (--wrt a whole parameter)"
            )
        return f"({out}).T"

    def transpose_next(self) -> bool:
        """Consume ``T``, ``{T}``, ``\\top``, ``{\\top}`` after ``^`` if present."""
        if self.peek() in TRANSPOSE:
            self.take()
            return True
        if self.peek() == "{" and self.peek(1) in TRANSPOSE and self.peek(2) == "}":
            self.i += 3
            return True
        return False

    def group(self) -> str:
        """A braced group, or a single token (LaTeX: ``x^2``, ``x_1``)."""
        if self.peek() == "{":
            self.take()
            out = self.expr()
            self.take("}")
            return out
        tok = self.take()
        if tok[0].isdigit() and len(tok) > 1 and "." not in tok:
            self.i -= 1
            self.toks[self.i] = (tok[1:], self.toks[self.i][1] + 1)
            return tok[0]
        if tok[0].isdigit() or (tok.isalpha() and len(tok) == 1):
            return tok
        raise self.fail(f"expected a group {{...}} after ^ or _, found '{tok}'")

    def primary(self) -> str:
        tok = self.peek()
        if tok is None:
            raise self.fail("incomplete expression")
        if tok[0].isdigit() or tok[0] == ".":
            return self.take()
        if tok in _OPENERS:
            self.take()
            out = self.expr()
            self.take(_OPENERS[tok])
            return out
        if tok in (r"\frac", r"\dfrac", r"\tfrac") and self.peek(2) == r"\partial":
            return self.partial()
        if tok in (r"\frac", r"\dfrac", r"\tfrac"):
            self.take()
            return f"({self.braced()} / {self.braced()})"
        if tok == r"\pi":
            self.take()
            return "pi"
        if tok == r"\sum":
            return self.batch_sum()
        if tok in _FUNCS:
            return self.function(_FUNCS[self.take()])
        if tok in _ONE and (found := self.indicator()) is not None:
            return found
        if tok == "H" and self.peek(1) == "(":  # the Heaviside step H(z)
            self.take()
            return self.function("heaviside")
        if tok in (r"\operatorname", r"\mathrm") and self.peek(1) == "{":
            start = self.i
            self.i += 2
            word = ""
            while self.peek() not in ("}", None) and len(self.peek() or "") == 1:
                word += self.take()
            if (word in FUNCTIONS or word in DERIVABLE or word in _MAPS) and self.peek() == "}":
                self.take()
                return self.function(word)
            if word == "reshape" and self.peek() == "}" and self.peek(1) == "_" and self.matrix:
                self.i += 2
                return self.reshape()
            layered = self.peek() == "}" and self.peek(1) == "^" and self.peek(3) == "("
            if word.isalpha() and layered:
                self.take()  # \mathrm{hs}^{(1)}_{1}[2], \mathrm{br}^{(1)}_{1}: as printed
                return self.name(word)
            if len(word) > 1 and self.peek() == "}":
                known = ", ".join(sorted({*FUNCTIONS, *DERIVABLE}))
                raise self.fail(f"unknown function {tok}{{{word}}}; known: {known}")
            self.i = start
        if tok in _WRAPPERS:
            self.take()
            if self.peek() != "{":
                return self.name(self.base())
            self.take("{")
            base = self.base()
            while base.isalpha() and len(self.peek() or "") == 1 and self.peek().isalpha():
                base += self.take()  # \mathbf{hs}^{(1)}: a gated layer's hs1
            self.take("}")
            return self.name(base)
        if tok == r"\delta" or (len(tok) == 1 and tok.isalpha()):
            return self.name(self.base())
        raise self.fail(f"unexpected '{tok}'")

    def partial(self) -> str:
        r"""``\frac{\partial \ell}{\partial \mathbf{a}^{(3)}}`` (one sample's ∂ℓ/∂a3, as the
        documents and verify print it) as the name ``da3``; ``\left.\frac{...}{...}\right|_{
        \mathbf{z}^{(2)}}`` (its part through z2) as ``da3__via_z2``."""
        self.take()
        self.take("{")
        self.take(r"\partial")
        if self.take() not in (r"\ell", "E", "L"):
            raise self.fail(r"a derivative of the loss: \frac{\partial \ell}{\partial ...}")
        self.take("}")
        self.take("{")
        self.take(r"\partial")
        name = self.primary()
        self.take("}")
        if re.fullmatch(r"[a-z]\w*\[[\w+-]+\]", name):  # ∂ℓ/∂h_t: the sequence dh1 at t
            return f"d{name}"
        if not re.fullmatch(r"[a-z]\w*", name):
            raise self.fail(f"a derivative with respect to one name, not {name[:40]}")
        if self.peek() == "|" and self.peek(1) == "_":
            self.i += 2
            via = self.group().strip("()")
            return f"d{name}__via_{via}"
        return f"d{name}"

    def batch_sum(self) -> str:
        r"""``\sum_n``, ``\sum_{n=1}^{N}``: Σ over the batch's samples of the rest of the term
        (up to the next top-level + or -), as ``sum_n(...)`` (``verify --batch``)."""
        self.take(r"\sum")
        if self.peek() != "_":
            raise self.fail(r"a sum is over the batch's samples: \sum_n or \sum_{n=1}^{N}")
        self.take("_")
        limits = [self.take()] if self.peek() != "{" else []
        if not limits:
            self.take("{")
            while self.peek() not in ("}", None):
                limits.append(self.take())
            self.take("}")
        if limits[:1] == ["t"] and self.matrix:
            return self.time_sum(limits)
        if limits not in (["n"], ["n", "=", "1"]):
            raise self.fail(r"a sum is over the batch's samples: \sum_n or \sum_{n=1}^{N}")
        if self.peek() == "^":
            self.take()
            if self.group() not in ("N", "(N)"):
                raise self.fail("a sum over the batch runs to N")
        self.nest(1)
        out = f"sum_n({self.term()})"
        self.nest(-1)
        return out

    def braced(self) -> str:
        self.take("{")
        out = self.expr()
        self.take("}")
        return out

    def reshape(self) -> str:
        r"""``\operatorname{reshape}_{2 \times 1 \times 1}\left(v\right)``, as verify prints
        a flatten's δ, is ``reshape(v, 2, 1, 1)``."""
        self.take("{")
        dims = [self.take()]
        while self.peek() == r"\times":
            self.take()
            dims.append(self.take())
        self.take("}")
        if not all(d.isdigit() for d in dims):
            raise self.fail(r"reshape's shape is whole numbers joined by \times")
        self.take("(")
        arg = self.expr()
        self.take(")")
        return f"reshape({arg}, {', '.join(dims)})"

    def function(self, fname: str) -> str:
        prime = self.peek() == "'"
        if prime:
            self.take()
            if fname not in _PRIME and fname not in DERIVABLE:
                named = ", ".join(sorted(DERIVABLE))
                raise self.fail(f"a derivative ' is understood for the activations {named}, "
                                f"not {fname}")  # fmt: skip
        exponent = None
        if self.peek() == "^":
            self.take()
            exponent = self.group()
        if self.peek() in ("(", "["):
            close = _OPENERS[self.take()]
            args = [self.expr()]
            while self.peek() == ",":
                self.take()
                args.append(self.expr())
            self.take(close)
        elif self.peek() == "{":
            args = [self.braced()]
        else:
            args = [self.power()]
        if prime and fname not in _PRIME:
            out = f"{fname}_({args[0]})"  # the notation's derivative (verify.notation)
        else:
            out = _PRIME[fname].format(args[0]) if prime else f"{fname}({', '.join(args)})"
        if prime and len(out) > MAX_LENGTH:  # each ' doubles its argument: refuse before it grows
            raise self.fail(
                f"too long once each derivative ' is written out (over {MAX_LENGTH} characters)"
            )
        return f"({out})**{exponent}" if exponent else out


_VALUE = r"(?:\d+|\((?:\d+|\(\d+, ?\d+\))(?:, ?(?:\d+|\(\d+, ?\d+\)))*\))"
_SETTING = rf"(?:stride|padding|dilation|groups)={_VALUE}"
# a correlation's settings as verify prints them after it: \quad \text{(stride=2, padding=1)}
_SETTINGS = re.compile(rf"\\quad\s*\\text\{{\(({_SETTING}(?:, ?{_SETTING})*)\)\}}\s*$")


def _with_settings(expr: str, settings: str, field: str) -> str:
    """``corr(a, b)`` of a parsed formula with the printed settings as its keywords."""
    if expr.count("corr(") != 1:
        raise SpecError(field, r"LaTeX: \text{(stride=...)} follows one \operatorname{corr}(...)")
    at, depth = expr.index("corr(") + len("corr("), 1
    while depth:
        depth += {"(": 1, ")": -1}.get(expr[at], 0)
        at += 1
    return f"{expr[: at - 1]}, {settings}{expr[at - 1 :]}"


def latex_to_expr(text: str, matrix: bool = False, field: str = "--expr") -> str:
    """Translate a LaTeX hand derivation into the plain expression grammar (CONTRACT §4).

    Args:
        text: LaTeX such as ``\\sigma(z^{(2)}_1) (1 - a^{(2)}_1)``.
        matrix: matrix form: juxtaposition and ``\\cdot`` are matrix products (``@``),
            ``\\odot`` is elementwise and ``^T`` transposes.
        field: the field path reported in errors.

    Raises:
        SpecError: on anything outside the grammar.
    """
    if not isinstance(text, str):
        raise SpecError(field, f"expected a LaTeX string, got {type(text).__name__}")
    if len(text) > MAX_LATEX_LENGTH:
        raise SpecError(field, f"expression too long ({len(text)} > {MAX_LATEX_LENGTH} characters)")
    text = text.strip().strip("$").strip()
    settings = _SETTINGS.search(text) if matrix else None
    try:
        if settings:
            expr = _Parser(text[: settings.start()], matrix, field).parse()
            return _with_settings(expr, settings.group(1), field)
        return _Parser(text, matrix, field).parse()
    except RecursionError:
        raise SpecError(field, "LaTeX: expression nested too deeply") from None
