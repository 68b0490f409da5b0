"""3x3 depthwise convolution on up to 12 QPUs, bias and ReLU6 fused.

NHWC float32. The 16 lanes hold 16 channels, so one input vector x[h, w, c:c + 16] is one 64-byte
line, read by a TMU. A task is one output row of one 16-channel group: the QPU loads the group's 9
weight vectors and its bias into registers, then for each output pixel gathers its 9 input vectors
(alternating TMU0 and TMU1, 8 requests ahead) and sums the products in r0. Four pixels at a time go
through the QPU's own 4 VPM rows to memory by one VDW store. The input comes already padded (the host
pads it here; in a chained network the producing layer writes into a zero-bordered buffer), so the
kernel has no edge cases. The layer is memory-bound: a pixel needs 9 fmul + 9 fadd for 64 bytes
out and 64 (stride 1) or 256 (stride 2) bytes in, and the QPUs outrun the DMA and SDRAM rates
(performance.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import qpuasm
from qpuasm.builtins import dma_h32, h32, vdw_setup_0, vpm_setup

from . import reference
from .tasks import EPILOGUE, deal, free_all, run_tasks, table_prologue

LANES = 16
MAX_QPUS = 12
TAPS = 9
PIXELS = 4                                    # output pixels per loop iteration = VPM rows per QPU
AHEAD = 8                                     # TMU requests in flight (4 per TMU, semantics.md §8.2)
TASK_WORDS = 5                                # [input, weights, bias, output address, output rows]
TASKS_PER_QPU = 3                             # tasks per QPU the row interleave aims at
VPM_ROW = vpm_setup(0, 1, h32(1)) - vpm_setup(0, 1, h32(0))
VDW_ROW = vdw_setup_0(1, 16, dma_h32(1, 0)) - vdw_setup_0(1, 16, dma_h32(0, 0))

# Registers: input tap bases ra0..ra8, weights rb0..rb8, the pixel column offsets rb9..rb12.
RA_BASE = [f"ra{t}" for t in range(TAPS)]
RB_WEIGHT = [f"rb{t}" for t in range(TAPS)]
RB_COLUMN = [f"rb{9 + p}" for p in range(PIXELS)]
RA_TASK_POINTER, RA_TASKS_LEFT, RA_OUT, RA_COUNT, RA_X, RA_W = "ra31", "ra30", "ra29", "ra28", "ra27", "ra26"
RB_BIAS, RB_ROW_BYTES, RB_PIXEL_BYTES, RB_ITERATIONS = "rb31", "rb30", "rb29", "rb27"
RA_STEP = "ra25"
RB_VPM_SETUP, RB_VDW_SETUP, RB_VDW_STRIDE, RB_OUT_STEP, RB_CHANNEL_BYTES = "rb26", "rb25", "rb24", "rb23", "rb22"
RA_ROWS, RB_ROW_STEP, RB_OUT_GAP = "ra24", "rb28", "rb21"


@dataclass(frozen=True)
class DepthwiseKernel:
    stride: int = 1
    relu6: bool = True

    def source(self) -> str:
        return kernel_source(self)


def kernel_source(cfg: DepthwiseKernel) -> str:
    """Uniforms: input row bytes, C * 4, input pixel step (stride * C * 4), iterations per row, the
    VDW stride (C * 4 - 64), input and output steps per iteration, input step per output row, the
    output's gap between rows, then the task table (tasks.py). A task: [address of the top-left
    input pixel of its first row's window + 64 * group, weights (3, 3, C) + 64 * group, bias + 64 *
    group, output row address + 64 * group, output rows]."""
    lines: list[str] = []
    emit = lines.append
    emit(f"""
        mov {RB_ROW_BYTES}, unif
        mov {RB_CHANNEL_BYTES}, unif
        mov {RB_PIXEL_BYTES}, unif
        mov {RB_ITERATIONS}, unif
        mov {RB_VDW_STRIDE}, unif
        mov {RA_STEP}, unif
        mov {RB_OUT_STEP}, unif
        mov {RB_ROW_STEP}, unif
        mov {RB_OUT_GAP}, unif""")
    emit(table_prologue(RA_TASK_POINTER, RA_TASKS_LEFT, f"""        mov r0, {PIXELS * VPM_ROW}
        mul24 r2, r1, r0
        mov r0, {vpm_setup(0, 1, h32(0))}"""))
    emit(f"""        add {RB_VPM_SETUP}, r0, r2
        mov r0, {PIXELS * VDW_ROW}
        mul24 r2, r1, r0
        mov r0, {vdw_setup_0(PIXELS, 16, dma_h32(0, 0))}
        add {RB_VDW_SETUP}, r0, r2
        mov r0, vdw_setup_1(0)
        add {RB_VDW_STRIDE}, {RB_VDW_STRIDE}, r0
        mov r3, 6.0
