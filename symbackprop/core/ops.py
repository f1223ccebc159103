"""The op kinds: what each kind of IR op means, in one registry entry per kind.

An :class:`OpKind` holds the kind's shape rule, its NumPy evaluator, its formula in text and
LaTeX, its element-wise (index) form and its pullback (the ops of its vector-Jacobian product).
Every reader of a program dispatches on this table: the evaluator behind ``derive --at``,
scalar mode and ``verify`` (through the index form), the documents (through the formulas) and
the chain rule (through the pullbacks). A test proves each pullback equal to ``sympy.diff`` of
the index form on small shapes, so the formulas printed, proved and generated cannot disagree.

Arrays in the evaluator have the batch as their first axis; per-sample scalars (``lse``) keep
a trailing axis of 1 so they broadcast against vectors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import sympy as sp

from ..printing import latex as lx
from ..printing.numpy import NumpyCodePrinter
from .ir import N, Op, Param, Shape, vec


@dataclass(frozen=True)
class Context:
    """What the rules need to know besides the op: every tensor's and parameter's shape."""

    shapes: Mapping[str, Shape]
    params: Mapping[str, Param]

    def shape(self, name: str) -> Shape:
        return self.params[name].shape if name in self.params else self.shapes[name]

    def is_param(self, name: str) -> bool:
        return name in self.params


class Elements(Protocol):
    """Scalar symbols of single elements (0-based indices), for the index forms."""

    ctx: Context

    def tensor(self, name: str, index: tuple[int, ...]) -> sp.Symbol: ...

    def param(self, name: str, index: tuple[int, ...]) -> sp.Symbol: ...


class Backward(Protocol):
    """What a pullback may do: ask what needs a gradient, emit parameter gradients, and
    contribute to the gradient of an input (an op whose out is ``slot(...)``, or an alias)."""

    ctx: Context
    scale: sp.Expr

    def requires(self, name: str) -> bool: ...

    def emit(self, op: Op) -> None: ...

    def slot(self, tensor: str, consumer: str) -> str: ...

    def contribute(self, tensor: str, op: Op | None = None, alias: str | None = None) -> None: ...


@dataclass(frozen=True)
class OpKind:
    """One kind of op: its rules. ``pullback`` is None for ops that only occur in backward
    programs (they are never differentiated)."""

    name: str
    shape: Callable[[Op, Context], Shape]
    evaluate: Callable[[Op, dict, Context], np.ndarray]
    text: Callable[[Op, Context], str]
    latex: Callable[[Op, Context], str]
    elements: Callable[[Op, Elements], dict[tuple[int, ...], sp.Expr]]
    pullback: Callable[[Op, str, Backward], None] | None = None


OPS: dict[str, OpKind] = {}


def register(kind: OpKind) -> OpKind:
    """Add (or replace) an op kind; a kind's macros in every target are looked up by name."""
    OPS[kind.name] = kind
    return kind


def kind(op: Op) -> OpKind:
    try:
        return OPS[op.kind]
    except KeyError:
        raise ValueError(f"no op kind '{op.kind}' is registered") from None


# ---- numbers ----------------------------------------------------------------------------------

_ERF = np.vectorize(math.erf, otypes=[float])


def _step(x):
    x = np.asarray(x)
    return (x > 0).astype(x.dtype)


_FUNCTIONS = {"np": np, "_erf": _ERF, "_step": _step}


@lru_cache(maxsize=1024)
def _compile(expr: sp.Expr, names: tuple[str, ...]):
    symbols = [sp.Symbol(n, real=True) for n in names]
    mapping = {s: sp.Symbol(s.name, real=True) for s in expr.free_symbols}
    return sp.lambdify(
        symbols, expr.xreplace(mapping), modules=[_FUNCTIONS, "numpy"], printer=NumpyCodePrinter()
    )


def elementwise(expr: sp.Expr, env: Mapping[str, Any], dtype) -> np.ndarray:
    """Evaluate an elementwise expression whose free symbols name arrays (or scalars) in env."""
    names = tuple(sorted(s.name for s in expr.free_symbols))
    out = _compile(expr, names)(*(env[n] for n in names))
    return np.asarray(out, dtype=dtype)


def _rows(env: dict) -> int:
    return env["x"].shape[0]


def _scale(op: Op, env: dict, dtype) -> np.ndarray:
    return elementwise(op.scale if op.scale is not None else sp.Integer(1), env, dtype)


# ---- index forms ------------------------------------------------------------------------------


