"""The dropout masks' generator (core/prng.py dropout_keep: one 32-bit hash per element, so the C
loop runs in 32-bit vector lanes) against a plain-integer reading of its documented formula, the
torch target's copy bit for bit, and its statistics: the dropped fraction is p within sampling
error, neighbouring elements, rows, steps and layers are independent (pairs kept together at
(1 − p)², within sampling error). NumPy against C bit for bit over many steps is
tests/test_normalization_targets.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch  # noqa: F401 - the torch runtime needs it

from symbackprop.codegen.torch import runtime as torch_runtime
from symbackprop.core import prng


def reference_keep(key: int, i: int, p: float) -> bool:
    """Element i kept: lowbias32(lo32(key) + (i + 1)·0x9E3779B9 mod 2³²)·2⁻³² ≥ p (Python ints)."""
    x = ((key & 0xFFFFFFFF) + (i + 1) * 0x9E3779B9) % 2**32
    x ^= x >> 16
    x = (x * 0x7FEB352D) % 2**32
    x ^= x >> 15
    x = (x * 0x846CA68B) % 2**32
    x ^= x >> 16
    return x / 2**32 >= p  # exact: x < 2^32 and the quotient is a power-of-two scaling


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1 - 2**-53])
def test_masks_equal_the_formula_and_the_torch_copy(p):
    for key in (0, 2**64 - 1, prng.dropout_key(7, 123, 4)):
        got = prng.dropout_keep(key, 3, 6, 7, p)
        want = [[reference_keep(key, (3 + r) * 7 + j, p) for j in range(7)] for r in range(6)]
        np.testing.assert_array_equal(got, np.array(want))
        np.testing.assert_array_equal(torch_runtime.dropout_keep(key, 3, 6, 7, p).numpy(), got)
    assert prng.dropout_keep(5, 0, 30, 30, 0.0).all()  # p = 0 drops nothing
    assert not prng.dropout_keep(5, 0, 30, 30, 1 - 2**-53).any()


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.8])
def test_dropped_fraction_and_independence(p):
    n = 200_000
    within = 5 * math.sqrt(p * (1 - p) / n)
    for step in range(3):
        keep = prng.dropout_keep(prng.dropout_key(11, step, 2), 0, 400, 500, p).reshape(-1)
        assert abs((1 - keep.mean()) - p) < within
        both = (1 - p) ** 2  # neighbours, elements a row apart, and the next step's same element
        other = prng.dropout_keep(prng.dropout_key(11, step + 1, 2), 0, 400, 500, p).reshape(-1)
        layer = prng.dropout_keep(prng.dropout_key(11, step, 3), 0, 400, 500, p).reshape(-1)
        sd = 5 * math.sqrt(both * (1 - both) / (n - 500))
        for a, b in ((keep[:-1], keep[1:]), (keep[:-500], keep[500:]), (keep, other),
                     (keep, layer)):  # fmt: skip
            assert abs(np.mean(a & b) - both) < sd
