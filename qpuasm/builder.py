"""Build QPU programs from Python, for kernel generators.

The builder makes the same slot objects as the text assembler (`line.AluOp`, `line.Branch`),
so it gets the same encoding defaults, ALU placement, and hazard checks::

    from qpuasm.builder import Builder, reg

    k = Builder()
    k.mov(reg.ra1, reg.unif)
    k.label("loop")
    k.sub(reg.ra1, reg.ra1, 1, setf=True).fmul(reg.r1, reg.r0, reg.r2)   # ADD and MUL in one word
    k.mov(reg.r3, reg.r2 >> 1)                                          # rotation on the MUL ALU
    k.brr(reg.nop, "loop", cond="anynz")
    k.nop(); k.nop(); k.nop()
    k.thrend()
    k.nop(); k.nop()
    program = k.build()                      # qpuasm.Program, hazards checked

Every emitting call starts a new instruction and returns a handle: call a second operation or a
signal on the handle to put it in the same instruction.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace

import numpy as np

from . import isa
from .checks import check, diagnostic_message
from .encode import encode_line
from .line import IMMEDIATE_OPS, AluOp, Branch, EncodeError, Line
from .operands import REGISTERS, Label, PerElement, Reg, Semaphore
from .program import AssembleError, Place, Program

OPERATIONS = sorted(set(isa.ADD_OP_CODES) | set(isa.MUL_OP_CODES) | {"mov"} | IMMEDIATE_OPS)


class _Registers:
    """Every register name of `isa.py` as an attribute (`reg.r0`, `reg.vpm`, `reg.ra[5]`). `reg.nop`
    is the write-nothing destination `-` when written and the nop read when read."""

    def __init__(self) -> None:
        for name, value in REGISTERS.items():
            if name.isidentifier():
                setattr(self, name, value)
        self.nop = replace(REGISTERS["-"], reads=REGISTERS["nop"].reads)
        self.ra = [REGISTERS[f"ra{i}"] for i in range(isa.REGFILE_SIZE)]
        self.rb = [REGISTERS[f"rb{i}"] for i in range(isa.REGFILE_SIZE)]


reg = _Registers()


def packed(register: Reg, mode: str) -> Reg:
    """A destination with a pack mode (`.16a`, `.8888sf`, ... of qpu-isa.md §7)."""
    return replace(register, pack=mode)


def unpacked(register: Reg, mode: str) -> Reg:
    """A regfile-A or r4 source with an unpack mode (§7)."""
    return replace(register, unpack=mode)


def sacq(number: int) -> Semaphore:
    return Semaphore(True, number)


def srel(number: int) -> Semaphore:
    return Semaphore(False, number)


@dataclass
class _Entry:
    line: Line
    labels: dict = field(default_factory=dict)   # branch target name -> resolved later
    target: str | None = None
    where: tuple[str, int] = ("<builder>", 0)


class Instruction:
    """Handle on the instruction just emitted: add the other ALU operation or a signal to it."""

    def __init__(self, builder: Builder, entry: _Entry):
        self._builder = builder
        self._entry = entry

    def __getattr__(self, name: str):
        if name in isa.SIGNAL_CODES:
            def signal() -> Instruction:
                if self._entry.line.signal is not None:
                    raise ValueError("one signal per instruction")
                self._entry.line.signal = name
                return self
            return signal
        if name in OPERATIONS or name in ("nop", "read"):
            def operation(*operands, cond: str | None = None, setf: bool = False) -> Instruction:
                if name == "read":
                    self._entry.line.reads.extend(operands)
                else:
                    self._entry.line.ops.append(_op(name, operands, cond, setf))
                return self
            return operation
        raise AttributeError(name)


def _op(name: str, operands: tuple, cond: str | None, setf: bool) -> AluOp:
    dst = operands[0] if operands else None
    if dst is not None and not isinstance(dst, Reg):
        raise TypeError(f"the destination of {name} must be a register, not {dst!r}")
    srcs = tuple(PerElement(tuple(s)) if isinstance(s, (list, tuple)) else s for s in operands[1:])
    return AluOp(name, dst=dst, srcs=srcs, cond=cond, setf=setf)


class Builder:
    """Collects instructions and labels; `build()` encodes them into a Program."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._labels: dict[str, int] = {}
        self._globals: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def address(self) -> int:
        """Byte address of the next instruction."""
        return len(self._entries) * isa.INSTRUCTION_BYTES

    def label(self, name: str, export: bool = False) -> None:
        if name in self._labels:
            raise ValueError(f"label {name} is already defined")
        self._labels[name] = self.address
        if export:
            self._globals.add(name)

    def _emit(self, line: Line, target: str | None = None) -> Instruction:
        frame = sys._getframe(2)
        entry = _Entry(line, target=target, where=(frame.f_code.co_filename, frame.f_lineno))
        self._entries.append(entry)
        return Instruction(self, entry)

    def __getattr__(self, name: str):
        if name in OPERATIONS or name == "nop":
            def operation(*operands, cond: str | None = None, setf: bool = False) -> Instruction:
                return self._emit(Line(ops=[_op(name, operands, cond, setf)]))
            return operation
        if name in isa.SIGNAL_CODES:
            def signal() -> Instruction:
                return self._emit(Line(ops=[AluOp("nop")], signal=name))
            return signal
        raise AttributeError(name)

    def read(self, *operands) -> Instruction:
        return self._emit(Line(ops=[AluOp("nop")], reads=list(operands)))

    def word(self, value: int) -> Instruction:
        """A literal 64-bit instruction word."""
        return self._emit(Line(raw=value))

    def _branch(self, relative: bool, links, target, reg_: Reg | None, cond: str) -> Instruction:
        links = (links,) if isinstance(links, Reg) else tuple(links)
        name = target if isinstance(target, str) else None
        branch = Branch(relative=relative, target=0 if name else target, reg=reg_, links=links, cond=cond)
        return self._emit(Line(branch=branch), target=name)

    def brr(self, link: Reg | tuple = reg.nop, target: str | int = 0, cond: str = "",
            reg: Reg | None = None) -> Instruction:
        """Relative branch to a label name or byte offset (from the branch + 32), optionally + ra[reg]."""
        return self._branch(True, link, target, reg, cond)

    def bra(self, link: Reg | tuple = reg.nop, target: str | int = 0, cond: str = "",
            reg: Reg | None = None) -> Instruction:
        """Absolute branch to a byte address (or a label, as an offset from the program start)."""
        return self._branch(False, link, target, reg, cond)

    def build(self, check_hazards: bool = True, werror: bool = False) -> Program:
        words = []
        for index, entry in enumerate(self._entries):
            line = entry.line
            if entry.target is not None:
                if entry.target not in self._labels:
                    raise self._error(entry, f"undefined label {entry.target}")
                line = replace(line, branch=replace(line.branch, target=Label(entry.target,
                                                                               self._labels[entry.target])))
            try:
                words.append(encode_line(line, index * isa.INSTRUCTION_BYTES))
            except (EncodeError, ValueError) as exc:
                raise self._error(entry, str(exc)) from None
        program = Program(np.array(words, dtype=np.uint64), dict(self._labels),
                          {name: self._labels[name] for name in sorted(self._globals)},
                          [f"{e.where[0]}:{e.where[1]}" for e in self._entries])
        if check_hazards:
            diagnostics = check(program.words)
            for diag in diagnostics:
                if diag.severity == "error" or werror:
                    raise self._error(self._entries[diag.address // isa.INSTRUCTION_BYTES],
                                      diagnostic_message(diag))
            program.diagnostics = [(Place(*self._entries[d.address // isa.INSTRUCTION_BYTES].where, 0), d)
                                   for d in diagnostics]
        return program

    @staticmethod
    def _error(entry: _Entry, message: str) -> AssembleError:
        return AssembleError(message, entry.where[0], entry.where[1], 1)
