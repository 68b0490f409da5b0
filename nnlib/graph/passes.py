"""Graph passes: each takes a Graph and rewrites it in place to compute the same thing with fewer,
fused nodes (tests/test_nn_graph.py checks every pass against graph.run on small graphs).

`simplify(graph)` runs them in order: fold constants (TF-slim spells batch norm as Add -> Rsqrt -> Mul
-> Mul/Sub on constants), drop identities, fold batch norm into the producing convolution's weights
and bias, fuse bias and ReLU/ReLU6 into it, fold explicit padding into the consumer, and name the
whole-image average pool for what it is.
"""

from __future__ import annotations

import numpy as np

from .ir import Graph, Node
from .run import evaluate

LAYERS = ("conv2d", "depthwise", "matmul")      # ops that take a bias and an activation of their own
SHAPE_ONLY = ("identity",)


def _rewire(graph: Graph, old: str, new: str) -> None:
    for node in graph.nodes:
        node.inputs = [new if i == old else i for i in node.inputs]
    graph.outputs = [new if o == old else o for o in graph.outputs]


def _remove(graph: Graph, node: Node, replacement: str) -> None:
    graph.nodes.remove(node)
    _rewire(graph, node.name, replacement)


def _absorb(graph: Graph, node: Node, user: Node) -> None:
    """`node` takes over the work of its sole consumer `user`, and its name (the output tensor keeps
    the name the model gave it)."""
    graph.nodes.remove(user)
    node.name = user.name


def _sole_consumer(graph: Graph, name: str) -> Node | None:
    users = graph.consumers(name)
    return users[0] if len(users) == 1 and name not in graph.outputs else None


def fold_constants(graph: Graph) -> None:
    """Evaluate every node whose inputs are all constants (on the CPU, once, at compile time)."""
    for node in list(graph.nodes):
        if node.inputs and all(graph.is_constant(i) for i in node.inputs) and node.op not in LAYERS:
            graph.constants[node.name] = evaluate(graph, node, [graph.constant(i) for i in node.inputs])
            graph.nodes.remove(node)


def drop_identities(graph: Graph) -> None:
    for node in list(graph.nodes):
        if node.op in SHAPE_ONLY and node.name not in graph.outputs:
            _remove(graph, node, node.inputs[0])


def normalize_weights(graph: Graph) -> None:
    """Depthwise weights (KH, KW, C, 1) as TF stores them -> (KH, KW, C); every layer's weights constant."""
    for node in graph.nodes:
        if node.op not in LAYERS:
            continue
        if len(node.inputs) != 2 or not graph.is_constant(node.inputs[1]):
            raise graph.error(node, "its weights are not a constant")
        w = graph.constant(node.inputs[1])
        if node.op == "depthwise" and w.ndim == 4:
            graph.constants[node.inputs[1]] = w = w.reshape(w.shape[:3])
        expected = {"conv2d": 4, "depthwise": 3, "matmul": 2}[node.op]
        if w.ndim != expected or (node.op != "matmul" and w.shape[0] != w.shape[1]):
            raise graph.error(node, f"weights of shape {w.shape} are not supported")


def _channel_vector(graph: Graph, name: str, channels: int) -> np.ndarray | None:
    """A constant that broadcasts per output channel, as a (channels,) vector; None otherwise."""
    if not graph.is_constant(name):
        return None
    value = graph.constant(name)
    if value.size == 1:
        return np.full(channels, value.reshape(()), np.float32)
    if value.size == channels and value.shape[-1] == channels:
        return value.reshape(channels).astype(np.float32)
    return None


def _out_channels(graph: Graph, node: Node) -> int:
    return graph.constant(node.inputs[1]).shape[-1]


def _own_name(graph: Graph, node: Node, what: str) -> str:
    name = f"{node.name}/{what}"
    while name in graph.constants:
        name += "_"
    return name


def fold_batch_norm(graph: Graph) -> None:
    """batch_norm nodes become a multiply and an add; a layer followed by a constant per-channel multiply
    takes it into its weights (and bias)."""
    for node in list(graph.nodes):
        if node.op == "batch_norm":
            scale, offset, mean, variance = (graph.constants.get(i) for i in node.inputs[1:])
            if any(v is None for v in (scale, offset, mean, variance)):
                raise graph.error(node, "batch norm parameters must be constants")
            factor = (scale / np.sqrt(variance + np.float32(node.attrs.get("epsilon", 1e-3)))).astype(np.float32)
            f_name, s_name = _own_name(graph, node, "scale"), _own_name(graph, node, "shift")
            graph.constants[f_name] = factor
            graph.constants[s_name] = (offset - mean * factor).astype(np.float32)
            at = graph.nodes.index(node)
            mul = Node(node.name + "/mul", "mul", [node.inputs[0], f_name], {}, node.origin)
            add = Node(node.name, "add", [mul.name, s_name], {}, node.origin)
            graph.nodes[at:at + 1] = [mul, add]
    for node in list(graph.nodes):
        if node.op not in LAYERS:
            continue
        user = _sole_consumer(graph, node.name)
        if user is None or user.op != "mul":
            continue
        other = user.inputs[1] if user.inputs[0] == node.name else user.inputs[0]
        scale = _channel_vector(graph, other, _out_channels(graph, node))
        if scale is None:
            continue
        w_name = _own_name(graph, node, "folded_weights")
        graph.constants[w_name] = (graph.constant(node.inputs[1]) * scale).astype(np.float32)
        node.inputs = [node.inputs[0], w_name]
        if node.attrs.get("bias"):
            b_name = _own_name(graph, node, "folded_bias")
            graph.constants[b_name] = (graph.constant(node.attrs["bias"]) * scale).astype(np.float32)
            node.attrs["bias"] = b_name
        _absorb(graph, node, user)


