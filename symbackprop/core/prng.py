"""Portable, bit-reproducible random initial weights (self-contained: numpy + stdlib only).

The same numbers must come out of this module, a generated NumPy module and generated C99
(libc/libm only, ``-ffp-contract=off``).  Only IEEE 754 exactly-rounded operations are used:
wrapping uint64 arithmetic, and double ``+ - * /`` and ``sqrt``; never libm's log/exp/cos.
All integer arithmetic below is modulo 2**64; all floating point is float64 (C ``double``).

Generator (splitmix64 output function)::

    GAMMA = 0x9E3779B97F4A7C15
    mix64(z):  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
               z = (z ^ (z >> 27)) * 0x94D049BB133111EB
               return z ^ (z >> 31)
    key(seed, k) = mix64(seed + (k + 1) * GAMMA)      # k-th parameter tensor: W1=0, b1=1, W2=2..
    u(key, i)    = (double)(mix64(key + (i + 1) * GAMMA) >> 11) * 0x1p-53   # in [0, 1)

(The i-th output of splitmix64 seeded with s is ``mix64(s + (i + 1) * GAMMA)``.)
Every parameter tensor is counted in k, whether its scheme is random or not.

Uniform element j in [low, high):  ``low + (high - low) * u(key, j)``.

Normal element j of an n-element tensor (Marsaglia polar), attempts r = 0, 1, 2, ...::

    c = 2 * (j + r * n)                 # uint64
    a = 2.0 * u(key, c) - 1.0
    b = 2.0 * u(key, c + 1) - 1.0
    s = a * a + b * b                   # (a*a) + (b*b), no fma
    first r with 0.0 < s && s < 1.0:  z = a * sqrt((-2.0 * plog(s)) / s)

The element is then ``std * z`` (mean 0).

``plog(s)`` for 0 < s < 1 (portable natural log)::

    m = s; k = 0
    while (m < 1.0) { m = m * 2.0; k = k - 1; }         # exact: doublings never round
    if (m > 1.4142135623730951) { m = m / 2.0; k = k + 1; }   # m in [0.7071, 1.4142]
    f = (m - 1.0) / (m + 1.0);  f2 = f * f
    p = 1.0/23.0
    p = 1.0/21.0 + f2 * p;  p = 1.0/19.0 + f2 * p;  ...  p = 1.0/3.0 + f2 * p
    p = 1.0 + f2 * p
    return (double)k * 0.6931471805599453 + (2.0 * f) * p

(``1.0/21.0`` etc. denote the doubles so computed; the odd denominators run 23, 21, ..., 3.)

Initialisation schemes (``fan_in + fan_out`` is an integer sum, then converted to double):

==================  =======================================================================
scheme              values
==================  =======================================================================
``zeros``           0.0
``values``          given number (fill) or nested list of exactly ``shape``
``uniform``         uniform in [low, high)
``normal``          std * z
``xavier_uniform``  bound = gain * sqrt(6.0 / (double)(fan_in + fan_out)); uniform [-bound, bound)
``xavier_normal``   std = gain * sqrt(2.0 / (double)(fan_in + fan_out)); std * z
``he_uniform``      bound = sqrt(6.0 / (double)fan_in); uniform [-bound, bound)
``he_normal``       std = sqrt(2.0 / (double)fan_in); std * z
``pytorch``         bound = 1.0 / sqrt((double)fan_in); uniform [-bound, bound)
==================  =======================================================================

For uniform [-bound, bound) the element is ``-bound + (bound - -bound) * u``.  Elements are
generated in row-major order of ``shape``.

Float32 tensors are computed in float32 throughout (a microcontroller's FPU is single
precision: no soft double), every operation an IEEE 754 float32 one: the scheme's numbers
(``low``, ``high``, ``std``) are the float64 ones above rounded once to float32, and::

    u32(key, i)  = (float)(mix64(key + (i + 1) * GAMMA) >> 40) * 2^-24   # 24 bits: exact
    uniform:       low + (high - low) * u32(key, j)
    normal:        as above with u32 for u and plog32 for plog, sqrt a float32 square root
    plog32(s):     plog's steps in float32, SQRT2 and LN2 rounded to float32, the series
                   p = 1/13; p = 1/11 + f2 * p; ... p = 1/3 + f2 * p  (1/d: float32 1 / d)

(values and zeros: the float64 numbers rounded once.)
"""

