"""TensorFlow frozen GraphDef (.pb) -> the graph IR.

Decoded with protobuf through the compiled messages tensorboard ships (tensorboard.compat.proto),
not by hand. Supported: what TF-slim's MobileNet v1 uses (Conv2D, DepthwiseConv2dNative, BiasAdd,
Relu6, AvgPool, Squeeze, Reshape, Identity, Const, Placeholder; batch norm spelled out as
Add/Rsqrt/Mul/Sub, which passes.fold_constants reduces to a scale and a shift) and FusedBatchNorm,
Relu, MatMul, Add, Mul, Sub, Pad, Mean (over H and W) and Softmax for other graphs. NHWC only,
batch 1. Anything else is a ModelError naming the node, its op and what is unsupported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .ir import Graph, ModelError, Node

# tensorflow/core/framework/types.proto
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}
_PASS_THROUGH = {"Identity": "identity", "Squeeze": "squeeze", "StopGradient": "identity",
                 "PlaceholderWithDefault": "identity"}
_SIMPLE = {"Relu6": "relu6", "Relu": "relu", "Softmax": "softmax", "Rsqrt": "rsqrt", "Add": "add", "AddV2": "add",
           "BiasAdd": "add", "Mul": "mul", "Sub": "sub", "MatMul": "matmul"}


def _messages():
    try:
        from tensorboard.compat.proto import graph_pb2
    except ImportError as error:
        raise ModelError("<tf>", None, None, f"reading a .pb needs tensorboard's protobuf messages ({error}): "
                         "pip install 'vc4kit[models]'") from None
    return graph_pb2


def _tensor(proto, source: str, node: str) -> np.ndarray:
    dtype = _DTYPES.get(proto.dtype)
    if dtype is None:
        raise ModelError(source, node, "Const", f"tensor dtype {proto.dtype} is not supported")
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    if proto.tensor_content:
        value = np.frombuffer(proto.tensor_content, dtype=dtype)
    else:
        values = {np.float32: proto.float_val, np.float64: proto.double_val, np.int32: proto.int_val,
                  np.int64: proto.int64_val, np.float16: proto.half_val}[dtype]
        value = np.array(list(values), dtype=np.int32 if dtype == np.float16 else dtype)
        if dtype == np.float16:
            value = value.astype(np.uint16).view(np.float16)
        count = int(np.prod(shape)) if shape else 1
        if value.size == 1 and count != 1:
            value = np.full(count, value[0], dtype=value.dtype)
    if value.size != (int(np.prod(shape)) if shape else 1):
        raise ModelError(source, node, "Const", f"{value.size} values for shape {shape}")
    return value.reshape(shape).astype(np.float32 if dtype in (np.float16, np.float64) else dtype)


def _padding(node, source: str) -> str:
    padding = node.attr["padding"].s.decode()
    if padding not in ("SAME", "VALID"):
        raise ModelError(source, node.name, node.op, f"padding {padding!r} is not supported")
    return "tf_same" if padding == "SAME" else "valid"


def _stride(node, source: str) -> int:
    strides = list(node.attr["strides"].list.i)
    if node.attr["data_format"].s not in (b"", b"NHWC"):
        raise ModelError(source, node.name, node.op, f"data_format {node.attr['data_format'].s.decode()} (NHWC only)")
    if len(strides) != 4 or strides[0] != 1 or strides[3] != 1 or strides[1] != strides[2]:
        raise ModelError(source, node.name, node.op, f"strides {strides} (equal in H and W only)")
    dilations = list(node.attr["dilations"].list.i)
    if dilations and set(dilations) != {1}:
        raise ModelError(source, node.name, node.op, f"dilations {dilations} are not supported")
    return strides[1]


def load(path: str | Path, outputs: list[str] | None = None) -> Graph:
    """A frozen GraphDef as a Graph; `outputs` (node names) default to the graph's last node."""
    path = Path(path)
    source = path.name
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(source, None, None, f"cannot read the file: {error.strerror}") from None
    graph_def = _messages().GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:           # protobuf's DecodeError and friends: a truncated or corrupt file
        raise ModelError(source, None, None, f"not a TensorFlow GraphDef ({type(error).__name__}: {error})") from None
    if not graph_def.node:
        raise ModelError(source, None, None, "not a TensorFlow GraphDef (no nodes)")
    return from_graph_def(graph_def, source, outputs)


