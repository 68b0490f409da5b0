"""The compiled core's state: two flat int64 arrays, their layouts, the codes the core answers with,
and the accessors every part of the core shares.

All state lives in qpu[q, k] (per QPU) and machine[k] (the whole V3D), owned by machine.V3D, so
that every call inside the core passes few arguments (numba passes each array as a struct of many
words). Every lane value is a 32-bit pattern held in an int64. Each layout is a list of named
fields of given sizes, laid out in order by `_Layout` (numba reads the offsets as constants).
"""

from __future__ import annotations

from qpuasm import isa
from vc4common import timing

from .jit import jit
from .timing import CORE_PARAMETERS

LANES = isa.LANES
MASK = 0xFFFFFFFF
QPUS_PER_SLICE = 4
MAX_QPUS = 16
ALL_LANES = (1 << LANES) - 1


class _Layout:
    """Offsets of fields in one flat array, each after the one before."""

    def __init__(self) -> None:
        self.size = 0

    def field(self, size: int = 1) -> int:
        at = self.size
        self.size += size
        return at


# ---- qpu[q, k] ------------------------------------------------------------------------------------
# Registers: row r, lane i at REGS + r * LANES + i; regfile A rows 0..31, B 32..63, r0..r5 64..69.
REG_A, REG_B, ACC = 0, isa.REGFILE_SIZE, 2 * isa.REGFILE_SIZE
REG_ROWS = ACC + 6
# Flags: FLAGS + k * LANES + i for k = Z, N, C, and C_FROM_MUL (the C flag came from the MUL ALU).
Z, N, C, C_FROM_MUL = 0, 1, 2, 3
assert tuple(isa.FLAGS) == ("z", "n", "c")        # Z, N, C above are their positions
# r4 results on their way: slot j has (countdown, kind) at PENDING + 2j and lanes at
# PENDING_VALUES + j * LANES; PENDING_COUNT slots are in use, in arrival order.
PENDING_SLOTS = 8
KIND_SFU, KIND_TMU = 1, 2
FIFO_CAPACITY = 16            # TMU request FIFO entries: room beyond the hardware's 8 for non-strict runs
# Stall reasons (columns STALL + reason), in the order of timing.STALL_REASONS.
ST_TMU, ST_DMA, ST_SFU, ST_VPM, ST_SEMAPHORE, ST_MUTEX, ST_ICACHE, ST_UNIFORMS = (
    timing.STALL_REASONS.index(r) for r in ("tmu", "dma", "sfu", "vpm", "semaphore", "mutex", "icache", "uniforms"))
NOT_WAITING = -1

