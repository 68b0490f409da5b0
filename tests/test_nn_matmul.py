"""The GEMM-based kernels on the simulator (12 QPUs, strict mode) against nnlib.reference, within
the round-toward-zero bounds of tests/nn_bounds.py."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib
from nnlib import matmul as G
from nnlib import reference as ref

from .conftest import simulated_firmware
from .nn_bounds import assert_gemm_within_bound as assert_within_rtz_bound

RNG = np.random.default_rng(11)



def rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (15, 17, 3), (17, 15, 16), (24, 16, 5), (25, 33, 40), (49, 1, 7)])
def test_gemm_any_shape(drv, m, n, k):
    a, b = rand(m, k), rand(k, n)
    y, report = G.gemm(drv, a, b)
    assert y.shape == (m, n)
    assert_within_rtz_bound(y, a, b)
    assert report.modeled and report.instructions > 0


def test_gemm_alpha_beta(drv):
    a, b, c = rand(20, 9), rand(9, 18), rand(20, 18)
    y, _ = G.gemm(drv, a, b, c, alpha=0.5, beta=-2.0)
    np.testing.assert_allclose(y, ref.gemm(a, b, c, alpha=0.5, beta=-2.0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows, overlap, weights", [(7, True, "float32"), (30, False, "float32"),
                                                     (6, True, "float16"), (1, True, "float32")])
def test_gemm_beta_on_the_qpus(drv, rows, overlap, weights):
    """The accumulators start from beta * C's tile (one fmul, then the K products): within the
    bound with beta * C in the bias's place; several tiles per QPU."""
    m, n, k = 3 * rows + 1, 50, 11
    a, b, c = rand(m, k), rand(k, n), rand(m, n)
    y, _ = G.gemm(drv, a, b, c, beta=0.75, weights=weights, rows=rows, overlap=overlap, n_qpus=3)
    b_used = G.float16_weights(b) if weights == "float16" else b
    assert_within_rtz_bound(y, a, b_used, np.float32(0.75) * c)
    with pytest.raises(ValueError, match="shape"):
        G.gemm(drv, a, b, c[1:], beta=1.0)


@pytest.mark.parametrize("rows, overlap, weights, bias", [(7, True, "float32", True), (30, False, "float32", True),
                                                           (6, True, "float16", True), (5, True, "float32", False),
                                                           (49, False, "float32", True), (49, False, "float32", False)])
def test_a_residual_added_on_the_qpus(drv, rows, overlap, weights, bias):
    """a @ b + bias + residual (MobileNet v2's skip connection): the accumulators start from the bias
    plus the residual's tile (one fadd), then the K products: within the bound with bias + residual
    in the bias's place; several tiles per QPU, the residual's rows read as the output's."""
    m, n, k = 3 * rows + 1, 40, 13
    a, b, r = rand(m, k), rand(k, n), rand(m, n)
    c = rand(n) if bias else None
    y, _ = G.matmul(drv, a, b, c, weights=weights, rows=rows, overlap=overlap, n_qpus=3, residual=r)
    b_used = G.float16_weights(b) if weights == "float16" else b
    assert_within_rtz_bound(y, a, b_used, (c if bias else np.float32(0)) + r)
    with pytest.raises(ValueError, match="residual"):
        G.matmul(drv, a, b, c, residual=r, relu6=True)
    with pytest.raises(ValueError, match=r"residual \(40, 40\) is not the product's shape"):
        G.matmul(drv, a, b, residual=rand(40, 40))


def test_the_residual_kernel_holds_its_bias_where_relu6_would():
    with pytest.raises(ValueError, match="residual goes without accumulate and ReLU6"):
        G.GemmKernel(rows=4, residual=True, relu6=True)
    with pytest.raises(ValueError, match="rows=50"):
        G.GemmKernel(rows=50, residual=True, overlap=False)
    assert G.max_slots(False, False, residual=True) == 49     # 7 x 7 pixels: one tile
    assert G.GemmKernel(rows=4, residual=True).task_words == G.TASK_WORDS + 1


@pytest.mark.parametrize("unroll, prefetch, rows", [(1, 1, 2), (3, 2, 7), (2, 4, 24)])
def test_kernel_variants(drv, unroll, prefetch, rows):
    a, b = rand(30, 11), rand(11, 20)
    y, _ = G.matmul(drv, a, b, rows=rows, unroll=unroll, prefetch=prefetch)
    assert_within_rtz_bound(y, a, b)


