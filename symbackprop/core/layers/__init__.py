"""The layer kinds: what each ``type`` of a spec's layer means, in one registry entry per kind.

A :class:`LayerKind` reads its spec fields (with the shapes of its inputs, so every error names
its field), lists its parameters with PyTorch's shapes, returns its forward ops in the IR, and
carries the textbook equations the documents print for it. Its backward pass is not written
here: the chain rule derives it from the pullbacks of the forward ops (``core.ops``). Families
of kinds live in modules of their own (dense, merge, reshape, conv, normalization,
dropout); importing this package registers them.
"""

from . import conv, dense, dropout, gated, merge, normalization, recurrent, reshape  # noqa: F401
from .base import (
    LAYER_KINDS,
    LAYOUTS,
    MAX_AXES,
    MAX_DIM,
    InputShapes,
    LayerKind,
    LayerSpec,
    Node,
    activation_ops,
    default_layout,
    feature_axis,
    output_layout,
    register,
)

__all__ = [
    "LAYER_KINDS", "LAYOUTS", "MAX_AXES", "MAX_DIM", "InputShapes", "LayerKind", "LayerSpec",
    "Node", "activation_ops", "default_layout", "feature_axis", "output_layout", "register",
]  # fmt: skip
