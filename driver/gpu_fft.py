"""GPU_FFT 3.0 (Andrew Holme's FFT for the VideoCore IV) run unmodified through the Driver.

The shader binaries are Broadcom's own, read at run time from a folder (never part of this project):
../shared/testvectors/hello_fft_v3, $VC4KIT_GPU_FFT_HEX, or the hex/ folder Raspberry Pi OS installs.
This module is the host side, written from how hello_fft's host code works (raspberrypi/userland
host_applications/linux/apps/hello_pi/hello_fft): 8 QPUs run the same shader, each with uniforms

    [shared twiddles, this QPU's twiddles, QPU index, (in, out) buffer pair per transform..., 0, IRQ]

the master (QPU index 0) raising the host interrupt; the transforms ping-pong between two buffers per
transform, so the result ends in the input buffer after an even number of passes, else in the other.

    y = gpu_fft(x)                   # x: (batch, N) complex64, N = 2^8 .. 2^22; like numpy.fft.fft
    y = gpu_fft(x, inverse=True)     # unscaled: N * numpy.fft.ifft(x)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qpuasm.formats import read_hex

from .diagnose import DriverError
from .driver import Driver

QPUS = 8                                  # GPU_FFT always runs on 8 QPUs
MIN_LOG2, MAX_LOG2 = 8, 22
DIRECT_PATH_POINTS = 5 << 12              # hello_fft pokes the V3D registers when jobs * N is this small
MAILBOX_TIMEOUT = 2.0                     # seconds, as hello_fft asks the firmware
ROOT = Path(__file__).resolve().parent.parent
FOLDERS = [os.environ.get("VC4KIT_GPU_FFT_HEX", ""), str(ROOT.parent / "shared" / "testvectors" / "hello_fft_v3"),
           "/opt/vc/src/hello_pi/hello_fft/hex"]


@dataclass(frozen=True)
class Layout:
    """How one GPU_FFT 3.0 shader reads its twiddles: passes over the data, the shared table (a base
    of 16/32/64 rotations, then "step" tables of 16/32/64 at angles 2*pi/N * multiplier), and the
    per-QPU table (a base of 16/32 at 2*pi/N * q)."""

    passes: int
    base: int
    steps: tuple[tuple[int, int], ...]        # (size, angle multiplier)
    unique: int


LAYOUTS = {
    8: Layout(2, 16, ((16, QPUS),), 16),
    9: Layout(2, 32, ((16, QPUS),), 16),
    10: Layout(2, 32, ((32, QPUS),), 32),
    11: Layout(2, 64, ((32, QPUS),), 32),
    12: Layout(3, 16, ((16, 16), (16, QPUS)), 16),
    13: Layout(3, 32, ((16, 16), (16, QPUS)), 16),
    14: Layout(3, 32, ((32, 16), (16, QPUS)), 16),
    15: Layout(3, 32, ((32, 32), (32, QPUS)), 32),
    16: Layout(3, 64, ((32, 32), (32, QPUS)), 32),
    17: Layout(4, 32, ((16, 256), (16, 16), (16, QPUS)), 16),
    18: Layout(4, 32, ((16, 512), (16, 32), (32, QPUS)), 32),
    19: Layout(4, 32, ((16, 1024), (32, 32), (32, QPUS)), 32),
    20: Layout(4, 32, ((32, 1024), (32, 32), (32, QPUS)), 32),
    21: Layout(4, 64, ((32, 1024), (32, 32), (32, QPUS)), 32),
    22: Layout(4, 64, ((64, 1024), (32, 32), (32, QPUS)), 32),
}


# ---- twiddle tables ------------------------------------------------------------------------------------
# A 16-entry table serves the 4 radix-2 stages of a 16-point FFT: entry i >= 1 belongs to stage
# bit_length(i) - 1, whose butterflies are 16 >> bit_length(i) apart, and is rotation number
# i - 2^(stage) of that stage. Angles are in double precision, stored as float32 (cos, sin).

def _stage_spacing(i: int) -> int:
    return 0 if i == 0 else 16 >> i.bit_length()


def _stage_index(i: int) -> int:
    return 0 if i == 0 else i - (1 << (i.bit_length() - 1))


def _base(size: int, turn: float, theta: float) -> list[float]:
    """Angles of a base table (rotations the shader applies directly)."""
    if size == 16:
        return [turn / 16 * _stage_spacing(i) * _stage_index(i) + theta * _stage_spacing(i) for i in range(16)]
    if size == 32:
        return [turn / 32 * i + theta for i in range(16)] + _base(16, turn, 2 * theta)
    return [turn / 64 * i for i in range(32)] + _base(32, turn, 0.0)


def _step(size: int, theta: float) -> list[float]:
    """Angles of a step table (the shader advances its rotations by these between groups)."""
    if size == 16:
        return [theta * _stage_spacing(i) for i in range(16)]
    return [theta] * (size // 2) + _step(size // 2, 2 * theta)


def _rotations(angles: list[float]) -> list[tuple[float, float]]:
    return [(math.cos(a), math.sin(a)) for a in angles]


def _steps(angles: list[float]) -> list[tuple[float, float]]:
    # (1 - cos, sin) written as (2 sin^2(d/2), sin d), which keeps precision for small angles.
    return [(2 * math.sin(a / 2) ** 2, math.sin(a)) for a in angles]


def twiddles(log2_n: int, inverse: bool = False) -> tuple[np.ndarray, int, int]:
    """The twiddle data of one transform length and direction, as float32 pairs, with the shared and
    the per-QPU table sizes in units of 16 complex values."""
    layout = LAYOUTS[log2_n]
    n = 1 << log2_n
    turn = (2.0 if inverse else -2.0) * math.pi
    shared = _rotations(_base(layout.base, turn, 0.0))
    for size, multiplier in layout.steps:
        shared += _steps(_step(size, turn / n * multiplier))
    unique = [_rotations(_base(layout.unique, turn, turn / n * q)) for q in range(QPUS)]
    table = np.array(shared + [pair for per_qpu in unique for pair in per_qpu], dtype=np.float32)
    return table.reshape(-1), len(shared) // 16, layout.unique // 16


# ---- shaders -------------------------------------------------------------------------------------------

def shader_name(log2_n: int) -> str:
    n = 1 << log2_n
    return f"shader_{n}.hex" if n < 1024 else f"shader_{n // 1024}k.hex"


def find_folder(folder: str | Path | None = None) -> Path:
    """The folder of GPU_FFT 3.0's shader_*.hex files."""
    candidates = [str(folder)] if folder else FOLDERS
    for candidate in candidates:
        if candidate and (Path(candidate) / shader_name(MIN_LOG2)).is_file():
            return Path(candidate)
    raise DriverError("GPU_FFT shader binaries not found in " + ", ".join(c for c in candidates if c),
                      "pass folder= or set VC4KIT_GPU_FFT_HEX to a folder of GPU_FFT 3.0's shader_*.hex")


