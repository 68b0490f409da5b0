"""NN kernels in the timing model at 250 MHz (Pi Zero): SGEMM shapes and MobileNet v1's pointwise layers.

Prints the modeled time, GFLOPS and % of the 24 GFLOPS peak, instructions and the simulator's wall
time. The layer shapes are read from ../shared/reference/mobilenet_v1_layers.txt when present.
Times are modeled, not measured; see BENCHMARKS.md for what the model leaves out.

    .venv/bin/python benchmarks/nn_bench.py [--only sgemm|pointwise]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from driver import Driver  # noqa: E402
from nnlib import matmul as G  # noqa: E402

PEAK_GFLOPS = 24.0          # 12 QPUs x 16 lanes x 2 flops / 4 clocks x 250 MHz (performance.md §2)
LAYERS = ROOT.parent / "shared" / "reference" / "mobilenet_v1_layers.txt"


def pointwise_shapes() -> list[tuple[str, int, int, int]]:
    if not LAYERS.exists():
        return []
    text = LAYERS.read_text().split("== MobileNet v2")[0]
    seen, shapes = set(), []
    for cin, hin, cout in re.findall(r"pw1x1/s1\s+(\d+)@\s*(\d+) ->\s+(\d+)@", text):
        key = (int(hin), int(cin), int(cout))
        if key not in seen:
            seen.add(key)
            shapes.append((f"pw {cin}->{cout} @{hin}", int(hin) ** 2, int(cin), int(cout)))
    return shapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("sgemm", "pointwise"))
    args = parser.parse_args()
    rows = []
    if args.only != "pointwise":
        rows += [("sgemm 96x363 x 363x3072", 96, 363, 3072), ("sgemm 1024^3", 1024, 1024, 1024)]
    if args.only != "sgemm":
        rows += pointwise_shapes()
    rng = np.random.default_rng(0)
    print(f"{'kernel':<26} {'modeled ms':>10} {'GFLOPS':>7} {'% peak':>6} {'instructions':>13} {'wall s':>7}")
    with Driver(backend="sim") as drv:
        for name, m, k, n in rows:
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
            start = time.perf_counter()
            _, report = G.matmul(drv, a, b, bias=np.zeros(n, np.float32) if name.startswith("pw") else None,
                                 relu6=name.startswith("pw"))
            wall = time.perf_counter() - start
            gflops = 2 * m * n * k / report.seconds() / 1e9
            print(f"{name:<26} {report.seconds() * 1e3:>10.3f} {gflops:>7.2f} {gflops / PEAK_GFLOPS:>6.0%} "
                  f"{report.instructions:>13,} {wall:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