from __future__ import annotations

import math
import numbers

import numpy as np

GAMMA = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1
SQRT2 = 1.4142135623730951
LN2 = 0.6931471805599453
_INV_ODD = [1.0 / d for d in range(23, 2, -2)]  # 1/23, 1/21, ..., 1/3 (innermost first)
_TWO_M53 = 2.0**-53


def _mix64_int(z: int) -> int:
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def mix64(z):
    """splitmix64 output function on a Python int or a numpy uint64 array (wrapping)."""
    if isinstance(z, int):
        return _mix64_int(z)
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stream_key(seed: int, k: int) -> int:
    """Key of parameter tensor number k (seed is taken modulo 2**64)."""
    return _mix64_int(seed + (k + 1) * GAMMA)


def _u(key: int, idx: np.ndarray) -> np.ndarray:
    """u(key, i) for a uint64 index array."""
    with np.errstate(over="ignore"):
        z = np.uint64(key & MASK64) + (idx + np.uint64(1)) * np.uint64(GAMMA)
    return (mix64(z) >> np.uint64(11)).astype(np.float64) * _TWO_M53


def uniforms(key: int, n: int) -> np.ndarray:
    """u(key, 0), ..., u(key, n-1) as float64 in [0, 1)."""
    return _u(key, np.arange(n, dtype=np.uint64))


def plog(s: np.ndarray) -> np.ndarray:
    """Portable natural log for 0 < s < 1 (see module docstring).

    ``np.frexp`` gives s = fm * 2**e exactly with fm in [0.5, 1).  The doubling loop never
    rounds (it only doubles values below 1), so it ends with the unique m in [1, 2) and k with
    s = m * 2**k; that is m = 2 * fm (exact) and k = e - 1: identical to the loop.
    """
    fm, e = np.frexp(np.asarray(s, dtype=np.float64))
    m = fm * 2.0
    k = e.astype(np.int64) - 1
    big = m > SQRT2
    m = np.where(big, m / 2.0, m)
    k = k + big
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = np.full_like(f, _INV_ODD[0])
    for c in _INV_ODD[1:]:
        p = c + f2 * p
    p = 1.0 + f2 * p
    return k.astype(np.float64) * LN2 + (2.0 * f) * p


def normals(key: int, n: int) -> np.ndarray:
    """n standard normals (polar method; rejected elements retried with r = 1, 2, ...)."""
    return _polar(key, n, _u, plog, np.float64)


def _polar(key: int, n: int, u, log, dtype) -> np.ndarray:
    """Marsaglia's polar method on the uniforms ``u`` and the portable ``log``, every operation
    in ``dtype`` (float64, or float32 for normals32): element i's attempt r uses u(2(i + rn))
    and u(2(i + rn) + 1)."""
    one, two = dtype(1.0), dtype(2.0)
    out = np.empty(n, dtype=dtype)
    todo = np.arange(n, dtype=np.uint64)
    r = 0
    while todo.size:
        with np.errstate(over="ignore"):
            c = np.uint64(2) * (todo + np.uint64((r * n) & MASK64))
        a = two * u(key, c) - one
        b = two * u(key, c + np.uint64(1)) - one
        s = a * a + b * b
        ok = (s > 0) & (s < 1)
        sa = s[ok]
        out[todo[ok]] = a[ok] * np.sqrt(dtype(-2.0) * log(sa) / sa)
        todo = todo[~ok]
        r += 1
    return out


def scalar_reference_log(s: float) -> float:
    """plog for one Python float, with the literal doubling loop."""
    m, k = s, 0
    while m < 1.0:
        m *= 2.0
        k -= 1
    if m > SQRT2:
        m /= 2.0
        k += 1
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = 1.0 / 23.0
    for d in range(21, 2, -2):
        p = 1.0 / d + f2 * p
    p = 1.0 + f2 * p
    return k * LN2 + (2.0 * f) * p


def scalar_reference_uniform(key: int, i: int) -> float:
    """u(key, i) with plain Python ints and floats."""
    return (_mix64_int(key + (i + 1) * GAMMA) >> 11) * _TWO_M53


