"""The expansion 1x1 convolution fused with the 3x3 depthwise convolution that reads it
(nnlib/expand.py): its schedule of input rows, the kernel on the simulator in strict mode against
numpy within a bound derived from the QPU's rounding, the plans that cannot run saying why, and the
compiler fusing a pair where its model says that pays (and the simulated time agreeing)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import nnlib
from nnlib import expand, reference
from nnlib.chain import Segment, run_chain
from nnlib.expand import ExpandDepthwisePlan, Schedule
from nnlib.tasks import free_all, keep

from .test_nn_network import U_NUMPY, U_QPU, check_every_layer, pw_dw_pw_graph

RNG = np.random.default_rng(23)


@pytest.mark.parametrize("stride, pad_top, height", [(s, p, h) for s, p in [(1, 1), (2, 0), (2, 1)]
                                                     for h in (2, 4, 6, 7) if s == 1 or h % 2 == 0])
def test_the_schedule_gives_each_output_row_its_window_rows(stride, pad_top, height):
    """Walked as the kernel walks it (input rows in order, roles moving down after each body), every
    output row is stored once, in order, with the contributions of exactly the input rows its
    window covers (row s y + kh - top of the image, for each kh inside it); the first store of a
    schedule with a dummy goes nowhere."""
    schedule = Schedule.of(stride, pad_top)
    out_h = height if stride == 1 else height // 2
    iterations = height if stride == 1 else out_h
    rows = {role: None for role in schedule.roles}      # role -> the output row it holds
    sums: dict[int, set[tuple[int, int]]] = {}
    next_row = 0 if not schedule.dummy else -1
    for role, value in schedule.before:
        rows[role] = next_row if value == "bias" or not schedule.dummy else -1
        next_row = max(next_row, rows[role] + 1)
    newest = schedule.roles[-1]
    stored = []
    r = 0
    for _ in range(iterations):
        for body_row in schedule.rows:
            for role, kh in body_row:
                if role == newest and kh == schedule.first(role):
                    rows[role] = next_row
                    next_row += 1
                sums.setdefault(rows[role], set()).add((r, kh))
            r += 1
        stored.append(rows[schedule.store])
        for dst, src in schedule.moves:
            rows[dst] = rows[src]
    if schedule.after:
        stored.append(rows[schedule.store])
    real = stored[1:] if schedule.dummy else stored
    assert real == list(range(out_h)) and (not schedule.dummy or stored[0] == -1)
    for y in range(out_h):
        window = {(stride * y + kh - pad_top, kh) for kh in range(3) if 0 <= stride * y + kh - pad_top < height}
        assert sums[y] == window, f"output row {y}"


def run_fused(drv, plan: ExpandDepthwisePlan, x, b, b_bias, w, w_bias, rows: int) -> tuple[np.ndarray, object]:
    """The kernel alone: x as dense rows (one pixel before, the touch's slack after), the output as
    a GEMM's A pack of `rows`-pixel tiles, read back as (out_h, out_w, C)."""
    tiles = -(-plan.out_h * plan.out_w // rows)
    tile_bytes = 4 * plan.c_pad * rows
    blocks: list = []
    try:
        source = keep(blocks, drv.alloc((1 + plan.height * plan.width + plan.slack_pixels, plan.pitch), np.float32))
        source[:] = 0
        source[1:1 + plan.height * plan.width, :plan.k] = x.reshape(-1, plan.k)
        weights = keep(blocks, drv.copy(plan.weights_block(b, b_bias, w, w_bias)))
        pack = keep(blocks, drv.alloc(tiles * tile_bytes // 4, np.float32))
        pack[:] = 0
        scratch = keep(blocks, drv.alloc(plan.scratch_bytes(rows) // 4, np.float32))
        lists = plan.task_lists(source.address + 4 * plan.pitch, weights.address, pack.address, rows, tile_bytes,
                                scratch.address)
        report = run_chain(drv, [Segment(plan.kernel(), plan.constants(rows, tile_bytes), lists, expand.TASK_WORDS,
                                         dealt=True)])
        words = np.array(pack).reshape(tiles, plan.c_pad, rows).transpose(0, 2, 1).reshape(-1, plan.c_pad)
    finally:
        free_all(drv, blocks)
    return words[:plan.out_h * plan.out_w, :plan.channels].reshape(plan.out_h, plan.out_w, plan.channels), report


@pytest.mark.parametrize("height, width, k, pitch, channels, stride, padding, pixels, qpus, rows", [
    (8, 8, 16, 16, 32, 1, (1, 1, 1, 1), 4, 12, 8),          # whole-row tiles, two segments a row
    (8, 12, 24, 32, 48, 1, (1, 1, 1, 1), 4, 8, 24),         # 8 padding channels dropped, 2-row tiles
    (8, 8, 16, 16, 32, 2, (0, 1, 0, 1), 2, 12, 4),          # TensorFlow's padding: a dummy first store
    (12, 12, 8, 16, 48, 2, (1, 1, 1, 1), 3, 12, 3),         # PyTorch's: tiles of one segment
    (6, 6, 16, 16, 16, 1, (1, 1, 1, 1), 6, 8, 6),           # one segment a row: both edges in one task
    (16, 16, 32, 32, 64, 2, (1, 1, 1, 1), 2, 12, 16),       # K = 32: two sums a row, the registers' most
])
def test_the_fused_kernel_against_numpy(drv, height, width, k, pitch, channels, stride, padding, pixels, qpus, rows):
    """y = depthwise(ReLU6(x B + b)): each expanded value within (K + 2) u of |x| |B| + |b| (the
    QPU's round-toward-zero fmul and fadd and numpy's rounding), each output within 11 u of the
    depthwise of their magnitudes plus the expanded values' bound through |w|."""
    plan = ExpandDepthwisePlan(height, width, k, pitch, channels, stride, padding, pixels, qpus)
    assert plan.fits() is None
    x = RNG.standard_normal((height, width, k)).astype(np.float32)
    b = (RNG.standard_normal((k, channels)) / np.sqrt(k)).astype(np.float32)
    b_bias, w_bias = (RNG.standard_normal(channels) * 0.5).astype(np.float32), RNG.standard_normal(channels)
    w = (RNG.standard_normal((3, 3, channels)) / 3).astype(np.float32)
    got, report = run_fused(drv, plan, x, b, b_bias, w, w_bias.astype(np.float32), rows)
    e = reference.relu6(x.reshape(-1, k).astype(np.float64) @ b + b_bias).reshape(height, width, channels)
    e_bound = (k + 2) * (U_QPU + U_NUMPY) * (np.abs(x).reshape(-1, k) @ np.abs(b) + np.abs(b_bias))
    expected = reference.conv_depthwise(e, w, w_bias, stride, padding)
    through = reference.conv_depthwise(e_bound.reshape(e.shape), np.abs(w), None, stride, padding, relu6=False)
    magnitude = reference.conv_depthwise(np.abs(e), np.abs(w), np.abs(w_bias), stride, padding, relu6=False)
    bound = 11 * (U_QPU + U_NUMPY) * magnitude + through
    assert got.shape == expected.shape and np.all(np.abs(got - expected) <= bound + 1e-7), np.abs(got - expected).max()
    assert report.modeled and report.seconds() > 0


@pytest.mark.parametrize("args, why", [
    ((56, 56, 40, 48, 144, 1, (1, 1, 1, 1), 4), "expansion weights and 3 rows of 4 sums do not fit"),
    ((56, 56, 16, 16, 144, 1, (1, 1, 1, 1), 7, 12), "12 QPUs x 7 VPM rows exceed the VPM's 64"),
    ((56, 56, 16, 16, 144, 1, (1, 1, 1, 1), 5), "5 pixels per segment do not divide a row of 56"),
    ((112, 112, 16, 16, 96, 2, (1, 1, 1, 1), 8, 8), "instruction cache"),
    ((55, 55, 16, 16, 96, 2, (1, 1, 1, 1), 4), "stride 2 reads two input rows per output row"),
])
def test_a_plan_that_cannot_run_says_why(args, why):
    assert why in ExpandDepthwisePlan(*args).fits()


def test_shapes_no_plan_takes_are_refused_before_planning():
    assert "one on every side" in ExpandDepthwisePlan.error(16, 16, 1, (0, 1, 0, 1))
    assert "stride 3" in ExpandDepthwisePlan.error(16, 16, 3, (1, 1, 1, 1))
    assert "pitch of 8" in ExpandDepthwisePlan.error(16, 8, 1, (1, 1, 1, 1))
    assert ExpandDepthwisePlan.best(56, 56, 16, 16, 96, 2, (1, 1, 1, 1)).fits() is None


@pytest.mark.parametrize("stride, size, channels, fused", [(2, 56, 96, True), (1, 14, 192, False)])
def test_the_compiler_fuses_where_the_model_says_it_pays(drv, stride, size, channels, fused):
    """A 1x1 convolution (24 -> C), the depthwise layer that reads it, a 1x1 after: at stride 2 over
    56 x 56 the fused kernel's model beats the two layers', at stride 1 over 14 x 14 (segments of
    2 pixels: 4 columns computed for every 2, the halo) it does not. Where fused, the expanded
    tensor has no buffer, every layer is within its bound in strict mode, and the simulated time
    is below the two layers' run apart (fuse=False)."""
    graph = pw_dw_pw_graph(stride, size, channels, 64)
    image = RNG.standard_normal((size, size, 24)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv) as net:
        kinds = [layer.kind for layer in net.layers]
        assert kinds == (["expand+dw", "pw"] if fused else ["pw", "depthwise", "pw"])
        assert ("expand" in net.tensors) != fused
        net(image)
        check_every_layer(net, graph, image)
        together = sum(line.report.seconds() for line in net.profile(image)[:len(kinds) - 1])
    with nnlib.compile(copy.deepcopy(graph), drv, fuse=False) as net:
        apart = sum(line.report.seconds() for line in net.profile(image)[:2])
    assert (together < 0.8 * apart) if fused else together == apart