def shader_words(log2_n: int, folder: str | Path | None = None) -> np.ndarray:
    return read_hex((find_folder(folder) / shader_name(log2_n)).read_text())


# ---- the host side -------------------------------------------------------------------------------------

def buffer_points(n: int) -> int:
    """Points between consecutive buffers: the transform rounded up to a page, plus a guard page when
    it fills pages exactly (hello_fft leaves this gap for caching and alignment)."""
    return (8 * n // 4096 + 1) * 4096 // 8


class GpuFft:
    """One prepared batch: buffers, code, twiddles and uniforms in GPU memory, run as often as wanted."""

    def __init__(self, drv: Driver, log2_n: int, batch: int = 1, inverse: bool = False,
                 folder: str | Path | None = None):
        if log2_n not in LAYOUTS:
            raise DriverError(f"GPU_FFT has no transform of 2^{log2_n} points (2^{MIN_LOG2} to 2^{MAX_LOG2})")
        if batch < 1:
            raise DriverError(f"batch={batch}: at least one transform")
        self.drv, self.log2_n, self.n, self.batch = drv, log2_n, 1 << log2_n, batch
        layout = LAYOUTS[log2_n]
        self.step = buffer_points(self.n)
        self.buffers = drv.alloc((2 * batch, self.step), np.complex64)      # ping rows, then pong rows
        self.code = drv.program(shader_words(log2_n, folder))
        table, shared, unique = twiddles(log2_n, inverse)
        self.twiddles = drv.copy(table)
        out_row = batch if layout.passes % 2 else 0
        self.output = self.buffers[out_row:out_row + batch, :self.n]
        self.input = self.buffers[:batch, :self.n]
        pairs = self.buffers.addresses()[:, 0]
        uniforms = []
        for q in range(QPUS):
            row = [self.twiddles.address, self.twiddles.address + 8 * 16 * (shared + q * unique), q]
            for j in range(batch):
                row += [int(pairs[j]), int(pairs[batch + j])]
            uniforms.append(row + [0, int(q == 0)])     # end of the list; only the master interrupts
        self.uniforms = np.array(uniforms, dtype=np.uint32)
        self.report = None

    def execute(self, x: np.ndarray) -> np.ndarray:
        """Transform each row of x (batch, N); returns a new array."""
        self.input[...] = x
        direct = self.batch * self.n <= DIRECT_PATH_POINTS
        self.report = self.drv.execute(self.code, self.uniforms, n_qpus=QPUS, timeout=MAILBOX_TIMEOUT,
                                       direct=direct)
        return np.array(self.output)

    def release(self) -> None:
        """Give the batch's GPU memory back (the driver would at close)."""
        for array in (self.buffers, self.twiddles):
            self.drv.free(array)
        self.drv.memory.release(self.code.block)


def gpu_fft(x, inverse: bool = False, backend: str = "sim", *, driver: Driver | None = None,
            folder: str | Path | None = None) -> np.ndarray:
    """FFT of each row of x (batch, N) or of a 1-D x by GPU_FFT 3.0; forward is numpy.fft.fft's sign,
    inverse is unscaled (N * numpy.fft.ifft)."""
    x = np.asarray(x, dtype=np.complex64)
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if rows.ndim != 2:
        raise DriverError(f"gpu_fft: x must be (batch, N) or (N,), got shape {x.shape}")
    n = rows.shape[1]
    if n & (n - 1) or not MIN_LOG2 <= n.bit_length() - 1 <= MAX_LOG2:
        raise DriverError(f"gpu_fft: N={n} is not a power of 2 from 2^{MIN_LOG2} to 2^{MAX_LOG2}")
    own = driver is None
    drv = driver or Driver(backend=backend)
    try:
        fft = GpuFft(drv, n.bit_length() - 1, rows.shape[0], inverse, folder)
        result = fft.execute(rows)
        fft.release()
    finally:
        if own:
            drv.close()
    return result.reshape(x.shape)


__all__ = ["GpuFft", "LAYOUTS", "find_folder", "gpu_fft", "shader_words", "twiddles"]
