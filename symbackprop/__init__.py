"""symbackprop: derive neural-network gradients symbolically and generate the code that trains them.

>>> import symbackprop
>>> d = symbackprop.derive("examples/mazur.yaml")     # a Derivation
>>> print(d.render("text"))                            # or d.latex(), d.gradients, d.at(...)
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

from .c_runtime import load_c  # noqa: E402
from .chain_rule import Derivation  # noqa: E402
from .chain_rule import derive as _derive  # noqa: E402
from .errors import SpecError  # noqa: E402
from .spec import Spec, load_spec, parse_spec  # noqa: E402
from .verify import VerifyResult, verify  # noqa: E402


def derive(spec: Spec | str | Path | dict) -> Derivation:
    """The Derivation of a spec (a Spec, a path to a YAML/JSON spec, or already-parsed data)."""
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    return _derive(spec)


__all__ = [
    "Derivation",
    "Spec",
    "SpecError",
    "VerifyResult",
    "derive",
    "load_c",
    "load_spec",
    "parse_spec",
    "verify",
    "__version__",
]
