"""The NumPy target: backend (Program -> one standalone module) and loader (import it here)."""

from ..target import Target
from .backend import check_size, files
from .loader import load_numpy, numpy_module

TARGET = Target("numpy", files, numpy_module, check_size)

__all__ = ["TARGET", "files", "load_numpy", "numpy_module"]