def indices(shape: Shape):
    """Every 0-based index of ``shape`` in row-major order (``()`` once for a scalar)."""
    return itertools.product(*(range(n) for n in shape))


def _element_subs(expr: sp.Expr, index: tuple[int, ...], el: Elements) -> sp.Expr:
    """``expr`` (in vec symbols) at one element: tensors of the element's shape at ``index``,
    per-sample scalars as themselves, parameters broadcast along the last axis."""
    subs = {}
    for s in expr.free_symbols:
        if s == N:
            continue
        if el.ctx.is_param(s.name):
            shape = el.ctx.shape(s.name)
            subs[s] = el.param(s.name, index[len(index) - len(shape) :] if shape else ())
        else:
            shape = el.ctx.shape(s.name)
            subs[s] = el.tensor(s.name, index[len(index) - len(shape) :] if shape else ())
    return expr.xreplace(subs)


# ---- text and LaTeX helpers -------------------------------------------------------------------

name_tex = lx.latex_name


def _c_text(scale: sp.Expr | None) -> str:
    return "" if scale is None or scale == 1 else f"{lx.text(scale)} * "


def _c_tex(scale: sp.Expr | None) -> str:
    return "" if scale is None or scale == 1 else lx.latex(scale) + " "


# ---- affine: out = W @ inp + b ----------------------------------------------------------------


def _affine_shape(op: Op, ctx: Context) -> Shape:
    w, inp, _ = op.args
    return (*ctx.shape(inp)[:-1], ctx.shape(w)[0])


def _affine_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    w, inp, b = op.args
    z = env[inp] @ env[w].T
    return z + env[b] if b else z


def _affine_text(op: Op, ctx: Context) -> str:
    w, inp, b = op.args
    return f"{op.out} = {w} @ {inp}" + (f" + {b}" if b else "")


def _affine_latex(op: Op, ctx: Context) -> str:
    w, inp, b = op.args
    bias = ""
    if b:
        bias = " + " + name_tex(b) + (r" \mathbf{1}" if ctx.params[b].kind == "shared" else "")
    return f"{name_tex(op.out)} = {name_tex(w)} {name_tex(inp)}{bias}"


def _affine_elements(op: Op, el: Elements) -> dict:
    w, inp, b = op.args
    units, fan_in = el.ctx.shape(w)
    out = {}
    for (i,) in indices((units,)):
        total = sp.Add(*(el.param(w, (i, j)) * el.tensor(inp, (j,)) for j in range(fan_in)))
        if b:
            total += el.param(b, () if not el.ctx.shape(b) else (i,))
        out[(i,)] = total
    return out


def _affine_pullback(op: Op, g: str, bw: Backward) -> None:
    w, inp, b = op.args
    if bw.requires(w):
        bw.emit(Op("grad_weight", f"d{w}", (g, inp, w), scale=bw.scale, why="∂E/∂W = c Σ δ inpᵀ"))
    if b and bw.requires(b):
        bw.emit(Op("grad_bias", f"d{b}", (g, b), scale=bw.scale, why="∂E/∂b = c Σ δ"))
    if bw.requires(inp):
        slot = bw.slot(inp, op.out)
        bw.contribute(inp, Op("matvec_t", slot, (w, g), why=f"∂ℓ/∂{inp} = {w}ᵀ {g}"))


register(OpKind("affine", _affine_shape, _affine_eval, _affine_text, _affine_latex,
                _affine_elements, _affine_pullback))  # fmt: skip


# ---- map: out = expr(args) elementwise --------------------------------------------------------


def _map_shape(op: Op, ctx: Context) -> Shape:
    shapes = [ctx.shape(a) for a in op.args if not ctx.is_param(a)]
    return max(shapes, key=len) if shapes else ()


def _map_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    dtype = env["x"].dtype
    shape = _map_shape(op, ctx)
    full = (_rows(env), *(shape or (1,)))
    return np.broadcast_to(elementwise(op.expr, env, dtype), full).copy()


def _map_text(op: Op, ctx: Context) -> str:
    return f"{op.out} = {lx.text(op.expr)}"


def _map_latex(op: Op, ctx: Context) -> str:
    return f"{name_tex(op.out)} = {lx.latex(op.expr, hadamard=True)}"


def _map_elements(op: Op, el: Elements) -> dict:
    shape = _map_shape(op, el.ctx)
    return {ix: _element_subs(op.expr, ix, el) for ix in indices(shape)}


