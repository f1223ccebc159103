"""Torch-only rewrites of a lowered program that print fewer torch calls for the same numbers.

On a small net every torch call a step makes from Python costs about ten thousand instructions
whatever its size (argument parsing, dispatch, a new tensor), a Python number argument of a
Tensor parameter about as much again (it becomes a tensor): a training step of 64-32-10 / b32 is
mostly such fixed costs. The rewrites here replace groups of calls by one call PyTorch has for
the group, keeping the numbers (to rounding) of the formulas they replace:

- relu's mask H(z) read from the relu's output a (``relu_masks``: see there);
- the softmax cross-entropy of a logits tensor z, E = c/N Σ_n Σ_k t (lse(z) - z), as
  ``F.cross_entropy(z, t)`` with probability targets (its log_softmax, product, sums and mean in
  one call), where nothing else reads lse;
- the first backward op (the seed) r/N times the incoming dE as ``(r).mul_(grad)`` and a
  multiplication in place by 1/N, a cached scalar tensor in eager mode (``_inverse``): three
  kernels and no new tensor, where ``(r)/N * grad`` makes two new tensors and a number argument;
- ``in_place``: a relu, or a product with the relu mask, written into its intermediate argument
  where nothing reads that after (``torch.relu_(z)``, ``da.mul_(mask)``): one new tensor less.
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from ...core.ir import N, vec
from ..program import Lowered, Program


def _relu_outputs(program: Program) -> dict[sp.Symbol, sp.Symbol]:
    """z -> a for every forward map a = Max(0, z) of a tensor z."""
    out = {}
    for o in program.forward:
        e = o.expr
        if o.op.kind == "map" and isinstance(e, sp.Max) and len(e.args) == 2 and 0 in e.args:
            z = next(arg for arg in e.args if arg != 0)
            if isinstance(z, sp.Symbol):
                out[z] = vec(o.op.out)
    return out


def relu_masks(program: Program) -> tuple[Lowered, ...]:
    """The backward ops, with Heaviside(z, 0) read as Heaviside(a, 0) where a = Max(0, z).

    The same mask (NaN and -0.0 included: neither is > 0 in either form), read from a tensor
    the backward keeps anyway for the next weight gradient, as autograd's threshold_backward
    does; H(a) is ReluStep(a), printed with cheaper kernels than the comparison (the same
    numbers). Under torch.compile the partitioner would otherwise keep the bool z > 0 from the
    forward, and Inductor stores bools slowly on the CPU (on this machine, 20 times slower)."""
    from ...printing.torch import ReluStep  # imports torch's printer: only when rendering

    rules = {sp.Heaviside(z, 0): ReluStep(a) for z, a in _relu_outputs(program).items()}
    out = []
    for o in program.backward:
        exprs = [e for e in (o.expr, *(e for _, e in o.temps)) if e is not None]
        used = [h for h in rules if any(e.has(h) for e in exprs)]
        if used:
            note = ", ".join(f"H({h.args[0]}) = H({rules[h].args[0]})" for h in used)
            o = dataclasses.replace(o, expr=o.expr.xreplace(rules),
                                    temps=tuple((t, e.xreplace(rules)) for t, e in o.temps),
                                    formula=f"{o.formula}    [{note}]")  # fmt: skip
        out.append(o)
    return tuple(out)


def softmax_cross_entropy(program: Program, ops: tuple[Lowered, ...]) -> Lowered | None:
    """The loss op as one SoftmaxCrossEntropy, when it is c/N Σ t (lse - z) (or c Σ ...) of a
    logits tensor z of per-sample rows (one axis: the classes) and lse = logsumexp(z) is read by
    nothing but the loss (``ops``: the forward ops and the backward's, which may read lse);
    else None. The new op's scale is the number c (1: none)."""
    from ...printing.torch import SoftmaxCrossEntropy  # imports torch: only when rendering

    loss = program.loss
    if loss is None or loss.expr is None or loss.temps or loss.op.scale is None:
        return None
    lse_ops = [o for o in program.forward if o.op.kind == "logsumexp"]
    for lse_op in lse_ops:
        z, lse = lse_op.op.args[0], lse_op.op.out
        readers = [o for o in ops if o is not loss and lse in _reads(o)]
        if readers or len(program.shapes.get(z, ())) != 1 or z in program.batch:
            continue
        if program.shapes.get("t") != program.shapes[z]:
            continue
        if sp.expand(loss.expr - vec("t") * (vec(lse) - vec(z))) != 0:
            continue
        scale = loss.op.scale  # a SymPy expression already (the lowered op's c)
        mean = sp.simplify(scale * N)
        if mean.is_number:
            c, reduction = mean, "mean"
        elif scale.is_number:
            c, reduction = scale, "sum"
        else:
            continue
        flag = sp.Integer(reduction == "mean")
        expr = SoftmaxCrossEntropy(vec(z), vec("t"), flag)
        op = dataclasses.replace(loss.op, scale=c)
        note = f"    [lse - {z} = -log_softmax({z}): torch's cross_entropy, {reduction}]"
        return dataclasses.replace(loss, op=op, expr=expr, formula=loss.formula + note)
    return None


def seed_code(o: Lowered, printer) -> str | None:
    """The code of the seed op o (the backward's first: delta = r/N) times the incoming dE
    (``grad``), or None where it has another form (then the op is printed as any other, times
    grad after)."""
    if o.op.kind != "map" or o.expr is None or o.temps:
        return None
    rest, inverse = o.expr.as_independent(N, as_Add=False)
    if inverse != 1 / N or not rest.free_symbols or rest.is_Relational:
        return None
    if isinstance(rest, sp.Heaviside | sp.Piecewise):
        return None  # possibly a bool or a number-only branch: not a float tensor to scale
    code = printer.doprint(rest)
    head = f"torch.mul({code}, grad)" if isinstance(rest, sp.Symbol) else f"({code}).mul_(grad)"
    return f"{head}.mul_(_inverse(grad, N))"


_FRESH = {"affine", "map", "matvec_t", "softmax_backward"}  # kinds whose result is a new tensor


def in_place(program: Program, ops: tuple[Lowered, ...], keep: set[str]) -> tuple[Lowered, ...]:
    """The ops of one function (the forward or the backward of a custom op), with
    Max(0, z) as ReluInPlace(z) and s * r (two factors) as MulInPlace(s, r) where z or s is an
    intermediate of this function (made by an earlier op of a kind in _FRESH: a tensor of its
    own, not a view or an alias) of the op's own shape that no later op reads and ``keep`` (what
    the function returns) does not hold. The same numbers: the same one product or clamp."""
    from ...printing.torch import MulInPlace, ReluInPlace  # imports torch: only when rendering

    aliased = set()
    for o in ops:
        if o.op.kind == "map" and isinstance(o.expr, sp.Symbol):
            aliased |= {o.op.out, o.expr.name}
    local = {o.op.out for o in ops if o.op.kind in _FRESH} - aliased
    out, read_after, live_after = [], set(keep), []
    for o in reversed(ops):
        live_after.append(set(read_after))
        read_after |= _reads(o)
    live_after.reverse()  # live_after[i]: the names read after op i, and keep
    for o, live in zip(ops, live_after, strict=True):
        e = o.expr
        if o.op.kind == "map" and e is not None and not o.temps and o.op.out not in aliased:
            same = [s for s in e.free_symbols if s.name in local and s.name not in live
                    and program.shapes.get(s.name) == program.shapes.get(o.op.out)
                    and s.name not in program.batch and o.op.out not in program.batch]  # fmt: skip
            if isinstance(e, sp.Max) and len(e.args) == 2 and 0 in e.args:
                z = e.args[1] if e.args[0] == 0 else e.args[0]
                if z in same:
                    o = dataclasses.replace(o, expr=ReluInPlace(z))
            elif isinstance(e, sp.Mul) and len(e.args) == 2:
                s = next((a for a in e.args if a in same), None)
                if s is not None:
                    rest = e.args[1] if e.args[0] == s else e.args[0]
                    o = dataclasses.replace(o, expr=MulInPlace(s, rest))
        out.append(o)
    return tuple(out)


def _reads(o: Lowered) -> set[str]:
    """The names an op reads: its args, and its expressions' free symbols."""
    names = set(o.op.args)
    for e in (o.expr, *(e for _, e in o.temps)):
        if e is not None:
            names |= {s.name for s in e.free_symbols}
    return names


__all__ = ["in_place", "relu_masks", "seed_code", "softmax_cross_entropy"]
