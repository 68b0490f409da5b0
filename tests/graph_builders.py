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
