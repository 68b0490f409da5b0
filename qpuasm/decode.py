"""64-bit word -> the least explicit Line that encode.py turns back into it, or None when no text
form exists: the disassembler's view of a word.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from . import isa
from .encode import default_cond, encode_line
from .instr import Instruction, decode, sign_extend32
from .line import AluOp, Branch, EncodeError, Line, Value, mul_first
from .operands import (
    NO_WRITE,
    REGISTERS,
    Label,
    PerElement,
    Reg,
    bits_float,
    read_name,
    write_name,
)


def decode_line(word: int, labels: dict[int, str] | None = None, address: int = 0) -> Line | None:
    """The least explicit Line that `encode_line` turns back into `word`, or None if the word has
    no text form (reserved opcode, condition or mode; bits that the syntax cannot express).

    `labels` maps byte addresses to label names for branch targets; `address` is this word's.
    The result is shared between calls for the same non-branch word: do not modify it."""
    if isa.SIG.get(word) != isa.SIG_BRANCH:
        return _decode_position_free(word)
    return _decode(word, labels or {}, address)


@lru_cache(maxsize=1 << 16)
def _decode_position_free(word: int) -> Line | None:
    """Words other than branches decode the same wherever they are: real code repeats them a lot."""
    return _decode(word, {}, 0)


def _decode(word: int, labels: dict[int, str], address: int) -> Line | None:
    try:
        ins = decode(word)
    except ValueError:
        return None
    for explicit in (False, True):
        line = _describe(ins, explicit, labels, address)
        if line is None:
            return None
        try:
            if encode_line(line, address) == word:
                return line
        except EncodeError:
            pass
    return None


def _describe(ins: Instruction, explicit: bool, labels: dict[int, str], address: int) -> Line | None:
    if ins.format == "branch":
        return _describe_branch(ins, labels, address, explicit)
    if ins.format in ("ldi", "semaphore"):
        return _describe_immediate(ins, explicit)
    return _describe_alu(ins, explicit)


def _dst(ins: Instruction, unit: str, raw: bool = False) -> Reg:
    """The destination of `unit`; `raw` names it raN/rbN, which also pins the ws bit."""
    file = "ab"[ins["ws"] ^ (unit == "mul")]
    addr = ins["waddr_" + unit]
    return REGISTERS[f"{isa.RAW_REGISTER_PREFIX[file]}{addr}" if raw else write_name(file, addr)]


def _with_pack(ins: Instruction, unit: str, dst: Reg) -> Reg | None:
    """The destination with its pack suffix; None when the pack field has no name here."""
    pack = ins["pack"]
    if ins["pm"]:
        if unit != "mul" or not pack:
            return dst
        name = isa.PACK_MUL[pack]
        return None if name is None else replace(dst, pack=name)
    a_unit = "add" if ins["ws"] == 0 else "mul"
    return replace(dst, pack=isa.PACK_A[pack]) if unit == a_unit and pack else dst


def _cond_name(code: int, op: AluOp) -> str | None:
    """The condition suffix to print; None when it is the default."""
    dst = op.dst if op.dst is not None else NO_WRITE
    if default_cond(replace(op, cond=None), dst) == code:
        return None
    return "always" if code == isa.COND_ALWAYS else isa.CONDITIONS[code]


def _describe_immediate(ins: Instruction, explicit: bool) -> Line | None:
    if ins.format == "semaphore":
        if ins["sem_unused"]:
            return None
        name = "sacq" if ins["sa"] == isa.SEMAPHORE_ACQUIRE else "srel"
        value: Value = ins["semaphore"]
    else:
        name = isa.LDI_MODES[ins["ldi_mode"]]
        imm = ins["imm"]
        if name == "ldi":
            name = "mov"        # Broadcom's spelling: a line of constant movs is a load immediate
            value = imm
        else:
            signed = name == "ldipes"
            value = PerElement(tuple(isa.per_element_value(imm, i, signed) for i in range(isa.LANES)))
    ops = []
    for unit in ("add", "mul"):
        # The first slot always lands on ADD, so ADD is printed even when idle (as `op -, value`).
        if unit == "mul" and not explicit and not _unit_active(ins, "mul"):
            continue
        dst = _with_pack(ins, unit, _dst(ins, unit, explicit))
        if dst is None:
            return None
        op = AluOp(name, dst=dst, srcs=(value,), setf=bool(ins["sf"]) and unit == "add")
        op.cond = _cond_name(ins["cond_" + unit], op)
        ops.append(op)
    return Line(ops=ops)


def _unit_active(ins: Instruction, unit: str) -> bool:
    return not (ins["cond_" + unit] == isa.COND_NEVER and ins["waddr_" + unit] == isa.NOP_ADDR)


def _source(ins: Instruction, mux: int, raw: bool = False) -> Value:
    if mux < isa.MUX_ACCUMULATORS:
        reg = REGISTERS[isa.MUX_NAMES[mux]]
        if mux == isa.MUX_R4 and ins["pm"] and ins["unpack"]:
            reg = replace(reg, unpack=isa.UNPACK[ins["unpack"]])
        return reg
    if mux == isa.MUX_A:
        reg = REGISTERS[f"ra{ins['raddr_a']}" if raw else read_name("a", ins["raddr_a"])]
        if not ins["pm"] and ins["unpack"]:
            reg = replace(reg, unpack=isa.UNPACK[ins["unpack"]])
        return reg
    if ins["sig"] == isa.SIG_SMALL_IMM:
        return _small_imm_value(ins["raddr_b"])
    return REGISTERS[f"rb{ins['raddr_b']}" if raw else read_name("b", ins["raddr_b"])]


def _small_imm_value(code: int) -> int | float:
    bits = isa.SMALL_IMM_BITS[code]
    if isa.SMALL_IMM_FLOAT_FIRST <= code <= isa.SMALL_IMM_FLOAT_LAST:
        return bits_float(bits)
    return sign_extend32(bits)


def _describe_alu(ins: Instruction, explicit: bool) -> Line | None:
    op_names = {"add": isa.ADD_OPS[ins["op_add"]], "mul": isa.MUL_OPS[ins["op_mul"]]}
    if op_names["add"] is None:
        return None
    if ins["pm"] and ins["pack"] and isa.PACK_MUL[ins["pack"]] is None:
        return None
    sig = ins["sig"]
    rotation: int | str | None = None
    if sig == isa.SIG_SMALL_IMM and ins["raddr_b"] >= isa.SMALL_IMM_ROTATE_BASE:
        n = ins["raddr_b"] - isa.SMALL_IMM_ROTATE_BASE
        rotation = n if n else "r5"
    # Flags come from the ADD ALU unless its op is nop (§6.2): print .setf on that operation.
    setf_unit = "add" if op_names["add"] != "nop" or _unit_active(ins, "add") else "mul"
    described: dict[str, AluOp | None] = {}
    used_muxes: set[int] = set()
    for unit in ("add", "mul"):
        name = op_names[unit]
        muxes = (ins[unit + "_a"], ins[unit + "_b"])
        bare = name == "nop" and not _unit_active(ins, unit) and muxes == (0, 0)
        if bare and not explicit and not (rotation is not None and unit == "mul"):
            described[unit] = None
            continue
        dst = _with_pack(ins, unit, _dst(ins, unit, explicit))
        if dst is None:
            return None
        srcs = [_source(ins, m, explicit) for m in muxes]
        used_muxes.update(muxes)
        if unit == "mul" and rotation is not None:
            at = 0 if isinstance(srcs[0], Reg) else 1
            if not isinstance(srcs[at], Reg):
                return None
            srcs[at] = replace(srcs[at], rotate=rotation)
        op = AluOp(name, dst=dst, srcs=tuple(srcs))
        mov_op = isa.MOV_ADD_OP if unit == "add" else isa.MOV_MUL_OP
        if not explicit and muxes[0] == muxes[1]:
            if name == mov_op:
                op = AluOp("mov", dst=dst, srcs=(srcs[0],))
            elif unit == "add" and isa.OP_BY_NAME[name].unary:
                op.srcs = (srcs[0],)
        described[unit] = op
    if ins["sf"] and described[setf_unit] is None:
        described[setf_unit] = AluOp("nop")
    for unit, op in described.items():
        if op is not None:
            op.setf = bool(ins["sf"]) and unit == setf_unit
            op.cond = _cond_name(ins["cond_" + unit], op)
    add_op, mul_op = described["add"], described["mul"]
    if mul_op is None and add_op is not None and mul_first(add_op.op):
        mul_op = AluOp("nop")      # alone it would be placed on the MUL ALU
    ops = [add_op or AluOp("nop")] if mul_op is None else [add_op or AluOp("nop"), mul_op]
    reads: list[Value] = []
    # An unpack no operand consumes, and read addresses no mux uses, go on `read` pseudo-slots.
    stray_unpack = isa.UNPACK[ins["unpack"]]
    if ins["pm"] and stray_unpack and isa.MUX_R4 not in used_muxes:
        reads.append(replace(REGISTERS["r4"], unpack=stray_unpack))
    a_unpack = stray_unpack if not ins["pm"] and isa.MUX_A not in used_muxes else ""
    if (ins["raddr_a"] != isa.NOP_ADDR or a_unpack) and isa.MUX_A not in used_muxes:
        name = f"ra{ins['raddr_a']}" if explicit else read_name("a", ins["raddr_a"])
        reads.append(replace(REGISTERS[name], unpack=a_unpack))
    if sig == isa.SIG_SMALL_IMM:
        if isa.MUX_B not in used_muxes and rotation is None:
            reads.append(_small_imm_value(ins["raddr_b"]))
    elif ins["raddr_b"] != isa.NOP_ADDR and isa.MUX_B not in used_muxes:
        reads.append(REGISTERS[f"rb{ins['raddr_b']}" if explicit else read_name("b", ins["raddr_b"])])
    signal = None if sig in (isa.SIG_NONE, isa.SIG_SMALL_IMM) else isa.SIGNALS[sig]
    return Line(ops=ops, signal=signal, reads=reads)


def _describe_branch(ins: Instruction, labels: dict[int, str], address: int, explicit: bool) -> Line | None:
    cond = isa.BRANCH_CONDITIONS[ins["cond_br"]]
    if cond is None or ins["br_unused"]:
        return None
    imm = sign_extend32(ins["imm"])
    target: int | Label = imm
    if ins["rel"] and not ins["reg"]:
        dest = address + isa.BRANCH_LINK_OFFSET + imm
        if dest in labels:
            target = Label(labels[dest], dest)
    reg = REGISTERS[f"ra{ins['raddr_a']}"] if ins["reg"] else None
    if not ins["reg"] and ins["raddr_a"]:
        return None
    links = [_dst(ins, "add", explicit), _dst(ins, "mul", explicit)]
    if not explicit and links[1].is_nop_write:
        links.pop()
    if reg is None and len(links) == 2 and links[1].physical_file() == "a" and not isinstance(target, Label):
        return None    # `brr l1, ra5, 8` reads as (link, register, offset): no text for this one
    return Line(branch=Branch(relative=bool(ins["rel"]), target=target, reg=reg, links=tuple(links), cond=cond))


def clear_caches() -> None:
    """Forget remembered decodings (for benchmarks that time cold runs)."""
    _decode_position_free.cache_clear()
