"""The special function unit: recip, recipsqrt, exp2, log2 (semantics.md §8.1).

No bit-exact model of the hardware's tables is public. Measured outputs all have their low 8
mantissa bits clear (1 + 15 significant bits) and stay within about 2^-14 of the exact value.
Policy: compute the exact function in double precision, then round to 16 significant bits
(nearest); recip keeps the sign, recipsqrt and log2 use |x|; recip(0) = recipsqrt(0) = +Inf,
log2(0) = -Inf; exp2 overflows to +Inf and underflows to +0; inputs with exponent 0 read as 0.
Float patterns are built with integer arithmetic, so the compiled and plain paths agree."""

from __future__ import annotations

import math

from qpuasm import isa

from . import fparith as fp
from .jit import jit

KEPT_BITS = 16                # significant bits of an SFU result (23-bit mantissa -> 15 bits kept)
NEG_INF = 0xFF800000
RECIP, RECIPSQRT, EXP2, LOG2 = 0, 1, 2, 3   # by write address isa.ADDR_SFU_FIRST + 0..3 (qpu-isa.md §10)
assert isa.ADDR_SFU_LAST - isa.ADDR_SFU_FIRST == LOG2
SFU_LATENCY = 3               # the result is readable by the third instruction after the write (§8.1)


@jit
def _round16(value: float) -> int:
    """A double rounded to 16 significant bits (nearest), as a float32 pattern (below the normal
    range -> +0, beyond it -> ±Inf)."""
    if value == 0 or value != value:
        return 0
    sign = fp.SIGN if value < 0 else 0
    if math.isinf(value):
        return sign | fp.POS_INF
    mantissa, exponent = math.frexp(abs(value))         # value = mantissa * 2^exponent, 0.5 <= m < 1
    scaled = int(math.floor(mantissa * (1 << KEPT_BITS) + 0.5))
    if scaled == 1 << KEPT_BITS:                         # rounding carried into a new bit
        scaled >>= 1
        exponent += 1
    biased = exponent - 1 + 127                          # biased exponent of the leading bit
    if biased <= 0:
        return 0
    if biased >= fp.EXP_SPECIAL:
        return sign | fp.POS_INF
    mantissa_bits = (scaled - (1 << (KEPT_BITS - 1))) << (fp.MANTISSA_BITS - KEPT_BITS + 1)
    return sign | (biased << fp.MANTISSA_BITS) | mantissa_bits


@jit
def _value(bits: int) -> float:
    """The flushed, finite input as a double (callers handle exponent 255 first)."""
    bits = fp.flush(bits)
    if bits == 0:
        return 0.0
    magnitude = math.ldexp(float((bits & fp.MANTISSA_MASK) | fp.HIDDEN),
                           int(fp.exponent(bits) - 127 - fp.MANTISSA_BITS))
    return -magnitude if bits & fp.SIGN else magnitude


@jit
def sfu(function: int, x: int) -> int:
    """One lane of the SFU: RECIP, RECIPSQRT, EXP2 or LOG2 of the pattern x."""
    special = fp.exponent(x) == fp.EXP_SPECIAL
    value = 0.0 if special else _value(x)
    if function == RECIP:
        if special:
            return 0 if not x & fp.SIGN else fp.SIGN      # 1/±Inf = ±0 (policy)
        return fp.POS_INF if value == 0 else _round16(1.0 / value)
    if function == RECIPSQRT:
        if special:
            return 0
        return fp.POS_INF if value == 0 else _round16(1.0 / math.sqrt(abs(value)))
    if function == EXP2:
        if special:
            return 0 if x & fp.SIGN else fp.POS_INF
        if value >= 128:
            return fp.POS_INF
        if value < -126:
            return 0
        return _round16(2.0 ** value)
    if special:
        return fp.POS_INF
    return NEG_INF if value == 0 else _round16(math.log2(abs(value)))
