"""The host's side of the VideoCore IV: the V3D's memory-mapped registers, the firmware's mailbox
property interface, GPU memory flags and bus aliases. Not the instruction set (qpuasm/isa.py):
what the ARM writes and reads. The driver and the simulator's emulated firmware and registers share
this one copy of each number (the driver may not import the simulator's tables, nor the simulator
the driver's).
"""

from __future__ import annotations

from dataclasses import dataclass

from qpuasm.isa import Field

# V3D register offsets from the V3D base (BRCM Table 48, p. 82-84; DBCFG/DBQITE/DBQITC from
# semantics.md §11 item 9). The ARM sees them at peripheral base + V3D_BASE_OFFSET.
V3D_BASE_OFFSET = 0xC00000
V3D_REGISTERS: dict[str, int] = {
    "IDENT0": 0x000, "IDENT1": 0x004, "IDENT2": 0x008, "SCRATCH": 0x010,
    "L2CACTL": 0x020, "SLCACTL": 0x024,
    "INTCTL": 0x030, "INTENA": 0x034, "INTDIS": 0x038,
    "SQRSV0": 0x410, "SQRSV1": 0x414, "SQCNTL": 0x418,
    "SRQPC": 0x430, "SRQUA": 0x434, "SRQUL": 0x438, "SRQCS": 0x43C,
    "VPACNTL": 0x500, "VPMBASE": 0x504,
    "PCTRC": 0x670, "PCTRE": 0x674,
    **{f"PCTR{n}": 0x680 + 8 * n for n in range(16)},
    **{f"PCTRS{n}": 0x684 + 8 * n for n in range(16)},
    "DBCFG": 0xE00, "DBQITE": 0xE2C, "DBQITC": 0xE30,
}
V3D_REGISTER_NAMES = {offset: name for name, offset in V3D_REGISTERS.items()}
V3D_REGISTER_SPAN = 0x1000                   # bytes of register space the driver maps

# Register fields (BRCM Tables 68, 71, 72, 79, 80, 84).
IDENT0_VALUE = 2 << 24 | 0x443356            # TVER 2, IDSTR "V3D" (bytes 'V' '3' 'D', low first)
IDENT1_VPMSZ = Field("vpmsz", 31, 28)        # VPM size in KB (0 = 16)
IDENT1_NSEM = Field("nsem", 23, 16)
IDENT1_TUPS = Field("tups", 15, 12)          # TMUs per slice
IDENT1_QUPS = Field("qups", 11, 8)           # QPUs per slice
IDENT1_NSLC = Field("nslc", 7, 4)            # slices
IDENT1_REV = Field("rev", 3, 0)
L2CACTL_ENABLE, L2CACTL_DISABLE, L2CACTL_CLEAR = 1 << 0, 1 << 1, 1 << 2
SLCACTL_TMU1_CLEAR = Field("t1ccs", 27, 24)  # one bit per slice
SLCACTL_TMU0_CLEAR = Field("t0ccs", 19, 16)
SLCACTL_UNIFORMS_CLEAR = Field("uccs", 11, 8)
SLCACTL_ICACHE_CLEAR = Field("iccs", 3, 0)
SRQCS_COMPLETED = Field("qpurqcc", 23, 16)   # programs completed, mod 256; write bit 16 to reset
SRQCS_REQUESTED = Field("qpurqcm", 15, 8)    # requests made, mod 256; write bit 8 to reset
SRQCS_ERROR = Field("qpurqerr", 7, 7)        # a request found the queue full; write 1 to reset
SRQCS_LENGTH = Field("qpurql", 5, 0)         # requests queued; write 1 to bit 0 to empty the queue
SRQ_QUEUE_DEPTH = 16                         # semantics.md §9.1
PCTRE_ENABLE_ALL = 1 << 31                   # needed besides the per-counter bits (semantics.md §11 item 9)
PERFORMANCE_COUNTERS = 16
# Count sources of the performance counters that concern user programs (BRCM Table 82; 0..12 are 3D).
PERFORMANCE_COUNT_SOURCES: dict[int, str] = {
    13: "QPU_TOTAL_IDLE_CLK_CYCLES",
    14: "QPU_TOTAL_CLK_CYCLES_VERTEX_COORD_SHADING",
    15: "QPU_TOTAL_CLK_CYCLES_FRAGMENT_SHADING",
    16: "QPU_TOTAL_CLK_CYCLES_EXECUTING_VALID_INSTRUCTIONS",
    17: "QPU_TOTAL_CLK_CYCLES_WAITING_FOR_TMU",
    18: "QPU_TOTAL_CLK_CYCLES_WAITING_FOR_SCOREBOARD",
    19: "QPU_TOTAL_CLK_CYCLES_WAITING_FOR_VARYINGS",
    20: "QPU_TOTAL_INSTRUCTION_CACHE_HITS",
    21: "QPU_TOTAL_INSTRUCTION_CACHE_MISSES",
    22: "QPU_TOTAL_UNIFORMS_CACHE_HITS",
    23: "QPU_TOTAL_UNIFORMS_CACHE_MISSES",
    24: "TMU_TOTAL_TEXTURE_QUADS_PROCESSED",
    25: "TMU_TOTAL_TEXTURE_CACHE_MISSES",
    26: "VPM_TOTAL_CLK_CYCLES_VDW_STALLED",
    27: "VPM_TOTAL_CLK_CYCLES_VCD_STALLED",
    28: "L2C_TOTAL_L2_CACHE_HITS",
    29: "L2C_TOTAL_L2_CACHE_MISSES",
}