_qpu = _Layout()
PC = _qpu.field()
UNIFORMS = _qpu.field()                 # the uniform stream's next address
RUNNING = _qpu.field()
END_COUNTDOWN = _qpu.field()            # thrend's delay slots left (-1: not ending)
BRANCH_TARGET = _qpu.field()
BRANCH_COUNTDOWN = _qpu.field()
VPM_WRITE = _qpu.field()                # the generic VPM write and read setups
VPM_READ = _qpu.field()
VPM_READS_LEFT = _qpu.field()
VDW_SETUP = _qpu.field()
VDW_STRIDE = _qpu.field()
VDR_SETUP = _qpu.field()
VDR_PITCH = _qpu.field()
INSTRUCTIONS = _qpu.field()
NOSWAP = _qpu.field()
CYCLE = _qpu.field()
DMA_DONE = _qpu.field(2)                # per DMA engine: 0 = VDR load (A-space vr_*), 1 = VDW store (B-space vw_*)
VPM_READY = _qpu.field()
WAITING = _qpu.field()
WAITING_SINCE = _qpu.field()
BUSY = _qpu.field()
STALL = _qpu.field(len(timing.STALL_REASONS))
PENDING_COUNT = _qpu.field()
FIFO_HEAD = _qpu.field(2)               # per TMU
FIFO_COUNT = _qpu.field(2)
INTERRUPTS = _qpu.field()
CODE_LINE = _qpu.field()
# Where the uniforms the host gave this program end (0: unknown, or the program has pointed its
# stream elsewhere through unif_addr); strict mode reports a read at or past it.
UNIFORMS_END = _qpu.field()
REGS = _qpu.field(REG_ROWS * LANES)
FLAGS = _qpu.field(4 * LANES)
# The instruction count when each register row was last written (-1: never), for strict mode.
LAST_WRITE = _qpu.field(REG_ROWS)
# Undefined values, tracked as a memory checker tracks poison (this simulator's policy for what the
# hardware leaves unknown, semantics.md §0): a 16-bit lane mask per register row (set: that lane
# holds a value computed from something nothing wrote), one for the flags, and the masks of what
# raddr_a and raddr_b read in this instruction (strict.py).
POISON = _qpu.field(REG_ROWS)
POISON_FLAGS = _qpu.field()
POISON_A = _qpu.field()
POISON_B = _qpu.field()
PENDING = _qpu.field(2 * PENDING_SLOTS)
PENDING_VALUES = _qpu.field(PENDING_SLOTS * LANES)
# TMU request FIFOs, a ring per TMU: entry e of TMU t has lanes at FIFO_VALUES + (t * CAP + e) *
# LANES and its ready cycle at FIFO_READY + t * CAP + e.
FIFO_VALUES = _qpu.field(2 * FIFO_CAPACITY * LANES)
FIFO_READY = _qpu.field(2 * FIFO_CAPACITY)
# Vectors of 16 lanes used within one instruction: what raddr_a/b read, the unpacked operands, the
# two results and carries, the write conditions, the values and bit masks to write, and the
# constants zero, one and the element numbers (set by machine.py), which reads and conditions
# point to instead of filling a vector.
(S_A, S_B, S_AA, S_AB, S_MA, S_MB, S_ADD_OUT, S_ADD_C, S_MUL_OUT, S_MUL_C, S_COND_ADD, S_COND_MUL, S_VALUES,
 S_MASKS, S_TMP, S_TMP2, S_ZERO, S_ONES, S_ELEMENT) = (_qpu.field(LANES) for _ in range(19))
QPU_SIZE = _qpu.size

# ---- machine[k]: the V3D-wide state and the core's answer to its caller ---------------------------
NO_OWNER = -1
# Events: what strict mode raises and non-strict mode warns: qpu, pc, report code, arg, arg2 each.
EVENT_FIELDS = 5
EVENT_CAPACITY = 64
EVENT_DRAIN = EVENT_CAPACITY - 24        # one instruction adds at most a few
PAGE_SHIFT = 12
PAGE_COUNT = (1 << 30) >> PAGE_SHIFT     # 1 GB: the largest Pi SDRAM of this GPU

