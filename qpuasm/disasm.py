"""Words -> vc4asm-style text that `assemble` turns back into the identical words.

Each word is decoded into the least explicit `line.Line` that re-encodes to it (see
`decode.decode_line`); a word without such a form (reserved opcode, condition or mode, or a
combination of "don't care" bits the syntax cannot state) prints as `.long low, high`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import isa
from .decode import decode_line
from .instr import DisassembleError, decode, sign_extend32
from .line import AluOp, Branch, Line
from .operands import Label, PerElement, Reg


def _number(value: int | float) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _reg(reg: Reg) -> str:
    text = reg.name
    suffix = reg.pack or reg.unpack
    if suffix:
        text += "." + suffix
    if reg.rotate == "r5":
        text += " >> r5"
    elif reg.rotate:
        # GPU_FFT writes `r0 << 1` for a rotation by 15: use << for the upper half.
        text += f" << {16 - reg.rotate}" if reg.rotate > 8 else f" >> {reg.rotate}"
    return text


def _value(value: object) -> str:
    if isinstance(value, Reg):
        return _reg(value)
    if isinstance(value, PerElement):
        return "[" + ", ".join(str(v) for v in value.values) + "]"
    if isinstance(value, Label):
        return ":" + value.name
    if isinstance(value, int) and not -16 <= value < 16:
        return f"0x{value & 0xFFFFFFFF:08x}"
    assert isinstance(value, (int, float))
    return _number(value)


def _alu_op(op: AluOp) -> str:
    text = op.op
    if op.cond is not None:
        text += "." + op.cond
    if op.setf:
        text += ".setf"
    operands = ([op.dst] if op.dst is not None else []) + list(op.srcs)
    if operands:
        text += " " + ", ".join(_value(v) for v in operands)
    return text


def _branch(br: Branch) -> str:
    text = ("brr" if br.relative else "bra") + ("." + br.cond if br.cond else "")
    parts = [_reg(link) for link in br.links]
    if br.reg is not None:
        parts.append(br.reg.name)
    if isinstance(br.target, Label):
        parts.append("r:" + br.target.name if br.relative else ":" + br.target.name)
    elif br.reg is None or br.target:
        parts.append(str(br.target))
    return text + " " + ", ".join(parts)


def format_line(line: Line) -> str:
    """The text of one decoded instruction."""
    if line.raw is not None:
        return f".long 0x{line.raw & 0xFFFFFFFF:08x}, 0x{line.raw >> 32:08x}"
    if line.branch is not None:
        return _branch(line.branch)
    parts = [_alu_op(op) for op in line.ops]
    parts += ["read " + _value(v) for v in line.reads]
    if line.signal:
        parts.append(line.signal)
    return "; ".join(parts)


def _branch_targets(words: list[int]) -> dict[int, str]:
    """Labels for the relative branch targets that fall on instructions of this program."""
    targets = set()
    for index, word in enumerate(words):
        if isa.SIG.get(word) != isa.SIG_BRANCH:
            continue
        ins = decode(word)
        if ins["rel"] and not ins["reg"]:
            target = index * isa.INSTRUCTION_BYTES + isa.BRANCH_LINK_OFFSET + sign_extend32(ins["imm"])
            if 0 <= target < len(words) * isa.INSTRUCTION_BYTES and target % isa.INSTRUCTION_BYTES == 0:
                targets.add(target)
    return {address: f"L{address // isa.INSTRUCTION_BYTES}" for address in sorted(targets)}


def to_words(words: Iterable[int] | np.ndarray) -> list[int]:
    """The words as Python ints, each checked to be a 64-bit value."""
    if isinstance(words, np.ndarray):
        if words.size and words.dtype.kind not in "ui":
            raise DisassembleError("instruction words must be integers")
        if words.dtype.kind == "u" or not words.size or words.min() >= 0:
            return words.ravel().tolist()     # every value of an unsigned (or non-negative) array fits
        words = words.ravel().tolist()
    result = []
    for index, word in enumerate(words):
        if isinstance(word, (bool, float)) or not isinstance(word, (int, np.integer)) or not 0 <= word < 1 << 64:
            raise DisassembleError(f"{word!r} is not a 64-bit word", index)
        result.append(int(word))
    return result


def disassemble_lines(words: Iterable[int] | np.ndarray, labels: bool = True) -> list[tuple[str | None, str]]:
    """(label or None, instruction text) for each word."""
    values = to_words(words)
    names = _branch_targets(values) if labels else {}
    lines = []
    for index, word in enumerate(values):
        address = index * isa.INSTRUCTION_BYTES
        line = decode_line(word, names, address) or Line(raw=word)
        lines.append((names.get(address), format_line(line)))
    return lines


def disassemble(words: Iterable[int] | np.ndarray, labels: bool = True) -> str:
    """Text that `qpuasm.assemble` turns back into exactly `words` (one instruction per line)."""
    out = []
    for label, text in disassemble_lines(words, labels):
        if label is not None:
            out.append(f":{label}")
        out.append(text)
    return "\n".join(out) + ("\n" if out else "")
