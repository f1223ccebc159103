"""The correct formula that ``verify`` shows beside a verdict, in text and LaTeX (N = 1).

Scalar form: the element's chain-rule product with each δ it uses. Matrix form: dE/dP in
column-vector notation with the backward recurrences it needs.
"""

from __future__ import annotations

import sympy as sp

from ..core.ir import N, Param
from ..core.ops import kind
from ..core.ops.conv import geometry
from ..core.scalar import Factor
from ..printing import latex as lx
from . import timeform
from .probe import ScalarNet


def scalar_formula(net: ScalarNet, el: str) -> tuple[str, str]:
    """dE/d(element) as its chain-rule product, with each δ it uses, in text and LaTeX."""
    g = net.gradient(el)

    def product(fs: tuple[Factor, ...], tex: bool, scale: sp.Expr) -> str:
        show = (lambda e: lx.latex(e)) if tex else lx.text
        parts = [show(scale)] if scale != 1 else []
        parts += [f"({show(f.expr)})" if f.expr.is_Add else show(f.expr) for f in fs if f.expr != 1]
        return (r" \cdot " if tex else " * ").join(parts) or "1"

    c = g.scale.xreplace({N: 1}) if net.batch == 1 else sp.Integer(1)
    rhs = batch_sum(net, g.scale, product(g.factors, False, c), product(g.factors, True, c))
    txt = [f"dE/d{g.element} = {rhs[0]}"]
    tex = [f"{lx.latex_name('dE_' + g.element)} = {rhs[1]}"]
    used, todo = set(), {s.name for f in g.factors for s in f.expr.free_symbols}
    while todo:
        name = todo.pop()
        used.add(name)
        todo |= {s.name for f in net.sd.delta_factors.get(name, ()) for s in f.expr.free_symbols}
        todo -= used
    for name, _ in net.sd.definitions:
        if name in used and name in net.sd.delta_factors:
            fs, one = net.sd.delta_factors[name], sp.Integer(1)
            txt.append(f"{name} = {product(fs, False, one)}")
            tex.append(f"{lx.latex_name(name)} = {product(fs, True, one)}")
    return "\n".join(txt), r",\quad ".join(tex)


def batch_sum(net: ScalarNet, scale: sp.Expr, txt: str, tex: str) -> tuple[str, str]:
    """A batch's gradient (``--batch``): the reduction's scale (1/N for a mean) times Σ_n of
    one sample's term, in text (``sum_n(...)``) and LaTeX; one sample's term as it is."""
    if net.batch == 1:
        return txt, tex
    if scale == 1:
        return f"sum_n({txt})", rf"\sum_{{n}} \left({tex}\right)"
    return f"{lx.text(scale)} * sum_n({txt})", rf"{lx.latex(scale)} \sum_{{n}} \left({tex}\right)"


def corr_formula(op) -> tuple[str, str]:
    """A conv kernel's gradient as the input correlated with δ, in the notation verify reads:
    ``corr(x, delta1, stride=2, padding=1)`` (settings at PyTorch's defaults left out)."""
    g, inp, _ = op.args
    stride, pad, dil, groups = geometry(op)

    def value(v: tuple) -> str:
        return str(v[0]) if len(set(v)) == 1 else "(" + ", ".join(map(str, v)) + ")"

    kws = []
    if set(stride) != {1}:
        kws.append(f"stride={value(stride)}")
    if any(lo or hi for lo, hi in pad):
        sym = all(lo == hi for lo, hi in pad)
        kws.append(
            "padding="
            + (
                value(tuple(lo for lo, _ in pad))
                if sym
                else "(" + ", ".join(f"({lo}, {hi})" for lo, hi in pad) + ")"
            )
        )
    if set(dil) != {1}:
        kws.append(f"dilation={value(dil)}")
    if groups != 1:
        kws.append(f"groups={groups}")
    tail = "".join(", " + k for k in kws)
    where = r"\quad \text{(" + ", ".join(kws).replace("_", " ") + ")}" if kws else ""
    return (
        f"corr({inp}, {g}{tail})",
        rf"\operatorname{{corr}}\left({lx.latex_name(inp)}, {lx.latex_name(g)}\right){where}",
    )


