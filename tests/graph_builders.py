"""Small models written as real files, for the importer, pass and compiler tests: TensorFlow
GraphDef messages as TensorFlow writes them (only what the importer reads)."""

from __future__ import annotations

import numpy as np
from tensorboard.compat.proto import attr_value_pb2, graph_pb2, tensor_pb2, tensor_shape_pb2


class GraphBuilder:
    """GraphDef messages as TensorFlow writes them (only what the importer reads)."""

    def __init__(self):
        self.graph = graph_pb2.GraphDef()

    def node(self, name, op, inputs=(), **attrs):
        node = self.graph.node.add(name=name, op=op, input=list(inputs))
        for key, value in attrs.items():
            if isinstance(value, bytes):
                node.attr[key].CopyFrom(attr_value_pb2.AttrValue(s=value))
            elif isinstance(value, bool):
                node.attr[key].CopyFrom(attr_value_pb2.AttrValue(b=value))
            elif isinstance(value, float):
                node.attr[key].CopyFrom(attr_value_pb2.AttrValue(f=value))
            elif isinstance(value, list):
                node.attr[key].CopyFrom(attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(i=value)))
        return name

    def const(self, name, value):
        value = np.asarray(value)
        dtype = {np.dtype(np.float32): 1, np.dtype(np.int32): 3}[value.dtype]
        shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d)
                                                       for d in value.shape])
        tensor = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=value.tobytes())
        node = self.graph.node.add(name=name, op="Const")
        node.attr["value"].CopyFrom(attr_value_pb2.AttrValue(tensor=tensor))
        node.attr["dtype"].CopyFrom(attr_value_pb2.AttrValue(type=dtype))
        return name

    def placeholder(self, name, shape):
        node = self.graph.node.add(name=name, op="Placeholder")
        node.attr["shape"].CopyFrom(attr_value_pb2.AttrValue(shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape])))
        return name

    def conv(self, name, x, w, stride=1, op="Conv2D", padding=b"SAME"):
        return self.node(name, op, [x, self.const(name + "/weights", w)], strides=[1, stride, stride, 1],
                         padding=padding)

    def slim_batch_norm(self, name, x, gamma, beta, mean, variance, eps=1e-3):
        """Batch norm as TF-slim freezes it: Add(var, eps) -> Rsqrt -> Mul(gamma) -> Mul / Sub / Add."""
        v = self.node(name + "/var/read", "Identity", [self.const(name + "/var", variance)])
        add = self.node(name + "/add", "Add", [v, self.const(name + "/eps", np.float32(eps))])
        rsqrt = self.node(name + "/Rsqrt", "Rsqrt", [add])
        mul = self.node(name + "/mul", "Mul", [rsqrt, self.const(name + "/gamma", gamma)])
        mul_1 = self.node(name + "/mul_1", "Mul", [x, mul])
        mul_2 = self.node(name + "/mul_2", "Mul", [self.const(name + "/mean", mean), mul])
        sub = self.node(name + "/sub", "Sub", [self.const(name + "/beta", beta), mul_2])
        return self.node(name + "/add_1", "Add", [mul_1, sub])

    def write(self, path):
        path.write_bytes(self.graph.SerializeToString())
        return path