def fuse_bias_and_activation(graph: Graph) -> None:
    """A constant per-channel add after a layer becomes its bias; ReLU, ReLU6 or Clip(0, 6) after it
    its activation."""
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            if node.op not in LAYERS or node.attrs.get("activation"):
                continue
            user = _sole_consumer(graph, node.name)
            if user is None:
                continue
            if user.op == "add":
                other = user.inputs[1] if user.inputs[0] == node.name else user.inputs[0]
                bias = _channel_vector(graph, other, _out_channels(graph, node))
                if bias is None:
                    continue
                if node.attrs.get("bias"):
                    bias = bias + graph.constant(node.attrs["bias"])
                name = _own_name(graph, node, "fused_bias")
                graph.constants[name] = bias.astype(np.float32)
                node.attrs["bias"] = name
            elif user.op in ("relu", "relu6") or (user.op == "clip" and (user.attrs["low"], user.attrs["high"]) in
                                                  ((0, 6), (0.0, 6.0))):
                node.attrs["activation"] = "relu6" if user.op != "relu" else "relu"
            else:
                continue
            _absorb(graph, node, user)
            changed = True


def fold_padding(graph: Graph) -> None:
    """An explicit Pad before a convolution with VALID padding becomes the convolution's own padding."""
    for node in list(graph.nodes):
        if node.op != "pad":
            continue
        users = graph.consumers(node.name)
        if users and all(u.op in ("conv2d", "depthwise") and u.attrs.get("padding") in ("valid", (0, 0, 0, 0))
                         for u in users) and node.name not in graph.outputs:
            for user in users:
                user.attrs["padding"] = tuple(node.attrs["paddings"])
            _remove(graph, node, node.inputs[0])


def name_global_pools(graph: Graph, shapes: dict[str, tuple[int, ...]]) -> None:
    """An average pool whose window is the whole (VALID-padded) image is a global average pool."""
    for node in graph.nodes:
        if node.op == "avg_pool":
            shape = shapes[node.inputs[0]]
            if node.attrs.get("padding") == "valid" and tuple(node.attrs["ksize"]) == tuple(shape[:2]):
                node.op, node.attrs = "global_avg_pool", {}
            else:
                raise graph.error(node, f"an average pool of {node.attrs['ksize']} over {shape[:2]} (only over the "
                                  "whole image) is not supported")


def shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, by running the graph on zeros (cheap at compile time, exact by construction)."""
    from .run import run

    values = {name: np.zeros(shape, np.float32) for name, shape in graph.inputs.items()}
    out: dict[str, tuple[int, ...]] = {name: shape for name, shape in graph.inputs.items()}
    saved = graph.outputs
    graph.outputs = [n.name for n in graph.nodes]
    try:
        for name, value in run(graph, values).items():
            out[name] = value.shape
    finally:
        graph.outputs = saved
    return out


def drop_unused(graph: Graph) -> None:
    """Nodes and constants no output depends on (a retrained head beside the one asked for)."""
    needed = set(graph.outputs)
    for node in reversed(graph.nodes):
        if node.name in needed:
            needed.update(node.inputs)
            needed.update(v for k, v in node.attrs.items() if k == "bias" and v)
    graph.nodes = [n for n in graph.nodes if n.name in needed]
    graph.constants = {k: v for k, v in graph.constants.items() if k in needed}


def simplify(graph: Graph) -> Graph:
    drop_unused(graph)
    fold_constants(graph)
    drop_identities(graph)
    normalize_weights(graph)
    fold_batch_norm(graph)
    fold_constants(graph)
    fuse_bias_and_activation(graph)
    fold_padding(graph)
    name_global_pools(graph, shapes(graph))
    drop_unused(graph)
    return graph


__all__ = ["drop_identities", "drop_unused", "fold_batch_norm", "fold_constants", "fold_padding",
           "fuse_bias_and_activation", "name_global_pools", "normalize_weights", "shapes", "simplify"]
