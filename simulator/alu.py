"""The ADD and MUL ALU operations on one lane: (opcode, a, b) -> (result, carry flag).

Opcode numbers come from the mnemonics of `qpuasm.isa`. Results and the ADD-ALU carry rules are
those of ../shared/reference/semantics.md §4 and reproduce every row of
testvectors/vc4c_hw/alu_ops.csv. MUL-ALU carry flags were never measured: policy (vc4asm's table,
semantics.md §4.4): mul24 sets C when the product exceeds 24 bits, every other MUL op clears C.
Written in the compilable subset (see jit.py): one branch per opcode, no tables of functions.
"""

from __future__ import annotations

from qpuasm import isa

from . import fparith as fp
from .jit import bit_length, jit

MASK = 0xFFFFFFFF
_A = isa.ADD_OP_CODES
FADD, FSUB, FMIN, FMAX, FMINABS, FMAXABS, FTOI, ITOF = (
    _A["fadd"], _A["fsub"], _A["fmin"], _A["fmax"], _A["fminabs"], _A["fmaxabs"], _A["ftoi"], _A["itof"])
ADD, SUB, SHR, ASR, ROR, SHL, MIN, MAX = (
    _A["add"], _A["sub"], _A["shr"], _A["asr"], _A["ror"], _A["shl"], _A["min"], _A["max"])
AND, OR, XOR, NOT, CLZ, ADD_V8ADDS, ADD_V8SUBS = (
    _A["and"], _A["or"], _A["xor"], _A["not"], _A["clz"], _A["v8adds"], _A["v8subs"])
_M = isa.MUL_OP_CODES
FMUL, MUL24, V8MULD, V8MIN, V8MAX, MUL_V8ADDS, MUL_V8SUBS = (
    _M["fmul"], _M["mul24"], _M["v8muld"], _M["v8min"], _M["v8max"], _M["v8adds"], _M["v8subs"])
ADD_NOP, MUL_NOP = _A["nop"], _M["nop"]
V8ADDS, V8SUBS, V8MULD_OP, V8MIN_OP, V8MAX_OP = 0, 1, 2, 3, 4     # byte-wise ops of _bytes


@jit(inline=True)
def _signed(x: int) -> int:
    return x - (1 << 32) if x & 0x80000000 else x


@jit(inline=True)
def positive(result: int) -> int:
    """C for fadd/fsub/itof: the result is positive and non-zero (+Inf counts)."""
    return 1 if result != 0 and not result & fp.SIGN else 0


@jit
def _bytes(a: int, b: int, op: int) -> int:
    out = 0
    for shift in range(0, 32, 8):
        x = (a >> shift) & 0xFF
        y = (b >> shift) & 0xFF
        if op == V8ADDS:
            r = min(x + y, 255)
        elif op == V8SUBS:
            r = max(x - y, 0)
        elif op == V8MULD_OP:
            r = (x * y + 127) // 255
        elif op == V8MIN_OP:
            r = min(x, y)
        else:
            r = max(x, y)
        out |= r << shift
    return out


@jit(inline=True)
def add_op(code: int, a: int, b: int) -> tuple[int, int]:
    """The ADD ALU (§4.1-§4.3). Reserved codes are refused by the caller."""
    if code == FADD:
        r = fp.fadd(a, b)
        return r, positive(r)
    if code == FSUB:
        r = fp.fsub(a, b)
        return r, positive(r)
    if code == FMIN:
        return fp.fmin(a, b)
    if code == FMAX:
        return fp.fmax(a, b)
    if code == FMINABS:
        return fp.fminabs(a, b)
    if code == FMAXABS:
        return fp.fmaxabs(a, b)
    if code == FTOI:
        return fp.ftoi(a), 0
    if code == ITOF:
        # semantics.md §4.1: C set iff the input is > 0 (equivalently the result is positive).
        return fp.itof(a), 1 if 0 < a < 0x80000000 else 0
    if code == ADD:
        return (a + b) & MASK, (a + b) >> 32
    if code == SUB:
        return (a - b) & MASK, 1 if a < b else 0
    n = b & 31
    if code == SHR:
        return a >> n, (a >> (n - 1)) & 1 if n else 0
    if code == ASR:
        return (_signed(a) >> n) & MASK, (a >> (n - 1)) & 1 if n else 0
    if code == ROR:
        return ((a >> n) | (a << (32 - n))) & MASK, 0
    if code == SHL:
        return (a << n) & MASK, (a >> (32 - n)) & 1 if n else 0
    if code == MIN:
        return (b, 1) if _signed(a) > _signed(b) else (a, 0)
    if code == MAX:
        return (a, 1) if _signed(a) > _signed(b) else (b, 0)
    if code == AND:
        return a & b, 0
    if code == OR:
        return a | b, 0
    if code == XOR:
        return a ^ b, 0
    if code == NOT:
        return ~a & MASK, 0
    if code == CLZ:
        return 32 - bit_length(a), 0
    if code == ADD_V8ADDS:
        return _bytes(a, b, V8ADDS), 0
    if code == ADD_V8SUBS:
        return _bytes(a, b, V8SUBS), 0
    if code == ADD_NOP:
        return 0, 0
    raise NotImplementedError("an ADD op of qpuasm.isa has no semantics in simulator/alu.py")


@jit(inline=True)
def mul_op(code: int, a: int, b: int) -> tuple[int, int]:
    """The MUL ALU (§4.4)."""
    if code == FMUL:
        return fp.fmul(a, b), 0
    if code == MUL24:
        product = (a & 0xFFFFFF) * (b & 0xFFFFFF)
        return product & MASK, 1 if product > 0xFFFFFF else 0
    if code == V8MULD:
        return _bytes(a, b, V8MULD_OP), 0
    if code == V8MIN:
        return _bytes(a, b, V8MIN_OP), 0
    if code == V8MAX:
        return _bytes(a, b, V8MAX_OP), 0
    if code == MUL_V8ADDS:
        return _bytes(a, b, V8ADDS), 0
    if code == MUL_V8SUBS:
        return _bytes(a, b, V8SUBS), 0
    if code == MUL_NOP:
        return 0, 0
    raise NotImplementedError("a MUL op of qpuasm.isa has no semantics in simulator/alu.py")
