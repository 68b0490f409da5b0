"""The V3D in software: QPUs executing decoded QPU code, with uniforms, TMU loads through the TMU
and L2 caches, the VPM and its DMA, the SFU, semaphores, the mutex and host interrupts; strict
mode; and the timing model's clocks and stalls.

This is the reference (pure-Python) core: every lane is an int, every rule is written once and
cites ../shared/reference/semantics.md (§N) or qpu-isa.md. Instruction fields come from
`qpuasm.instr.decode`, never from a second copy of the bit positions.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field

from qpuasm import isa
from qpuasm.instr import decode, sign_extend32

from . import fparith as fp
from . import sfu
from .alu import ADD_BY_CODE, MUL_BY_CODE
from .cache import TmuPath
from .memory import Memory, MemoryError_
from .packing import pack_a, pack_mul, unpack, unpack_r4
from .timing import STALL_REASONS, QpuReport, Report, param
from .vpm import Generic, Vpm

LANES = 16
MASK = 0xFFFFFFFF
QPUS_PER_SLICE = 4
INTERLEAVE_WINDOW = 64        # clocks: how far out of time order a seeded run may pick the next QPU


class SimulationError(RuntimeError):
    """A program did something the hardware does not define, or the simulation cannot continue."""


class SimulationWarning(UserWarning):
    """Non-strict mode: what strict mode would have raised, once per instruction and rule."""


@dataclass
class QpuState:
    number: int
    pc: int = 0
    ra: list[list[int]] = field(default_factory=lambda: [[0] * LANES for _ in range(isa.REGFILE_SIZE)])
    rb: list[list[int]] = field(default_factory=lambda: [[0] * LANES for _ in range(isa.REGFILE_SIZE)])
    acc: list[list[int]] = field(default_factory=lambda: [[0] * LANES for _ in range(6)])   # r0..r5
    z: list[int] = field(default_factory=lambda: [0] * LANES)
    n: list[int] = field(default_factory=lambda: [0] * LANES)
    c: list[int] = field(default_factory=lambda: [0] * LANES)
    uniform_address: int = 0
    running: bool = True
    end_countdown: int = -1          # instructions still to run after thrend (§15: 2 delay slots)
    branch_target: int | None = None
    branch_countdown: int = -1
    r4_pending: list[list] = field(default_factory=list)   # [instructions until visible, lanes, "sfu"/"tmu"]
    tmu_fifo: list[list[tuple[list[int], int]]] = field(default_factory=lambda: [[], []])  # (lanes, ready cycle)
    vpm_write: Generic = Generic(0, 1, 2, True, False)     # where the next generic VPM write goes
    vpm_read: Generic = Generic(0, 1, 2, True, False)
    vpm_reads_left: int = 0                                 # vectors the last read setup still provides
    vdw_setup: int = 0                                      # last VDW basic setup word
    vdw_stride: int = 0
    vdr_setup: int = 0                                      # last VDR basic setup word
    vdr_pitch: int = 0                                      # VDR extended pitch (MPITCHB)
    instructions: int = 0
    # For strict mode: registers ever written, regfile registers written by the previous
    # instruction (no forwarding, §16 rule 1), and lanes whose C flag came from the MUL ALU.
    written: set = field(default_factory=set)
    just_written: set = field(default_factory=set)
    writing: set = field(default_factory=set)
    c_from_mul: list[bool] = field(default_factory=lambda: [False] * LANES)
    tmu_noswap: bool = False
    # Timing model: this QPU's clock, the completion time of its DMAs (a: load, b: store), when its
    # VPM read data is ready, and why it is waiting (when blocked on a semaphore or the mutex).
    timing: QpuReport = field(init=False)
    cycle: int = 0
    dma_done: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    vpm_ready: int = 0
    waiting: str | None = None
    waiting_since: int = -1

    def __post_init__(self) -> None:
        self.timing = QpuReport(self.number)


def _ftoi_unmeasured(x: int) -> bool:
    """ftoi inputs of magnitude >= 2^31 other than the measured ±2^97 (semantics.md §4.1)."""
    exp = fp.exponent(x)
    return 127 + 31 <= exp < fp.EXP_SPECIAL and (x & fp.MAGNITUDE) != MEASURED_FTOI_OVERFLOW


MEASURED_FTOI_OVERFLOW = (127 + 97) << 23       # ±2^97 -> 0 (vc4c_hw/alu_ops.csv)


def _fail(q: QpuState, message: str) -> SimulationError:
    return SimulationError(f"QPU{q.number} at {q.pc:#x}: {message}")


class V3D:
    """Runs QPU programs on `qpus` QPUs over a simulated SDRAM of `memory_size` bytes."""

    def __init__(self, memory_size: int = 64 << 20, qpus: int = 12, strict: bool = True, seed: int | None = None):
        self.strict = strict
        # Deterministic by default. With a seed, the next QPU is drawn at random among those within
        # INTERLEAVE_WINDOW clocks of the earliest, so different seeds expose different races.
        self._rng = random.Random(seed) if seed is not None else None
        self.warnings: list[str] = []
        self._warned: set[tuple[int, str]] = set()
        self.memory = Memory(memory_size)
        self.qpus = qpus
        # Two TMUs per slice of four QPUs (semantics.md §1).
        self.tmus = TmuPath(self.memory, 2 * ((qpus + QPUS_PER_SLICE - 1) // QPUS_PER_SLICE))
        self.vpm = Vpm()
        self.semaphores = [0] * isa.SEMAPHORE_COUNT
        self.mutex_owner: int | None = None
        self.host_interrupts = 0
        self._programs: dict[int, list] = {}
        self.report: Report | None = None
        self._dma_free = {"a": 0, "b": 0}           # the VDR and VDW engines are shared by all QPUs
        self._sfu_free = [0] * ((qpus + QPUS_PER_SLICE - 1) // QPUS_PER_SLICE)

    # ---- program decoding -----------------------------------------------------------------------

    def _decoded(self, address: int) -> object:
        """The decoded instruction at a bus address (each word decoded once)."""
        cached = self._programs.get(address)
        if cached is None:
            word = self.memory.read32(address) | self.memory.read32(address + 4) << 32
            cached = decode(word)
            self._programs[address] = cached
        return cached

    # ---- running --------------------------------------------------------------------------------

    def execute(self, jobs: list[tuple[int, int]], max_instructions: int = 10_000_000) -> list[QpuState]:
        """Run one program per (code address, uniforms address) pair, one per QPU, until all end."""
        if len(jobs) > self.qpus:
            raise SimulationError(f"{len(jobs)} programs for {self.qpus} QPUs")
        self._programs.clear()      # memory may hold new code since the last run
        states = [QpuState(number=i, pc=code, uniform_address=uniforms) for i, (code, uniforms) in enumerate(jobs)]
        executed = 0
        # The QPU that is earliest in modeled time runs next (ties: lowest number), so waits on other
        # QPUs, semaphores, the mutex and the shared DMA engines happen in a consistent order.
        while True:
            running = [s for s in states if s.running]
            if not running:
                break
            q = min(running, key=lambda s: (s.cycle, s.number))
            if self._rng is not None:
                q = self._rng.choice([s for s in running if s.cycle <= q.cycle + INTERLEAVE_WINDOW])
            if self._step(q):
                q.waiting = None
                executed += 1
                if executed > max_instructions:
                    raise SimulationError(f"more than {max_instructions} instructions executed")
                continue
            q.waiting_since = executed
            if all(s.waiting and s.waiting_since == executed for s in running):
                waits = ", ".join(f"QPU{s.number} at {s.pc:#x} ({s.waiting})" for s in running)
                raise SimulationError(f"deadlock: every running QPU is blocked: {waits}")
            others = [s.cycle for s in running if s is not q and not (s.waiting and s.waiting_since == executed)]
            wake = max(min(others, default=q.cycle), q.cycle) + int(param("cycles_per_instruction"))
            self._stall(q, q.waiting, wake)
        self.report = self._report_run(states)
        return states

    @staticmethod
    def _stall(q: QpuState, reason: str, until: float) -> None:
        """Advance a QPU's clock to `until` (if later), counting the wait under `reason`."""
        until = int(until)
        if until > q.cycle:
            q.timing.stall_cycles[reason] += until - q.cycle
            q.cycle = until

    def _report_run(self, states: list[QpuState]) -> Report:
        for s in states:
            s.timing.instructions = s.instructions
            s.timing.end_cycle = s.cycle
        cycles = max((s.cycle for s in states), default=0)
        tmu = [c.stats for c in self.tmus.tmu]
        busy = sum(s.timing.busy_cycles for s in states)
        stalls = {reason: sum(s.timing.stall_cycles[reason] for s in states) for reason in STALL_REASONS}
        # Named after the V3D performance counter sources they model (BRCM p. 82).
        counters = {
            "QPU_TOTAL_CLK_CYCLES_EXECUTING_VALID_INSTRUCTIONS": busy,
            "QPU_TOTAL_CLK_CYCLES_WAITING_FOR_TMU": stalls["tmu"],
            "QPU_TOTAL_IDLE_CLK_CYCLES": cycles * self.qpus - busy - sum(stalls.values()),
            "TMU_TOTAL_TEXTURE_CACHE_HITS": sum(t.hits for t in tmu),
            "TMU_TOTAL_TEXTURE_CACHE_MISSES": sum(t.misses for t in tmu),
            "L2C_TOTAL_L2_CACHE_HITS": self.tmus.l2.stats.hits,
            "L2C_TOTAL_L2_CACHE_MISSES": self.tmus.l2.stats.misses,
        }
        return Report(cycles, [s.timing for s in states], counters)

    def _report(self, q: QpuState, rule: str, message: str) -> None:
        """Something the hardware does not define, or that this simulator had to guess: strict mode
        raises; otherwise warn once per instruction and rule, and go on with the written policy."""
        from qpuasm.disasm import disassemble_lines
        ins = self._decoded(q.pc)
        text = disassemble_lines([ins.encode()], labels=False)[0][1]
        report = f"QPU{q.number} at {q.pc:#x} [{text}]: {message} ({rule})"
        if self.strict:
            raise SimulationError(report)
        if (q.pc, rule) not in self._warned:
            self._warned.add((q.pc, rule))
            self.warnings.append(report)
            warnings.warn(report, SimulationWarning, stacklevel=4)

    def _step(self, q: QpuState) -> bool:
        """Execute one instruction; False if the QPU is blocked (semaphore or mutex)."""
        try:
            return self._execute(q)
        except MemoryError_ as exc:
            raise _fail(q, str(exc)) from None

    def _execute(self, q: QpuState) -> bool:
        if not self._run_instruction(q):
            return False
        q.cycle += int(param("cycles_per_instruction"))
        q.timing.busy_cycles += int(param("cycles_per_instruction"))
        return True

    def _run_instruction(self, q: QpuState) -> bool:
        ins = self._decoded(q.pc)
        fmt = ins.format
        if fmt == "alu":
            if not self._alu(q, ins):
                return False
        elif fmt == "ldi":
            self._load_immediate(q, ins, self._ldi_lanes(ins))
        elif fmt == "semaphore":
            if not self._semaphore(q, ins):
                return False
        else:
            self._branch(q, ins)
        q.instructions += 1
        self._advance(q)
        return True

    def _advance(self, q: QpuState) -> None:
        q.just_written, q.writing = q.writing, set()
        for pending in q.r4_pending:
            pending[0] -= 1
            if pending[0] == 0:
                q.acc[4] = pending[1]
                q.written.add(("acc", isa.MUX_R4))
        q.r4_pending = [p for p in q.r4_pending if p[0] > 0]
        if q.branch_countdown > 0:
            q.branch_countdown -= 1
            if q.branch_countdown == 0:
                q.pc = q.branch_target
                q.branch_countdown = -1
                return self._end_countdown(q)
        q.pc += isa.INSTRUCTION_BYTES
        self._end_countdown(q)

    @staticmethod
    def _end_countdown(q: QpuState) -> None:
        if q.end_countdown > 0:
            q.end_countdown -= 1
        elif q.end_countdown == 0:
            q.running = False

    # ---- reads ----------------------------------------------------------------------------------

    def _read(self, q: QpuState, file: str, addr: int) -> list[int]:
        """One read through raddr_a (file "a") or raddr_b ("b"), with its side effects."""
        if addr < isa.REGFILE_SIZE:
            return list((q.ra if file == "a" else q.rb)[addr])
        if addr == isa.ADDR_UNIFORM:
            value = self.memory.read32(q.uniform_address)
            q.uniform_address += 4
            return [value] * LANES
        if addr == isa.ADDR_HOST_INT:              # element number (A) / QPU number (B), §10
            return list(range(LANES)) if file == "a" else [q.number] * LANES
        if addr == isa.ADDR_VPM:
            self._stall(q, "vpm", q.vpm_ready)
            if q.vpm_reads_left <= 0:
                raise _fail(q, "VPM read beyond the vectors of the last read setup")
            q.vpm_reads_left -= 1
            value = self.vpm.read(q.vpm_read)
            q.vpm_read = q.vpm_read.advanced()
            return value
        if addr == isa.ADDR_VPM_SETUP:            # vr_busy / vw_busy: is this QPU's DMA still running?
            return [1 if q.cycle < q.dma_done[file] else 0] * LANES
        if addr == isa.ADDR_VPM_DMA:              # vr_wait / vw_wait: stall until it is done
            self._stall(q, "dma", q.dma_done[file])
            return [0] * LANES
        if addr == isa.ADDR_MUTEX:
            return [0] * LANES                     # acquired by the caller before the read
        if addr == isa.NOP_ADDR:
            return [0] * LANES
        # Unmapped reads return the default value (§10: element number on A, QPU number on B).
        return list(range(LANES)) if file == "a" else [q.number] * LANES

    # ---- ALU instructions -----------------------------------------------------------------------

    def _alu(self, q: QpuState, ins) -> bool:
        f = ins.fields
        sig = f["sig"]
        small_imm = sig == isa.SIG_SMALL_IMM
        add_name = isa.ADD_OPS[f["op_add"]]
        mul_name = isa.MUL_OPS[f["op_mul"]]
        if add_name is None:
            raise _fail(q, f"reserved ADD opcode {f['op_add']}")
        muxes = (f["add_a"], f["add_b"], f["mul_a"], f["mul_b"])
        reads_mutex = f["raddr_a"] == isa.ADDR_MUTEX or (not small_imm and f["raddr_b"] == isa.ADDR_MUTEX)
        if reads_mutex:
            if self.mutex_owner not in (None, q.number):
                q.waiting = "mutex"
                return False
            self.mutex_owner = q.number
        a_value = self._read(q, "a", f["raddr_a"]) if f["raddr_a"] != isa.NOP_ADDR else [0] * LANES
        if small_imm:
            b_value = [isa.SMALL_IMM_BITS[f["raddr_b"]]] * LANES
        elif f["raddr_b"] == isa.ADDR_UNIFORM and f["raddr_a"] == isa.ADDR_UNIFORM:
            b_value = a_value              # policy: one uniform per instruction (Linux, qpu-isa.md §20)
        else:
            b_value = self._read(q, "b", f["raddr_b"]) if f["raddr_b"] != isa.NOP_ADDR else [0] * LANES

        def operand(mux: int, float_op: bool) -> list[int]:
            if mux == isa.MUX_A:
                if not f["pm"] and f["unpack"]:
                    return [unpack(f["unpack"], x, float_op) for x in a_value]
                return a_value
            if mux == isa.MUX_B:
                return b_value
            if mux == isa.MUX_R4 and f["pm"] and f["unpack"]:
                return [unpack_r4(f["unpack"], x) for x in q.acc[4]]
            return q.acc[mux]

        self._check_reads(q, f, add_name, mul_name, small_imm)
        add_float = add_name in isa.FLOAT_INPUT_OPS
        mul_float = mul_name in isa.FLOAT_INPUT_OPS
        add_fn, mul_fn = ADD_BY_CODE[f["op_add"]], MUL_BY_CODE[f["op_mul"]]
        aa, ab = operand(muxes[0], add_float), operand(muxes[1], add_float)
        ma, mb = operand(muxes[2], mul_float), operand(muxes[3], mul_float)
        if add_name == "ftoi" and any(_ftoi_unmeasured(x) for x in aa):
            self._report(q, "unknown: semantics.md §4.1", "ftoi of a value of magnitude 2^31 or more: only ±2^97 "
                                                          "was measured; the result follows a policy")
        add_out = [add_fn(aa[i], ab[i]) for i in range(LANES)]
        mul_out = [mul_fn(ma[i], mb[i]) for i in range(LANES)]
        if small_imm and f["raddr_b"] >= isa.SMALL_IMM_ROTATE_BASE:
            mul_out = self._rotate(q, mul_out, f["raddr_b"] - isa.SMALL_IMM_ROTATE_BASE, muxes[2:])

        conds = (self._condition(q, f["cond_add"]), self._condition(q, f["cond_mul"]))
        if f["sf"]:
            from_add = f["op_add"] != 0                  # §6.2: from ADD unless its op is nop
            self._set_flags(q, add_out if from_add else mul_out, conds[0] if from_add else conds[1],
                            from_mul=not from_add)
        self._write_results(q, f, add_name, mul_name, aa, ab, add_out, mul_out, conds)
        self._signal(q, sig)
        return True

    def _check_reads(self, q: QpuState, f: dict, add_name: str, mul_name: str, small_imm: bool) -> None:
        """Strict-mode checks on what this instruction reads (qpu-isa.md §16, semantics.md §6)."""
        used = []
        if add_name != "nop":
            used += [f["add_a"]] if add_name in isa.ADD_UNARY_OPS else [f["add_a"], f["add_b"]]
        if mul_name != "nop":
            used += [f["mul_a"], f["mul_b"]]
        for mux in set(used):
            if mux < isa.MUX_ACCUMULATORS:
                if mux == isa.MUX_R4 and any(p[2] == "sfu" for p in q.r4_pending):
                    self._report(q, "rule 2", "reads r4 before the SFU result is ready (the third instruction "
                                              "after the write)")
                elif ("acc", mux) not in q.written:
                    self._report(q, "uninitialised", f"reads {isa.MUX_NAMES[mux]} before anything wrote it")
                continue
            file = "a" if mux == isa.MUX_A else "b"
            addr = f["raddr_" + file]
            if file == "b" and small_imm or addr >= isa.REGFILE_SIZE:
                continue
            if (file, addr) in q.just_written:
                self._report(q, "rule 1", f"r{file}{addr} is read right after it was written: the QPU has no "
                                          "forwarding, the old value is read")
            elif (file, addr) not in q.written:
                self._report(q, "uninitialised", f"reads r{file}{addr} before anything wrote it")
        if f["raddr_a"] == isa.ADDR_UNIFORM and not small_imm and f["raddr_b"] == isa.ADDR_UNIFORM:
            self._report(q, "unknown: qpu-isa.md §20", "both read ports read a uniform: whether one or two "
                                                       "values are consumed is unknown (one is assumed)")

    @staticmethod
    def _rotate(q: QpuState, values: list, amount: int, mul_muxes: tuple[int, int]) -> list:
        """§9: the MUL result rotates up by n (r5 lane 0 bits 3..0 for code 48); a full 16-lane
        rotation only when both MUL operands are r0..r3, else within each quad."""
        n = (q.acc[5][0] & 15) if amount == 0 else amount
        if all(m < 4 for m in mul_muxes):
            return [values[(i - n) % LANES] for i in range(LANES)]
        return [values[(i & ~3) | ((i - n) & 3)] for i in range(LANES)]

    def _condition(self, q: QpuState, cond: int) -> list[bool]:
        """Per-lane write condition against the flags before this instruction (§6.1)."""
        if cond == isa.COND_NEVER:
            return [False] * LANES
        if cond == isa.COND_ALWAYS:
            return [True] * LANES
        if (cond - 2) >> 1 == 2:
            self._check_carry(q)
        flag = (q.z, q.n, q.c)[(cond - 2) >> 1]
        want = 1 if cond % 2 == 0 else 0
        return [flag[i] == want for i in range(LANES)]

    def _check_carry(self, q: QpuState) -> None:
        if any(q.c_from_mul):
            self._report(q, "unknown: semantics.md §4.4", "uses a C flag set by the MUL ALU, whose carry rule was "
                                                          "never measured (policy: mul24 overflow, else 0)")

    @staticmethod
    def _set_flags(q: QpuState, out: list, lanes: list[bool], from_mul: bool = False) -> None:
        """Z, N from the result, C from the op; only in lanes whose condition passed (§6.2)."""
        for i in range(LANES):
            if lanes[i]:
                value, carry = out[i]
                q.z[i] = 1 if value == 0 else 0
                q.n[i] = value >> 31
                q.c[i] = carry
                q.c_from_mul[i] = from_mul

    def _write_results(self, q, f, add_name, mul_name, aa, ab, add_out, mul_out, conds) -> None:
        ws = f["ws"]
        packed_unit = "add" if ws == 0 else "mul"
        for unit, name, out, cond, operands in (("add", add_name, add_out, conds[0], (aa, ab)),
                                                ("mul", mul_name, mul_out, conds[1], None)):
            addr = f["waddr_" + unit]
            if addr == isa.NOP_ADDR or not any(cond):
                continue
            values, masks = [], []
            for i in range(LANES):
                result, carry = out[i]
                if f["pm"] and unit == "mul" and f["pack"]:
                    value, mask = pack_mul(f["pack"], result)
                elif not f["pm"] and unit == packed_unit and f["pack"]:
                    if addr >= isa.REGFILE_SIZE and i == 0:
                        self._report(q, "unknown: semantics.md §5.3", "a regfile-A pack on a destination outside "
                                                                      "regfile A (the whole word is written here)")
                    a = operands[0][i] if operands else 0
                    b = operands[1][i] if operands else 0
                    value, mask = pack_a(f["pack"], result, name in isa.FLOAT_RESULT_OPS, name, a, b, carry)
                else:
                    value, mask = result, MASK
                values.append(value)
                masks.append(mask)
            file = "ab"[ws ^ (unit == "mul")]
            self._write(q, file, addr, values, masks, cond)

    def _write(self, q: QpuState, file: str, addr: int, values: list[int], masks: list[int], cond: list[bool]) -> None:
        """Write one vector to a regfile or I/O address, lane by lane under `cond`."""
        if addr < isa.REGFILE_SIZE:
            q.writing.add((file, addr))
            q.written.add((file, addr))
        elif isa.ACC_WADDR_FIRST <= addr <= isa.ACC_WADDR_LAST:
            q.written.add(("acc", addr - isa.ACC_WADDR_FIRST))
        elif addr == isa.ADDR_R5:
            q.written.add(("acc", isa.MUX_R5))
        if addr < isa.REGFILE_SIZE or isa.ACC_WADDR_FIRST <= addr <= isa.ACC_WADDR_LAST:
            target = (q.ra if file == "a" else q.rb)[addr] if addr < isa.REGFILE_SIZE else \
                q.acc[addr - isa.ACC_WADDR_FIRST]
            for i in range(LANES):
                if cond[i]:
                    target[i] = (target[i] & ~masks[i] & MASK) | (values[i] & masks[i])
            return
        if addr == isa.ADDR_R5:
            # §11: A-space keeps lane 4q of each quad, B-space replicates lane 0.
            r5 = q.acc[5]
            for i in range(LANES):
                source = (i & ~3) if file == "a" else 0
                if cond[source]:
                    r5[i] = values[source]
            return
        if addr == isa.ADDR_HOST_INT:
            if values[0]:                       # writing 0 does nothing (qpu-isa.md §16 rule 28)
                self.host_interrupts += 1
            return
        if addr == isa.ADDR_UNIFORMS_ADDRESS:
            # B-space is a relative change (unif_addr_rel, §10).
            q.uniform_address = values[0] if file == "a" else (q.uniform_address + values[0]) & MASK
            return
        if addr == isa.ADDR_VPM:
            self.vpm.write(q.vpm_write, values)
            q.vpm_write = q.vpm_write.advanced()
            return
        if addr == isa.ADDR_VPM_SETUP:
            (self._vpm_read_setup if file == "a" else self._vpm_write_setup)(q, values[0])
            return
        if addr == isa.ADDR_VPM_DMA:
            # The data moves at once; the timing model says when the transfer is over: the engine
            # (one VDR, one VDW for the whole GPU) takes bytes / bandwidth after the previous one.
            if file == "b":
                moved = self.vpm.store(self.memory, values[0], q.vdw_setup, q.vdw_stride)
                rate = param("vdw_bytes_per_clock")
            else:
                moved = self.vpm.load(self.memory, values[0], q.vdr_setup, q.vdr_pitch)
                rate = param("vdr_bytes_per_clock")
            start = max(q.cycle, self._dma_free[file])
            done = int(start + param("dma_latency") + moved / rate)
            self._dma_free[file] = done
            q.dma_done[file] = done
            return
        if addr == isa.ADDR_MUTEX:
            if self.mutex_owner == q.number:
                self.mutex_owner = None
            return
        if isa.ADDR_SFU_FIRST <= addr <= isa.ADDR_SFU_LAST:
            function = sfu.FUNCTIONS[addr - isa.ADDR_SFU_FIRST]
            slice_ = q.number // QPUS_PER_SLICE        # one SFU per slice, not pipelined
            self._stall(q, "sfu", self._sfu_free[slice_])
            self._sfu_free[slice_] = q.cycle + int(param("sfu_busy"))
            q.r4_pending.append([sfu.SFU_LATENCY, [function(v) for v in values], "sfu"])
            return
        if isa.ADDR_TMU_FIRST <= addr <= isa.ADDR_TMU_LAST:
            tmu, register = divmod(addr - isa.ADDR_TMU_FIRST, 4)
            if register:
                raise _fail(q, "texture (non-direct) TMU lookups are not simulated")
            if len(q.tmu_fifo[tmu]) >= isa.TMU_FIFO_SLOTS:
                self._report(q, "rule 23", f"more than {isa.TMU_FIFO_SLOTS} TMU{tmu} requests outstanding: the "
                                           "request FIFO overflows (unknown behaviour)")
            # §8.2: each lane's value is a byte address; the low 2 bits are ignored. QPUs 2 and 3 of a
            # slice use the other TMU (its cache) unless TMU_NOSWAP was written; the FIFO is the same.
            physical = tmu ^ (q.number % QPUS_PER_SLICE >= 2 and not q.tmu_noswap)
            cache = 2 * (q.number // QPUS_PER_SLICE) + physical
            lanes = []
            latency = 0
            for lane, address in enumerate(values):
                value, stale, level = self.tmus.read(cache, address)
                latency = max(latency, int(param(level)))
                if stale:
                    self._report(q, "stale cache", f"lane {lane} reads {address:#010x} through a TMU/L2 cache line "
                                                   "filled before memory changed (VDW store or host write): the "
                                                   "hardware returns the old data; clear the caches or read it "
                                                   "another way")
                lanes.append(value)
            q.tmu_fifo[tmu].append((lanes, q.cycle + latency))
            return
        if addr == isa.ADDR_TMU_NOSWAP:
            q.tmu_noswap = values[0] != 0            # only lane 0 counts (semantics.md §6.2)
            return
        raise _fail(q, f"write to unsupported I/O address {addr}")

    @staticmethod
    def _vpm_write_setup(q: QpuState, value: int) -> None:
        """A write to vw_setup: generic write setup (ID 00), VDW basic (10) or VDW stride (11) (§18)."""
        kind = isa.VPM_SETUP_ID.get(value)
        if kind == 0:
            q.vpm_write = Generic.decode(value)
        elif kind == isa.VDW_ID_BASIC:
            q.vdw_setup = value
        else:
            q.vdw_stride = isa.VDW_STRIDE.get(value)

    @staticmethod
    def _vpm_read_setup(q: QpuState, value: int) -> None:
        """A write to vr_setup: generic read setup (ID 00), VDR extended pitch (1001) or VDR basic (1xxx)."""
        if isa.VPM_SETUP_ID.get(value) == 0:
            q.vpm_read = Generic.decode(value)
            q.vpm_reads_left = isa.VPM_NUM.get(value) or 16
            q.vpm_ready = q.cycle + int(param("vpm_read_latency"))
        elif isa.VDR_EXT_ID.get(value) == isa.VDR_EXT_ID_VALUE:
            q.vdr_pitch = isa.VDR_MPITCHB.get(value)
        elif isa.VDR_ID.get(value):
            q.vdr_setup = value
        else:
            raise _fail(q, f"vr_setup value {value:#010x} selects no setup")

    def _signal(self, q: QpuState, sig: int) -> None:
        if sig in (isa.SIG_NONE, isa.SIG_SMALL_IMM):
            return
        name = isa.SIGNALS[sig]
        if name in ("ldtmu0", "ldtmu1"):
            fifo = q.tmu_fifo[int(name[-1])]
            if not fifo:
                raise _fail(q, f"{name} with no TMU request outstanding")
            if any(p[2] == "sfu" for p in q.r4_pending):
                self._report(q, "rule 2", "a TMU load into r4 while an SFU result is on its way")
            lanes, ready = fifo.pop(0)
            self._stall(q, "tmu", ready)              # ldtmu waits for the data (semantics.md §8.2)
            q.r4_pending.append([1, lanes, "tmu"])    # §3: r4 is readable by the next instruction
        elif name == "thrend":
            q.end_countdown = isa.THREND_DELAY_SLOTS
        elif name == "bkpt":
            raise _fail(q, "breakpoint")
        else:
            raise _fail(q, f"signal {name} is for fragment shaders")

    # ---- load immediate, semaphores, branches ---------------------------------------------------

    @staticmethod
    def _ldi_lanes(ins) -> list[int]:
        """§12: the 32-bit value in every lane, or 2-bit per-element values."""
        imm = ins["imm"]
        mode = isa.LDI_MODES[ins["ldi_mode"]]
        if mode == "ldi":
            return [imm] * LANES
        lanes = []
        for i in range(LANES):
            v = ((imm >> i) & 1) | ((imm >> (16 + i)) & 1) << 1
            if mode == "ldipes" and v >= 2:
                v -= 4
            lanes.append(v & MASK)
        return lanes

    def _load_immediate(self, q: QpuState, ins, lanes: list[int]) -> None:
        """The value goes through both ALUs as a move (§12); sf sets Z/N from it, C cleared."""
        f = ins.fields
        out = [(v, 0) for v in lanes]
        conds = (self._condition(q, f["cond_add"]), self._condition(q, f["cond_mul"]))
        if f["sf"]:
            self._set_flags(q, out, conds[0] if f["cond_add"] != isa.COND_NEVER else conds[1])
        self._write_results(q, f, "or", "v8min", None, None, out, out, conds)

    def _semaphore(self, q: QpuState, ins) -> bool:
        """16 four-bit counting semaphores: acquire waits at 0, release waits at 15 (§13)."""
        number = ins["semaphore"]
        if ins["sa"] == isa.SEMAPHORE_ACQUIRE:
            if self.semaphores[number] == 0:
                q.waiting = "semaphore"
                return False
            self.semaphores[number] -= 1
        else:
            if self.semaphores[number] == 15:
                q.waiting = "semaphore"
                return False
            self.semaphores[number] += 1
        self._load_immediate(q, ins, [ins.encode() & MASK] * LANES)
        return True

    def _branch(self, q: QpuState, ins) -> None:
        """§14: target = imm (+ branch + 32 if rel) (+ ra[raddr_a] lane 15 if reg); three delay
        slots; the link (branch + 32) and, for an odd raddr_a, the flags are written only if taken."""
        f = ins.fields
        cond = f["cond_br"]
        if isa.BRANCH_CONDITIONS[cond] is None:
            raise _fail(q, f"reserved branch condition {cond}")
        if cond != isa.BRANCH_ALWAYS:
            if cond >> 2 == 2:
                self._check_carry(q)
            flag = (q.z, q.n, q.c)[cond >> 2]
            want = 1 if cond % 2 == 0 else 0
            hits = [flag[i] == want for i in range(LANES)]
            taken = all(hits) if (cond >> 1) % 2 == 0 else any(hits)
            if not taken:
                return
        link = q.pc + isa.BRANCH_LINK_OFFSET
        target = sign_extend32(f["imm"]) + (link if f["rel"] else 0)
        if f["reg"]:
            target += q.ra[f["raddr_a"]][LANES - 1]
        q.branch_target = target & MASK
        q.branch_countdown = isa.BRANCH_DELAY_SLOTS + 1
        always = [True] * LANES
        for unit in ("add", "mul"):
            addr = f["waddr_" + unit]
            if addr != isa.NOP_ADDR:
                self._write(q, "ab"[f["ws"] ^ (unit == "mul")], addr, [link] * LANES, [MASK] * LANES, always)
        if f["raddr_a"] & 1:
            self._set_flags(q, [(link, 0)] * LANES, always)


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


__all__ = ["V3D", "SimulationError", "SimulationWarning", "run_program"]
