"""A convolution's image patches (or a pointwise layer's pixels), gathered by the QPUs straight into
the GEMM's A pack.

The GEMM kernel (matmul.py) reads A from its uniform stream, packed tile by tile, k-major
(GemmPlan.pack_a): in a tile of R rows, k-row k is R words, pixel i's value at word i. A task is
one group of 16 pixels of one tile (rows 16g .. 16g + 15 of it; the last group of a tile may hold
fewer): one vector per k, lane i holding the value of the group's pixel i. So a QPU builds a group
by one TMU gather per k (each lane reads its own pixel's window at that k's offset), writes the
vectors to its own VPM rows and stores them with VDW DMA, STORE_ROWS k at a time, each k-row's
words of the group 4R bytes after the last (the group's width and that stride come with the task).
The windows' top-left addresses (one per lane and group) come from a table the host writes with the
tasks; the offsets of the k within a window are baked into the code (the kernel is specialised by
the input's width and channels). A k x k convolution's padded input comes from the host, as for
depthwise.py; a pointwise layer's pixels from the layer before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qpuasm import isa
from qpuasm.builtins import dma_h32, h32, vdw_setup_0, vdw_setup_1, vpm_setup

from .matmul import STORE_ROWS
from .tasks import ALONE, VDW_ROW, VPM_ROW, Scope, table_prologue

LANES = isa.LANES
TMU_DEPTH = 4                                 # requests in flight per TMU (semantics.md §8.2)
TASK_WORDS = 4                                # [the group's lane table (16 window addresses), its place in
#                                               the pack, the VDW setup's width change, the VDW stride setup]
ZERO = -1                                     # the offset of a k beyond the patch (K's padding)
RA_BASE, RA_PACK, RA_TASK_POINTER, RA_TASKS_LEFT, RA_VPM_SETUP, RA_VDW_BASE, RA_WIDTH, RA_STRIDE = (
    f"ra{j}" for j in range(8))


@dataclass(frozen=True)
class Im2colKernel:
    offsets: tuple[int, ...]                  # bytes from a window's top-left to each k's value, or ZERO
    row_bytes: int = 4 * LANES                # between k-rows of the pack: 4 R for tiles of R rows

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
    """Uniforms: the task table (tasks.py) of [lane table address, pack address, width change,
    stride setup] tasks (group_tasks)."""
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
        mov r0, {4 * TASK_WORDS}
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        add t0s, unif, r2
        mov {RA_PACK}, unif
        mov {RA_WIDTH}, unif
        mov {RA_STRIDE}, unif
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
        emit(f"""        mov r0, {vdw_setup_0(len(chunk), LANES, dma_h32(0, 0))}
        add r0, r0, {RA_VDW_BASE}
        add vw_setup, r0, {RA_WIDTH}
        mov vw_setup, {RA_STRIDE}
        mov r0, {cfg.row_bytes * first}
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


def groups(plan) -> list[tuple[int, int, int]]:
    """(tile, first row within it, width) of each group of up to 16 rows of a GEMM plan's tiles."""
    return [(t, g, min(LANES, plan.rows - g)) for t in range(plan.m_pad // plan.rows)
            for g in range(0, plan.rows, LANES)]


def lane_table(corners: np.ndarray, plan) -> np.ndarray:
    """Each group's 16 lane addresses for a GEMM plan (matmul.GemmPlan): lane i of the group at row
    g of tile t reads row plan.row_start(t rows) + g + i, whose window's corner is at corners[row]
    (rows past M, the last tile's padding, and lanes past the group's width repeat the last)."""
    rows = np.array([[min(plan.row_start(t * plan.rows) + g + min(i, width - 1), plan.m - 1) for i in range(LANES)]
                     for t, g, width in groups(plan)], np.int64).reshape(-1, LANES)
    return np.asarray(corners, np.int64)[rows].astype(np.uint32)


def group_tasks(table: int, pack: int, plan) -> list[list[int]]:
    """The tasks of a gather into the pack at `pack` whose lane table (lane_table) is at `table`."""
    full = vdw_setup_0(1, LANES, 0)
    tasks = []
    for n, (t, g, width) in enumerate(groups(plan)):
        change = vdw_setup_0(1, width, 0) - full
        assert all(vdw_setup_0(k, width, 0) == vdw_setup_0(k, LANES, 0) + change for k in range(1, STORE_ROWS + 1))
        tasks.append([table + 4 * LANES * n, pack + t * plan.a_tile_bytes + 4 * g, change & 0xFFFFFFFF,
                      vdw_setup_1(4 * (plan.rows - width))])
    return tasks


__all__ = ["Im2colKernel", "group_tasks", "groups", "lane_table", "patch_offsets", "window_corners"]
