"""The core: QPUs executing decoded QPU code (program.py), with uniforms, TMU loads through the TMU
and L2 caches, the VPM and its DMA, the SFU, semaphores, the mutex and host interrupts; strict-mode
reports; and the timing model's clocks and stalls.

Written once in the compilable subset (jit.py): numba compiles it where installed, and the same
functions run as plain Python elsewhere. All state lives in two flat int64 arrays owned by
machine.V3D (layouts below); every lane value is a 32-bit pattern held in an int64. The core never
raises: it returns a status, with the details and the events in the machine array, and machine.py
turns them into exceptions and warnings. Rules cite ../shared/reference/semantics.md (§N) or qpu-isa.md.
"""

from __future__ import annotations

import numpy as np

from qpuasm import isa

from . import alu
from . import program as P
from .alu import add_op, mul_op
from .cache import FROM_MEMORY, FROM_SYSTEM_L2, ICACHE, LINE_BYTES, TMU_HIT, slice_present, slice_read, tmu_read
from .cache import UNIFORMS as UNIFORMS_CACHE
from .fparith import EXP_SPECIAL, MAGNITUDE, exponent
from .jit import jit
from .memory import OFFSET_MASK, OUTSIDE
from .packing import ADD_OP, OTHER_OP, SUB_OP, pack_a, pack_mul, unpack, unpack_r4
from .sfu import SFU_LATENCY, sfu
from .vpm import (
    RESERVED,
    VDR_MODEW,
    VDW_MODEW,
    VPM_NUM,
    field_of,
    generic_advanced,
    get,
    load,
    memory_rows,
    read_vector,
    size_reserved,
    store,
    write_vector,
)
from .vpm import count as vpm_count

LANES = isa.LANES
MASK = 0xFFFFFFFF
QPUS_PER_SLICE = 4
MAX_QPUS = 16
INTERLEAVE_WINDOW = 64        # clocks: how far out of time order a seeded run may pick the next QPU

# ---- state layouts ------------------------------------------------------------------------------
# Two flat int64 arrays hold the state, so that every call inside the core passes few arguments
# (numba passes each array as a struct of many words): qpu[q, k] per QPU and machine[k] for the
# whole V3D. Every lane value is a 32-bit pattern in an int64.
#
# qpu[q, k], first the scalars:
(PC, UNIFORMS, RUNNING, END_COUNTDOWN, BRANCH_TARGET, BRANCH_COUNTDOWN, VPM_WRITE, VPM_READ, VPM_READS_LEFT,
 VDW_SETUP, VDW_STRIDE, VDR_SETUP, VDR_PITCH, INSTRUCTIONS, NOSWAP, CYCLE, DMA_DONE, _DMA_STORE_DONE, VPM_READY,
 WAITING, WAITING_SINCE, BUSY, STALL, _S1, _S2, _S3, _S4, _S5, _S6, _S7, PENDING_COUNT, FIFO_HEAD, _FIFO_HEAD1,
 FIFO_COUNT, _FIFO_COUNT1, INTERRUPTS, CODE_LINE, UNIFORMS_END, QPU_SCALARS) = range(39)
# UNIFORMS_END: where the uniforms the host gave this program end (0: unknown, or the program has
# pointed its stream elsewhere through unif_addr); strict mode reports a read at or past it.
# Stall reasons (columns STALL + reason), in the order of timing.STALL_REASONS.
ST_TMU, ST_DMA, ST_SFU, ST_VPM, ST_SEMAPHORE, ST_MUTEX, ST_ICACHE, ST_UNIFORMS = range(8)
NOT_WAITING = -1
# DMA engines (columns DMA_DONE + engine): 0 = VDR load (A-space vr_*), 1 = VDW store (B-space vw_*).
# Registers: row r, lane i at REGS + r * LANES + i; regfile A rows 0..31, B 32..63, r0..r5 64..69.
REG_A, REG_B, ACC = 0, isa.REGFILE_SIZE, 2 * isa.REGFILE_SIZE
REG_ROWS = ACC + 6
REGS = QPU_SCALARS
# Flags: FLAGS + k * LANES + i for k = Z, N, C, and C_FROM_MUL (the C flag came from the MUL ALU).
Z, N, C, C_FROM_MUL = 0, 1, 2, 3
assert tuple(isa.FLAGS) == ("z", "n", "c")        # Z, N, C above are their positions
# The condition tables of isa.py as columns of integers, per cond (and cond_br) code: the flag read
# (-1: none), the value that passes, and (branches) 1 when every lane must pass.
COND_FLAG = tuple(isa.FLAGS.index(f) if f else -1 for f, _ in isa.CONDITION_TESTS)
COND_WANTS = tuple(want for _, want in isa.CONDITION_TESTS)
BRANCH_FLAG = tuple(isa.FLAGS.index(t[0]) if t and t[0] else -1 for t in isa.BRANCH_TESTS)
BRANCH_WANTS = tuple(t[1] if t else 0 for t in isa.BRANCH_TESTS)
BRANCH_ALL = tuple(1 if t and t[2] else 0 for t in isa.BRANCH_TESTS)
FLAGS = REGS + REG_ROWS * LANES
# The instruction count when each register row was last written (-1: never), for strict mode.
LAST_WRITE = FLAGS + 4 * LANES
# Undefined values, tracked as a memory checker tracks poison (this simulator's policy for what the
# hardware leaves unknown, semantics.md §0): a 16-bit
# lane mask per register row (set: that lane holds a value computed from something nothing wrote),
# one for the flags, and the masks of what raddr_a and raddr_b read in this instruction. Values
# flow through the ALUs (a result lane is undefined if an operand lane is, or its condition read
# undefined flags); strict mode reports them only where they matter: at an I/O write (memory,
# address, TMU, SFU, VPM, DMA, uniforms address, host interrupt) or a branch.
POISON = LAST_WRITE + REG_ROWS
POISON_FLAGS = POISON + REG_ROWS
POISON_A = POISON_FLAGS + 1
POISON_B = POISON_A + 1
ALL_LANES = (1 << LANES) - 1
# r4 results on their way: slot j has (countdown, kind) at PENDING + 2j and lanes at
# PENDING_VALUES + j * LANES; PENDING_COUNT slots are in use, in arrival order.
PENDING_SLOTS = 8
KIND_SFU, KIND_TMU = 1, 2
PENDING = POISON_B + 1
PENDING_VALUES = PENDING + 2 * PENDING_SLOTS
# TMU request FIFOs, a ring per TMU: entry e of TMU t has lanes at FIFO_VALUES + (t * CAP + e) *
# LANES and its ready cycle at FIFO_READY + t * CAP + e.
FIFO_CAPACITY = 16            # room beyond the hardware's 8 so that non-strict runs can go on
FIFO_VALUES = PENDING_VALUES + PENDING_SLOTS * LANES
FIFO_READY = FIFO_VALUES + 2 * FIFO_CAPACITY * LANES
# Vectors of 16 lanes used within one instruction: what raddr_a/b read, the unpacked operands, the
# two results and carries, the write conditions, the values and bit masks to write, and the
# constants zero, one and the element numbers (set by machine.py), which reads and conditions
# point to instead of filling a vector.
VECTORS = FIFO_READY + 2 * FIFO_CAPACITY
(S_A, S_B, S_AA, S_AB, S_MA, S_MB, S_ADD_OUT, S_ADD_C, S_MUL_OUT, S_MUL_C, S_COND_ADD, S_COND_MUL, S_VALUES,
 S_MASKS, S_TMP, S_TMP2, S_ZERO, S_ONES, S_ELEMENT) = range(VECTORS, VECTORS + 19 * LANES, LANES)
QPU_SIZE = VECTORS + 19 * LANES
#
# machine[k]: the V3D-wide state and the core's answer to its caller, the semaphores and the events
# (what strict mode raises and non-strict mode warns: qpu, pc, report code, arg, arg2 each).
(G_MUTEX_OWNER, G_HOST_INTERRUPTS, G_DMA_FREE, _G_DMA_FREE1, G_EXECUTED, G_RNG, G_SEEDED, G_STRICT, G_EVENTS,
 G_ERROR, G_ERROR_ARG, G_ERROR_ARG2, G_ERROR_QPU, G_ERROR_PC, G_NEED_PC, G_MEMORY_FREE, G_BUS_FREE,
 G_SFU_FREE) = range(18)
NO_OWNER = -1
G_PAGES_ON = G_SFU_FREE + MAX_QPUS // QPUS_PER_SLICE       # after the SFUs' free cycles, one per slice
SEMAPHORES = G_PAGES_ON + 1
EVENTS = SEMAPHORES + isa.SEMAPHORE_COUNT
EVENT_FIELDS = 5
EVENT_CAPACITY = 64
EVENT_DRAIN = EVENT_CAPACITY - 24        # one instruction adds at most a few
# The pages of SDRAM the firmware has allocated (1: allocated), when G_PAGES_ON: strict mode reports
# a TMU read, a uniform or a DMA transfer elsewhere (on a Pi that could be the ARM's memory).
PAGE_SHIFT = 12
PAGE_COUNT = (1 << 30) >> PAGE_SHIFT                 # 1 GB: the largest Pi SDRAM of this GPU
PAGES = EVENTS + EVENT_CAPACITY * EVENT_FIELDS
MACHINE_SIZE = PAGES + PAGE_COUNT
# Timing parameters: params[k] in the order of timing.CORE_PARAMETERS.
(P_CPI, P_TMU_HIT, P_L2_HIT, P_MEMORY, P_VDR_RATE, P_VDW_RATE, P_DMA_LATENCY, P_SFU_BUSY, P_VPM_LATENCY,
 P_MEMORY_RATE, P_ICACHE_PREFETCH, P_UNIFORMS_PREFETCH, P_DMA_ROW, P_SYSTEM_L2, P_BUS_RATE) = range(15)

