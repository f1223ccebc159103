"""Reading user files (specs, samples) safely: size-bounded (whatever the file is: /dev/zero, a
FIFO; see safe_io), UTF-8, YAML without aliases, JSON by extension; every failure is one
SpecError naming the file (and, where it can, the field)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ..safe_io import read_bytes
from .errors import SpecError

MAX_FILE_BYTES = 20_000_000
_MERGE, _VALUE = "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"


class HugeInt:
    """An integer literal longer than Python converts from text (4,300 digits by default).

    The loaders keep it as this marker instead of failing, so that the field reading it names
    itself in the refusal (``inputs: got a 5001-digit integer``).
    """

    __slots__ = ("digits",)

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"a {self.digits}-digit integer"


def _int_or_huge(text: str, convert=int) -> int | HugeInt:
    """``convert(text)``, or a HugeInt when ``text`` is a decimal integer beyond Python's
    int-string conversion limit."""
    try:
        return convert(text)
    except ValueError:
        digits = text.lstrip("+-").replace("_", "")
        if not digits.isdigit():
            raise
        return HugeInt(len(digits))


def _field(path: str, key: Any) -> str:
    """``path.key`` as in SpecError field paths (``key`` alone at the top)."""
    key = key if isinstance(key, str) else repr(key)
    return f"{path}.{key}" if path else key


def _path_to(root: Any, target: Any, children) -> str:
    """The field path of ``target`` (by identity) in the tree under ``root``; ``children(node)``
    yields (key or index, child) pairs. Iterative: a deeply nested file cannot overflow it."""
    stack = [(root, "")]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        for key, child in children(node):
            stack.append((child, f"{path}[{key}]" if isinstance(key, int) else _field(path, key)))
    return ""


def _node_children(node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            yield (k.value if isinstance(k, yaml.ScalarNode) else "?"), v
    elif isinstance(node, yaml.SequenceNode):
        yield from enumerate(node.value)


def _data_children(node: Any):
    if isinstance(node, dict):
        yield from node.items()
    elif isinstance(node, list):
        yield from enumerate(node)


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader for specs and samples.

    - No aliases: a spec never needs them, and they make "billion laughs" documents that expand
      exponentially when walked.
    - Duplicate keys are refused (SafeLoader keeps the last one silently).
    - YAML 1.2 floats: ``1e-3``, ``1E5``, ``+1e3`` are numbers (YAML 1.1 wants a dot and a signed
      exponent, so SafeLoader reads ``lr: 1e-3`` as a string).
    - Integers too long to convert are kept as HugeInt; any other value a tag cannot construct
      (``!!int abc``) is a YAML error with its position.
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in specs", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_document(self, node):
        self._root = node
        return super().construct_document(node)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, TypeError, OverflowError):
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r:.40} as {node.tag}", node.start_mark
            ) from None

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag in (_MERGE, _VALUE):
                    key = key_node.value
                else:
                    key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # unhashable: SafeLoader refuses it
                if first is not key_node:
                    path = _field(_path_to(self._root, node, _node_children), key)
                    lines = sorted({first.start_mark.line + 1, key_node.start_mark.line + 1})
                    where = " and ".join(map(str, lines))
                    raise SpecError(path, f"duplicate key (line{'s' * (len(lines) - 1)} {where})")
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        parent = super().construct_yaml_int
        return _int_or_huge(node.value, lambda _: parent(node))


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load_json(text: str) -> Any:
    """json.loads, refusing duplicate keys (with their path) and keeping huge integers."""
    duplicates: list[tuple[dict, str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out and not duplicates:
                duplicates.append((out, key))
            out[key] = value
        return out

    data = json.loads(text, object_pairs_hook=pairs, parse_int=_int_or_huge)
    if duplicates:
        obj, key = duplicates[0]
        raise SpecError(_field(_path_to(data, obj, _data_children), key), "duplicate key")
    return data


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
            return _load_json(text)
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except SpecError as exc:
        raise exc.with_file(file) from None
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
