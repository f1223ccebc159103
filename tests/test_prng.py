"""Tests for the portable PRNG and weight-initialisation schemes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from symbackprop.core import prng

MASK = (1 << 64) - 1
KEYS = [0, 1, prng.stream_key(0, 0), prng.stream_key(42, 3), MASK]


def _reference_splitmix64(seed: int, count: int) -> list[int]:
    """Literal transcription of Vigna's splitmix64.c next()."""
    x, out = seed, []
    for _ in range(count):
        x = (x + 0x9E3779B97F4A7C15) & MASK
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


def _plain_log_loop(s: float) -> float:
    """Independent scalar transcription of plog from the module docstring."""
    m, k = s, 0
    while m < 1.0:
        m = m * 2.0
        k = k - 1
    if m > 1.4142135623730951:
        m = m / 2.0
        k = k + 1
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = 1.0 / 23.0
    for d in (21.0, 19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0):
        p = 1.0 / d + f2 * p
    p = 1.0 + f2 * p
    return float(k) * 0.6931471805599453 + (2.0 * f) * p


# --- generator ---------------------------------------------------------------------------


def test_splitmix64_known_answers():
    expected = [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]
    seed = 1234567
    assert _reference_splitmix64(seed, 5) == expected
    assert [prng.mix64((seed + (i + 1) * prng.GAMMA) & MASK) for i in range(5)] == expected
    zs = np.array([(seed + (i + 1) * prng.GAMMA) & MASK for i in range(5)], dtype=np.uint64)
    assert prng.mix64(zs).tolist() == expected


@settings(max_examples=200)
@given(st.lists(st.integers(0, MASK), min_size=1, max_size=20))
def test_mix64_int_and_array_agree(zs):
    got = prng.mix64(np.array(zs, dtype=np.uint64)).tolist()
    assert got == [prng.mix64(z) for z in zs]


def test_stream_key_definition():
    assert prng.stream_key(7, 0) == prng.mix64(7 + prng.GAMMA)
    assert prng.stream_key(7, 4) == prng.mix64((7 + 5 * prng.GAMMA) & MASK)
    assert prng.stream_key(7, 0) != prng.stream_key(7, 1) != prng.stream_key(8, 1)
    assert prng.stream_key(-1, 0) == prng.stream_key(MASK, 0)  # seed taken mod 2**64


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000])
def test_uniforms_match_scalar_reference(key, n):
    u = prng.uniforms(key, n)
    assert u.dtype == np.float64 and u.shape == (n,)
    ref = np.array([prng.scalar_reference_uniform(key, i) for i in range(n)], dtype=np.float64)
    assert np.array_equal(u, ref)


def test_uniform_first_value_by_hand():
    key = prng.stream_key(0, 0)
    word = _reference_splitmix64(key, 3)[2]
    assert prng.uniforms(key, 3)[2] == (word >> 11) / 2.0**53


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_normals_match_scalar_reference(key, n):
    z = prng.normals(key, n)
    assert z.dtype == np.float64 and z.shape == (n,)
    ref = np.array([prng.scalar_reference_normal(key, j, n) for j in range(n)])
    assert np.array_equal(z, ref)


def test_normals_exercise_rejection():
    # n = 1000 rejects ~21% at attempt 0; some elements must need r >= 2 (P ~ 0.046 each).
    key, n = prng.stream_key(3, 1), 1000
    needed = []
    for j in range(n):
        r = 0
        while True:
            c = 2 * (j + r * n)
            a = 2.0 * prng.scalar_reference_uniform(key, c) - 1.0
            b = 2.0 * prng.scalar_reference_uniform(key, c + 1) - 1.0
            if 0.0 < a * a + b * b < 1.0:
                break
            r += 1
        needed.append(r)
    assert 150 < sum(r > 0 for r in needed) < 300
    assert max(needed) >= 2


# --- portable log --------------------------------------------------------------------------


def _log_points() -> np.ndarray:
    rng = np.random.default_rng(12345)
    s = np.concatenate(
        [
            10.0 ** rng.uniform(-300.0, 0.0, 100_000),
            [1e-300, 2.0**-1000, 0.5, 0.25, 1.0 - 2.0**-53, 0.7071067811865476, 0.70710678118654],
        ]
    )
    return s[(s > 0.0) & (s < 1.0)]


