"""MobileNet v2 (Sandler et al. 2018) as a graph, from a torchvision-style state dict.

torchvision's `mobilenet_v2` names its tensors features.N...: features.0 is a 3x3/2 convolution with
batch norm and ReLU6 (features.0.0 conv, features.0.1 bn); features.1..17 are inverted residual
blocks (conv.M inside each: for an expansion of 1, the depthwise conv.0.0/conv.0.1, then the
projection conv.1 and its bn conv.2; otherwise the 1x1 expansion conv.0, the depthwise conv.1,
the projection conv.2 and its bn conv.3); features.18 is the 1x1 convolution to 1280 channels;
classifier.1 the fully connected layer (classifier.0 is dropout, nothing at inference). A block
adds its input to its output when its stride is 1 and its channels do not change. The projection
is linear (no activation). torchvision pads every 3x3 convolution by 1 on each side (not TF's
"SAME"), and its batch norms use epsilon 1e-5.

The block settings (expansion t, channels c, repeats n, first stride s) are the paper's Table 2,
which torchvision's `inverted_residual_setting` repeats; the channel counts are read from the
weights, so a width multiplier other than 1.0 loads too.
"""

from __future__ import annotations

import numpy as np

from .ir import Graph, ModelError, Node

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
EPSILON = 1e-5
PADDING = (1, 1, 1, 1)
INPUT = "input"
LOGITS = "logits"


class _Builder:
    def __init__(self, state: dict[str, np.ndarray], source: str):
        self.state, self.source = state, source
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = {}
        self.used: set[str] = set()

    def tensor(self, name: str) -> np.ndarray:
        if name not in self.state:
            raise ModelError(self.source, None, None, f"the state dict has no {name} (not a torchvision MobileNetV2)")
        self.used.add(name)
        return np.asarray(self.state[name], np.float32)

    def constant(self, name: str, value: np.ndarray) -> str:
        self.constants[name] = np.ascontiguousarray(value, np.float32)
        return name

    def node(self, name: str, op: str, inputs: list[str], origin: str, **attrs) -> str:
        self.nodes.append(Node(name, op, inputs, attrs, origin))
        return name

    def conv_bn(self, x: str, prefix: str, conv: str, bn: str, activation: bool) -> str:
        """A convolution (its kind read off its weight's shape), its batch norm, and ReLU6 if asked."""
        w = self.tensor(f"{prefix}.{conv}.weight")                 # (Cout, Cin / groups, KH, KW)
        if w.ndim != 4:
            raise ModelError(self.source, f"{prefix}.{conv}", "Conv2d", f"a weight of shape {w.shape}")
        name = f"{prefix}.{conv}"
        stride = self.strides.get(name, 1)
        padding = PADDING if w.shape[2] == 3 else (0, 0, 0, 0)
        if w.shape[1] == 1 and w.shape[0] > 1:                      # depthwise: groups = channels
            weight = self.constant(f"{name}.weight", w[:, 0].transpose(1, 2, 0))
            y = self.node(name, "depthwise", [x, weight], "Conv2d", stride=stride, padding=padding)
        else:
            weight = self.constant(f"{name}.weight", w.transpose(2, 3, 1, 0))
            y = self.node(name, "conv2d", [x, weight], "Conv2d", stride=stride, padding=padding)
        norm = f"{prefix}.{bn}"
        inputs = [y] + [self.constant(f"{norm}.{part}", self.tensor(f"{norm}.{key}"))
                        for part, key in (("scale", "weight"), ("offset", "bias"), ("mean", "running_mean"),
                                          ("variance", "running_var"))]
        self.used.add(f"{norm}.num_batches_tracked")
        y = self.node(norm, "batch_norm", inputs, "BatchNorm2d", epsilon=EPSILON)
        return self.node(f"{prefix}.relu6", "relu6", [y], "ReLU6") if activation else y

    def block(self, x: str, index: int, stride: int, expand: bool) -> str:
        prefix = f"features.{index}.conv"
        first = self.tensor(f"{prefix}.0.0.weight")
        self.strides[f"{prefix}.{1 if expand else 0}.0"] = stride
        y = x
        if expand:
            y = self.conv_bn(y, f"{prefix}.0", "0", "1", True)
        y = self.conv_bn(y, f"{prefix}.{1 if expand else 0}", "0", "1", True)
        projection = 2 if expand else 1
        y = self.conv_bn(y, prefix, str(projection), str(projection + 1), False)
        out_channels = self.tensor(f"{prefix}.{projection}.weight").shape[0]
        in_channels = first.shape[1] if expand else first.shape[0]
        if stride == 1 and in_channels == out_channels:
            y = self.node(f"features.{index}.add", "add", [x, y], "add")
        return y

    def build(self, size: int) -> Graph:
        self.strides = {"features.0.0": 2}
        x = self.conv_bn(INPUT, "features.0", "0", "1", True)
        index = 1
        for t, _c, n, s in SETTINGS:
            for r in range(n):
                x = self.block(x, index, s if r == 0 else 1, t != 1)
                index += 1
        x = self.conv_bn(x, f"features.{index}", "0", "1", True)
        x = self.node("pool", "global_avg_pool", [x], "adaptive_avg_pool2d")
        w = self.tensor("classifier.1.weight")                     # (classes, channels)
        y = self.node("classifier.1", "matmul", [x, self.constant("classifier.1.weight", w.T)], "Linear")
        bias = self.constant("classifier.1.bias", self.tensor("classifier.1.bias"))
        self.node(LOGITS, "add", [y, bias], "Linear")
        extra = sorted(set(self.state) - self.used)
        if extra:
            raise ModelError(self.source, None, None, f"the state dict holds tensors a MobileNetV2 does not use: "
                                                      f"{', '.join(extra[:3])}")
        return Graph(self.nodes, self.constants, {INPUT: (size, size, 3)}, [LOGITS], self.source)


def build(state: dict[str, np.ndarray], source: str = "<state dict>", size: int = 224) -> Graph:
    """The MobileNetV2 whose torchvision state dict is `state`, for a size x size RGB input."""
    return _Builder(state, source).build(size)


__all__ = ["INPUT", "LOGITS", "build"]
