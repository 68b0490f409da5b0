"""A 3x3 convolution's image patches, gathered by the QPUs straight into the GEMM's A pack.

The GEMM kernel (matmul.py) reads A from its uniform stream, packed tile by tile, k-major
(GemmPlan.pack_a). With tiles of 16 rows, one k of one tile is exactly 16 words: one vector, lane i
holding the patch value of pixel i. So a QPU builds a tile's pack by one TMU gather per k (each lane
reads its own pixel's window at that k's offset), writes the vectors to its own VPM rows and stores
them with VDW DMA, STORE_ROWS k at a time. The windows' top-left addresses (one per lane and tile)
come from a table the host writes with the tasks; the offsets of the k within a window are baked
into the code (the kernel is specialised by the input's width and channels). The padded input comes
from the host, as for depthwise.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qpuasm import isa
from qpuasm.builtins import dma_h32, h32, vdw_setup_0, vpm_setup

from .matmul import STORE_ROWS
from .tasks import ALONE, VDW_ROW, VPM_ROW, Scope, table_prologue

LANES = isa.LANES
TMU_DEPTH = 4                                 # requests in flight per TMU (semantics.md §8.2)
TASK_WORDS = 2                                # [the tile's lane table (16 window addresses), its pack]
ZERO = -1                                     # the offset of a k beyond the patch (K's padding)
RA_BASE, RA_PACK, RA_TASK_POINTER, RA_TASKS_LEFT, RA_VPM_SETUP, RA_VDW_BASE = (f"ra{j}" for j in range(6))


@dataclass(frozen=True)
class Im2colKernel:
    offsets: tuple[int, ...]                  # bytes from a window's top-left to each k's value, or ZERO

    def source(self, scope: Scope = ALONE) -> str:
        return kernel_source(self, scope)


def patch_offsets(size: int, row_floats: int, pitch: int, channels: int, k_pad: int) -> tuple[int, ...]:
    """k = (size kh + kw) * channels + c of a size x size window lies kh rows (row_floats apart),
    kw pixels (pitch apart) and c floats from the window's corner; k from size^2 channels on is K's
    padding."""
    offsets = [4 * (kh * row_floats + kw * pitch + c) for kh in range(size) for kw in range(size)
               for c in range(channels)]
    return tuple(offsets + [ZERO] * (k_pad - len(offsets)))


def kernel_source(cfg: Im2colKernel, scope: Scope = ALONE) -> str:
    """Uniforms: the task table (tasks.py) of [lane table address, pack address] tasks."""
    lines = [table_prologue(RA_TASK_POINTER, RA_TASKS_LEFT, scope=scope, between=f"""\
        mov r0, {STORE_ROWS * VPM_ROW}
        mul24 r2, r1, r0
        mov r0, {vpm_setup(0, 1, h32(0))}""")]
    emit = lines.append
    emit(f"""        add {RA_VPM_SETUP}, r0, r2
        mov r0, {STORE_ROWS * VDW_ROW}
        mul24 {RA_VDW_BASE}, r1, r0
:{scope('task')}
        mov unif_addr, {RA_TASK_POINTER}
        shl r2, elem_num, 2
        mov r0, 8
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        add t0s, unif, r2
        mov {RA_PACK}, unif
        nop; ldtmu0
        mov {RA_BASE}, r4""")
    gathered = [k for k, offset in enumerate(cfg.offsets) if offset != ZERO]
    tmu = {k: n % 2 for n, k in enumerate(gathered)}
    requested = 0

    def request_ahead(upto: int) -> None:
        nonlocal requested
        while requested < len(gathered) and requested < upto:
            k = gathered[requested]
            emit(f"        mov r1, {cfg.offsets[k]}\n        add t{tmu[k]}s, {RA_BASE}, r1")
            requested += 1

    done = 0                                  # gathered values popped so far
    for first in range(0, len(cfg.offsets), STORE_ROWS):
        chunk = range(first, min(first + STORE_ROWS, len(cfg.offsets)))
        emit(f"        mov -, vw_wait\n        mov vw_setup, {RA_VPM_SETUP}")
        for k in chunk:
            if cfg.offsets[k] == ZERO:
                emit("        mov vpm, 0")
                continue
            request_ahead(done + 2 * TMU_DEPTH)
            emit(f"        nop; ldtmu{tmu[k]}\n        mov vpm, r4")
            done += 1
        emit(f"""        mov r0, {vdw_setup_0(len(chunk), 16, dma_h32(0, 0))}
        add vw_setup, r0, {RA_VDW_BASE}
        mov vw_setup, vdw_setup_1(0)
        mov r0, {64 * first}
        add vw_addr, {RA_PACK}, r0""")
    emit(f"""        sub.setf {RA_TASKS_LEFT}, {RA_TASKS_LEFT}, 1
        brr.anynz -, r:{scope('task')}
        nop
        nop
        nop
""")
    emit(scope.end())
    return "\n".join(lines)



def window_corners(out_h: int, out_w: int, row_floats: int, pitch: int, stride: int, base: int) -> np.ndarray:
    """The address of each output pixel's window corner (row-major), in an input whose rows are
    row_floats apart and pixels pitch apart, starting at `base`."""
    oh, ow = np.divmod(np.arange(out_h * out_w, dtype=np.int64), out_w)
    return base + 4 * (oh * stride * row_floats + ow * stride * pitch)


def lane_table(corners: np.ndarray, plan) -> np.ndarray:
    """Each row tile's 16 lane addresses for a GEMM plan (matmul.GemmPlan of 16-row tiles): lane i
    of a tile reads row plan.row_start(tile) + i, whose window's corner is at
    corners[row] (rows past M, the last tile's padding, repeat the last)."""
    if plan.rows != LANES:
        raise ValueError(f"a gathered A pack needs tiles of {LANES} rows, not {plan.rows}")
    starts = np.array([plan.row_start(i) for i in range(0, plan.m_pad, plan.rows)])
    rows = np.minimum(starts[:, None] + np.arange(LANES)[None, :], plan.m - 1)
    return np.asarray(corners, np.int64)[rows].astype(np.uint32)


__all__ = ["Im2colKernel", "lane_table", "patch_offsets", "window_corners"]
