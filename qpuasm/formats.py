"""Output and input formats for QPU code: raw binary, GPU_FFT-style hex, a C array and an ARM ELF
relocatable object."""

from __future__ import annotations

import re
import struct

import numpy as np

from .instr import DisassembleError
from .program import Program

FORMATS = ("bin", "hex", "c", "elf")


def to_bin(program: Program) -> bytes:
    """Little-endian machine code: low 32-bit word of each instruction first (qpu-isa.md §1)."""
    return program.to_bytes()


def to_hex(program: Program) -> str:
    """GPU_FFT's .hex layout: `0xLOW, 0xHIGH, // source` per instruction."""
    lines = []
    for index, word in enumerate(program.words.tolist()):
        source = program.sources[index] if index < len(program.sources) else ""
        comment = f" // {source}" if source else ""
        lines.append(f"0x{word & 0xFFFFFFFF:08x}, 0x{word >> 32:08x},{comment}")
    return "\n".join(lines) + "\n"


def to_c(program: Program, name: str = "qpu_code") -> str:
    """A C array of 32-bit words (low word first) with the source as comments, and label offsets."""
    symbol = re.sub(r"\W", "_", name)
    out = ["#include <stdint.h>", ""]
    for label, offset in sorted(program.globals.items(), key=lambda kv: kv[1]):
        macro = re.sub(r"\W", "_", label)
        out.append(f"#define {symbol}_{macro} {offset}u")
    out.append(f"const uint32_t {symbol}[{2 * len(program.words)}] = {{")
    out += ["    " + line for line in to_hex(program).splitlines()]
    out += ["};", f"const unsigned {symbol}_size = sizeof {symbol};", ""]
    return "\n".join(out)


# ---- ELF ---------------------------------------------------------------------------------------
# An ELF32 little-endian relocatable object for ARM (EM_ARM = 40), as vc4asm writes: the code in a
# read-only data section so an ARM program links it in and hands its address to the driver.

_EM_ARM = 40
_ET_REL = 1
_SHT_PROGBITS, _SHT_SYMTAB, _SHT_STRTAB = 1, 2, 3
_SHF_ALLOC = 2
_STB_LOCAL, _STB_GLOBAL = 0, 1
_STT_OBJECT, _STT_SECTION = 1, 3


def _strtab(names: list[str]) -> tuple[bytes, dict[str, int]]:
    data = b"\0"
    offsets = {}
    for name in names:
        offsets[name] = len(data)
        data += name.encode() + b"\0"
    return data, offsets


def to_elf(program: Program, name: str = "qpu_code", section: str = ".rodata.qpu") -> bytes:
    """ELF relocatable object: one section holding the code, a symbol `name` for the whole program
    (with its size) and one global symbol `name_LABEL` for every exported label."""
    code = program.to_bytes()
    symbols = [(name, 0, len(code))] + [(f"{name}_{label}", offset, 0)
                                         for label, offset in sorted(program.globals.items(), key=lambda kv: kv[1])]
    shstr, shoff_names = _strtab(["", section, ".symtab", ".strtab", ".shstrtab"][1:])
    strtab, str_offsets = _strtab([s[0] for s in symbols])
    # Symbol 0 is null, symbol 1 the section (local), then the globals.
    symtab = struct.pack("<IIIBBH", 0, 0, 0, 0, 0, 0)
    symtab += struct.pack("<IIIBBH", 0, 0, 0, _STB_LOCAL << 4 | _STT_SECTION, 0, 1)
    for sym_name, value, size in symbols:
        symtab += struct.pack("<IIIBBH", str_offsets[sym_name], value, size, _STB_GLOBAL << 4 | _STT_OBJECT, 0, 1)
    header_size = 52
    body = b""
    offsets = []
    for blob, align in ((code, 8), (symtab, 4), (strtab, 1), (shstr, 1)):
        pad = (-(header_size + len(body))) % align
        body += b"\0" * pad
        offsets.append(header_size + len(body))
        body += blob
    pad = (-(header_size + len(body))) % 4
    body += b"\0" * pad
    shoff = header_size + len(body)
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + b"\0" * 8
    header = ident + struct.pack("<HHIIIIIHHHHHH", _ET_REL, _EM_ARM, 1, 0, 0, shoff, 0x05000000,
                                 header_size, 0, 0, 40, 5, 4)

    def shdr(name_off, kind, flags, offset, size, link=0, info=0, align=1, entsize=0):
        return struct.pack("<IIIIIIIIII", name_off, kind, flags, 0, offset, size, link, info, align, entsize)

    sections = shdr(0, 0, 0, 0, 0)
    sections += shdr(shoff_names[section], _SHT_PROGBITS, _SHF_ALLOC, offsets[0], len(code), align=8)
    sections += shdr(shoff_names[".symtab"], _SHT_SYMTAB, 0, offsets[1], len(symtab), link=3, info=2,
                     align=4, entsize=16)
    sections += shdr(shoff_names[".strtab"], _SHT_STRTAB, 0, offsets[2], len(strtab))
    sections += shdr(shoff_names[".shstrtab"], _SHT_STRTAB, 0, offsets[3], len(shstr))
    return header + body + sections


