"""symbackprop: derive neural-network gradients symbolically and generate the code that trains them.

>>> import symbackprop
>>> d = symbackprop.derive("examples/mazur.yaml")     # a Derivation
>>> print(d.render("text"))                            # or d.latex(), d.gradients, d.at(...)

This module is the facade: ``derive`` returns the core Derivation with conveniences that call
down into its readers (the evaluator, scalar mode, the documents); the core artifact itself
imports none of them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

__version__ = "0.1.0"

# SymPy memoizes its constructors and assumption queries in LRU caches of SYMPY_CACHE_SIZE
# entries (1,000 by default), read once when sympy is first imported. Scalar mode's element-by-
# element expansion of a recurrent net asks the same questions of far more expressions than
# that, and runs 2x faster with 20,000 (about 5 MB more memory). A user's own setting wins, and
# so does a sympy imported before symbackprop.
os.environ.setdefault("SYMPY_CACHE_SIZE", "20000")

from .codegen.c.loader import load_c  # noqa: E402
from .core import derivation as _core  # noqa: E402
from .core.chain_rule import derive as _derive  # noqa: E402
from .core.evaluate import Evaluation, evaluate  # noqa: E402
from .core.scalar import ScalarDerivation, instantiate  # noqa: E402
from .document.sections import backward_section, gradient_section, render  # noqa: E402
from .spec.errors import SpecError  # noqa: E402
from .spec.load import Spec, load_spec, parse_spec  # noqa: E402
from .verify.api import VerifyResult, verify  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Derivation(_core.Derivation):
    """The core Derivation, with conveniences for notebooks and scripts."""

    def at(self, samples) -> Evaluation:
        """Evaluate everything at the initial parameters for ``samples`` (x, t)."""
        return evaluate(self, samples)

    def scalar(self) -> ScalarDerivation:
        """The element-by-element instantiation (scalar mode)."""
        return instantiate(self)

    def render(self, fmt: str = "text", mode: str = "auto", at=None) -> str:
        return render(self, fmt, mode, at)

    def latex(self, mode: str = "auto", at=None) -> str:
        return render(self, "latex", mode, at)

    def _repr_markdown_(self) -> str:
        return render(self, "markdown")

    def _repr_latex_(self) -> str:
        """The backward recurrences and gradients as display math (for notebooks)."""
        eqs = backward_section(self).eqs + gradient_section(self).eqs
        return "\n".join(f"$${e.tex}$$" for e in eqs)


def derive(spec: Spec | str | Path | dict) -> Derivation:
    """The Derivation of a spec (a Spec, a path to a YAML/JSON spec, or already-parsed data)."""
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    d = _derive(spec)
    return Derivation(**{f.name: getattr(d, f.name) for f in dataclasses.fields(d)})


__all__ = [
    "Derivation",
    "Evaluation",
    "Spec",
    "SpecError",
    "VerifyResult",
    "derive",
    "evaluate",
    "load_c",
    "load_spec",
    "parse_spec",
    "render",
    "verify",
    "__version__",
]