# Run status (the return value of `run`).
DONE, NEED_DECODE, DRAIN, REPORTED, FAILED, DEADLOCK, BUDGET = range(7)
# Step results.
BLOCKED, EXECUTED, ERROR = 0, 1, -1

# Reports (strict mode raises, non-strict warns once per site); messages are in machine.py.
(R_SFU_R4_READ, R_UNDEFINED_WRITE, R_RULE1, R_UNDEFINED_BRANCH, R_TWO_UNIFORMS, R_FTOI, R_MUL_CARRY,
 R_PACK_OUTSIDE_A, R_TMU_OVERFLOW, R_STALE, R_SFU_R4_LDTMU, R_THREAD_END_IO, R_THREAD_END_REG14,
 R_VPM_READS_LEFT, R_STALE_UNIFORM, R_MUL_NOP_WRITE, R_WIDE_PITCH, R_VERTICAL_SUBWORD,
 R_UNIFORMS_PAST_END, R_UNALLOCATED) = range(1, 21)
# What R_UNALLOCATED's second argument names.
BY_TMU, BY_UNIFORMS, BY_VDW, BY_VDR = range(4)
# Errors (always fatal).
(E_MEMORY, E_RESERVED_ADD, E_VPM_READ_EMPTY, E_TEXTURE, E_IO_WRITE, E_VR_SETUP, E_LDTMU_EMPTY, E_BREAKPOINT,
 E_SIGNAL, E_RESERVED_BRANCH, E_UNDEFINED, E_VPM_SIZE, E_DMA_MODEW, E_FIFO_FULL, E_PENDING_FULL,
 E_UNALIGNED_PC) = range(1, 17)

# ---- tables derived from isa (constants of the compiled code) -------------------------------------
_NO_OP = isa.Op("")                                              # a reserved code's column values
_ADD_ROWS = [op or _NO_OP for op in isa.ADD_TABLE]
_MUL_ROWS = [op or _NO_OP for op in isa.MUL_TABLE]
ADD_RESERVED = np.array([op is None for op in isa.ADD_TABLE], dtype=np.bool_)
ADD_UNARY = np.array([op.unary for op in _ADD_ROWS], dtype=np.bool_)
ADD_FLOAT_INPUT = np.array([op.float_in for op in _ADD_ROWS], dtype=np.bool_)
ADD_FLOAT_RESULT = np.array([op.float_out for op in _ADD_ROWS], dtype=np.bool_)
_OVERFLOW = {"": OTHER_OP, "add": ADD_OP, "sub": SUB_OP}
ADD_SATURATION = np.array([_OVERFLOW[op.overflow] for op in _ADD_ROWS], dtype=np.int64)
MUL_FLOAT_INPUT = np.array([op.float_in for op in _MUL_ROWS], dtype=np.bool_)
MUL_FLOAT_RESULT = np.array([op.float_out for op in _MUL_ROWS], dtype=np.bool_)
FTOI = isa.ADD_OP_CODES["ftoi"]
MOV_ADD, MOV_MUL = isa.ADD_OP_CODES[isa.MOV_ADD_OP], isa.MUL_OP_CODES[isa.MOV_MUL_OP]
SMALL_IMM_BITS = np.array(isa.SMALL_IMM_BITS, dtype=np.int64)
BRANCH_RESERVED = np.array([c is None for c in isa.BRANCH_CONDITIONS], dtype=np.bool_)
_per_element_value = jit(isa.per_element_value, inline=True)     # the layout of §12, written once
LDI_PER_ELEMENT_SIGNED = isa.LDI_MODE_CODES["ldipes"]
LDI_PER_ELEMENT_UNSIGNED = isa.LDI_MODE_CODES["ldipeu"]
SIG_LDTMU0, SIG_LDTMU1 = isa.SIGNAL_CODES["ldtmu0"], isa.SIGNAL_CODES["ldtmu1"]
SIG_THREND, SIG_BKPT = isa.SIGNAL_CODES["thrend"], isa.SIGNAL_CODES["bkpt"]
MEASURED_FTOI_OVERFLOW = (127 + 97) << 23       # ±2^97 -> 0 (vc4c_hw/alu_ops.csv)
VPM_SETUP_ID = field_of(isa.VPM_SETUP_ID)
VDW_STRIDE_FIELD = field_of(isa.VDW_STRIDE)
VDR_EXT_ID = field_of(isa.VDR_EXT_ID)
VDR_MPITCHB = field_of(isa.VDR_MPITCHB_IN_PRACTICE)
VDR_MPITCHB_DOCUMENTED = isa.VDR_MPITCHB.mask
VDW_HORIZ_BIT = 1 << isa.VDW_HORIZ.lo
VDR_VERT_BIT = 1 << isa.VDR_VERT.lo
VDR_ID = field_of(isa.VDR_ID)
# Instruction fields by column of the decoded program.
_C = P.COLUMN
C_SIG, C_UNPACK, C_PM, C_PACK, C_COND_ADD, C_COND_MUL, C_SF, C_WS = (
    _C["sig"], _C["unpack"], _C["pm"], _C["pack"], _C["cond_add"], _C["cond_mul"], _C["sf"], _C["ws"])
C_WADDR_ADD, C_WADDR_MUL, C_OP_MUL, C_OP_ADD, C_RADDR_A, C_RADDR_B = (
    _C["waddr_add"], _C["waddr_mul"], _C["op_mul"], _C["op_add"], _C["raddr_a"], _C["raddr_b"])
C_ADD_A, C_ADD_B, C_MUL_A, C_MUL_B, C_LDI_MODE, C_IMM, C_SA, C_SEMAPHORE = (
    _C["add_a"], _C["add_b"], _C["mul_a"], _C["mul_b"], _C["ldi_mode"], _C["imm"], _C["sa"], _C["semaphore"])
C_COND_BR, C_REL, C_REG = _C["cond_br"], _C["rel"], _C["reg"]



# ---- bookkeeping ----------------------------------------------------------------------------------

@jit
def _report(m, q: int, pc: int, code: int, arg: int, arg2: int) -> None:
    k = m[G_EVENTS]
    if k < EVENT_CAPACITY:
        at = EVENTS + k * EVENT_FIELDS
        m[at] = q
        m[at + 1] = pc
        m[at + 2] = code
        m[at + 3] = arg
        m[at + 4] = arg2
        m[G_EVENTS] = k + 1


@jit
def _fail(m, q: int, pc: int, code: int, arg: int, arg2: int) -> int:
    m[G_ERROR] = code
    m[G_ERROR_ARG] = arg
    m[G_ERROR_ARG2] = arg2
    m[G_ERROR_QPU] = q
    m[G_ERROR_PC] = pc
    return ERROR


@jit(inline=True)
def _lanes(qpu, q: int, at: int):
    """The 16 lanes at qpu[q, at] as a view: a loop over it indexes from 0, which compiles to
    plain loads and stores (an index that may be negative costs a check at every access)."""
    return qpu[q, at:at + LANES]


@jit(inline=True)
def _stall(qpu, q: int, reason: int, until: float) -> None:
    """Advance a QPU's clock to `until` (if later), counting the wait under `reason`."""
    until = int(until)
    if until > qpu[q, CYCLE]:
        qpu[q, STALL + reason] += until - qpu[q, CYCLE]
        qpu[q, CYCLE] = until


@jit(inline=True)
def _sfu_pending(qpu, q: int) -> bool:
    for j in range(qpu[q, PENDING_COUNT]):
        if qpu[q, PENDING + 2 * j + 1] == KIND_SFU:
            return True
    return False


@jit(inline=True)
def _reserve_pending(qpu, q: int, countdown: int, kind: int) -> int:
    """The offset of the lanes of a new result on its way to r4, arriving after `countdown`
    instructions (the caller fills them); -1 if every slot is taken."""
    j = qpu[q, PENDING_COUNT]
    if j >= PENDING_SLOTS:
        return -1
    qpu[q, PENDING + 2 * j] = countdown
    qpu[q, PENDING + 2 * j + 1] = kind
    qpu[q, PENDING_COUNT] = j + 1
    return PENDING_VALUES + j * LANES


# ---- caches: uniforms and code ---------------------------------------------------------------------

