"""SGEMM on up to 12 QPUs, and the kernels built on it (pointwise convolution, fully connected).

C (M x N) = A (M x K) @ B (K x N), float32. C is cut into tiles of `rows` rows by 16 columns. For
one tile a QPU keeps one accumulator (16 lanes = 16 columns) per row in regfiles A and B, and for
each k multiplies B's row k (read by TMU0, `prefetch` rows ahead) by A[i, k] for each row i. A[i, k]
comes from the uniform stream, which hands every lane the same 32-bit value for free: A is packed
once per call, tile by tile, k-major, and the QPU points its uniform stream at the tile's pack
(unif_addr). So the inner loop issues one fmul (MUL ALU) and one fadd (ADD ALU) per instruction: 32
flops per 4 clocks, the QPU's peak.

Memory traffic decides the rest (performance.md §4: SDRAM is far slower than the QPUs can eat):
- The QPUs form a grid: with 3 x 4, the four QPUs of a slice work on the same rows of A (their
  slice's uniforms cache serves all four from one line fill) and on four different column strips,
  which the three slices share through the L2. A QPU finds its task list by qpu_num.
- The uniform stream would stall on every line that comes from SDRAM; so once per loop iteration a
  TMU1 request touches the 16 lines of A the next iteration reads, bringing them into the L2.
- With float16 weights, one 32-bit word of B holds rows k and k + 1 of its column: the r4 unpack
  (16a, 16b, semantics.md §5.2) turns each half into float32 as the fmul reads it, so one TMU load
  feeds two k-steps of every accumulator and B's traffic halves, while tiles stay as tall and A's
  pack the same as with float32.

The bias (one per column), or gemm's beta * C, or the bias plus a residual's tile (a skip connection,
MobileNet v2's Add, read by TMU0 before the k-loop), is where a tile's accumulators start; ReLU6 is fused
into the store, which goes through each QPU's own VPM rows and VDW DMA stores, which no TMU of this
run has cached. One VDW engine serves all 12 QPUs, and stores issued by all of them at the end of
every tile queue for it while the QPUs wait: so, with tiles of up to 24 accumulators, two sets take
turns (`overlap`): one computes a tile while the other, the tile before, goes out a chunk at a time
between the phases of the k-loop. Larger tiles (up to 50 accumulators, which small M with large K
and N needs so that B is read once) store at the tile's end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import qpuasm
from qpuasm import isa
from qpuasm.builtins import dma_h32, h32, vdw_setup_0, vpm_setup
from vc4common import host

from . import reference
from .nonfinite import warn_nonfinite
from .pool import means_store
from .tasks import (
    ALONE,
    VDW_ROW,
    VPM_ROW,
    Scope,
    branch_at_end,
    free_all,
    keep,
    padded_vector,
    run_tasks,
    table_prologue,
)

LANES = isa.LANES
MAX_QPUS = host.QPUS
QPUS_PER_SLICE = 4
ACCUMULATORS = [f"r{f}{j}" for j in range(25) for f in "ab"]    # ra0, rb0, ra1, ...: pairs move together
MAX_SLOTS = 24                            # per set when two sets take turns (ra24, rb24 then hold ReLU6's bounds)
LINE_BYTES = 64
A_PREFETCH_BYTES = LANES * LINE_BYTES     # one TMU1 request touches 16 lines
UNIFORMS_CACHE_BYTES = 4096               # per slice (semantics.md §8.6: VC4C's emulator models 4 KB)
A_REQUESTS_AHEAD = 2                      # TMU1 requests in flight between iterations
TASK_WORDS = 5                            # [A pack address, B address, C address, bias address, next A pack]
RESIDUAL_TASK_WORDS = TASK_WORDS + 1      # ... and the residual's tile
# QPU grids (rows x columns). In 3x4 and 1x12 every slice reads one A stream; 6x2 puts two in each
# slice's 4-way uniforms cache, for products of fewer than 4 column strips (the figures behind this
# and the constants below: BENCHMARKS.md, "Why the GEMM planner's constants").
GRIDS = ((3, 4), (1, 12), (6, 2))
# The cost model overrates grids of several QPU rows (their slices drift apart over B's strips): 3x4
# beats 1x12 where 1x12 leaves QPUs idle, but loses where the model puts them within ~10 %. So a
# multi-row grid must be modeled 20 % cheaper to be chosen.
MULTI_ROW_GRID_HANDICAP = 1.2
# A k-loop phase of fewer iterations than this stalls on the uniform stream (the A prefetch barely
# runs ahead). The cost model does not see it, so the planner unrolls only when every phase keeps
# this many.
MIN_ITERATIONS = 4

# Each QPU owns STORE_ROWS rows of the VPM's 64 (semantics.md §8.3): 12 x 5 = 60. Every VDW store
# costs the engine its latency, so the largest chunk that fits is the cheapest per row.
STORE_ROWS = 5
# Registers besides the accumulators (ra0..ra24, rb0..rb24). With two sets, ReLU6's bounds for values in
# either regfile are in ra24 and rb24 (r1..r3 are the k-loop's); with one, in r1 and r2 at the tile's end.
RA_ZERO, RB_SIX = "ra24", "rb24"
BETA, C_IN_STRIDE = "ra24", "rb24"        # with accumulate (no ReLU6 then); a residual's rows: C_IN_STRIDE
RA_C_CHUNK, RA_TASK_POINTER, RA_TASKS_LEFT, RA_COUNT, RA_A_PREFETCH, RA_C, RA_PHASES = (f"ra{j}" for j in range(25, 32))
RA_SCALE = RA_C_CHUNK                     # with mean: 1 / rows (no chunks are stored then)
RB_CHUNK_BYTES, RB_PHASE_BYTES, RB_B_STRIDE, RB_VDW_STRIDE, RB_VPM_BASE, RB_A_STEP, RB_VDW_BASE = (
    f"rb{j}" for j in range(25, 32))


def chunk_rows(pairs: bool) -> int:
    """Rows of C one VDW store takes: STORE_ROWS VPM rows, each one pixel of float32 or, with
    pairs, two of float16."""
    return STORE_ROWS * (2 if pairs else 1)


def chunk_count(rows: int, pairs: bool = False) -> int:
    """VDW stores per tile: one of the tile's last rows % chunk_rows (or chunk_rows) rows, then
    full ones."""
    return -(-rows // chunk_rows(pairs))


@dataclass(frozen=True)
class GemmKernel:
    """What one compiled variant bakes in."""

    rows: int = 20                   # rows of C per tile
    unroll: int = 8                  # k-steps per loop iteration
    prefetch: int = 4                # B rows requested ahead (at most 4 in flight, semantics.md §8.2)
    halves: int = 1                  # 2: float16 B, rows k and k + 1 in the halves of one word
    bias: bool = False
    relu6: bool = False
    overlap: bool = True             # two accumulator sets: a tile's stores run during the next tile
    accumulate: bool = False         # the tile starts from beta * C_in (gemm's beta), not the bias
    residual: bool = False           # the tile starts from the bias plus the residual's tile
    pairs: bool = False              # C as float16 pixel pairs (network.Layout.pairs): rows 2t and 2t + 1
    #                                  of a tile in the low and high halves of one word
    # The tile (all of C's rows) averaged after ReLU6, one vector per strip stored as pool.means_store
    # does (a global average pool fused into its producer: no pass over C through memory).
    mean: bool = False
    mean_pack_rows: int = 0          # 0: the means as a vector; else into a GEMM's A pack of this many rows

    def __post_init__(self) -> None:
        if self.halves not in (1, 2):
            raise ValueError("halves: 1 (float32 B) or 2 (float16 B)")
        if self.accumulate and (self.bias or self.relu6):
            raise ValueError("accumulate (beta * C) goes without bias and ReLU6")
        if self.residual and (self.accumulate or self.relu6):
            raise ValueError("a residual goes without accumulate and ReLU6 (its registers hold the bias)")
        if self.pairs and (self.accumulate or self.residual or self.rows % 2):
            raise ValueError("float16 pairs of C: an even number of rows, without accumulate or a residual")
        if self.mean and (self.overlap or self.pairs or self.accumulate or self.residual):
            raise ValueError("mean: one set of accumulators, float32, without accumulate or a residual")
        most = max_slots(self.overlap, self.accumulate, self.residual)
        least = self.halves          # with float16 B a row's two products of one load must not meet
        if not least <= self.rows <= most:
            raise ValueError(f"rows={self.rows}: {least} to {most} with halves={self.halves}, overlap={self.overlap}")
        if not 1 <= self.unroll or self.step_bytes > A_PREFETCH_BYTES:
            raise ValueError(f"unroll={self.unroll}: one iteration must read at most {A_PREFETCH_BYTES} bytes of A")
        if not 1 <= self.prefetch <= 4:
            raise ValueError("prefetch: 1 to 4 rows ahead")

    @property
    def task_words(self) -> int:
        return RESIDUAL_TASK_WORDS if self.residual else TASK_WORDS

    @property
    def reads(self) -> int:
        """Uniforms (values of A) read per TMU load of B: a row's A[i, k] for each k the load holds."""
        return self.rows * self.halves

    @property
    def step_bytes(self) -> int:
        """Bytes of the A pack one loop iteration reads."""
        return 4 * self.reads * self.unroll

    @property
    def chunk_rows(self) -> int:
        return chunk_rows(self.pairs)

    @property
    def phases(self) -> int:
        """The k-loop runs in this many equal phases, the previous tile's chunk stores between them."""
        return chunk_count(self.rows, self.pairs) if self.overlap else 1

    def source(self, scope: Scope = ALONE) -> str:
        return kernel_source(self, scope)