def partial(op: Op, arg: str) -> sp.Expr:
    """∂out/∂arg of a map, elementwise: the op's own (rewritten) partial, else sympy.diff."""
    if op.partials:
        return op.partials[op.args.index(arg)]
    return sp.diff(op.expr, vec(arg))


def _map_pullback(op: Op, g: str, bw: Backward) -> None:
    for arg in dict.fromkeys(op.args):
        if not bw.requires(arg) or vec(arg) not in op.expr.free_symbols:
            continue
        local = partial(op, arg)
        inputs = (g, *dict.fromkeys((*op.args, op.out)))
        if bw.ctx.is_param(arg):
            axes = "all" if not bw.ctx.shape(arg) else "batch"
            bw.emit(Op("grad_reduce", f"d{arg}", (g, *inputs[1:], arg), vec(g) * local,
                       bw.scale, f"∂E/∂{arg} = c Σ ∂ℓ/∂{op.out} ⊙ ∂{op.out}/∂{arg}",
                       attrs=(("axes", axes),)))  # fmt: skip
        elif local == 1:
            bw.contribute(arg, alias=g)
        else:
            why = (
                "δ = ∂ℓ/∂a ⊙ f'(z)"
                if op.partials
                else f"∂ℓ/∂{arg} = ∂ℓ/∂{op.out} ⊙ ∂{op.out}/∂{arg}"
            )
            bw.contribute(arg, Op("map", bw.slot(arg, op.out), inputs, vec(g) * local, why=why))


register(OpKind("map", _map_shape, _map_eval, _map_text, _map_latex, _map_elements,
                _map_pullback))  # fmt: skip


# ---- softmax, log-sum-exp and the softmax Jacobian --------------------------------------------


def _same_shape(op: Op, ctx: Context) -> Shape:
    return ctx.shape(op.args[0])


def _softmax_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    z = env[op.args[0]]
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_latex(op: Op, ctx: Context) -> str:
    a, z = name_tex(op.out), name_tex(op.args[0])
    return rf"{a}_i = \frac{{e^{{{z}_i}}}}{{\sum_j e^{{{z}_j}}}}"


def _softmax_elements(op: Op, el: Elements) -> dict:
    (n,) = el.ctx.shape(op.args[0])
    zs = [el.tensor(op.args[0], (j,)) for j in range(n)]
    total = sp.Add(*(sp.exp(z) for z in zs))
    return {(i,): sp.exp(zs[i]) / total for i in range(n)}


def _softmax_pullback(op: Op, g: str, bw: Backward) -> None:
    z = op.args[0]
    if bw.requires(z):
        bw.contribute(z, Op("softmax_backward", bw.slot(z, op.out), (op.out, g), why="softmax"))


register(OpKind("softmax", _same_shape, _softmax_eval,
                lambda op, ctx: f"{op.out} = softmax({op.args[0]})", _softmax_latex,
                _softmax_elements, _softmax_pullback))  # fmt: skip


def _lse_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    z = env[op.args[0]]
    m = z.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _lse_elements(op: Op, el: Elements) -> dict:
    (n,) = el.ctx.shape(op.args[0])
    return {(): sp.log(sp.Add(*(sp.exp(el.tensor(op.args[0], (j,))) for j in range(n))))}


register(OpKind("logsumexp", lambda op, ctx: ctx.shape(op.args[0])[:-1], _lse_eval,
                lambda op, ctx: f"{op.out} = log(sum(exp({op.args[0]})))",
                lambda op, c: rf"\operatorname{{lse}} = \log \sum_k e^{{{name_tex(op.args[0])}_k}}",
                _lse_elements))  # fmt: skip


def _smb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    a, g = env[op.args[0]], env[op.args[1]]
    return a * (g - (a * g).sum(axis=-1, keepdims=True))


def _smb_text(op: Op, ctx: Context) -> str:
    a, g = op.args
    return f"{op.out} = {a} * ({g} - sum_k({a} * {g}))"


def _smb_latex(op: Op, ctx: Context) -> str:
    a, g = (name_tex(n) for n in op.args)
    return rf"{name_tex(op.out)} = {a} \odot \left({g} - ({a}^T {g}) \mathbf{{1}}\right)"


def _smb_elements(op: Op, el: Elements) -> dict:
    a, g = op.args
    (n,) = el.ctx.shape(a)
    dot = sp.Add(*(el.tensor(a, (k,)) * el.tensor(g, (k,)) for k in range(n)))
    return {(i,): el.tensor(a, (i,)) * (el.tensor(g, (i,)) - dot) for i in range(n)}


