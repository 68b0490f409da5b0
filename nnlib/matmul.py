"""SGEMM on up to 12 QPUs, and the kernels built on it (pointwise convolution, fully connected).

C (M x N) = A (M x K) @ B (K x N), float32, tiled into blocks of ROWS rows x 16 columns of C; each QPU
takes every 12th tile. For one tile the QPU keeps ROWS accumulators (ra0..) of 16 lanes (the 16
columns) and, for each k, multiplies B's row k (16 columns, read by TMU, prefetched four rows ahead)
by A[i, k] for each row i of the tile. A[i, k] comes from the uniform stream, which gives every lane
the same 32-bit value for free: A is packed once per call, tile by tile, k-major, and the QPU points
its uniform stream at the tile's pack (unif_addr). So the inner loop issues one fmul (MUL ALU) and one
fadd (ADD ALU) per instruction, 32 flops per 4 clocks, the QPU's peak; per k it adds one TMU
prefetch, and per UNROLL k-steps a counter and a branch (whose 3 delay slots do real work).

Bias (one per column) and ReLU6 are fused into the store. The result goes through the VPM (rows
0..ROWS-1, taken under the mutex) and a VDW DMA store, which no TMU of this run has cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import qpuasm

from . import reference

LANES = 16
MAX_QPUS = 12
ACCUMULATOR_LIMIT = 24               # ra0..ra23 hold accumulators; ra24..ra31 the loop's own registers


@dataclass(frozen=True)
class GemmKernel:
    """What one compiled variant bakes in."""

    rows: int = 24                   # rows of C per tile (accumulators)
    unroll: int = 2                  # k-steps per loop iteration
    prefetch: int = 4                # B rows requested ahead (at most 4 in flight, semantics.md §8.2)
    bias: bool = False
    relu6: bool = False

    def __post_init__(self) -> None:
        if not 2 <= self.rows <= ACCUMULATOR_LIMIT or self.rows > 64:
            raise ValueError(f"rows={self.rows}: 2 to {ACCUMULATOR_LIMIT}")
        if self.unroll < 1:
            raise ValueError("unroll must be at least 1")
        if not 1 <= self.prefetch <= 4:
            raise ValueError("prefetch: 1 to 4 rows ahead")

    def source(self) -> str:
        return kernel_source(self)


# Registers of the kernel (besides the accumulators ra0..ra{rows-1}).
RA_COUNT, RA_TASK_POINTER, RA_A, RA_B, RA_TASKS_LEFT = "ra31", "ra30", "ra29", "ra28", "ra27"
RB_K_LOOPS, RB_VDW_STRIDE, RB_LANE4, RB_B_STRIDE, RB_C, RB_BIAS = "rb1", "rb2", "rb5", "rb9", "rb6", "rb7"
RB_TASK_BYTES = "rb10"
TASK_WORDS = 4


def kernel_source(cfg: GemmKernel) -> str:
    """The kernel as QPU assembly. Uniforms: k-loop count, B row stride (bytes), C row stride - 64,
    task count, task list address; a task is [A pack address, B address (row 0, first column),
    C address, bias address] (4 words)."""
    r, lines = cfg.rows, []
    emit = lines.append
    acc = [f"ra{j}" for j in range(r)]
    emit(f"""
        mov {RB_K_LOOPS}, unif
        mov {RB_B_STRIDE}, unif
        mov {RB_VDW_STRIDE}, unif
        mov {RA_TASKS_LEFT}, unif
        mov {RA_TASK_POINTER}, unif
        shl {RB_LANE4}, elem_num, 2
        mov r0, vdw_setup_1(0)
        add {RB_VDW_STRIDE}, {RB_VDW_STRIDE}, r0
        mov {RB_TASK_BYTES}, {4 * TASK_WORDS}
