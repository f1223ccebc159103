"""Stage 3: the chain rule, one generic reverse walk over the forward program of the graph.

The forward program is every node's ops in graph order, then the loss. The walk visits the ops
in reverse and only those on a path from a trainable parameter (PyTorch's requires_grad); each
op's pullback (its op kind's entry) turns dE/d(out) into parameter gradients and contributions
to dE/d(input). A tensor that several ops read (fan-out, a skip connection) receives several
contributions, and the walk emits their sum as an explicit, printable step.

The seed is the loss: its derivative through the output layer's activation (fused and
stabilized where PyTorch computes the loss from the logits) is ``losses.output_delta``.

The walk runs twice: op by op (the derivation, which the documents print), then with the
closed forms of ``ops.CLOSED_FORMS`` for the segments that have one (normalization: what the
code computes). Each replacement is recorded as a :class:`Rewrite`, printed as a derivation
step and proved equal to the op-by-op form by tests/test_normalization.py. The evaluation-mode
forward program and the buffer updates of a training step come from the op kinds' ``eval``
and ``updates`` rules (modes.py).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import sympy as sp

from ..printing.names import latex_name
from ..spec.load import Spec
from . import activations, losses, modes, optimizers
from .derivation import Derivation, Rewrite
from .graph import Graph, build_graph
from .ir import N, Op, Shape, grad_name, vec, via_name
from .layers import LAYER_KINDS
from .ops import CLOSED_FORMS, Context, kind


def _loss_ops(
    graph: Graph, value: losses.LossValue, c: sp.Expr, delta: losses.OutputDelta
) -> tuple[Op, ...]:
    out = graph.output
    logits = out.z or out.a
    ops: list[Op] = []
    if delta.needs_softmax:
        ops.append(Op("softmax", "p", (logits,), why=f"p = softmax({logits})"))
    if value.kind == "logsumexp":
        ops.append(Op("logsumexp", "lse", (logits,), why=f"lse = log Σ exp({logits})"))
    subs = {activations.X: vec(logits), activations.A: vec(out.a), losses.T: vec("t"),
            losses.L: vec("lse")}  # fmt: skip
    ops.append(Op("loss", "E", (logits, out.a, "t"), value.expr.xreplace(subs), c, why="E"))
    return tuple(ops)


class _Walk:
    """The reverse walk's state: the ops emitted so far and the contributions to gradients not
    yet collected. It is what an op kind's pullback sees (ops.Backward). With ``closed``, an
    op carrying a closed form (attr ``closed_form``) is pulled back by it; ``spans`` records
    which backward ops each forward op's pullback emitted."""

    def __init__(
        self,
        ctx: Context,
        forward: tuple[Op, ...],
        scale: sp.Expr,
        closed: bool,
        inputs: tuple[str, ...] = (),
    ):
        self.ctx, self.scale, self.closed = ctx, scale, closed
        self.spans: dict[str, tuple[int, int]] = {}
        self.ops: list[Op] = []
        self.pending: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
        self.names: set[str] = set()
        self.needs: set[str] = set(inputs)  # the input, when its gradient is asked for
        for op in forward:  # requires_grad, forward: a trainable parameter upstream
            if any(self.requires(a) for a in op.args):
                self.needs.add(op.out)

    def requires(self, name: str) -> bool:
        if self.ctx.is_param(name):
            return self.ctx.params[name].trainable
        return name in self.needs

    def emit(self, op: Op) -> None:
        self.ops.append(op)

    def slot(self, tensor: str, consumer: str) -> str:
        name, k = via_name(tensor, consumer), 2
        while name in self.names:
            name, k = f"{via_name(tensor, consumer)}{k}", k + 1
        self.names.add(name)
        return name

    def contribute(self, tensor: str, op: Op | None = None, alias: str | None = None) -> None:
        if op is not None:
            self.ops.append(op)
            self.pending[tensor].append((op.out, len(self.ops) - 1))
        else:
            assert alias is not None
            self.pending[tensor].append((alias, None))

    def gradient(self, tensor: str) -> str | None:
        """The name of dE/d``tensor`` (per sample): its one contribution, renamed to the
        gradient's own name, or the explicit sum of several; None when none reached it."""
        parts = self.pending.pop(tensor, [])
        if not parts:
            return None
        name = grad_name(tensor)
        if len(parts) == 1:
            part, k = parts[0]
            if k is None:
                return part  # another gradient, unchanged (an add's input)
            self.ops[k] = dataclasses.replace(self.ops[k], out=name)
            return name
        names = tuple(p for p, _ in parts)
        why = f"the {len(parts)} paths' contributions to ${latex_name(name)}$ summed"
        attrs = (("batch", True),) if self.ctx.is_batch(tensor) else ()
        total = sp.Add(*(vec(p) for p in names))
        self.ops.append(Op("map", name, names, total, why=why, attrs=attrs))
        return name

    def run(self, forward: tuple[Op, ...]) -> tuple[Op, ...]:
        for op in reversed(forward):
            if op.out not in self.needs:
                continue
            g = self.gradient(op.out)
            if g is None:
                continue
            pullback = kind(op).pullback
            closed = op.attr("closed_form")
            if self.closed and closed is not None:
                pullback = CLOSED_FORMS[closed].pullback
            if pullback is None:
                raise ValueError(f"op kind '{op.kind}' has no pullback")
            start = len(self.ops)
            pullback(op, g, self)
            self.spans[op.out] = (start, len(self.ops))
        return tuple(self.ops)


