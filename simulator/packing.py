"""Pack and unpack (../shared/reference/semantics.md §5, qpu-isa.md §7): regfile-A unpack on reads,
r4 unpack, regfile-A pack and MUL colour pack on writes. Values are 32-bit patterns; a partial pack
returns (value, mask of the bits it writes), and the rest of the destination keeps its old bits."""

from __future__ import annotations

from qpuasm import isa

from . import fparith as fp

FULL = 0xFFFFFFFF
_UNPACK = {name: code for code, name in enumerate(isa.UNPACK)}
_PACK_A = {name: code for code, name in enumerate(isa.PACK_A)}


def unpack(code: int, x: int, float_context: bool) -> int:
    """Regfile-A unpack (pm = 0) of one lane. `float_context`: the consuming op takes floats (§5.1)."""
    if code == 0:
        return x
    if code == _UNPACK["8dr"]:
        byte = x >> 24
        return byte * 0x01010101
    if code in (_UNPACK["16a"], _UNPACK["16b"]):
        half = (x >> 16) & 0xFFFF if code == _UNPACK["16b"] else x & 0xFFFF
        if float_context:
            return fp.half_to_float(half)
        return (half - 0x10000 if half & 0x8000 else half) & FULL
    byte = (x >> (8 * (code - _UNPACK["8a"]))) & 0xFF
    return fp.byte_to_float(byte) if float_context else byte


def unpack_r4(code: int, x: int) -> int:
    """r4 unpack (pm = 1): the float conversions of the regfile-A unpack (§5.2)."""
    return unpack(code, x, True)


def _overflows(result: int, op: str, a: int, b: int) -> bool:
    """Signed overflow of add/sub (the only ops that saturate, §5.3)."""
    if op not in ("add", "sub"):
        return False
    sa, sb, sr = a >> 31, b >> 31, result >> 31
    return (sa == sb and sr != sa) if op == "add" else (sa != sb and sr != sa)


def _saturate32(result: int, carry: int) -> int:
    """32-bit saturation on signed overflow: C ? INT_MIN : INT_MAX, which saturates `sub` with the
    wrong sign, as measured (§5.3 "32-bit saturation quirk")."""
    return 0x80000000 if carry else 0x7FFFFFFF


def _clamp(value: int, low: int, high: int) -> int:
    return low if value < low else high if value > high else value


def pack_a(code: int, result: int, float_result: bool, op: str, a: int, b: int, carry: int) -> tuple[int, int]:
    """Regfile-A pack (pm = 0) of one lane's result -> (value, mask of the written bits) (§5.3).

    `float_result`: the producing op returns a float (fadd..fmaxabs, itof, fmul). For add/sub that
    overflow, the 16- and 8-bit packs see the 32-bit-saturated value (§5.3)."""
    if code == 0:
        return result, FULL
    name = isa.PACK_A[code]
    value = result
    overflow = _overflows(result, op, a, b)
    if overflow:
        # Signed add/sub overflow (§5.3): every pack sees the 32-bit-saturated value, and the plain
        # 16-bit packs clamp it to 16 bits. After an *add* overflow a saturating 8/16-bit pack gives
        # that clamped value only if the wrapped 32-bit result lies in the pack's range, else 0.
        # This rule is read off the 72 measured overflow rows (vc4c_hw/alu_pack_regfileA.csv), all of
        # which it reproduces; the hardware logic behind it is not documented anywhere.
        value = _saturate32(result, carry)
        if name == "32s":
            return value, FULL
        if op == "add" and name.endswith("s"):
            low, high = (-32768, 32767) if name.startswith("16") else (0, 255)
            if not low <= (result - (1 << 32) if result >> 31 else result) <= high:
                value = 0
        if name in ("16a", "16b"):
            name += "s"
    if name == "32s":
        return value, FULL
    if name in ("16a", "16b", "16as", "16bs"):
        if float_result:
            half = fp.float_to_half(value)
        elif name.endswith("s"):
            half = _clamp(value - (1 << 32) if value >> 31 else value, -32768, 32767) & 0xFFFF
        else:
            half = value & 0xFFFF
        return (half << 16, 0xFFFF0000) if name.startswith("16b") else (half, 0x0000FFFF)
    # 8-bit packs never convert floats: the pattern is packed as an integer (§5.3).
    if name.endswith("s"):
        byte = _clamp(value - (1 << 32) if value >> 31 else value, 0, 255)
        name = name[:-1]
    else:
        byte = value & 0xFF
    if name == "8abcd":
        return byte * 0x01010101, FULL
    shift = 8 * "abcd".index(name[1])
    return byte << shift, 0xFF << shift


def pack_mul(code: int, result: int) -> tuple[int, int]:
    """MUL colour pack (pm = 1, §5.4): the float result as a colour byte, replicated or in one byte."""
    if code == 0:
        return result, FULL
    name = isa.PACK_MUL[code]
    byte = fp.float_to_colour(result)
    if name == "8abcdsf":
        return byte * 0x01010101, FULL
    shift = 8 * "abcd".index(name[1])
    return byte << shift, 0xFF << shift
