"""The timing model against three foreign programs with published Pi times, one model for all.

* GPU_FFT 3.0 (Broadcom's binaries), 2^10 .. 2^17, batch 1 and 10, against gpu_fft.txt's Pi 1 times;
* py-videocore's SGEMM example, unmodified, 96x363x3072 on 12 threads, against its published 8.32 GFLOPS;
* QPULib's HeatMap step on 1, 2 and 4 QPUs against its README's times (2000 steps, one call each, the
  mailbox round trip included).

Every time is modeled at 250 MHz (the programs run on the simulator); each line gives modeled / published.
`--set name=value` overrides a timing parameter (vc4common/timing.py) to try a change before making it.

    .venv/bin/python benchmarks/calibration.py [--set vdw_row_clocks=8] [--only fft,sgemm,heatmap]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpu_fft_timing import PUBLISHED_MS, modeled_ms  # noqa: E402

from driver import Driver, foreign  # noqa: E402
from vc4common import timing  # noqa: E402
from vc4common.errors import SimulationWarning  # noqa: E402

BAND = (0.8, 1.2)


def fft_rows() -> list[tuple[str, float, float]]:
    rows = []
    with Driver(backend="sim") as drv:
        for log2_n in range(10, 18):
            for batch in (1, 10):
                published = PUBLISHED_MS[batch].get(log2_n)
                if published:
                    ms, _ = modeled_ms(drv, log2_n, batch)
                    rows.append((f"GPU_FFT 2^{log2_n} batch {batch} (ms)", ms, published))
    return rows


def sgemm_rows() -> list[tuple[str, float, float]]:
    script = foreign.foreign_path("py-videocore", "examples", "sgemm.py")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)      # its 12,288-byte VDR pitch (semantics.md §8.5)
        run = foreign.run_py_videocore_script(script, strict=False)
    gflops = foreign.sgemm_flops() / run.reports[0].seconds() / 1e9
    return [("py-videocore SGEMM 96x363x3072 (GFLOPS)", gflops, foreign.SGEMM_PUBLISHED_GFLOPS)]


def heatmap_rows() -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    src = np.zeros((foreign.HEIGHT + 2, foreign.NCOLS), np.float32)
    src[1:foreign.HEIGHT + 1, :foreign.WIDTH] = rng.random((foreign.HEIGHT, foreign.WIDTH), dtype=np.float32)
    rows = []
    for qpus, published in foreign.HEATMAP_PUBLISHED_S.items():
        with Driver(backend="sim") as drv:
            run = foreign.run_heatmap(drv, qpus, src)
        seconds = (run.report.seconds() + timing.param("mailbox_call_seconds")) * foreign.HEATMAP_STEPS
        rows.append((f"QPULib HeatMap {qpus} QPU(s), 2000 steps (s)", seconds, published))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--only", default="fft,sgemm,heatmap")
    args = parser.parse_args()
    for setting in args.set:
        timing.override(setting)
    parts = {"fft": fft_rows, "sgemm": sgemm_rows, "heatmap": heatmap_rows}
    rows = [row for name in args.only.split(",") for row in parts[name]()]
    print(f"{'program':<46} {'modeled':>10} {'published':>10} {'ratio':>6}")
    ratios = []
    for name, modeled, published in rows:
        ratio = modeled / published if "GFLOPS" not in name else published / modeled     # >1: model slower
        ratios.append(ratio)
        print(f"{name:<46} {modeled:>10.4f} {published:>10.4f} {ratio:>6.2f}")
    inside = sum(BAND[0] <= r <= BAND[1] for r in ratios)
    print(f"time ratio (modeled / published): median {statistics.median(ratios):.2f}, range {min(ratios):.2f} .. "
          f"{max(ratios):.2f}, within ±20 %: {inside} of {len(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
