"""The depthwise kernel on the simulator (12 QPUs, strict mode) against nnlib.reference, within the
round-toward-zero bound of tests/nn_bounds.py."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import conv_depthwise
from nnlib.depthwise import PIXELS, DepthwisePlan, load_order, window_columns, window_loads
from nnlib.tasks import deal

from .nn_bounds import assert_depthwise_within_bound as assert_within_bound

RNG = np.random.default_rng(5)



def rand(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("h, w, c, stride, padding", [
    (1, 1, 1, 1, "same"), (5, 7, 3, 1, "tf_same"), (6, 6, 17, 2, "tf_same"), (7, 5, 16, 2, "same"),
    (9, 4, 33, 1, (0, 1, 2, 0)), (8, 9, 15, 2, (1, 1, 1, 1))])
def test_small_shapes(drv, h, w, c, stride, padding):
    x, wt, bias = rand(h, w, c) * 2, rand(3, 3, c), rand(c)
    y, report = conv_depthwise(drv, x, wt, bias, stride, padding, relu6=True)
    assert_within_bound(y, x, wt, bias, stride, padding, True)
    assert report.modeled and report.instructions > 0


def test_without_relu6_and_bias(drv):
    x, wt = rand(6, 5, 20) * 4, rand(3, 3, 20)
    y, _ = conv_depthwise(drv, x, wt, None, 1, "same", relu6=False)
    assert y.min() < 0 and y.max() > 6
    assert_within_bound(y, x, wt, np.zeros(20, np.float32), 1, "same", False)


def test_bad_arguments(drv):
    with pytest.raises(ValueError, match="do not match"):
        conv_depthwise(drv, rand(4, 4, 3), rand(3, 3, 4))
    with pytest.raises(ValueError, match="stride 3"):
        conv_depthwise(drv, rand(4, 4, 3), rand(3, 3, 3), stride=3)


@pytest.mark.parametrize("h, w, c, stride, qpus", [(10, 23, 40, 1, 3), (13, 30, 24, 2, 1), (16, 16, 32, 1, 12)])
def test_long_rows_on_few_qpus(drv, h, w, c, stride, qpus):
    """Rows of several iterations (the loop that requests the next iteration's loads) and tasks of
    several rows."""
    x, wt, bias = rand(h, w, c), rand(3, 3, c), rand(c)
    y, report = conv_depthwise(drv, x, wt, bias, stride, "same", relu6=False, n_qpus=qpus)
    assert_within_bound(y, x, wt, bias, stride, "same", False)
    assert sum(q.instructions > 100 for q in report.per_qpu) == qpus       # the others idle to the end


@pytest.mark.parametrize("stride, pairs, shift", [(1, False, 0), (2, False, 0), (1, True, 0), (1, True, 1),
                                                   (2, True, 0), (2, True, 1)])
def test_load_order_feeds_every_product_once(stride, pairs, shift):
    """Every (pixel, tap) product of an iteration comes from exactly one load (with float16 pairs
    one of a load's two halves, the window starting `shift` columns early), and no two products in
    a row add to the same sum (rule 1: a regfile write is not readable by the next instruction)
    within a load where its halves allow (where they do not, and between loads, the kernel puts a
    nop between)."""
    order = load_order(stride, pairs, shift)
    products = [(p, 3 * load.row + kw) for load in order for p, kw, _ in load.products]
    assert sorted(products) == [(p, t) for p in range(PIXELS) for t in range(9)]
    for load in order:
        for p, kw, half in load.products:
            column = 2 * load.column + half - shift if pairs else load.column
            assert column == p * stride + kw and (pairs or half == 0)
    assert len({(load.row, load.column) for load in order}) == len(order) == 3 * window_loads(stride, pairs, shift)
    assert window_loads(stride, pairs, shift) == (-(-(window_columns(stride) + shift) // 2) if pairs
                                                  else window_columns(stride))
    for load in order:                       # within a load: alternating sums, but for one repeat at most
        sums = [p for p, _, _ in load.products]
        assert sum(a == b for a, b in zip(sums, sums[1:], strict=False)) <= (1 if pairs else 0)


def test_deal_balances_by_cost():
    items = [[5], [1], [1], [1], [1], [1]]
    lists = deal(items, 2, cost=lambda item: item[0])
    assert lists == [[[5]], [[1]] * 5]
    assert deal(items, 4) == [items[0::4], items[1::4], items[2::4], items[3::4]]


def test_the_wide_kernel_only_at_stride_1_and_pairs_only_on_even_rows():
    """The wide kernel's column offsets fill regfile B at stride 1 already; a pair never straddles
    two rows."""
    with pytest.raises(ValueError, match="8 pixels per iteration: 4, or 8 at stride 1"):
        DepthwisePlan.of((8, 8, 16), 2, "tf_same", pixels=8)
    with pytest.raises(ValueError, match="float16 pixel pairs need an even width, not 7"):
        DepthwisePlan.of((7, 7, 16), 1, "tf_same", pairs=True)
    assert DepthwisePlan.of((8, 8, 16), 1, "tf_same", pixels=8).iterations == 1