def test_pointwise_with_bias_and_relu6(drv):
    x, w, bias = rand(5, 7, 13) * 3, rand(13, 20), rand(20)
    y, _ = nnlib.conv_pointwise(drv, x, w, bias, relu6=True)
    expected = ref.conv_pointwise(x, w, bias, relu6=True)
    assert y.shape == (5, 7, 20)
    assert y.min() >= 0 and y.max() <= 6 and (y == 6).any() and (y == 0).any()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-4)
    raw, _ = nnlib.conv_pointwise(drv, x, w, bias, relu6=False)
    assert_within_rtz_bound(raw.reshape(35, 20), x.reshape(35, 13), w, bias)


def test_fully_connected(drv):
    x, w, bias = rand(64), rand(64, 37), rand(37)
    y, _ = nnlib.fully_connected(drv, x, w, bias)
    assert y.shape == (37,)
    assert_within_rtz_bound(y.reshape(1, -1), x.reshape(1, -1), w, bias)


def test_bad_shapes(drv):
    with pytest.raises(ValueError, match="gemm: shapes .3, 4. and .5, 2. do not multiply"):
        G.gemm(drv, rand(3, 4), rand(5, 2))
    with pytest.raises(ValueError, match="gemm: A is 0 x 4 and B 4 x 16: M, K and N must each be at least 1"):
        G.gemm(drv, np.zeros((0, 4), np.float32), rand(4, 16))     # issue 14 item 17: not numpy's message
    with pytest.raises(ValueError, match="matmul: A is 3 x 4 and B 4 x 0"):
        G.matmul(drv, rand(3, 4), np.zeros((4, 0), np.float32))
    with pytest.raises(ValueError, match="rows=51"):
        G.GemmKernel(rows=51, overlap=False)


def test_package_api(drv):
    import nnlib
    a, b = rand(5, 6), rand(6, 7)
    y, report = nnlib.gemm(drv, a, b)
    assert_within_rtz_bound(y, a, b)
    assert report.seconds(250e6) > 0


def test_nothing_left_allocated(drv):
    before = simulated_firmware(drv).allocated_bytes()
    G.gemm(drv, rand(8, 8), rand(8, 8))
    assert simulated_firmware(drv).allocated_bytes() == before


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (17, 33, 9), (40, 64, 50)])
def test_float16_weights(drv, m, n, k):
    """B stored as float16 and unpacked by r4's 16a/16b unpack as the fmul reads it: the product is
    that of A and B rounded to float16, within the same round-toward-zero bound."""
    a, b, bias = rand(m, k), rand(k, n), rand(n)
    y, _ = G.matmul(drv, a, b, bias, weights="float16")
    b16 = G.float16_weights(b)
    assert_within_rtz_bound(y, a, b16, bias)
    assert np.abs(y - (a @ b + bias)).max() > 0          # the weights really were rounded


@pytest.mark.parametrize("grid", [(3, 4), (1, 12), (2, 6)])
def test_grids_of_qpus(drv, grid):
    """Each grid gives every QPU its own tiles (found through qpu_num) and covers C exactly once."""
    a, b = rand(60, 20), rand(20, 200)
    plan = G.GemmPlan(60, 200, 20, rows=5, unroll=4, grid=grid)
    lists = plan.task_lists()
    assert len(lists) == 12 and all(lists)
    tiles = sorted(t for tiles in lists for t in tiles)
    assert tiles == sorted({(i, j) for i in range(0, 60, 5) for j in range(0, 208, 16)})
    y, _ = G.matmul(drv, a, b, rows=5, unroll=4, grid=grid)
    assert_within_rtz_bound(y, a, b)


def test_balanced_dealing_evens_out_what_a_grid_leaves_idle(drv):
    """32 strips on a 1 x 12 grid give some QPUs 12 tiles and others 8; balanced dealing (row tile
    by row tile, round-robin) gives each 10 or 11, covers C once, and the planner takes it for
    MobileNet v1's 14 x 14 pointwise layers, whose tiles the grid left 11 % idle."""
    grid = G.GemmPlan(196, 512, 512, rows=49, unroll=1, grid=(1, 12), overlap=False)
    balanced = G.GemmPlan(196, 512, 512, rows=49, unroll=1, grid=None, overlap=False, balanced=True)
    assert sorted({len(t) for t in grid.task_lists()}) == [8, 12]
    lists = balanced.task_lists()
    assert sorted({len(t) for t in lists}) == [10, 11]
    assert sorted(t for tiles in lists for t in tiles) == sorted(t for tiles in grid.task_lists() for t in tiles)
    # At any step the 12 QPUs work on one row tile's strips (or two, across a row tile's end).
    assert all(len({lists[q][s][0] for q in range(12) if s < len(lists[q])}) <= 2 for s in range(11))
    assert G.plan_gemm(196, 512, 512, rows_allowed=(49,)).balanced
    a, b, bias = rand(60, 20), rand(20, 200), rand(200)
    y, _ = G.matmul(drv, a, b, bias, rows=5, unroll=4, balanced=True)
    assert_within_rtz_bound(y, a, b, bias)
    with pytest.raises(ValueError, match="without a grid"):
        G.GemmPlan(60, 200, 20, rows=5, unroll=4, grid=(3, 4), balanced=True)