@jit
def _fill_delay(qpu, m, params, q: int, level: int) -> int:
    """Clocks until a line served from `level` reaches QPU q: an L2 or TMU-cache hit takes its
    latency; a line from the system L2 waits for the V3D's bus, one from SDRAM for the bus and the
    SDRAM port (both shared with VPM DMA, timing.py)."""
    now = qpu[q, CYCLE]
    if level == FROM_MEMORY:
        begin = max(_transfer(m, G_BUS_FREE, now, LINE_BYTES, params[P_BUS_RATE]),
                    _transfer(m, G_MEMORY_FREE, now, LINE_BYTES, params[P_MEMORY_RATE]))
        return begin - now + int(params[P_MEMORY])
    if level == FROM_SYSTEM_L2:
        return _transfer(m, G_BUS_FREE, now, LINE_BYTES, params[P_BUS_RATE]) - now + int(params[P_SYSTEM_L2])
    return int(params[P_TMU_HIT + level])


@jit(inline=True)
def _transfer(m, port: int, start: int, nbytes: int, rate: float) -> int:
    """`nbytes` through a port (the V3D's bus to the system, or SDRAM) that moves `rate` bytes a
    clock, one transfer after another: when this one begins (the port is busy until m[port])."""
    begin = max(start, m[port])
    m[port] = begin + int(nbytes / rate)
    return begin


@jit
def _slice_cache_read(qpu, m, cache, data, params, q: int, number: int, address: int, prefetch: int,
                      reason: int) -> tuple[int, bool]:
    """A read through a slice's instruction or uniforms cache (`number`): the word and whether it
    is stale; the QPU waits for a missing line. Entering a line starts, with its own fill if it
    missed, the fills of the next `prefetch` lines (policy: sequential prefetch, timing.py)."""
    value, stale, level, ready = slice_read(cache, data, number, address)
    if value == OUTSIDE:
        return OUTSIDE, False
    if level != TMU_HIT:
        cache[ready] = qpu[q, CYCLE] + _fill_delay(qpu, m, params, q, level)
    if level != TMU_HIT or address % LINE_BYTES == 0:
        line = address - address % LINE_BYTES
        for k in range(1, prefetch + 1):
            ahead = line + k * LINE_BYTES
            if not slice_present(cache, number, ahead):
                filled, _, ahead_level, ahead_ready = slice_read(cache, data, number, ahead, False)
                if filled != OUTSIDE:
                    cache[ahead_ready] = qpu[q, CYCLE] + _fill_delay(qpu, m, params, q, ahead_level)
    _stall(qpu, q, reason, cache[ready])
    return value, stale


@jit(inline=True)
def _unallocated(m, address: int) -> bool:
    """Whether an access at `address` falls outside the memory the firmware allocated (when known)."""
    if not m[G_PAGES_ON]:
        return False
    page = (address & OFFSET_MASK) >> PAGE_SHIFT
    return page >= PAGE_COUNT or m[PAGES + page] == 0


@jit
def _uniform(qpu, m, cache, data, params, q: int) -> int:
    """The next uniform, through the slice's uniforms cache (§8.6); OUTSIDE outside the SDRAM."""
    address = qpu[q, UNIFORMS]
    if _unallocated(m, address):
        _report(m, q, qpu[q, PC], R_UNALLOCATED, address, BY_UNIFORMS)
    if qpu[q, UNIFORMS_END] and address >= qpu[q, UNIFORMS_END]:
        _report(m, q, qpu[q, PC], R_UNIFORMS_PAST_END, address, qpu[q, UNIFORMS_END])
    value, stale = _slice_cache_read(qpu, m, cache, data, params, q, UNIFORMS_CACHE + q // QPUS_PER_SLICE, address,
                                     int(params[P_UNIFORMS_PREFETCH]), ST_UNIFORMS)
    if stale:
        _report(m, q, qpu[q, PC], R_STALE_UNIFORM, address, 0)
    return value


@jit(inline=True)
def _fetch(qpu, m, cache, data, params, q: int, pc: int) -> None:
    """Instruction fetch through the slice's instruction cache (§10), looked up when the PC enters
    another 64-byte line."""
    line = pc - pc % LINE_BYTES
    if line != qpu[q, CODE_LINE]:
        qpu[q, CODE_LINE] = line
        _slice_cache_read(qpu, m, cache, data, params, q, ICACHE + q // QPUS_PER_SLICE, line,
                          int(params[P_ICACHE_PREFETCH]), ST_ICACHE)


# ---- reads ----------------------------------------------------------------------------------------

@jit(inline=True)
def _read(qpu, m, vpm, cache, data, params, q: int, file: int, addr: int, out: int) -> int:
    """One read through raddr_a (file 0) or raddr_b (1), with its side effects: where in qpu[q] its
    16 lanes are (a register's own row, a constant vector, or `out`, filled here); -1 on an error."""
    if addr < isa.REGFILE_SIZE:
        qpu[q, POISON_A + file] = qpu[q, POISON + file * isa.REGFILE_SIZE + addr]
        return REGS + (file * isa.REGFILE_SIZE + addr) * LANES
    qpu[q, POISON_A + file] = 0
    if addr == isa.NOP_ADDR or addr == isa.ADDR_MUTEX:
        return S_ZERO                           # the mutex was acquired by the caller before the read
    value = 0
    if addr == isa.ADDR_UNIFORM:
        value = _uniform(qpu, m, cache, data, params, q)
        if value == OUTSIDE:
            _fail(m, q, qpu[q, PC], E_MEMORY, qpu[q, UNIFORMS], 4)
            return -1
        qpu[q, UNIFORMS] += 4
    elif addr == isa.ADDR_VPM:
        _stall(qpu, q, ST_VPM, qpu[q, VPM_READY])
        if qpu[q, VPM_READS_LEFT] <= 0:
            _fail(m, q, qpu[q, PC], E_VPM_READ_EMPTY, 0, 0)
            return -1
        if size_reserved(qpu[q, VPM_READ]):
            _fail(m, q, qpu[q, PC], E_VPM_SIZE, qpu[q, VPM_READ], 0)
            return -1
        qpu[q, VPM_READS_LEFT] -= 1
        read_vector(vpm, qpu[q, VPM_READ], qpu[q], out)
        qpu[q, VPM_READ] = generic_advanced(qpu[q, VPM_READ])
        return out
    elif addr == isa.ADDR_VPM_SETUP:            # vr_busy / vw_busy: is this QPU's DMA still running?
        value = 1 if qpu[q, CYCLE] < qpu[q, DMA_DONE + file] else 0
    elif addr == isa.ADDR_VPM_DMA:              # vr_wait / vw_wait: stall until it is done
        _stall(qpu, q, ST_DMA, qpu[q, DMA_DONE + file])
        return S_ZERO
    elif file == 1:
        value = q                               # QPU number (B), and the default of unmapped reads (§10)
    else:
        return S_ELEMENT                        # element number (A), and the default of unmapped reads
    vector = _lanes(qpu, q, out)
    for i in range(LANES):
        vector[i] = value
    return out


@jit(inline=True)
def _operand(qpu, q: int, mux: int, float_op: bool, pm: int, unpack_code: int, a: int, b: int, dst: int) -> int:
    """Where the value an input mux delivers is: what raddr_a read (`a`, unpacked into `dst` when
    pm = 0), what raddr_b read (`b`), or an accumulator (r4 unpacked into `dst` when pm = 1)
    (§5.1, §5.2)."""
    if mux == isa.MUX_A:
        if pm == 0 and unpack_code:
            source, out = _lanes(qpu, q, a), _lanes(qpu, q, dst)
            for i in range(LANES):
                out[i] = unpack(unpack_code, source[i], float_op)
            return dst
        return a
    if mux == isa.MUX_B:
        return b
    start = REGS + (ACC + mux) * LANES
    if mux == isa.MUX_R4 and pm and unpack_code:
        source, out = _lanes(qpu, q, start), _lanes(qpu, q, dst)
        for i in range(LANES):
            out[i] = unpack_r4(unpack_code, source[i])
        return dst
    return start


@jit(inline=True)
def _check_reads(qpu, m, q: int, prog, row: int, small_imm: bool) -> None:
    """Strict-mode checks on what an ALU instruction reads (qpu-isa.md §16, semantics.md §6)."""
    pc = qpu[q, PC]
    op_add, op_mul = prog[row, C_OP_ADD], prog[row, C_OP_MUL]
    used = 0
    if op_add != 0:
        used |= 1 << prog[row, C_ADD_A]
        if not ADD_UNARY[op_add]:
            used |= 1 << prog[row, C_ADD_B]
    if op_mul != 0:
        used |= (1 << prog[row, C_MUL_A]) | (1 << prog[row, C_MUL_B])
    now = qpu[q, INSTRUCTIONS]
    for mux in range(8 if used else 0):
        if not used >> mux & 1:
            continue
        if mux < isa.MUX_ACCUMULATORS:
            if mux == isa.MUX_R4 and _sfu_pending(qpu, q):
                _report(m, q, pc, R_SFU_R4_READ, 0, 0)
            continue
        file = 0 if mux == isa.MUX_A else 1
        addr = prog[row, C_RADDR_A] if file == 0 else prog[row, C_RADDR_B]
        if (file == 1 and small_imm) or addr >= isa.REGFILE_SIZE:
            continue
        written = qpu[q, LAST_WRITE + file * isa.REGFILE_SIZE + addr]
        if written >= 0 and written == now - 1:
            _report(m, q, pc, R_RULE1, file, addr)
    if prog[row, C_RADDR_A] == isa.ADDR_UNIFORM and not small_imm and prog[row, C_RADDR_B] == isa.ADDR_UNIFORM:
        _report(m, q, pc, R_TWO_UNIFORMS, 0, 0)