:task
        mov unif_addr, {RA_TASK_POINTER}
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, {RB_TASK_BYTES}
        mov r2, {RB_B_STRIDE}
        mov r1, 0
        mov {RA_A}, unif
        mov {RA_B}, unif
        mov {RB_C}, unif
        mov {RB_BIAS}, unif
        add r3, {RA_B}, {RB_LANE4}
        mov unif_addr, {RA_A}
        mov {RA_COUNT}, {RB_K_LOOPS}""")
    for j in range(r):
        emit(f"        mov {acc[j]}, 0")
    for _ in range(cfg.prefetch):
        emit("        add r3, r3, r2; mov t0s, r3")
    emit("""        nop; ldtmu0
:kloop""")
    body: list[str] = []
    for u in range(cfg.unroll):
        body.append("add r3, r3, r2; mov t0s, r3")                     # request row k + prefetch
        if u == 0:
            body.append(f"sub.setf {RA_COUNT}, {RA_COUNT}, 1")
        for j in range(r):
            previous = acc[j - 1]                                        # ra{rows-1} for j = 0
            signal = "; ldtmu0" if j == r - 1 else ""                  # row k + 1 into r4 for the next step
            body.append(f"fadd {previous}, {previous}, r1; fmul r1, unif, r4{signal}")
    body.insert(len(body) - 3, "brr.anynz -, r:kloop")                  # the last 3 are its delay slots
    lines += [f"        {line}" for line in body]
    emit(f"        fadd {acc[-1]}, {acc[-1]}, r1")                         # the last product
    for _ in range(cfg.prefetch - 1):
        emit("        nop; ldtmu0")                                        # the rows beyond K
    if cfg.bias:
        emit(f"""        mov r0, {RB_LANE4}
        add t0s, {RB_BIAS}, r0
        nop; ldtmu0
        mov r2, r4""")
    if cfg.relu6:
        emit("        mov r3, 6.0")
    emit("""        mov -, mutex
        mov vw_setup, vpm_setup(0, 1, h32(0))""")
    for j in range(r):
        value = acc[j]
        if cfg.bias:
            emit(f"        fadd r0, {value}, r2")
            value = "r0"
        if cfg.relu6:
            emit(f"        fmax r0, {value}, 0")
            emit("        fmin vpm, r0, r3")
        else:
            emit(f"        mov vpm, {value}")
    emit(f"""        mov vw_setup, vdw_setup_0({r}, 16, dma_h32(0, 0))
        mov vw_setup, {RB_VDW_STRIDE}
        mov vw_addr, {RB_C}
        mov -, vw_wait
        mov mutex, 0
        sub.setf {RA_TASKS_LEFT}, {RA_TASKS_LEFT}, 1
        brr.anynz -, r:task
        nop
        nop
        nop
        mov irq, 1
        nop; nop; thrend
        nop
        nop""")
    return "\n".join(lines) + "\n"


_PROGRAMS: dict[GemmKernel, qpuasm.Program] = {}


def kernel_program(cfg: GemmKernel) -> qpuasm.Program:
    if cfg not in _PROGRAMS:
        _PROGRAMS[cfg] = qpuasm.assemble(cfg.source(), filename=f"<gemm {cfg}>")
    return _PROGRAMS[cfg]


@dataclass
class GemmPlan:
    """Padded sizes and the packed operands of one product."""

    m: int
    n: int
    k: int
    rows: int
    unroll: int

    @property
    def m_pad(self) -> int:
        return -(-self.m // self.rows) * self.rows

    @property
    def n_pad(self) -> int:
        return -(-self.n // LANES) * LANES

    @property
    def k_pad(self) -> int:
        return -(-self.k // self.unroll) * self.unroll

    @property
    def tiles(self) -> list[tuple[int, int]]:
        """Column strip by column strip, so that the QPUs working at the same time mostly read the
        same rows of B, which one L2 line fill then serves."""
        return [(i, j) for j in range(0, self.n_pad, LANES) for i in range(0, self.m_pad, self.rows)]

    def pack_a(self, a: np.ndarray) -> np.ndarray:
        """A as the uniform stream reads it: per block of `rows` rows, k-major (zeros where padded)."""
        padded = np.zeros((self.m_pad, self.k_pad), np.float32)
        padded[:self.m, :self.k] = a
        return np.ascontiguousarray(padded.reshape(self.m_pad // self.rows, self.rows, self.k_pad).transpose(0, 2, 1))

    def pad_b(self, b: np.ndarray, prefetch: int) -> np.ndarray:
        """B with the columns padded to 16 and zero rows beyond K for the prefetch."""
        padded = np.zeros((self.k_pad + prefetch, self.n_pad), np.float32)
        padded[:self.k, :self.n] = b
        return padded


def matmul(drv, a, b, bias=None, relu6: bool = False, *, rows: int = 24, unroll: int = 2, prefetch: int = 4,
           n_qpus: int = MAX_QPUS):
    """relu6?(a @ b + bias) on the QPUs: (float32 result (M, N), report)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or min(a.shape + b.shape) < 1:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not multiply")
    plan = GemmPlan(a.shape[0], b.shape[1], a.shape[1], rows, unroll)
    cfg = GemmKernel(rows, unroll, prefetch, bias is not None, relu6)
    packed = drv.copy(plan.pack_a(a))
    b_gpu = drv.copy(plan.pad_b(b, prefetch))
    c_gpu = drv.alloc((plan.m_pad, plan.n_pad), np.float32)
    bias_gpu = drv.copy(_padded(bias, plan.n_pad)) if bias is not None else None
    tiles = plan.tiles
    qpus = max(1, min(n_qpus, len(tiles)))
    per_qpu = [tiles[q::qpus] for q in range(qpus)]
    tasks = drv.alloc((len(tiles), TASK_WORDS), np.uint32)
    uniforms, row = [], 0
    for q in range(qpus):
        first = row
        for i, j in per_qpu[q]:
            tasks[row] = [packed.address + 4 * i * plan.k_pad, b_gpu.address + 4 * j, c_gpu.address + 4 * (
                i * plan.n_pad + j), (bias_gpu.address + 4 * j) if bias_gpu is not None else 0]
            row += 1
        uniforms.append([plan.k_pad // unroll, 4 * plan.n_pad, 4 * plan.n_pad - 64, len(per_qpu[q]),
                         tasks.address + 4 * TASK_WORDS * first])
    code = drv.program(kernel_program(cfg))
    report = drv.execute(code, uniforms, n_qpus=qpus, timeout=10.0)
    result = np.array(c_gpu[:plan.m, :plan.n])
    for array in (packed, b_gpu, c_gpu, tasks) + ((bias_gpu,) if bias_gpu is not None else ()):
        drv.free(array)
    drv.memory.release(code.block)
    return result, report