def mobilenet(path, rng, size: int, blocks: list[tuple[int, int]], classes: int = 10, stem: int = 16):
    """A MobileNet v1 in miniature as TF-slim freezes it, written to `path`: a 3x3/2 convolution
    with batch norm spelled out and ReLU6, then per (stride, channels) block a depthwise 3x3 (fused
    batch norm, ReLU6) and a pointwise convolution (batch norm, ReLU6), the average pool over the
    image, squeeze, reshape, FC + bias and softmax; random weights. Returns (path, output names)."""
    def f32(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def bn(c):
        return f32(c, scale=0.2) + 1, f32(c, scale=0.1), f32(c, scale=0.1), np.abs(f32(c)) + 0.5

    b = GraphBuilder()
    x = b.placeholder("input", [1, size, size, 3])
    conv = b.conv("Conv2d_0/conv", x, f32(3, 3, 3, stem, scale=0.4), 2)
    y = b.node("Conv2d_0/Relu6", "Relu6", [b.slim_batch_norm("Conv2d_0/BN", conv, *bn(stem))])
    channels = stem
    for i, (stride, width) in enumerate(blocks, 1):
        d = b.conv(f"Conv2d_{i}_depthwise/depthwise", y, f32(3, 3, channels, 1, scale=0.4), stride,
                   "DepthwiseConv2dNative")
        fused = b.node(f"Conv2d_{i}_depthwise/BN", "FusedBatchNormV3",
                       [d] + [b.const(f"Conv2d_{i}_depthwise/p{j}", p) for j, p in enumerate(bn(channels))],
                       epsilon=1e-3, is_training=False)
        y = b.node(f"Conv2d_{i}_depthwise/Relu6", "Relu6", [fused])
        p = b.conv(f"Conv2d_{i}_pointwise/conv", y, f32(1, 1, channels, width, scale=1.5 / np.sqrt(channels)))
        p = b.slim_batch_norm(f"Conv2d_{i}_pointwise/BN", p, *bn(width))
        y = b.node(f"Conv2d_{i}_pointwise/Relu6", "Relu6", [p])
        channels = width
    side = size
    for stride, _ in [(2, 0)] + list(blocks):
        side = -(-side // stride)
    pool = b.node("AvgPool", "AvgPool", [y], ksize=[1, side, side, 1], strides=[1, 1, 1, 1], padding=b"VALID")
    flat = b.node("Reshape", "Reshape", [b.node("Squeeze", "Squeeze", [pool]),
                                         b.const("shape", np.array([1, channels], np.int32))])
    fc = b.node("fc/MatMul", "MatMul", [flat, b.const("fc/w", f32(channels, classes, scale=1 / np.sqrt(channels)))])
    logits = b.node("fc/add", "Add", [fc, b.const("fc/b", f32(classes, scale=0.1))])
    b.node("Softmax", "Softmax", [logits])
    return b.write(path), ["Softmax"]


def torch_style_mobilenet_v2(state: dict, size: int = 224, pool: str = "GlobalAveragePool"):
    """An ONNX model of MobileNetV2 written from a torchvision state dict the way torch.onnx.export
    writes it (NCHW input, Conv with group, BatchNormalization unfolded, Clip(0, 6) with its bounds
    as inputs, Add, GlobalAveragePool then Flatten, or, as older torchvision's `x.mean([2, 3])`
    exports, ReduceMean, then Gemm with transB), independently of nnlib.graph.mobilenet_v2: the
    torchvision module structure is spelled out again here."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []

    def const(name, value):
        initializers.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    const("six", np.float32(6.0))
    const("zero", np.float32(0.0))

    def conv_bn(x, conv, bn, stride, relu):
        w = state[conv + ".weight"]
        groups = w.shape[0] if w.shape[1] == 1 and w.shape[0] > 1 else 1
        pad = w.shape[2] // 2
        nodes.append(helper.make_node("Conv", [x, const(conv + ".weight", w)], [conv + ".out"], name=conv,
                                      group=groups, kernel_shape=list(w.shape[2:]), pads=[pad] * 4,
                                      strides=[stride, stride], dilations=[1, 1]))
        ins = [conv + ".out"] + [const(f"{bn}.{k}", state[f"{bn}.{k}"])
                                 for k in ("weight", "bias", "running_mean", "running_var")]
        nodes.append(helper.make_node("BatchNormalization", ins, [bn + ".out"], name=bn, epsilon=1e-5))
        if not relu:
            return bn + ".out"
        nodes.append(helper.make_node("Clip", [bn + ".out", "zero", "six"], [bn + ".relu"], name=bn + ".clip"))
        return bn + ".relu"

    x = conv_bn("input", "features.0.0", "features.0.1", 2, True)
    index, channels = 1, state["features.0.0.weight"].shape[0]
    for t, _, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for r in range(n):
            p, stride, y = f"features.{index}.conv", s if r == 0 else 1, x
            layers = [] if t == 1 else [(f"{p}.0.0", f"{p}.0.1", 1, True)]
            m = len(layers)
            layers += [(f"{p}.{m}.0", f"{p}.{m}.1", stride, True), (f"{p}.{m + 1}", f"{p}.{m + 2}", 1, False)]
            for conv, bn, st, relu in layers:
                y = conv_bn(y, conv, bn, st, relu)
            out = state[f"{p}.{m + 1}.weight"].shape[0]
            if stride == 1 and channels == out:              # torchvision's use_res_connect
                nodes.append(helper.make_node("Add", [x, y], [f"features.{index}.add"]))
                y = f"features.{index}.add"
            x, channels, index = y, out, index + 1
    x = conv_bn(x, f"features.{index}.0", f"features.{index}.1", 1, True)
    if pool == "ReduceMean":
        nodes.append(helper.make_node("ReduceMean", [x], ["flat"], axes=[2, 3], keepdims=0))
    else:
        nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
        nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", const("classifier.1.weight", state["classifier.1.weight"]),
                                           const("classifier.1.bias", state["classifier.1.bias"])], ["logits"],
                                  alpha=1.0, beta=1.0, transB=1))
    classes = state["classifier.1.weight"].shape[0]
    graph = helper.make_graph(nodes, "mobilenet_v2", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                     [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def mobilenet_v2_state(rng, width: float = 0.25, classes: int = 10, last: int = 64) -> dict:
    """A torchvision-style MobileNetV2 state dict with random weights: the real architecture (17
    inverted residual blocks, 10 of them residual) at `width` times the channels, a last 1x1
    convolution to `last` channels and `classes` logits."""
    state = {}

    def conv(name, cout, cin, k):
        state[name + ".weight"] = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(
            np.float32)

    def bn(name, c):
        for key, low, high in (("weight", 0.5, 1.5), ("bias", -0.2, 0.2), ("running_mean", -0.2, 0.2),
                               ("running_var", 0.5, 1.5)):
            state[f"{name}.{key}"] = rng.uniform(low, high, c).astype(np.float32)
        state[name + ".num_batches_tracked"] = np.array(0, np.int64)

    def channels(c):
        return max(8, int(c * width))

    c_in = channels(32)
    conv("features.0.0", c_in, 3, 3)
    bn("features.0.1", c_in)
    index = 1
    for t, c, n, _ in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for _ in range(n):
            p, hidden, out, m = f"features.{index}.conv", c_in * t, channels(c), 0
            if t != 1:
                conv(f"{p}.0.0", hidden, c_in, 1)
                bn(f"{p}.0.1", hidden)
                m = 1
            conv(f"{p}.{m}.0", hidden, 1, 3)
            bn(f"{p}.{m}.1", hidden)
            conv(f"{p}.{m + 1}", out, hidden, 1)
            bn(f"{p}.{m + 2}", out)
            c_in, index = out, index + 1
    conv(f"features.{index}.0", last, c_in, 1)
    bn(f"features.{index}.1", last)
    state["classifier.1.weight"] = (rng.standard_normal((classes, last)) * 0.1).astype(np.float32)
    state["classifier.1.bias"] = rng.standard_normal(classes).astype(np.float32)
    return state


def save_legacy_torch(state: dict, path) -> None:
    """A state dict of numpy arrays saved as torch.save wrote it before torch 1.6 (five pickles, then
    each storage: an 8-byte little-endian count and the elements), without torch: a module named
    torch stands in while the pickles are written, so that its storage types and rebuild function
    are named as torch names them."""
    import pickle
    import struct
    import sys
    import types
    from collections import OrderedDict

    storage_names = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float16): "HalfStorage",
                     np.dtype(np.int64): "LongStorage"}
    fake, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in storage_names.values():
        setattr(fake, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    fake._utils = utils

    class Storage:
        def __init__(self, key, array):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, storage, offset, shape, strides):
            self.args = (storage, offset, shape, strides, False, OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", getattr(fake, storage_names[obj.array.dtype]), obj.key, "cpu", obj.array.size,
                        None)
            return None

    storages, tree = [], OrderedDict()
    for name, value in state.items():
        if isinstance(value, tuple):       # (storage array, offset, shape, strides): a view, as torch keeps one
            base, offset, shape, strides = value
            storage = Storage(str(len(storages)), np.ascontiguousarray(base).reshape(-1))
            storages.append(storage)
            tree[name] = Tensor(storage, offset, shape, strides)
            continue
        value = np.asarray(value)
        flat = np.ascontiguousarray(value).reshape(-1)
        storage = Storage(str(len(storages)), flat)
        storages.append(storage)
        strides = tuple(s // value.itemsize for s in np.ascontiguousarray(value).strides) if value.ndim else ()
        tree[name] = Tensor(storage, 0, value.shape, strides)
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = fake, utils
    try:
        with open(path, "wb") as f:
            for obj in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                                     "type_sizes": {"short": 2, "int": 4, "long": 4}}):
                pickle.dump(obj, f, protocol=2)
            Pickler(f, protocol=2).dump(tree)
            pickle.dump([s.key for s in storages], f, protocol=2)
            for s in storages:
                f.write(struct.pack("<q", s.array.size))
                f.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
