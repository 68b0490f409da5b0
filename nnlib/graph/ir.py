"""A small graph IR for CNNs, what every importer produces and every pass and backend reads.

Tensors are NHWC with a batch of one, held without the batch axis: (H, W, C) activations, (C,)
vectors. A node's output is the tensor named after the node. Weights and other constants live in
`Graph.constants`, by name, as numpy arrays in the layouts nnlib's references use:

    conv2d     [x, w (KH, KW, Cin, Cout)]       stride, padding ("tf_same", "valid" or (t, b, l, r))
    depthwise  [x, w (KH, KW, C)]               stride, padding (channel multiplier 1)
    matmul     [x, w (Cin, Cout)]               x flattened to (Cin,)
    add / sub / mul   [a, b]                    numpy broadcasting (a constant (C,) is per channel)
    rsqrt      [x]                              (constant folding only)
    batch_norm [x, scale, offset, mean, variance]  epsilon
    relu, relu6, clip (low, high), softmax, global_avg_pool
    avg_pool   [x]                              ksize, stride, padding
    pad        [x]                              paddings (t, b, l, r)
    reshape / flatten / squeeze / identity [x]  shape (reshape) — no data movement

Fused layers (after `passes.fuse`) carry a bias and an activation of their own: conv2d, depthwise
and matmul with attrs bias (a constant's name or None) and activation (None, "relu", "relu6").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = (None, "relu", "relu6")


class ModelError(ValueError):
    """A model the compiler cannot run: names the file, the node and its op, and what is wrong."""

    def __init__(self, source: str, node: str | None, op: str | None, what: str):
        self.source, self.node, self.op, self.what = source, node, op, what
        where = f"node {node!r} ({op})" if node else "the model"
        super().__init__(f"{source}: {where}: {what}")


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)
    origin: str = ""                   # the op as the model file spelled it, for errors


@dataclass
class Graph:
    nodes: list[Node]                  # in topological order
    constants: dict[str, np.ndarray]
    inputs: dict[str, tuple[int, ...]]     # placeholders and their (H, W, C) shapes
    outputs: list[str]
    source: str = "<graph>"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def error(self, node: Node | None, what: str) -> ModelError:
        return ModelError(self.source, node.name if node else None, (node.origin or node.op) if node else None, what)

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def constant(self, name: str) -> np.ndarray:
        return self.constants[name]


__all__ = ["ACTIVATIONS", "Graph", "ModelError", "Node"]
