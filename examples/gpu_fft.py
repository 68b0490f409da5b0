"""GPU_FFT 3.0, Broadcom's own shader binaries, run unmodified through the Driver (the simulator by default).

For each size it prints the error against numpy.fft in ppm (relative RMS, random complex input), the
error of hello_fft's own test (an inverse transform of a tone) next to what gpu_fft.txt publishes for
a Pi, and the modeled time per transform at 250 MHz next to the Pi 1 figure (batch 1).

    python examples/gpu_fft.py                 # N = 2^8 .. 2^17 on the simulator
    python examples/gpu_fft.py --sizes 8-12 --backend mailbox      # on a Pi (as root)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driver import Driver, DriverError  # noqa: E402
from driver.gpu_fft import DIRECT_PATH_POINTS, GpuFft, find_folder  # noqa: E402
from vc4common import timing  # noqa: E402

# gpu_fft.txt: typical error on a Pi (ppm) and ms per transform on a Pi 1 (batch 1).
PUBLISHED_PPM = {8: 0.33, 9: 0.46, 10: 0.52, 11: 0.59, 12: 0.78, 13: 0.83, 14: 0.92, 15: 0.98, 16: 1.0, 17: 1.3,
                 18: 1.3, 19: 1.4, 20: 1.5, 21: 1.5, 22: 1.5}
PUBLISHED_MS = {8: 0.033, 9: 0.049, 10: 0.070, 11: 0.12, 12: 0.25, 13: 0.61, 14: 1.2, 15: 3.5, 16: 7.0, 17: 17,
                18: 43, 19: 97, 20: 194, 21: 388, 22: 786}


def relative_rms(y: np.ndarray, reference: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.abs(y - reference) ** 2) / np.sum(np.abs(reference) ** 2)))


def main() -> int:
    parser = argparse.ArgumentParser(description="GPU_FFT 3.0 on the simulator or a Pi")
    parser.add_argument("--sizes", default="8-17", help="log2 N, a range such as 8-17 (default) or one size")
    parser.add_argument("--backend", default="sim", choices=("sim", "mailbox", "auto"))
    parser.add_argument("--folder", help="folder of GPU_FFT 3.0's shader_*.hex (default: see driver/gpu_fft.py)")
    parser.add_argument("--if-present", action="store_true", help="say so and succeed when the binaries are absent")
    args = parser.parse_args()
    try:
        find_folder(args.folder)
    except DriverError as error:
        print(f"gpu_fft: {'skipped' if args.if_present else 'error'}: {error}", file=sys.stderr)
        return 0 if args.if_present else 1
    low, _, high = args.sizes.partition("-")
    sizes = range(int(low), int(high or low) + 1)

    table = Table(title=f"GPU_FFT 3.0 shaders, unmodified, on the {args.backend} backend")
    # ppm: relative RMS error; ms: per transform; wall: this machine's seconds for both runs of the row.
    for name in ("N", "ppm numpy", "ppm hello_fft", "ppm Pi", "ms", "ms Pi 1", "ratio", "wall s"):
        table.add_column(name, justify="right")
    rng = np.random.default_rng(0)
    try:
        with Driver(backend=args.backend) as drv:
            for log2_n in sizes:
                n = 1 << log2_n
                start = time.perf_counter()
                x = (rng.standard_normal((1, n)) + 1j * rng.standard_normal((1, n))).astype(np.complex64)
                fft = GpuFft(drv, log2_n, 1, folder=args.folder)
                error = relative_rms(fft.execute(x), np.fft.fft(x.astype(np.complex128)))
                report = fft.report
                fft.release()
                # hello_fft's measurement: inverse transform of a tone at frequency 1.
                tone = np.zeros((1, n), np.complex64)
                tone[0, 1] = tone[0, n - 1] = 0.5
                inverse = GpuFft(drv, log2_n, 1, inverse=True, folder=args.folder)
                hello = relative_rms(inverse.execute(tone)[0], np.cos(2 * np.pi * np.arange(n) / n))
                inverse.release()
                wall = time.perf_counter() - start
                host = "direct_call_seconds" if n <= DIRECT_PATH_POINTS else "mailbox_call_seconds"
                seconds = report.seconds() + timing.param(host) if report.modeled else report.seconds()
                kind = "" if report.modeled else " measured"
                table.add_row(f"2^{log2_n}", f"{error * 1e6:.3f}", f"{hello * 1e6:.3f}",
                              f"{PUBLISHED_PPM[log2_n]:.2f}", f"{seconds * 1e3:.4f}{kind}",
                              f"{PUBLISHED_MS[log2_n]:g}", f"{seconds * 1e3 / PUBLISHED_MS[log2_n]:.2f}",
                              f"{wall:.2f}")
    except DriverError as error:
        print(f"gpu_fft: error: {error}", file=sys.stderr)
        return 1
    console = Console()
    console.print(table)
    console.print("Times are modeled by the simulator's timing model at 250 MHz (plus the host's submission "
                  "cost) unless marked measured; the Pi figures are gpu_fft.txt's.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
