"""numpy float32 references of every NN op the QPU kernels implement (NHWC, no batch axis).

They define what each kernel must compute: the same shapes, padding rules and fused bias + ReLU6.
Arithmetic is float32 in numpy's order; the kernels' error bounds (round toward zero on the QPU,
another summation order) are stated in their tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Padding = str | Sequence[int]


def pad_amounts(height: int, width: int, stride: int, padding: Padding, kernel: int = 3) -> tuple[int, ...]:
    """(top, bottom, left, right) for a kernel x kernel window.

    "tf_same": TensorFlow's SAME, output ceil(in / stride), the odd pixel of padding at the bottom and
    right (so a stride-2 layer on an even size pads only after); "same": (kernel - 1) / 2 on every side
    (PyTorch's padding=1 for 3x3); or the four numbers given."""
    if isinstance(padding, str):
        if padding == "same":
            half = (kernel - 1) // 2
            return half, half, half, half
        if padding != "tf_same":
            raise ValueError(f"padding {padding!r}: 'tf_same', 'same' or (top, bottom, left, right)")
        amounts = []
        for size in (height, width):
            out = -(-size // stride)
            total = max((out - 1) * stride + kernel - size, 0)
            amounts += [total // 2, total - total // 2]
        return tuple(amounts)
    amounts = tuple(int(p) for p in padding)
    if len(amounts) != 4 or min(amounts) < 0:
        raise ValueError(f"padding {padding!r}: four non-negative numbers (top, bottom, left, right)")
    return amounts


def relu6(x: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, np.float32(0)), np.float32(6))


def _finish(y: np.ndarray, bias, relu: bool) -> np.ndarray:
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float32)
    return (relu6(y) if relu else y).astype(np.float32)


def gemm(a, b, c=None, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """alpha * a @ b + beta * c, float32."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    y = np.float32(alpha) * (a @ b)
    if c is not None and beta != 0:
        y = y + np.float32(beta) * np.asarray(c, np.float32)
    return y.astype(np.float32)


def conv_pointwise(x, w, bias=None, relu6: bool = True) -> np.ndarray:
    """1x1 convolution: x (H, W, Cin), w (Cin, Cout)."""
    x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
    return _finish(x @ w, bias, relu6)


def windows(x: np.ndarray, stride: int, padding: Padding, kernel: int = 3) -> np.ndarray:
    """(H_out, W_out, kernel, kernel, C) views of the zero-padded input."""
    top, bottom, left, right = pad_amounts(x.shape[0], x.shape[1], stride, padding, kernel)
    padded = np.pad(x, ((top, bottom), (left, right), (0, 0)))
    h_out = (padded.shape[0] - kernel) // stride + 1
    w_out = (padded.shape[1] - kernel) // stride + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(0, 1))
    # sliding_window_view puts the window axes last: (H, W, C, k, k) -> (H, W, k, k, C)
    return windows[::stride, ::stride][:h_out, :w_out].transpose(0, 1, 3, 4, 2)


def conv_depthwise(x, w, bias=None, stride: int = 1, padding: Padding = "tf_same", relu6: bool = True) -> np.ndarray:
    """3x3 depthwise convolution: x (H, W, C), w (3, 3, C)."""
    x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
    y = np.einsum("hwijc,ijc->hwc", windows(x, stride, padding), w, dtype=np.float32)
    return _finish(y, bias, relu6)


def conv2d(x, w, bias=None, stride: int = 1, padding: Padding = "tf_same", relu6: bool = True) -> np.ndarray:
    """3x3 full convolution: x (H, W, Cin), w (3, 3, Cin, Cout)."""
    x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
    y = np.einsum("hwijc,ijcd->hwd", windows(x, stride, padding), w, dtype=np.float32)
    return _finish(y, bias, relu6)


def global_avg_pool(x) -> np.ndarray:
    """Mean over H and W: (H, W, C) -> (C,)."""
    x = np.asarray(x, np.float32)
    return (x.sum(axis=(0, 1), dtype=np.float32) / np.float32(x.shape[0] * x.shape[1])).astype(np.float32)


def fully_connected(x, w, bias=None) -> np.ndarray:
    """x (Cin,) @ w (Cin, Cout) + bias, no activation."""
    return _finish(np.asarray(x, np.float32).reshape(-1) @ np.asarray(w, np.float32), bias, False)


__all__ = ["conv2d", "conv_depthwise", "conv_pointwise", "fully_connected", "gemm", "global_avg_pool", "windows",
           "pad_amounts", "relu6"]
