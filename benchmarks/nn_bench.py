"""NN kernels in the timing model at 250 MHz (Pi Zero): the table of nnlib/bench.py, also `vc4 bench`.

    .venv/bin/python benchmarks/nn_bench.py [--only sgemm|conv|pointwise|depthwise|fc] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnlib import bench  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench.add_arguments(parser)
    sys.exit(bench.run(parser.parse_args()))