def max_slots(overlap: bool, accumulate: bool, residual: bool = False) -> int:
    """Accumulators of one set: with overlap two sets share the registers; accumulate keeps beta and
    C_in's row stride in ra24, rb24, a residual its row stride in rb24 (its bias passes through r0
    while the tile starts)."""
    return MAX_SLOTS if overlap else len(ACCUMULATORS) - (2 if accumulate else 1 if residual else 0)


def max_unroll(reads: int) -> int:
    return A_PREFETCH_BYTES // (4 * reads)


def kernel_source(cfg: GemmKernel, scope: Scope = ALONE) -> str:
    """The kernel as QPU assembly. Uniforms: bytes of A one k-loop phase reads, B row stride (bytes), C row
    stride - 64, the bytes of STORE_ROWS rows of C, a scratch area of `rows` rows of C (where the
    first tile's stores of the idle set go), with accumulate beta and C_in's row stride, then the
    task table (tasks.py). A task is [A pack address, B address (row 0, first column), C address,
    bias address (with accumulate: C_in's tile), the next task's A pack address], the last to bring
    that tile's first lines into the L2 (TMU1) while this one runs; with residual also the residual's
    tile, whose row stride follows the scratch area among the uniforms.

    Set A computes a tile while set B, the tile before, goes out chunk by chunk between the k-loop's
    phases, so that the stores of all QPUs spread over the computation instead of queueing for the
    one VDW engine at the end of every tile; at the tile's end set A moves to set B."""
    s, lines = cfg.rows, []
    emit = lines.append
    acc = ACCUMULATORS[:s]
    idle = ACCUMULATORS[s:2 * s] if cfg.overlap else acc
    unpack = [""] if cfg.halves == 1 else [".16a", ".16b"]
    emit(f"""
        mov {RB_PHASE_BYTES}, unif
        mov {RB_B_STRIDE}, unif
        mov {RB_VDW_STRIDE}, unif
        mov {RB_CHUNK_BYTES}, unif
        mov {RA_C_CHUNK}, unif""")
    if cfg.accumulate:
        emit(f"        mov {BETA}, unif\n        mov {C_IN_STRIDE}, unif")
    if cfg.residual:
        emit(f"        mov {C_IN_STRIDE}, unif")
    emit(table_prologue(RA_TASK_POINTER, RA_TASKS_LEFT, scope=scope, between=f"""        mov r0, vdw_setup_1(0)
        add {RB_VDW_STRIDE}, {RB_VDW_STRIDE}, r0
        mov r0, {STORE_ROWS * VPM_ROW}
        mul24 {RB_VPM_BASE}, r1, r0"""))
    emit(f"""        mov r0, {STORE_ROWS * VDW_ROW}
        mul24 {RB_VDW_BASE}, r1, r0
        mov {RB_A_STEP}, {cfg.step_bytes}
""")
    if cfg.overlap and not (cfg.accumulate or cfg.residual):
        emit(f"        mov {RA_ZERO}, 0\n        mov {RB_SIX}, 6.0")
    for j in range(0, s if cfg.overlap else 0, 2):     # the idle set's first stores go to the scratch rows
        emit("        " + "; ".join(f"mov {a}, 0" for a in idle[j:j + 2]))
    residual_word = f"\n        mov {RA_COUNT}, unif" if cfg.residual else ""     # RA_COUNT: free until the k-loop
    emit(f""":{scope('task')}
        mov unif_addr, {RA_TASK_POINTER}
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, 8
        shl r1, elem_num, 6
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, 8
        mov r0, unif
        mov r3, unif
        mov {RA_C}, unif
        mov r2, unif
        add t1s, unif, r1{residual_word}
        add {RA_TASK_POINTER}, {RA_TASK_POINTER}, {4 * (cfg.task_words - 4)}
        mov unif_addr, r0
        add t1s, r0, r1
        add r0, r0, r1
        add {RA_A_PREFETCH}, r0, {RB_A_STEP}
        shl r0, elem_num, 2
        add r3, r3, r0""")
    # Set A starts from beta * C_in (a TMU load per accumulator, 4 in flight), the bias or zero.
    if cfg.accumulate:
        _emit_scaled_c(emit, cfg, acc)
        start = ""
    elif cfg.residual:
        _emit_residual(emit, cfg, acc)
        start = ""
    elif cfg.bias:
        emit("        add t0s, r2, r0\n        nop; ldtmu0")
        start = "r4"
    else:
        start = "0"
    for j in range(0, s if start else 0, 2):                   # ra{j} and rb{j} in one instruction
        emit("        " + "; ".join(f"mov {a}, {start}" for a in acc[j:j + 2]))
    emit(f"        mov r2, {RB_B_STRIDE}")
    for _ in range(cfg.prefetch):
        emit("        add r3, r3, r2; mov t0s, r3")
    if cfg.overlap:
        _emit_first_chunk(emit, cfg, idle)
    emit(f"""        mov {RA_COUNT}, {RB_PHASE_BYTES}
        mov r1, 0
        mov {RA_PHASES}, {cfg.phases}
:{scope('kloop')}""")
    # The count is in bytes of the A phase left (a register operand: a small immediate and a signal
    # share one field); r4 <- B row k (with float16 B rows k and k + 1: the first `rows` products
    # take row k's half, the next row k + 1's).
    body = [f"sub.setf {RA_COUNT}, {RA_COUNT}, {RB_A_STEP}; nop; ldtmu0",
            f"add {RA_A_PREFETCH}, {RA_A_PREFETCH}, {RB_A_STEP}; mov t1s, {RA_A_PREFETCH}"]
    for u in range(cfg.unroll):
        body.append("add r3, r3, r2; mov t0s, r3")                     # request row k + prefetch
        for j in range(cfg.reads):
            previous = acc[(j - 1) % s]                                  # acc[-1] for j = 0
            last = j == cfg.reads - 1
            signal = "" if not last else "; ldtmu1" if u == cfg.unroll - 1 else "; ldtmu0"
            body.append(f"fadd {previous}, {previous}, r1; fmul r1, unif, r4{unpack[j // cfg.rows]}{signal}")
    lines += [f"        {line}" for line in branch_at_end(body, f"brr.anynz -, r:{scope('kloop')}")]
    # Between phases (the last product still in r1) one full chunk of the idle set goes out.
    emit(f"""        sub.setf {RA_PHASES}, {RA_PHASES}, 1
        brr.allz -, r:{scope('tile_end')}
        nop
        nop
        nop""")
    _emit_chunk(emit, cfg, idle, 0, cfg.chunk_rows)
    emit(f"        add {RA_C_CHUNK}, {RA_C_CHUNK}, {RB_CHUNK_BYTES}")
    # The idle set's rows move up by the chunk, so that the next chunk is in the same registers.
    halves = _halves(cfg, idle)
    moves = [(values[i], values[i + cfg.chunk_rows]) for i in range(cfg.rows - cfg.chunk_rows) for values in halves]
    for pair in _pairs(moves):
        emit("        " + "; ".join(f"mov {dst}, {src}" for dst, src in pair))
    emit(f"""        brr -, r:{scope('kloop')}
        mov {RA_COUNT}, {RB_PHASE_BYTES}
        nop
        nop
:{scope('tile_end')}""")
    emit(f"        fadd {acc[-1]}, {acc[-1]}, r1")                         # the last product
    for _ in range(cfg.prefetch):
        emit("        nop; ldtmu0")                                        # the rows beyond K
    for _ in range(A_REQUESTS_AHEAD):
        emit("        nop; ldtmu1")                                        # the next tile's A, and beyond
    if cfg.overlap:
        for j in range(0, s, 2):                                           # set A -> set B
            emit("        " + "; ".join(f"mov {b}, {a}" for a, b in zip(acc[j:j + 2], idle[j:j + 2], strict=True)))
    if not cfg.mean:
        emit(f"        mov {RA_C_CHUNK}, {RA_C}")
    if not cfg.overlap:
        if cfg.relu6:
            emit("        mov r1, 0\n        mov r2, 6.0")
        (_emit_mean if cfg.mean else _emit_all_chunks)(emit, cfg, acc)
    emit(f"""        sub.setf {RA_TASKS_LEFT}, {RA_TASKS_LEFT}, 1
        brr.anynz -, r:{scope('task')}
        nop
        nop
        nop""")
    if cfg.overlap:
        _emit_all_chunks(emit, cfg, idle)                                  # the last tile
    emit(scope.end())
    return "\n".join(lines)


