"""Parsing methods for names in typed LaTeX: a symbol with its layer, index, time step and
transpose (``a^{(2)}_1`` -> a2_1, ``W^{(2)}`` -> W2, ``h^{(1)}_{t-1}`` -> h1[t-1])."""

from __future__ import annotations

import re

TRANSPOSE = {"T", r"\top", r"\intercal"}


class NameSyntax:
    """Parsing methods for names; the translator provides peek, take, group, step, transposed,
    fail and the token list."""

    def base(self) -> str:
        tok = self.take()
        if tok == r"\delta" or (len(tok) == 1 and tok.isalpha()):
            return "delta" if tok == r"\delta" else tok
        raise self.fail(f"expected a variable name, found '{tok}'")

    def name(self, base: str) -> str:
        """``a^{(2)}_1`` -> a2_1, ``W^{(2)}`` -> W2, ``x_1`` -> x1, ``a^{(1)T}`` -> (a1).T."""
        layer, index, transpose = None, None, False
        for _ in range(2):
            if self.peek() == "^" and layer is None and self.peek(1) == "{" and self.peek(2) == "(":
                self.i += 3
                layer = self.take()
                if not layer.isdigit():
                    raise self.fail(f"expected a layer number in ^{{(l)}}, found '{layer}'")
                self.take(")")
                if self.peek() in TRANSPOSE:
                    self.take()
                    transpose = True
                self.take("}")
            elif self.peek() == "_" and index is None:
                self.take()
                index = self.index()
        if index == "n":  # the sample index of a batch: \mathbf{x}_n is sample n's x
            index = None
        if index and self.peek() == "[" and (self.peek(1) or "").isdigit() and self.peek(2) == "]":
            index += f"[{self.toks[self.i + 1][0]}]"  # h^{(1)}_{1}[2]: unit 1 at step 2
            self.i += 3
        if index is not None and index.startswith("["):  # a sequence's step: h1[t-1]
            text = f"{base}{layer or ''}{index}"
            return self.transposed(text) if transpose else text
        if base == "e" and layer is None and index is None:
            return "exp(1)"
        if base in ("w", "W", "u", "U") and layer and index:
            if re.fullmatch(r"\d_\d", index):  # w^{(2)}_{1,2} is w2_12, as w^{(2)}_{12}
                index = index.replace("_", "")
            text = f"{base.lower()}{layer}_{index}"
        elif layer and index:
            text = f"{base}{layer}_{index}"
        elif layer:
            text = f"{base}{layer}"
        else:
            text = f"{base}{index or ''}"
        return self.transposed(text) if transpose else text

    def index(self) -> str:
        if self.peek() in ("t", "T"):  # a sequence's step: h_t, h_T
            return f"[{self.take()}]"
        if self.peek() != "{":
            return self.group()
        if (step := self.step()) is not None:
            return step
        self.take()
        parts: list[str] = []
        comma = False
        if self.peek() == "n" and self.peek(1) != "}":  # the sample index: a^{(2)}_{n1}
            self.take()
            comma = self.peek() == ","
            if comma:
                self.take()
        step = ""
        while self.peek() != "}":
            tok = self.take()
            if tok == ",":
                comma = True
                continue
            if tok == "t" and self.peek() == "=" and (self.peek(1) or "").isdigit():
                self.take("=")
                step = f"[{self.take()}]"  # h^{(1)}_{1,t=2}: unit 1 at step 2, h1_1[2]
                continue
            if not tok.isdigit():
                raise self.fail(f"an index must be digits, found '{tok}'")
            parts.append(tok)
        self.take("}")
        if not parts:
            raise self.fail("empty index")
        split = len(parts) > 1 and (comma or any(len(p) > 1 for p in parts))
        return ("_" if split else "").join(parts) + step
