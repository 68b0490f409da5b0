"""The V3D in software, as the host sees it: memory, the QPUs' state, runs, errors and reports.

The QPUs themselves are executed by core.py and scheduler.py (compiled by numba where installed,
plain Python elsewhere, the same source either way). This module owns the state arrays, decodes the code once
per run (program.py), and turns the core's status codes into `SimulationError`s and
`SimulationWarning`s that name the QPU, the PC, the disassembled instruction and the rule.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

import qpuasm
from qpuasm import isa
from qpuasm.disasm import disassemble_lines
from vc4common import host
from vc4common.errors import BudgetExceeded, SimulationError, SimulationWarning, WallTimeExceeded
from vc4common.timing import STALL_REASONS, QpuReport, Report

from . import scheduler, state
from .cache import new_caches, restart_clocks, statistics
from .memory import OFFSET_MASK, Memory, outside_message
from .program import decode_words
from .timing import parameter_array
from .vpm import VPM_HORIZ, VPM_SIZE, VPM_STRIDE, new_vpm

LANES = state.LANES
MASK = state.MASK
DECODE_WINDOW = 1 << 16       # bytes of code decoded beyond the furthest start address (grown on demand)


INSTRUCTIONS_PER_SLICE = 1 << 20       # about 0.1-0.5 s of the compiled core on this kind of machine


# What each report of the core means: (rule, message); {0} and {1} are the report's arguments.
REPORTS = {
    state.R_SFU_R4_READ: ("rule 2", "reads r4 before the SFU result is ready (the third instruction after the write)"),
    state.R_UNDEFINED_WRITE: ("undefined value", "writes to {name} a value computed from registers or flags that "
                                                "nothing wrote (lanes {1:#06x})"),
    state.R_RULE1: ("rule 1", "r{file}{1} is read right after it was written: the QPU has no forwarding, the old "
                             "value is read"),
    state.R_UNDEFINED_BRANCH: ("undefined value", "branches on {name} computed from registers or flags that "
                                                 "nothing wrote (lanes {1:#06x})"),
    state.R_WIDE_PITCH: ("unknown: semantics.md §8.5", "a VDR extended pitch of {0} bytes, beyond the guide's 13 bits "
                                                      "(policy: bits 15:0, as programs on a Pi use)"),
    state.R_VERTICAL_SUBWORD: ("unknown: semantics.md §8.5", "a vertical 8- or 16-bit {name}: where its sub-words "
                                                            "go was never measured (policy: the MODEW offset)"),
    state.R_MUL_NOP_WRITE: ("unknown: semantics.md §4.3", "a MUL nop names the destination {name}: whether it "
                                                         "writes is unmeasured (policy: it writes nothing)"),
    state.R_TWO_UNIFORMS: ("unknown: qpu-isa.md §20", "both read ports read a uniform: whether one or two values are "
                                                     "consumed is unknown (one is assumed)"),
    state.R_FTOI: ("unknown: semantics.md §4.1", "ftoi of a value of magnitude 2^31 or more: only ±2^97 was "
                                                "measured; the result follows a policy"),
    state.R_MUL_CARRY: ("unknown: semantics.md §4.4", "uses a C flag set by the MUL ALU, whose carry rule was never "
                                                     "measured (policy: mul24 overflow, else 0)"),
    state.R_PACK_OUTSIDE_A: ("unknown: semantics.md §5.3", "a regfile-A pack on a destination outside regfile A (the "
                                                          "whole word is written here)"),
    state.R_TMU_OVERFLOW: ("rule 23", f"more than {isa.TMU_FIFO_SLOTS} TMU{{0}} requests outstanding: the request "
                                     "FIFO overflows (unknown behaviour)"),
    state.R_STALE: ("stale cache", "lane {0} reads {1:#010x} through a TMU/L2 cache line filled before memory changed "
                                  "(VDW store or host write): the hardware returns the old data; clear the caches or "
                                  "read it another way"),
    state.R_SFU_R4_LDTMU: ("rule 2", "a TMU load into r4 while an SFU result is on its way"),
    state.R_THREAD_END_IO: ("rule 5", "a uniform, varying or VPM read, or a VPM/DMA access, in the thrend instruction "
                                     "or its two delay slots"),
    state.R_THREAD_END_REG14: ("rule 6", "ra14/rb14 accessed in the thrend instruction or its two delay slots"),
    state.R_VPM_READS_LEFT: ("rule 21", "the program ends with {0} vector(s) of the last VPM read setup unread"),
    state.R_UNALLOCATED: ("GPU memory", "{0:#010x} ({by}) is not in memory the firmware allocated: on a Pi that "
                                       "address may be the ARM's own memory"),
    state.R_UNIFORMS_PAST_END: ("uniforms", "a uniform read at {0:#010x}, past the end of the uniforms the host gave "
                                           "this program ({1:#010x}): the hardware would read whatever lies "
                                           "there"),
    state.R_STALE_UNIFORM: ("stale cache", "the uniform at {0:#010x} comes from a uniforms-cache line filled before "
                                          "memory changed (VDW store or host write): the hardware returns the old "
                                          "word; clear the caches (SLCACTL) or write uniforms before the run"),
}

ERRORS = {
    state.E_RESERVED_ADD: "reserved ADD opcode {0}",
    state.E_VPM_READ_EMPTY: "VPM read beyond the vectors of the last read setup",
    state.E_TEXTURE: "texture (non-direct) TMU lookups are not simulated",
    state.E_IO_WRITE: "write to unsupported I/O address {0}",
    state.E_VR_SETUP: "vr_setup value {0:#010x} selects no setup",
    state.E_LDTMU_EMPTY: "ldtmu{0} with no TMU request outstanding",
    state.E_BREAKPOINT: "breakpoint",
    state.E_SIGNAL: "signal {signal} is for fragment shaders",
    state.E_RESERVED_BRANCH: "reserved branch condition {0}",
    state.E_UNDEFINED: "undefined load-immediate mode {0}",
    state.E_VPM_SIZE: "VPM setup {0:#010x} selects the reserved SIZE 3",
    state.E_DMA_MODEW: "DMA setup with the reserved MODEW 1",
    state.E_FIFO_FULL: f"more than {state.FIFO_CAPACITY} TMU{{0}} requests outstanding (the simulator's limit)",
    state.E_PENDING_FULL: f"more than {state.PENDING_SLOTS} results on their way to r4",
    state.E_UNALIGNED_PC: "the program counter {0:#x} is not a multiple of 8",
}


def _write_name(addr: int, space: str) -> str:
    """The printed name of a write address (the disassembler's: the first row of isa.IO_REGISTERS)."""
    if addr < isa.REGFILE_SIZE:
        return f"r{space[1]}{addr}"
    for row in isa.IO_REGISTERS:
        if row.addr == addr and space in row.spaces:
            return row.name
    return f"{isa.RAW_REGISTER_PREFIX[space[1]]}{addr}"


def _report_name(code: int, arg: int) -> str:
    if code == state.R_UNDEFINED_WRITE:
        return _write_name(arg % 64, "wb" if arg >= 64 else "wa")
    if code == state.R_UNDEFINED_BRANCH:
        return "its target register" if arg else "flags"
    if code == state.R_VERTICAL_SUBWORD:
        return "VDW store" if arg else "VDR load"
    if code == state.R_MUL_NOP_WRITE:
        return f"waddr {arg}"
    return ""


@dataclass
class QpuState:
    """One QPU after a run: its registers (lists of 16 lanes), flags and where it stopped."""

    number: int
    pc: int
    running: bool
    instructions: int
    uniform_address: int
    cycle: int
    ra: list[list[int]]
    rb: list[list[int]]
    acc: list[list[int]]
    z: list[int]
    n: list[int]
    c: list[int]


def _initial_generic_setup() -> int:
    """The generic VPM setup in force before a program writes one: horizontal 32-bit, stride 1, row 0."""
    return 1 << VPM_HORIZ[0] | isa.VPM_SIZE_32 << VPM_SIZE[0] | 1 << VPM_STRIDE[0]


class V3D:
    """Runs QPU programs on `qpus` QPUs over a simulated SDRAM of `memory_size` bytes."""

    def __init__(self, memory_size: int = 64 << 20, qpus: int = host.QPUS, strict: bool = True,
                 seed: int | None = None):
        if not 1 <= qpus <= state.MAX_QPUS:
            raise ValueError(f"{qpus} QPUs: the V3D model has 1 to {state.MAX_QPUS}")
        self.strict = strict
        # Deterministic by default; with a seed the core draws the next QPU among those within
        # scheduler.INTERLEAVE_WINDOW clocks of the earliest, so different seeds expose different races.
        self.seed = seed
        self.warnings: list[str] = []
        self._warned: set[tuple[int, str]] = set()
        self.memory = Memory(memory_size)
        self.qpus = qpus
        slices = (qpus + state.QPUS_PER_SLICE - 1) // state.QPUS_PER_SLICE
        self.tmus = 2 * slices                  # two TMUs per slice of four QPUs (semantics.md §1)
        self.caches = new_caches()
        self.vpm = new_vpm()
        self.machine = np.zeros(state.MACHINE_SIZE, dtype=np.int64)    # see state.py for the layout
        self.qpu_state = np.zeros((0, state.QPU_SIZE), dtype=np.int64)
        self.report: Report | None = None
        self._cache_before = statistics(self.caches, self.tmus)
        self.wall_timeout: float | None = None      # seconds of this machine's wall time a run may take

    @property
    def semaphores(self) -> np.ndarray:
        return self.machine[state.SEMAPHORES:state.SEMAPHORES + isa.SEMAPHORE_COUNT]

    @property
    def host_interrupts(self) -> int:
        """Interrupts the QPUs raised (writes of non-zero values to host_int), over every run."""
        return int(self.machine[state.G_HOST_INTERRUPTS])

    # ---- running --------------------------------------------------------------------------------

    def allocated(self, ranges: list[tuple[int, int]] | None) -> None:
        """The SDRAM the firmware has allocated, as (offset, size) ranges: strict mode then reports a
        TMU read, uniform or DMA transfer outside them. None: unknown (no firmware: no check)."""
        m = self.machine
        m[state.PAGES:state.PAGES + state.PAGE_COUNT] = 0
        m[state.G_PAGES_ON] = ranges is not None
        for offset, size in ranges or []:
            first, last = offset >> state.PAGE_SHIFT, (offset + size - 1) >> state.PAGE_SHIFT
            m[state.PAGES + first:state.PAGES + min(last + 1, state.PAGE_COUNT)] = 1

    def execute(self, jobs: list[tuple], max_instructions: int = 10_000_000) -> list[QpuState]:
        """Run one program per (code address, uniforms address[, uniforms end]) job, one per QPU, until
        all end. The uniforms' end (0: unknown) lets strict mode report a read past them."""
        if len(jobs) > self.qpus:
            raise SimulationError(f"{len(jobs)} programs for {self.qpus} QPUs")
        self._start(jobs)
        self._cache_before = statistics(self.caches, self.tmus)
        starts = [job[0] for job in jobs]
        low, high = min(starts, default=0), max(starts, default=0) + DECODE_WINDOW
        base, prog = self._decode(low, high)
        qpu, m = self.qpu_state, self.machine
        deadline = None             # set after the first slice, which may include compiling the core
        while jobs:
            # The compiled core runs in slices: between two, Python sees a pending signal (Ctrl-C
            # stops a long run within a fraction of a second, through KeyboardInterrupt).
            stop = min(int(m[state.G_EXECUTED]) + INSTRUCTIONS_PER_SLICE, max_instructions)
            status = scheduler.run(prog, base, qpu, m, self.vpm, self.caches, self.memory.data, parameter_array(), stop)
            self._collect_events()
            if deadline is None and self.wall_timeout is not None:
                deadline = time.monotonic() + self.wall_timeout
            if status == state.BUDGET and stop < max_instructions:
                if deadline is not None and time.monotonic() > deadline:
                    raise WallTimeExceeded(
                        f"the simulation stopped after {self.wall_timeout:g} s of wall time (the wall-time bound), "
                        f"{int(m[state.G_EXECUTED]):,} instructions and {int(qpu[:, state.CYCLE].max()):,} modeled "
                        "V3D clocks in: does the program end?")
                continue
            if status == state.DONE:
                break
            if status == state.NEED_DECODE:
                pc = int(m[state.G_NEED_PC])
                low, high = min(low, pc), max(high, pc + DECODE_WINDOW)
                base, prog = self._decode(low, high)
                if not base <= pc < base + 8 * len(prog):
                    q = int(np.argmax(qpu[:, state.PC] == pc))
                    raise self._error(q, pc, f"fetches code outside the {self.memory.size}-byte SDRAM")
            elif status == state.FAILED:
                raise self._failure()
            elif status == state.DEADLOCK:
                waits = ", ".join(f"QPU{i} at {qpu[i, state.PC]:#x} ({STALL_REASONS[qpu[i, state.WAITING]]})"
                                  for i in range(len(jobs)) if qpu[i, state.RUNNING])
                raise SimulationError(f"deadlock: every running QPU is blocked: {waits}")
            elif status == state.BUDGET:
                raise BudgetExceeded(f"more than {max_instructions} instructions executed")
        self.report = self._report_run(qpu)
        return self._states()

    def _start(self, jobs: list[tuple[int, int]]) -> None:
        """Fresh QPUs at the jobs' code and uniforms; the machine keeps its semaphores, caches and
        interrupt count."""
        self.qpu_state = qpu = np.zeros((len(jobs), state.QPU_SIZE), dtype=np.int64)
        for i, (code, uniforms, *end) in enumerate(jobs):
            qpu[i, state.PC] = code
            qpu[i, state.UNIFORMS] = uniforms
            qpu[i, state.UNIFORMS_END] = end[0] if end else 0
        qpu[:, state.RUNNING] = 1
        qpu[:, state.END_COUNTDOWN] = -1
        qpu[:, state.BRANCH_COUNTDOWN] = -1
        qpu[:, state.VPM_WRITE] = qpu[:, state.VPM_READ] = _initial_generic_setup()
        qpu[:, state.WAITING] = state.NOT_WAITING
        qpu[:, state.WAITING_SINCE] = -1
        qpu[:, state.LAST_WRITE:state.LAST_WRITE + state.REG_ROWS] = -1
        qpu[:, state.POISON:state.POISON_FLAGS + 1] = state.ALL_LANES     # registers and flags: nothing wrote them
        qpu[:, state.CODE_LINE] = -1
        qpu[:, state.S_ONES:state.S_ONES + state.LANES] = 1
        qpu[:, state.S_ELEMENT:state.S_ELEMENT + state.LANES] = np.arange(state.LANES)
        restart_clocks(self.caches)
        m = self.machine
        interrupts, pages_on = m[state.G_HOST_INTERRUPTS], m[state.G_PAGES_ON]
        m[:state.SEMAPHORES] = 0
        m[state.G_HOST_INTERRUPTS], m[state.G_PAGES_ON] = interrupts, pages_on    # both outlive a run
        m[state.G_MUTEX_OWNER] = state.NO_OWNER
        m[state.G_STRICT] = 1 if self.strict else 0
        m[state.G_SEEDED] = 0 if self.seed is None else 1
        m[state.G_RNG] = (self.seed or 0) & 0x7FFFFFFF

    def _decode(self, low: int, high: int) -> tuple[int, np.ndarray]:
        """Decode the code between two bus addresses (clipped to the SDRAM) into the core's array."""
        base = low & ~7
        start = base & OFFSET_MASK
        end = min((high & OFFSET_MASK) + 8, self.memory.size) & ~7
        words = self.memory.data[start:max(end, start)].view("<u8")
        return base, decode_words(words)

    # ---- errors, reports and results ------------------------------------------------------------

    def _error(self, q: int, pc: int, message: str) -> SimulationError:
        return SimulationError(f"QPU{q} at {pc:#x}: {message}")

    def _instruction_text(self, pc: int) -> str:
        word = self.memory.read32(pc) | self.memory.read32(pc + 4) << 32
        return disassemble_lines([word], labels=False)[0][1]

    def _failure(self) -> SimulationError:
        m = self.machine
        code, q, pc = int(m[state.G_ERROR]), int(m[state.G_ERROR_QPU]), int(m[state.G_ERROR_PC])
        arg, arg2 = int(m[state.G_ERROR_ARG]), int(m[state.G_ERROR_ARG2])
        if code == state.E_MEMORY:
            return self._error(q, pc, outside_message(arg, arg2, self.memory.size))
        signal = isa.SIGNALS[arg] if code == state.E_SIGNAL else ""
        message = ERRORS[code].format(arg, arg2, signal=signal)
        if code == state.E_BREAKPOINT and self.memory.read32(pc) == 0 and self.memory.read32(pc + 4) == 0:
            # A zero word decodes as a breakpoint: usually the program ran off its end.
            message += (" (the word there is 0: did the program run past its end? A kernel ends with "
                        "thrend and two delay slots)")
        return self._error(q, pc, message)

    def _collect_events(self) -> None:
        """Strict mode raises the first report; otherwise warn once per instruction and rule."""
        m = self.machine
        size = state.EVENT_CAPACITY * state.EVENT_FIELDS
        events = m[state.EVENTS:state.EVENTS + size].reshape(-1, state.EVENT_FIELDS)
        count = int(m[state.G_EVENTS])
        m[state.G_EVENTS] = 0
        for q, pc, code, arg, arg2 in events[:count].tolist():
            rule, message = REPORTS[code]
            file = "ab"[arg] if code == state.R_RULE1 else ""
            by = ("a TMU read", "a uniform", "a VDW store", "a VDR load")[arg2] if code == state.R_UNALLOCATED else ""
            text = message.format(arg, arg2, file=file, name=_report_name(code, arg), by=by)
            report = f"QPU{q} at {pc:#x} [{self._instruction_text(pc)}]: {text} ({rule})"
            if self.strict:
                raise SimulationError(report)
            if (pc, rule) not in self._warned:
                self._warned.add((pc, rule))
                self.warnings.append(report)
                warnings.warn(report, SimulationWarning, stacklevel=3)

    def _report_run(self, qpu: np.ndarray) -> Report:
        per_qpu = []
        for i, row in enumerate(qpu):
            report = QpuReport(i, instructions=int(row[state.INSTRUCTIONS]), busy_cycles=int(row[state.BUSY]),
                               end_cycle=int(row[state.CYCLE]), host_interrupts=int(row[state.INTERRUPTS]))
            report.stall_cycles = {reason: int(row[state.STALL + k]) for k, reason in enumerate(STALL_REASONS)}
            per_qpu.append(report)
        cycles = max((q.end_cycle for q in per_qpu), default=0)
        after = statistics(self.caches, self.tmus)
        cache = {key: after[key] - self._cache_before[key] for key in after}
        busy = sum(q.busy_cycles for q in per_qpu)
        stalls = sum(sum(q.stall_cycles.values()) for q in per_qpu)
        # Named after the V3D performance counter sources they model (vc4common.host.PERFORMANCE_COUNT_SOURCES),
        # with the meaning of the guide's Table 82, plus the TMU cache hits, which no hardware counter
        # gives. TMU misses are line fetches from the L2 or memory, TMU hits lanes served by a line
        # already there; uniforms cache hits and misses count words read; instruction cache hits count
        # one per instruction executed whose line was there (as imrc's QI3 runs on a Pi show), misses
        # the instructions whose line was not. Prefetched lines count in neither.
        counters = {
            "QPU_TOTAL_CLK_CYCLES_EXECUTING_VALID_INSTRUCTIONS": busy,
            "QPU_TOTAL_CLK_CYCLES_WAITING_FOR_TMU": sum(q.stall_cycles["tmu"] for q in per_qpu),
            "QPU_TOTAL_IDLE_CLK_CYCLES": cycles * self.qpus - busy - stalls,
            "TMU_TOTAL_TEXTURE_QUADS_PROCESSED": (cache["tmu_hits"] + cache["tmu_misses"]) // 4,
            "QPU_TOTAL_INSTRUCTION_CACHE_HITS": sum(q.instructions for q in per_qpu) - cache["icache_misses"],
            "QPU_TOTAL_INSTRUCTION_CACHE_MISSES": cache["icache_misses"],
            "QPU_TOTAL_UNIFORMS_CACHE_HITS": cache["uniforms_hits"],
            "QPU_TOTAL_UNIFORMS_CACHE_MISSES": cache["uniforms_misses"],
            "TMU_TOTAL_TEXTURE_CACHE_HITS": cache["tmu_hits"],
            "TMU_TOTAL_TEXTURE_CACHE_MISSES": cache["tmu_misses"],
            "L2C_TOTAL_L2_CACHE_HITS": cache["l2_hits"],
            "L2C_TOTAL_L2_CACHE_MISSES": cache["l2_misses"],
        }
        return Report(cycles, per_qpu, counters)

    def _states(self) -> list[QpuState]:
        out = []
        for i, row in enumerate(self.qpu_state):
            regs = row[state.REGS:state.REGS + state.REG_ROWS * LANES].reshape(state.REG_ROWS, LANES).tolist()
            flags = row[state.FLAGS:state.FLAGS + 4 * LANES].reshape(4, LANES).tolist()
            out.append(QpuState(i, int(row[state.PC]), bool(row[state.RUNNING]), int(row[state.INSTRUCTIONS]),
                                int(row[state.UNIFORMS]), int(row[state.CYCLE]), regs[state.REG_A:state.REG_B],
                                regs[state.REG_B:state.ACC], regs[state.ACC:], flags[state.Z], flags[state.N],
                                flags[state.C]))
        return out


def run_program(words, uniforms=(), qpus: int = 1, memory_size: int = 1 << 20,
                memory: dict[int, int] | None = None, strict: bool = True,
                seed: int | None = None) -> tuple[V3D, list[QpuState]]:
    """Convenience for tests and examples: place code and uniforms in memory and run on `qpus` QPUs."""
    v3d = V3D(memory_size, qpus=max(qpus, 1), strict=strict, seed=seed)
    code_at, uniforms_at = 0x1000, 0x800
    for i, word in enumerate(words):
        v3d.memory.write32(code_at + 8 * i, int(word) & MASK)
        v3d.memory.write32(code_at + 8 * i + 4, int(word) >> 32)
    for i, value in enumerate(uniforms):
        v3d.memory.write32(uniforms_at + 4 * i, value)
    for address, value in (memory or {}).items():
        v3d.memory.write32(address, value)
    states = v3d.execute([(code_at, uniforms_at)] * qpus)
    return v3d, states


def warm_up() -> None:
    """Compile the core, or load it from numba's disk cache, by running one thread end: a tool that
    times a simulation calls this first, so that the first run's compile (minutes in a fresh
    checkout) is not counted as simulating."""
    run_program(qpuasm.assemble("nop; nop; thrend\nnop\nnop").words)


__all__ = ["BudgetExceeded", "V3D", "QpuState", "SimulationError", "SimulationWarning", "WallTimeExceeded",
           "run_program", "warm_up"]
