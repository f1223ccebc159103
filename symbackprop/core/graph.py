"""Stage 2: the network as a DAG of layer nodes, built from a validated Spec.

Each node names its inputs (``x``, ``a1``, ...), not a position in a chain; its parameters and
shapes come from its layer kind. Every earlier (chain) spec builds the same nodes with the same
names as before: ``z1``, ``a1``, ``W1``, ``b1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.load import Spec
from . import activations
from .ir import Param, Shape
from .layers import LAYER_KINDS, InputShapes, Node, output_layout


@dataclass(frozen=True)
class Graph:
    """The nodes in spec order (a topological order: inputs come from earlier nodes or x)."""

    nodes: tuple[Node, ...]
    params: tuple[Param, ...]
    input_shape: Shape

    @property
    def output(self) -> Node:
        """The network's output is the last layer's."""
        return self.nodes[-1]

    def node(self, tensor: str) -> Node | None:
        """The node whose output (or pre-activation) is ``tensor``."""
        return next((n for n in self.nodes if tensor in (n.a, n.z)), None)

    def consumers(self, tensor: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if tensor in n.inputs)


def build_graph(spec: Spec) -> Graph:
    """The DAG of ``spec``: one node per layer, its parameters, each activation's derivative."""
    shapes: dict[str, Shape] = {"x": spec.input_shape}
    layouts: dict[str, str] = {"x": spec.input_layout}
    nodes: list[Node] = []
    params: list[Param] = []
    for i, ls in enumerate(spec.layers, start=1):
        kind = LAYER_KINDS[ls.type]
        in_shapes = InputShapes((shapes[n] for n in ls.inputs), (layouts[n] for n in ls.inputs))
        ps = kind.params(ls, i, in_shapes)
        act = ls.activation
        deriv = None if act is None or act.is_softmax else activations.derive_activation(act)
        nodes.append(Node(i, ls.type, ls.inputs, in_shapes, ls.shape, ps, act, deriv, ls))
        params.extend(ps)
        shapes[f"a{i}"] = ls.shape
        layouts[f"a{i}"] = ls.layout or output_layout(ls, in_shapes)
    return Graph(tuple(nodes), tuple(params), spec.input_shape)


__all__ = ["Graph", "build_graph"]
