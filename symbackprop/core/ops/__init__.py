"""The op kinds: what each kind of IR op means, in one registry entry per kind.

An :class:`OpKind` holds the kind's shape rule, its NumPy evaluator, its formula in text and
LaTeX, its element-wise (index) form and its pullback (the ops of its vector-Jacobian product).
Every reader of a program dispatches on this table: the evaluator behind ``derive --at``,
scalar mode and ``verify`` (through the index form), the documents (through the formulas) and
the chain rule (through the pullbacks). A test proves each pullback equal to ``sympy.diff`` of
the index form on small shapes. Families of kinds live in modules of their own (dense, maps,
softmax, structure); importing this package registers them all.
"""

from . import dense, maps, recurrent, softmax, structure  # noqa: F401  (each registers its kinds)
from .base import OPS, Backward, Context, Elements, OpKind, elementwise, indices, kind, register
from .maps import partial

__all__ = [
    "OPS", "Backward", "Context", "Elements", "OpKind", "elementwise", "indices", "kind",
    "partial", "register",
]  # fmt: skip
