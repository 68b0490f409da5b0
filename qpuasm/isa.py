"""The VideoCore IV QPU instruction set: THE table.

Every field position, opcode, signal, condition, register address and name, pack/unpack code,
small-immediate value, load-immediate mode, semaphore and branch field of the QPU is written here
and nowhere else. The encoder, decoder, disassembler, grammar name lists, hazard checker and the
simulator's decoder all derive from these tables.

Section numbers (§N) refer to ../shared/reference/qpu-isa.md, which names the public sources
(Broadcom's VideoCore IV 3D Architecture Reference Guide, Mesa, vc4asm) each table was checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ==== Bit fields (§1, §2, §12, §13, §14) ====


@dataclass(frozen=True)
class Field:
    """A bit field [hi:lo] of the 64-bit instruction word."""

    name: str
    hi: int
    lo: int
    zero_means: int = 0               # a count field whose 0 stands for its largest value (16, 64, 128)
    width: int = field(init=False)
    mask: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", self.hi - self.lo + 1)
        object.__setattr__(self, "mask", (1 << (self.hi - self.lo + 1)) - 1)

    def get(self, word: int) -> int:
        return (word >> self.lo) & self.mask

    def put(self, value: int) -> int:
        if not 0 <= value <= self.mask:
            raise ValueError(f"{value} does not fit field {self.name} [{self.hi}:{self.lo}]")
        return value << self.lo

    def count(self, word: int) -> int:
        """The field as a count: its value, or `zero_means` for 0."""
        return self.get(word) or self.zero_means

    def put_count(self, count: int) -> int:
        """A count into the field: `zero_means` is written as 0."""
        return self.put(0 if self.zero_means and count == self.zero_means else count)


SIG = Field("sig", 63, 60)

# The write half of the high word (bits 56..32) is shared by ALU, load-immediate and semaphore
# instructions (§12: "High word = same layout as ALU").
_WRITE_FIELDS = (
    Field("pm", 56, 56),
    Field("pack", 55, 52),
    Field("cond_add", 51, 49),
    Field("cond_mul", 48, 46),
    Field("sf", 45, 45),
    Field("ws", 44, 44),
    Field("waddr_add", 43, 38),
    Field("waddr_mul", 37, 32),
)

# §2: ALU instruction (sig 0..13; for sig 13 raddr_b holds a small-immediate code, §8).
ALU_FIELDS = (
    SIG,
    Field("unpack", 59, 57),
    *_WRITE_FIELDS,
    Field("op_mul", 31, 29),
    Field("op_add", 28, 24),
    Field("raddr_a", 23, 18),
    Field("raddr_b", 17, 12),
    Field("add_a", 11, 9),
    Field("add_b", 8, 6),
    Field("mul_a", 5, 3),
    Field("mul_b", 2, 0),
)

LDI_MODE = Field("ldi_mode", 59, 57)

# §12: load immediate (sig 14, mode 0, 1 or 3).
LDI_FIELDS = (SIG, LDI_MODE, *_WRITE_FIELDS, Field("imm", 31, 0))

# §13: semaphore (sig 14, mode 4). Bits 31..5 are "don't care" but kept so decoding is lossless.
SEMAPHORE_FIELDS = (
    SIG,
    LDI_MODE,
    *_WRITE_FIELDS,
    Field("sem_unused", 31, 5),
    Field("sa", 4, 4),
    Field("semaphore", 3, 0),
)

# §14: branch (sig 15). Bit 45 is both the ALU `sf` bit and the LSB of raddr_a (errata, §14).
BRANCH_FIELDS = (
    SIG,
    Field("br_unused", 59, 56),
    Field("cond_br", 55, 52),
    Field("rel", 51, 51),
    Field("reg", 50, 50),
    Field("raddr_a", 49, 45),
    Field("ws", 44, 44),
    Field("waddr_add", 43, 38),
    Field("waddr_mul", 37, 32),
    Field("imm", 31, 0),
)

FORMATS: dict[str, tuple[Field, ...]] = {
    "alu": ALU_FIELDS,
    "ldi": LDI_FIELDS,
    "semaphore": SEMAPHORE_FIELDS,
    "branch": BRANCH_FIELDS,
}

# ==== Signals (§3) ====

SIG_SMALL_IMM = 13
SIG_LOAD_IMM = 14
SIG_BRANCH = 15
SIG_NONE = 1

# Index = sig code. None = no signal (sig 1); 13..15 select another instruction class.
SIGNALS: tuple[str | None, ...] = (
    "bkpt",     # 0 software breakpoint
    None,       # 1 no signal
    "thrsw",    # 2 thread switch
    "thrend",   # 3 program end; 2 delay slots still execute (§15)
    "sbwait",   # 4 wait for scoreboard
    "sbdone",   # 5 scoreboard unlock
    "lthrsw",   # 6 last thread switch
    "loadcv",   # 7 coverage load into r4
    "loadc",    # 8 colour load into r4
    "ldcend",   # 9 colour load and program end
    "ldtmu0",   # 10 pop TMU0 FIFO into r4
    "ldtmu1",   # 11 pop TMU1 FIFO into r4
    "loadam",   # 12 alpha-mask load into r4
)
SIGNAL_CODES = {name: code for code, name in enumerate(SIGNALS) if name}
# Signals that write r4 (readable by the next instruction, §3) and signals that end the program.
SIGNALS_LOADING_R4 = frozenset({"loadcv", "loadc", "ldcend", "ldtmu0", "ldtmu1", "loadam"})
SIGNALS_ENDING = frozenset({"thrend", "ldcend"})
SIGNALS_THREAD_SWITCH = frozenset({"thrsw", "lthrsw"})

# ==== Opcodes (§5) ====


@dataclass(frozen=True)
class Op:
    """One ALU mnemonic (§5) and all that is known of it: its opcode on each ALU that has it and
    the properties the encoder, the checker and the simulator read. Adding an op: its row here,
    its semantics in simulator/alu.py, and a golden line."""

    name: str
    add: int | None = None          # op_add code, None: not on the ADD ALU
    mul: int | None = None          # op_mul code, None: not on the MUL ALU
    unary: bool = False             # reads operand A only (§5.1 notes)
    float_in: bool = False          # its inputs are floats: regfile-A unpack converts to float (§7.2)
    float_out: bool = False         # its result is a float: 16-bit regfile-A packs make it half (§7.4)
    overflow: str = ""              # "add" / "sub": signed overflow, detected so, saturates in regfile-A packs (§7.4)
    mul_first: bool = False         # on both ALUs; alone on a line it goes to the MUL ALU (as vc4asm places it)


_FLOAT = {"float_in": True, "float_out": True}
OPS: tuple[Op, ...] = (
    Op("nop", add=0, mul=0),
    Op("fadd", add=1, **_FLOAT), Op("fsub", add=2, **_FLOAT), Op("fmin", add=3, **_FLOAT),
    Op("fmax", add=4, **_FLOAT), Op("fminabs", add=5, **_FLOAT), Op("fmaxabs", add=6, **_FLOAT),
    Op("ftoi", add=7, unary=True, float_in=True), Op("itof", add=8, unary=True, float_out=True),
    Op("add", add=12, overflow="add"), Op("sub", add=13, overflow="sub"),
    Op("shr", add=14), Op("asr", add=15), Op("ror", add=16), Op("shl", add=17),
    Op("min", add=18), Op("max", add=19), Op("and", add=20), Op("or", add=21), Op("xor", add=22),
    Op("not", add=23, unary=True), Op("clz", add=24, unary=True),
    Op("v8adds", add=30, mul=6, mul_first=True), Op("v8subs", add=31, mul=7, mul_first=True),
    Op("fmul", mul=1, **_FLOAT), Op("mul24", mul=2), Op("v8muld", mul=3), Op("v8min", mul=4), Op("v8max", mul=5),
)
OP_BY_NAME = {op.name: op for op in OPS}


def _by_code(unit: str, size: int) -> tuple[Op | None, ...]:
    rows: list[Op | None] = [None] * size
    for op in OPS:
        code = getattr(op, unit)
        if code is not None:
            assert rows[code] is None, f"two ops with {unit} code {code}"
            rows[code] = op
    return tuple(rows)


# Index = op_add (5 bits) / op_mul (3 bits); None = reserved.
ADD_TABLE = _by_code("add", 32)
MUL_TABLE = _by_code("mul", 8)
ADD_OPS: tuple[str | None, ...] = tuple(op.name if op else None for op in ADD_TABLE)
MUL_OPS: tuple[str | None, ...] = tuple(op.name if op else None for op in MUL_TABLE)
ADD_OP_CODES = {op.name: op.add for op in OPS if op.add is not None}
MUL_OP_CODES = {op.name: op.mul for op in OPS if op.mul is not None}
# The canonical moves (§5, Mesa/Broadcom): ADD `mov` = `or x, x`, MUL `mov` = `v8min x, x`.
MOV_ADD_OP = "or"
MOV_MUL_OP = "v8min"

# ==== Conditions (§6.1, §14) ====

COND_NEVER = 0
COND_ALWAYS = 1
# Index = cond code; the name is the assembler suffix without the dot ("" = always).
CONDITIONS: tuple[str, ...] = ("never", "", "ifz", "ifnz", "ifn", "ifnn", "ifc", "ifcc")
CONDITION_CODES = {name: code for code, name in enumerate(CONDITIONS)}

BRANCH_ALWAYS = 15
# Index = cond_br; None = reserved (12..14); "" = always.
BRANCH_CONDITIONS: tuple[str | None, ...] = (
    "allz", "allnz", "anyz", "anynz", "alln", "allnn", "anyn", "anynn",
    "allc", "allcc", "anyc", "anycc", None, None, None, "",
)
BRANCH_CONDITION_CODES = {name: code for code, name in enumerate(BRANCH_CONDITIONS) if name is not None}

# What each condition tests, as columns the simulator and checker read (no arithmetic on codes).
FLAGS: tuple[str, ...] = ("z", "n", "c")
# Per cond code (§6.1): the flag read (None: never/always) and the value of it that passes.
CONDITION_TESTS: tuple[tuple[str | None, int], ...] = (
    (None, 0), (None, 1), ("z", 1), ("z", 0), ("n", 1), ("n", 0), ("c", 1), ("c", 0))
# Per cond_br (§14): the flag read, the value of it that passes, and whether every lane must pass
# (all*) or one is enough (any*); None for the reserved codes; always reads no flag.
BRANCH_TESTS: tuple[tuple[str | None, int, bool] | None, ...] = (
    ("z", 1, True), ("z", 0, True), ("z", 1, False), ("z", 0, False),
    ("n", 1, True), ("n", 0, True), ("n", 1, False), ("n", 0, False),
    ("c", 1, True), ("c", 0, True), ("c", 1, False), ("c", 0, False),
    None, None, None, (None, 1, True),
)

# ==== Pack and unpack (§7) ====

# pm = 0: regfile-A pack (§7.4), index = pack code.
PACK_A: tuple[str, ...] = (
    "", "16a", "16b", "8abcd", "8a", "8b", "8c", "8d",
    "32s", "16as", "16bs", "8abcds", "8as", "8bs", "8cs", "8ds",
)
# pm = 1: MUL colour pack (§7.5), index = pack code; None = reserved. Names follow vc4asm's
# "saturated float" spelling so that they never collide with a regfile-A pack name.
PACK_MUL: tuple[str | None, ...] = (
    "", None, None, "8abcdsf", "8asf", "8bsf", "8csf", "8dsf",
    None, None, None, None, None, None, None, None,
)
# Unpack (§7.2 regfile A with pm = 0, §7.3 r4 with pm = 1), index = unpack code.
UNPACK: tuple[str, ...] = ("", "16a", "16b", "8dr", "8a", "8b", "8c", "8d")

PACK_A_CODES = {name: code for code, name in enumerate(PACK_A) if name}
PACK_MUL_CODES = {name: code for code, name in enumerate(PACK_MUL) if name}
UNPACK_CODES = {name: code for code, name in enumerate(UNPACK) if name}
# Other spellings accepted on input: Mesa's names and vc4asm's explicit int/float forms.
PACK_ALIASES = {"8888": "8abcd", "8888s": "8abcds", "8888sf": "8abcdsf", "sat": "32s", "16ai": "16a", "16af": "16a",
                "16bi": "16b", "16bf": "16b", "8888c": "8abcdsf", "8ac": "8asf", "8bc": "8bsf",
                "8cc": "8csf", "8dc": "8dsf"}
UNPACK_ALIASES = {"8d_rep": "8dr", "16ai": "16a", "16af": "16a", "16bi": "16b", "16bf": "16b",
                  "8ai": "8a", "8af": "8a", "8bi": "8b", "8bf": "8b", "8ci": "8c", "8cf": "8c",
                  "8di": "8d", "8df": "8d"}

# ==== Input muxes (§4) ====

MUX_ACCUMULATORS = 6  # mux values 0..5 are r0..r5
MUX_A = 6
MUX_B = 7
MUX_R4 = 4
MUX_R5 = 5
MUX_NAMES: tuple[str, ...] = ("r0", "r1", "r2", "r3", "r4", "r5")

# ==== Small immediates and rotation (§8, §9) ====

SMALL_IMM_ROTATE_BASE = 48   # 48 = rotate by r5; 48 + n = rotate by n (MUL output only)
SMALL_IMM_FLOAT_FIRST = 32
SMALL_IMM_FLOAT_LAST = 47


def _small_imm_bits(code: int) -> int:
    """The 32-bit pattern a small-immediate code reads as (§8, vc4asm's SMIValue formula)."""
    if SMALL_IMM_FLOAT_FIRST <= code <= SMALL_IMM_FLOAT_LAST:
        return (((code ^ 0x28) << 23) + 0x3B800000) & 0xFFFFFFFF
    low5 = code & 0x1F
    return (low5 - 32 if low5 & 0x10 else low5) & 0xFFFFFFFF


# Index = code (0..63): the 32-bit pattern delivered on mux B when sig = 13.
SMALL_IMM_BITS: tuple[int, ...] = tuple(_small_imm_bits(code) for code in range(64))
# Codes 0..47 are plain immediates; pattern -> code for the assembler's choice.
SMALL_IMM_CODES: dict[int, int] = {SMALL_IMM_BITS[c]: c for c in range(SMALL_IMM_ROTATE_BASE)}

# ==== Load immediate and semaphore (§12, §13) ====

LDI_MODES: dict[int, str] = {0: "ldi", 1: "ldipes", 3: "ldipeu"}   # 32-bit, per-element signed/unsigned
LDI_MODE_CODES = {name: code for code, name in LDI_MODES.items()}
LDI_MODE_SEMAPHORE = 4
LANES = 16                                   # a QPU is a 16-way SIMD processor (§1)
SEMAPHORE_COUNT = 16
SEMAPHORE_ACQUIRE = 1   # sa = 1 decrements (acquire, `sacq`); 0 increments (release, `srel`)
SEMAPHORE_OPS = {"srel": 0, "sacq": SEMAPHORE_ACQUIRE}


# A per-element load immediate (§12): element i's 2-bit value has its low bit at bit i of the
# immediate and its high bit at bit 16 (LANES) + i. Written in plain integer arithmetic so that the
# simulator's compiled core uses this same function.
def per_element_value(imm: int, element: int, signed: bool) -> int:
    value = ((imm >> element) & 1) | ((imm >> (LANES + element)) & 1) << 1
    return value - 4 if signed and value >= 2 else value


def per_element_immediate(values) -> int:
    """The immediate of 16 two-bit values (-2..1 signed or 0..3 unsigned; not range-checked here)."""
    bits = 0
    for element, value in enumerate(values):
        bits |= (value & 1) << element | ((value >> 1) & 1) << (LANES + element)
    return bits


# ==== Branches (§14) ====

BRANCH_DELAY_SLOTS = 3
BRANCH_LINK_OFFSET = 8 * (BRANCH_DELAY_SLOTS + 1)   # link / relative base = branch address + 32
THREND_DELAY_SLOTS = 2
INSTRUCTION_BYTES = 8

# ==== Register addresses (§10) ====

NOP_ADDR = 39          # the "nothing" address for reads and writes
REGFILE_SIZE = 32      # physical registers 0..31 in each file
ACC_WADDR_FIRST = 32   # write addresses 32..35 are r0..r3
ACC_WADDR_LAST = 35


@dataclass(frozen=True)
class RegisterName:
    """One row of the register map: a name usable at `addr` in the listed spaces.

    `spaces` is a string over {"a", "b"} for reads ("ra"/"rb" = read through raddr_a/raddr_b)
    and writes ("wa"/"wb" = write in regfile-A/B space). The first name given for a space and
    address is the one the disassembler prints.
    """

    name: str
    addr: int
    spaces: frozenset[str]


def _row(name: str, addr: int, *spaces: str) -> RegisterName:
    return RegisterName(name, addr, frozenset(spaces))


RA, RB, WA, WB = "ra", "rb", "wa", "wb"
_RW = (RA, RB, WA, WB)

# I/O names of §10. Order matters: the first row for a (space, addr) is the printed name.
IO_REGISTERS: tuple[RegisterName, ...] = (
    _row("unif", 32, RA, RB),
    _row("r0", 32, WA, WB), _row("r1", 33, WA, WB), _row("r2", 34, WA, WB), _row("r3", 35, WA, WB),
    _row("vary", 35, RA, RB),
    _row("tmurs", 36, WA, WB), _row("tmu_noswap", 36, WA, WB),
    _row("r5quad", 37, WA), _row("r5rep", 37, WB),
    _row("elem_num", 38, RA), _row("element_number", 38, RA),
    _row("qpu_num", 38, RB), _row("qpu_number", 38, RB),
    _row("irq", 38, WA, WB), _row("interrupt", 38, WA, WB), _row("host_int", 38, WA, WB),
    _row("nop", NOP_ADDR, RA, RB), _row("-", NOP_ADDR, WA, WB),
    _row("unif_addr", 40, WA), _row("unif_addr_rel", 40, WB),
    _row("x_coord", 41, RA), _row("y_coord", 41, RB),
    _row("quad_x", 41, WA), _row("quad_y", 41, WB),
    _row("ms_mask", 42, RA, WA), _row("ms_flags", 42, RA, WA),
    _row("rev_flag", 42, RB, WB),
    _row("stencil", 43, WA, WB), _row("tlbz", 44, WA, WB), _row("tlbm", 45, WA, WB),
    _row("tlbc", 46, WA, WB), _row("tlbam", 47, WA, WB),
    _row("vpm", 48, *_RW),
    _row("vr_busy", 49, RA), _row("vw_busy", 49, RB),
    _row("vr_setup", 49, WA), _row("vw_setup", 49, WB),
    _row("vr_wait", 50, RA), _row("vw_wait", 50, RB),
    _row("vr_addr", 50, WA), _row("vw_addr", 50, WB),
    _row("mutex", 51, *_RW), _row("mutex_acq", 51, RA, RB), _row("mutex_rel", 51, WA, WB),
    _row("recip", 52, WA, WB), _row("sfu_recip", 52, WA, WB),
    _row("recipsqrt", 53, WA, WB), _row("sfu_recipsqrt", 53, WA, WB),
    _row("exp", 54, WA, WB), _row("sfu_exp", 54, WA, WB), _row("sfu_exp2", 54, WA, WB),
    _row("log", 55, WA, WB), _row("sfu_log", 55, WA, WB), _row("sfu_log2", 55, WA, WB),
    _row("t0s", 56, WA, WB), _row("tmu0_s", 56, WA, WB),
    _row("t0t", 57, WA, WB), _row("tmu0_t", 57, WA, WB),
    _row("t0r", 58, WA, WB), _row("tmu0_r", 58, WA, WB),
    _row("t0b", 59, WA, WB), _row("tmu0_b", 59, WA, WB),
    _row("t1s", 60, WA, WB), _row("tmu1_s", 60, WA, WB),
    _row("t1t", 61, WA, WB), _row("tmu1_t", 61, WA, WB),
    _row("t1r", 62, WA, WB), _row("tmu1_r", 62, WA, WB),
    _row("t1b", 63, WA, WB), _row("tmu1_b", 63, WA, WB),
)

# Raw names for every address of each file: raN / rbN (N = 0..63) read or write that address
# in that file (vc4asm does the same); 0..31 are the physical registers.
RAW_REGISTER_PREFIX = {"a": "ra", "b": "rb"}

# Named I/O addresses the hazard rules and the simulator refer to (§10).
ADDR_UNIFORM = 32
ADDR_VARYING = 35
ADDR_TMU_NOSWAP = 36
ADDR_R5 = 37
ADDR_HOST_INT = 38
ADDR_UNIFORMS_ADDRESS = 40
ADDR_MS_FLAGS = 42
ADDR_TLB_Z = 44
ADDR_TLB_FIRST = 43
ADDR_TLB_LAST = 47
ADDR_VPM = 48
ADDR_VPM_SETUP = 49      # write: vr_setup (A) / vw_setup (B); read: vr_busy / vw_busy
ADDR_VPM_DMA = 50        # write: vr_addr / vw_addr; read: vr_wait / vw_wait
ADDR_MUTEX = 51
ADDR_SFU_FIRST = 52      # recip, recipsqrt, exp, log
ADDR_SFU_LAST = 55
ADDR_TMU_FIRST = 56      # t0s t0t t0r t0b t1s t1t t1r t1b
ADDR_TMU_LAST = 63
TMU_S_ADDRS = (56, 60)   # the retiring (S) coordinate writes of TMU0 and TMU1
TMU_FIFO_SLOTS = 8       # §16 rule 23: request FIFO depth per QPU (BRCM p.39)
ADDR_REGFILE_THREAD_RESERVED = 14   # §16 rule 6: no access to ra14/rb14 around thread end

# ==== VPM and DMA setup words (§18) ====
# Written once here; the assembler's built-ins (vpm_setup, vdw_setup_0, ...) compose them and the
# simulator decodes them. The ID bits select the sub-function of a vr_setup / vw_setup write.

VPM_SETUP_ID = Field("id", 31, 30)            # 00: generic VPM read/write setup
VPM_NUM = Field("num", 23, 20, zero_means=16)   # vectors to read, read setup only
VPM_STRIDE = Field("stride", 17, 12, zero_means=64)
VPM_ADDR_WORD = Field("addr_word", 11, 0)     # HORIZ (11), LANED (10), SIZE (9..8), ADDR (7..0)
VPM_HORIZ = Field("horiz", 11, 11)
VPM_LANED = Field("laned", 10, 10)
VPM_SIZE = Field("size", 9, 8)                # 0 = 8-bit, 1 = 16-bit, 2 = 32-bit
VPM_ADDR = Field("addr", 7, 0)
VPM_SIZE_8, VPM_SIZE_16, VPM_SIZE_32 = 0, 1, 2   # SIZE codes of a generic access (3 is reserved)
# A DMA transfer's MODEW (§8.5): 0 = 32-bit; 2 | half = 16-bit, the half in bit 0; 4 | byte = 8-bit,
# the byte in bits 1..0; 1 is reserved. The assembler's builtins encode it, the simulator decodes it.
DMA_MODEW_32, DMA_MODEW_16, DMA_MODEW_8 = 0, 2, 4


def vpm_values_per_word(size: int) -> int:
    """Values per 32-bit VPM word for a generic access's SIZE code; -1 for the reserved code."""
    return 4 if size == VPM_SIZE_8 else 2 if size == VPM_SIZE_16 else 1 if size == VPM_SIZE_32 else -1


def dma_element(modew: int) -> tuple[int, int]:
    """(bytes per element, sub-word offset) of a MODEW code; (-1, 0) for the reserved code."""
    if modew == DMA_MODEW_32:
        return 4, 0
    if modew >= DMA_MODEW_8:
        return 1, modew - DMA_MODEW_8
    if modew >= DMA_MODEW_16:
        return 2, modew - DMA_MODEW_16
    return -1, 0

VDW_ID_BASIC = 0b10                           # bits 31..30 of a VDW basic setup
VDW_ID_STRIDE = 0b11                          # bits 31..30 of a VDW stride setup
VDW_UNITS = Field("units", 29, 23, zero_means=128)   # rows
VDW_DEPTH = Field("depth", 22, 16, zero_means=128)   # row length
VDW_DMA_WORD = Field("dma_word", 15, 0)       # LANED, HORIZ, VPMBASE, MODEW
VDW_HORIZ = Field("horiz", 14, 14)
VDW_VPMBASE = Field("vpmbase", 13, 3)         # {Y[6:0], X[3:0]}
VDW_MODEW = Field("modew", 2, 0)
VDW_BLOCKMODE = Field("blockmode", 16, 16)
# BRCM gives the VDW stride as bits 12..0; vc4asm's addendum found 16 usable bits (§18).
VDW_STRIDE = Field("stride", 15, 0)

VDR_ID = Field("vdr_id", 31, 31)              # 1: VDR DMA load setup
VDR_EXT_ID = Field("vdr_ext_id", 31, 28)      # 1001: VDR extended pitch setup
VDR_EXT_ID_VALUE = 0b1001
VDR_MODEW = Field("modew", 30, 28)
VDR_MPITCH = Field("mpitch", 27, 24)          # pitch = 8 * 2^MPITCH bytes (0 = use extended)
VDR_ROWLEN = Field("rowlen", 23, 20, zero_means=16)
VDR_NROWS = Field("nrows", 19, 16, zero_means=16)
VDR_DMA_WORD = Field("dma_word", 15, 0)       # VPITCH, VERT, ADDRXY (and MODEW in 30..28)
VDR_VPITCH = Field("vpitch", 15, 12, zero_means=16)
VDR_VERT = Field("vert", 11, 11)
VDR_ADDRXY = Field("addrxy", 10, 0)           # {Y[5:0], X[3:0]}
VDR_MPITCHB = Field("mpitchb", 12, 0)          # the guide's field; programs use more (below)
VDR_MPITCHB_IN_PRACTICE = Field("mpitchb", 15, 0)   # semantics.md §8.5: py-videocore's SGEMM uses 12,288
