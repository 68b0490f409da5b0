"""Operand values of the assembly language: registers, labels, semaphore tokens and per-element
vectors. Plain integers and floats are Python numbers. Register names come from `isa.py`."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from . import isa


@dataclass(frozen=True)
class Reg:
    """A register as an operand.

    `reads` maps "a"/"b" to the address read through raddr_a/raddr_b; `writes` maps "a"/"b" to
    the address written in regfile-A/B space; `mux` is the accumulator mux (0..5) for r0..r5.
    The modifiers are the suffixes written after the name: `unpack` on a source, `pack` on a
    destination, `rotate` (1..15, or "r5") from `reg >> n` / `reg << n` on a MUL source.
    """

    name: str
    reads: tuple[tuple[str, int], ...] = ()
    writes: tuple[tuple[str, int], ...] = ()
    mux: int | None = None
    unpack: str = ""
    pack: str = ""
    rotate: int | str | None = None

    @property
    def read_map(self) -> dict[str, int]:
        return dict(self.reads)

    @property
    def write_map(self) -> dict[str, int]:
        return dict(self.writes)

    @property
    def is_nop_write(self) -> bool:
        return self.writes == (("a", isa.NOP_ADDR), ("b", isa.NOP_ADDR))

    def plain(self) -> Reg:
        return replace(self, unpack="", pack="", rotate=None)

    def offset(self, n: int) -> Reg:
        """Register arithmetic (`ra_base+3`): only for physical regfile registers."""
        file = self.physical_file()
        if file is None:
            raise ValueError(f"register arithmetic needs a regfile register (ra0..ra31, rb0..rb31), not {self.name}")
        addr = dict(self.reads)[file] + n
        if not 0 <= addr < isa.REGFILE_SIZE:
            raise ValueError(f"{self.name}{n:+d} is outside the register file (0..31)")
        return replace(REGISTERS[f"{isa.RAW_REGISTER_PREFIX[file]}{addr}"], unpack=self.unpack, pack=self.pack)

    def rotated(self, direction: str, amount: int | Reg) -> Reg:
        """`reg >> n` takes each element from n below (code 48 + n), `reg << n` from n above, and
        `reg >> r5` rotates by r5 (code 48) (qpu-isa.md §9). A rotation by 0 (mod 16) is none."""
        if isinstance(amount, Reg):
            if amount.mux == isa.MUX_R5 and direction == ">>":
                return replace(self, rotate="r5")
            raise ValueError("a rotation is by a constant or `>> r5`")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError("a rotation is by a constant or `>> r5`")
        n = (amount if direction == ">>" else -amount) % 16
        return replace(self, rotate=n or None)

    def __rshift__(self, amount: int | Reg) -> Reg:
        return self.rotated(">>", amount)

    def __lshift__(self, amount: int) -> Reg:
        return self.rotated("<<", amount)

    def physical_file(self) -> str | None:
        """"a" or "b" if this is one of the 32 physical registers of a file, else None."""
        if len(self.reads) == 1 and self.reads == self.writes and self.reads[0][1] < isa.REGFILE_SIZE:
            return self.reads[0][0]
        return None

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Label:
    """A code address (byte offset from the start of the program)."""

    name: str
    address: int


@dataclass(frozen=True)
class Semaphore:
    """The value of `sacq(n)` / `srel(n)`: moving it to a register is a semaphore instruction."""

    acquire: bool
    number: int


@dataclass(frozen=True)
class PerElement:
    """A per-element 2-bit vector `[v0, ..., v15]` for `ldi` (§12)."""

    values: tuple[int, ...]


def _build_registers() -> dict[str, Reg]:
    regs: dict[str, Reg] = {}
    for file, prefix in isa.RAW_REGISTER_PREFIX.items():
        for addr in range(64):
            regs[f"{prefix}{addr}"] = Reg(f"{prefix}{addr}", reads=((file, addr),), writes=((file, addr),))
    for mux, name in enumerate(isa.MUX_NAMES):
        regs[name] = Reg(name, mux=mux)
    rows: dict[str, dict[str, int]] = {}
    for row in isa.IO_REGISTERS:
        rows.setdefault(row.name, {}).update({space: row.addr for space in row.spaces})
    for name, spaces in rows.items():
        reads = tuple((s[1], a) for s, a in sorted(spaces.items()) if s in (isa.RA, isa.RB))
        writes = tuple((s[1], a) for s, a in sorted(spaces.items()) if s in (isa.WA, isa.WB))
        base = regs.get(name)
        regs[name] = Reg(name, reads=reads, writes=writes, mux=base.mux if base else None)
    return regs


REGISTERS: dict[str, Reg] = _build_registers()
NO_WRITE = REGISTERS["-"]


def _printed_names() -> dict[tuple[str, int], str]:
    names: dict[tuple[str, int], str] = {}
    for row in isa.IO_REGISTERS:
        for space in sorted(row.spaces):
            names.setdefault((space, row.addr), row.name)
    return names


_PRINTED = _printed_names()


def read_name(file: str, addr: int) -> str:
    """The name the disassembler prints for a read of `addr` through raddr_a/raddr_b."""
    return _PRINTED.get(("r" + file, addr)) or f"{isa.RAW_REGISTER_PREFIX[file]}{addr}"


def write_name(file: str, addr: int) -> str:
    """The name the disassembler prints for a write of `addr` in regfile-A/B space."""
    return _PRINTED.get(("w" + file, addr)) or f"{isa.RAW_REGISTER_PREFIX[file]}{addr}"


def float_bits(value: float) -> int:
    """The IEEE single-precision bit pattern of a float constant."""
    return struct.unpack("<I", struct.pack("<f", value))[0]


def bits_float(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]
