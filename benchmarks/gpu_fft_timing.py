"""Timing calibration: GPU_FFT 3.0's modeled time per transform against the Pi 1 figures of gpu_fft.txt.

Runs Broadcom's shader binaries (folder as in driver.gpu_fft) through the Driver on the simulator for
N = 2^8 .. 2^17, batch 1 and 10, and prints the modeled time per transform at 250 MHz (the QPU run
plus the host's submission cost, mailbox or direct as GPU_FFT chooses), the published time and their
ratio. `--set name=value` overrides a timing parameter (vc4common/timing.py) for experiments, and
`--detail` shows where the QPUs' cycles went.

    .venv/bin/python benchmarks/gpu_fft_timing.py [--sizes 8-17] [--set memory=300] [--detail]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driver import Driver  # noqa: E402
from driver.gpu_fft import DIRECT_PATH_POINTS, GpuFft  # noqa: E402
from vc4common import timing  # noqa: E402

# gpu_fft.txt (GPU_FFT 3.0), "Throughput": ms per transform on a Pi 1, batch 1 and batch 10.
PUBLISHED_MS = {
    1: {8: 0.033, 9: 0.049, 10: 0.070, 11: 0.12, 12: 0.25, 13: 0.61, 14: 1.2, 15: 3.5, 16: 7.0, 17: 17},
    10: {8: 0.017, 9: 0.029, 10: 0.049, 11: 0.11, 12: 0.27, 13: 0.66, 14: 1.2, 15: 3.3},
}


def modeled_ms(drv: Driver, log2_n: int, batch: int) -> tuple[float, object]:
    fft = GpuFft(drv, log2_n, batch)
    fft.execute(np.zeros((batch, 1 << log2_n), np.complex64))
    report = fft.report
    fft.release()
    direct = batch << log2_n <= DIRECT_PATH_POINTS
    host = timing.param("direct_call_seconds" if direct else "mailbox_call_seconds")
    return (report.seconds() + host) * 1e3 / batch, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8-17", help="log2 N range, e.g. 8-17 or 10")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--detail", action="store_true")
    args = parser.parse_args()
    low, _, high = args.sizes.partition("-")
    sizes = range(int(low), int(high or low) + 1)
    for setting in args.set:
        timing.override(setting)
    print(f"{'log2 N':>6} {'batch':>5} {'modeled ms':>11} {'Pi 1 ms':>8} {'ratio':>6}")
    ratios = []
    with Driver(backend="sim") as drv:
        for log2_n in sizes:
            for batch in (1, 10):
                published = PUBLISHED_MS[batch].get(log2_n)
                if published is None and batch == 10:
                    continue
                ms, report = modeled_ms(drv, log2_n, batch)
                ratio = ms / published if published else float("nan")
                if published and log2_n >= 10:
                    ratios.append(ratio)
                print(f"{log2_n:>6} {batch:>5} {ms:>11.4f} {published or float('nan'):>8} {ratio:>6.2f}")
                if args.detail:
                    qpus = report.per_qpu
                    total = sum(q.end_cycle for q in qpus)
                    busy = sum(q.busy_cycles for q in qpus)
                    stalls = {r: sum(q.stall_cycles[r] for q in qpus) for r in timing.STALL_REASONS}
                    shares = " ".join(f"{r} {v / total:.0%}" for r, v in stalls.items() if v)
                    print(f"{'':>13} busy {busy / total:.0%} {shares}; "
                          f"L2 misses {report.counters['L2C_TOTAL_L2_CACHE_MISSES']:,}")
    if ratios:
        print(f"2^10 and up: median ratio {statistics.median(ratios):.2f}, range {min(ratios):.2f} .. "
              f"{max(ratios):.2f}, within ±25 %: {sum(0.75 <= r <= 1.25 for r in ratios)} of {len(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