# ---- flags and conditions -------------------------------------------------------------------------

@jit(inline=True)
def _condition(qpu, m, q: int, cond: int, dst: int) -> int:
    """Where the per-lane write condition (1/0) against the flags before this instruction is: the
    constant ones or zeros, or `dst`, filled here (§6.1)."""
    if cond == isa.COND_ALWAYS:
        return S_ONES
    if cond == isa.COND_NEVER:
        return S_ZERO
    flag = COND_FLAG[cond]
    if flag == C:
        _carry_check(qpu, m, q)
    want = COND_WANTS[cond]
    flags, out = _lanes(qpu, q, FLAGS + flag * LANES), _lanes(qpu, q, dst)
    for i in range(LANES):
        out[i] = 1 if flags[i] == want else 0
    return dst


@jit
def _carry_check(qpu, m, q: int) -> None:
    for i in range(LANES):
        if qpu[q, FLAGS + C_FROM_MUL * LANES + i]:
            _report(m, q, qpu[q, PC], R_MUL_CARRY, 0, 0)
            return


@jit(inline=True)
def _set_flags(qpu, q: int, out: int, carry: int, cond: int, from_mul: bool, poison: int) -> None:
    """Z, N from the result, C from the op; only in lanes whose condition passed (§6.2). `poison`:
    the result's undefined lanes."""
    qpu[q, POISON_FLAGS] = _merged(qpu, q, qpu[q, POISON_FLAGS], cond, poison)
    where, values, carries = _lanes(qpu, q, cond), _lanes(qpu, q, out), _lanes(qpu, q, carry)
    for i in range(LANES):
        if where[i]:
            value = values[i]
            qpu[q, FLAGS + Z * LANES + i] = 1 if value == 0 else 0
            qpu[q, FLAGS + N * LANES + i] = value >> 31
            qpu[q, FLAGS + C * LANES + i] = carries[i]
            qpu[q, FLAGS + C_FROM_MUL * LANES + i] = 1 if from_mul else 0


# ---- undefined values -----------------------------------------------------------------------------

@jit(inline=True)
def _lane_mask(qpu, q: int, where: int) -> int:
    """The lanes set in the per-lane 1/0 vector at qpu[q, where], as a 16-bit mask."""
    if where == S_ONES:
        return ALL_LANES
    if where == S_ZERO:
        return 0
    mask = 0
    for i in range(LANES):
        if qpu[q, where + i]:
            mask |= 1 << i
    return mask


@jit(inline=True)
def _mux_poison(qpu, q: int, mux: int) -> int:
    """The undefined lanes of what an input mux delivers (an unpack keeps lanes apart)."""
    if mux == isa.MUX_A:
        return qpu[q, POISON_A]
    if mux == isa.MUX_B:
        return qpu[q, POISON_B]
    return qpu[q, POISON + ACC + mux]


@jit(inline=True)
def _rotate_poison(mask: int, n: int, full: bool) -> int:
    """The undefined lanes after the MUL rotation of _rotate (lane i takes lane i - n)."""
    if full:
        return ((mask << n) | (mask >> (LANES - n))) & ALL_LANES
    out = 0
    for i in range(LANES):
        if mask >> ((i & ~3) | ((i - n) & 3)) & 1:
            out |= 1 << i
    return out


@jit(inline=True)
def _with_flags(qpu, q: int, poison: int, cond: int) -> int:
    """A result's undefined lanes (bits 0..15) and, above them, the lanes whose write condition read
    undefined flags (bits 16..31): whether those lanes are written is itself undefined."""
    if cond == S_ONES or cond == S_ZERO:
        return poison
    return poison | qpu[q, POISON_FLAGS] << LANES


@jit(inline=True)
def _merged(qpu, q: int, old: int, cond: int, poison: int) -> int:
    """The undefined lanes of something holding `old` after a write of `poison` (as _with_flags
    gives it) under the condition at `cond`."""
    if (old | poison) == 0:
        return 0
    where = _lane_mask(qpu, q, cond)
    return (old & ~where & ALL_LANES) | (poison & where) | (poison >> LANES)


@jit(inline=True)
def _define(qpu, q: int, row: int, cond: int, poison: int) -> None:
    """A register row written under the condition at `cond` with values undefined in `poison`."""
    qpu[q, POISON + row] = _merged(qpu, q, qpu[q, POISON + row], cond, poison)


# ---- writes ---------------------------------------------------------------------------------------

@jit(inline=True)
def _register_row(file: int, addr: int) -> int:
    """The register row a write address in regfile `file`'s space names (regfile A/B or r0..r3),
    or -1 for an I/O address."""
    if addr < isa.REGFILE_SIZE:
        return file * isa.REGFILE_SIZE + addr
    if isa.ACC_WADDR_FIRST <= addr <= isa.ACC_WADDR_LAST:
        return ACC + addr - isa.ACC_WADDR_FIRST
    return -1


@jit(inline=True)
def _write(qpu, m, vpm, cache, data, params, q: int, file: int, addr: int, cond: int, src: int,
           masked: bool, poison: int) -> bool:
    """Write the 16 lanes at qpu[q, src] (only the bits in S_MASKS if `masked`) to a regfile or I/O
    address, lane by lane under the condition at qpu[q, cond]; `poison`: the lanes whose value is
    undefined (a packed write counts as defining its lanes: policy, it never reports falsely).
    False on an error."""
    row = _register_row(file, addr)
    if row >= 0:
        qpu[q, LAST_WRITE + row] = qpu[q, INSTRUCTIONS]
        _define(qpu, q, row, cond, poison)
        register, values, where = _lanes(qpu, q, REGS + row * LANES), _lanes(qpu, q, src), _lanes(qpu, q, cond)
        if masked:
            masks = _lanes(qpu, q, S_MASKS)
            for i in range(LANES):
                if where[i]:
                    register[i] = (register[i] & ~masks[i] & MASK) | (values[i] & masks[i])
        elif cond == S_ONES:
            for i in range(LANES):
                register[i] = values[i]
        else:
            for i in range(LANES):
                if where[i]:
                    register[i] = values[i]
        return True
    return _write_io(qpu, m, vpm, cache, data, params, q, file, addr, cond, src, poison)


