"""Global average pooling on the simulator (strict) against nnlib.reference.

Bound: the QPU sums the P pixel values in order (P - 1 additions rounded toward zero, relative
error below u = 2^-23 each) and multiplies by 1/P rounded to nearest on the host (u / 2) and
toward zero on the QPU (u): |y - mean| <= (P + 2) u mean(|x|)."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib import global_avg_pool
from nnlib import reference as ref

U = 2.0 ** -23
RNG = np.random.default_rng(9)



@pytest.mark.parametrize("h, w, c", [(1, 1, 1), (7, 7, 1024), (3, 5, 17), (2, 9, 40), (14, 14, 16)])
def test_global_avg_pool(drv, h, w, c):
    x = RNG.standard_normal((h, w, c)).astype(np.float32)
    y, report = global_avg_pool(drv, x)
    exact = x.astype(np.float64).mean(axis=(0, 1))
    bound = (h * w + 2) * U * np.abs(x.astype(np.float64)).mean(axis=(0, 1))
    assert y.shape == (c,) and y.dtype == np.float32
    assert (np.abs(y - exact) <= bound + 1e-30).all()
    np.testing.assert_allclose(y, ref.global_avg_pool(x), rtol=1e-5, atol=1e-6)
    assert report.instructions > 0


def test_too_many_pixels(drv):
    with pytest.raises(ValueError, match="513 pixels"):
        global_avg_pool(drv, np.zeros((513, 1, 1), np.float32))


def test_kernel_tests_run_on_the_chosen_backend_and_are_marked_hw(drv, request):
    """Issue 13 item 4: the shared `drv` fixture is on `--backend` (sim here, mailbox on a Pi), and every
    test that takes it carries the `hw` marker, so `pytest --backend mailbox -m hw` runs them on a Pi."""
    assert request.node.get_closest_marker("hw") is not None
    assert drv.backend_name == request.config.getoption("--backend")
