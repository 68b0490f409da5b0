"""GPU_FFT 3.0's own shader binaries (read in place from ../shared/testvectors/hello_fft_v3) through the
Driver on the simulator, compared with numpy.fft; the error bound is 2x the relative RMS error
gpu_fft.txt publishes for real hardware (hello_fft's measurement, reproduced in the last test)."""

from __future__ import annotations

import numpy as np
import pytest

from driver import Driver, DriverError
from driver.gpu_fft import LAYOUTS, GpuFft, buffer_points, gpu_fft, twiddles

from .conftest import shared_vector

# gpu_fft.txt, "Accuracy": typical relative RMS error in ppm on a Pi, by log2(N).
PUBLISHED_PPM = {8: 0.33, 9: 0.46, 10: 0.52, 11: 0.59, 12: 0.78, 13: 0.83, 14: 0.92, 15: 0.98, 16: 1.0, 17: 1.3}


@pytest.fixture(scope="module")
def folder():
    return shared_vector("hello_fft_v3")


def relative_rms(y: np.ndarray, reference: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.abs(y - reference) ** 2) / np.sum(np.abs(reference) ** 2)))


def check_against_numpy(log2_n: int, batch: int, inverse: bool, folder) -> None:
    n = 1 << log2_n
    rng = np.random.default_rng(log2_n * 10 + batch)
    x = (rng.standard_normal((batch, n)) + 1j * rng.standard_normal((batch, n))).astype(np.complex64)
    y = gpu_fft(x, inverse=inverse, folder=folder)
    exact = x.astype(np.complex128)
    reference = np.fft.ifft(exact) * n if inverse else np.fft.fft(exact)
    assert y.shape == x.shape and y.dtype == np.complex64
    error = relative_rms(y, reference)
    assert error < 2 * PUBLISHED_PPM[log2_n] * 1e-6, f"{error * 1e6:.3f} ppm"
    # Every transform of the batch is right, not only on average.
    for j in range(batch):
        assert relative_rms(y[j], reference[j]) < 2 * PUBLISHED_PPM[log2_n] * 1e-6


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
@pytest.mark.parametrize("log2_n", [8, 9, 10, 11, 12])
def test_matches_numpy(log2_n, inverse, batch, folder):
    check_against_numpy(log2_n, batch, inverse, folder)


@pytest.mark.slow
@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
@pytest.mark.parametrize("log2_n", [13, 14, 15, 16, 17])
def test_matches_numpy_large(log2_n, inverse, folder):
    check_against_numpy(log2_n, 1, inverse, folder)


@pytest.mark.parametrize("log2_n", [8, 12])
def test_hello_fft_measurement_matches_the_published_error(log2_n, folder):
    """hello_fft's own test as `hello_fft.bin log2_N` runs it: one inverse transform of a tone at
    frequency 1, compared with the cosine."""
    n, batch = 1 << log2_n, 1
    x = np.zeros((batch, n), np.complex64)
    for j in range(batch):
        x[j, j + 1] += 0.5
        x[j, n - j - 1] += 0.5
    y = gpu_fft(x, inverse=True, folder=folder)
    i = np.arange(n)
    cosines = np.stack([np.cos(2 * np.pi * (j + 1) * i / n) for j in range(batch)])
    error = relative_rms(y, cosines)
    # The simulator's rounding reproduces the hardware's figure to its two published digits.
    assert error == pytest.approx(PUBLISHED_PPM[log2_n] * 1e-6, rel=0.05)


def test_one_dimensional_input_and_a_shared_driver(folder):
    x = np.exp(2j * np.pi * 3 * np.arange(256) / 256).astype(np.complex64)
    with Driver(backend="sim") as drv:
        y = gpu_fft(x, driver=drv, folder=folder)
        assert drv.backend.firmware.allocated_bytes() == 0     # the batch gave its memory back
    assert y.shape == (256,)
    assert np.argmax(np.abs(y)) == 3 and abs(y[3]) == pytest.approx(256, rel=1e-6)


def test_short_batches_use_the_direct_path_and_long_ones_the_mailbox(folder):
    with Driver(backend="sim") as drv:
        firmware = drv.backend.firmware
        GpuFft(drv, 8, batch=2, folder=folder).execute(np.zeros((2, 256), np.complex64))
        assert "execute_qpu" not in firmware.calls and firmware.registers.completed == 8
        GpuFft(drv, 12, batch=6, folder=folder).execute(np.zeros((6, 4096), np.complex64))
        assert firmware.calls.count("execute_qpu") == 1


def test_layouts_give_the_twiddle_table_sizes():
    # Shared and per-QPU sizes in units of 16 complex values, and the pass counts, for every length.
    sizes = {log2_n: twiddles(log2_n)[1:] for log2_n in LAYOUTS}
    assert sizes == {8: (2, 1), 9: (3, 1), 10: (4, 2), 11: (6, 2), 12: (3, 1), 13: (4, 1), 14: (5, 1),
                     15: (6, 2), 16: (8, 2), 17: (5, 1), 18: (6, 2), 19: (7, 2), 20: (8, 2), 21: (10, 2),
                     22: (12, 2)}
    table, shared, unique = twiddles(8)
    assert len(table) == 2 * 16 * (shared + 8 * unique)
    # Base rotations are unit vectors; QPU q's table is the base table turned by -2*pi*q/N per stage.
    pairs = table.reshape(-1, 2)
    np.testing.assert_allclose(np.hypot(pairs[:16, 0], pairs[:16, 1]), 1, rtol=1e-6)
    assert buffer_points(256) == 512 and buffer_points(4096) == 4096 + 512


def test_bad_lengths_are_refused():
    with pytest.raises(DriverError, match="N=100 is not a power of 2"):
        gpu_fft(np.zeros(100, np.complex64))
    with pytest.raises(DriverError, match="N=128"):
        gpu_fft(np.zeros(128, np.complex64))


def test_missing_binaries_are_explained(tmp_path):
    with pytest.raises(DriverError, match="GPU_FFT shader binaries not found.*VC4KIT_GPU_FFT_HEX"):
        gpu_fft(np.zeros(256, np.complex64), folder=tmp_path)


@pytest.mark.parametrize("log2_n, published_ms", [(10, 0.070), (12, 0.25), (14, 1.2), (15, 3.5), (17, 17.0)])
def test_modeled_time_is_calibrated(log2_n, published_ms, folder):
    """The timing model, calibrated on these figures with py-videocore's SGEMM and QPULib's HeatMap
    (BENCHMARKS.md, tests/test_foreign_programs.py), stays within ±20 % of gpu_fft.txt's Pi 1 times
    (modeled QPU time plus the host's cost: the direct path for short jobs, else the mailbox)."""
    from driver.gpu_fft import DIRECT_PATH_POINTS
    from vc4common.timing import param
    with Driver(backend="sim") as drv:
        fft = GpuFft(drv, log2_n, folder=folder)
        fft.execute(np.zeros((1, 1 << log2_n), np.complex64))
    host = param("direct_call_seconds" if 1 << log2_n <= DIRECT_PATH_POINTS else "mailbox_call_seconds")
    modeled_ms = (fft.report.seconds(250e6) + host) * 1e3
    assert 0.8 <= modeled_ms / published_ms <= 1.2, f"{modeled_ms:.4f} ms against {published_ms} ms"
    assert fft.report.modeled