@jit
def _write_io(qpu, m, vpm, cache, data, params, q: int, file: int, addr: int, cond: int, src: int,
              poison: int) -> bool:
    """_write to an I/O address."""
    pc = qpu[q, PC]
    value = qpu[q, src]                         # I/O registers take lane 0 unless said otherwise
    if addr == isa.ADDR_R5:
        # §11: A-space keeps lane 4q of each quad, B-space replicates lane 0.
        qpu[q, LAST_WRITE + ACC + isa.MUX_R5] = qpu[q, INSTRUCTIONS]
        start = REGS + (ACC + isa.MUX_R5) * LANES
        defined = qpu[q, POISON + ACC + isa.MUX_R5]
        for i in range(LANES):
            source = (i & ~3) if file == 0 else 0
            if qpu[q, cond + source]:
                qpu[q, start + i] = qpu[q, src + source]
                defined = (defined & ~(1 << i)) | ((poison >> source & 1) << i)
            if poison >> (LANES + source) & 1:
                defined |= 1 << i
        qpu[q, POISON + ACC + isa.MUX_R5] = defined
        return True
    if addr != isa.ADDR_MUTEX and poison:
        undefined = (poison & _lane_mask(qpu, q, cond) | poison >> LANES) & _io_lanes(addr)
        if undefined:
            _report(m, q, pc, R_UNDEFINED_WRITE, addr + 64 * file, undefined)
    if addr == isa.ADDR_HOST_INT:
        if value:                               # writing 0 does nothing (qpu-isa.md §16 rule 28)
            m[G_HOST_INTERRUPTS] += 1
            qpu[q, INTERRUPTS] += 1             # latched per QPU for V3D_DBQITC (registers.py)
        return True
    if addr == isa.ADDR_UNIFORMS_ADDRESS:
        # B-space is a relative change (unif_addr_rel, §10).
        qpu[q, UNIFORMS] = value if file == 0 else (qpu[q, UNIFORMS] + value) & MASK
        qpu[q, UNIFORMS_END] = 0                # the program reads what it chose from here on
        return True
    if addr == isa.ADDR_VPM:
        if size_reserved(qpu[q, VPM_WRITE]):
            return _fail(m, q, pc, E_VPM_SIZE, qpu[q, VPM_WRITE], 0) != ERROR
        write_vector(vpm, qpu[q, VPM_WRITE], qpu[q], src)
        qpu[q, VPM_WRITE] = generic_advanced(qpu[q, VPM_WRITE])
        return True
    if addr == isa.ADDR_VPM_SETUP:
        return _vpm_setup(qpu, m, params, q, file, value)
    if addr == isa.ADDR_VPM_DMA:
        # The data moves at once; the timing model says when the transfer is over: the engine (one
        # VDR, one VDW for the whole GPU) takes bytes / bandwidth after the previous transfer.
        setup = qpu[q, VDW_SETUP] if file == 1 else qpu[q, VDR_SETUP]
        vertical = (setup & VDW_HORIZ_BIT) == 0 if file == 1 else (setup & VDR_VERT_BIT) != 0
        if vertical and get(setup, VDW_MODEW if file == 1 else VDR_MODEW) != isa.DMA_MODEW_32:
            _report(m, q, pc, R_VERTICAL_SUBWORD, file, 0)    # semantics.md §8.5 [UNKNOWN]
        if m[G_PAGES_ON]:                       # every row of the transfer, not only its start
            rows, row_bytes, step = memory_rows(setup, file == 1, qpu[q, VDW_STRIDE] if file == 1 else
                                                qpu[q, VDR_PITCH])
            for r in range(rows):
                first = value + r * step
                stray = first if _unallocated(m, first) else first + row_bytes - 1
                if _unallocated(m, stray):
                    _report(m, q, pc, R_UNALLOCATED, stray, BY_VDW if file == 1 else BY_VDR)
                    break
        if file == 1:
            moved, outside, port_bytes, rows = store(vpm, data, cache, value, setup, qpu[q, VDW_STRIDE])
            rate = params[P_VDW_RATE]
        else:
            moved, outside, port_bytes, rows = load(vpm, data, cache, value, setup, qpu[q, VDR_PITCH])
            rate = params[P_VDR_RATE]
        if moved == RESERVED:
            return _fail(m, q, pc, E_DMA_MODEW, file, 0) != ERROR
        if outside != OUTSIDE:
            return _fail(m, q, pc, E_MEMORY, outside, 1) != ERROR
        # Each memory row is a transfer of its own: it takes its bytes at the engine's rate, but at
        # least the per-row cost (timing.py dma_row_clocks).
        start_cycle = max(qpu[q, CYCLE], m[G_DMA_FREE + file])
        done = int(start_cycle + params[P_DMA_LATENCY] + rows * max(params[P_DMA_ROW], moved / rows / rate))
        # What the system L2 did not hold also crosses the one SDRAM port that the caches' line
        # fills use (_fill_delay).
        _transfer(m, G_BUS_FREE, start_cycle, moved, params[P_BUS_RATE])
        through = m[G_BUS_FREE]
        if port_bytes:
            _transfer(m, G_MEMORY_FREE, start_cycle, port_bytes, params[P_MEMORY_RATE])
            through = max(through, m[G_MEMORY_FREE])
        done = max(done, through + int(params[P_DMA_LATENCY]))
        m[G_DMA_FREE + file] = done
        qpu[q, DMA_DONE + file] = done
        return True
    if addr == isa.ADDR_MUTEX:
        if m[G_MUTEX_OWNER] == q:
            m[G_MUTEX_OWNER] = NO_OWNER
        return True
    if isa.ADDR_SFU_FIRST <= addr <= isa.ADDR_SFU_LAST:
        slice_ = q // QPUS_PER_SLICE            # one SFU per slice, not pipelined (performance.md §4)
        _stall(qpu, q, ST_SFU, m[G_SFU_FREE + slice_])
        m[G_SFU_FREE + slice_] = qpu[q, CYCLE] + int(params[P_SFU_BUSY])
        lanes = _reserve_pending(qpu, q, SFU_LATENCY, KIND_SFU)
        if lanes < 0:
            return _fail(m, q, pc, E_PENDING_FULL, 0, 0) != ERROR
        for i in range(LANES):
            qpu[q, lanes + i] = sfu(addr - isa.ADDR_SFU_FIRST, qpu[q, src + i])
        return True
    if isa.ADDR_TMU_FIRST <= addr <= isa.ADDR_TMU_LAST:
        return _tmu_request(qpu, m, cache, data, params, q, addr, src)
    if addr == isa.ADDR_TMU_NOSWAP:
        qpu[q, NOSWAP] = 1 if value != 0 else 0  # only lane 0 counts (semantics.md §6.2)
        return True
    return _fail(m, q, pc, E_IO_WRITE, addr, file) != ERROR


@jit
def _vpm_setup(qpu, m, params, q: int, file: int, value: int) -> bool:
    """vw_setup (file 1): generic write setup (ID 00), VDW basic (10) or VDW stride (11); vr_setup
    (file 0): generic read setup (ID 00), VDR extended pitch (1001) or VDR basic (1xxx) (§18)."""
    kind = get(value, VPM_SETUP_ID)
    if file == 1:
        if kind == 0:
            qpu[q, VPM_WRITE] = value
        elif kind == isa.VDW_ID_BASIC:
            qpu[q, VDW_SETUP] = value
        else:
            qpu[q, VDW_STRIDE] = get(value, VDW_STRIDE_FIELD)
        return True
    if kind == 0:
        qpu[q, VPM_READ] = value
        qpu[q, VPM_READS_LEFT] = vpm_count(value, VPM_NUM)
        qpu[q, VPM_READY] = qpu[q, CYCLE] + int(params[P_VPM_LATENCY])
    elif get(value, VDR_EXT_ID) == isa.VDR_EXT_ID_VALUE:
        qpu[q, VDR_PITCH] = get(value, VDR_MPITCHB)
        if qpu[q, VDR_PITCH] > VDR_MPITCHB_DOCUMENTED:
            _report(m, q, qpu[q, PC], R_WIDE_PITCH, qpu[q, VDR_PITCH], 0)
    elif get(value, VDR_ID):
        qpu[q, VDR_SETUP] = value
    else:
        return _fail(m, q, qpu[q, PC], E_VR_SETUP, value, 0) != ERROR
    return True


