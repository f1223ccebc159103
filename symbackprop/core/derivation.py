"""The stage-3 artifact: everything derived from one spec, read by every printer and target.

A :class:`Derivation` holds the graph, the forward program (ending with the loss), the backward
program the chain rule derived from it, the optimizer's update rule, and the shape of every
tensor the programs name. It imports none of its readers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from ..spec.load import Spec
from . import losses, optimizers
from .graph import Graph
from .ir import Op, Param, Shape
from .ops import Context


@dataclass(frozen=True)
class Rewrite:
    """A closed form in place of the chain rule's op-by-op derivation through one layer's
    segment: ``derived`` (what the walk emitted) is replaced by ``closed`` (equal, proved by
    tests/test_normalization.py)."""

    layer: int
    name: str  # the key in ops.CLOSED_FORMS
    derived: tuple[Op, ...]
    closed: tuple[Op, ...]


@dataclass(frozen=True)
class Derivation:
    """Forward, loss, backward, gradients and update rule of one spec.

    Attributes:
        forward: the training-mode forward program, ending with the loss.
        backward: the backward program the code runs (closed forms in place).
        output: the network's output tensor (a{L}); ``logits`` is what the loss reads as z
            (the output layer's pre-activation, or the output itself when it has none).
        shapes: per-sample shape of every tensor the programs name (x, t, z1, a1, delta1, ...).
        scale: c in E = c Σ_n Σ_k ℓ.
        derived: the backward program op by op, as the chain rule derives it (equal to
            ``backward`` but for the ``rewrites``).
        evaluation: the evaluation-mode forward program (running statistics, no dropout),
            ending with the loss; ``forward`` itself when no op differs.
        updates: what a training step does to the buffers after its forward pass.
        batch: the per-batch tensors (no sample axis: batch statistics and their gradients).
        rewrites: each closed form put in place of the op-by-op derivation.
    """

    spec: Spec
    graph: Graph
    loss: losses.Loss
    loss_value: losses.LossValue
    output_delta: losses.OutputDelta
    scale: sp.Expr
    forward: tuple[Op, ...]
    backward: tuple[Op, ...]
    optimizer: optimizers.UpdateRule
    shapes: Mapping[str, Shape]
    output: str
    logits: str
    derived: tuple[Op, ...] = ()
    evaluation: tuple[Op, ...] = ()
    updates: tuple[Op, ...] = ()
    batch: frozenset[str] = frozenset()
    rewrites: tuple[Rewrite, ...] = ()

    @property
    def params(self) -> tuple[Param, ...]:
        return self.graph.params

    @property
    def nodes(self):
        return self.graph.nodes

    @property
    def trainable(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.trainable)

    @property
    def gradients(self) -> dict[str, Op]:
        """The gradient op of every trainable parameter, by parameter name."""
        return {op.args[-1]: op for op in self.backward if op.kind.startswith("grad_")}

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    @property
    def context(self) -> Context:
        return Context(self.shapes, {p.name: p for p in self.params}, self.batch)

    @property
    def buffers(self) -> tuple[Param, ...]:
        """Running statistics: parameters a training step updates, never trained."""
        return tuple(p for p in self.params if p.role == "buffer")

    @property
    def couples_samples(self) -> bool:
        """True when the training-mode loss of a sample depends on the other samples of its
        batch (batch statistics): one sample's formulas do not describe it."""
        return bool(self.batch)

    @property
    def modes_differ(self) -> bool:
        """True when evaluation mode computes something else than training mode."""
        return self.evaluation != self.forward

    @property
    def num_params(self) -> int:
        return sum(math.prod(p.shape) for p in self.params)

    def mode(self, mode: str = "auto") -> str:
        """'scalar' or 'tensor'; 'auto' is scalar for nets of at most 50 parameters whose
        samples do not depend on each other (no batch statistics)."""
        if mode == "auto":
            return "scalar" if self.num_params <= 50 and not self.couples_samples else "tensor"
        return mode


__all__ = ["Derivation", "Rewrite"]