def scalar_reference_normal(key: int, j: int, n: int) -> float:
    """Normal element j of an n-element stream, one attempt at a time."""
    r = 0
    while True:
        c = 2 * (j + r * n)
        a = 2.0 * scalar_reference_uniform(key, c) - 1.0
        b = 2.0 * scalar_reference_uniform(key, c + 1) - 1.0
        s = a * a + b * b
        if 0.0 < s < 1.0:
            return a * math.sqrt(-2.0 * scalar_reference_log(s) / s)
        r += 1


_TWO_M24 = np.float32(2.0**-24)
_SQRT2_32 = np.float32(SQRT2)
_LN2_32 = np.float32(LN2)
_INV_ODD32 = [np.float32(1.0) / np.float32(d) for d in range(13, 2, -2)]  # 1/13 ... 1/3


def _u32(key: int, idx: np.ndarray) -> np.ndarray:
    """u32(key, i) for a uint64 index array: the top 24 bits of the output, exact in float32."""
    with np.errstate(over="ignore"):
        z = np.uint64(key & MASK64) + (idx + np.uint64(1)) * np.uint64(GAMMA)
    return (mix64(z) >> np.uint64(40)).astype(np.float32) * _TWO_M24


def uniforms32(key: int, n: int) -> np.ndarray:
    """u32(key, 0), ..., u32(key, n-1) as float32 in [0, 1)."""
    return _u32(key, np.arange(n, dtype=np.uint64))


def plog32(s: np.ndarray) -> np.ndarray:
    """plog in float32 for 0 < s < 1 (every operation rounded to float32; see the docstring)."""
    one, two = np.float32(1.0), np.float32(2.0)
    fm, e = np.frexp(np.asarray(s, dtype=np.float32))
    m = (fm * two).astype(np.float32)
    k = e.astype(np.int64) - 1
    big = m > _SQRT2_32
    m = np.where(big, m / two, m).astype(np.float32)
    k = k + big
    f = (m - one) / (m + one)
    f2 = f * f
    p = np.full_like(f, _INV_ODD32[0])
    for c in _INV_ODD32[1:]:
        p = c + f2 * p
    p = one + f2 * p
    return k.astype(np.float32) * _LN2_32 + (two * f) * p


def normals32(key: int, n: int) -> np.ndarray:
    """n standard normals in float32 (normals' polar method on u32, plog32, float32 sqrt)."""
    return _polar(key, n, _u32, plog32, np.float32)


SCHEMES = (
    "values",
    "zeros",
    "uniform",
    "normal",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "pytorch",
)


def distribution(
    scheme: str, fan_in: int, fan_out: int, low=-1.0, high=1.0, std=1.0, gain=1.0
) -> tuple[str, float, float]:
    """("uniform", low, high) or ("normal", std, 0.0) of a random scheme, its bounds resolved.

    The C target stores these numbers (exact as repr) instead of computing them again.
    """
    if scheme in ("normal", "xavier_normal", "he_normal"):
        if scheme == "xavier_normal":
            std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
        elif scheme == "he_normal":
            std = math.sqrt(2.0 / float(fan_in))
        return "normal", float(std), 0.0
    if scheme != "uniform":
        if scheme == "xavier_uniform":
            bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
        elif scheme == "he_uniform":
            bound = math.sqrt(6.0 / float(fan_in))
        else:  # pytorch
            bound = 1.0 / math.sqrt(float(fan_in))
        low, high = -bound, bound
    return "uniform", float(low), float(high)