@jit
def _tmu_request(qpu, m, cache, data, params, q: int, addr: int, src: int) -> bool:
    """A write to a TMU S register: a direct lookup of the address in each lane at qpu[q, src] (§8.2)."""
    pc = qpu[q, PC]
    tmu = (addr - isa.ADDR_TMU_FIRST) // 4
    if (addr - isa.ADDR_TMU_FIRST) % 4:
        return _fail(m, q, pc, E_TEXTURE, addr, 0) != ERROR
    count = qpu[q, FIFO_COUNT + tmu]
    if count >= isa.TMU_FIFO_SLOTS:
        _report(m, q, pc, R_TMU_OVERFLOW, tmu, 0)
    if count >= FIFO_CAPACITY:
        return _fail(m, q, pc, E_FIFO_FULL, tmu, 0) != ERROR
    # QPUs 2 and 3 of a slice use the other TMU (its cache) unless TMU_NOSWAP was written; the
    # request FIFO is the same (§8.2).
    swap = 1 if q % QPUS_PER_SLICE >= 2 and not qpu[q, NOSWAP] else 0
    physical = 2 * (q // QPUS_PER_SLICE) + (tmu ^ swap)
    entry = tmu * FIFO_CAPACITY + (qpu[q, FIFO_HEAD + tmu] + count) % FIFO_CAPACITY
    latency = 0
    stale_seen = False
    unallocated_seen = False
    for lane in range(LANES):
        address = qpu[q, src + lane]            # a byte address; the low 2 bits are ignored
        if not unallocated_seen and _unallocated(m, address):
            unallocated_seen = True
            _report(m, q, pc, R_UNALLOCATED, address, BY_TMU)
        value, stale, level = tmu_read(cache, data, physical, address)
        if value == OUTSIDE:
            return _fail(m, q, pc, E_MEMORY, address & ~3, 4) != ERROR
        latency = max(latency, _fill_delay(qpu, m, params, q, level))
        if stale and not stale_seen:
            stale_seen = True
            _report(m, q, pc, R_STALE, lane, address)
        qpu[q, FIFO_VALUES + entry * LANES + lane] = value
    qpu[q, FIFO_READY + entry] = qpu[q, CYCLE] + latency
    qpu[q, FIFO_COUNT + tmu] = count + 1
    return True


@jit(inline=True)
def _io_lanes(addr: int) -> int:
    """The lanes of an I/O write whose values matter: every lane for the VPM, the SFU and the TMUs;
    lane 0 for a register that takes one word."""
    return ALL_LANES if addr == isa.ADDR_VPM or addr >= isa.ADDR_SFU_FIRST else 1


@jit
def _unwritten(qpu, m, q: int, file: int, addr: int, lanes: int) -> None:
    """A write that undefined flags kept from every lane: those lanes of a register become undefined;
    whether an I/O write happened at all is undefined (reported, lane 0 or every lane as _write_io)."""
    row = _register_row(file, addr)
    if row >= 0:
        qpu[q, POISON + row] |= lanes
    elif addr == isa.ADDR_R5:
        qpu[q, POISON + ACC + isa.MUX_R5] |= ALL_LANES
    elif addr != isa.ADDR_MUTEX:
        lanes &= _io_lanes(addr)
        if lanes:
            _report(m, q, qpu[q, PC], R_UNDEFINED_WRITE, addr + 64 * file, lanes)


@jit(inline=True)
def _write_results(qpu, m, vpm, cache, data, params, q: int, prog, row: int, op_add: int, op_mul: int,
                   add_out: int, mul_out: int, add_c: int, mul_c: int, add_a: int, add_b: int, cond_add: int,
                   cond_mul: int, poison_add: int, poison_mul: int) -> bool:
    """Both ALU results (at add_out, mul_out) to their destinations, packed as pm and pack say
    (§5.3, §5.4), under the conditions at cond_add, cond_mul; poison_*: their undefined lanes. An
    op-code nop writes nothing, whatever its waddr (semantics.md §4.3)."""
    ws, pm, pack = prog[row, C_WS], prog[row, C_PM], prog[row, C_PACK]
    packed_unit = 0 if ws == 0 else 1          # pm = 0: the regfile-A pack applies to the unit writing A
    for unit in range(2):
        addr = prog[row, C_WADDR_ADD] if unit == 0 else prog[row, C_WADDR_MUL]
        cond = cond_add if unit == 0 else cond_mul
        if addr == isa.NOP_ADDR or cond == S_ZERO:
            continue
        if (op_add if unit == 0 else op_mul) == 0:
            if unit == 1:                       # the MUL nop's write is unmeasured (semantics.md §4.3)
                _report(m, q, qpu[q, PC], R_MUL_NOP_WRITE, addr, 0)
            continue
        any_lane = cond == S_ONES
        for i in range(0 if any_lane else LANES):
            any_lane = any_lane or qpu[q, cond + i] != 0
        poison = poison_add if unit == 0 else poison_mul
        if not any_lane:
            if poison >> LANES:                 # no lane written, but only by undefined flags' say-so
                _unwritten(qpu, m, q, ws ^ unit, addr, poison >> LANES)
            continue
        out = add_out if unit == 0 else mul_out
        src, masked = out, False
        if pm and unit == 1 and pack:
            for i in range(LANES):
                qpu[q, S_VALUES + i], qpu[q, S_MASKS + i] = pack_mul(pack, qpu[q, out + i])
            src, masked = S_VALUES, True
        elif not pm and unit == packed_unit and pack:
            if addr >= isa.REGFILE_SIZE:
                _report(m, q, qpu[q, PC], R_PACK_OUTSIDE_A, addr, 0)
            float_result = ADD_FLOAT_RESULT[op_add] if unit == 0 else MUL_FLOAT_RESULT[op_mul]
            saturation = ADD_SATURATION[op_add] if unit == 0 else OTHER_OP
            carry = add_c if unit == 0 else mul_c
            for i in range(LANES):
                a = qpu[q, add_a + i] if unit == 0 else 0
                b = qpu[q, add_b + i] if unit == 0 else 0
                qpu[q, S_VALUES + i], qpu[q, S_MASKS + i] = pack_a(pack, qpu[q, out + i], float_result, saturation,
                                                                   a, b, qpu[q, carry + i])
            src, masked = S_VALUES, True
        if not _write(qpu, m, vpm, cache, data, params, q, ws ^ unit, addr, cond, src, masked, poison):
            return False
    return True


# ---- instructions ---------------------------------------------------------------------------------

@jit
def _add_vector(qpu, q: int, code: int, a: int, b: int) -> None:
    """The ADD ALU on 16 lanes into S_ADD_OUT, S_ADD_C. fadd has a loop of its own, in which
    add_op with a constant code compiles to fadd alone (measured 1.05x on the ALU loop; loops of
    their own for other ops measured no faster and took 4 s each to compile)."""
    x, y, out, carry = _lanes(qpu, q, a), _lanes(qpu, q, b), _lanes(qpu, q, S_ADD_OUT), _lanes(qpu, q, S_ADD_C)
    if code == alu.FADD:
        for i in range(LANES):
            out[i], carry[i] = add_op(alu.FADD, x[i], y[i])
    else:
        for i in range(LANES):
            out[i], carry[i] = add_op(code, x[i], y[i])


@jit(inline=True)
def _mul_lanes(qpu, q: int, code: int, a: int, b: int) -> None:
    x, y, out, carry = _lanes(qpu, q, a), _lanes(qpu, q, b), _lanes(qpu, q, S_MUL_OUT), _lanes(qpu, q, S_MUL_C)
    for i in range(LANES):
        out[i], carry[i] = mul_op(code, x[i], y[i])


@jit
def _mul_vector(qpu, q: int, code: int, a: int, b: int) -> None:
    """The MUL ALU on 16 lanes into S_MUL_OUT, S_MUL_C; fmul has a loop of its own, in which
    mul_op with a constant code compiles to fmul alone (measured 1.2x on the ALU loop)."""
    if (code == alu.V8MIN or code == alu.V8MAX) and a == b:
        source = _lanes(qpu, q, a)
        for i in range(LANES):                  # the MUL ALU's mov: v8min/v8max of x and x is x, C clear
            qpu[q, S_MUL_OUT + i] = source[i]
            qpu[q, S_MUL_C + i] = 0
    elif code == alu.FMUL:
        _mul_lanes(qpu, q, alu.FMUL, a, b)
    else:
        _mul_lanes(qpu, q, code, a, b)


@jit(inline=True)
def _alu(qpu, m, vpm, cache, data, params, q: int, prog, row: int) -> int:
    pc = qpu[q, PC]
    sig = prog[row, C_SIG]
    small_imm = sig == isa.SIG_SMALL_IMM
    op_add, op_mul = prog[row, C_OP_ADD], prog[row, C_OP_MUL]
    if ADD_RESERVED[op_add]:
        return _fail(m, q, pc, E_RESERVED_ADD, op_add, 0)
    raddr_a, raddr_b = prog[row, C_RADDR_A], prog[row, C_RADDR_B]
    if raddr_a == isa.ADDR_MUTEX or (not small_imm and raddr_b == isa.ADDR_MUTEX):
        owner = m[G_MUTEX_OWNER]
        if owner != NO_OWNER and owner != q:
            qpu[q, WAITING] = ST_MUTEX
            return BLOCKED
        m[G_MUTEX_OWNER] = q
    a = _read(qpu, m, vpm, cache, data, params, q, 0, raddr_a, S_A)
    if a < 0:
        return ERROR
    if small_imm:
        b = S_B
        qpu[q, POISON_B] = 0
        for i in range(LANES):
            qpu[q, S_B + i] = SMALL_IMM_BITS[raddr_b]
    elif raddr_b == isa.ADDR_UNIFORM and raddr_a == isa.ADDR_UNIFORM:
        b = a                                   # policy: one uniform per instruction (Linux, qpu-isa.md §20)
        qpu[q, POISON_B] = 0
    else:
        b = _read(qpu, m, vpm, cache, data, params, q, 1, raddr_b, S_B)
        if b < 0:
            return ERROR
    _check_reads(qpu, m, q, prog, row, small_imm)
    pm, unpack_code = prog[row, C_PM], prog[row, C_UNPACK]
    # A nop unit reads nothing and gives 0 (with C clear) in every lane.
    add_a, add_b, add_out, add_c = S_ZERO, S_ZERO, S_ZERO, S_ZERO
    poison_add, poison_mul = 0, 0
    if op_add != 0:
        add_a = _operand(qpu, q, prog[row, C_ADD_A], ADD_FLOAT_INPUT[op_add], pm, unpack_code, a, b, S_AA)
        poison_add = _mux_poison(qpu, q, prog[row, C_ADD_A])
        add_b = add_a
        if not ADD_UNARY[op_add]:
            add_b = _operand(qpu, q, prog[row, C_ADD_B], ADD_FLOAT_INPUT[op_add], pm, unpack_code, a, b, S_AB)
            poison_add |= _mux_poison(qpu, q, prog[row, C_ADD_B])
        if op_add == FTOI:
            for i in range(LANES):
                x = qpu[q, add_a + i]
                if 127 + 31 <= exponent(x) < EXP_SPECIAL and (x & MAGNITUDE) != MEASURED_FTOI_OVERFLOW:
                    # ftoi of |x| >= 2^31 other than the measured ±2^97 (semantics.md §4.1)
                    _report(m, q, pc, R_FTOI, 0, 0)
                    break
        _add_vector(qpu, q, op_add, add_a, add_b)
        add_out, add_c = S_ADD_OUT, S_ADD_C
    mul_out, mul_c = S_ZERO, S_ZERO
    if op_mul != 0:
        mul_a = _operand(qpu, q, prog[row, C_MUL_A], MUL_FLOAT_INPUT[op_mul], pm, unpack_code, a, b, S_MA)
        mul_b = _operand(qpu, q, prog[row, C_MUL_B], MUL_FLOAT_INPUT[op_mul], pm, unpack_code, a, b, S_MB)
        _mul_vector(qpu, q, op_mul, mul_a, mul_b)
        poison_mul = _mux_poison(qpu, q, prog[row, C_MUL_A]) | _mux_poison(qpu, q, prog[row, C_MUL_B])
        mul_out, mul_c = S_MUL_OUT, S_MUL_C
        if small_imm and raddr_b >= isa.SMALL_IMM_ROTATE_BASE:
            amount = _rotate(qpu, q, raddr_b - isa.SMALL_IMM_ROTATE_BASE, prog[row, C_MUL_A], prog[row, C_MUL_B])
            if poison_mul:
                poison_mul = _rotate_poison(poison_mul, amount, prog[row, C_MUL_A] < 4 and prog[row, C_MUL_B] < 4)
            if raddr_b == isa.SMALL_IMM_ROTATE_BASE and qpu[q, POISON + ACC + isa.MUX_R5] & 1:
                poison_mul = ALL_LANES          # rotated by an undefined amount
    cond_add = _condition(qpu, m, q, prog[row, C_COND_ADD], S_COND_ADD)
    cond_mul = _condition(qpu, m, q, prog[row, C_COND_MUL], S_COND_MUL)
    poison_add = _with_flags(qpu, q, poison_add, cond_add)
    poison_mul = _with_flags(qpu, q, poison_mul, cond_mul)
    if prog[row, C_SF]:
        if op_add != 0:                         # §6.2: flags from ADD unless its op is nop
            _set_flags(qpu, q, add_out, add_c, cond_add, False, poison_add)
        else:
            _set_flags(qpu, q, mul_out, mul_c, cond_mul, True, poison_mul)
    if not _write_results(qpu, m, vpm, cache, data, params, q, prog, row, op_add, op_mul, add_out, mul_out, add_c,
                          mul_c, add_a, add_b, cond_add, cond_mul, poison_add, poison_mul):
        return ERROR
    return _signal(qpu, m, q, sig)


@jit(inline=True)
def _rotate(qpu, q: int, amount: int, mul_a: int, mul_b: int) -> int:
    """§9: the MUL result rotates up by n (r5 lane 0 bits 3..0 for code 48); a full 16-lane
    rotation only when both MUL operands are r0..r3, else within each quad. Returns n."""
    n = (qpu[q, REGS + (ACC + isa.MUX_R5) * LANES] & 15) if amount == 0 else amount
    full = mul_a < 4 and mul_b < 4
    for i in range(LANES):
        source = (i - n) % LANES if full else (i & ~3) | ((i - n) & 3)
        qpu[q, S_TMP + i] = qpu[q, S_MUL_OUT + source]
        qpu[q, S_TMP2 + i] = qpu[q, S_MUL_C + source]
    for i in range(LANES):
        qpu[q, S_MUL_OUT + i] = qpu[q, S_TMP + i]
        qpu[q, S_MUL_C + i] = qpu[q, S_TMP2 + i]
    return n


@jit(inline=True)
def _signal(qpu, m, q: int, sig: int) -> int:
    pc = qpu[q, PC]
    if sig == isa.SIG_NONE or sig == isa.SIG_SMALL_IMM:
        return EXECUTED
    if sig == SIG_LDTMU0 or sig == SIG_LDTMU1:
        tmu = sig - SIG_LDTMU0
        count = qpu[q, FIFO_COUNT + tmu]
        if count == 0:
            return _fail(m, q, pc, E_LDTMU_EMPTY, tmu, 0)
        if _sfu_pending(qpu, q):
            _report(m, q, pc, R_SFU_R4_LDTMU, 0, 0)
        head = qpu[q, FIFO_HEAD + tmu]
        entry = tmu * FIFO_CAPACITY + head
        qpu[q, FIFO_HEAD + tmu] = (head + 1) % FIFO_CAPACITY
        qpu[q, FIFO_COUNT + tmu] = count - 1
        _stall(qpu, q, ST_TMU, qpu[q, FIFO_READY + entry])  # ldtmu waits for the data (semantics.md §8.2)
        lanes = _reserve_pending(qpu, q, 1, KIND_TMU)      # §3: r4 is readable by the next instruction
        if lanes < 0:
            return _fail(m, q, pc, E_PENDING_FULL, 0, 0)
        source, out = _lanes(qpu, q, FIFO_VALUES + entry * LANES), _lanes(qpu, q, lanes)
        for i in range(LANES):
            out[i] = source[i]
        return EXECUTED
    if sig == SIG_THREND:
        qpu[q, END_COUNTDOWN] = isa.THREND_DELAY_SLOTS
        return EXECUTED
    if sig == SIG_BKPT:
        return _fail(m, q, pc, E_BREAKPOINT, 0, 0)
    return _fail(m, q, pc, E_SIGNAL, sig, 0)


@jit
def _load_immediate(qpu, m, vpm, cache, data, params, q: int, prog, row: int, semaphore: bool) -> int:
    """§12: the value goes through both ALUs as a move; sf sets Z/N from it, C cleared. A semaphore
    instruction (§13) moves its own low word."""
    imm = prog[row, P.C_LOW] if semaphore else prog[row, C_IMM]
    mode = 0 if semaphore else prog[row, C_LDI_MODE]
    for i in range(LANES):
        if mode == LDI_PER_ELEMENT_SIGNED or mode == LDI_PER_ELEMENT_UNSIGNED:
            v = _per_element_value(imm, i, mode == LDI_PER_ELEMENT_SIGNED) & MASK
        else:
            v = imm
        qpu[q, S_ADD_OUT + i] = v
    cond_add = _condition(qpu, m, q, prog[row, C_COND_ADD], S_COND_ADD)
    cond_mul = _condition(qpu, m, q, prog[row, C_COND_MUL], S_COND_MUL)
    poison_add, poison_mul = _with_flags(qpu, q, 0, cond_add), _with_flags(qpu, q, 0, cond_mul)
    if prog[row, C_SF]:
        flags_from_add = prog[row, C_COND_ADD] != isa.COND_NEVER
        _set_flags(qpu, q, S_ADD_OUT, S_ZERO, cond_add if flags_from_add else cond_mul, False,
                   poison_add if flags_from_add else poison_mul)
    # The moves are `or` (ADD) and `v8min` (MUL): neither saturates nor gives a float.
    if not _write_results(qpu, m, vpm, cache, data, params, q, prog, row, MOV_ADD, MOV_MUL, S_ADD_OUT, S_ADD_OUT,
                          S_ZERO, S_ZERO, S_ZERO, S_ZERO, cond_add, cond_mul, poison_add, poison_mul):
        return ERROR
    return EXECUTED


@jit
def _semaphore(qpu, m, vpm, cache, data, params, q: int, prog, row: int) -> int:
    """16 four-bit counting semaphores: acquire waits at 0, release waits at 15 (§13)."""
    number = SEMAPHORES + prog[row, C_SEMAPHORE]
    if prog[row, C_SA] == isa.SEMAPHORE_ACQUIRE:
        if m[number] == 0:
            qpu[q, WAITING] = ST_SEMAPHORE
            return BLOCKED
        m[number] -= 1
    else:
        if m[number] == 15:
            qpu[q, WAITING] = ST_SEMAPHORE
            return BLOCKED
        m[number] += 1
    return _load_immediate(qpu, m, vpm, cache, data, params, q, prog, row, True)


@jit
def _branch(qpu, m, vpm, cache, data, params, q: int, prog, row: int) -> int:
    """§14: target = imm (+ branch + 32 if rel) (+ ra[raddr_a] lane 15 if reg); three delay slots;
    the link (branch + 32) and, for an odd raddr_a, the flags are written only if taken."""
    pc = qpu[q, PC]
    cond = prog[row, C_COND_BR]
    if BRANCH_RESERVED[cond]:
        return _fail(m, q, pc, E_RESERVED_BRANCH, cond, 0)
    if cond != isa.BRANCH_ALWAYS and qpu[q, POISON_FLAGS]:
        _report(m, q, pc, R_UNDEFINED_BRANCH, 0, qpu[q, POISON_FLAGS])
    if prog[row, C_REG] and qpu[q, POISON + REG_A + prog[row, C_RADDR_A]] >> (LANES - 1) & 1:
        _report(m, q, pc, R_UNDEFINED_BRANCH, 1, 1 << (LANES - 1))
    if cond != isa.BRANCH_ALWAYS:
        flag = BRANCH_FLAG[cond]
        if flag == C:
            _carry_check(qpu, m, q)
        want = BRANCH_WANTS[cond]
        every = BRANCH_ALL[cond] == 1           # all* / any*
        hits = 0
        for i in range(LANES):
            if qpu[q, FLAGS + flag * LANES + i] == want:
                hits += 1
        if not (hits == LANES if every else hits > 0):
            return EXECUTED
    link = pc + isa.BRANCH_LINK_OFFSET
    imm = prog[row, C_IMM]
    target = (imm - (1 << 32) if imm & 0x80000000 else imm) + (link if prog[row, C_REL] else 0)
    if prog[row, C_REG]:
        target += qpu[q, REGS + (REG_A + prog[row, C_RADDR_A]) * LANES + LANES - 1]
    qpu[q, BRANCH_TARGET] = target & MASK
    qpu[q, BRANCH_COUNTDOWN] = isa.BRANCH_DELAY_SLOTS + 1
    for i in range(LANES):
        qpu[q, S_VALUES + i] = link
    ws = prog[row, C_WS]
    for unit in range(2):
        addr = prog[row, C_WADDR_ADD] if unit == 0 else prog[row, C_WADDR_MUL]
        if addr != isa.NOP_ADDR and not _write(qpu, m, vpm, cache, data, params, q, ws ^ unit, addr, S_ONES,
                                               S_VALUES, False, 0):
            return ERROR
    if prog[row, C_RADDR_A] & 1:
        _set_flags(qpu, q, S_VALUES, S_ZERO, S_ONES, False, 0)
    return EXECUTED


@jit(inline=True)
def _advance(qpu, q: int) -> None:
    """After an instruction: r4 results arrive, branches land after their delay slots, thrend's
    delay slots count down (§3, §14, §15)."""
    kept = 0
    for j in range(qpu[q, PENDING_COUNT]):
        qpu[q, PENDING + 2 * j] -= 1
        if qpu[q, PENDING + 2 * j] == 0:
            for i in range(LANES):
                qpu[q, REGS + (ACC + isa.MUX_R4) * LANES + i] = qpu[q, PENDING_VALUES + j * LANES + i]
            qpu[q, LAST_WRITE + ACC + isa.MUX_R4] = qpu[q, INSTRUCTIONS]
            qpu[q, POISON + ACC + isa.MUX_R4] = 0
        else:
            if kept != j:
                qpu[q, PENDING + 2 * kept] = qpu[q, PENDING + 2 * j]
                qpu[q, PENDING + 2 * kept + 1] = qpu[q, PENDING + 2 * j + 1]
                for i in range(LANES):
                    qpu[q, PENDING_VALUES + kept * LANES + i] = qpu[q, PENDING_VALUES + j * LANES + i]
            kept += 1
    qpu[q, PENDING_COUNT] = kept
    landed = False
    if qpu[q, BRANCH_COUNTDOWN] > 0:
        qpu[q, BRANCH_COUNTDOWN] -= 1
        if qpu[q, BRANCH_COUNTDOWN] == 0:
            qpu[q, PC] = qpu[q, BRANCH_TARGET]
            qpu[q, BRANCH_COUNTDOWN] = -1
            landed = True
    if not landed:
        qpu[q, PC] += isa.INSTRUCTION_BYTES
    if qpu[q, END_COUNTDOWN] > 0:
        qpu[q, END_COUNTDOWN] -= 1
    elif qpu[q, END_COUNTDOWN] == 0:
        qpu[q, RUNNING] = 0


@jit
def _thread_end_checks(qpu, m, q: int, prog, row: int, fmt: int) -> None:
    """qpu-isa.md §16 rules 5 and 6, in the thrend instruction and its two delay slots: no uniform,
    varying or VPM read, no VPM or VDR/VDW access, no access to register 14 of either file."""
    pc = qpu[q, PC]
    io, reg14 = False, False
    for unit in range(2):
        addr = prog[row, C_WADDR_ADD] if unit == 0 else prog[row, C_WADDR_MUL]
        io = io or addr == isa.ADDR_VPM or addr == isa.ADDR_VPM_SETUP or addr == isa.ADDR_VPM_DMA
        reg14 = reg14 or addr == isa.ADDR_REGFILE_THREAD_RESERVED
    if fmt == P.FMT_ALU:
        small_imm = prog[row, C_SIG] == isa.SIG_SMALL_IMM
        for file in range(1 if small_imm else 2):
            addr = prog[row, C_RADDR_A] if file == 0 else prog[row, C_RADDR_B]
            io = io or addr == isa.ADDR_UNIFORM or addr == isa.ADDR_VARYING or addr == isa.ADDR_VPM
            reg14 = reg14 or addr == isa.ADDR_REGFILE_THREAD_RESERVED
    if io:
        _report(m, q, pc, R_THREAD_END_IO, 0, 0)
    if reg14:
        _report(m, q, pc, R_THREAD_END_REG14, 0, 0)


@jit(inline=True)
def _step(qpu, m, vpm, cache, data, params, q: int, prog, row: int) -> int:
    """Execute one instruction: EXECUTED, BLOCKED (semaphore or mutex) or ERROR."""
    fmt = prog[row, P.C_FORMAT]
    if fmt != P.FMT_BRANCH and (qpu[q, END_COUNTDOWN] >= 0 or prog[row, C_SIG] == SIG_THREND):
        _thread_end_checks(qpu, m, q, prog, row, fmt)
    if fmt == P.FMT_ALU:
        status = _alu(qpu, m, vpm, cache, data, params, q, prog, row)
    elif fmt == P.FMT_LDI:
        status = _load_immediate(qpu, m, vpm, cache, data, params, q, prog, row, False)
    elif fmt == P.FMT_SEMAPHORE:
        status = _semaphore(qpu, m, vpm, cache, data, params, q, prog, row)
    elif fmt == P.FMT_BRANCH:
        status = _branch(qpu, m, vpm, cache, data, params, q, prog, row)
    else:
        status = _fail(m, q, qpu[q, PC], E_UNDEFINED, prog[row, C_LDI_MODE], 0)
    if status != EXECUTED:
        return status
    if qpu[q, END_COUNTDOWN] == 0 and qpu[q, VPM_READS_LEFT] > 0:
        # §16 rule 21: read exactly the programmed number of vectors before the program ends.
        _report(m, q, qpu[q, PC], R_VPM_READS_LEFT, qpu[q, VPM_READS_LEFT], 0)
    qpu[q, INSTRUCTIONS] += 1
    _advance(qpu, q)
    cpi = int(params[P_CPI])
    qpu[q, CYCLE] += cpi
    qpu[q, BUSY] += cpi
    return EXECUTED


@jit(inline=True)
def _next_qpu(qpu, m) -> int:
    """The running QPU that is earliest in modeled time (ties: lowest number), so that waits on
    other QPUs, semaphores, the mutex and the shared DMA engines happen in a consistent order.
    With a seed, one drawn at random among those within INTERLEAVE_WINDOW clocks of it."""
    best = -1
    for i in range(qpu.shape[0]):
        if qpu[i, RUNNING] and (best < 0 or qpu[i, CYCLE] < qpu[best, CYCLE]):
            best = i
    if best < 0 or not m[G_SEEDED]:
        return best
    limit = qpu[best, CYCLE] + INTERLEAVE_WINDOW
    candidates = 0
    for i in range(qpu.shape[0]):
        if qpu[i, RUNNING] and qpu[i, CYCLE] <= limit:
            candidates += 1
    m[G_RNG] = (m[G_RNG] * 1103515245 + 12345) & 0x7FFFFFFF
    pick = (m[G_RNG] >> 8) % candidates
    for i in range(qpu.shape[0]):
        if qpu[i, RUNNING] and qpu[i, CYCLE] <= limit:
            if pick == 0:
                return i
            pick -= 1
    return best


@jit
def run(prog, base: int, qpu, m, vpm, cache, data, params, max_instructions: int) -> int:
    """Run every QPU until all have ended, or until the caller must act: DONE, NEED_DECODE (the
    next PC, m[G_NEED_PC], is outside `prog`), DRAIN (events to collect), REPORTED (strict mode),
    FAILED (m[G_ERROR...]), DEADLOCK or BUDGET. Calling again resumes where it stopped."""
    cpi = int(params[P_CPI])
    while True:
        if m[G_EVENTS] >= EVENT_DRAIN:
            return DRAIN
        q = _next_qpu(qpu, m)
        if q < 0:
            return DONE
        pc = qpu[q, PC]
        offset = pc - base
        if offset % isa.INSTRUCTION_BYTES:
            _fail(m, q, pc, E_UNALIGNED_PC, pc, 0)
            return FAILED
        row = offset // isa.INSTRUCTION_BYTES
        if offset < 0 or row >= prog.shape[0]:
            m[G_NEED_PC] = pc
            return NEED_DECODE
        _fetch(qpu, m, cache, data, params, q, pc)
        status = _step(qpu, m, vpm, cache, data, params, q, prog, row)
        if status == ERROR:
            return FAILED
        if status == EXECUTED:
            qpu[q, WAITING] = NOT_WAITING
            m[G_EXECUTED] += 1
            if m[G_STRICT] and m[G_EVENTS]:
                return REPORTED
            if m[G_EXECUTED] > max_instructions:
                return BUDGET
            continue
        # Blocked: wait until another QPU has moved on (or report a deadlock).
        executed = m[G_EXECUTED]
        qpu[q, WAITING_SINCE] = executed
        others = -1
        everyone_blocked = True
        for i in range(qpu.shape[0]):
            if not qpu[i, RUNNING]:
                continue
            if not (qpu[i, WAITING] != NOT_WAITING and qpu[i, WAITING_SINCE] == executed):
                everyone_blocked = False
                if i != q and (others < 0 or qpu[i, CYCLE] < others):
                    others = qpu[i, CYCLE]
        if everyone_blocked:
            return DEADLOCK
        wake = max(others if others >= 0 else qpu[q, CYCLE], qpu[q, CYCLE]) + cpi
        _stall(qpu, q, qpu[q, WAITING], wake)