def _emit_mean(emit, cfg: GemmKernel, acc: list[str]) -> None:
    """The mean of the tile's rows (each through ReLU6, r1 = 0 and r2 = 6.0, summed in row order
    as pool.py sums pixels), through this QPU's first VPM row to RA_C as pool.means_store says."""
    for i, value in enumerate(acc):
        if cfg.relu6:
            emit(f"        fmax r0, {value}, {'0' if value.startswith('ra') else 'r1'}")   # an immediate takes B's port
            emit("        fmin r0, r0, r2")
            value = "r0"
        emit(f"        fadd r3, r3, {value}" if i else f"        mov r3, {value}")
    setup, *strides = means_store(cfg.mean_pack_rows)
    emit(f"""        fmul r3, r3, {RA_SCALE}
        mov -, vw_wait
        mov r0, {vpm_setup(0, 1, h32(0))}
        add vw_setup, r0, {RB_VPM_BASE}
        mov vpm, r3
        mov r0, {setup}
        add vw_setup, r0, {RB_VDW_BASE}""")
    for word in strides:
        emit(f"        mov vw_setup, {word}")
    emit(f"        mov vw_addr, {RA_C}")


def _emit_residual(emit, cfg: GemmKernel, acc: list[str]) -> None:
    """acc = the bias (its address in r2, + r0: the lane's word) + the residual's tile (its first row
    in RA_COUNT); the bias waits in r0 (the lane's word no longer needed)."""
    if cfg.bias:
        emit("        add t0s, r2, r0")
    emit(f"        mov r2, {RA_COUNT}\n        add r2, r2, r0")
    if cfg.bias:
        emit("        nop; ldtmu0\n        mov r0, r4")
    _emit_tile_loads(emit, cfg, acc, "fadd {value}, r4, r0" if cfg.bias else "mov {value}, r4", offset=False)


