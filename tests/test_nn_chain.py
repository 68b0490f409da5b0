"""Two kernels in one submission (nnlib.chain): the second reads what the first wrote, behind the
all-QPU barrier, on the simulator in strict mode (which raises on any stale cache read)."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import chain, depthwise
from nnlib import reference as ref

from .conftest import simulated_firmware

U = 2.0 ** -23
RNG = np.random.default_rng(21)



def depthwise_pair(drv, x, w1, b1, w2, b2, blocks):
    """Segments for dw(s1, same) then dw(s2, tf_same); the first writes its rows straight into the
    second's input buffer (dense rows between zero rows)."""
    first = depthwise.DepthwisePlan.of(x.shape, 1, "same")
    second = depthwise.DepthwisePlan.of((first.out_h, first.out_w, x.shape[2]), 2, "tf_same")
    assert first.w_pad == first.out_w, "no junk pixels may land in the second input's rows"
    arrays = [first.pad_input(x), *first.pad_weights(w1, b1), np.zeros((second.input_pixels, second.pitch),
                                                                       np.float32),
              *second.pad_weights(w2, b2), np.zeros((second.out_h, second.w_pad, second.c_pad), np.float32)]
    x_gpu, w1_gpu, b1_gpu, mid, w2_gpu, b2_gpu, y_gpu = (drv.copy(a) for a in arrays)
    blocks += [x_gpu, w1_gpu, b1_gpu, mid, w2_gpu, b2_gpu, y_gpu]
    inside = mid.address + 4 * second.lead * second.pitch
    segments = [
        chain.Segment(first.kernel(True),
                      first.constants(second.row_bytes, out_pitch=second.pitch),
                      first.tasks(x_gpu.address + 4 * first.lead * first.pitch, w1_gpu.address, b1_gpu.address,
                                  inside, second.row_bytes),
                      depthwise.TASK_WORDS, first.task_cost),
        chain.Segment(second.kernel(True),
                      second.constants(second.w_pad * second.c_pad * 4),
                      second.tasks(inside, w2_gpu.address, b2_gpu.address, y_gpu.address,
                                   second.w_pad * second.c_pad * 4), depthwise.TASK_WORDS, second.task_cost)]
    return segments, y_gpu, second


def test_two_depthwise_layers_in_one_submission(drv):
    x = RNG.standard_normal((8, 8, 32)).astype(np.float32)
    w1, w2 = RNG.standard_normal((3, 3, 32)).astype(np.float32), RNG.standard_normal((3, 3, 32)).astype(np.float32)
    b1, b2 = RNG.standard_normal(32).astype(np.float32), RNG.standard_normal(32).astype(np.float32)
    blocks: list = []
    try:
        segments, y_gpu, second = depthwise_pair(drv, x, w1, b1, w2, b2, blocks)
        calls = len(simulated_firmware(drv).calls)
        report = chain.run_chain(drv, segments)
        executes = [c for c in simulated_firmware(drv).calls[calls:] if c == "execute_qpu"]
        y = np.array(y_gpu[:, :second.out_w, :32])
    finally:
        for block in blocks:
            drv.free(block)
    assert len(executes) == 1                                # one submission for both layers
    middle = ref.conv_depthwise(x, w1, b1, 1, "same")
    expected = ref.conv_depthwise(middle, w2, b2, 2, "tf_same")
    assert y.shape == expected.shape == (4, 4, 32)
    # Each layer within 11 u of its own scale; the first layer's error passes through the second.
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert report.instructions > 0


def test_a_barrier_orders_the_segments(drv):
    """Without the barrier the second layer would read the middle buffer before it is written: the
    chain's code has one, on every QPU, between the two segments."""
    source = chain.chain_source([chain.Segment(depthwise.DepthwiseKernel(),
                                               [], [], 4)] * 2, [0x1000, 0x2000])
    assert source.count(f"srel({chain.ARRIVE})") == 1 and source.count(f"sacq({chain.ARRIVE})") == 11
    assert source.count("thrend") == 1 and ":s0_task" in source and ":s1_task" in source


def test_reading_a_buffer_again_after_it_was_rewritten_is_caught(drv):
    """The hazard the chain's rule avoids: a layer reads the middle buffer (its lines enter the TMU
    and L2 caches), another rewrites it by VDW, a third reads it: the hardware would return the old
    lines, and strict mode says so."""
    x = RNG.standard_normal((8, 8, 16)).astype(np.float32)
    w, b = RNG.standard_normal((3, 3, 16)).astype(np.float32), RNG.standard_normal(16).astype(np.float32)
    blocks: list = []
    try:
        segments, y_gpu, second = depthwise_pair(drv, x, w, b, w, b, blocks)
        early_read = chain.Segment(segments[1].kernel, segments[1].constants, segments[1].items, segments[1].words)
        with pytest.raises(Exception, match="stale"):
            chain.run_chain(drv, [early_read] + segments)
    finally:
        for block in blocks:
            drv.free(block)