:task
        mov unif_addr, {RA_TASK_POINTER}
        shl r2, elem_num, 2
        mov r0, 8
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        mov {RA_X}, unif
        mov {RA_W}, unif
        add t0s, unif, r2
        mov {RA_OUT}, unif
        mov {RA_ROWS}, unif
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0
        mov r0, 4
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, r0""")
    # The nine weight vectors (w[kh, kw, group] at (3 kh + kw) * C * 4) by TMU1, four in flight; the
    # bias, requested above by TMU0.
    emit(f"        add r1, {RA_W}, r2")
    for t in range(TAPS):
        if t:
            emit(f"        add r1, r1, {RB_CHANNEL_BYTES}")
        emit("        mov t1s, r1")
        if t >= 3:
            emit(f"        nop; ldtmu1\n        mov {RB_WEIGHT[t - 3]}, r4")
    for t in range(TAPS - 3, TAPS):
        emit(f"        nop; ldtmu1\n        mov {RB_WEIGHT[t]}, r4")
    emit(f"        nop; ldtmu0\n        mov {RB_BIAS}, r4")
    # Tap bases: x + kh * row bytes + kw * C * 4 + 4 * lane.
    emit(f"        add r1, {RA_X}, r2")
    for t in range(TAPS):
        kh, kw = divmod(t, 3)
        if kw == 0 and kh > 0:
            emit(f"        add r1, r0, {RB_ROW_BYTES}")
        if kw == 0:
            emit("        mov r0, r1")
        else:
            emit(f"        add r1, r1, {RB_CHANNEL_BYTES}")
        emit(f"        mov {RA_BASE[t]}, r1")
    emit(":row")
    for p in range(PIXELS):                                            # column offsets of the 4 pixels
        emit(f"        mov r1, {p}\n        mul24 {RB_COLUMN[p]}, r1, {RB_PIXEL_BYTES}")
    emit(f"""        mov {RA_COUNT}, {RB_ITERATIONS}