_machine = _Layout()
G_MUTEX_OWNER = _machine.field()
G_HOST_INTERRUPTS = _machine.field()
G_DMA_FREE = _machine.field(2)           # per DMA engine: when it is free
G_EXECUTED = _machine.field()
G_RNG = _machine.field()
G_SEEDED = _machine.field()
G_STRICT = _machine.field()
G_EVENTS = _machine.field()
G_ERROR = _machine.field()               # a failure: its code, two arguments, QPU and PC
G_ERROR_ARG = _machine.field()
G_ERROR_ARG2 = _machine.field()
G_ERROR_QPU = _machine.field()
G_ERROR_PC = _machine.field()
G_NEED_PC = _machine.field()
# The SDRAM port and the V3D's bus (qpu_io.transfer): per port the transfers booked on it, as
# [start, end) clock intervals sorted by start, so that a line fill can go before a DMA transfer
# that the one DMA engine's queue starts later.
MEMORY_PORT, BUS_PORT = 0, 1
PORTS = 2
PORT_SLOTS = 64
PORT_KEEP = 1024                          # clocks a finished booking is kept (qpu_io.transfer)
G_PORT_COUNT = _machine.field(PORTS)
PORT_BOOKINGS = _machine.field(PORTS * PORT_SLOTS * 2)
G_SFU_FREE = _machine.field(MAX_QPUS // QPUS_PER_SLICE)     # one SFU per slice
G_PAGES_ON = _machine.field()
SEMAPHORES = _machine.field(isa.SEMAPHORE_COUNT)
EVENTS = _machine.field(EVENT_CAPACITY * EVENT_FIELDS)
# The pages of SDRAM the firmware has allocated (1: allocated), when G_PAGES_ON: strict mode reports
# a TMU read, a uniform or a DMA transfer elsewhere (on a Pi that could be the ARM's memory).
PAGES = _machine.field(PAGE_COUNT)
MACHINE_SIZE = _machine.size

# ---- params[k]: the timing parameters, in the order of timing.CORE_PARAMETERS ----------------------
_P = {name: k for k, name in enumerate(CORE_PARAMETERS)}
(P_CPI, P_TMU_HIT, P_L2_HIT, P_MEMORY, P_VDR_RATE, P_VDW_RATE, P_DMA_LATENCY, P_SFU_BUSY, P_VPM_LATENCY,
 P_MEMORY_RATE, P_ICACHE_PREFETCH, P_UNIFORMS_PREFETCH, P_DMA_ROW, P_SYSTEM_L2, P_BUS_RATE) = (_P[name] for name in (
    "cycles_per_instruction", "tmu_hit", "l2_hit", "memory", "vdr_bytes_per_clock", "vdw_bytes_per_clock",
    "dma_latency", "sfu_busy", "vpm_read_latency", "memory_bytes_per_clock", "icache_prefetch_lines",
    "uniforms_prefetch_lines", "dma_row_clocks", "system_l2_hit", "bus_bytes_per_clock"))
assert P_L2_HIT == P_TMU_HIT + 1         # qpu_io.fill_delay indexes the hit latencies by cache level

# ---- codes ----------------------------------------------------------------------------------------
# Run status (the return value of core.run).
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


# ---- accessors ------------------------------------------------------------------------------------

@jit
def report(m, q: int, pc: int, code: int, arg: int, arg2: int) -> None:
    """An event for the caller (strict mode raises it, non-strict warns)."""
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
def fail(m, q: int, pc: int, code: int, arg: int, arg2: int) -> int:
    """A fatal error for the caller; returns ERROR."""
    m[G_ERROR] = code
    m[G_ERROR_ARG] = arg
    m[G_ERROR_ARG2] = arg2
    m[G_ERROR_QPU] = q
    m[G_ERROR_PC] = pc
    return ERROR


@jit(inline=True)
def lane_view(qpu, q: int, at: int):
    """The 16 lanes at qpu[q, at] as a view: a loop over it indexes from 0, which compiles to
    plain loads and stores (an index that may be negative costs a check at every access)."""
    return qpu[q, at:at + LANES]


@jit(inline=True)
def stall(qpu, q: int, reason: int, until: float) -> None:
    """Advance a QPU's clock to `until` (if later), counting the wait under `reason`."""
    until = int(until)
    if until > qpu[q, CYCLE]:
        qpu[q, STALL + reason] += until - qpu[q, CYCLE]
        qpu[q, CYCLE] = until


@jit(inline=True)
def sfu_pending(qpu, q: int) -> bool:
    for j in range(qpu[q, PENDING_COUNT]):
        if qpu[q, PENDING + 2 * j + 1] == KIND_SFU:
            return True
    return False


@jit(inline=True)
def reserve_pending(qpu, q: int, countdown: int, kind: int) -> int:
    """The offset of the lanes of a new result on its way to r4, arriving after `countdown`
    instructions (the caller fills them); -1 if every slot is taken."""
    j = qpu[q, PENDING_COUNT]
    if j >= PENDING_SLOTS:
        return -1
    qpu[q, PENDING + 2 * j] = countdown
    qpu[q, PENDING + 2 * j + 1] = kind
    qpu[q, PENDING_COUNT] = j + 1
    return PENDING_VALUES + j * LANES


@jit(inline=True)
def register_row(file: int, addr: int) -> int:
    """The register row a write address in regfile `file`'s space names (regfile A/B or r0..r3),
    or -1 for an I/O address."""
    if addr < isa.REGFILE_SIZE:
        return file * isa.REGFILE_SIZE + addr
    if isa.ACC_WADDR_FIRST <= addr <= isa.ACC_WADDR_LAST:
        return ACC + addr - isa.ACC_WADDR_FIRST
    return -1
