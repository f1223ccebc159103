"""The recurrent benchmark's JAX contender (bench_rnn.py, when JAX is installed): one jitted
training step of the same net — nn.RNN/GRU/LSTM's equations and PyTorch's parameter layouts
(gates stacked in PyTorch's order), a softmax head, cross-entropy over the batch, and Adam as
torch.optim.Adam computes it — the time loop a ``jax.lax.scan``. ``check`` holds one step
against the generated NumPy module's before anything is timed.
"""

from __future__ import annotations

import numpy as np

BETAS, EPS = (0.9, 0.999), 1e-8


def available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def _cell(kind: str):
    """h (and c) after one step, from x_t's and h's affine parts (PyTorch's gate order)."""
    import jax
    import jax.numpy as jnp

    def rnn(state, xa, p):
        (h,) = state
        return (jnp.tanh(xa + h @ p["U1"].T + p["br1"]),)

    def gru(state, xa, p):
        (h,) = state
        q = h @ p["U1"].T + p["br1"]
        xr, xz, xn = jnp.split(xa, 3, axis=-1)
        qr, qz, qn = jnp.split(q, 3, axis=-1)
        r, z = jax.nn.sigmoid(xr + qr), jax.nn.sigmoid(xz + qz)
        n = jnp.tanh(xn + r * qn)
        return ((1 - z) * n + z * h,)

    def lstm(state, xa, p):
        h, c = state
        i, f, g, o = jnp.split(xa + h @ p["U1"].T + p["br1"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c

    return {"rnn": rnn, "gru": gru, "lstm": lstm}[kind]


def jax_step(kind: str, params: dict, X: np.ndarray, T: np.ndarray, lr: float = 1e-3):
    """(step, state): ``step()`` runs one jitted Adam step on (X, T) and reads the loss back
    (as PyTorch's ``.item()``); ``state[0]`` holds the parameters."""
    import jax
    import jax.numpy as jnp

    cell = _cell(kind)
    units = params["U1"].shape[1]

    def loss(p, x, t):
        xa = jnp.einsum("ntf,gf->tng", x, p["W1"]) + p["b1"]  # every step's W x_t + b at once
        zero = jnp.zeros((x.shape[0], units), x.dtype)
        state = (zero, zero) if kind == "lstm" else (zero,)
        last, _ = jax.lax.scan(lambda s, xt: (cell(s, xt, p), None), state, xa)
        z = last[0] @ p["W2"].T + p["b2"]
        return -jnp.sum(t * jax.nn.log_softmax(z)) / x.shape[0]

    b1, b2 = BETAS

    @jax.jit
    def update(p, m, v, k, x, t):
        E, g = jax.value_and_grad(loss)(p, x, t)
        k = k + 1
        m = {n: b1 * m[n] + (1 - b1) * g[n] for n in p}
        v = {n: b2 * v[n] + (1 - b2) * g[n] * g[n] for n in p}
        c1, c2 = 1 - b1**k, 1 - b2**k
        p = {n: p[n] - lr / c1 * m[n] / (jnp.sqrt(v[n]) / jnp.sqrt(c2) + EPS) for n in p}
        return E, p, m, v, k

    p = {n: jnp.asarray(a) for n, a in params.items()}
    zeros = {n: jnp.zeros_like(a) for n, a in p.items()}
    state = [p, zeros, dict(zeros), jnp.asarray(0.0, X.dtype)]
    x, t = jnp.asarray(X), jnp.asarray(T)

    def step() -> float:
        E, *state[:] = update(*state, x, t)
        return float(E)

    return step, state


def check(kind: str, module, X: np.ndarray, T: np.ndarray) -> None:
    """One JAX step equals one step of the generated NumPy ``module`` (float32: 1e-4)."""
    params = module.init_params()
    step, state = jax_step(kind, {n: a.copy() for n, a in params.items()}, X, T)
    want = module.step(params, module.init_state(params), X, T)
    got = step()
    np.testing.assert_allclose(got, want, rtol=1e-4)
    for n, a in params.items():
        np.testing.assert_allclose(np.asarray(state[0][n]), a, rtol=1e-4, atol=1e-6, err_msg=n)
