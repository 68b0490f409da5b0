"""Pack and unpack (../shared/reference/semantics.md §5, qpu-isa.md §7): regfile-A unpack on reads,
r4 unpack, regfile-A pack and MUL colour pack on writes. Values are 32-bit patterns; a partial pack
returns (value, mask of the bits it writes), and the rest of the destination keeps its old bits.
Codes come from the name tables of `qpuasm.isa`; the functions are in the compilable subset."""

from __future__ import annotations

from qpuasm import isa

from . import fparith as fp
from .jit import jit

FULL = 0xFFFFFFFF
_U = isa.UNPACK_CODES
UNPACK_16A, UNPACK_16B, UNPACK_8DR, UNPACK_8A = _U["16a"], _U["16b"], _U["8dr"], _U["8a"]
_P = isa.PACK_A_CODES
PACK_32S, PACK_8ABCD, PACK_8ABCDS = _P["32s"], _P["8abcd"], _P["8abcds"]
PACK_16A, PACK_16B, PACK_16AS, PACK_16BS = _P["16a"], _P["16b"], _P["16as"], _P["16bs"]
PACK_8A, PACK_8AS = _P["8a"], _P["8as"]
PACK_MUL_8ABCD, PACK_MUL_8A = isa.PACK_MUL_CODES["8abcdsf"], isa.PACK_MUL_CODES["8asf"]
assert [_P[n] for n in ("8a", "8b", "8c", "8d")] == list(range(PACK_8A, PACK_8A + 4))
assert [_P[n] for n in ("8as", "8bs", "8cs", "8ds")] == list(range(PACK_8AS, PACK_8AS + 4))
assert [_U[n] for n in ("8a", "8b", "8c", "8d")] == list(range(UNPACK_8A, UNPACK_8A + 4))
# Which op produced the result, for the add/sub overflow rule of the regfile-A packs (§5.3).
OTHER_OP, ADD_OP, SUB_OP = 0, 1, 2


@jit(inline=True)
def _half_shift(code: int) -> int:
    """Where the half a 16a (low) or 16b (high) unpack reads starts (§5.1)."""
    return 16 if code == UNPACK_16B else 0


@jit(inline=True)
def unpack(code: int, x: int, float_context: bool) -> int:
    """Regfile-A unpack (pm = 0) of one lane. `float_context`: the consuming op takes floats (§5.1)."""
    if code == 0:
        return x
    if code == UNPACK_8DR:
        return (x >> 24) * 0x01010101
    if code == UNPACK_16A or code == UNPACK_16B:
        half = (x >> _half_shift(code)) & 0xFFFF
        if float_context:
            return fp.half_to_float(half)
        return (half - 0x10000 if half & 0x8000 else half) & FULL
    byte = (x >> (8 * (code - UNPACK_8A))) & 0xFF
    return fp.byte_to_float(byte) if float_context else byte


@jit(inline=True)
def unpack_lanes(code: int, source, out, float_context: bool) -> None:
    """`unpack` of every lane of `source` into `out`. The float16 conversions (every fmul of a
    GEMM with float16 weights reads r4.16a or r4.16b) in a loop of their own with no branch in
    it, so that it vectorises."""
    if float_context and (code == UNPACK_16A or code == UNPACK_16B):
        shift = _half_shift(code)
        for i in range(source.shape[0]):
            out[i] = fp.half_to_float((source[i] >> shift) & 0xFFFF)
    else:
        for i in range(source.shape[0]):
            out[i] = unpack(code, source[i], float_context)


@jit
def _overflows(result: int, op: int, a: int, b: int) -> bool:
    """Signed overflow of add/sub (the only ops that saturate, §5.3)."""
    sa, sb, sr = a >> 31, b >> 31, result >> 31
    if op == ADD_OP:
        return sa == sb and sr != sa
    if op == SUB_OP:
        return sa != sb and sr != sa
    return False


@jit
def _clamp(value: int, low: int, high: int) -> int:
    return low if value < low else high if value > high else value


@jit
def _signed(x: int) -> int:
    return x - (1 << 32) if x >> 31 else x


@jit
def pack_a(code: int, result: int, float_result: bool, op: int, a: int, b: int, carry: int) -> tuple[int, int]:
    """Regfile-A pack (pm = 0) of one lane's result -> (value, mask of the written bits) (§5.3).

    `float_result`: the producing op returns a float (fadd..fmaxabs, itof, fmul). `op`: ADD_OP /
    SUB_OP for add and sub, whose overflow saturates; OTHER_OP otherwise."""
    if code == 0:
        return result, FULL
    value = result
    if _overflows(result, op, a, b):
        # Signed add/sub overflow (§5.3): every pack sees the 32-bit-saturated value C ? INT_MIN :
        # INT_MAX (which saturates `sub` with the wrong sign, as measured), and the plain 16-bit
        # packs clamp it to 16 bits. After an *add* overflow a saturating 8/16-bit pack gives that
        # clamped value only if the wrapped 32-bit result lies in the pack's range, else 0. This
        # rule is read off the 72 measured overflow rows (vc4c_hw/alu_pack_regfileA.csv), all of
        # which it reproduces; the hardware logic behind it is not documented anywhere.
        value = 0x80000000 if carry else 0x7FFFFFFF
        if code == PACK_32S:
            return value, FULL
        if op == ADD_OP:
            if code == PACK_16AS or code == PACK_16BS:
                if not -32768 <= _signed(result) <= 32767:
                    value = 0
            elif code == PACK_8ABCDS or PACK_8AS <= code < PACK_8AS + 4:
                if not 0 <= _signed(result) <= 255:
                    value = 0
        if code == PACK_16A:
            code = PACK_16AS
        elif code == PACK_16B:
            code = PACK_16BS
    if code == PACK_32S:
        return value, FULL
    if code == PACK_16A or code == PACK_16B or code == PACK_16AS or code == PACK_16BS:
        if float_result:
            half = fp.float_to_half(value)
        elif code == PACK_16AS or code == PACK_16BS:
            half = _clamp(_signed(value), -32768, 32767) & 0xFFFF
        else:
            half = value & 0xFFFF
        if code == PACK_16B or code == PACK_16BS:
            return half << 16, 0xFFFF0000
        return half, 0x0000FFFF
    # 8-bit packs never convert floats: the pattern is packed as an integer (§5.3).
    if code == PACK_8ABCDS or code >= PACK_8AS:
        byte = _clamp(_signed(value), 0, 255)
    else:
        byte = value & 0xFF
    if code == PACK_8ABCD or code == PACK_8ABCDS:
        return byte * 0x01010101, FULL
    shift = 8 * ((code - PACK_8AS) if code >= PACK_8AS else (code - PACK_8A))
    return byte << shift, 0xFF << shift


@jit
def pack_mul(code: int, result: int) -> tuple[int, int]:
    """MUL colour pack (pm = 1, §5.4): the float result as a colour byte, replicated or in one byte."""
    if code == 0:
        return result, FULL
    byte = fp.float_to_colour(result)
    if code == PACK_MUL_8ABCD:
        return byte * 0x01010101, FULL
    shift = 8 * (code - PACK_MUL_8A)
    return byte << shift, 0xFF << shift
