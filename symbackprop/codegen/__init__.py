"""Stages 4 and 5: lower a Derivation to a Program, then render it with a target's templates.

A backend is a module with ``files(program) -> {filename: text}``; adding a target is a printer,
templates and one entry in BACKENDS.
"""

from __future__ import annotations

from pathlib import Path

from ..core.chain_rule import derive as _derive
from ..core.derivation import Derivation
from ..spec import Spec
from . import c_backend, numpy_backend
from .files import write_files
from .program import Program, lower
from .torch import backend as torch_backend

BACKENDS = {"numpy": numpy_backend, "c": c_backend, "torch": torch_backend}


def render(d: Derivation | Spec, target: str) -> dict[str, str]:
    """The files of ``target`` for a Derivation (or Spec), as {name: text}; nothing is written."""
    if isinstance(d, Spec):
        d = _derive(d)
    return BACKENDS[target].files(lower(d))


def generate(d: Derivation | Spec, target: str, directory: str | Path,
             force: bool = False) -> list[Path]:  # fmt: skip
    """Render ``target`` and write its files into ``directory`` (see files.write_files)."""
    return write_files(Path(directory), render(d, target), force)


__all__ = ["BACKENDS", "Program", "generate", "lower", "render"]
