"""Hazard and restriction checks on encoded words (qpu-isa.md §16).

Each word is reduced once to `Facts` (what it reads, writes and signals); rules then look at a word
and the words that can execute after it, following branch delay slots and static relative branch
targets. Each diagnostic names the §16 rule, the address, the disassembly, and is an error (the
hardware result is wrong or undefined) or a warning (suspicious or tool-dependent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from . import isa
from .instr import Instruction, decode, format_of, sign_extend32


@dataclass(frozen=True)
class Diagnostic:
    rule: int                # number of the rule in qpu-isa.md §16
    address: int             # byte address of the instruction at fault
    severity: str            # "error" or "warning"
    message: str
    text: str = ""           # disassembly of the instruction

    def __str__(self) -> str:
        return format_diagnostic(self)


def diagnostic_message(diag: Diagnostic) -> str:
    """`message (rule N) [disassembly]`."""
    text = f" [{diag.text}]" if diag.text else ""
    return f"{diag.message} (rule {diag.rule}){text}"


def format_diagnostic(diag: Diagnostic, with_address: bool = True) -> str:
    where = f"{diag.address:#06x}: " if with_address else ""
    return f"{where}{diag.severity}: {diagnostic_message(diag)}"


@dataclass
class Facts:
    """What one instruction does, as far as the rules care."""

    ins: Instruction | None
    writes: list[tuple[str, int, int]] = field(default_factory=list)   # (file "a"/"b", addr, cond) per ALU
    reads_a: int | None = None        # raddr_a if it is read (by a mux or as an I/O read)
    reads_b: int | None = None        # raddr_b if it is read (regfile/I/O, not a small immediate)
    muxes: tuple[int, ...] = ()
    signal: str | None = None
    rotation: int | None = None       # small-immediate code 48..63
    mul_muxes: tuple[int, ...] = ()
    branch: bool = False
    semaphore: bool = False

    @cached_property
    def written(self) -> set[tuple[str, int]]:
        return {(f, a) for f, a, cond in self.writes if cond != isa.COND_NEVER}

    def writes_addr(self, low: int, high: int | None = None) -> bool:
        high = low if high is None else high
        return any(low <= a <= high for _, a in self.written)

    def reads(self, file: str, addr: int) -> bool:
        return (self.reads_a if file == "a" else self.reads_b) == addr

    def reads_io(self, addr: int) -> bool:
        return self.reads_a == addr or self.reads_b == addr

    @property
    def writes_r4(self) -> bool:
        return self.signal in isa.SIGNALS_LOADING_R4 or self.writes_addr(isa.ADDR_SFU_FIRST, isa.ADDR_SFU_LAST)

    @property
    def reads_r4(self) -> bool:
        return isa.MUX_R4 in self.muxes

    @cached_property
    def ends(self) -> bool:
        return self.signal in isa.SIGNALS_ENDING


# §7.5 / VC4ASM-ADD: these MUL colour packs write one byte and fail on I/O destinations (rule 19).
PARTIAL_MUL_PACKS = frozenset({"8asf", "8bsf", "8csf", "8dsf"})


def facts_of(word: int) -> Facts:
    fmt = format_of(word)
    if fmt is None:
        return Facts(None)
    ins = decode(word)
    if fmt == "branch":
        return Facts(ins, writes=_writes(ins, isa.COND_ALWAYS), branch=True,
                     reads_a=ins["raddr_a"] if ins["reg"] else None)
    if fmt in ("ldi", "semaphore"):
        return Facts(ins, writes=_writes(ins), semaphore=fmt == "semaphore")
    muxes = tuple(ins[m] for m in ("add_a", "add_b", "mul_a", "mul_b"))
    used = [m for unit, m in zip(("add", "add", "mul", "mul"), muxes, strict=True)
            if ins["op_" + unit] != 0 or ins["cond_" + unit] != isa.COND_NEVER]
    small_imm = ins["sig"] == isa.SIG_SMALL_IMM
    rotation = ins["raddr_b"] if small_imm and ins["raddr_b"] >= isa.SMALL_IMM_ROTATE_BASE else None
    return Facts(
        ins, writes=_writes(ins),
        reads_a=ins["raddr_a"] if isa.MUX_A in used or _is_io_read(ins["raddr_a"]) else None,
        reads_b=None if small_imm else ins["raddr_b"] if isa.MUX_B in used or _is_io_read(ins["raddr_b"]) else None,
        muxes=tuple(used), signal=None if ins["sig"] >= isa.SIG_SMALL_IMM else isa.SIGNALS[ins["sig"]],
        rotation=rotation, mul_muxes=muxes[2:])


def _is_io_read(addr: int) -> bool:
    """I/O reads act even when no mux uses the value (a FIFO pops, a wait stalls)."""
    return addr >= isa.REGFILE_SIZE and addr != isa.NOP_ADDR


def _writes(ins: Instruction, cond: int | None = None) -> list[tuple[str, int, int]]:
    out = []
    for unit in ("add", "mul"):
        file = "ab"[ins["ws"] ^ (unit == "mul")]
        addr = ins["waddr_" + unit]
        if addr != isa.NOP_ADDR:
            out.append((file, addr, cond if cond is not None else ins["cond_" + unit]))
    return out


def _jumps(facts: list[Facts]) -> dict[int, list[int]]:
    """The instructions that are not simply followed by the next one, and what can follow them:
    the last delay slot of a program end (nothing) or of a branch (its target, and the next
    instruction unless the branch is unconditional), and the last instruction (nothing)."""
    n = len(facts)
    jumps: dict[int, list[int]] = {n - 1: []} if n else {}
    for i, f in enumerate(facts):
        if f.ends and i + isa.THREND_DELAY_SLOTS < n:
            jumps[i + isa.THREND_DELAY_SLOTS] = []
        if f.branch and f.ins is not None:
            last_slot = i + isa.BRANCH_DELAY_SLOTS
            if last_slot >= n:
                continue
            targets = [] if f.ins["cond_br"] == isa.BRANCH_ALWAYS else list(jumps.get(last_slot, [last_slot + 1]))
            if f.ins["rel"] and not f.ins["reg"]:
                dest = i + (isa.BRANCH_LINK_OFFSET + sign_extend32(f.ins["imm"])) // isa.INSTRUCTION_BYTES
                if 0 <= dest < n:
                    targets.append(dest)
            jumps[last_slot] = targets
    return jumps


class _Checker:
    """Rules are functions of the words involved and their distances, so each distinct window of an
    instruction and the three that can follow it is judged once: a program of a million repeated
    words costs what its few distinct windows cost, plus a walk over the addresses."""

    def __init__(self, words: list[int]):
        self.words = words
        known: dict[int, Facts] = {}
        self.facts = [known.get(w) or known.setdefault(w, facts_of(w)) for w in words]
        self.known = known
        self.jumps = _jumps(self.facts)
        self.found: dict[tuple[int, int, str], Diagnostic] = {}
        self.texts: dict[int, str] = {}
        # Instructions that start a straight-line run: branch targets and instructions after a branch's slots.
        self.block_starts = {0} if words else set()
        self.block_starts |= {j for i, s in self.jumps.items() for j in s if j != i + 1}
        self.findings: list[tuple[int, int, str, str]] = []   # (rule, window position, severity, message)
        self.position = 0

    def following(self, start: int, count: int) -> list[tuple[int, int]]:
        """(distance, index) of instructions 1..count steps after `start` on any path."""
        jumps = self.jumps
        frontier = {start}
        out = set()
        for distance in range(1, count + 1):
            frontier = {j for i in frontier for j in jumps.get(i, (i + 1,))}
            out.update((distance, j) for j in frontier)
        return sorted(out)

    def report(self, rule: int, index: int, severity: str, message: str) -> None:
        key = (rule, index, message)
        if key not in self.found:
            word = self.words[index]
            if word not in self.texts:
                from .disasm import disassemble_lines
                self.texts[word] = disassemble_lines([word], labels=False)[0][1]
            self.found[key] = Diagnostic(rule, index * isa.INSTRUCTION_BYTES, severity, message, self.texts[word])

    def note(self, rule: int, severity: str, message: str) -> None:
        """A finding of the window being judged, at the position being judged (0: its first instruction)."""
        self.findings.append((rule, self.position, severity, message))

    def judge(self, f: Facts, window: list[tuple[int, Facts]]) -> list[tuple[int, int, str, str]]:
        """The findings of the one-instruction and pair rules on an instruction and those after it."""
        self.findings, self.position = [], 0
        self.single(f)
        for self.position, (distance, g) in enumerate(window, 1):
            if g.ins is not None:
                self.pair(f, distance, g)
        return self.findings

    def run(self) -> list[Diagnostic]:
        memo: dict[tuple, list] = {}
        words, facts, jumps = self.words, self.facts, self.jumps
        for i, f in enumerate(facts):
            if f.ins is None:
                continue
            if i in jumps or i + 1 in jumps or i + 2 in jumps:
                window = self.following(i, 3)
                key = (words[i], *((d, words[j]) for d, j in window))
            else:                               # the common case: the next three, in order
                window = None
                key = tuple(words[i:i + 4])
            found = memo.get(key)
            if found is None or found:
                if window is None:
                    window = [(d, i + d) for d in (1, 2, 3)]
                if found is None:
                    found = memo[key] = self.judge(f, [(d, facts[j]) for d, j in window])
                for rule, position, severity, message in found:
                    self.report(rule, window[position - 1][1] if position else i, severity, message)
            if f.signal == "sbwait" and i < 2:
                self.report(8, i, "warning", "scoreboard wait in the first two instructions of a fragment shader")
            if f.ends:
                self.thread_end(i, f)
        self.straight_line_rules()
        return sorted(self.found.values(), key=lambda d: (d.address, d.rule))

    def _tmu_writes(self, f: Facts) -> list[tuple[int, int]]:
        """(TMU 0/1, register 0..3 = s/t/r/b) of each TMU write."""
        return [divmod(a - isa.ADDR_TMU_FIRST, 4) for _, a in f.written if isa.ADDR_TMU_FIRST <= a <= isa.ADDR_TMU_LAST]

    def straight_line_rules(self) -> None:
        """Rules that follow state along straight-line runs (a run starts at a branch target):
        16 (a texture lookup's S write reads uniforms) and 23 (TMU requests outstanding).
        Rule 22 (one DMA load and one store in flight) is not a static rule: GPU_FFT starts VDW
        stores back to back and the VPM stalls the second until the first is done."""
        outstanding = [0, 0]
        parameters = [False, False]       # t/r/b written since the last S write: the lookup is not direct
        relevant = {w for w, f in self.known.items() if self._tmu_writes(f) or f.signal in ("ldtmu0", "ldtmu1")}
        visits = sorted(self.block_starts | {i for i, w in enumerate(self.words) if w in relevant})
        for i in visits:
            f = self.facts[i]
            if i in self.block_starts:
                outstanding, parameters = [0, 0], [False, False]
            if f.ins is None:
                continue
            for tmu, register in self._tmu_writes(f):
                if register:
                    parameters[tmu] = True
                    continue
                if parameters[tmu] and f.reads_io(isa.ADDR_UNIFORM):
                    self.report(16, i, "error", "a texture (non-direct) TMU lookup reads uniforms itself; "
                                                "this instruction must not also read unif")
                parameters[tmu] = False
                outstanding[tmu] += 1
                # Only an overflow of the FIFO is reported: GPU_FFT, which works on hardware, keeps up to
                # 8 lookups in flight, so vc4asm's "more than 4 is unreliable" is not a rule here.
                if outstanding[tmu] > isa.TMU_FIFO_SLOTS:
                    self.report(23, i, "error", f"more than {isa.TMU_FIFO_SLOTS} TMU{tmu} requests outstanding "
                                                "(the request FIFO overflows)")
            if f.signal in ("ldtmu0", "ldtmu1"):
                tmu = int(f.signal[-1])
                outstanding[tmu] = max(outstanding[tmu] - 1, 0)

    # Rules about one instruction.
    def single(self, f: Facts) -> None:
        accesses = sum((
            f.writes_addr(isa.ADDR_TMU_FIRST, isa.ADDR_TMU_LAST),
            f.signal in ("ldtmu0", "ldtmu1"),
            f.writes_addr(isa.ADDR_TLB_FIRST, isa.ADDR_TLB_LAST),
            f.signal in ("loadcv", "loadc", "ldcend", "loadam"),
            f.writes_addr(isa.ADDR_SFU_FIRST, isa.ADDR_SFU_LAST),
            f.reads_io(isa.ADDR_MUTEX),
            f.semaphore,
        ))
        tmu_writes = sum(isa.ADDR_TMU_FIRST <= a <= isa.ADDR_TMU_LAST for _, a in f.written)
        if accesses > 1 or tmu_writes > 1:
            self.note(14, "error", "more than one TMU/TLB/SFU/mutex/semaphore access in one instruction")
        if f.semaphore and (f.writes_addr(isa.ADDR_TMU_FIRST, isa.ADDR_TMU_LAST)
                            or f.writes_addr(isa.ADDR_TLB_FIRST, isa.ADDR_TLB_LAST)
                            or f.writes_addr(isa.ADDR_SFU_FIRST, isa.ADDR_SFU_LAST)):
            self.note(25, "error", "a semaphore instruction must not write TLB, TMU or SFU registers")
        if f.branch and f.ins is not None and f.ins["reg"] and f.ins["raddr_a"] & 1:
            self.note(27, "warning", "a branch on an odd regfile-A register also sets flags (bit 45 is sf)")
        if not f.branch and len(f.writes) == 2:
            (fa, a, ca), (fb, b, cb) = f.writes
            same = a == b and (a >= isa.REGFILE_SIZE or fa == fb)
            (flag_a, want_a), (flag_b, want_b) = isa.CONDITION_TESTS[ca], isa.CONDITION_TESTS[cb]
            complementary = flag_a is not None and flag_a == flag_b and want_a != want_b
            if same and (not complementary or a >= isa.ADDR_TMU_NOSWAP):
                self.note(17, "warning", "both ALUs write the same register")
        for _, addr, cond in f.writes:
            if cond not in (isa.COND_ALWAYS, isa.COND_NEVER) and not f.branch and (
                    addr in isa.TMU_S_ADDRS or addr == isa.ADDR_VPM or isa.ADDR_SFU_FIRST <= addr <= isa.ADDR_SFU_LAST):
                self.note(18, "warning", "a conditional write to a FIFO peripheral (TMU, VPM, SFU) pushes in "
                                         "every element")
        if (f.ins is not None and f.ins.format == "ldi" and f.ins["imm"] == 0
                and any(a == isa.ADDR_HOST_INT for _, a in f.written)):
            self.note(28, "warning", "writing 0 to the host interrupt does nothing; write a non-zero value")
        if f.ins is not None and not f.branch and f.ins["pack"]:
            self._pack_target(f)
        setups = {(file, a) for file, a in f.written if a == isa.ADDR_VPM_SETUP}
        if len(setups) == 2 or (setups and (f.reads_io(isa.ADDR_VPM) or f.writes_addr(isa.ADDR_VPM))):
            self.note(20, "warning", "VPM read and write setup, or a setup and a VPM access, in one instruction")
        if f.rotation is not None and any(m >= 4 for m in f.mul_muxes):
            self.note(10, "warning", "full 16-element rotation needs both MUL operands in r0..r3; "
                                     "other sources rotate only within quads")

    def _pack_target(self, f: Facts) -> None:
        ins = f.ins
        assert ins is not None
        if ins["pm"]:
            dst = ins["waddr_mul"]
            io = dst > isa.ACC_WADDR_LAST and dst != isa.NOP_ADDR
            if io and isa.PACK_MUL[ins["pack"]] in PARTIAL_MUL_PACKS:
                self.note(19, "warning", "a partial-byte MUL pack does not work on an I/O destination")
        else:
            unit = "add" if ins["ws"] == 0 else "mul"
            dst = ins["waddr_" + unit]
            if dst >= isa.REGFILE_SIZE and dst != isa.NOP_ADDR:
                self.note(19, "warning", "a regfile-A pack on a destination outside regfile A")

    # Rules about an instruction and one that follows it `distance` steps later.
    def pair(self, f: Facts, distance: int, g: Facts) -> None:
        if distance == 1:
            for file, addr in f.written:
                if addr < isa.REGFILE_SIZE and g.reads(file, addr):
                    self.note(1, "error", f"r{file}{addr} is read right after it was written (no forwarding)")
            if f.written and any(a == isa.ADDR_R5 for _, a in f.written) and g.rotation == isa.SMALL_IMM_ROTATE_BASE:
                self.note(11, "error", "rotation by r5 right after r5 was written")
            if g.rotation is not None and g.rotation != isa.SMALL_IMM_ROTATE_BASE:
                rotated = {m for m in g.mul_muxes if m < 4}
                if any(isa.ACC_WADDR_FIRST + m == a for m in rotated for _, a in f.written):
                    self.note(12, "warning", "rotation of an accumulator written by the previous instruction")
            if f.writes_addr(isa.ADDR_TLB_Z) and g.reads_io(isa.ADDR_MS_FLAGS):
                self.note(13, "warning", "MS_FLAGS read within 2 instructions of a TLB_Z write")
        if distance <= 2:
            if f.writes_addr(isa.ADDR_SFU_FIRST, isa.ADDR_SFU_LAST) and (g.reads_r4 or g.writes_r4):
                self.note(2, "error", "r4 is read or written within 2 instructions of an SFU write")
            if f.writes_addr(isa.ADDR_UNIFORMS_ADDRESS) and g.reads_io(isa.ADDR_UNIFORM):
                self.note(15, "error", "a uniform is read within 2 instructions of a UNIFORMS_ADDRESS write")
            if f.branch and g.branch:
                self.note(3, "error", f"a branch in delay slot {distance} of another branch")
        switches = isa.SIGNALS_THREAD_SWITCH
        if distance <= 2 and f.signal in switches and (g.branch or g.signal in switches):
            self.note(26, "error", "a thread switch or branch within 2 instructions of a thread switch")
        if distance == 3 and f.branch and g.branch:
            self.note(3, "warning", "a branch in the last delay slot of another branch")
        if f.writes_addr(isa.ADDR_TMU_NOSWAP) and g.writes_addr(isa.ADDR_TMU_FIRST, isa.ADDR_TMU_LAST):
            self.note(9, "error", "a TMU write within 3 instructions of a TMU_NOSWAP write")

    def thread_end(self, i: int, f: Facts) -> None:
        if any(a < isa.REGFILE_SIZE for _, a in f.written):
            self.report(4, i, "error", "the program-end instruction writes a regfile register")
        window = [(0, i)] + self.following(i, isa.THREND_DELAY_SLOTS)
        for distance, j in window:
            g = self.facts[j]
            if g.ins is None:
                continue
            if (g.reads_io(isa.ADDR_UNIFORM) or g.reads_io(isa.ADDR_VARYING) or g.reads_io(isa.ADDR_VPM)
                    or g.writes_addr(isa.ADDR_VPM, isa.ADDR_VPM_DMA)):
                self.report(5, j, "error", "uniform, varying, VPM or DMA access in or after the program end")
            thread_reg = isa.ADDR_REGFILE_THREAD_RESERVED
            if g.reads_a == thread_reg or g.reads_b == thread_reg or any(a == thread_reg for _, a in g.written):
                self.report(6, j, "error", "ra14/rb14 is accessed in or after the program end")
            if distance == isa.THREND_DELAY_SLOTS and g.writes_addr(isa.ADDR_TLB_Z):
                self.report(7, j, "error", "the last instruction writes TLB_Z")
            if distance > 0 and g.branch:
                self.report(3, j, "error", "a branch in the delay slots of the program end")


def check(words) -> list[Diagnostic]:
    """Hazards and restrictions of qpu-isa.md §16 found in encoded code, by address."""
    from .disasm import to_words
    return _Checker(to_words(words)).run()