def write(program: Program, fmt: str, name: str = "qpu_code") -> bytes:
    if fmt == "bin":
        return to_bin(program)
    if fmt == "hex":
        return to_hex(program).encode()
    if fmt == "c":
        return to_c(program, name).encode()
    if fmt == "elf":
        return to_elf(program, name)
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


# ---- input -------------------------------------------------------------------------------------

def read_bin(data: bytes) -> np.ndarray:
    if len(data) % 8:
        raise DisassembleError(f"binary code is {len(data)} bytes, not a multiple of 8 (64-bit instructions)")
    return np.frombuffer(data, dtype="<u8").astype(np.uint64)


_HEX_NUMBER = re.compile(r"0[xX]([0-9a-fA-F]+)")
_COMMENT = re.compile(r"(//|#)[^\n]*")             # how GPU_FFT's hex and the C array annotate words


def read_hex(text: str) -> np.ndarray:
    """Words from GPU_FFT-style hex (`0xLOW, 0xHIGH,` pairs; // and # comments ignored)."""
    text = _COMMENT.sub("", text)
    values = []
    for number in _HEX_NUMBER.finditer(text):
        value = int(number.group(1), 16)
        if value >= 1 << 32:
            line = text.count("\n", 0, number.start()) + 1
            raise DisassembleError(f"line {line}: {number.group(0)} is not a 32-bit word")
        values.append(value)
    leftover = _HEX_NUMBER.sub("", text)
    stray = re.search(r"[^\s,{};]", leftover)
    if stray:
        line = leftover.count("\n", 0, stray.start()) + 1
        raise DisassembleError(f"line {line}: unexpected {stray.group(0)!r} in hex input")
    if len(values) % 2:
        raise DisassembleError(f"{len(values)} 32-bit words: instructions need (low, high) pairs")
    pairs = np.array(values, dtype=np.uint64).reshape(-1, 2)
    return pairs[:, 0] | (pairs[:, 1] << np.uint64(32))


def read_c(text: str) -> np.ndarray:
    """Words from the C array `to_c` writes (or any C initialiser of 0xLOW, 0xHIGH pairs)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise DisassembleError("no C array initialiser { ... } in the text")
    return read_hex(text[start + 1:end])


def read_elf(data: bytes) -> np.ndarray:
    """The code of an ELF object `to_elf` (or vc4asm) writes: its allocated PROGBITS section."""
    import io

    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        sections = [s for s in elf.iter_sections() if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & _SHF_ALLOC]
    except (ELFError, ValueError, struct.error) as error:
        raise DisassembleError(f"not a readable ELF object ({error})") from None
    if not sections:
        raise DisassembleError("the ELF object has no allocated code section")
    return read_bin(sections[0].data())


def detect(data: bytes) -> str:
    """Which of the formats `write` produces the bytes are ("bin", "hex", "c", "elf"), or "asm" for
    assembly source, judged by content."""
    if data.startswith(b"\x7fELF"):
        return "elf"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "bin"
    if re.search(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", text):       # control characters: not text
        return "bin"
    code = re.sub(r"/\*.*?\*/", "", _COMMENT.sub("", text), flags=re.S)
    if re.search(r"\{[\s,0-9a-fA-Fx]*\}", code) and _HEX_NUMBER.search(code):
        return "c"
    if code.strip() and not re.sub(r"[\s,]", "", _HEX_NUMBER.sub("", code)):
        return "hex"
    return "asm"


def read_words(data: bytes, fmt: str | None = None) -> np.ndarray:
    """Instruction words from bytes in a format `write` produces, detected by content unless given."""
    fmt = fmt or detect(data)
    if fmt == "asm":
        raise DisassembleError("this is assembly source, not code: assemble it first")
    if fmt == "bin":
        return read_bin(data)
    if fmt == "elf":
        return read_elf(data)
    text = data.decode("utf-8", errors="replace")
    return read_c(text) if fmt == "c" else read_hex(text)
