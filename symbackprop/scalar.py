"""Scalar mode: the same Derivation instantiated element by element, with CONTRACT §2 names.

Every parameter element's gradient is the product of named chain-rule factors (∂E/∂a2_1 ·
∂a2_1/∂z2_1 · ∂z2_1/∂w2_11), built by substituting element symbols into the Derivation's
elementwise expressions; the fully expanded loss is never differentiated.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import activations, losses
from .chain_rule import Derivation, Layer, N, Param


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def _idx(*ix: int) -> str:
    """1-based index suffix: '11' for (1, 1); '10_3' once any index has two digits."""
    return ("_" if any(i >= 10 for i in ix) else "").join(str(i) for i in ix)


def element(vector: str, i: int) -> str:
    """Scalar name of element i (1-based) of a vector: x1, t2, z1_2, a1_2, delta2_1, da1_2, p1."""
    if vector in ("x", "t", "p"):
        return f"{vector}{i}"
    return f"{vector}_{i}"


def param_element(p: Param, index: tuple[int, ...]) -> str:
    """w2_11 for W2[0, 0]; b1_2 for a per-unit bias; b1 for a shared one."""
    if p.role == "weight":
        return f"w{p.layer}_{_idx(*(i + 1 for i in index))}"
    return p.name if p.kind == "shared" else f"b{p.layer}_{index[0] + 1}"


@dataclass(frozen=True)
class Factor:
    """∂num/∂den = expr, one factor of a chain-rule product (names are scalar names)."""

    num: str
    den: str
    expr: sp.Expr


@dataclass(frozen=True)
class Gradient:
    """dE/d(param element) = scale · Π factors (per sample; summed over the batch)."""

    param: str
    element: str
    index: tuple[int, ...]
    factors: tuple[Factor, ...]
    scale: sp.Expr

    @property
    def expr(self) -> sp.Expr:
        return self.scale * sp.Mul(*(f.expr for f in self.factors))


@dataclass(frozen=True)
class ScalarDerivation:
    """Definitions (in order: z, a, p, lse, ∂E/∂a, δ) and each trainable element's gradient."""

    definitions: tuple[tuple[str, sp.Expr], ...]
    delta_factors: dict[str, tuple[Factor, ...]]
    gradients: tuple[Gradient, ...]

    def definition(self, name: str) -> sp.Expr:
        return dict(self.definitions)[name]


def _layer_input(layer: Layer, j: int) -> str:
    return f"x{j}" if layer.inp == "x" else element(layer.inp, j)


def _forward(d: Derivation, defs: list) -> None:
    for layer in d.layers:
        w = layer.weight
        for i in range(1, layer.units + 1):
            total = sum(
                sym(param_element(w, (i - 1, j - 1))) * sym(_layer_input(layer, j))
                for j in range(1, layer.fan_in + 1)
            )
            if layer.bias is not None:
                total += sym(param_element(layer.bias, (i - 1,)))
            defs.append((element(layer.z, i), total))
        zs = [sym(element(layer.z, i)) for i in range(1, layer.units + 1)]
        for i, z in enumerate(zs, start=1):
            if layer.activation.is_softmax:
                a = sp.exp(z) / sp.Add(*(sp.exp(zk) for zk in zs))
            else:
                a = layer.activation.expr.xreplace({activations.X: z})
            defs.append((element(layer.a, i), a))


def _elementwise(expr: sp.Expr, layer: Layer, i: int) -> sp.Expr:
    return expr.xreplace(
        {
            activations.X: sym(element(layer.z, i)),
            activations.A: sym(element(layer.a, i)),
            losses.T: sym(f"t{i}"),
            losses.P: sym(f"p{i}"),
        }
    )


