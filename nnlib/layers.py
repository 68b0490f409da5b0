"""nnlib's single-layer functions, each a one-layer network compiled by nnlib.compile: the same
layer plans, kernels and submission as a layer of a whole network, run on one input.

    y, report = conv_pointwise(drv, x, w, bias)               # 1x1 conv, bias and ReLU6 fused
    y, report = conv_depthwise(drv, x, w, bias, stride=2)     # 3x3 depthwise, TF SAME padding
    y, report = conv2d(drv, x, w, bias, stride=2)             # 3x3 full conv (MobileNet's first layer)
    y, report = global_avg_pool(drv, x)                       # (H, W, C) -> (C,)
    y, report = fully_connected(drv, x, w, bias)              # (Cin,) -> (Cout,)

Inputs are float32 NHWC; each returns the result and the run's report. nnlib.matmul / gemm (a GEMM
of any A, with gemm's alpha and beta) drive the GEMM kernel directly.
"""

from __future__ import annotations

import numpy as np

from vc4common import host

from . import reference
from .graph import Graph, Node
from .network import WEIGHTS
from .network import compile as compile_network

QPUS = host.QPUS


def _run(drv, op: str, x: np.ndarray, w: np.ndarray | None, bias, attrs: dict, weights: str = "float32",
         qpus: int = QPUS):
    """One layer `op` on x as a compiled one-layer network: (output, report)."""
    constants, inputs = {}, ["x"]
    if w is not None:
        constants["w"] = w
        inputs.append("w")
    if bias is not None:
        constants["b"] = np.asarray(bias, np.float32).reshape(-1)
        attrs = {**attrs, "bias": "b"}
    graph = Graph([Node("y", op, inputs, attrs)], constants, {"x": x.shape}, ["y"], source=f"<nnlib {op}>")
    with compile_network(graph, drv, weights=weights, qpus=qpus) as net:
        _, report = net(x)
        return net.activation("y"), report


def _checked_bias(name: str, bias, channels: int):
    if bias is None:
        return None
    bias = np.asarray(bias, np.float32)
    if bias.shape != (channels,):
        raise ValueError(f"{name}: bias of shape {bias.shape}, expected ({channels},): one per output channel")
    return bias


def _checked_weights(weights: str) -> str:
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r}: 'float32' or 'float16'")
    return weights


def conv_pointwise(drv, x, w, bias=None, relu6: bool = True, weights: str = "float32"):
    """1x1 convolution, x (H, W, Cin) and w (Cin, Cout), bias and ReLU6 fused: (result, report)."""
    x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
    if x.ndim != 3 or w.ndim != 2 or w.shape[0] != x.shape[2]:
        raise ValueError(f"conv_pointwise: x {x.shape} (H, W, Cin) and w {w.shape} (Cin, Cout) do not match")
    bias = _checked_bias("conv_pointwise", bias, w.shape[1])
    return _run(drv, "conv2d", x, w.reshape(1, 1, *w.shape), bias,
                {"stride": 1, "padding": "valid", "activation": "relu6" if relu6 else None},
                _checked_weights(weights))


def fully_connected(drv, x, w, bias=None, weights: str = "float32"):
    """x (Cin,) @ w (Cin, Cout) + bias: (result (Cout,), report)."""
    x, w = np.asarray(x, np.float32).reshape(-1), np.asarray(w, np.float32)
    if w.ndim != 2 or w.shape[0] != x.shape[0]:
        raise ValueError(f"fully_connected: x {x.shape} and w {w.shape} (Cin, Cout) do not match")
    bias = _checked_bias("fully_connected", bias, w.shape[1])
    y, report = _run(drv, "matmul", x.reshape(1, 1, -1), w, bias, {}, _checked_weights(weights))
    return y.reshape(-1), report


def conv_depthwise(drv, x, w, bias=None, stride: int = 1, padding: reference.Padding = "tf_same",
                   relu6: bool = True, n_qpus: int = QPUS):
    """3x3 depthwise convolution of x (H, W, C) by w (3, 3, C), + bias, ReLU6: (result, report)."""
    x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
    if x.ndim != 3 or w.shape != (3, 3, x.shape[2]):
        raise ValueError(f"conv_depthwise: x {x.shape} (H, W, C) and w {w.shape} (3, 3, C) do not match")
    bias = _checked_bias("conv_depthwise", bias, x.shape[2])
    return _run(drv, "depthwise", x, w, bias, {"stride": stride, "padding": padding,
                                               "activation": "relu6" if relu6 else None}, qpus=n_qpus)


def conv2d(drv, x, w, bias=None, stride: int = 1, padding: reference.Padding = "tf_same", relu6: bool = True,
           weights: str = "float32"):
    """k x k convolution of x (H, W, Cin) by w (k, k, Cin, Cout), + bias, ReLU6: (result, report).
    The QPUs gather the patches into the GEMM's A pack, then multiply (nnlib/im2col.py)."""
    x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
    if x.ndim != 3 or w.ndim != 4 or w.shape[0] != w.shape[1] or w.shape[2] != x.shape[2]:
        raise ValueError(f"conv2d: x {x.shape} (H, W, Cin) and w {w.shape} (k, k, Cin, Cout) do not match")
    if stride not in (1, 2):
        raise ValueError(f"stride {stride}: 1 or 2")
    height, width, _ = x.shape
    top, bottom, left, right = reference.pad_amounts(height, width, stride, padding, w.shape[0])
    if height + top + bottom < w.shape[0] or width + left + right < w.shape[0]:
        raise ValueError(f"conv2d: {x.shape} with padding {padding!r} leaves no output")
    bias = _checked_bias("conv2d", bias, w.shape[3])
    return _run(drv, "conv2d", x, w, bias, {"stride": stride, "padding": (top, bottom, left, right),
                                            "activation": "relu6" if relu6 else None}, _checked_weights(weights))


def global_avg_pool(drv, x, n_qpus: int = QPUS):
    """The mean of x (H, W, C) over H and W: (float32 (C,), report)."""
    x = np.asarray(x, np.float32)
    if x.ndim != 3:
        raise ValueError(f"global_avg_pool: x {x.shape} is not (H, W, C)")
    y, report = _run(drv, "global_avg_pool", x, None, None, {}, qpus=n_qpus)
    return y.reshape(-1), report


__all__ = ["conv2d", "conv_depthwise", "conv_pointwise", "fully_connected", "global_avg_pool"]
