"""Every activation's derived derivative against central finite differences (mpmath, 30 digits)."""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp

from symbackprop.core import activations
from symbackprop.core.symbols import A, X
from symbackprop.spec.expressions import parse_expression

POINTS = [-3.1, -1.7, -0.4, -0.05, 0.05, 0.3, 1.2, 2.9]
CUSTOM = [
    "x*tanh(log(1+exp(x)))",
    "x/(1+abs(x))",
    "sin(x) + x**2/2",
    "sigmoid(x)*x",
    "max(x, 0.2*x)",
]


def registry():
    out = [activations.make(n) for n in activations.NAMES if n != "softmax"]
    out += [
        activations.make("leaky_relu", sp.Rational(1, 5)),
        activations.make("elu", sp.Rational(3, 2)),
    ]
    out += [activations.custom(parse_expression(t, {"x": X}), t) for t in CUSTOM]
    return out


@pytest.mark.parametrize("act", registry(), ids=lambda a: a.source or a.name + str(a.params))
def test_derivative_matches_finite_differences(act):
    d = activations.derive_activation(act)
    f = sp.lambdify(X, act.expr, "mpmath")
    fp = sp.lambdify((X, A), d.expr, "mpmath")
    mpmath.mp.dps = 30
    for x0 in POINTS:
        h = mpmath.mpf("1e-10")
        x = mpmath.mpf(x0)
        fd = (f(x + h) - f(x - h)) / (2 * h)
        got = fp(x, f(x))
        assert abs(got - fd) <= mpmath.mpf("1e-15") * max(1, abs(fd)), (act.name, x0, got, fd)


@pytest.mark.parametrize(("name", "expected"), [
    ("sigmoid", A * (1 - A)),
    ("tanh", 1 - A**2),
])  # fmt: skip
def test_textbook_rewrites(name, expected):
    d = activations.derive_activation(activations.make(name))
    assert d.in_output and sp.expand(d.expr - expected) == 0
    # The rewrite is shown as steps: definition, raw derivative, the substitution, the result.
    assert [s.lhs for s in d.steps][:2] == ["f(x)", "f'(x)"] and len(d.steps) == 4


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu"])
def test_kink_follows_pytorch(name):
    # PyTorch: relu'(0) = 0, leaky_relu'(0) = alpha, elu'(0) = alpha * exp(0) = alpha.
    act = activations.make(name)
    d = activations.derive_activation(act)
    got = sp.lambdify((X, A), d.expr, "mpmath")(0, 0)
    alpha = dict(act.params).get("alpha", 0)
    assert got == alpha


def test_softmax_jacobian_proof_proves_the_identity_and_refutes_a_wrong_one():
    """losses.softmax_jacobian_proved reduces ∂softmax_i/∂z_j − a_i(δ_ij − a_j) to exactly 0; the
    same reduction of a wrong Jacobian (a_i(1 − a_j) off the diagonal) is not 0."""
    import sympy as sp

    from symbackprop.core import losses

    losses.softmax_jacobian_proved.cache_clear()
    assert losses.softmax_jacobian_proved(3) and losses.softmax_jacobian_proved(2)
    z = sp.symbols("z1:4", real=True)
    s = [sp.exp(zi) / sum(sp.exp(zj) for zj in z) for zi in z]
    wrong = sp.diff(s[0], z[1]) - s[0] * (1 - s[1])
    assert sp.cancel(sp.together(wrong)) != 0
    a = {zi: v for zi, v in zip(z, (0.3, -1.2, 2.0), strict=True)}  # and it is wrong at a point
    assert abs(float(wrong.subs(a))) > 1e-3
