"""Reading user files (specs, samples) safely: size-bounded (whatever the file is: /dev/zero, a
FIFO; see safe_io), UTF-8, YAML without aliases, JSON by extension; every failure is one
SpecError naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..safe_io import read_bytes
from .errors import SpecError

MAX_FILE_BYTES = 20_000_000


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader without aliases: a spec never needs them, and they make "billion laughs"
    documents that expand exponentially when walked."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in specs", event.start_mark
            )
        return super().compose_node(parent, index)


def read_data_file(path: str | Path) -> Any:
    """Read a YAML or JSON file into plain data; every failure is a SpecError naming the file."""
    p = Path(path)
    file = str(path)
    try:
        raw = read_bytes(file, MAX_FILE_BYTES, text=True)
    except FileNotFoundError:
        raise SpecError("", "no such file", file) from None
    except IsADirectoryError:
        raise SpecError("", "is a directory, not a spec file", file) from None
    except OSError as exc:
        raise SpecError("", f"cannot read: {exc.strerror or exc}", file) from None
    except ValueError as exc:  # larger than the limit, or NUL bytes
        raise SpecError("", str(exc), file) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("", "not a text file (not UTF-8)", file) from None
    if not text.strip():
        raise SpecError("", "the file is empty", file)
    try:
        if p.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except json.JSONDecodeError as exc:
        raise SpecError(
            "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise SpecError("", f"invalid YAML{where}: {problem}", file) from None
    except RecursionError:
        raise SpecError("", "nested too deeply", file) from None