def from_graph_def(graph_def, source: str = "<graph_def>", outputs: list[str] | None = None) -> Graph:
    constants: dict[str, np.ndarray] = {}
    inputs: dict[str, tuple[int, ...]] = {}
    nodes: list[Node] = []
    known: set[str] = set()
    for proto in graph_def.node:
        names = [i.split(":")[0].lstrip("^") for i in proto.input if not i.startswith("^")]
        for i in proto.input:
            if ":" in i and not i.endswith(":0"):
                raise ModelError(source, proto.name, proto.op, f"reads output {i} (only first outputs are supported)")
        missing = [n for n in names if n not in known]
        if missing:
            raise ModelError(source, proto.name, proto.op, f"reads {missing[0]!r}, which no earlier node defines "
                             "(the file is truncated or not in topological order)")
        known.add(proto.name)
        op = proto.op
        if op == "Const":
            constants[proto.name] = _tensor(proto.attr["value"].tensor, source, proto.name)
        elif op == "Placeholder":
            dims = [d.size for d in proto.attr["shape"].shape.dim]
            if len(dims) != 4 or dims[0] not in (1, -1) or min(dims[1:]) < 1:
                raise ModelError(source, proto.name, op, f"input shape {dims}: (1, H, W, C) with known H, W, C only")
            inputs[proto.name] = tuple(dims[1:])
        elif op in _PASS_THROUGH and (op != "PlaceholderWithDefault" or names):
            nodes.append(Node(proto.name, _PASS_THROUGH[op], names[:1], {}, op))
        elif op in _SIMPLE:
            if op == "MatMul" and (proto.attr["transpose_a"].b or proto.attr["transpose_b"].b):
                raise ModelError(source, proto.name, op, "transposed MatMul operands are not supported")
            nodes.append(Node(proto.name, _SIMPLE[op], names, {}, op))
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            kind = "conv2d" if op == "Conv2D" else "depthwise"
            attrs = {"stride": _stride(proto, source), "padding": _padding(proto, source)}
            w = constants.get(names[1])
            if w is not None and kind == "depthwise":
                if w.ndim != 4 or w.shape[3] != 1:
                    raise ModelError(source, proto.name, op, f"depthwise weights {w.shape}: multiplier 1 only")
            nodes.append(Node(proto.name, kind, names, attrs, op))
        elif op == "AvgPool":
            ksize = list(proto.attr["ksize"].list.i)
            nodes.append(Node(proto.name, "avg_pool", names,
                              {"ksize": tuple(ksize[1:3]), "stride": _stride(proto, source),
                               "padding": _padding(proto, source)}, op))
        elif op in ("FusedBatchNorm", "FusedBatchNormV3"):
            if proto.attr["is_training"].b:
                raise ModelError(source, proto.name, op, "is_training=True (a frozen inference graph is needed)")
            nodes.append(Node(proto.name, "batch_norm", names, {"epsilon": proto.attr["epsilon"].f}, op))
        elif op == "Reshape":
            nodes.append(Node(proto.name, "reshape", names[:1], {"shape_from": names[1]}, op))
        elif op == "Pad":
            nodes.append(Node(proto.name, "pad", names[:1], {"paddings_from": names[1]}, op))
        elif op == "Mean":
            nodes.append(Node(proto.name, "global_avg_pool", names[:1], {"axes_from": names[1]}, op))
        else:
            raise ModelError(source, proto.name, op, f"op {op} is not supported")
    graph = Graph(nodes, constants, inputs, outputs or [nodes[-1].name if nodes else ""], source)
    _resolve_shape_operands(graph)
    for name in graph.outputs:
        if name not in known:
            raise ModelError(source, None, None, f"output {name!r} is not a node of the graph")
    return graph


def _resolve_shape_operands(graph: Graph) -> None:
    """Reshape's shape, Pad's paddings and Mean's axes are constants: read them into attributes."""
    for node in graph.nodes:
        if "shape_from" in node.attrs:
            shape = graph.constants.get(node.attrs.pop("shape_from"))
            if shape is None:
                raise graph.error(node, "the target shape is not a constant")
            dims = [int(d) for d in shape]
            node.attrs["shape"] = tuple(dims[1:]) if len(dims) > 1 and dims[0] in (1, -1) else tuple(dims)
        if "paddings_from" in node.attrs:
            pads = graph.constants.get(node.attrs.pop("paddings_from"))
            if pads is None or pads.shape != (4, 2) or pads[0].any() or pads[3].any():
                raise graph.error(node, "paddings must be a constant that pads H and W only")
            node.attrs["paddings"] = (int(pads[1, 0]), int(pads[1, 1]), int(pads[2, 0]), int(pads[2, 1]))
        if "axes_from" in node.attrs:
            axes = graph.constants.get(node.attrs.pop("axes_from"))
            if axes is None or sorted(int(a) for a in axes.reshape(-1)) != [1, 2]:
                raise graph.error(node, "Mean over axes other than H and W (1, 2) is not supported")


__all__ = ["from_graph_def", "load"]
