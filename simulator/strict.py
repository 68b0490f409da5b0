"""Strict mode's checks and the tracking of undefined values.

What the hardware leaves unknown or forbids (qpu-isa.md §16, semantics.md §0, §6) is reported, not
guessed: a read of a register written by the instruction before, two uniforms in one instruction,
the MUL's carry, the thread end's restrictions. Undefined values are tracked as a memory checker
tracks poison: a 16-bit lane mask per register row and one for the flags (state.POISON...); values
flow through the ALUs (a result lane is undefined if an operand lane is, or its condition read
undefined flags) and are reported only where they matter: at an I/O write (memory, address, TMU,
SFU, VPM, DMA, uniforms address, host interrupt) or a branch.
"""

from __future__ import annotations

from qpuasm import isa

from . import program as P
from .jit import jit
from .state import (
    ACC,
    ALL_LANES,
    C_FROM_MUL,
    FLAGS,
    INSTRUCTIONS,
    LANES,
    LAST_WRITE,
    PC,
    POISON,
    POISON_A,
    POISON_B,
    POISON_FLAGS,
    R_MUL_CARRY,
    R_RULE1,
    R_SFU_R4_READ,
    R_THREAD_END_IO,
    R_THREAD_END_REG14,
    R_TWO_UNIFORMS,
    R_UNDEFINED_WRITE,
    S_ONES,
    S_ZERO,
    register_row,
    report,
    sfu_pending,
)
from .tables import (
    ADD_UNARY,
    C_ADD_A,
    C_ADD_B,
    C_MUL_A,
    C_MUL_B,
    C_OP_ADD,
    C_OP_MUL,
    C_RADDR_A,
    C_RADDR_B,
    C_SIG,
    C_WADDR_ADD,
    C_WADDR_MUL,
)


@jit(inline=True)
def check_reads(qpu, m, q: int, prog, row: int, small_imm: bool) -> None:
    """Strict-mode checks on what an ALU instruction reads (qpu-isa.md §16, semantics.md §6)."""
    pc = qpu[q, PC]
    op_add, op_mul = prog[row, C_OP_ADD], prog[row, C_OP_MUL]
    used = 0
    if op_add != 0:
        used |= 1 << prog[row, C_ADD_A]
        if not ADD_UNARY[op_add]:
            used |= 1 << prog[row, C_ADD_B]
    if op_mul != 0:
        used |= (1 << prog[row, C_MUL_A]) | (1 << prog[row, C_MUL_B])
    now = qpu[q, INSTRUCTIONS]
    for mux in range(8 if used else 0):
        if not used >> mux & 1:
            continue
        if mux < isa.MUX_ACCUMULATORS:
            if mux == isa.MUX_R4 and sfu_pending(qpu, q):
                report(m, q, pc, R_SFU_R4_READ, 0, 0)
            continue
        file = 0 if mux == isa.MUX_A else 1
        addr = prog[row, C_RADDR_A] if file == 0 else prog[row, C_RADDR_B]
        if (file == 1 and small_imm) or addr >= isa.REGFILE_SIZE:
            continue
        written = qpu[q, LAST_WRITE + file * isa.REGFILE_SIZE + addr]
        if written >= 0 and written == now - 1:
            report(m, q, pc, R_RULE1, file, addr)
    if prog[row, C_RADDR_A] == isa.ADDR_UNIFORM and not small_imm and prog[row, C_RADDR_B] == isa.ADDR_UNIFORM:
        report(m, q, pc, R_TWO_UNIFORMS, 0, 0)


@jit
def carry_check(qpu, m, q: int) -> None:
    for i in range(LANES):
        if qpu[q, FLAGS + C_FROM_MUL * LANES + i]:
            report(m, q, qpu[q, PC], R_MUL_CARRY, 0, 0)
            return


@jit(inline=True)
def lane_mask(qpu, q: int, where: int) -> int:
    """The lanes set in the per-lane 1/0 vector at qpu[q, where], as a 16-bit mask."""
    if where == S_ONES:
        return ALL_LANES
    if where == S_ZERO:
        return 0
    mask = 0
    for i in range(LANES):
        if qpu[q, where + i]:
            mask |= 1 << i
    return mask


