"""ONNX <-> the graph IR (read and written with the `onnx` package).

Reading: Conv (group 1, or depthwise: group = channels), BatchNormalization, Relu, Clip, GlobalAveragePool,
ReduceMean over H and W, AveragePool, Gemm/MatMul, Add, Flatten/Reshape, Softmax, Pad, Identity,
Transpose of the input, as torch.onnx.export and our own writer produce them. ONNX is NCHW: weights
are turned into the IR's HWIO layouts and the IR's input is (H, W, C); an input written NHWC and
transposed to NCHW by the model's first node (our writer's form) is taken as it is.

Writing (`to_model`): a simplified graph (passes.simplify) as an ONNX model whose input is NHWC
(1, H, W, C), so that a CPU runtime (onnxruntime) checks the same weights vc4kit runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import reference
from .ir import Graph, ModelError, Node
from .passes import shapes

OPSET = 13
IR_VERSION = 8              # onnxruntime 1.31 rejects onnx 1.23's default IR version 14 (ecosystem.md §B)


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as error:
        raise ModelError("<onnx>", None, None, f"reading or writing .onnx needs the onnx package ({error})") from None
    return onnx, numpy_helper


# ---- reading -------------------------------------------------------------------------------------------

def load(path: str | Path) -> Graph:
    onnx, _ = _onnx()
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except OSError as error:
        raise ModelError(path.name, None, None, f"cannot read the file: {error.strerror}") from None
    except Exception as error:            # protobuf's DecodeError: truncated or not ONNX
        raise ModelError(path.name, None, None, f"not an ONNX model ({type(error).__name__}: {error})") from None
    if not model.graph.node:
        raise ModelError(path.name, None, None, "not an ONNX model (no nodes)")
    return from_model(model, path.name)


def _attrs(proto) -> dict:
    onnx, _ = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}


def from_model(model, source: str = "<onnx>") -> Graph:
    onnx, numpy_helper = _onnx()
    g = model.graph
    constants = {t.name: numpy_helper.to_array(t).astype(np.float32) if t.data_type in (1, 10, 11)
                 else numpy_helper.to_array(t) for t in g.initializer}
    real_inputs = [i for i in g.input if i.name not in constants]
    if len(real_inputs) != 1:
        raise ModelError(source, None, None, f"{len(real_inputs)} inputs (one image input only)")
    dims = [d.dim_value for d in real_inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[0] not in (0, 1) or min(dims[1:]) < 1:
        raise ModelError(source, None, None, f"input shape {dims}: (1, C, H, W) or (1, H, W, C) with known sizes")
    nodes: list[Node] = []
    name = real_inputs[0].name
    first = g.node[0]
    nhwc = first.op_type == "Transpose" and list(_attrs(first).get("perm", [])) == [0, 3, 1, 2] and \
        first.input[0] == name
    inputs = {name: tuple(dims[1:]) if nhwc else (dims[2], dims[3], dims[1])}
    for proto in g.node:
        op, attrs, ins = proto.op_type, _attrs(proto), [i for i in proto.input if i]
        out = proto.output[0]

        def fail(what: str, proto=proto):
            return ModelError(source, proto.name or proto.output[0], proto.op_type, what)

        if op == "Constant":
            constants[out] = numpy_helper.to_array(attrs["value"])
        elif op == "Transpose" and proto is first and nhwc:
            nodes.append(Node(out, "identity", ins, {}, op))
        elif op == "Conv":
            nodes.append(_conv(proto, attrs, ins, constants, fail))
        elif op == "BatchNormalization":
            nodes.append(Node(out, "batch_norm", ins[:5], {"epsilon": attrs.get("epsilon", 1e-5)}, op))
        elif op in ("Relu", "Softmax", "Identity", "Add", "Mul", "Sub"):
            if op == "Softmax" and attrs.get("axis", -1) not in (-1, 1):
                raise fail(f"softmax over axis {attrs['axis']}")
            for i in ins:                       # an NCHW per-channel constant (C, 1, 1) is the IR's (C,)
                value = constants.get(i)
                if value is not None and value.ndim >= 3 and value.shape[-2:] == (1, 1):
                    constants[i] = value.reshape(-1)
            nodes.append(Node(out, op.lower(), ins, {}, op))
        elif op == "Clip":
            low = attrs.get("min", constants[ins[1]].item() if len(ins) > 1 else -np.inf)
            high = attrs.get("max", constants[ins[2]].item() if len(ins) > 2 else np.inf)
            nodes.append(Node(out, "clip", ins[:1], {"low": float(low), "high": float(high)}, op))
        elif op == "GlobalAveragePool":
            nodes.append(Node(out, "global_avg_pool", ins, {}, op))
        elif op == "ReduceMean":                # torch's x.mean([2, 3]): the axes an attribute, or (opset 18) an input
            axes = attrs.get("axes", constants[ins[1]].tolist() if len(ins) > 1 and ins[1] in constants else None)
            if axes is None or sorted(int(a) % 4 for a in axes) != [2, 3]:
                raise fail(f"ReduceMean over axes {axes} (the spatial axes 2 and 3 only)")
            nodes.append(Node(out, "global_avg_pool", ins[:1], {}, op))
        elif op == "AveragePool":
            kernel = tuple(attrs["kernel_shape"])
            nodes.append(Node(out, "avg_pool", ins, {"ksize": kernel, "stride": attrs.get("strides", [1])[0],
                                                     "padding": "valid" if not any(attrs.get("pads", [0])) else
                                                     _pads(attrs["pads"])}, op))
        elif op in ("Flatten", "Reshape"):
            nodes.append(Node(out, "flatten", ins[:1], {}, op))
        elif op in ("Gemm", "MatMul"):
            if op == "Gemm" and (attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or
                                 attrs.get("transA", 0)):
                raise fail("Gemm with alpha, beta or transA is not supported")
            if ins[1] not in constants:
                raise fail("the weights are not a constant")
            w = constants[ins[1]]
            w_name = ins[1] + ("/transposed" if attrs.get("transB", 0) else "")
            constants[w_name] = (w.T if attrs.get("transB", 0) else w).astype(np.float32)
            node = Node(out, "matmul", [ins[0], w_name], {}, op)
            if len(ins) > 2:
                node.attrs["bias"] = ins[2]
            nodes.append(node)
        elif op == "Pad":
            pads = attrs.get("pads") if "pads" in attrs else constants[ins[1]].tolist()
            if attrs.get("mode", b"constant") not in (b"constant", "constant") or any(pads[i] for i in (0, 1, 4, 5)):
                raise fail("only zero padding of H and W is supported")
            nodes.append(Node(out, "pad", ins[:1], {"paddings": (pads[2], pads[6], pads[3], pads[7])}, op))
        else:
            raise fail(f"op {op} is not supported")
    return Graph(nodes, constants, inputs, [o.name for o in g.output], source)


def _pads(pads) -> tuple[int, int, int, int]:
    top, left, bottom, right = (int(p) for p in pads)
    return top, bottom, left, right


def _conv(proto, attrs, ins, constants, fail) -> Node:
    if ins[1] not in constants:
        raise fail("the weights are not a constant")
    w = constants[ins[1]].astype(np.float32)                      # (O, I/group, KH, KW)
    strides, dilations = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    if strides[0] != strides[1] or set(dilations) != {1} or w.shape[2] != w.shape[3]:
        raise fail(f"strides {strides}, dilations {dilations} or kernel {w.shape[2:]} not supported")
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise fail("auto_pad is not supported (write explicit pads)")
    group = attrs.get("group", 1)
    out = proto.output[0]
    name = ins[1] + "/hwio"
    if group == 1:
        constants[name] = w.transpose(2, 3, 1, 0).copy()
        kind = "conv2d"
    elif group == w.shape[0] and w.shape[1] == 1:
        constants[name] = w[:, 0].transpose(1, 2, 0).copy()
        kind = "depthwise"
    else:
        raise fail(f"group {group} with weights {w.shape} (only 1 or depthwise)")
    node = Node(out, kind, [ins[0], name], {"stride": strides[0], "padding": _pads(attrs.get("pads", [0, 0, 0, 0]))},
                proto.op_type)
    if len(ins) > 2:
        node.attrs["bias"] = ins[2]
    return node


# ---- writing -------------------------------------------------------------------------------------------

def to_model(graph: Graph):
    """An ONNX model computing what a simplified graph computes; input NHWC (1, H, W, C)."""
    onnx, numpy_helper = _onnx()
    helper = onnx.helper
    sizes = shapes(graph)
    (input_name, (h, w, c)), = graph.inputs.items()
    initializers, nodes = [], [helper.make_node("Transpose", [input_name], ["nchw"], perm=[0, 3, 1, 2])]
    names = {input_name: "nchw"}

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    for node in graph.nodes:
        x = names[node.inputs[0]]
        out = node.name
        if node.op in ("conv2d", "depthwise"):
            weights = graph.constant(node.inputs[1])
            height, width = sizes[node.inputs[0]][:2]
            padding = node.attrs.get("padding", "tf_same")
            kernel = weights.shape[0]
            stride = node.attrs.get("stride", 1)
            top, bottom, left, right = (0, 0, 0, 0) if padding == "valid" else \
                reference.pad_amounts(height, width, stride, padding, kernel)
            oihw = weights.transpose(3, 2, 0, 1) if node.op == "conv2d" else weights.transpose(2, 0, 1)[:, None]
            ins = [x, constant(out + "/W", oihw)]
            if node.attrs.get("bias"):
                ins.append(constant(out + "/B", graph.constant(node.attrs["bias"])))
            conv_out = out if not node.attrs.get("activation") else out + "/conv"
            nodes.append(helper.make_node("Conv", ins, [conv_out], strides=[stride, stride],
                                          pads=[top, left, bottom, right], kernel_shape=[kernel, kernel],
                                          group=1 if node.op == "conv2d" else oihw.shape[0]))
            _activation(helper, nodes, node, conv_out, out, constant)
        elif node.op == "matmul":
            flat = out + "/flat"
            nodes.append(helper.make_node("Flatten", [x], [flat]))
            ins = [flat, constant(out + "/W", graph.constant(node.inputs[1]))]
            if node.attrs.get("bias"):
                ins.append(constant(out + "/B", graph.constant(node.attrs["bias"])))
            gemm_out = out if not node.attrs.get("activation") else out + "/gemm"
            nodes.append(helper.make_node("Gemm", ins, [gemm_out]))
            _activation(helper, nodes, node, gemm_out, out, constant)
        elif node.op == "global_avg_pool":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [out]))
        elif node.op in ("squeeze", "reshape", "flatten"):
            nodes.append(helper.make_node("Flatten", [x], [out]))
        elif node.op in ("softmax", "relu"):
            nodes.append(helper.make_node(node.op.capitalize(), [x], [out]))
        elif node.op == "relu6":
            _activation(helper, nodes, Node(out, "", [], {"activation": "relu6"}), x, out, constant)
        elif node.op == "add" and not any(graph.is_constant(i) for i in node.inputs):
            nodes.append(helper.make_node("Add", [names[i] for i in node.inputs], [out]))
        else:
            raise graph.error(node, f"cannot be written as ONNX ({node.op})")
        names[node.name] = out
    def onnx_shape(shape: tuple[int, ...]) -> list[int]:
        return [1, *shape] if len(shape) == 1 else [1, shape[2], shape[0], shape[1]]

    outputs = [helper.make_tensor_value_info(names[o], onnx.TensorProto.FLOAT, onnx_shape(sizes[o]))
               for o in graph.outputs]
    model_graph = helper.make_graph(nodes, "vc4kit", [helper.make_tensor_value_info(
        input_name, onnx.TensorProto.FLOAT, [1, h, w, c])], outputs, initializers)
    model = helper.make_model(model_graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model


def _activation(helper, nodes, node: Node, source: str, out: str, constant) -> None:
    kind = node.attrs.get("activation")
    if kind == "relu":
        nodes.append(helper.make_node("Relu", [source], [out]))
    elif kind == "relu6":
        low, high = constant(out + "/min", np.float32(0)), constant(out + "/max", np.float32(6))
        nodes.append(helper.make_node("Clip", [source, low, high], [out]))


def save(graph: Graph, path: str | Path) -> Path:
    onnx, _ = _onnx()
    onnx.save(to_model(graph), str(path))
    return Path(path)


__all__ = ["load", "from_model", "save", "to_model"]
