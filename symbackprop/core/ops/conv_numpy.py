"""Vectorized NumPy convolution and pooling over a batch [n, C, *spatial] (1 or 2 spatial axes).

One source for two readers: the evaluator behind ``derive --at`` calls these functions, and the
NumPy target embeds this file verbatim (from ``def _windows``), so the generated module computes
exactly what the derivation evaluates. Windows come from ``sliding_window_view`` and products
from ``einsum`` (BLAS); the only Python loops run over kernel offsets (k or kh·kw of them), never
over positions or samples. ``pad`` is ((lo, hi), ...) per spatial axis, as 'same' may need an
uneven split (PyTorch puts the extra zero at the end).
"""

from __future__ import annotations

import numpy as np

_P, _K = "pq", "kl"  # einsum letters of the positions and kernel offsets of each spatial axis


def _windows(xp, ks, stride, dil):
    """The view [n, C, *out, *ks] of a padded batch: element (p, k) is xp[..., s·p + d·k]."""
    nd = len(ks)
    span = tuple(d * (k - 1) + 1 for k, d in zip(ks, dil, strict=False))
    view = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + nd)))
    return view[(slice(None), slice(None), *(slice(None, None, s) for s in stride),
                 *(slice(None, None, d) for d in dil))]  # fmt: skip


def _padded(x, pad, value=0.0):
    return np.pad(x, ((0, 0), (0, 0), *pad), constant_values=value)


def _scatter(cols, x_shape, ks, stride, pad, dil):
    """The adjoint of _windows: cols [n, C, *ks, *out] summed back into [n, C, *x_shape]
    (a loop over the kernel offsets only)."""
    nd = len(ks)
    out = cols.shape[2 + nd :]
    full = tuple(x_shape[i] + pad[i][0] + pad[i][1] for i in range(nd))
    dxp = np.zeros((*cols.shape[:2], *full), dtype=cols.dtype)
    for k in np.ndindex(*ks):
        where = tuple(slice(d * ki, d * ki + s * (o - 1) + 1, s)
                      for ki, d, s, o in zip(k, dil, stride, out, strict=False))  # fmt: skip
        dxp[(slice(None), slice(None), *where)] += cols[(slice(None), slice(None), *k)]
    return dxp[(slice(None), slice(None), *(slice(lo, lo + n) for (lo, _), n in
                                            zip(pad, x_shape, strict=False)))]  # fmt: skip


def conv_forward(x, w, b, stride, pad, dil, groups):
    """z[n, o, p] = Σ_c Σ_k W[o, c, k] x[n, g·C/G + c, s·p + d·k − pad] + b[o] (nn.ConvNd)."""
    n, c, nd, o, ks = x.shape[0], x.shape[1], w.ndim - 2, w.shape[0], w.shape[2:]
    cols = _windows(_padded(x, pad), ks, stride, dil)
    out = cols.shape[2 : 2 + nd]
    cols = cols.reshape(n, groups, c // groups, *out, *ks)
    wg = w.reshape(groups, o // groups, c // groups, *ks)
    p, k = _P[:nd], _K[:nd]
    z = np.einsum(f"ngc{p}{k},goc{k}->ngo{p}", cols, wg, optimize=True).reshape(n, o, *out)
    if b is not None:
        z = z + (b if np.ndim(b) == 0 else b.reshape(o, *(1,) * nd))
    return z


def conv_grad_weight(g, x, w_shape, stride, pad, dil, groups):
    """∂/∂W summed over the batch: Σ_n Σ_p δ[n, o, p] x[n, c, s·p + d·k − pad], a correlation of
    the input with δ."""
    n, c, nd, o, ks = x.shape[0], x.shape[1], len(w_shape) - 2, w_shape[0], tuple(w_shape[2:])
    cols = _windows(_padded(x, pad), ks, stride, dil)
    out = cols.shape[2 : 2 + nd]
    cols = cols.reshape(n, groups, c // groups, *out, *ks)
    gg = g.reshape(n, groups, o // groups, *out)
    p, k = _P[:nd], _K[:nd]
    return np.einsum(f"ngo{p},ngc{p}{k}->goc{k}", gg, cols, optimize=True).reshape(w_shape)


def conv_grad_input(g, w, x_shape, stride, pad, dil, groups):
    """∂ℓ/∂x: the transposed (full) convolution of δ with the kernel; x_shape is [C, *spatial]."""
    n, nd, o, ks = g.shape[0], w.ndim - 2, w.shape[0], w.shape[2:]
    c, out = x_shape[0], g.shape[2:]
    gg = g.reshape(n, groups, o // groups, *out)
    wg = w.reshape(groups, o // groups, c // groups, *ks)
    p, k = _P[:nd], _K[:nd]
    cols = np.einsum(f"ngo{p},goc{k}->ngc{k}{p}", gg, wg, optimize=True)
    return _scatter(cols.reshape(n, c, *ks, *out), x_shape[1:], ks, stride, pad, dil)


def _pool_windows(x, ks, stride, pad, value):
    cols = _windows(_padded(x, pad, value), ks, stride, (1,) * len(ks))
    return cols.reshape(*cols.shape[: 2 + len(ks)], -1)  # [n, C, *out, K]


def maxpool(x, ks, stride, pad):
    """The maximum of each window (padding never wins: it is −inf), as nn.MaxPoolNd."""
    return _pool_windows(x, ks, stride, pad, -np.inf).max(axis=-1)


def maxpool_backward(g, x, ks, stride, pad):
    """δ of each window to its first maximum (ties: the first in row-major order, as PyTorch)."""
    first = _pool_windows(x, ks, stride, pad, -np.inf).argmax(axis=-1)
    hits = (first[..., None] == np.arange(int(np.prod(ks)))) * g[..., None]  # [n, C, *out, K]
    nd = len(ks)
    hits = np.moveaxis(hits.reshape(*g.shape, *ks), tuple(range(2 + nd, 2 + 2 * nd)),
                       tuple(range(2, 2 + nd)))  # fmt: skip
    return _scatter(hits, x.shape[2:], ks, stride, pad, (1,) * nd)


def avgpool(x, ks, stride, pad):
    """The mean of each window, zeros of the padding counted (nn.AvgPoolNd's defaults)."""
    return _pool_windows(x, ks, stride, pad, 0.0).mean(axis=-1)


def avgpool_backward(g, x_shape, ks, stride, pad):
    """δ / |window| to every element of each window."""
    nd = len(ks)
    share = g / float(np.prod(ks))  # a Python float keeps float32 batches float32
    cols = np.broadcast_to(share.reshape(*g.shape[:2], *(1,) * nd, *g.shape[2:]),
                           (*g.shape[:2], *ks, *g.shape[2:]))  # fmt: skip
    return _scatter(cols, x_shape, ks, stride, pad, (1,) * nd)
