"""What people write for a derivative that the spec grammar has no word for (issue 13, item 3).

A hand formula may use, beyond the spec grammar (``spec.expressions``):

- comparisons as indicators, as NumPy computes them: ``(z1 > 0)`` is 1 where z1 > 0, else 0;
- ``heaviside(z)``, ``step(z)``, ``Heaviside(z, 0)`` (what verify itself prints): the unit step,
  0 at 0 unless a second argument says otherwise (PyTorch's relu'(0) = 0);
- ``relu(z)`` and every named activation's derivative as ``name'(z)``: ``relu'(z)``,
  ``sigmoid'(z)``, ``tanh'(z)``, ``softplus'(z)``, ... (leaky_relu and elu with this net's
  alpha, else the default).

``name'(`` is read as the function ``name_(`` (no name of CONTRACT §2 ends with ``_``), so the
one safe parser does all the work; nothing here evaluates user text.
"""

from __future__ import annotations

import re
from functools import cache

import sympy as sp

from ..core import activations as acts
from ..core.symbols import X
from ..spec.expressions import Notation

_PRIME = re.compile(r"\b([A-Za-z]\w*)'(?=\s*\()")


def primes(text: str) -> str:
    """``relu'(z)`` as ``relu_(z)``, for every named activation (other quotes stay, and are
    refused by the parser with its message)."""
    return _PRIME.sub(lambda m: m.group(1) + "_" if m.group(1) in DERIVABLE else m.group(0), text)


DERIVABLE = frozenset(n for n in acts.NAMES if n != "softmax")


def _step(u: sp.Expr, at_zero: sp.Expr | int = 0) -> sp.Expr:
    return sp.Heaviside(u, at_zero)


@cache
def _derivative(act: acts.Activation) -> sp.Expr:
    return acts.derive_activation(act).raw


def hand_notation(net_activations: tuple[acts.Activation, ...] = ()) -> Notation:
    """The notation of hand formulas for a net whose layers use ``net_activations``."""
    chosen = {name: acts.make(name) for name in DERIVABLE}
    chosen |= {a.name: a for a in net_activations if a.name in DERIVABLE}
    functions = {
        "heaviside": (_step, (1, 2)),
        "Heaviside": (_step, (1, 2)),
        "step": (_step, (1,)),
        "relu": (lambda u: sp.Max(u, 0), (1,)),
    }
    for name, act in chosen.items():
        d = _derivative(act)
        functions[name + "_"] = (lambda u, d=d: d.xreplace({X: u}), (1,))
    return Notation(functions)


__all__ = ["DERIVABLE", "hand_notation", "primes"]