def _emit_scaled_c(emit, cfg: GemmKernel, acc: list[str]) -> None:
    """acc = beta * C_in's tile, r2 pointing at its first row (+ r0: the lane's word)."""
    _emit_tile_loads(emit, cfg, acc, f"fmul {{value}}, r4, {BETA}")


def _emit_tile_loads(emit, cfg: GemmKernel, acc: list[str], start: str, offset: bool = True) -> None:
    """Each accumulator from its row of a tile (rows C_IN_STRIDE apart) that r2 points at (+ r0:
    the lane's word, unless `offset` is False: added already): `start` with the row in r4."""
    if offset:
        emit("        add r2, r2, r0")
    requests = []
    for row in range(cfg.rows):
        requests.append("mov t0s, r2")
        if row + 1 < cfg.rows:
            requests.append(f"add r2, r2, {C_IN_STRIDE}")
    # Each accumulator pops its row in order; requests run at most 4 ahead (semantics.md §8.2).
    pending, issued = 0, 0
    for value in acc:
        while pending < 4 and issued < len(requests):
            line = requests[issued]
            emit(f"        {line}")
            issued += 1
            pending += "t0s" in line
        emit(f"        nop; ldtmu0\n        {start.format(value=value)}")
        pending -= 1
    assert issued == len(requests)


def _halves(cfg: GemmKernel, values: list[str]) -> list[list[str]]:
    """A set's accumulators by 16-column strip, in row order (one strip per tile)."""
    return [values[:cfg.rows]]


def _emit_chunk(emit, cfg: GemmKernel, values: list[str], start: int, count: int, offset: int = 0) -> None:
    """ReLU6 (the bias is in already) and the VDW store of rows start..start + count - 1 of a set,
    each column half through this QPU's own VPM rows, waiting for its previous store before reusing
    them; to RA_C_CHUNK + offset chunks. Only r0 changes besides: the k-loop's r1..r4 stay."""
    for h, column_half in enumerate(_halves(cfg, values)):
        emit(f"""        mov -, vw_wait
        mov r0, {vpm_setup(0, 1, h32(0))}
        add vw_setup, r0, {RB_VPM_BASE}""")
        zero, six = (RA_ZERO, RB_SIX) if cfg.overlap else ("r1", "r2")
        if cfg.pairs:       # rows 2t and 2t + 1 in ra_x and rb_x: sets and chunks start at even rows
            emit("\n".join(f"        {line}" for line in
                           float16_pair_writes(column_half[start:start + count], cfg.relu6, six, "r0", zero)))
        else:
            for value in column_half[start:start + count]:
                if cfg.relu6:
                    zero_here = "0" if value.startswith("ra") else zero    # a small immediate takes B's port
                    emit(f"        fmax r0, {value}, {zero_here}")
                    emit(f"        fmin vpm, r0, {six}")
                else:
                    emit(f"        mov vpm, {value}")
        address = [f"mov r0, {4 * LANES}", f"add r0, r0, {RA_C_CHUNK}"] if h else [f"mov r0, {RA_C_CHUNK}"]
        address += [f"add r0, r0, {RB_CHUNK_BYTES}"] * offset
        emit(f"""        mov r0, {vdw_setup_0(count // 2 if cfg.pairs else count, 16, dma_h32(0, 0))}
        add vw_setup, r0, {RB_VDW_BASE}
        mov vw_setup, {RB_VDW_STRIDE}""")
        emit("\n".join(f"        {line}" for line in address + ["mov vw_addr, r0"]))


