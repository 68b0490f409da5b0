"""3x3 full convolution (GEMM over patches) on the simulator against nnlib.reference.

Bound: each output sums 9 Cin products and the bias in order, every operation rounded toward zero:
|y - exact| <= (9 Cin + 2) u (|b| + sum |x w|), u = 2^-23 (ReLU6 only shrinks differences)."""

from __future__ import annotations

import numpy as np
import pytest

from driver import Driver
from nnlib import reference as ref
from nnlib.conv import conv2d

U = 2.0 ** -23
RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def drv():
    with Driver(backend="sim") as d:
        yield d


def check(y, x, w, bias, stride, padding):
    exact = ref.conv2d(x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64), stride, padding, False)
    scale = ref.conv2d(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), np.abs(bias).astype(np.float64),
                       stride, padding, False)
    exact = np.minimum(np.maximum(exact, 0), 6)
    assert y.shape == exact.shape and y.dtype == np.float32
    assert (np.abs(y - exact) <= (9 * x.shape[2] + 2) * U * scale + 1e-30).all()


@pytest.mark.parametrize("h, w, cin, cout, stride, padding", [
    (1, 1, 1, 1, 1, "same"), (5, 6, 3, 7, 2, "tf_same"), (8, 7, 4, 17, 1, (1, 0, 0, 1))])
def test_small_shapes(drv, h, w, cin, cout, stride, padding):
    x, wt, bias = RNG.standard_normal((h, w, cin)).astype(np.float32), \
        RNG.standard_normal((3, 3, cin, cout)).astype(np.float32), RNG.standard_normal(cout).astype(np.float32)
    y, _ = conv2d(drv, x, wt, bias, stride, padding)
    check(y, x, wt, bias, stride, padding)


def test_mobilenet_first_layer(drv):
    """conv 3x3/s2 3 -> 32 @ 224 -> 112 with TF SAME padding (the pixel of padding after only)."""
    x = RNG.uniform(-1, 1, (224, 224, 3)).astype(np.float32)
    wt = (RNG.standard_normal((3, 3, 3, 32)) * 0.3).astype(np.float32)
    bias = RNG.standard_normal(32).astype(np.float32) * 0.1
    y, report = conv2d(drv, x, wt, bias, 2, "tf_same")
    assert y.shape == (112, 112, 32)
    check(y, x, wt, bias, 2, "tf_same")
    assert 0 < y.mean() < 6 and report.seconds() > 0


def test_bad_arguments(drv):
    with pytest.raises(ValueError, match="do not match"):
        conv2d(drv, np.zeros((4, 4, 3), np.float32), np.zeros((3, 3, 4, 8), np.float32))
