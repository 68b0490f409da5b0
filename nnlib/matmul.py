"""SGEMM on up to 12 QPUs, and the kernels built on it (pointwise convolution, fully connected).

C (M x N) = A (M x K) @ B (K x N), float32. C is cut into tiles of `rows` rows by 16 columns (32 with
float16 weights). For one tile a QPU keeps one accumulator (16 lanes = 16 columns) per row and
column half in regfiles A and B, and for each k multiplies B's row k (read by TMU0, `prefetch` rows
ahead) by A[i, k] for each row i. A[i, k] comes from the uniform stream, which hands every lane the
same 32-bit value for free: A is packed once per call, tile by tile, k-major, and the QPU points its
uniform stream at the tile's pack (unif_addr). So the inner loop issues one fmul (MUL ALU) and one
fadd (ADD ALU) per instruction: 32 flops per 4 clocks, the QPU's peak.

Memory traffic decides the rest (performance.md §4: SDRAM is far slower than the QPUs can eat):
- The QPUs form a grid: with 3 x 4, the four QPUs of a slice work on the same rows of A (their
  slice's uniforms cache serves all four from one line fill) and on four different column strips,
  which the three slices share through the L2. A QPU finds its task list by qpu_num.
- The uniform stream would stall on every line that comes from SDRAM; so once per loop iteration
  a TMU1 request touches the 16 lines of A the next iteration reads, bringing them into the L2.
- With float16 weights, one 32-bit word of B holds the columns j and j + 16: the r4 unpack
  (16a, 16b, semantics.md §5.2) turns each half into float32 as the fmul reads it, so one TMU load
  feeds two accumulators and B's traffic halves.

Bias (one per column) and ReLU6 are fused into the store, which goes through each QPU's own VPM rows
and VDW DMA stores, which no TMU of this run has cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import qpuasm
from qpuasm.builtins import dma_h32, h32, vdw_setup_0, vpm_setup

from . import reference
from .tasks import EPILOGUE, free_all, run_tasks, table_prologue

LANES = 16
MAX_QPUS = 12
QPUS_PER_SLICE = 4
ACCUMULATORS = [f"r{f}{j}" for j in range(25) for f in "ab"]    # ra0, rb0, ra1, ...: pairs init together
MAX_ACCUMULATORS = len(ACCUMULATORS)
LINE_BYTES = 64
A_PREFETCH_BYTES = LANES * LINE_BYTES     # one TMU1 request touches 16 lines
UNIFORMS_CACHE_BYTES = 4096               # per slice (semantics.md §8.6: VC4C's emulator models 4 KB)
A_REQUESTS_AHEAD = 2                      # TMU1 requests in flight between iterations
TASK_WORDS = 5                            # [A pack address, B address, C address, bias address, next A pack]
# QPU grids (rows x columns) in which every slice reads one A stream: a direct-mapped uniforms cache
# shared by two streams thrashes as soon as they drift into the same lines (simulator/cache.py).
GRIDS = ((3, 4), (1, 12))
# The cost model overrates grids of several QPU rows (their slices drift apart over B's strips):
# measured in `vc4 bench`, 3x4 beat 1x12 where 1x12 leaves QPUs idle (pw 128->256 @28: 59 % vs
# 45 %) but lost where the model put them within ~10 % (pw 256->512 @14: 54 % vs 66 %, SGEMM 1024^3:
# 62 % vs 72 %, modeled 14 % cheaper). So a multi-row grid must be modeled 20 % cheaper to be chosen.
MULTI_ROW_GRID_HANDICAP = 1.2

STORE_ROWS = 4                            # VPM rows of each QPU's own store buffer: rows 4q..4q+3
# Registers besides the accumulators (ra0..ra24, rb0..rb24).
RA_C_CHUNK, RA_TASK_POINTER, RA_TASKS_LEFT, RA_COUNT, RA_A_PREFETCH, RA_C, RA_BIAS = (f"ra{j}" for j in range(25, 32))
RB_CHUNK_BYTES, RB_A_BYTES, RB_B_STRIDE, RB_VDW_STRIDE, RB_VPM_BASE, RB_A_STEP, RB_VDW_BASE = (
    f"rb{j}" for j in range(25, 32))
# What one VPM row adds to a generic setup and to a VDW setup (from the assembler's builtins).
VPM_ROW = vpm_setup(0, 1, h32(1)) - vpm_setup(0, 1, h32(0))
VDW_ROW = vdw_setup_0(1, 16, dma_h32(1, 0)) - vdw_setup_0(1, 16, dma_h32(0, 0))


@dataclass(frozen=True)
class GemmKernel:
    """What one compiled variant bakes in."""

    rows: int = 32                   # rows of C per tile
    unroll: int = 8                  # k-steps per loop iteration
    prefetch: int = 4                # B rows requested ahead (at most 4 in flight, semantics.md §8.2)
    halves: int = 1                  # 2: float16 B, two 16-column halves per word
    bias: bool = False
    relu6: bool = False

    def __post_init__(self) -> None:
        if self.halves not in (1, 2):
            raise ValueError("halves: 1 (float32 B) or 2 (float16 B)")
        if not 1 <= self.rows * self.halves <= MAX_ACCUMULATORS or self.rows > 64:
            raise ValueError(f"rows={self.rows}: 1 to {MAX_ACCUMULATORS // self.halves} with halves={self.halves}")
        if not 1 <= self.unroll or self.step_bytes > A_PREFETCH_BYTES:
            raise ValueError(f"unroll={self.unroll}: one iteration must read at most {A_PREFETCH_BYTES} bytes of A")
        if not 1 <= self.prefetch <= 4:
            raise ValueError("prefetch: 1 to 4 rows ahead")

    @property
    def slots(self) -> int:
        """Accumulators, and uniforms read per k-step."""
        return self.rows * self.halves

    @property
    def step_bytes(self) -> int:
        """Bytes of the A pack one loop iteration reads."""
        return 4 * self.slots * self.unroll

    def source(self) -> str:
        return kernel_source(self)


def max_unroll(slots: int) -> int:
    return A_PREFETCH_BYTES // (4 * slots)


def kernel_source(cfg: GemmKernel) -> str:
    """The kernel as QPU assembly. Uniforms: bytes of a tile's A pack, B row stride (bytes), C row stride - 64,
    the bytes of STORE_ROWS rows of C, then the task table (tasks.py). A task is [A pack address, B address
    (row 0, first column), C address, bias address, the next task's A pack address], the last one
    to bring that tile's first lines into the L2 (TMU1) while this one runs."""
    s, lines = cfg.slots, []
    emit = lines.append
    acc = ACCUMULATORS[:s]
    unpack = [""] if cfg.halves == 1 else [".16a", ".16b"]
    emit(f"""
        mov {RB_A_BYTES}, unif
        mov {RB_B_STRIDE}, unif
        mov {RB_VDW_STRIDE}, unif
        mov {RB_CHUNK_BYTES}, unif""")
    emit(table_prologue(RA_TASK_POINTER, RA_TASKS_LEFT, f"""        mov r0, vdw_setup_1(0)
        add {RB_VDW_STRIDE}, {RB_VDW_STRIDE}, r0
        mov r0, {STORE_ROWS * VPM_ROW}
        mul24 {RB_VPM_BASE}, r1, r0"""))
    emit(f"""        mov r0, {STORE_ROWS * VDW_ROW}
        mul24 {RB_VDW_BASE}, r1, r0
        mov {RB_A_STEP}, {cfg.step_bytes}
:task
        mov unif_addr, {RA_TASK_POINTER}
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, 8
        shl r1, elem_num, 6
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, 8
        mov r0, unif
        mov r3, unif
        mov {RA_C}, unif
        mov {RA_BIAS}, unif
        add t1s, unif, r1
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, 4
        mov unif_addr, r0
        add t1s, r0, r1
        add r0, r0, r1
        add {RA_A_PREFETCH}, r0, {RB_A_STEP}
        shl r0, elem_num, 2
        mov r2, {RB_B_STRIDE}
        add r3, r3, r0
        mov {RA_COUNT}, {RB_A_BYTES}""")
    for j in range(0, s, 2):                                   # ra{j} and rb{j} in one instruction
        emit("        " + "; ".join(f"mov {a}, 0" for a in acc[j:j + 2]))
    for _ in range(cfg.prefetch):
        emit("        add r3, r3, r2; mov t0s, r3")
    emit("        mov r1, 0\n:kloop")
    # The count is in bytes of the A pack left (a register operand: a small immediate and a signal
    # share one field); r4 <- B row k.
    body = [f"sub.setf {RA_COUNT}, {RA_COUNT}, {RB_A_STEP}; nop; ldtmu0",
            f"add {RA_A_PREFETCH}, {RA_A_PREFETCH}, {RB_A_STEP}; mov t1s, {RA_A_PREFETCH}"]
    for u in range(cfg.unroll):
        body.append("add r3, r3, r2; mov t0s, r3")                     # request row k + prefetch
        for j in range(s):
            previous = acc[j - 1]                                        # acc[-1] for j = 0
            last = j == s - 1
            signal = "" if not last else "; ldtmu1" if u == cfg.unroll - 1 else "; ldtmu0"
            body.append(f"fadd {previous}, {previous}, r1; fmul r1, unif, r4{unpack[j % cfg.halves]}{signal}")
    body.insert(len(body) - 3, "brr.anynz -, r:kloop")                  # the last 3 are its delay slots
    lines += [f"        {line}" for line in body]
    emit(f"        fadd {acc[-1]}, {acc[-1]}, r1")                         # the last product
    for _ in range(cfg.prefetch):
        emit("        nop; ldtmu0")                                        # the rows beyond K
    for _ in range(A_REQUESTS_AHEAD):
        emit("        nop; ldtmu1")                                        # the next tile's A, and beyond
    for half in range(cfg.halves):
        _emit_store(emit, cfg, acc[half::cfg.halves], half)
    # No wait for the last store here: it runs on while the next tile computes (the next store
    # waits for it before reusing the VPM rows, the epilogue before the program ends).
    emit(f"""        sub.setf {RA_TASKS_LEFT}, {RA_TASKS_LEFT}, 1
        brr.anynz -, r:task
        nop
        nop
        nop
""")
    emit(EPILOGUE)
    return "\n".join(lines)


def _emit_store(emit, cfg: GemmKernel, accumulators: list[str], half: int) -> None:
    """Bias, ReLU6 and the store of one column half of a tile, STORE_ROWS rows at a time through
    this QPU's own VPM rows (no mutex: the QPUs stay in step, which their shared uniform and L2
    lines need) and a VDW store each, waiting for the previous one before reusing the rows."""
    if cfg.bias:
        emit(f"""        shl r0, elem_num, 2
        mov r1, {4 * LANES * half}
        add r0, r0, r1
        add t0s, {RA_BIAS}, r0
        nop; ldtmu0
        mov r2, r4""")
    if cfg.relu6:
        emit("        mov r3, 6.0")
    emit(f"""        mov r1, {4 * LANES * half}
        add {RA_C_CHUNK}, {RA_C}, r1""")
    for first in range(0, len(accumulators), STORE_ROWS):
        chunk = accumulators[first:first + STORE_ROWS]
        emit(f"""        mov -, vw_wait
        mov r1, {vpm_setup(0, 1, h32(0))}
        add vw_setup, r1, {RB_VPM_BASE}""")
        for value in chunk:
            if cfg.bias:
                emit(f"        fadd r0, {value}, r2")
                value = "r0"
            if cfg.relu6:
                emit(f"        fmax r0, {value}, 0")
                emit("        fmin vpm, r0, r3")
            else:
                emit(f"        mov vpm, {value}")
        emit(f"""        mov r1, {vdw_setup_0(len(chunk), 16, dma_h32(0, 0))}
        add vw_setup, r1, {RB_VDW_BASE}
        mov vw_setup, {RB_VDW_STRIDE}
        add {RA_C_CHUNK}, {RA_C_CHUNK}, {RB_CHUNK_BYTES}; mov vw_addr, {RA_C_CHUNK}""")


_PROGRAMS: dict[GemmKernel, qpuasm.Program] = {}


def kernel_program(cfg: GemmKernel) -> qpuasm.Program:
    if cfg not in _PROGRAMS:
        _PROGRAMS[cfg] = qpuasm.assemble(cfg.source(), filename=f"<gemm {cfg}>")
    return _PROGRAMS[cfg]


@dataclass(frozen=True)
class GemmPlan:
    """How one product is cut: tile shape, unroll, and the grid of QPUs."""

    m: int
    n: int
    k: int
    rows: int
    unroll: int
    halves: int = 1
    grid: tuple[int, int] | None = None      # (QPU rows, QPU columns), or None: tiles dealt round-robin
    qpus: int = MAX_QPUS

    @property
    def strip(self) -> int:
        return LANES * self.halves

    @property
    def m_pad(self) -> int:
        return -(-self.m // self.rows) * self.rows

    @property
    def n_pad(self) -> int:
        return -(-self.n // self.strip) * self.strip

    @property
    def k_pad(self) -> int:
        return -(-self.k // self.unroll) * self.unroll

    def task_lists(self) -> list[list[tuple[int, int]]]:
        """The (row, column) tiles of each program (list index = qpu_num with a grid). On a grid,
        QPU q takes the row tiles q // columns, + grid rows, ... and in each the column strips
        q % columns, + grid columns, ..."""
        row_tiles = range(0, self.m_pad, self.rows)
        strips = range(0, self.n_pad, self.strip)
        if self.grid is None:
            tiles = [(i, j) for j in strips for i in row_tiles]
            return [tiles[q::self.qpus] for q in range(self.qpus)]
        g_rows, g_cols = self.grid
        return [[(i, j) for i in row_tiles[q // g_cols::g_rows] for j in strips[q % g_cols::g_cols]]
                for q in range(g_rows * g_cols)]

    @property
    def a_tile_bytes(self) -> int:
        """Distance between the packs of consecutive row tiles: whole uniforms caches (4 KB) plus a
        quarter, so that streams of different row tiles that share a slice's direct-mapped uniforms
        cache (when tiles are dealt round-robin) start in different quarters of it."""
        stream = 4 * self.rows * self.halves * self.k_pad
        return -(-stream // LINE_BYTES) * LINE_BYTES

    def pack_a(self, a: np.ndarray) -> np.ndarray:
        """A as the uniform stream reads it: per tile of `rows` rows, k-major, each value `halves`
        times (zeros where padded), tiles a_tile_bytes apart, then room for the TMU1 prefetch."""
        padded = np.zeros((self.m_pad, self.k_pad), np.float32)
        padded[:self.m, :self.k] = a
        tiles = padded.reshape(self.m_pad // self.rows, self.rows, self.k_pad).transpose(0, 2, 1)
        streams = np.repeat(tiles, self.halves, axis=2).reshape(len(tiles), -1)
        out = np.zeros((len(tiles) * self.a_tile_bytes + 2 * A_PREFETCH_BYTES) // 4, np.float32)
        words = self.a_tile_bytes // 4
        for t, stream in enumerate(streams):
            out[t * words:t * words + len(stream)] = stream
        return out

    def pack_b(self, b: np.ndarray, prefetch: int) -> np.ndarray:
        """B with the columns padded to a whole strip and zero rows beyond K for the prefetch; with
        float16 weights each word holds column j (low half) and j + 16 (high half) of its strip."""
        padded = np.zeros((self.k_pad + prefetch, self.n_pad), np.float32)
        padded[:self.k, :self.n] = b
        if self.halves == 1:
            return padded
        halves = padded.astype(np.float16).view(np.uint16).reshape(-1, self.n_pad // 32, 2, LANES)
        return (halves[:, :, 0].astype(np.uint32) | halves[:, :, 1].astype(np.uint32) << 16).reshape(
            padded.shape[0], -1)


def plan_gemm(m: int, n: int, k: int, halves: int = 1, n_qpus: int = MAX_QPUS,
              rows: int | None = None, unroll: int | None = None, grid: tuple[int, int] | None = None) -> GemmPlan:
    """The cheapest tiling by a small cost model: per-QPU instruction count, or the SDRAM traffic
    of the A streams and B strips in flight when that is slower (simulator/timing.py's port rate),
    or the one VDW engine storing every tile's chunks when that is slower still."""
    from simulator.timing import param
    port = param("memory_bytes_per_clock")
    # One VDW engine stores every QPU's chunks of STORE_ROWS rows, each costing its latency too.
    chunk_clocks = param("dma_latency") + STORE_ROWS * LANES * 4 / param("vdw_bytes_per_clock")
    best: tuple[tuple[float, float], GemmPlan] | None = None
    for r in ([rows] if rows else range(4, MAX_ACCUMULATORS // halves + 1)):
        slots = r * halves
        top = max_unroll(slots)
        for u in ([unroll] if unroll else sorted({top} | {1 << e for e in range(top.bit_length())})):
            if u > max_unroll(slots) or u < 1:
                continue
            k_pad = -(-k // u) * u
            step_clocks = 4 * (slots + 1 + 2 / u)
            row_tiles, strips = -(-m // r), -(-n // (LANES * halves))
            # A grid with several QPU rows gets at least two row tiles per QPU row: with one, the
            # slices stream all of B each (measured: fp16 pw 512->1024 @7, 74 % -> 44 %).
            grids = [g for g in ([grid] if grid else GRIDS) if g[0] * g[1] <= n_qpus and strips >= g[1]
                     and row_tiles >= (g[0] if grid or g[0] == 1 else 2 * g[0])]
            for candidate in grids or [None]:
                g_rows, g_cols = candidate or (1, min(n_qpus, row_tiles * strips))
                tiles = -(-row_tiles // g_rows) * -(-strips // g_cols)
                traffic = (g_rows * 4 * slots + g_cols * LINE_BYTES) / port
                cost = tiles * (k_pad * max(step_clocks, traffic) + 4 * (slots + 60))
                if g_rows > 1:
                    cost *= MULTI_ROW_GRID_HANDICAP
                stores = row_tiles * strips * halves * -(-r // STORE_ROWS) * chunk_clocks
                key = (max(cost, stores), cost)           # ties on the store bound: the faster QPUs
                plan = GemmPlan(m, n, k, r, u, halves, candidate, g_rows * g_cols)
                if best is None or key < best[0]:
                    best = (key, plan)
    assert best is not None
    return best[1]


def matmul(drv, a, b, bias=None, relu6: bool = False, *, weights: str = "float32", rows: int | None = None,
           unroll: int | None = None, prefetch: int = 4, n_qpus: int = MAX_QPUS, grid: tuple[int, int] | None = None):
    """relu6?(a @ b + bias) on the QPUs: (float32 result (M, N), report). weights="float16" stores
    B as float16 (half the traffic; B is rounded to float16 first)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or min(a.shape + b.shape) < 1:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not multiply")
    if weights not in ("float32", "float16"):
        raise ValueError(f"weights={weights!r}: 'float32' or 'float16'")
    halves = 2 if weights == "float16" else 1
    plan = plan_gemm(a.shape[0], b.shape[1], a.shape[1], halves, n_qpus, rows, unroll, grid)
    cfg = GemmKernel(plan.rows, plan.unroll, prefetch, halves, bias is not None, relu6)
    lists = plan.task_lists()
    blocks: list = []
    try:
        packed = _keep(blocks, drv.copy(plan.pack_a(a)))
        b_gpu = _keep(blocks, drv.copy(plan.pack_b(b, prefetch)))
        c_gpu = _keep(blocks, drv.alloc((plan.m_pad, plan.n_pad), np.float32))
        bias_gpu = _keep(blocks, drv.copy(_padded(bias, plan.n_pad))) if bias is not None else None
        task_lists = []
        for tiles in lists:
            a_packs = [packed.address + i // plan.rows * plan.a_tile_bytes for i, _ in tiles]
            task_lists.append([[a_pack, b_gpu.address + 4 * j // halves, c_gpu.address + 4 * (i * plan.n_pad + j),
                                (bias_gpu.address + 4 * j) if bias_gpu is not None else 0, next_pack]
                               for (i, j), a_pack, next_pack in zip(tiles, a_packs, a_packs[1:] + a_packs[-1:],
                                                                    strict=True)])
        constants = [plan.k_pad // plan.unroll * cfg.step_bytes, 4 * plan.n_pad // halves, 4 * plan.n_pad - 64,
                     STORE_ROWS * 4 * plan.n_pad]
        code = _keep(blocks, drv.program(kernel_program(cfg)))
        report = run_tasks(drv, code, task_lists, TASK_WORDS, constants,
                           plan.grid is not None and len(lists) == MAX_QPUS, blocks)
        result = np.array(c_gpu[:plan.m, :plan.n])
    finally:
        free_all(drv, blocks)
    return result, report


def _keep(blocks: list, array):
    blocks.append(array)
    return array


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
           "plan_gemm", "reference"]
