"""The special function unit: recip, recipsqrt, exp2, log2 (semantics.md §8.1).

No bit-exact model of the hardware's tables is public. Measured outputs all have their low 8
mantissa bits clear (1 + 15 significant bits) and stay within about 2^-14 of the exact value.
Policy: compute the exact function in double precision, then round to 16 significant bits
(nearest); recip keeps the sign, recipsqrt and log2 use |x|; recip(0) = recipsqrt(0) = +Inf,
log2(0) = -Inf; exp2 overflows to +Inf and underflows to +0; inputs with exponent 0 read as 0."""

from __future__ import annotations

import math
import struct

from qpuasm import isa

from . import fparith as fp

LOW_BITS_CLEARED = 8          # 23-bit mantissa -> 15 bits kept (16 significant with the hidden bit)
NEG_INF = 0xFF800000


def _bits(value: float) -> int:
    try:
        return struct.unpack("<I", struct.pack("<f", value))[0]
    except OverflowError:
        return fp.POS_INF if value > 0 else NEG_INF


def _round16(value: float) -> int:
    """A double rounded to 16 significant bits, as a float32 pattern (tiny -> +0, huge -> ±Inf)."""
    if value == 0 or math.isnan(value):
        return 0
    if math.isinf(value):
        return fp.POS_INF if value > 0 else NEG_INF
    mantissa, exponent = math.frexp(abs(value))          # value = mantissa * 2^exponent, 0.5 <= m < 1
    scaled = math.floor(mantissa * (1 << 16) + 0.5)      # 16 significant bits, nearest
    result = math.ldexp(scaled, exponent - 16)
    if result < 2.0 ** -126:
        return 0
    bits = _bits(result if value > 0 else -result)
    return bits & ~((1 << LOW_BITS_CLEARED) - 1) if fp.exponent(bits) != fp.EXP_SPECIAL else bits


def _value(bits: int) -> float | None:
    """The input as a double after the flush; None for exponent 255 (Inf/NaN)."""
    bits = fp.flush(bits)
    if fp.exponent(bits) == fp.EXP_SPECIAL:
        return None
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def recip(x: int) -> int:
    value = _value(x)
    if value is None:
        return 0 if not x & fp.SIGN else fp.SIGN        # 1/±Inf = ±0 (policy)
    if value == 0:
        return fp.POS_INF
    return _round16(1.0 / value)


def recipsqrt(x: int) -> int:
    value = _value(x)
    if value is None:
        return 0
    if value == 0:
        return fp.POS_INF
    return _round16(1.0 / math.sqrt(abs(value)))


def exp2(x: int) -> int:
    value = _value(x)
    if value is None:
        return 0 if x & fp.SIGN else fp.POS_INF
    if value >= 128:
        return fp.POS_INF
    if value < -126:
        return 0
    return _round16(2.0 ** value)


def log2(x: int) -> int:
    value = _value(x)
    if value is None:
        return fp.POS_INF
    if value == 0:
        return NEG_INF
    return _round16(math.log2(abs(value)))


# By write address (isa.ADDR_SFU_FIRST + 0..3 = recip, recipsqrt, exp, log; qpu-isa.md §10).
FUNCTIONS = (recip, recipsqrt, exp2, log2)
assert len(FUNCTIONS) == isa.ADDR_SFU_LAST - isa.ADDR_SFU_FIRST + 1
SFU_LATENCY = 3               # the result is readable by the third instruction after the write (§8.1)
