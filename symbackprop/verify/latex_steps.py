"""The time axis of a recurrent net's formula in LaTeX (issue 13/15): ``\\sum_{t=1}^{T}``,
``\\sum_{t=2}^{T-1}`` and a sequence's step as a subscript, ``_t``, ``_{t-1}``, ``_{t+1}``,
``_T``, ``_{t=2}``; translated into the plain grammar's ``sum_t(...)`` and ``h1[t-1]``
(``verify.steps``). A mixin of the LaTeX translator (``verify.latex._Parser``)."""

from __future__ import annotations

import re


class TimeSyntax:
    """Parsing methods for the time axis; the translator provides peek, take, group, term,
    nest, fail and the token list."""

    def time_sum(self, limits: list[str]) -> str:
        r"""``\sum_t``, ``\sum_{t=1}^{T}``, ``\sum_{t=2}^{T}``: Σ over a recurrent net's time
        steps of the rest of the term, as ``sum_t(...)`` (``verify.steps``)."""
        if limits not in (["t"], ["t", "=", *limits[2:3]]) or (
            len(limits) == 3 and not (limits[2].isdigit() or limits[2] == "T")
        ):
            raise self.fail(r"a sum over time steps is \sum_t or \sum_{t=1}^{T}")
        first, last = (limits[2] if len(limits) == 3 else "1"), "T"
        if self.peek() == "^":
            self.take()
            last = self.group().strip("()").replace(" ", "")
            if not re.fullmatch(r"T|\d+|T-\d+", last):
                raise self.fail("a sum over time steps runs to T, T - k or a step number")
        self.nest(1)
        term = self.term()
        self.nest(-1)
        if (first, last) == ("1", "T"):
            return f"sum_t({term})"
        return f"sum_t({term}, {first}, {last})"

    def step(self) -> str | None:
        """``{t-1}``, ``{t+1}``, ``{T}``, ``{t=2}``: a sequence's time step, as ``[t-1]``."""
        end = self.i + 1
        while self.peek(end - self.i) not in ("}", None) and end - self.i < 8:
            end += 1
        toks = [t for t, _ in self.toks[self.i + 1 : end]]
        text = "".join(toks)
        if self.peek(end - self.i) != "}" or not re.fullmatch(r"[tT]([+-]\d+)?|t=\d+", text):
            return None
        self.i = end + 1
        return f"[{text.removeprefix('t=')}]"