def float16_pair_writes(values: list[str], relu6: bool, six: str, temp: str, zero: str = "0") -> list[str]:
    """Values 2t and 2t + 1 (ReLU6 through `temp` if asked) as float16 in the halves of value 2t's
    register, which must be in regfile A (the regfile-A pack converts a float result, semantics.md
    §5.3; a pack into the VPM's I/O register would write whole words), then one 32-bit VPM row per
    pair, written one pair later (a value written by one instruction is read two later: qpu-isa.md
    §16 rule 1). `zero`: what fmax reads as 0 beside a value in regfile B (a small immediate takes
    B's port). The GEMM's pairs store and expand.py's share it."""
    lines, lows = [], values[0::2]
    for t, (low, high) in enumerate(zip(lows, values[1::2], strict=True)):
        assert low.startswith("ra"), "a pair is packed into a regfile-A register"
        for half, value in ((".16a", low), (".16b", high)):
            if relu6:
                lines += [f"fmax {temp}, {value}, {'0' if value.startswith('ra') else zero}",
                          f"fmin {low}{half}, {temp}, {six}"]
            else:
                lines.append(f"fmin {low}{half}, {value}, {value}")
        if t:
            lines.append(f"mov vpm, {lows[t - 1]}")
    return lines + ["nop"] * (len(lows) == 1) + [f"mov vpm, {lows[-1]}"]


def _emit_first_chunk(emit, cfg: GemmKernel, values: list[str]) -> None:
    """A tile's first chunk: its last rows (rows % chunk_rows of them, or chunk_rows), so that the
    full chunks that follow start at row 0."""
    full = chunk_count(cfg.rows, cfg.pairs) - 1
    _emit_chunk(emit, cfg, values, cfg.chunk_rows * full, cfg.rows - cfg.chunk_rows * full, full)


def _emit_all_chunks(emit, cfg: GemmKernel, values: list[str]) -> None:
    """All of a tile's stores, straight-line, from RA_C_CHUNK (which advances)."""
    _emit_first_chunk(emit, cfg, values)
    for first in range(0, cfg.chunk_rows * (chunk_count(cfg.rows, cfg.pairs) - 1), cfg.chunk_rows):
        _emit_chunk(emit, cfg, values, first, cfg.chunk_rows)
        emit(f"        add {RA_C_CHUNK}, {RA_C_CHUNK}, {RB_CHUNK_BYTES}")


