"""Programs nobody on this team wrote, run unmodified and in place, against what they got on a Pi:
py-videocore's own test suite and SGEMM example (through driver.compat), QPULib's HeatMap kernel. They
are someone else's (../shared/testvectors, see SOURCES.md): the tests skip with the reason when absent."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from driver import Driver, foreign
from driver.diagnose import DriverError
from simulator.machine import SimulationError, SimulationWarning
from vc4common.timing import param

from .conftest import ROOT, shared_vector

BAND = (0.8, 1.2)          # issue 17: within ±20 % of the published times, one timing model for all


@pytest.fixture(scope="module")
def py_videocore():
    return shared_vector("py-videocore")


@pytest.mark.parametrize("strict", ["1", "0"], ids=["strict", "non-strict"])
def test_py_videocore_suite_passes_unmodified(py_videocore, strict):
    """py-videocore's 95 tests, which passed on a Pi, through driver.compat on the simulator."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(py_videocore)]), "VC4KIT_BACKEND": "sim",
           "VC4KIT_STRICT": strict}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.pyvideocore_plugin", "-p",
                             "no:cacheprovider", "--rootdir", str(py_videocore), str(py_videocore / "tests")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "95 passed" in result.stdout.splitlines()[-1], result.stdout[-500:]


def test_py_videocore_sgemm_is_right_and_calibrated(py_videocore):
    script = py_videocore / "examples" / "sgemm.py"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SimulationWarning)
        run = foreign.run_py_videocore_script(script, strict=False)
    # It relies on a VDR pitch beyond the guide's 13 bits (semantics.md §8.5); nothing else is flagged.
    assert {str(w.message).split(": ", 1)[1] for w in caught} == {
        "a VDR extended pitch of 12288 bytes, beyond the guide's 13 bits (policy: bits 15:0, as programs on "
        "a Pi use) (unknown: semantics.md §8.5)"}
    # C = A.B + C with K = 363 standard-normal terms: each fmul and fadd rounds toward zero (2^-23
    # relative), so |error| <= 2 K 2^-23 sum|a b| ~ 2 * 363 * 2^-23 * 232 ~ 0.02 at worst.
    assert foreign.printed_number(run.output, "maximum absolute error") < 0.02
    assert len(run.reports) == 1
    gflops = foreign.sgemm_flops() / run.reports[0].seconds() / 1e9
    assert BAND[0] <= foreign.SGEMM_PUBLISHED_GFLOPS / gflops <= BAND[1], f"{gflops:.2f} GFLOPS modeled"


def test_py_videocore_sgemm_in_strict_mode_names_the_undocumented_pitch(py_videocore):
    with pytest.raises(SimulationError, match="extended pitch of 12288 bytes"):
        foreign.run_py_videocore_script(py_videocore / "examples" / "sgemm.py", strict=True)


@pytest.fixture(scope="module")
def heat_grid():
    shared_vector("qpulib", "heatmap_step.hex")
    rng = np.random.default_rng(1)
    src = np.zeros((foreign.HEIGHT + 2, foreign.NCOLS), np.float32)
    src[:, :foreign.WIDTH] = rng.random((foreign.HEIGHT + 2, foreign.WIDTH), dtype=np.float32)
    return src


@pytest.mark.parametrize("qpus", [1, 2, 4])
def test_qpulib_heatmap_is_right_and_calibrated(heat_grid, qpus):
    with Driver(backend="sim") as drv:
        run = foreign.run_heatmap(drv, qpus, heat_grid)
    reference = foreign.heatmap_reference(heat_grid)
    # Nine float32 operations per cell, each within one rounding (round toward zero on the QPU).
    np.testing.assert_allclose(run.dst, reference, rtol=1e-6, atol=2e-7)
    assert np.array_equal(run.dst[0], heat_grid[0]) and np.array_equal(run.dst[:, foreign.WIDTH:],
                                                                        heat_grid[:, foreign.WIDTH:])
    seconds = (run.report.seconds() + param("mailbox_call_seconds")) * foreign.HEATMAP_STEPS
    published = foreign.HEATMAP_PUBLISHED_S[qpus]
    assert BAND[0] <= seconds / published <= BAND[1], f"{seconds:.2f} s modeled against {published} s"


def test_a_missing_foreign_program_is_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(foreign, "TESTVECTORS", tmp_path)
    with pytest.raises(DriverError, match="heatmap_step.hex is not there.*VC4KIT_SHARED"):
        foreign.foreign_path("qpulib", "heatmap_step.hex")