def input_formula(net: ScalarNet, inputs: list[str]) -> tuple[str, str]:
    """dE/dx_j = c dx_j for each input element, with dx_j's definition (its δ's as symbols)."""
    c = net.d.scale.xreplace({N: 1})
    defs = dict(net.sd.definitions)
    txt, tex = [], []
    for x in inputs:
        rhs = c * defs[net.input_grads[x].name]
        txt.append(f"dE/d{x} = {lx.text(rhs)}")
        tex.append(f"{lx.latex_name('dE_' + x)} = {lx.latex(rhs)}")
    return "\n".join(txt), r",\quad ".join(tex)


def matrix_formula(net: ScalarNet, p: Param) -> tuple[str, str]:
    """dE/dP in column-vector notation with the backward recurrences it needs."""
    name, c = lx.latex_name, net.d.scale.xreplace({N: 1})
    op = net.d.gradients[p.name]
    dl = op.args[0]
    seqs = timeform.sequences(net.d, net.steps) if net.steps else set()
    if (summed := timeform.gradient(op, seqs)) is not None:  # Σ_t over a recurrent net's steps
        txt, tex = summed
    elif op.kind == "grad_weight":
        inp = op.args[1]
        txt, tex = f"{dl} @ {inp}.T", rf"{name(dl)} \left({name(inp)}\right)^T"
    elif op.kind == "grad_conv_weight":
        txt, tex = corr_formula(op)
    elif op.kind == "grad_bias" and not p.shape:
        txt, tex = f"sum({dl})", rf"\sum_i {name(dl)}_i"
    elif op.kind == "grad_bias":
        txt, tex = dl, name(dl)
    elif op.expr is None:  # a kind's own formula (a recurrent weight's Σ over time steps)
        txt = kind(op).text(op, net.d.context).split(" = ", 1)[-1].removeprefix("sum_n ")
        tex = kind(op).latex(op, net.d.context).split(" = ", 1)[-1].removeprefix(r"\sum_n ")
    else:
        txt, tex = lx.text(op.expr), lx.latex(op.expr, hadamard=True)
        if not p.shape:
            txt, tex = f"sum({txt})", rf"\sum_i {tex}"
    if net.batch > 1:
        txt, tex = batch_sum(net, net.d.scale, txt, tex)
    elif c != 1:
        txt, tex = f"{lx.text(c)} * {txt}", f"{lx.latex(c)} {tex}"
    lhs = name("d" + p.name).replace(r"\partial \ell", r"\partial E", 1)  # dE/dU, not dℓ/dU
    txts, texs = [f"dE/d{p.name} = {txt}"], [f"{lhs} = {tex}"]
    needed = {s.name for s in op.expr.free_symbols} if op.expr is not None else set(op.args)
    ctx = net.d.context
    for o in reversed(net.d.backward):  # the recurrences it reads, back to the loss
        if o.out not in needed or o.kind.startswith("grad_"):
            continue
        needed |= set(o.args) | ({s.name for s in o.expr.free_symbols} if o.expr is not None
                                 else set())  # fmt: skip
    if any(o.kind == "cell_bptt" and o.out in needed for o in net.d.backward):
        # a gru/lstm layer: the Σ over t with its gate deltas (dx1, dq1) as the net's; the
        # cell's recurrences are in the derivation (verify does not read them in matrix form)
        return txts[0], texs[0]
    for o in net.d.backward:
        if o.out not in needed or o.kind.startswith("grad_"):
            continue
        a = o.args
        if (steps := timeform.line(o, net.d, net.steps, seqs) if seqs else None) is not None:
            txts += [t for t, _ in steps]
            texs += [t for _, t in steps]
        elif o.kind == "map":
            txts.append(f"{o.out} = {lx.text(o.expr)}")
            texs.append(f"{name(o.out)} = {lx.latex(o.expr, hadamard=True)}")
        elif o.kind == "reshape":
            dims = ", ".join(map(str, net.d.shapes[o.out]))
            txts.append(f"{o.out} = reshape({a[0]}, {dims})")
            texs.append(kind(o).latex(o, ctx))
        elif o.kind == "softmax_backward":
            txts.append(f"{o.out} = {a[0]} * ({a[1]} - {a[0]}.T @ {a[1]})")
            texs.append(
                rf"{name(o.out)} = {name(a[0])} \odot ({name(a[1])} - {name(a[0])}^T {name(a[1])})"
            )
        else:
            txts.append(kind(o).text(o, ctx))
            texs.append(kind(o).latex(o, ctx))
    return "\n".join(txts), r",\quad ".join(texs)