def init_tensor(
    scheme: str,
    shape: tuple[int, ...],
    *,
    seed: int,
    k: int,
    fan_in: int,
    fan_out: int,
    low: float = -1.0,
    high: float = 1.0,
    std: float = 1.0,
    gain: float = 1.0,
    value=None,
    dtype: str = "float64",
) -> np.ndarray:
    """Initial values of parameter tensor number k (see the scheme table in the docstring)."""
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {SCHEMES}")
    shape = tuple(int(d) for d in shape)
    n = math.prod(shape)
    if scheme in ("he_uniform", "he_normal", "pytorch") and fan_in <= 0:
        raise ValueError(f"scheme {scheme!r} needs fan_in > 0, got {fan_in}")
    if scheme in ("xavier_uniform", "xavier_normal") and fan_in + fan_out <= 0:
        raise ValueError(f"scheme {scheme!r} needs fan_in + fan_out > 0")
    if scheme == "values":
        if value is None:
            raise ValueError("scheme 'values' needs a value")
        if isinstance(value, numbers.Real):
            out = np.full(shape, float(value), dtype=np.float64)
        else:
            out = np.array(value, dtype=np.float64)
            if out.shape != shape:
                raise ValueError(f"value has shape {out.shape}, expected {shape}")
    elif scheme == "zeros":
        out = np.zeros(shape, dtype=np.float64)
    else:
        kind, a, b = distribution(scheme, fan_in, fan_out, low, high, std, gain)
        key = stream_key(seed, k)
        if dtype == "float32":  # float32 throughout (the module docstring's u32, plog32)
            a, b = np.float32(a), np.float32(b)
            out = a * normals32(key, n) if kind == "normal" else a + (b - a) * uniforms32(key, n)
            return out.reshape(shape)
        out = a * normals(key, n) if kind == "normal" else a + (b - a) * uniforms(key, n)
        out = out.reshape(shape)
    return out.astype(np.float32) if dtype == "float32" else out


SHUFFLE_STREAM = 1 << 32  # epoch e shuffles with stream_key(seed, SHUFFLE_STREAM + e)


def permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of one epoch: Fisher-Yates driven by the uniforms of its own stream.

    For i = n-1 down to 1 (step s = 0, 1, ...): j = floor(u(key, s) * (i + 1)), swap i and j.
    """
    u = uniforms(stream_key(seed, SHUFFLE_STREAM + epoch), max(n - 1, 0))
    perm = np.arange(n, dtype=np.int64)
    for s, i in enumerate(range(n - 1, 0, -1)):
        j = int(u[s] * (i + 1))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


DROPOUT_STREAM = 1 << 33  # dropout layer i: stream_key(seed, DROPOUT_STREAM + i), then the step


def dropout_key(seed: int, step: int, layer: int) -> int:
    """The key of layer ``layer``'s dropout masks at step ``step`` (0 for the first step)."""
    return stream_key(stream_key(seed, DROPOUT_STREAM + layer), step)


DROPOUT_GOLDEN = 0x9E3779B9  # 2^32 / golden ratio, odd: the masks' Weyl step
_MASK32 = 0xFFFFFFFF


def hash32(x: np.ndarray) -> np.ndarray:
    """A 32-bit integer hash (Wellons' lowbias32) of uint32 values held in a uint64 array: each
    product is below 2^64 and is cut back to 32 bits, so NumPy, C (uint32_t) and torch (int64)
    compute the same bits."""
    x = np.asarray(x, dtype=np.uint64) & np.uint64(_MASK32)
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(_MASK32)
    x = x ^ (x >> np.uint64(15))
    x = (x * np.uint64(0x846CA68B)) & np.uint64(_MASK32)
    return x ^ (x >> np.uint64(16))


def dropout_threshold(p: float) -> int:
    """T = ceil(p * 2^32): u = h * 2^-32 >= p exactly when the integer h >= T (p * 2^32 exact)."""
    return math.ceil(float(p) * 2.0**32)


def dropout_keep(key: int, first: int, rows: int, width: int, p: float) -> np.ndarray:
    """Rows first..first+rows-1 of a batch's mask, [rows, width] booleans: element (r, j), index
    i = r * width + j, is kept when u_i = h_i * 2^-32 >= p, h_i = hash32(lo32(key) + (i + 1) *
    DROPOUT_GOLDEN mod 2^32), so each is dropped with probability p (to 2^-32).

    One 32-bit hash per element (not splitmix64's 64-bit one): the C loop runs in 32-bit vector
    lanes. The indices of a batch's mask are distinct modulo 2^32 (a layer's mask per step has
    fewer than 2^32 elements)."""
    idx = np.arange(first * width, (first + rows) * width, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = np.uint64(key & _MASK32) + (idx + np.uint64(1)) * np.uint64(DROPOUT_GOLDEN)
    return (hash32(x) >= dropout_threshold(p)).reshape(rows, width)