def _output(d: Derivation, defs: list, factors: dict) -> None:
    last = d.layers[-1]
    od = d.output_delta
    units = range(1, last.units + 1)
    if od.needs_softmax:
        zs = [sym(element(last.z, i)) for i in units]
        for i in units:
            defs.append((f"p{i}", sp.exp(zs[i - 1]) / sp.Add(*(sp.exp(z) for z in zs))))
    for i in units:
        a, z = element(last.a, i), element(last.z, i)
        if od.kind == "softmax":
            g = [_elementwise(od.expr, last, k) for k in units]
            s = sp.Add(*(sym(element(last.a, k)) * g[k - 1] for k in units))
            fs = (Factor("E", z, sym(a) * (g[i - 1] - s)),)
        elif d.loss.on_logits:
            fs = (Factor("E", z, _elementwise(od.expr, last, i)),)
        else:
            dl = sp.diff(d.loss.expr, losses.Y).xreplace({losses.Y: activations.A})
            g = _elementwise(activations.stabilize(dl, (activations.A, losses.T)), last, i)
            fs = (Factor("E", a, g), Factor(a, z, _elementwise(last.derivative.expr, last, i)))
        factors[element(last.delta, i)] = fs
        defs.append((element(last.delta, i), sp.Mul(*(f.expr for f in fs))))


def _hidden(d: Derivation, layer: Layer, defs: list, factors: dict) -> None:
    above = d.layers[layer.index]
    for i in range(1, layer.units + 1):
        a, z = element(layer.a, i), element(layer.z, i)
        da = sp.Add(
            *(
                sym(param_element(above.weight, (k - 1, i - 1))) * sym(element(above.delta, k))
                for k in range(1, above.units + 1)
            )
        )
        defs.append((element(f"d{layer.a}", i), da))
        fs = (Factor("E", a, da), Factor(a, z, _elementwise(layer.derivative.expr, layer, i)))
        factors[element(layer.delta, i)] = fs
        defs.append((element(layer.delta, i), sp.Mul(*(f.expr for f in fs))))


def instantiate(d: Derivation) -> ScalarDerivation:
    """Expand ``d`` element by element (for small nets: printing and verification)."""
    defs: list[tuple[str, sp.Expr]] = []
    factors: dict[str, tuple[Factor, ...]] = {}
    _forward(d, defs)
    _output(d, defs, factors)
    needed = {op.out for op in d.backward}
    for layer in reversed(d.layers[:-1]):
        if layer.delta in needed:
            _hidden(d, layer, defs, factors)
    c = d.scale
    grads: list[Gradient] = []
    for layer in d.layers:
        if layer.weight.trainable:
            for i in range(layer.units):
                for j in range(layer.fan_in):
                    el = param_element(layer.weight, (i, j))
                    inp = Factor(element(layer.z, i + 1), el, sym(_layer_input(layer, j + 1)))
                    fs = factors[element(layer.delta, i + 1)] + (inp,)
                    grads.append(Gradient(layer.weight.name, el, (i, j), fs, c))
        b = layer.bias
        if b is not None and b.trainable:
            if b.kind == "shared":
                total = sp.Add(*(sym(element(layer.delta, i + 1)) for i in range(layer.units)))
                grads.append(Gradient(b.name, b.name, (), (Factor("E", b.name, total),), c))
            else:
                for i in range(layer.units):
                    el = param_element(b, (i,))
                    fs = factors[element(layer.delta, i + 1)] + (
                        Factor(element(layer.z, i + 1), el, sp.Integer(1)),
                    )
                    grads.append(Gradient(b.name, el, (i,), fs, c))
    return ScalarDerivation(tuple(defs), factors, tuple(grads))


def values_at(d: Derivation, ev, sample: int = 0) -> dict[sp.Symbol, float]:
    """The numbers of every scalar name at one sample of an Evaluation (for the worked example)."""
    out: dict[sp.Symbol, float] = {N: float(ev.batch)}
    grads = {op.out for op in d.gradients.values()}
    for name, arr in ev.values.items():
        if name in ("E", N.name) or name in grads or arr.ndim != 2:
            continue
        for i in range(arr.shape[1]):
            out[sym(element(name, i + 1))] = float(arr[sample, i])
    for p in d.params:
        arr = ev.params[p.name]
        for index in [()] if p.kind == "shared" else list(_indices(p.shape)):
            out[sym(param_element(p, index))] = float(arr[index] if index else arr)
    return out


def _indices(shape: tuple[int, ...]):
    if len(shape) == 1:
        for i in range(shape[0]):
            yield (i,)
    else:
        for i in range(shape[0]):
            for j in range(shape[1]):
                yield (i, j)
