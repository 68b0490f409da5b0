"""Global average pooling on up to 12 QPUs: x (H, W, C) -> (C,), the mean over the H x W pixels.

The 16 lanes hold 16 channels; a task is one 16-channel group. The QPU gathers the group's vector of
every pixel (one 64-byte line each, alternating TMU0 and TMU1, 8 in flight), sums them in pixel
order in r0, scales by 1/(H W) (a float uniform) and stores the 16 means through its own VPM row by
one VDW store. The code is specialised by the pixel count (straight-line, up to MAX_PIXELS).
"""

from __future__ import annotations

from dataclasses import dataclass

from qpuasm import isa
from qpuasm.builtins import dma_h32, dma_v32, h32, vdw_setup_0, vdw_setup_1, vpm_setup
from vc4common import host

from .tasks import ALONE, VDW_ROW, VPM_ROW, Scope, table_prologue

LANES = isa.LANES
MAX_QPUS = host.QPUS
MAX_PIXELS = 512
AHEAD = 8
TASK_WORDS = 2                                 # [input + 64 * group, output + 64 * group]
RA_TASK_POINTER, RA_TASKS_LEFT, RA_OUT = "ra31", "ra30", "ra29"
RB_PIXEL_BYTES, RB_SCALE, RB_VPM_SETUP, RB_VDW_SETUP = "rb31", "rb30", "rb29", "rb28"


@dataclass(frozen=True)
class PoolKernel:
    pixels: int
    pack_rows: int = 0        # 0: the means as a vector; else as the A pack of a GEMM of this many rows


    def __post_init__(self) -> None:
        if not 1 <= self.pixels <= MAX_PIXELS:
            raise ValueError(f"global_avg_pool: {self.pixels} pixels; 1 to {MAX_PIXELS}")

    def source(self, scope: Scope = ALONE) -> str:
        return kernel_source(self, scope)


def means_store(pack_rows: int) -> list[int]:
    """The VDW setups that store 16 means from one VPM row (the VPM row added to the first): as
    one memory row of 16 words, or into a GEMM's A pack (a k-row of `pack_rows` words per channel,
    matmul.GemmPlan.pack_a) as 16 memory rows of one word each from the VPM row's columns
    (vertical VDW, semantics.md §8.5), `pack_rows` words apart. This kernel's and a GEMM's that
    averages its tile (matmul.GemmKernel.mean)."""
    if pack_rows:
        return [vdw_setup_0(LANES, 1, dma_v32(0, 0)), vdw_setup_1(4 * (pack_rows - 1))]
    return [vdw_setup_0(1, 16, dma_h32(0, 0))]


def kernel_source(cfg: PoolKernel, scope: Scope = ALONE) -> str:
    """Uniforms: C * 4, 1 / pixels (float bits), then the task table (tasks.py). The means go out
    as means_store says."""
    store, *strides = means_store(cfg.pack_rows)
    stride = "".join(f"\n        mov vw_setup, {word}" for word in strides)
    lines = [f"""
        mov {RB_PIXEL_BYTES}, unif
        mov {RB_SCALE}, unif"""]
    emit = lines.append
    emit(table_prologue(RA_TASK_POINTER, RA_TASKS_LEFT, scope=scope, between=f"""        mov r0, {VPM_ROW}
        mul24 r2, r1, r0"""))
    emit(f"""        mov r0, {vpm_setup(1, 1, h32(0))}
        add {RB_VPM_SETUP}, r0, r2
        mov r0, {VDW_ROW}
        mul24 r2, r1, r0
        mov r0, {store}
        add {RB_VDW_SETUP}, r0, r2
:{scope('task')}
        mov unif_addr, {RA_TASK_POINTER}
        shl r2, elem_num, 2
        mov r0, {4 * TASK_WORDS}
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        add r3, unif, r2
        mov {RA_OUT}, unif
        mov r0, 0""")
    requests = [f"add r3, r3, {RB_PIXEL_BYTES}; mov t{n % 2}s, r3" for n in range(cfg.pixels)]
    for n in range(min(AHEAD, cfg.pixels)):
        emit(f"        {requests[n]}")
    emit("        nop; ldtmu0")
    for n in range(cfg.pixels):                   # r4 holds pixel n; pop n + 1 as it is added
        pop = f"; nop; ldtmu{(n + 1) % 2}" if n + 1 < cfg.pixels else ""
        emit(f"        fadd r0, r0, r4{pop}")
        if n + AHEAD < cfg.pixels:
            emit(f"        {requests[n + AHEAD]}")
    emit(f"""        nop; fmul r0, r0, {RB_SCALE}
        mov vw_setup, {RB_VPM_SETUP}
        mov vpm, r0
        mov vw_setup, {RB_VDW_SETUP}{stride}
        mov vw_addr, {RA_OUT}
        mov -, vw_wait
        sub.setf {RA_TASKS_LEFT}, {RA_TASKS_LEFT}, 1
        brr.anynz -, r:{scope('task')}
        nop
        nop
        nop
""")
    emit(scope.end())
    return "\n".join(lines)



__all__ = ["PoolKernel", "means_store"]
