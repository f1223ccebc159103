"""Stages 4 and 5: lower a Derivation to a Program, then render it with a target's templates.

Every target is one folder (``codegen/<name>/``: backend, loader, and its build where it has
one) exporting a :class:`~symbackprop.codegen.target.Target`; TARGETS is the one list the CLI,
``check``, ``train``, the demo and the Makefile read. Adding a target is a printer, templates,
that folder and one entry here.
"""

from __future__ import annotations

from pathlib import Path

from ..core.chain_rule import derive as _derive
from ..core.derivation import Derivation
from ..spec.load import Spec
from . import c as c_target, numpy as numpy_target, torch as torch_target
from .files import write_files
from .program import Program, lower
from .target import Target

TARGETS: dict[str, Target] = {
    t.name: t for t in (numpy_target.TARGET, c_target.TARGET, torch_target.TARGET)
}


def render(d: Derivation | Spec, target: str) -> dict[str, str]:
    """The files of ``target`` for a Derivation (or Spec), as {name: text}; nothing is written."""
    if isinstance(d, Spec):
        d = _derive(d)
    t = TARGETS[target]
    t.check_size(d)  # a SpecError for a net the target cannot handle
    return t.files(lower(d))


def generate(d: Derivation | Spec, target: str, directory: str | Path,
             force: bool = False) -> list[Path]:  # fmt: skip
    """Render ``target`` and write its files into ``directory`` (see files.write_files)."""
    return write_files(Path(directory), render(d, target), force)


__all__ = ["TARGETS", "Program", "Target", "generate", "lower", "render"]
