"""Decoded instructions: a format name plus the value of every field, encoded and decoded through
the field tables of `isa.py` (no bit position is written here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import isa


class DisassembleError(ValueError):
    """A word or byte stream that cannot be read as QPU code (wrong length, bad number, ...)."""

    def __init__(self, message: str, position: int | None = None):
        self.position = position
        where = f"at word {position}: " if position is not None else ""
        super().__init__(f"{where}{message}")


@dataclass(slots=True)
class Instruction:
    """One 64-bit QPU instruction as its fields. `format` is a key of `isa.FORMATS`."""

    format: str
    fields: dict[str, int] = field(default_factory=dict)

    def encode(self) -> int:
        word = 0
        for f in isa.FORMATS[self.format]:
            word |= f.put(self.fields.get(f.name, 0))
        return word

    def __getitem__(self, name: str) -> int:
        return self.fields[name]


def format_of(word: int) -> str | None:
    """The instruction class of a word (§1), or None for an undefined load-immediate mode."""
    sig = isa.SIG.get(word)
    if sig == isa.SIG_BRANCH:
        return "branch"
    if sig == isa.SIG_LOAD_IMM:
        mode = isa.LDI_MODE.get(word)
        if mode == isa.LDI_MODE_SEMAPHORE:
            return "semaphore"
        return "ldi" if mode in isa.LDI_MODES else None
    return "alu"


def decode(word: int) -> Instruction:
    """Split a 64-bit word into the fields of its class; `encode()` gives the word back.

    Words of an undefined class (load-immediate modes 2, 5, 6, 7) raise DisassembleError.
    """
    if not 0 <= word < 1 << 64:
        raise DisassembleError(f"{word:#x} is not a 64-bit word")
    fmt = format_of(word)
    if fmt is None:
        raise DisassembleError(f"undefined load-immediate mode {isa.LDI_MODE.get(word)} in {word:#018x}")
    return Instruction(fmt, {f.name: f.get(word) for f in isa.FORMATS[fmt]})


def sign_extend32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value
