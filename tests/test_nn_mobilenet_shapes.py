"""Every distinct layer shape of MobileNet v1 (read from the real model, nnlib.bench) on the
simulator (12 QPUs, strict mode), each kernel as that layer runs it (bias and ReLU6 fused, TF SAME
padding), within the round-toward-zero bounds of tests/nn_bounds.py. The first 3x3 convolution and
the 7x7x1024 pooling are in test_nn_conv.py and test_nn_pool.py.

Weights are scaled by 1/sqrt(fan-in), as a trained network's are, so that the outputs spread over
ReLU6's range instead of all clipping."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import bench, conv_depthwise, conv_pointwise, fully_connected, models

from .nn_bounds import assert_depthwise_within_bound, assert_gemm_within_bound, relu6

RNG = np.random.default_rng(29)
try:
    POINTWISE, DEPTHWISE, WHY = bench.mobilenet_layers("pw"), bench.mobilenet_layers("dw"), ""
except models.FetchError as error:             # the registry cannot be reached
    POINTWISE, DEPTHWISE, WHY = [], [], f"the MobileNet v1 model (its layer shapes) cannot be fetched: {error}"
needs_table = pytest.mark.skipif(not POINTWISE, reason=WHY)



def rand(*shape, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def test_the_table_has_every_kind_of_layer():
    if not POINTWISE:
        pytest.skip(WHY)
    assert len(POINTWISE) == 9 and len(DEPTHWISE) == 9
    assert ("pw 1024->1024 @7", 49, 1024, 1024) in POINTWISE
    assert ("dw s2 64 @112", 112, 64, 2) in DEPTHWISE


@needs_table
@pytest.mark.parametrize("name, pixels, cin, cout", POINTWISE or [("-", 1, 1, 1)], ids=lambda v: str(v))
def test_pointwise_layer(drv, name, pixels, cin, cout):
    size = int(np.sqrt(pixels))
    x = relu6(rand(size, size, cin, scale=2.0))               # the previous layer's ReLU6 output
    w, bias = rand(cin, cout, scale=cin ** -0.5), rand(cout, scale=0.5)
    y, report = conv_pointwise(drv, x, w, bias, relu6=True)
    assert y.shape == (size, size, cout)
    assert_gemm_within_bound(y.reshape(pixels, cout), x.reshape(pixels, cin), w, bias, relu6_applied=True)
    assert 0.05 < np.mean((y > 0) & (y < 6)) and report.instructions > 0   # not all clipped


@needs_table
@pytest.mark.parametrize("name, size, channels, stride", DEPTHWISE or [("-", 1, 1, 1)], ids=lambda v: str(v))
def test_depthwise_layer(drv, name, size, channels, stride):
    x = relu6(rand(size, size, channels, scale=2.0))
    w, bias = rand(3, 3, channels, scale=1 / 3), rand(channels, scale=0.5)
    y, report = conv_depthwise(drv, x, w, bias, stride, "tf_same", relu6=True)
    assert y.shape == (-(-size // stride), -(-size // stride), channels)
    assert_depthwise_within_bound(y, x, w, bias, stride, "tf_same", True)
    assert 0.05 < np.mean((y > 0) & (y < 6)) and report.instructions > 0


def test_classifier_layer(drv):
    """fc 1024 -> 1001, no ReLU6 (the logits)."""
    x = relu6(rand(1024, scale=2.0))
    w, bias = rand(1024, 1001, scale=1024 ** -0.5), rand(1001, scale=0.1)
    y, _ = fully_connected(drv, x, w, bias)
    assert y.shape == (1001,)
    assert_gemm_within_bound(y.reshape(1, -1), x.reshape(1, -1), w, bias)