:pixels
        mov -, vw_wait
        sub.setf {RA_COUNT}, {RA_COUNT}, 1
        mov vw_setup, {RB_VPM_SETUP}""")
    loads = [(p, t) for p in range(PIXELS) for t in range(TAPS)]      # load n on TMU n % 2

    def request(n: int) -> str:
        p, t = loads[n]
        return f"add t{n % 2}s, {RA_BASE[t]}, {RB_COLUMN[p]}"
    for n in range(AHEAD):
        emit(f"        {request(n)}")
    # Load n: one instruction multiplies it (popped into r4 by the one before) and adds the previous
    # product, another requests load n + AHEAD (a TMU write and an ldtmu never share one, rule 14).
    body = [f"mov r0, {RB_BIAS}; nop; ldtmu0"]
    for n, (p, t) in enumerate(loads):
        add = "fadd r0, r0, r1" if t else "nop"
        pop = f"; ldtmu{(n + 1) % 2}" if n + 1 < len(loads) else ""
        body.append(f"{add}; fmul r1, r4, {RB_WEIGHT[t]}{pop}")
        if n + AHEAD < len(loads):
            body.append(request(n + AHEAD))
        if t == TAPS - 1:
            body.append("fadd r0, r0, r1")
            body += ["fmax r0, r0, 0", "fmin vpm, r0, r3"] if cfg.relu6 else ["mov vpm, r0"]
            if p + 1 < PIXELS:
                body.append(f"mov r0, {RB_BIAS}")
    body += [f"add {RB_COLUMN[p]}, {RB_COLUMN[p]}, {RA_STEP}" for p in range(PIXELS)]
    body += [f"mov vw_setup, {RB_VDW_SETUP}", f"mov vw_setup, {RB_VDW_STRIDE}",
             f"add {RA_OUT}, {RA_OUT}, {RB_OUT_STEP}; mov vw_addr, {RA_OUT}"]
    body.insert(len(body) - 3, "brr.anynz -, r:pixels")
    lines += [f"        {line}" for line in body]
    # The task's next output row: the taps move down, the output skips the rows of other tasks.
    emit(f"        sub.setf {RA_ROWS}, {RA_ROWS}, 1")
    emit(f"        add {RA_OUT}, {RA_OUT}, {RB_OUT_GAP}")
    for t in range(TAPS - 3):
        emit(f"        add {RA_BASE[t]}, {RA_BASE[t]}, {RB_ROW_STEP}")
    emit("        brr.anynz -, r:row")
    for t in range(TAPS - 3, TAPS):
        emit(f"        add {RA_BASE[t]}, {RA_BASE[t]}, {RB_ROW_STEP}")
    emit(f"""        sub.setf {RA_TASKS_LEFT}, {RA_TASKS_LEFT}, 1
        brr.anynz -, r:task
        nop
        nop
        nop
