"""What a code target is to the rest of the tool: its files, and how to load them here."""

from __future__ import annotations

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
    """

    name: str
    files: Callable[[Program], dict[str, str]]
    module: Callable[[Derivation, str | Path | None], Any]
    check_size: Callable[[Derivation], None] = lambda d: None


__all__ = ["Target"]
