"""nnlib.reference against independent definitions: direct loops over the convolution sums, TensorFlow's
published SAME-padding rule, and identities between the ops."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import reference as ref

RNG = np.random.default_rng(5)


def rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def direct_conv(x, w, stride, pads):
    """The convolution sum written out: w (3, 3, Cin, Cout); float64 accumulation."""
    top, bottom, left, right = pads
    h, wd, cin = x.shape
    padded = np.zeros((h + top + bottom, wd + left + right, cin))
    padded[top:top + h, left:left + wd] = x
    h_out = (padded.shape[0] - 3) // stride + 1
    w_out = (padded.shape[1] - 3) // stride + 1
    out = np.zeros((h_out, w_out, w.shape[3]))
    for i in range(h_out):
        for j in range(w_out):
            for di in range(3):
                for dj in range(3):
                    out[i, j] += padded[i * stride + di, j * stride + dj] @ w[di, dj]
    return out


@pytest.mark.parametrize("size, stride, expected", [
    (224, 2, (0, 1, 0, 1)),     # MobileNet's first layer: output 112, the extra row and column after
    (112, 1, (1, 1, 1, 1)),
    (7, 2, (1, 1, 1, 1)),       # odd size, stride 2: output 4, total padding 2
    (15, 2, (1, 1, 1, 1)),
    (1, 1, (1, 1, 1, 1)),
    (2, 2, (0, 1, 0, 1)),
])
def test_tf_same_padding(size, stride, expected):
    assert ref.pad_amounts(size, size, stride, "tf_same") == expected
    # TensorFlow's rule: SAME gives ceil(in / stride) outputs.
    x = np.zeros((size, size, 1), np.float32)
    y = ref.conv2d(x, np.zeros((3, 3, 1, 1), np.float32), stride=stride, padding="tf_same", relu6=False)
    assert y.shape[:2] == (-(-size // stride),) * 2


def test_padding_forms():
    assert ref.pad_amounts(10, 12, 2, "same") == (1, 1, 1, 1)
    assert ref.pad_amounts(10, 12, 2, (0, 2, 1, 0)) == (0, 2, 1, 0)
    with pytest.raises(ValueError, match="'tf_same', 'same'"):
        ref.pad_amounts(4, 4, 1, "valid-ish")
    with pytest.raises(ValueError, match="four non-negative"):
        ref.pad_amounts(4, 4, 1, (1, 1, 1))


@pytest.mark.parametrize("shape, stride, padding", [
    ((5, 7, 3), 1, "tf_same"), ((8, 8, 3), 2, "tf_same"), ((9, 6, 2), 2, "same"), ((1, 1, 4), 1, "tf_same"),
    ((6, 5, 3), 2, (0, 2, 1, 0)),
])
def test_conv2d_is_the_convolution_sum(shape, stride, padding):
    x, w, bias = rand(*shape), rand(3, 3, shape[2], 4), rand(4)
    pads = ref.pad_amounts(shape[0], shape[1], stride, padding)
    expected = direct_conv(x, w, stride, pads) + bias
    y = ref.conv2d(x, w, bias, stride=stride, padding=padding, relu6=False)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ref.conv2d(x, w, bias, stride=stride, padding=padding), np.clip(expected, 0, 6),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_is_conv2d_with_diagonal_weights(stride):
    x, w, bias = rand(7, 9, 5), rand(3, 3, 5), rand(5)
    full = np.zeros((3, 3, 5, 5), np.float32)
    for c in range(5):
        full[:, :, c, c] = w[:, :, c]
    np.testing.assert_allclose(ref.conv_depthwise(x, w, bias, stride=stride, relu6=False),
                               ref.conv2d(x, full, bias, stride=stride, relu6=False), rtol=1e-5, atol=1e-5)


def test_pointwise_fc_pool_and_gemm():
    x, w, bias = rand(4, 3, 6), rand(6, 5), rand(5)
    np.testing.assert_allclose(ref.conv_pointwise(x, w, bias, relu6=False),
                               np.einsum("hwc,cd->hwd", x.astype(np.float64), w) + bias, rtol=1e-5, atol=1e-5)
    assert ref.conv_pointwise(x, w, bias).max() <= 6 and ref.conv_pointwise(x, w, bias).min() >= 0
    np.testing.assert_allclose(ref.global_avg_pool(x), x.astype(np.float64).mean(axis=(0, 1)), rtol=1e-6)
    v = rand(6)
    np.testing.assert_allclose(ref.fully_connected(v, w, bias), v.astype(np.float64) @ w + bias, rtol=1e-5,
                               atol=1e-5)
    a, b, c = rand(3, 4), rand(4, 2), rand(3, 2)
    np.testing.assert_allclose(ref.gemm(a, b, c, alpha=2.0, beta=-1.0), 2 * (a.astype(np.float64) @ b) - c,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ref.gemm(a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-6)
