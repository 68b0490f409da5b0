"""The field's own programs, run in place and unmodified: what tests and benchmarks hold the simulator to.

* QPULib's HeatMap `step` kernel (mn416/QPULib, words from QPULib's own code generator, in
  ../shared/testvectors/qpulib with the uniforms and the step it computes in its README), with
  published Pi times on 1, 2 and 4 QPUs.
* py-videocore's SGEMM example (Idein/py-videocore examples/sgemm.py, ../shared/testvectors/py-videocore),
  8.32 GFLOPS published on a Pi (performance.md §2), run through driver.compat as its users run it.

Neither program is part of this project: they are read from the folder given (or $VC4KIT_SHARED's
testvectors) and a clear error says where they were looked for.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qpuasm.formats import read_hex

from .diagnose import DriverError
from .driver import Driver

ROOT = Path(__file__).resolve().parent.parent
TESTVECTORS = Path(os.environ.get("VC4KIT_SHARED", ROOT.parent / "shared")) / "testvectors"

# QPULib README "Performance" (2016-04-27): 512x512 grid, 2000 steps, one kernel call per step, wall
# time on the ARM (each call's mailbox round trip included), 250 MHz.
HEATMAP_STEPS = 2000
HEATMAP_PUBLISHED_S = {1: 49.34, 2: 24.91, 4: 20.36}
NCOLS, WIDTH, HEIGHT = 512, 496, 504


def foreign_path(*parts: str) -> Path:
    path = TESTVECTORS.joinpath(*parts)
    if not path.exists():
        raise DriverError(f"{path} is not there", "set VC4KIT_SHARED to the shared/ folder that holds testvectors/")
    return path


def heatmap_reference(src: np.ndarray) -> np.ndarray:
    """One step of QPULib's HeatMap in float32 (its README): rows 1..HEIGHT, columns 0..WIDTH-1, the
    8 neighbours (0 outside columns 0..WIDTH-1) summed into s, out = c - 0.25 * (c - 0.125 * s)."""
    padded = np.zeros((src.shape[0], NCOLS + 2), np.float32)
    padded[:, 1:WIDTH + 1] = src[:, :WIDTH]
    out = src.copy()
    s = np.zeros((HEIGHT, WIDTH), np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                s += padded[1 + dy:HEIGHT + 1 + dy, 1 + dx:WIDTH + 1 + dx]
    c = src[1:HEIGHT + 1, :WIDTH]
    out[1:HEIGHT + 1, :WIDTH] = c - np.float32(0.25) * (c - np.float32(0.125) * s)
    return out


@dataclass
class HeatmapRun:
    src: np.ndarray
    dst: np.ndarray
    report: object


def run_heatmap(drv: Driver, qpus: int, src: np.ndarray, hex_file: Path | None = None) -> HeatmapRun:
    """One call of QPULib's HeatMap step on `qpus` QPUs, as QPULib's Kernel::invoke makes it: uniforms
    [qpu index, N, HEIGHT, WIDTH, NCOLS, dst, src] per QPU, one mailbox execute."""
    words = read_hex(Path(hex_file or foreign_path("qpulib", "heatmap_step.hex")).read_text())
    if src.shape != (HEIGHT + 2, NCOLS):
        raise DriverError(f"heatmap: the grid is ({HEIGHT + 2}, {NCOLS}) floats, got {src.shape}")
    grid_in, grid_out = drv.copy(src.astype(np.float32)), drv.copy(src.astype(np.float32))
    uniforms = [[q, qpus, HEIGHT, WIDTH, NCOLS, grid_out.address, grid_in.address] for q in range(qpus)]
    report = drv.execute(drv.program(words), uniforms, n_qpus=qpus, timeout=1.0)
    return HeatmapRun(np.array(grid_in), np.array(grid_out), report)


@dataclass
class ScriptRun:
    output: str
    reports: list


def run_py_videocore_script(script: Path, *, strict: bool = True, folder: Path | None = None) -> ScriptRun:
    """Run a py-videocore script unmodified on the simulator through driver.compat; its printed output
    and the report of each execute it made."""
    from . import compat

    folder = Path(folder or foreign_path("py-videocore"))
    saved = dict(os.environ), list(sys.path), dict(sys.modules)
    os.environ.update(VC4KIT_BACKEND="sim", VC4KIT_STRICT="1" if strict else "0")
    sys.path.insert(0, str(folder))
    compat.reports.clear()
    output = io.StringIO()
    try:
        compat.install()
        with contextlib.redirect_stdout(output):
            runpy.run_path(str(script), run_name="__main__")
    finally:
        os.environ.clear()
        os.environ.update(saved[0])
        sys.path[:] = saved[1]
        for name in set(sys.modules) - set(saved[2]):
            if name == "videocore" or name.startswith(("videocore.", "rpi_vcsm")):
                del sys.modules[name]
    return ScriptRun(output.getvalue(), list(compat.reports))


def printed_number(output: str, label: str) -> float:
    """A number a script printed after `label:` (py-videocore's examples print their errors so)."""
    match = re.search(re.escape(label) + r":\s*([-+0-9.eE]+)", output)
    if not match:
        raise DriverError(f"the script printed no {label!r}:\n{output}")
    return float(match.group(1))


SGEMM_SHAPE = (96, 363, 3072)                   # examples/sgemm.py: C(96x3072) = A(96x363) . B(363x3072)
SGEMM_PUBLISHED_GFLOPS = 8.32                   # py-videocore README, 12 threads on a Pi (performance.md §2)


def sgemm_flops() -> int:
    """The example's own count: 2pqr + 3pr (alpha * A.B + beta * C)."""
    p, q, r = SGEMM_SHAPE
    return 2 * p * q * r + 3 * p * r


__all__ = ["HEATMAP_PUBLISHED_S", "HEATMAP_STEPS", "SGEMM_PUBLISHED_GFLOPS", "SGEMM_SHAPE", "foreign_path",
           "heatmap_reference", "printed_number", "run_heatmap", "run_py_videocore_script", "sgemm_flops"]
