"""The C target: backend (Program -> C99 sources and a Makefile), build (cc) and loader (ctypes,
behind the NumPy module's functions)."""

from ..target import Target
from .backend import check_size, files
from .footprint import summary
from .inference import inference_files
from .loader import c_module, load_c

TARGET = Target("c", files, c_module, check_size, inference=inference_files, summary=summary)

__all__ = ["TARGET", "c_module", "files", "load_c"]