def test_plog_accuracy_log_spaced():
    s = _log_points()
    got = prng.plog(s)
    ref = np.array([math.log(x) for x in s])
    assert np.max(np.abs(got - ref) / np.abs(ref)) < 4e-16
    assert np.max(np.abs(got - ref) / np.spacing(np.abs(ref))) <= 2.0


def test_plog_accuracy_uniform():
    # The polar method feeds s ~ U(0, 1).  Worst case of the specified algorithm is 3 ulp
    # (k = -1, s in (0.5, 0.7071): k*LN2 and the rounded f partly cancel).
    s = np.random.default_rng(7).uniform(0.0, 1.0, 200_000)
    s = s[s > 0.0]
    got = prng.plog(s)
    ref = np.array([math.log(x) for x in s])
    assert np.max(np.abs(got - ref) / np.abs(ref)) < 5e-16
    assert np.max(np.abs(got - ref) / np.spacing(np.abs(ref))) <= 3.0


def test_plog_bit_identical_to_scalar_loop():
    # a scalar Python loop per point: 10,000 log-spaced points, the hand-picked ones at the end
    # of _log_points, and 5,000 uniform ones (the accuracy tests above take the whole sets)
    pts = _log_points()
    s = np.concatenate([pts[:10_000], pts[-7:], np.random.default_rng(3).uniform(0.0, 1.0, 5_000)])
    s = s[s > 0.0]
    got = prng.plog(s)
    assert np.array_equal(got, np.array([_plain_log_loop(x) for x in s]))
    assert np.array_equal(got, np.array([prng.scalar_reference_log(x) for x in s]))


def test_plog_exact_powers_of_two():
    assert prng.plog(np.array([0.5]))[0] == -prng.LN2
    assert prng.plog(np.array([2.0**-10]))[0] == -10.0 * prng.LN2


# --- statistics ----------------------------------------------------------------------------


def test_uniform_statistics():
    u = prng.uniforms(prng.stream_key(2024, 0), 200_000)
    assert np.all((u >= 0.0) & (u < 1.0))
    assert abs(u.mean() - 0.5) < 0.005
    assert abs(u.var() - 1.0 / 12.0) < 0.002


def test_normal_statistics():
    z = prng.normals(prng.stream_key(2024, 1), 200_000)
    assert np.all(np.isfinite(z))
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(np.abs(z) < 1.0) - 0.6827) < 0.005
    zs = np.sort(z)
    cdf = np.array([0.5 * (1.0 + math.erf(x / math.sqrt(2.0))) for x in zs])
    n = zs.size
    ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert ks < 0.005


# --- init_tensor ---------------------------------------------------------------------------

COMMON = {"seed": 11, "k": 2, "fan_in": 100, "fan_out": 50}
UNIFORM_BOUNDS = {
    "uniform": (-0.3, 0.7),
    "xavier_uniform": (-1.5 * math.sqrt(6.0 / 150.0), 1.5 * math.sqrt(6.0 / 150.0)),
    "he_uniform": (-math.sqrt(6.0 / 100.0), math.sqrt(6.0 / 100.0)),
    "pytorch": (-1.0 / math.sqrt(100.0), 1.0 / math.sqrt(100.0)),
}
NORMAL_STDS = {
    "normal": 0.2,
    "xavier_normal": 1.5 * math.sqrt(2.0 / 150.0),
    "he_normal": math.sqrt(2.0 / 100.0),
}
EXTRA = {"low": -0.3, "high": 0.7, "std": 0.2, "gain": 1.5}


@pytest.mark.parametrize("scheme", sorted(UNIFORM_BOUNDS))
def test_uniform_schemes(scheme):
    lo, hi = UNIFORM_BOUNDS[scheme]
    w = prng.init_tensor(scheme, (100, 50), **COMMON, **EXTRA)
    assert w.shape == (100, 50) and w.dtype == np.float64
    assert np.all((w >= lo) & (w < hi))
    assert w.min() < lo + 0.05 * (hi - lo) / 2 and w.max() > hi - 0.05 * (hi - lo) / 2
    key = prng.stream_key(11, 2)
    assert np.array_equal(w.ravel(), lo + (hi - lo) * prng.uniforms(key, 5000))