@pytest.mark.parametrize("rows, overlap, weights", [(3, True, "float32"), (7, True, "float32"), (24, True, "float32"),
                                                     (12, True, "float16"), (37, False, "float32"),
                                                     (50, False, "float32"), (13, False, "float16"),
                                                     (24, True, "float16"), (50, False, "float16")])
def test_stores_with_and_without_overlap(drv, rows, overlap, weights):
    """Several tiles per QPU: with overlap a tile's chunks go out between the next tile's k-loop
    phases (the first tile's idle set to the scratch rows, the last tile's after the task loop);
    without, at the tile's end. Bias and ReLU6 on both (ReLU6's bounds in ra24/rb24 or r1/r2)."""
    m, n, k = 3 * rows + 2, 70, 13
    a, b, bias = rand(m, k) * 2, rand(k, n), rand(n)
    y, _ = G.matmul(drv, a, b, bias, relu6=True, weights=weights, rows=rows, overlap=overlap, n_qpus=3)
    b_used = G.float16_weights(b) if weights == "float16" else b
    assert_within_rtz_bound(y, a, b_used, bias, relu6_applied=True)
    assert (y == 0).any() and (y == 6).any() and ((y > 0) & (y < 6)).any()


def test_kernel_registers_bound_the_rows():
    with pytest.raises(ValueError, match="rows=25"):
        G.GemmKernel(rows=25, overlap=True)
    with pytest.raises(ValueError, match="rows=51"):
        G.GemmKernel(rows=51, halves=2, overlap=False)
    with pytest.raises(ValueError, match="rows=1: 2 to 24 with halves=2"):       # two products of one row in a row
        G.GemmKernel(rows=1, halves=2)
    assert G.GemmKernel(rows=50, unroll=1, halves=2, overlap=False).reads == 100


def test_distinct_plans_keep_the_first_of_each_tiling():
    plans = G.gemm_plans(100, 192, 96)
    assert plans[0] == G.plan_gemm(100, 192, 96)
    assert [p.clocks for p in plans] == sorted(p.clocks for p in plans)      # cheapest first
    chosen = G.distinct_plans(plans, 6)
    kinds = [(p.rows, p.overlap, p.grid, p.balanced) for p in chosen]
    assert len(chosen) == 6 and len(set(kinds)) == 6
    for plan in chosen:                       # each is the cheapest of its kind
        assert plan == next(p for p in plans if (p.rows, p.overlap, p.grid, p.balanced) == (
            plan.rows, plan.overlap, plan.grid, plan.balanced))


def test_tune_keeps_the_fastest_measured_tiling(drv):
    """tune=N runs the N cheapest distinct tilings and keeps the one that took the fewest cycles,
    which here is not the cost model's first (100 x 96 by 96 x 192: about 0.86x its cycles); a
    second call runs only the tiling it chose. On the simulator, whose times repeat exactly."""
    firmware = simulated_firmware(drv)
    a, b = rand(100, 96), rand(96, 192)
    _, untuned = G.matmul(drv, a, b)
    y, tuned = G.matmul(drv, a, b, tune=6)
    assert_within_rtz_bound(y, a, b)
    measured = []
    for plan in G.distinct_plans(G.gemm_plans(100, 192, 96), 6):
        _, report = G.matmul(drv, a, b, rows=plan.rows, unroll=plan.unroll, grid=plan.grid, overlap=plan.overlap,
                             balanced=plan.balanced)
        measured.append(report.cycles)
    assert tuned.cycles == min(measured) < untuned.cycles == measured[0]
    calls = len(firmware.calls)
    y_again, again = G.matmul(drv, a, b, tune=6)
    assert firmware.calls[calls:].count("execute_qpu") == 1
    assert again.cycles == tuned.cycles and np.array_equal(y_again, y)
    with pytest.raises(ValueError, match="tune=-1"):
        G.matmul(drv, a, b, tune=-1)
