"""The document's notation: how every name of CONTRACT §2 is typeset in LaTeX.

One notation for every page (README, "The document's notation"): bold for the network's vectors
and matrices (**x**, **z**⁽¹⁾, **W**⁽²⁾, **δ**⁽¹⁾), italic for scalars: a tensor element
(z⁽¹⁾₂, w⁽²⁾₁₁), a per-sample scalar or shared bias (b⁽¹⁾), and the argument of a function of
one element (f(x), ℓ(a, t), the optimizer's p and g). Gradients of parameters are ∂E/∂P (the
batch's loss), gradients of tensors ∂ℓ/∂T (one sample's loss).

Which names are per-sample scalars and which are parameters is known only to the document being
printed: :func:`notation` sets it for everything printed inside (the op kinds' formulas call
:func:`latex_name` without knowing the net).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

GREEK = {
    "alpha": r"\alpha", "beta": r"\beta", "gamma": r"\gamma", "delta": r"\delta",
    "epsilon": r"\epsilon", "eta": r"\eta", "lambda": r"\lambda", "mu": r"\mu", "tau": r"\tau",
    "sigma": r"\sigma", "theta": r"\theta", "rho": r"\rho", "kappa": r"\kappa", "nu": r"\nu",
    "omega": r"\omega", "phi": r"\phi", "psi": r"\psi", "xi": r"\xi", "zeta": r"\zeta",
    "ell": r"\ell",
}  # fmt: skip
HYPER = {"beta1": r"\beta_1", "beta2": r"\beta_2"}  # optimizer hyperparameters with an index
INPUTS = ("x", "t", "p")  # per-sample vectors without a layer number (input, target, softmax)
OPERATORS = {"lse": r"\operatorname{lse}"}  # helper quantities named by an operator

_ELEMENT = re.compile(r"([A-Za-z]+?)(\d+)_(\d+(?:_\d+)*)\Z")  # z1_2, w2_11, delta2_1, w3_2_1_1
_TENSOR = re.compile(r"([A-Za-z]+?)(\d+)\Z")  # z1, a1, delta1, W1, b1, g3
_INPUT_ELEMENT = re.compile(r"([xtp])(\d+(?:_\d+)*)\Z")  # x1, t2, p1, x1_2
_AT_STEP = re.compile(r"(.+)\[(\d+)\]\Z")  # a sequence's element at a step: h1_1[2], x1[2]
_VIA = re.compile(r"(d\w+?)__via_([A-Za-z]+\d+)(\d*)((?:_\d+)*)\Z")  # da1__via_z2, ..._1


@dataclass(frozen=True)
class Notation:
    """What the names of one document are.

    Attributes:
        scalars: tensors and parameters with one number per sample (a shared bias, lse).
        params: parameter names (their gradients are ∂E/∂P; a tensor's are ∂ℓ/∂T).
        tensors: every tensor name, so ``d`` + name is recognized as its gradient.
    """

    scalars: frozenset[str] = frozenset()
    params: frozenset[str] = frozenset()
    tensors: frozenset[str] = frozenset()


_CURRENT: ContextVar[Notation | None] = ContextVar("notation", default=None)
_NONE = Notation()


@contextmanager
def notation(
    scalars: Iterable[str] = (), params: Iterable[str] = (), tensors: Iterable[str] = ()
) -> Iterator[Notation]:
    """Print everything inside with these names' kinds (see :class:`Notation`)."""
    token = _CURRENT.set(Notation(frozenset(scalars), frozenset(params), frozenset(tensors)))
    try:
        yield current()
    finally:
        _CURRENT.reset(token)


def current() -> Notation:
    """The notation set by the innermost :func:`notation` (none: names are guessed by form)."""
    return _CURRENT.get() or _NONE


def word(name: str) -> str:
    """A base word: Greek letters by name, one letter as itself, longer words upright."""
    if name in GREEK:
        return GREEK[name]
    if len(name) == 1:
        return name
    return rf"\mathrm{{{name}}}"


def bold(base: str) -> str:
    """Bold for a vector or matrix: \\mathbf for Latin letters, \\boldsymbol for Greek."""
    return rf"\boldsymbol{{{GREEK[base]}}}" if base in GREEK else rf"\mathbf{{{base}}}"


def _layer(core: str, layer: str) -> str:
    return f"{core}^{{({layer})}}"


def _is_gradient(name: str, note: Notation) -> str | None:
    """The tensor or parameter ``name`` is the gradient of (``dW1`` -> ``W1``), if any."""
    if not name.startswith("d") or len(name) < 2 or name.startswith("delta"):
        return None
    rest = name[1:]
    known = note.tensors | note.params
    if known:
        head = rest.split("_")[0] if _ELEMENT.match(rest) else rest
        return rest if rest in known or head in known else None
    return rest if _TENSOR.match(rest) or _ELEMENT.match(rest) or rest in INPUTS else None


def _partial(numerator: str, core: str) -> str:
    return rf"\frac{{\partial {numerator}}}{{\partial {core}}}"


def latex_name(name: str, element: bool = False) -> str:
    """LaTeX for a name of CONTRACT §2 (``dE_w2_11`` is ∂E/∂w2_11, ``da1`` is ∂ℓ/∂a1).

    Args:
        name: a tensor, parameter, element, gradient or hyperparameter name.
        element: the name stands for one element (the argument of an activation, a loss or an
            optimizer rule): ``x``, ``t`` and ``p`` are italic scalars, not the vectors.
    """
    note = current()
    if m := _AT_STEP.match(name):  # h^{(1)}_{1}[2], read back by verify as h1_1[2]
        tex, step = latex_name(m.group(1), element), f"[{m.group(2)}]"
        if tex.startswith(r"\frac") and tex.endswith("}"):  # ∂ℓ/∂h^{(1)}_{1}[2]: inside
            return tex[:-1] + step + "}"
        return tex + step
    if name.startswith("dE_"):
        return _partial("E", latex_name(name[3:], True))
    if name in HYPER:
        return HYPER[name]
    if name in OPERATORS:
        return OPERATORS[name]
    if m := _VIA.match(name):
        grad, consumer, _, index = m.groups()
        return rf"\left.{latex_name(grad + index, element)}\right|_{{{latex_name(consumer)}}}"
    if (of := _is_gradient(name, note)) is not None:
        head = of.split("_")[0]
        params = note.params or {head} & {f"{b}{head[1:]}" for b in "Wb"}  # no context: W, b
        top = "E" if of in params or head in params else r"\ell"
        return _partial(top, latex_name(of, element))
    if m := _INPUT_ELEMENT.match(name):
        return f"{m.group(1)}_{{{m.group(2).replace('_', ',')}}}"
    if name in INPUTS:
        return name if element or name in note.scalars else rf"\mathbf{{{name}}}"
    if m := _ELEMENT.match(name):
        base, layer, index = m.groups()
        return _layer(word(base), layer) + f"_{{{index.replace('_', ',')}}}"
    if m := _TENSOR.match(name):
        base, layer = m.groups()
        scalar = element or name in note.scalars
        return _layer(word(base) if scalar else bold(base), layer)
    if name in GREEK:
        return GREEK[name]
    if re.fullmatch(r"[A-Za-z]", name):
        return name
    if re.fullmatch(r"[A-Za-z]+", name):
        return rf"\mathit{{{name}}}"
    head, _, rest = name.partition("_")
    if head and rest and re.fullmatch(r"[A-Za-z0-9_]+", rest):
        sub = ",".join(p if p.isdigit() else latex_name(p, True) for p in rest.split("_") if p)
        return f"{latex_name(head, element)}_{{{sub}}}"
    return r"\mathit{" + re.sub(r"[^A-Za-z0-9]", "", name) + "}"


def element_tex(name: str, index: str) -> str:
    """An element of tensor ``name`` with the subscript ``index`` (e.g. ``n,i``), italic:
    ``element_tex('z2', 'i')`` is z^{(2)}_{i}."""
    if m := _TENSOR.match(name):
        base, layer = m.groups()
        return _layer(word(base), layer) + f"_{{{index}}}"
    return f"{latex_name(name, True)}_{{{index}}}"


__all__ = ["GREEK", "Notation", "bold", "current", "element_tex", "latex_name", "notation", "word"]
