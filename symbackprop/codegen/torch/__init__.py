"""The torch target: ``backend`` renders a Program into ``<name>_torch.py`` (two custom operators
whose backward passes are the derived formulas, and a ``Model``); ``runtime`` is the code every
generated module carries verbatim; ``loader`` imports it and drives it behind the NumPy module's
functions (for ``symbackprop train --target torch``, ``check`` and the tests).

Only ``loader`` and ``runtime`` import torch, and only when used: generating needs no torch.
"""

from __future__ import annotations

from pathlib import Path

from ...core.derivation import Derivation
from ...spec.errors import SpecError
from ..target import Target
from .backend import files


def torch_module(d: Derivation, directory: str | Path | None = None):
    """Generate, import and wrap the torch target (see loader.torch_module); without PyTorch,
    one SpecError (exit 2), as a missing C compiler is."""
    try:
        from .loader import torch_module as load
    except ModuleNotFoundError as exc:
        raise SpecError("--target", f"torch needs PyTorch ({exc.msg}): pip install torch") from None
    return load(d, directory)


TARGET = Target("torch", files, torch_module, needs=("torch",))

__all__ = ["TARGET", "files", "torch_module"]