def _pairs(moves: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The moves in order, two per instruction where one reads and writes regfile A and the other B."""
    out: list[list[tuple[str, str]]] = []
    for move in moves:
        if out and len(out[-1]) == 1 and out[-1][0][1][:2] != move[1][:2] and out[-1][0][0][:2] != move[0][:2]:
            out[-1].append(move)
        else:
            out.append([move])
    return out


_PROGRAMS: dict[GemmKernel, qpuasm.Program] = {}


def kernel_program(cfg: GemmKernel) -> qpuasm.Program:
    if cfg not in _PROGRAMS:
        _PROGRAMS[cfg] = qpuasm.assemble(cfg.source(), filename=f"<gemm {cfg}>")
    return _PROGRAMS[cfg]


def float16_weights(b) -> np.ndarray:
    """B as the QPU multiplies it with float16 weights: rounded to float16, and half denormals as
    zero (the r4 unpack turns them into float32 denormals, which fmul flushes: semantics.md §5.1)."""
    halves = np.asarray(b, np.float32).astype(np.float16)
    halves[np.abs(halves) < np.finfo(np.float16).tiny] = 0
    return halves.astype(np.float32)


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
    overlap: bool = True                     # stores of a tile during the next (GemmKernel.overlap)
    exact: bool = False                      # C has m rows, not m_pad (row_start)
    clocks: float = field(default=0.0, compare=False)    # the planner's modeled cost (plan_gemm)
    balanced: bool = False                   # without a grid: tiles row by row, not strip by strip
    pairs: bool = False                      # C as float16 pixel pairs (GemmKernel.pairs)

    def __post_init__(self) -> None:
        if self.balanced and self.grid is not None:
            raise ValueError("balanced deals tiles without a grid")
        if self.pairs and (self.rows % 2 or self.m % 2):
            raise ValueError("float16 pairs of C: an even number of rows in a tile and in C")

    @property
    def strip(self) -> int:
        return LANES

    @property
    def m_pad(self) -> int:
        return -(-self.m // self.rows) * self.rows

    @property
    def n_pad(self) -> int:
        return -(-self.n // self.strip) * self.strip

    @property
    def phases(self) -> int:
        return chunk_count(self.rows, self.pairs) if self.overlap else 1

    @property
    def k_pad(self) -> int:
        """K padded to whole loop iterations in every phase of the k-loop (a load holds `halves` k)."""
        step = self.unroll * self.phases * self.halves
        return -(-self.k // step) * step

    def task_lists(self) -> list[list[tuple[int, int]]]:
        """The (row, column) tiles of each program (list index = qpu_num with a grid, or balanced).
        On a grid, QPU q takes the row tiles q // columns, + grid rows, ... and in each the column
        strips q % columns, + grid columns, ... Without one the tiles are dealt round-robin: strip
        by strip, or, balanced, row tile by row tile, so that the QPUs (each slice's four among
        them) work on one row tile's strips at a time and share its A stream as on a 1 x 12 grid,
        while their tile counts differ by at most one, where a grid whose columns do not divide
        the strips leaves QPUs idle (32 strips on 1 x 12: 12 tiles for some QPUs, 8 for others)."""
        row_tiles = range(0, self.m_pad, self.rows)
        strips = range(0, self.n_pad, self.strip)
        if self.grid is None:
            tiles = ([(i, j) for i in row_tiles for j in strips] if self.balanced else
                     [(i, j) for j in strips for i in row_tiles])
            return [tiles[q::self.qpus] for q in range(self.qpus)]
        g_rows, g_cols = self.grid
        return [[(i, j) for i in row_tiles[q // g_cols::g_rows] for j in strips[q % g_cols::g_cols]]
                for q in range(g_rows * g_cols)]

    def row_start(self, i: int) -> int:
        """The first row of C of the row tile that starts at row i of the padded product: with
        `exact` the last tile is moved up to end at row m (it recomputes rows of the tile before),
        so that no padding row is stored past C's end (where a consumer's zero rows may lie)."""
        return min(i, self.m - self.rows) if self.exact else i

    def tasks(self, pack: int, b: int, c: int, bias: int | None, c_in: int | None = None,
              pitch: int | None = None, residual: int | None = None,
              residual_pitch: int | None = None) -> list[list[list[int]]]:
        """The task lists (task_lists' tiles) for A packed at `pack` (pack_a), B at `b` (pack_b),
        C at `c` (rows `pitch` floats apart, n_pad by default; m_pad rows, m with `exact`) and the
        bias at `bias` (or None), or, with accumulate, C_in (m_pad x n_pad) at `c_in`; with a
        residual at `residual` (rows `residual_pitch` floats apart, as many as C's), its tile too.
        With pairs, C's rows come two to a row of `pitch` words."""
        pitch = pitch or self.n_pad
        lists = []
        for tiles in self.task_lists():
            packs = [pack + i // self.rows * self.a_tile_bytes for i, _ in tiles]
            lists.append([[a_pack, b + 4 * j, c + 4 * (self.row_start(i) // (2 if self.pairs else 1) * pitch + j),
                           c_in + 4 * (i * self.n_pad + j) if c_in is not None else
                           bias + 4 * j if bias is not None else 0, next_pack]
                          + ([residual + 4 * (self.row_start(i) * (residual_pitch or pitch) + j)]
                             if residual is not None else [])
                          for (i, j), a_pack, next_pack in zip(tiles, packs, packs[1:] + packs[-1:], strict=True)])
        return lists

    def constants(self, cfg: GemmKernel, scratch: int, beta: float = 0.0, pitch: int | None = None,
                  residual_pitch: int | None = None) -> list[int]:
        """The kernel's uniforms before the task table: C's rows `pitch` floats apart (n_pad by
        default), a scratch area of `rows` such rows that is written and never read (scratch_bytes;
        the idle set's first stores go there; with mean 1 / rows in its place), beta with
        accumulate, the residual's row stride."""
        pitch = pitch or self.n_pad
        scaled = [int(np.float32(beta).view(np.uint32)), 4 * self.n_pad] if cfg.accumulate else []
        skip = [4 * (residual_pitch or pitch)] if cfg.residual else []
        fifth = int(np.float32(1.0 / self.rows).view(np.uint32)) if cfg.mean else scratch     # RA_SCALE
        return [4 * self.rows * self.k_pad // self.phases, 4 * self.n_pad,
                4 * pitch - 64, STORE_ROWS * 4 * pitch, fifth] + scaled + skip

    def scratch_bytes(self, pitch: int | None = None) -> int:
        return 4 * self.rows * (pitch or self.n_pad)

    @property
    def a_tile_bytes(self) -> int:
        """Distance between the packs of consecutive row tiles: whole uniforms caches (4 KB) plus a
        quarter, so that streams of different row tiles that share a slice's direct-mapped uniforms
        cache (when tiles are dealt round-robin) start in different quarters of it."""
        stream = 4 * self.rows * self.k_pad
        return -(-stream // LINE_BYTES) * LINE_BYTES

    @property
    def pack_bytes(self) -> int:
        """The A pack: every row tile's stream, then room for the TMU1 prefetch beyond the last."""
        return self.m_pad // self.rows * self.a_tile_bytes + 2 * A_PREFETCH_BYTES

    def pack_a(self, a: np.ndarray) -> np.ndarray:
        """A as the uniform stream reads it: per tile of `rows` rows (from row_start), k-major (zeros
        where padded), tiles a_tile_bytes apart, then room for the TMU1 prefetch."""
        padded = np.zeros((self.m_pad, self.k_pad), np.float32)
        padded[:self.m, :self.k] = a
        starts = [self.row_start(i) for i in range(0, self.m_pad, self.rows)]
        tiles = np.stack([padded[r:r + self.rows] for r in starts]).transpose(0, 2, 1)
        streams = tiles.reshape(len(tiles), -1)
        out = np.zeros(self.pack_bytes // 4, np.float32)
        words = self.a_tile_bytes // 4
        for t, stream in enumerate(streams):
            out[t * words:t * words + len(stream)] = stream
        return out

    def pack_b(self, b: np.ndarray, prefetch: int) -> np.ndarray:
        """B with the columns padded to a whole strip and zero rows beyond K, and `prefetch` loads
        more for the prefetch; with float16 weights word row p holds rows 2p (low half) and 2p + 1
        (high half)."""
        padded = np.zeros((self.k_pad + prefetch * self.halves, self.n_pad), np.float32)
        padded[:self.k, :self.n] = b
        if self.halves == 1:
            return padded
        halves = float16_weights(padded).astype(np.float16).view(np.uint16).reshape(-1, 2, self.n_pad)
        return halves[:, 0].astype(np.uint32) | halves[:, 1].astype(np.uint32) << 16


def plan_gemm(m: int, n: int, k: int, halves: int = 1, n_qpus: int = MAX_QPUS, rows: int | None = None,
              unroll: int | None = None, grid: tuple[int, int] | None = None, relu6: bool = False,
              prefetch: int = 4, overlap: bool | None = None, accumulate: bool = False,
              exact: bool = False, rows_allowed: tuple[int, ...] | None = None, residual: bool = False,
              balanced: bool | None = None, pairs: bool = False) -> GemmPlan:
    """The cheapest tiling by the cost model of gemm_plans."""
    return gemm_plans(m, n, k, halves, n_qpus, rows, unroll, grid, relu6, prefetch, overlap, accumulate, exact,
                      rows_allowed, residual, balanced, pairs)[0]


def gemm_plans(m: int, n: int, k: int, halves: int = 1, n_qpus: int = MAX_QPUS, rows: int | None = None,
               unroll: int | None = None, grid: tuple[int, int] | None = None, relu6: bool = False,
               prefetch: int = 4, overlap: bool | None = None, accumulate: bool = False,
               exact: bool = False, rows_allowed: tuple[int, ...] | None = None, residual: bool = False,
               balanced: bool | None = None, pairs: bool = False) -> list[GemmPlan]:
    """Every tiling the options allow, cheapest first by a small cost model. A QPU's k-step costs
    its instructions, or the SDRAM traffic of the A streams and B strips in flight when that is
    slower (vc4common/timing.py's port rate), or the wait for B's next row from memory when
    `prefetch` rows ahead do not cover it (small tiles wait for the TMU most of the time). The one
    VDW engine stores every tile's chunks: with `overlap`, while the QPUs compute (the slower of the
    two counts); without, all QPUs wait for it after each tile (the two add up). Multi-row grids
    without overlap carry MULTI_ROW_GRID_HANDICAP: with the stores at the tiles' ends their slices
    drift apart. Besides the grids, `balanced` dealing (GemmPlan.task_lists) competes where no grid
    is asked for (balanced=True: only it; False: never). With `pairs` C is stored as float16 pixel
    pairs: half the bytes and VPM rows, tiles of even rows."""
    from vc4common.timing import param
    port, memory = param("memory_bytes_per_clock"), param("memory")
    latency, vdw_rate = param("dma_latency"), param("vdw_bytes_per_clock")
    ranked: list[tuple[tuple[float, float], int, GemmPlan]] = []
    for both in ([overlap] if overlap is not None else [True, False]):
        most = max_slots(both, accumulate, residual)
        for r in ([rows] if rows else rows_allowed or range(1, most + 1)):
            if r > most or r < halves or (exact and r > m) or (pairs and r % 2):
                continue
            reads, chunks = r * halves, chunk_count(r, pairs)
            phases = chunks if both else 1
            top = max_unroll(reads)
            # Every VDW store costs the engine its latency too.
            tile_store_clocks = chunks * latency + r * LANES * (2 if pairs else 4) / vdw_rate
            # Per chunk: ReLU6 (and the float16 packs), VPM writes, setups; with overlap also the
            # k-loop's exit and row moves.
            per_vpm_row = (5 if relu6 else 3) if pairs else (2 if relu6 else 1)
            chunk_clocks = 4 * (12 + STORE_ROWS * per_vpm_row + (r if both else 0))
            for u in ([unroll] if unroll else sorted({top} | {1 << e for e in range(top.bit_length())})):
                if u > max_unroll(reads) or u < 1:
                    continue
                step = u * phases * halves
                loads = -(-k // step) * step // halves          # TMU loads of B per tile
                if unroll is None and u > 1 and loads // phases < MIN_ITERATIONS * u:
                    continue
                step_clocks = max(4 * (reads + 1 + 2 / u), memory / prefetch)
                row_tiles, strips = -(-m // r), -(-n // LANES)
                # A grid with several QPU rows gets at least two row tiles per QPU row: with one, the
                # slices stream all of B each (BENCHMARKS.md, "Why the GEMM planner's constants").
                grids = [g for g in ([grid] if grid else GRIDS) if g[0] * g[1] <= n_qpus and strips >= g[1]
                         and row_tiles >= (g[0] if grid or g[0] == 1 else 2 * g[0])]
                candidates = [] if balanced else [(g, False) for g in grids] or [(None, False)]
                if balanced or balanced is None and grid is None and row_tiles * strips > n_qpus:
                    candidates.append((None, True))
                for candidate, deal_rows in candidates:
                    if deal_rows:          # QPUs at once: on consecutive strips of as few row tiles as can be
                        g_cols = min(n_qpus, strips)
                        g_rows = min(row_tiles, -(-n_qpus // g_cols))
                        tiles = -(-row_tiles * strips // n_qpus)
                    else:
                        g_rows, g_cols = candidate or (1, min(n_qpus, row_tiles * strips))
                        tiles = -(-row_tiles // g_rows) * -(-strips // g_cols)
                    traffic = (g_rows * 4 * reads + g_cols * LINE_BYTES) / port
                    cost = tiles * (loads * max(step_clocks, traffic) + chunks * chunk_clocks + 4 * (r + 60))
                    if g_rows > 1 and not both:
                        cost *= MULTI_ROW_GRID_HANDICAP
                    stores = row_tiles * strips * tile_store_clocks
                    key = (max(cost, stores) if both else cost + stores, cost)   # ties: the faster QPUs
                    plan = GemmPlan(m, n, k, r, u, halves, candidate, n_qpus if deal_rows else g_rows * g_cols,
                                    both, exact, key[0], deal_rows, pairs)
                    ranked.append((key, len(ranked), plan))     # ties: the first found
    assert ranked
    return [plan for _, _, plan in sorted(ranked, key=lambda entry: entry[:2])]


def tiling(plan: GemmPlan) -> tuple:
    """What distinct_plans tells apart by default: tile height, overlap, grid or dealing."""
    return plan.rows, plan.overlap, plan.grid, plan.balanced


def distinct_plans(plans: list[GemmPlan], count: int, kind=tiling) -> list[GemmPlan]:
    """The first `count` plans of different kinds (`kind(plan)`: by default their tilings), each
    the first of its kind in `plans`: unroll variants of one tiling seldom differ much, so an
    auto-tuner that measures these sees more of the space per run."""
    chosen: dict[tuple, GemmPlan] = {}
    for plan in plans:
        chosen.setdefault(kind(plan), plan)
        if len(chosen) == count:
            break
    return list(chosen.values())


# What tune= measured: the fastest plan per problem and backend, for the rest of the process.
_TUNED: dict[tuple, GemmPlan] = {}


def matmul(drv, a, b, bias=None, relu6: bool = False, *, weights: str = "float32", rows: int | None = None,
           unroll: int | None = None, prefetch: int = 4, n_qpus: int = MAX_QPUS, grid: tuple[int, int] | None = None,
           overlap: bool | None = None, c=None, beta: float = 0.0, residual=None, balanced: bool | None = None,
           tune: int = 0):
    """relu6?(a @ b + bias), or a @ b + beta * c, or a @ b + bias + residual (a skip connection,
    added in the kernel: no ReLU6 then), on the QPUs: (float32 result (M, N), report).
    weights="float16" stores B as float16 (half the traffic; B is rounded to float16 first).
    tune=N: run the N cheapest distinct tilings of the cost model (distinct_plans) on this backend
    and keep the one that took the fewest cycles (modeled on the simulator, measured on a Pi),
    remembered for this problem and backend for the rest of the process; the result and report
    are the fastest run's."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    _check_shapes("matmul", a, b)
    warn_nonfinite("nnlib.matmul", a=a, b=b, bias=bias, c=c, residual=residual)
    if weights not in ("float32", "float16"):
        raise ValueError(f"weights={weights!r}: 'float32' or 'float16'")
    if bias is not None:
        bias = np.asarray(bias, np.float32)
        if bias.shape != (b.shape[1],):
            raise ValueError(f"matmul: bias of shape {bias.shape}, expected ({b.shape[1]},): one per output column")
    accumulate = c is not None and beta != 0.0
    if accumulate:
        c = np.asarray(c, np.float32)
        if c.shape != (a.shape[0], b.shape[1]):
            raise ValueError(f"matmul: c {c.shape} is not the product's shape {(a.shape[0], b.shape[1])}")
        if bias is not None or relu6:
            raise ValueError("matmul: beta * c goes without bias and relu6")
    if residual is not None:
        residual = np.asarray(residual, np.float32)
        if residual.shape != (a.shape[0], b.shape[1]):
            raise ValueError(f"matmul: residual {residual.shape} is not the product's shape "
                             f"{(a.shape[0], b.shape[1])}")
        if accumulate or relu6:
            raise ValueError("matmul: a residual goes without beta * c and relu6")
    if tune < 0:
        raise ValueError(f"matmul: tune={tune}: the number of tilings to measure (0: the cost model's choice)")
    halves = 2 if weights == "float16" else 1
    problem = dict(m=a.shape[0], n=b.shape[1], k=a.shape[1], halves=halves, n_qpus=n_qpus, rows=rows,
                   unroll=unroll, grid=grid, relu6=relu6, prefetch=prefetch, overlap=overlap, accumulate=accumulate,
                   residual=residual is not None, balanced=balanced)
    if not tune:
        return _run_plan(drv, plan_gemm(**problem), a, b, bias, relu6, prefetch, c, beta, residual)
    key = (tuple(problem.values()), bias is not None, tune, drv.backend_name)
    if key in _TUNED:
        return _run_plan(drv, _TUNED[key], a, b, bias, relu6, prefetch, c, beta, residual)
    best = None
    for plan in distinct_plans(gemm_plans(**problem), tune):
        run = _run_plan(drv, plan, a, b, bias, relu6, prefetch, c, beta, residual)
        if best is None or run[1].cycles < best[1][1].cycles:
            best = (plan, run)
    assert best is not None
    _TUNED[key] = best[0]
    return best[1]


def _run_plan(drv, plan: GemmPlan, a: np.ndarray, b: np.ndarray, bias, relu6: bool, prefetch: int, c, beta: float,
              residual):
    """matmul with its tiling chosen: (result, report)."""
    halves, accumulate = plan.halves, c is not None and beta != 0.0
    cfg = GemmKernel(plan.rows, plan.unroll, prefetch, halves, bias is not None, relu6, plan.overlap, accumulate,
                     residual is not None)
    lists = plan.task_lists()
    blocks: list = []
    try:
        packed = keep(blocks, drv.copy(plan.pack_a(a)))
        b_gpu = keep(blocks, drv.copy(plan.pack_b(b, prefetch)))
        c_gpu = keep(blocks, drv.alloc((plan.m_pad + plan.rows, plan.n_pad), np.float32))   # + scratch rows
        scratch = c_gpu.address + 4 * plan.m_pad * plan.n_pad
        bias_gpu = keep(blocks, drv.copy(padded_vector(bias, plan.n_pad))) if bias is not None else None
        tile_in = None                    # what the tiles start from: beta * c's or the residual's tile
        if accumulate or residual is not None:
            c_padded = np.zeros((plan.m_pad, plan.n_pad), np.float32)
            c_padded[:plan.m, :plan.n] = c if accumulate else residual
            tile_in = keep(blocks, drv.copy(c_padded)).address
        task_lists = plan.tasks(packed.address, b_gpu.address, c_gpu.address,
                                bias_gpu.address if bias_gpu is not None else None, tile_in if accumulate else None,
                                residual=tile_in if residual is not None else None)
        code = keep(blocks, drv.program(kernel_program(cfg)))
        report = run_tasks(drv, code, task_lists, cfg.task_words, plan.constants(cfg, scratch, beta),
                           (plan.grid is not None or plan.balanced) and len(lists) == MAX_QPUS, blocks)
        result = np.array(c_gpu[:plan.m, :plan.n])
    finally:
        free_all(drv, blocks)
    return result, report


def _check_shapes(name: str, a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} do not multiply (A is M x K, B is K x N)")
    if min(a.shape + b.shape) < 1:
        raise ValueError(f"{name}: A is {a.shape[0]} x {a.shape[1]} and B {b.shape[0]} x {b.shape[1]}: "
                         "M, K and N must each be at least 1")


def gemm(drv, a, b, c=None, alpha: float = 1.0, beta: float = 0.0, **options):
    """alpha * a @ b + beta * c: (float32 result, report). alpha scales A as it is packed; each
    tile's accumulators start from beta * c's tile, loaded by the QPU."""
    a = np.asarray(a, np.float32)
    _check_shapes("gemm", a, np.asarray(b, np.float32))
    scaled = a if alpha == 1.0 else (a * np.float32(alpha)).astype(np.float32)
    return matmul(drv, scaled, b, c=c, beta=beta, **options)


__all__ = ["GemmKernel", "GemmPlan", "distinct_plans", "float16_weights", "gemm", "gemm_plans", "kernel_program",
           "matmul", "plan_gemm", "reference"]
