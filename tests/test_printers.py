"""The printers' notation (issue 13, item 1): each formula against the string a textbook writes,
written here by hand."""

from __future__ import annotations

import sympy as sp

from symbackprop.printing import latex as lx
from symbackprop.printing.names import latex_name, notation

x, z1, k, g, buf, mu = sp.symbols("x z1 k g buf mu", real=True)


def test_relu_derivative_is_an_indicator_not_theta():
    assert lx.latex(sp.Heaviside(x, 0), elements=True) == r"\mathbb{1}\left[x > 0\right]"
    assert lx.text(sp.Heaviside(z1, 0)) == "(z1 > 0)"
    assert "theta" not in lx.latex(sp.diff(sp.Max(0, x), x))


def test_momentum_piecewise_is_cases_in_latex_and_prose_in_text():
    rule = sp.Piecewise((g, sp.Eq(k, 1)), (g + mu * buf, True))
    assert lx.text(rule) == "{k = 1: g; otherwise: g + buf*mu}"
    tex = lx.latex(rule)
    assert tex == (
        r"\begin{cases} g & \text{if } k = 1 \\ g + \mathit{buf} \mu & \text{otherwise} \end{cases}"
    )


def test_text_has_no_sympy_syntax():
    out = lx.text(sp.Max(0, z1) + sp.Abs(x) + sp.E)
    for word in ("Max", "Abs", "E +", "Heaviside", "Piecewise", "Eq("):
        assert word not in out, out
    assert "max(0, z1)" in out and "abs(x)" in out and "exp(1)" in out


def test_function_argument_is_italic_network_vector_bold():
    sig = 1 / (1 + sp.exp(-x))
    assert lx.latex(sig, elements=True) == r"\frac{1}{1 + e^{- x}}"
    assert latex_name("x") == r"\mathbf{x}"
    assert latex_name("x", True) == "x"
    assert latex_name("W2") == r"\mathbf{W}^{(2)}"
    assert latex_name("w2_11") == "w^{(2)}_{11}"
    assert latex_name("delta1") == r"\boldsymbol{\delta}^{(1)}"


def test_gradients_of_parameters_and_tensors():
    with notation(params=["W1", "b1"], tensors=["z1", "a1"]):
        assert latex_name("dW1") == r"\frac{\partial E}{\partial \mathbf{W}^{(1)}}"
        assert latex_name("da1") == r"\frac{\partial \ell}{\partial \mathbf{a}^{(1)}}"


def test_no_escaped_underscore_for_any_name():
    for name in ("lse", "buf", "v_hat", "m_3_1", "beta1", "my_weird_name", "dE_w2_11"):
        tex = latex_name(name)
        assert r"\_" not in tex and r"\mathrm" not in tex, (name, tex)


def test_indexed_kronecker_and_sum_are_typeset():
    j, kk = sp.symbols("j k", integer=True)
    a, t = sp.IndexedBase("a"), sp.IndexedBase("t")
    with sp.evaluate(False):
        jac = a[j] * (sp.KroneckerDelta(j, kk) - a[kk])
    assert lx.latex(jac) == r"a_{j} \left(\delta_{jk} - a_{k}\right)"
    s = sp.Sum(t[j], (j, 1, sp.Symbol("K")))
    assert lx.latex(s) == r"\sum_{j=1}^{K} t_{j}"
    assert lx.text(jac) == "a_j*(delta_jk - a_k)"