def _seed(walk: _Walk, graph: Graph, delta: losses.OutputDelta) -> None:
    """dE/d(logits) per sample, from the loss through the output activation (one sample's ℓ;
    the scale c is applied by the gradient ops)."""
    out = graph.output
    logits = out.z or out.a
    if not walk.requires(logits):
        return
    subs = {activations.X: vec(logits), activations.A: vec(out.a), losses.T: vec("t"),
            losses.P: vec("p")}  # fmt: skip
    name = grad_name(logits)
    if delta.kind == "softmax":
        da = f"d{out.a}"
        why = r"$\partial\ell/\partial\mathbf{a}$"
        walk.emit(Op("map", da, (out.a, "t"), delta.expr.xreplace(subs), why=why))
        walk.contribute(logits, Op("softmax_backward", name, (out.a, da), why="softmax"))
    else:
        args = tuple(dict.fromkeys((logits, out.a, "t")))
        why = r"the output layer's $\boldsymbol{\delta}$"
        walk.contribute(logits, Op("map", name, args, delta.expr.xreplace(subs), why=why))


def shapes_of(ctx_params: dict, start: dict[str, Shape], *programs: tuple[Op, ...]) -> dict:
    """Every tensor's per-sample shape, from each op kind's shape rule, in program order."""
    shapes = dict(start)
    ctx = Context(shapes, ctx_params)
    for program in programs:
        for op in program:
            if op.out not in ctx_params:  # a buffer's update writes a parameter
                shapes[op.out] = kind(op).shape(op, ctx)
    return shapes


def _train_all(graph: Graph) -> Graph:
    """The same graph with every parameter trainable (``verify`` checks frozen ones too),
    buffers (running statistics, never trained) left as they are."""
    nodes = tuple(
        dataclasses.replace(
            n,
            params=tuple(dataclasses.replace(p, trainable=p.role != "buffer") for p in n.params),
        )
        for n in graph.nodes
    )
    return Graph(nodes, tuple(p for n in nodes for p in n.params), graph.input_shape)


def derive(spec: Spec, all_trainable: bool = False, input_gradient: bool = False) -> Derivation:
    """Stage 3: the full Derivation of ``spec`` (cost independent of layer width).

    ``all_trainable`` derives the gradient of every parameter, frozen ones included, and
    ``input_gradient`` the gradient dx of one sample's loss with respect to the input (both for
    checking hand derivations; training never uses them)."""
    graph = build_graph(spec)
    if all_trainable:
        graph = _train_all(graph)
    out = graph.output
    act = out.activation or activations.make("identity")
    deriv = out.derivative
    if out.activation is None:
        deriv = activations.derive_activation(act)
    loss = losses.make(spec.loss)
    delta = losses.output_delta(loss, act, deriv)
    value = losses.loss_value(loss, act)
    c = losses.scale(loss, N, out.shape)
    by_node = {n.index: LAYER_KINDS[n.type].forward(n) for n in graph.nodes}
    forward = tuple(op for ops in by_node.values() for op in ops)
    forward += _loss_ops(graph, value, c, delta)
    params = {p.name: p for p in graph.params}
    shapes = shapes_of(params, {"x": graph.input_shape, "t": out.shape}, forward)
    batch = batch_of(forward)
    walks = {}
    for closed in (False, True):
        inputs = ("x",) if input_gradient else ()
        walk = _Walk(Context(shapes, params, batch), forward, c, closed, inputs)
        _seed(walk, graph, delta)
        walk.run(tuple(op for op in forward if op.kind != "loss"))
        if input_gradient:
            walk.gradient("x")  # the input has no producing op: its contributions summed here
        walks[closed] = walk
    derived, backward = tuple(walks[False].ops), tuple(walks[True].ops)
    shapes = shapes_of(params, shapes, derived, backward)
    batch = batch | batch_of(derived, backward)
    rewrites = _rewrites(by_node, walks[False], walks[True], derived, backward)
    rule = optimizers.make(spec.optimizer)
    keep = {out.a, out.z or out.a}
    evaluation, updates = modes.evaluation(forward, keep), modes.updates(forward)
    shapes = shapes_of(params, shapes, evaluation, updates)
    return Derivation(spec, graph, loss, value, delta, c, forward, backward, rule, shapes,
                      out.a, out.z or out.a, derived, evaluation, updates, batch,
                      rewrites)  # fmt: skip


def batch_of(*programs: tuple[Op, ...]) -> frozenset[str]:
    """The per-batch tensors the programs compute (by each op kind's per_batch rule)."""
    return frozenset(op.out for program in programs for op in program if kind(op).per_batch(op))


def _rewrites(by_node, plain: _Walk, closed: _Walk, derived, backward) -> tuple[Rewrite, ...]:
    """For each layer with a closed form: the ops the op-by-op walk emitted for its segment
    (and the sum of its input's gradient, when that sums the segment's contributions) and the
    ops the closed form emitted instead."""
    out = []
    for index, ops in by_node.items():
        # the segment: the op carrying the closed form (a map's batch norm transposes after it)
        # and the ops before it back to its input (which a transpose may make within the node)
        at = next((k for k in range(len(ops) - 1, -1, -1) if ops[k].attr("closed_form")), -1)
        last = ops[at]
        name = last.attr("closed_form")
        if name is None or last.out not in closed.spans:
            continue
        made = [k for k in range(at) if ops[k].out == last.attr("input")]
        ops = ops[made[0] + 1 if made else 0 : at + 1]
        lo = min(plain.spans[op.out][0] for op in ops if op.out in plain.spans)
        hi = max(plain.spans[op.out][1] for op in ops if op.out in plain.spans)
        before = list(derived[lo:hi])
        total = grad_name(last.attr("input"))
        parts = {o.out for o in before}
        tail = [o for o in derived[hi:] if o.out == total and set(o.args) & parts]
        start, end = closed.spans[last.out]
        out.append(Rewrite(index, name, tuple(before + tail), tuple(backward[start:end])))
    return tuple(out)


__all__ = ["batch_of", "derive", "shapes_of"]