@jit(inline=True)
def mux_poison(qpu, q: int, mux: int) -> int:
    """The undefined lanes of what an input mux delivers (an unpack keeps lanes apart)."""
    if mux == isa.MUX_A:
        return qpu[q, POISON_A]
    if mux == isa.MUX_B:
        return qpu[q, POISON_B]
    return qpu[q, POISON + ACC + mux]


@jit(inline=True)
def rotate_poison(mask: int, n: int, full: bool) -> int:
    """The undefined lanes after the MUL rotation of _rotate (lane i takes lane i - n)."""
    if full:
        return ((mask << n) | (mask >> (LANES - n))) & ALL_LANES
    out = 0
    for i in range(LANES):
        if mask >> ((i & ~3) | ((i - n) & 3)) & 1:
            out |= 1 << i
    return out


@jit(inline=True)
def with_flags(qpu, q: int, poison: int, cond: int) -> int:
    """A result's undefined lanes (bits 0..15) and, above them, the lanes whose write condition read
    undefined flags (bits 16..31): whether those lanes are written is itself undefined."""
    if cond == S_ONES or cond == S_ZERO:
        return poison
    return poison | qpu[q, POISON_FLAGS] << LANES


@jit(inline=True)
def merged(qpu, q: int, old: int, cond: int, poison: int) -> int:
    """The undefined lanes of something holding `old` after a write of `poison` (as _with_flags
    gives it) under the condition at `cond`."""
    if (old | poison) == 0:
        return 0
    where = lane_mask(qpu, q, cond)
    return (old & ~where & ALL_LANES) | (poison & where) | (poison >> LANES)


@jit(inline=True)
def define(qpu, q: int, row: int, cond: int, poison: int) -> None:
    """A register row written under the condition at `cond` with values undefined in `poison`."""
    qpu[q, POISON + row] = merged(qpu, q, qpu[q, POISON + row], cond, poison)


@jit(inline=True)
def io_lanes(addr: int) -> int:
    """The lanes of an I/O write whose values matter: every lane for the VPM, the SFU and the TMUs;
    lane 0 for a register that takes one word."""
    return ALL_LANES if addr == isa.ADDR_VPM or addr >= isa.ADDR_SFU_FIRST else 1


@jit
def unwritten(qpu, m, q: int, file: int, addr: int, lanes: int) -> None:
    """A write that undefined flags kept from every lane: those lanes of a register become undefined;
    whether an I/O write happened at all is undefined (reported, lane 0 or every lane as _write_io)."""
    row = register_row(file, addr)
    if row >= 0:
        qpu[q, POISON + row] |= lanes
    elif addr == isa.ADDR_R5:
        qpu[q, POISON + ACC + isa.MUX_R5] |= ALL_LANES
    elif addr != isa.ADDR_MUTEX:
        lanes &= io_lanes(addr)
        if lanes:
            report(m, q, qpu[q, PC], R_UNDEFINED_WRITE, addr + 64 * file, lanes)


@jit
def thread_end_checks(qpu, m, q: int, prog, row: int, fmt: int) -> None:
    """qpu-isa.md §16 rules 5 and 6, in the thrend instruction and its two delay slots: no uniform,
    varying or VPM read, no VPM or VDR/VDW access, no access to register 14 of either file."""
    pc = qpu[q, PC]
    io, reg14 = False, False
    for unit in range(2):
        addr = prog[row, C_WADDR_ADD] if unit == 0 else prog[row, C_WADDR_MUL]
        io = io or addr == isa.ADDR_VPM or addr == isa.ADDR_VPM_SETUP or addr == isa.ADDR_VPM_DMA
        reg14 = reg14 or addr == isa.ADDR_REGFILE_THREAD_RESERVED
    if fmt == P.FMT_ALU:
        small_imm = prog[row, C_SIG] == isa.SIG_SMALL_IMM
        for file in range(1 if small_imm else 2):
            addr = prog[row, C_RADDR_A] if file == 0 else prog[row, C_RADDR_B]
            io = io or addr == isa.ADDR_UNIFORM or addr == isa.ADDR_VARYING or addr == isa.ADDR_VPM
            reg14 = reg14 or addr == isa.ADDR_REGFILE_THREAD_RESERVED
    if io:
        report(m, q, pc, R_THREAD_END_IO, 0, 0)
    if reg14:
        report(m, q, pc, R_THREAD_END_REG14, 0, 0)