""")
    emit(EPILOGUE)
    return "\n".join(lines)


_PROGRAMS: dict[DepthwiseKernel, qpuasm.Program] = {}


def kernel_program(cfg: DepthwiseKernel) -> qpuasm.Program:
    if cfg not in _PROGRAMS:
        _PROGRAMS[cfg] = qpuasm.assemble(cfg.source(), filename=f"<depthwise {cfg}>")
    return _PROGRAMS[cfg]


@dataclass(frozen=True)
class DepthwisePlan:
    """The sizes of one layer as the kernel sees them: the padded input (in_h x in_w x pitch, the
    image at (top, left)), the output (out_h x out_w, computed w_pad wide: whole loop iterations)."""

    height: int
    width: int
    channels: int
    stride: int
    padding: tuple[int, int, int, int]

    @classmethod
    def of(cls, shape: tuple[int, int, int], stride: int, padding: reference.Padding) -> DepthwisePlan:
        if stride not in (1, 2):
            raise ValueError(f"stride {stride}: 1 or 2")
        height, width, channels = shape
        plan = cls(height, width, channels, stride, reference.pad_amounts(height, width, stride, padding))
        if plan.out_h < 1 or plan.out_w < 1:
            raise ValueError(f"conv_depthwise: {shape} with padding {padding!r} leaves no output")
        return plan

    @property
    def out_h(self) -> int:
        return (self.height + self.padding[0] + self.padding[1] - 3) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.width + self.padding[2] + self.padding[3] - 3) // self.stride + 1

    @property
    def c_pad(self) -> int:
        return -(-self.channels // LANES) * LANES

    @property
    def pitch(self) -> int:
        """Floats from one input pixel to the next: c_pad, plus a group when that would be an even
        number of 64-byte lines, so that the lines of one group at successive pixels spread over
        the TMU cache's and the L2's sets (at C = 1024 they would fall into 2 of the L2's 128)."""
        groups = self.c_pad // LANES
        return self.c_pad + (LANES if groups % 2 == 0 else 0)

    @property
    def w_pad(self) -> int:
        return -(-self.out_w // PIXELS) * PIXELS

    @property
    def in_h(self) -> int:
        return self.height + self.padding[0] + self.padding[1]

    @property
    def in_w(self) -> int:
        return max(self.width + self.padding[2] + self.padding[3], (self.w_pad - 1) * self.stride + 3)

    def interleave(self, qpus: int) -> int:
        """F: a task takes every F-th output row of one channel group, so that the QPUs working at
        the same time take neighbouring rows (which share input lines in the L2) while each loads
        its weights once per task; F gives about TASKS_PER_QPU tasks per QPU."""
        groups = self.c_pad // LANES
        return max(1, min(self.out_h, -(-TASKS_PER_QPU * qpus // groups)))

    def constants(self, y_row_bytes: int, qpus: int = MAX_QPUS, out_pitch: int | None = None) -> list[int]:
        """The uniforms before the task table, for output rows y_row_bytes apart and output pixels
        out_pitch floats apart (c_pad by default)."""
        row_bytes, pitch_bytes, every = self.in_w * self.pitch * 4, self.pitch * 4, self.interleave(qpus)
        out_bytes = 4 * (out_pitch or self.c_pad)
        return [row_bytes, pitch_bytes, self.stride * pitch_bytes, self.w_pad // PIXELS, out_bytes - 64,
                PIXELS * self.stride * pitch_bytes, PIXELS * out_bytes, every * self.stride * row_bytes,
                every * y_row_bytes - self.w_pad * out_bytes]

    def tasks(self, x: int, w: int, bias: int, y: int, y_row_bytes: int, qpus: int = MAX_QPUS) -> list[list[int]]:
        """[first input row, weights, bias, first output row, rows] of each task: x is the padded
        input's address, y the output's first pixel, rows y_row_bytes apart (pixels c_pad * 4 apart)."""
        row_bytes, groups, every = self.in_w * self.pitch * 4, self.c_pad // LANES, self.interleave(qpus)
        return [[x + first * self.stride * row_bytes + 64 * g, w + 64 * g, bias + 64 * g,
                 y + first * y_row_bytes + 64 * g, len(range(first, self.out_h, every))]
                for g in range(groups) for first in range(every)]

    def pad_input(self, x: np.ndarray) -> np.ndarray:
        top, _, left, _ = self.padding
        padded = np.zeros((self.in_h, self.in_w, self.pitch), np.float32)
        padded[top:top + self.height, left:left + self.width, :self.channels] = x
        return padded

    def pad_weights(self, w, bias) -> tuple[np.ndarray, np.ndarray]:
        weights = np.zeros((3, 3, self.pitch), np.float32)
        weights[:, :, :self.channels] = w
        biases = np.zeros(self.c_pad, np.float32)
        if bias is not None:
            biases[:self.channels] = np.asarray(bias, np.float32).reshape(-1)
        return weights, biases


def conv_depthwise(drv, x, w, bias=None, stride: int = 1, padding: reference.Padding = "tf_same",
                   relu6: bool = True, n_qpus: int = MAX_QPUS):
    """3x3 depthwise convolution of x (H, W, C) by w (3, 3, C), + bias, ReLU6: (result, report)."""
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    if x.ndim != 3 or w.shape != (3, 3, x.shape[2]):
        raise ValueError(f"conv_depthwise: x {x.shape} (H, W, C) and w {w.shape} (3, 3, C) do not match")
    plan = DepthwisePlan.of(x.shape, stride, padding)
    weights, biases = plan.pad_weights(w, bias)
    blocks: list = []
    try:
        x_gpu, w_gpu, b_gpu = (drv.copy(array) for array in (plan.pad_input(x), weights, biases))
        blocks += [x_gpu, w_gpu, b_gpu]
        y_gpu = drv.alloc((plan.out_h, plan.w_pad, plan.c_pad), np.float32)
        blocks.append(y_gpu)
        y_row_bytes = plan.w_pad * plan.c_pad * 4
        items = plan.tasks(x_gpu.address, w_gpu.address, b_gpu.address, y_gpu.address, y_row_bytes, n_qpus)
        code = drv.program(kernel_program(DepthwiseKernel(stride, relu6)))
        blocks.append(code)
        report = run_tasks(drv, code, deal(items, n_qpus), TASK_WORDS, plan.constants(y_row_bytes, n_qpus), False,
                           blocks)
        result = np.array(y_gpu[:, :plan.out_w, :plan.channels])
    finally:
        free_all(drv, blocks)
    return result, report


__all__ = ["DepthwiseKernel", "DepthwisePlan", "conv_depthwise", "kernel_program"]