def _padded(vector, length: int) -> np.ndarray:
    out = np.zeros(length, np.float32)
    vector = np.asarray(vector, np.float32).reshape(-1)
    out[:len(vector)] = vector
    return out


def gemm(drv, a, b, c=None, alpha: float = 1.0, beta: float = 0.0, **options):
    """alpha * a @ b + beta * c: (float32 result, report). alpha scales A as it is packed; the beta
    term is added on the host (for now)."""
    a = np.asarray(a, np.float32)
    scaled = a if alpha == 1.0 else (a * np.float32(alpha)).astype(np.float32)
    result, report = matmul(drv, scaled, b, **options)
    if c is not None and beta != 0.0:
        result = (result + np.float32(beta) * np.asarray(c, np.float32)).astype(np.float32)
    return result, report


def conv_pointwise(drv, x, w, bias=None, relu6: bool = True, **options):
    """1x1 convolution, x (H, W, Cin) and w (Cin, Cout), bias and ReLU6 fused: (result, report)."""
    x = np.asarray(x, np.float32)
    h, width, cin = x.shape
    result, report = matmul(drv, x.reshape(h * width, cin), w, bias, relu6, **options)
    return result.reshape(h, width, -1), report


def fully_connected(drv, x, w, bias=None, **options):
    """x (Cin,) @ w (Cin, Cout) + bias: (result (Cout,), report)."""
    result, report = matmul(drv, np.asarray(x, np.float32).reshape(1, -1), w, bias, False, **options)
    return result.reshape(-1), report


__all__ = ["GemmKernel", "GemmPlan", "conv_pointwise", "fully_connected", "gemm", "kernel_program", "matmul",
           "reference"]
