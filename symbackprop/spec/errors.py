"""The one exception type for user errors, carrying the field path that caused it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(Exception):
    """A user error: bad spec, bad sample file, bad expression or bad command-line value.

    The CLI turns it into ``error: FILE: FIELD: reason`` and exit status 2, never a traceback.

    Args:
        field: dotted field path inside the file, e.g. ``layers[1].activation`` ('' for the file).
        reason: one line saying what is wrong.
        file: the file the error is about, filled in by whoever knows it.
    """

    def __init__(self, field: str, reason: str, file: str | None = None):
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.file = file

    def with_file(self, file: str) -> SpecError:
        """Return a copy that names ``file`` (unless it already names one)."""
        return SpecError(self.field, self.reason, self.file or file)

    def prefixed(self, prefix: str) -> SpecError:
        """Return a copy whose field is nested under ``prefix`` (e.g. 'layers[1]')."""
        if not prefix:
            return self
        if not self.field:
            field = prefix
        elif self.field.startswith("["):
            field = prefix + self.field
        else:
            field = f"{prefix}.{self.field}"
        return SpecError(field, self.reason, self.file)

    def format(self) -> str:
        """The one-line message the CLI prints (without the ``error: `` prefix). Control
        characters (a field named '\\n' in a hostile spec) are escaped so it stays one line."""
        parts = [p for p in (self.file, self.field) if p]
        return _one_line(": ".join([*parts, self.reason]))

    def __str__(self) -> str:
        return self.format()


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127, 0x85]} | {10: "\\n", 13: "\\r", 9: "\\t"}
_CONTROL |= {0x2028: "\\u2028", 0x2029: "\\u2029"}  # what str.splitlines also splits at


def _one_line(text: str) -> str:
    return text.translate(_CONTROL)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``' (did you mean 'x'?)'`` suffix for a misspelt name, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
