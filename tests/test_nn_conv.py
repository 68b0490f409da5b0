"""3x3 full convolution (patches gathered by the QPUs, then a GEMM) on the simulator against nnlib.reference.

Bound: each output sums 9 Cin products and the bias in order, every operation rounded toward zero:
|y - exact| <= (9 Cin + 2) u (|b| + sum |x w|), u = 2^-23 (ReLU6 only shrinks differences)."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import conv2d, im2col
from nnlib import reference as ref
from nnlib.matmul import float16_weights, plan_gemm

U = 2.0 ** -23
RNG = np.random.default_rng(3)



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


@pytest.mark.parametrize("cin, stride, weights", [(5, 1, "float16"), (3, 2, "float16"), (8, 2, "float32")])
def test_gathered_on_the_gpu(drv, cin, stride, weights):
    """The patches are gathered by the QPUs into the GEMM's A pack, in the same submission."""
    x = RNG.standard_normal((9, 11, cin)).astype(np.float32)
    wt = RNG.standard_normal((3, 3, cin, 21)).astype(np.float32)
    bias = RNG.standard_normal(21).astype(np.float32)
    y, report = conv2d(drv, x, wt, bias, stride, (1, 1, 0, 2), weights=weights)
    used = float16_weights(wt) if weights == "float16" else wt
    check(y, x, used, bias, stride, (1, 1, 0, 2))
    assert report.modeled


@pytest.mark.parametrize("stride, halves, rows", [(1, 1, 16), (2, 2, 16), (1, 1, 20), (1, 2, 6)])
def test_lane_table_and_offsets_address_the_windows(stride, halves, rows):
    """Reading the padded input at each lane's window corner + each k's offset gives the patches
    of nnlib.reference.windows, lane i of the group at row g of tile t holding pixel t rows + g + i
    (up to the group's width: 16, or what the tile has left)."""
    x = RNG.standard_normal((7, 6, 3)).astype(np.float32)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    windows = ref.windows(x, stride, "same").reshape(-1, 27)
    plan = plan_gemm(len(windows), 32, 27, halves, rows=rows)
    corners = im2col.window_corners(*ref.windows(x, stride, "same").shape[:2], padded.shape[1] * 3, 3, stride, 0)
    table = im2col.lane_table(corners, plan)
    offsets = im2col.patch_offsets(3, padded.shape[1] * 3, 3, 3, 32)
    flat = padded.reshape(-1)
    assert len(table) == len(im2col.groups(plan)) == -(-len(windows) // rows) * -(-rows // 16)
    for (t, g, width), lanes in zip(im2col.groups(plan), table, strict=True):
        for lane, corner in enumerate(lanes):
            pixel = min(t * rows + g + min(lane, width - 1), len(windows) - 1)
            gathered = [flat[(corner + o) // 4] if o != im2col.ZERO else 0 for o in offsets]
            np.testing.assert_array_equal(gathered, list(windows[pixel]) + [0] * 5)
