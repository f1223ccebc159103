"""Load the generated NumPy module into this process."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from ...core.derivation import Derivation
from ..files import write_files
from ..program import lower
from .backend import files


def load_numpy(path: str | Path) -> ModuleType:
    """Import a generated NumPy module from its file, under a private module name."""
    path = Path(path)
    name = f"_symbackprop_generated_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def numpy_module(d: Derivation, directory: str | Path | None = None) -> ModuleType:
    """Generate the NumPy target of ``d`` into ``directory`` (a temporary one by default)."""
    folder = Path(directory or tempfile.mkdtemp(prefix="symbackprop-"))
    write_files(folder, files(lower(d)), force=True)
    return load_numpy(folder / f"{d.spec.name}.py")
