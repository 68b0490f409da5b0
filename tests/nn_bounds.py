"""Error bounds for the NN kernels' results, derived from round-toward-zero arithmetic: every QPU
fmul and fadd has a relative error below u = 2^-23. The exact results are computed in float64.

GEMM: K products summed in order, plus the bias: |y - exact| <= (K + 2) u (|A| @ |B| + |bias|) (the
standard bound for recursive summation, with one more rounding for each product and the bias).
Depthwise: the bias and 9 products: |y - exact| <= 11 u (|b| + sum |x w|).
ReLU6 is 1-Lipschitz, so it only shrinks a difference: the bound holds after it too."""

from __future__ import annotations

import numpy as np

from nnlib import reference as ref

U = 2.0 ** -23


def relu6(x: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, 0), 6)


def assert_within(y: np.ndarray, exact: np.ndarray, bound: np.ndarray) -> None:
    assert y.shape == exact.shape and y.dtype == np.float32
    excess = np.abs(y - exact) - bound
    assert excess.max() <= 1e-30, f"worst excess {excess.max():.3g} at {np.unravel_index(excess.argmax(), y.shape)}"


def assert_gemm_within_bound(y, a, b, bias=None, relu6_applied: bool = False) -> None:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = a64 @ b64 + (0 if bias is None else bias.astype(np.float64))
    scale = np.abs(a64) @ np.abs(b64) + (0 if bias is None else np.abs(bias.astype(np.float64)))
    assert_within(y, relu6(exact) if relu6_applied else exact, (a.shape[1] + 2) * U * scale)


def assert_depthwise_within_bound(y, x, w, bias, stride, padding, relu6_applied: bool) -> None:
    exact = ref.conv_depthwise(x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64), stride,
                               padding, relu6=False)
    scale = ref.conv_depthwise(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                               np.abs(bias).astype(np.float64), stride, padding, relu6=False)
    assert_within(y, relu6(exact) if relu6_applied else exact, 11 * U * scale)
