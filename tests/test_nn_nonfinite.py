"""nnlib's contract for NaN and infinite inputs (nnlib.nonfinite, from semantics.md §4.1), on the
simulator against nnlib.reference applied to the operands as the QPU reads them (issue 14, item 14).

Where no NaN or infinity reaches an output it matches the reference within a loose 1e-5 relative bound
(the kernels' own tests hold the exact round-toward-zero bounds); where one does, the output is exactly
what the contract says: an infinity of the product's sign, +0 for a zero weight, 0 or 6 after ReLU6.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnlib
from nnlib import reference as ref
from nnlib.nonfinite import NonFiniteWarning, as_the_qpu_reads

RNG = np.random.default_rng(14)
NEGATIVE_NAN = np.frombuffer(np.uint32(0xFFC00000).tobytes(), np.float32)[0]



def nonzero(*shape):
    """Random float32 values at least 0.5 away from zero: no weight is a zero unless a test puts one."""
    x = RNG.uniform(0.5, 2.0, shape) * RNG.choice([-1.0, 1.0], shape)
    return x.astype(np.float32)


def assert_finite_part(y, expected, scale):
    finite = np.isfinite(expected)
    assert (np.abs(y[finite] - expected[finite]) <= 1e-5 * scale[finite] + 1e-30).all()


def test_gemm_reads_a_nan_as_an_infinity_and_warns(drv):
    a, b = nonzero(5, 9), nonzero(9, 20)
    a[0, 2], a[1, 5], a[2, 0] = np.nan, np.inf, -np.inf
    with pytest.warns(NonFiniteWarning, match=r"nnlib.matmul: a holds 1 NaN and 2 infinite values"):
        y, _ = nnlib.gemm(drv, a, b)
    with np.errstate(invalid="ignore"):
        numpy_result = a @ b
        expected = (as_the_qpu_reads(a).astype(np.float64) @ b.astype(np.float64))
    assert np.isnan(numpy_result[0]).all()                              # where numpy and the QPU differ
    assert not np.isnan(y).any()                                        # the QPU never gives NaN
    assert (y[:3] == expected[:3]).all() and np.isinf(y[:3]).all()      # one infinity per row: its sign
    assert_finite_part(y, expected, np.abs(np.where(np.isfinite(a), a, 0)).astype(np.float64) @ np.abs(b))


def test_gemm_an_infinity_times_a_zero_weight_is_zero(drv):
    a, b = nonzero(3, 8), nonzero(8, 16)
    a[1, 5] = np.inf
    b[5, 3] = 0.0
    with pytest.warns(NonFiniteWarning):
        y, _ = nnlib.gemm(drv, a, b)
    others = np.delete(a[1], 5).astype(np.float64) @ np.delete(b[:, 3], 5).astype(np.float64)
    with np.errstate(invalid="ignore"):
        assert np.isnan((a @ b)[1, 3])                                 # numpy: inf * 0 = NaN
    assert abs(y[1, 3] - others) <= 1e-5 * (np.abs(np.delete(a[1], 5)) @ np.abs(np.delete(b[:, 3], 5)))
    assert np.isposinf(np.delete(y[1], 3) * np.sign(b[5, np.arange(16) != 3])).all()


def test_opposite_infinities_in_one_sum_give_an_infinity_not_nan(drv):
    a, b = nonzero(2, 6), np.abs(nonzero(6, 16))
    a[0, 1], a[0, 4] = np.inf, -np.inf
    with pytest.warns(NonFiniteWarning):
        y, _ = nnlib.gemm(drv, a, b)
    assert np.isinf(y[0]).all() and not np.isnan(y).any()


def test_depthwise_relu6_clamps_infinities_and_nans_to_0_or_6(drv):
    x = nonzero(12, 12, 16)
    w, bias = nonzero(3, 3, 16), nonzero(16)
    # Four non-finite inputs far enough apart that no 3x3 window sees two of them.
    for (i, j), value in zip([(1, 1), (1, 8), (8, 1), (8, 8)], [np.inf, -np.inf, np.nan, NEGATIVE_NAN], strict=True):
        x[i, j, :] = value
    with pytest.warns(NonFiniteWarning, match=r"holds 32 NaN and 32 infinite values"):
        y, _ = nnlib.conv_depthwise(drv, x, w, bias, stride=1, relu6=True)
    expected = ref.conv_depthwise(as_the_qpu_reads(x).astype(np.float64), w.astype(np.float64),
                                  bias.astype(np.float64), 1, "tf_same", relu6=True)
    with np.errstate(invalid="ignore"):
        numpy_result = ref.conv_depthwise(x, w, bias, 1, "tf_same", relu6=True)
    assert np.isnan(numpy_result).any() and not np.isnan(y).any()
    reached = ~np.isfinite(ref.conv_depthwise(as_the_qpu_reads(x), w, bias, 1, "tf_same", relu6=False))
    assert reached.sum() == 4 * 9 * 16
    assert (y[reached] == expected[reached]).all() and set(np.unique(y[reached])) == {0.0, 6.0}
    scale = ref.conv_depthwise(np.abs(np.where(np.isfinite(x), x, 0)).astype(np.float64), np.abs(w).astype(np.float64),
                               np.abs(bias).astype(np.float64), 1, "tf_same", relu6=False)
    assert_finite_part(np.where(reached, 0, y), np.where(reached, 0, expected), scale)


def test_finite_inputs_do_not_warn(drv):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteWarning)
        nnlib.gemm(drv, nonzero(2, 3), nonzero(3, 4))
