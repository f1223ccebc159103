"""The op kinds: what each kind of IR op means, in one registry entry per kind.

An :class:`OpKind` holds the kind's shape rule, its NumPy evaluator, its formula in text and
LaTeX, its element-wise (index) form, its pullback (the ops of its vector-Jacobian product)
and, for kinds that differ between training and evaluation, its evaluation-mode form and the
buffer updates of a training step. Every reader of a program dispatches on this table: the
evaluator behind ``derive --at``, scalar mode and ``verify`` (through the index form), the
documents (through the formulas) and the chain rule (through the pullbacks). A test proves
each pullback equal to ``sympy.diff`` of the index form on small shapes. Families of kinds
live in modules of their own (dense, maps, softmax, structure, conv, pool, reduce, dropout);
importing this package registers them all. ``CLOSED_FORMS`` holds the pullbacks of whole
segments of ops (normalization) that replace the op-by-op derivation in the code.
"""

from . import (  # noqa: F401
    conv,
    dense,
    dropout,
    gated,
    maps,
    pool,
    recurrent,
    reduce,
    softmax,
    structure,
)
from .base import (
    OPS,
    Backward,
    Context,
    Elements,
    OpKind,
    Substitution,
    elementwise,
    indices,
    kind,
    register,
)
from .closed_forms import CLOSED_FORMS, ClosedForm, register_closed_form
from .maps import partial

__all__ = [
    "CLOSED_FORMS", "OPS", "Backward", "ClosedForm", "Context", "Elements", "OpKind",
    "Substitution", "elementwise", "indices", "kind", "partial", "register",
    "register_closed_form",
]  # fmt: skip