# The firmware's mailbox property interface (ecosystem.md A4, semantics.md §9.2).
MBOX_REQUEST = 0x00000000                    # buffer word 1 of a request
MBOX_SUCCESS = 0x80000000                    # buffer word 1 of a response that succeeded
MBOX_PARSE_ERROR = 0x80000001
MBOX_TAG_RESPONSE = 0x80000000               # set in a tag's length word when the firmware answered it
MBOX_END_TAG = 0x00000000
MBOX_IOCTL_MAJOR = 100                       # /dev/vcio: IOCTL_MBOX_PROPERTY = _IOWR(100, 0, char *)


@dataclass(frozen=True)
class MailboxTag:
    """One property tag: its id, value-buffer size in bytes, request words and response words."""

    name: str
    tag: int
    buffer_bytes: int
    request: tuple[str, ...]
    response: tuple[str, ...]


MAILBOX_TAGS: dict[str, MailboxTag] = {t.name: t for t in (
    MailboxTag("get_firmware_revision", 0x00000001, 4, (), ("revision",)),
    MailboxTag("get_board_model", 0x00010001, 4, (), ("model",)),
    MailboxTag("get_board_revision", 0x00010002, 4, (), ("revision",)),
    MailboxTag("get_board_serial", 0x00010004, 8, (), ("serial_low", "serial_high")),
    MailboxTag("get_arm_memory", 0x00010005, 8, (), ("base", "size")),
    MailboxTag("get_vc_memory", 0x00010006, 8, (), ("base", "size")),
    MailboxTag("get_clock_rate", 0x00030002, 8, ("clock_id",), ("clock_id", "rate_hz")),
    MailboxTag("get_max_clock_rate", 0x00030004, 8, ("clock_id",), ("clock_id", "rate_hz")),
    MailboxTag("get_temperature", 0x00030006, 8, ("sensor_id",), ("sensor_id", "millidegrees_c")),
    MailboxTag("get_max_temperature", 0x0003000A, 8, ("sensor_id",), ("sensor_id", "millidegrees_c")),
    MailboxTag("allocate_memory", 0x0003000C, 12, ("size", "alignment", "flags"), ("handle",)),
    MailboxTag("lock_memory", 0x0003000D, 4, ("handle",), ("bus_address",)),
    MailboxTag("unlock_memory", 0x0003000E, 4, ("handle",), ("status",)),
    MailboxTag("release_memory", 0x0003000F, 4, ("handle",), ("status",)),
    MailboxTag("execute_code", 0x00030010, 28, ("code", "r0", "r1", "r2", "r3", "r4", "r5"), ("r0",)),
    MailboxTag("execute_qpu", 0x00030011, 16, ("num_qpus", "control", "noflush", "timeout_ms"), ("status",)),
    MailboxTag("enable_qpu", 0x00030012, 4, ("enable",), ("status",)),
    MailboxTag("get_throttled", 0x00030046, 4, ("flags",), ("flags",)),
)}
MAILBOX_TAG_NAMES = {t.tag: t.name for t in MAILBOX_TAGS.values()}
EXECUTE_QPU_TIMEOUT = 0x80000000             # execute_qpu's status when the QPUs did not finish in time
# Clock ids of get_clock_rate (firmware property interface): the ones a QPU user cares about.
CLOCK_IDS = {"arm": 3, "core": 4, "v3d": 5, "sdram": 8}
# allocate_memory flags: the alias the firmware hands out depends on them (semantics.md §9.2).
MEM_FLAG_DISCARDABLE = 1 << 0
MEM_FLAG_NORMAL = 0 << 2                     # 0x0 alias, L1 and L2 cached
MEM_FLAG_DIRECT = 1 << 2                     # 0xC alias, uncached
MEM_FLAG_COHERENT = 2 << 2                   # 0x8 alias, L2 only
MEM_FLAG_L1_NONALLOCATING = MEM_FLAG_DIRECT | MEM_FLAG_COHERENT   # 0x4 alias
MEM_FLAG_ZERO = 1 << 4
MEM_FLAG_NO_INIT = 1 << 5
MEM_FLAG_HINT_PERMALOCK = 1 << 6
# The bus alias of each kind of allocation (semantics.md §9.2): the top two bits of a bus address.
BUS_ALIASES = {MEM_FLAG_NORMAL: 0x00000000, MEM_FLAG_DIRECT: 0xC0000000, MEM_FLAG_COHERENT: 0x80000000,
               MEM_FLAG_L1_NONALLOCATING: 0x40000000}
QPUS = 12                                    # the V3D of the BCM2835..7: 3 slices of 4 QPUs (IDENT1)
# The Pi 1 / Zero (BCM2835): where the ARM sees the peripherals, and the alias its SDRAM has on the
# VideoCore's bus (L2 cached; 0xC0000000, uncached, on the Pi 2/3) (ecosystem.md A4).
PI1_PERIPHERAL_BASE = 0x20000000
PI1_PERIPHERAL_SIZE = 0x01000000
PI1_SDRAM_BUS_ALIAS = BUS_ALIASES[MEM_FLAG_L1_NONALLOCATING]
BUS_ALIAS_MASK = 0xC0000000                  # bus address -> ARM physical: clear these bits
