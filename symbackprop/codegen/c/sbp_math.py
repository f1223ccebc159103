"""Which of the C target's own math functions a generated file needs.

templates/c/sbp_math.c.j2 defines ``sbp_exp``, ``sbp_log``, ``sbp_tanh``, ``sbp_sigmoid`` and
``sbp_erf`` (and ``sbp_expf``, ... for float): static inline, branch-free range reduction and
polynomials, so gcc vectorizes the elementwise loops that call them, where libm's calls (about
13 ns each) would not be. CCodePrinter prints exp, log, tanh, erf and 1/(1 + exp(-u)) as calls
to them, and the softmax and log-sum-exp macros call them; a file carries only the ones its code
calls, with what they call (the library's size is capped: see tests/test_c_target.py).
"""

from __future__ import annotations

import re

FUNCTIONS = ("exp", "log", "tanh", "sigmoid", "erf")  # in the template's order of definition
_CALLS = {"tanh": ("exp",), "sigmoid": ("exp",), "erf": ("exp",)}  # what each one calls
_MACROS = {"softmax": ("exp",), "logsumexp": ("exp", "log")}  # calls in templates/c/ops.c.j2
_CALL = re.compile(r"\bsbp_(exp|log|tanh|sigmoid|erf)f?\(")


def used(ops: list[dict], f: str) -> list[str]:
    """The functions that ``ops`` (op contexts of backend._op) call, with their dependencies,
    as C names for the dtype's suffix ``f`` ('' or 'f'): ['sbp_exp', 'sbp_tanh']."""
    names: set[str] = set()
    for o in ops:
        names.update(_MACROS.get(o["kind"], ()))
        names.update(m.group(1) for m in _CALL.finditer(repr(o)))
    names.update(d for n in list(names) for d in _CALLS.get(n, ()))
    return [f"sbp_{n}{f}" for n in FUNCTIONS if n in names]


__all__ = ["FUNCTIONS", "used"]