register(OpKind("softmax_backward", _same_shape, _smb_eval, _smb_text, _smb_latex,
                _smb_elements))  # fmt: skip


# ---- the loss: E = c Σ_n Σ_k expr -------------------------------------------------------------


def _loss_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    dtype = env["x"].dtype
    terms = np.broadcast_to(elementwise(op.expr, env, dtype), env[op.args[1]].shape)
    return np.asarray(float(_scale(op, env, dtype)) * terms.sum(dtype=dtype))


def _loss_elements(op: Op, el: Elements) -> dict:
    shape = el.ctx.shape(op.args[1])
    terms = [_element_subs(op.expr, ix, el) for ix in indices(shape)]
    return {(): (op.scale if op.scale is not None else 1) * sp.Add(*terms)}


register(OpKind("loss", lambda op, ctx: (), _loss_eval,
                lambda op, ctx: f"E = {lx.text(op.scale)} * sum_n sum_k {lx.text(op.expr)}",
                lambda op, ctx: rf"E = {_c_tex(op.scale)}\sum_n \sum_k {lx.latex(op.expr)}",
                _loss_elements))  # fmt: skip


# ---- backward-only products and reductions ----------------------------------------------------


def _matvec_t_shape(op: Op, ctx: Context) -> Shape:
    w, g = op.args
    return (*ctx.shape(g)[:-1], ctx.shape(w)[1])


def _matvec_t_elements(op: Op, el: Elements) -> dict:
    w, g = op.args
    units, fan_in = el.ctx.shape(w)
    return {(j,): sp.Add(*(el.param(w, (i, j)) * el.tensor(g, (i,)) for i in range(units)))
            for j in range(fan_in)}  # fmt: skip


register(OpKind("matvec_t", _matvec_t_shape, lambda op, env, ctx: env[op.args[1]] @ env[op.args[0]],
                lambda op, ctx: f"{op.out} = {op.args[0]}.T @ {op.args[1]}",
                lambda op, ctx: f"{name_tex(op.out)} = ({name_tex(op.args[0])})^T "
                                f"{name_tex(op.args[1])}",
                _matvec_t_elements))  # fmt: skip


def _param_shape(op: Op, ctx: Context) -> Shape:
    return ctx.shape(op.args[-1])


def _gw_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, inp, _ = op.args
    return _scale(op, env, env["x"].dtype) * (env[g].T @ env[inp])


def _gw_text(op: Op, ctx: Context) -> str:
    g, inp, _ = op.args
    return f"{op.out} = {_c_text(op.scale)}sum_n {g}_n @ {inp}_n.T"


def _gw_latex(op: Op, ctx: Context) -> str:
    g, inp, w = op.args
    return (rf"{name_tex('d' + w)} = {_c_tex(op.scale)}\sum_n {name_tex(g)}_n "
            rf"\left({name_tex(inp)}_n\right)^T")  # fmt: skip


def _gw_elements(op: Op, el: Elements) -> dict:
    """One sample's term (the batch sums it; ``scale`` is apart)."""
    g, inp, w = op.args
    units, fan_in = el.ctx.shape(w)
    return {(i, j): el.tensor(g, (i,)) * el.tensor(inp, (j,))
            for i in range(units) for j in range(fan_in)}  # fmt: skip


register(OpKind("grad_weight", _param_shape, _gw_eval, _gw_text, _gw_latex, _gw_elements))


def _gb_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    g, b = op.args
    c = _scale(op, env, env["x"].dtype)
    return c * (env[g].sum() if not ctx.shape(b) else env[g].sum(axis=0))


def _gb_text(op: Op, ctx: Context) -> str:
    g, b = op.args
    inner = f"sum_i {g}_n,i" if not ctx.shape(b) else f"{g}_n"
    return f"{op.out} = {_c_text(op.scale)}sum_n {inner}"


def _gb_latex(op: Op, ctx: Context) -> str:
    g, b = op.args
    inner = rf"\sum_i {name_tex(g)}_{{n,i}}" if not ctx.shape(b) else f"{name_tex(g)}_n"
    return rf"{name_tex('d' + b)} = {_c_tex(op.scale)}\sum_n {inner}"


def _gb_elements(op: Op, el: Elements) -> dict:
    g, b = op.args
    (units,) = el.ctx.shape(g)
    if not el.ctx.shape(b):
        return {(): sp.Add(*(el.tensor(g, (i,)) for i in range(units)))}
    return {(i,): el.tensor(g, (i,)) for i in range(units)}


