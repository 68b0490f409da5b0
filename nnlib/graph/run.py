"""The graph IR evaluated on the CPU with nnlib's float32 references: what the passes are checked
against (a pass must not change what a graph computes), and the numbers a compiled network's QPU
results are compared with."""

from __future__ import annotations

import numpy as np

from .. import reference
from .ir import Graph, Node


def _padding(node: Node):
    padding = node.attrs.get("padding", "tf_same")
    return (0, 0, 0, 0) if padding == "valid" else padding


def _finish(graph: Graph, node: Node, y: np.ndarray) -> np.ndarray:
    """A fused layer's bias and activation."""
    name = node.attrs.get("bias")
    if name is not None:
        y = y + graph.constant(name)
    kind = node.attrs.get("activation")
    if kind == "relu":
        y = np.maximum(y, np.float32(0))
    elif kind == "relu6":
        y = reference.relu6(y)
    return y.astype(np.float32)


def evaluate(graph: Graph, node: Node, args: list[np.ndarray]) -> np.ndarray:
    op, attrs = node.op, node.attrs
    x = args[0] if args else None
    stride = attrs.get("stride", 1)
    if op in ("conv2d", "depthwise"):
        w = args[1] if op == "conv2d" else args[1].reshape(args[1].shape[:3])    # TF's (KH, KW, C, 1) as well
        windows = reference.windows(x, stride, _padding(node), w.shape[0])
        y = np.einsum("hwijc,ijcd->hwd" if op == "conv2d" else "hwijc,ijc->hwc", windows, w, dtype=np.float32)
        return _finish(graph, node, y)
    if op == "matmul":
        return _finish(graph, node, x.reshape(-1) @ args[1])
    if op in ("add", "sub", "mul"):
        return {"add": np.add, "sub": np.subtract, "mul": np.multiply}[op](args[0], args[1]).astype(np.float32)
    if op == "rsqrt":
        return (np.float32(1) / np.sqrt(x)).astype(np.float32)
    if op == "batch_norm":
        scale, offset, mean, variance = args[1:]
        factor = scale / np.sqrt(variance + np.float32(attrs.get("epsilon", 1e-3)))
        return ((x - mean) * factor + offset).astype(np.float32)
    if op == "relu":
        return np.maximum(x, np.float32(0))
    if op == "relu6":
        return reference.relu6(x)
    if op == "clip":
        return np.clip(x, np.float32(attrs["low"]), np.float32(attrs["high"]))
    if op == "softmax":
        e = np.exp(x - x.max())
        return (e / e.sum()).astype(np.float32)
    if op == "global_avg_pool":
        return reference.global_avg_pool(x).reshape(1, 1, -1)
    if op == "avg_pool":
        kh, kw = attrs["ksize"]
        if attrs.get("padding") == "valid" and (kh, kw) == x.shape[:2]:
            return reference.global_avg_pool(x).reshape(1, 1, -1)
        raise NotImplementedError("avg_pool other than over the whole image")
    if op == "pad":
        top, bottom, left, right = attrs["paddings"]
        return np.pad(x, ((top, bottom), (left, right), (0, 0)))
    if op in ("identity", "squeeze", "flatten"):
        return x.reshape(-1) if op != "identity" and x.ndim == 3 and x.shape[:2] == (1, 1) else x
    if op == "reshape":
        return x.reshape(attrs["shape"])
    raise NotImplementedError(op)


def run(graph: Graph, feeds: dict[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
    """The graph's outputs for the given inputs (one array: the only input)."""
    if not isinstance(feeds, dict):
        (name,) = graph.inputs
        feeds = {name: feeds}
    values: dict[str, np.ndarray] = {**graph.constants, **{k: np.asarray(v, np.float32) for k, v in feeds.items()}}
    for node in graph.nodes:
        values[node.name] = evaluate(graph, node, [values[i] for i in node.inputs])
    return {name: values[name] for name in graph.outputs}


__all__ = ["evaluate", "run"]
