"""What a code target is to the rest of the tool: its files, and how to load them here."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.derivation import Derivation
from .program import Program


@dataclass(frozen=True)
class Target:
    """One code target.

    Attributes:
        name: what ``--target`` says.
        files: ``program -> {file name: text}`` (the backend: printer and templates).
        module: ``(derivation, directory) -> module``: generate into ``directory`` (a temporary
            one when None), build if needed, and load behind the NumPy module's functions
            (init_params, loss_and_grad, step, train, save, load, ...), so one harness (check,
            train, the tests) drives every target.
        check_size: ``derivation -> None``, a SpecError for a net the target cannot build in
            reasonable time (before any lowering).
        needs: Python packages ``module`` needs beyond symbackprop's own dependencies (an
            optional dependency such as torch); ``check`` leaves out a target whose needs are
            not installed. ``files`` never needs them.
        inference: ``(derivation, weight file or None) -> {file name: text}``, the target's
            inference-only export (``generate --inference``), or None when it has none.
        summary: ``program -> str``, one line ``generate`` prints (on stderr) after writing the
            files (the C target: what the library costs in memory and work), or None.
    """

    name: str
    files: Callable[[Program], dict[str, str]]
    module: Callable[[Derivation, str | Path | None], Any]
    check_size: Callable[[Derivation], None] = lambda d: None
    needs: tuple[str, ...] = ()
    inference: Callable[[Derivation, str | None], dict[str, str]] | None = None
    summary: Callable[[Program], str] | None = None

    def available(self) -> bool:
        """Whether the packages in ``needs`` are installed (found, not imported)."""
        return all(importlib.util.find_spec(name) is not None for name in self.needs)


__all__ = ["Target"]