register(OpKind("grad_bias", _param_shape, _gb_eval, _gb_text, _gb_latex, _gb_elements))


def _gr_eval(op: Op, env: dict, ctx: Context) -> np.ndarray:
    dtype = env["x"].dtype
    p = op.args[-1]
    shape = ctx.shape(op.args[0])
    terms = np.broadcast_to(elementwise(op.expr, env, dtype), (_rows(env), *shape))
    axes = tuple(range(terms.ndim - len(ctx.shape(p))))
    return _scale(op, env, dtype) * terms.sum(axis=axes)


def _gr_text(op: Op, ctx: Context) -> str:
    over = "sum_n sum_i" if not ctx.shape(op.args[-1]) else "sum_n"
    return f"{op.out} = {_c_text(op.scale)}{over} {lx.text(op.expr)}"


def _gr_latex(op: Op, ctx: Context) -> str:
    over = r"\sum_n \sum_i" if not ctx.shape(op.args[-1]) else r"\sum_n"
    body = lx.latex(op.expr, hadamard=True)
    return rf"{name_tex(op.out)} = {_c_tex(op.scale)}{over} {body}"


def _gr_elements(op: Op, el: Elements) -> dict:
    """One sample's term: the elementwise product summed over the axes the parameter lacks."""
    p = op.args[-1]
    pshape, shape = el.ctx.shape(p), el.ctx.shape(op.args[0])
    out: dict = {}
    for ix in indices(shape):
        key = ix[len(ix) - len(pshape) :] if pshape else ()
        out[key] = out.get(key, 0) + _element_subs(op.expr, ix, el)
    return out


register(OpKind("grad_reduce", _param_shape, _gr_eval, _gr_text, _gr_latex, _gr_elements))


# ---- concat and its pullback, slice -----------------------------------------------------------


def _concat_shape(op: Op, ctx: Context) -> Shape:
    shapes = [ctx.shape(a) for a in op.args]
    return (*shapes[0][:-1], sum(s[-1] for s in shapes))


def _concat_latex(op: Op, ctx: Context) -> str:
    rows = r" \\ ".join(name_tex(a) for a in op.args)
    return rf"{name_tex(op.out)} = \begin{{bmatrix}} {rows} \end{{bmatrix}}"


def _concat_elements(op: Op, el: Elements) -> dict:
    out, k = {}, 0
    for a in op.args:
        for (j,) in indices(el.ctx.shape(a)):
            out[(k,)] = el.tensor(a, (j,))
            k += 1
    return out


def _concat_pullback(op: Op, g: str, bw: Backward) -> None:
    start = 0
    for a in op.args:
        width = bw.ctx.shape(a)[-1]
        if bw.requires(a):
            attrs = (("start", start), ("stop", start + width))
            why = f"∂ℓ/∂{a}: rows {start + 1}..{start + width} of ∂ℓ/∂{op.out}"
            bw.contribute(a, Op("slice", bw.slot(a, op.out), (g,), why=why, attrs=attrs))
        start += width


register(OpKind("concat", _concat_shape,
                lambda op, env, ctx: np.concatenate([env[a] for a in op.args], axis=-1),
                lambda op, ctx: f"{op.out} = concat({', '.join(op.args)})", _concat_latex,
                _concat_elements, _concat_pullback))  # fmt: skip


def _slice_shape(op: Op, ctx: Context) -> Shape:
    return (*ctx.shape(op.args[0])[:-1], op.attr("stop") - op.attr("start"))


def _slice_text(op: Op, ctx: Context) -> str:
    return f"{op.out} = {op.args[0]}[{op.attr('start')}:{op.attr('stop')}]"


def _slice_latex(op: Op, ctx: Context) -> str:
    lo, hi = op.attr("start") + 1, op.attr("stop")
    return rf"{name_tex(op.out)} = \left({name_tex(op.args[0])}\right)_{{{lo}..{hi}}}"


def _slice_elements(op: Op, el: Elements) -> dict:
    start = op.attr("start")
    return {(j,): el.tensor(op.args[0], (start + j,)) for j in range(_slice_shape(op, el.ctx)[0])}


register(OpKind("slice", _slice_shape,
                lambda op, env, ctx: env[op.args[0]][..., op.attr("start") : op.attr("stop")],
                _slice_text, _slice_latex, _slice_elements))  # fmt: skip


__all__ = ["OPS", "Backward", "Context", "Elements", "OpKind", "elementwise", "indices", "kind",
           "partial", "register"]  # fmt: skip