@pytest.mark.parametrize("scheme", sorted(NORMAL_STDS))
def test_normal_schemes(scheme):
    std = NORMAL_STDS[scheme]
    w = prng.init_tensor(scheme, (200, 60), **COMMON, **EXTRA)
    assert w.shape == (200, 60) and w.dtype == np.float64
    assert abs(w.std() / std - 1.0) < 0.05
    assert abs(w.mean()) < 0.05 * std
    assert np.array_equal(w.ravel(), std * prng.normals(prng.stream_key(11, 2), 12000))


def test_zeros_and_values():
    z = prng.init_tensor("zeros", (3, 4), **COMMON)
    assert z.shape == (3, 4) and z.dtype == np.float64 and not z.any()
    f = prng.init_tensor("values", (2, 3), **COMMON, value=0.25)
    assert f.shape == (2, 3) and np.all(f == 0.25)
    v = prng.init_tensor("values", (2, 2), **COMMON, value=[[1, 2], [3, 4.5]])
    assert v.dtype == np.float64 and v.tolist() == [[1.0, 2.0], [3.0, 4.5]]
    b = prng.init_tensor("values", (3,), **COMMON, value=[0.1, 0.2, 0.3], dtype="float32")
    assert b.dtype == np.float32 and np.array_equal(b, np.array([0.1, 0.2, 0.3], np.float32))


@pytest.mark.parametrize("bad", [[1.0, 2.0], [[1.0, 2.0, 3.0]], [[1.0], [2.0]], [[1, 2], [3]]])
def test_values_wrong_shape_raises(bad):
    with pytest.raises(ValueError):
        prng.init_tensor("values", (1, 2), **COMMON, value=bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        prng.init_tensor("glorot", (2, 2), **COMMON)
    with pytest.raises(ValueError):
        prng.init_tensor("uniform", (2, 2), **COMMON, dtype="float16")
    with pytest.raises(ValueError):
        prng.init_tensor("values", (2, 2), **COMMON)
    with pytest.raises(ValueError):
        prng.init_tensor("he_normal", (2, 2), seed=0, k=0, fan_in=0, fan_out=2)


ALL_SCHEMES = ["zeros", "values", *sorted(UNIFORM_BOUNDS), *sorted(NORMAL_STDS)]


@pytest.mark.parametrize("scheme", ["zeros", "values"])
def test_float32_constants_are_rounded_float64(scheme):
    """zeros and values: the float64 numbers rounded once (the random schemes' float32 path is
    tests/test_prng_float32.py's)."""
    w64 = prng.init_tensor(scheme, (7, 5), **COMMON, **EXTRA, value=0.1)
    w32 = prng.init_tensor(scheme, (7, 5), **COMMON, **EXTRA, value=0.1, dtype="float32")
    assert w32.dtype == np.float32 and w32.shape == (7, 5)
    assert np.array_equal(w32, w64.astype(np.float32))


@pytest.mark.parametrize("scheme", sorted(UNIFORM_BOUNDS) + sorted(NORMAL_STDS))
def test_determinism(scheme):
    a = prng.init_tensor(scheme, (4, 3), **COMMON, **EXTRA)
    b = prng.init_tensor(scheme, (4, 3), **COMMON, **EXTRA)
    assert np.array_equal(a, b)
    other = {**COMMON, "k": 3}
    assert not np.array_equal(a, prng.init_tensor(scheme, (4, 3), **other, **EXTRA))
    other_seed = {**COMMON, "seed": 12}
    assert not np.array_equal(a, prng.init_tensor(scheme, (4, 3), **other_seed, **EXTRA))


def test_row_major_and_shape_independent_prefix():
    w = prng.init_tensor("uniform", (3, 4), **COMMON)
    flat = prng.init_tensor("uniform", (12,), **COMMON)
    assert np.array_equal(w.ravel(order="C"), flat)
    scalar = prng.init_tensor("normal", (), **COMMON)
    assert scalar.shape == () and scalar == prng.scalar_reference_normal(
        prng.stream_key(11, 2), 0, 1
    )
