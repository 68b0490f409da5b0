"""QPU floating point on 32-bit patterns, to the bit.

Every function takes and returns unsigned 32-bit integers (float bit patterns) and uses integer
arithmetic only, so that the same code runs in plain Python and under a compiler. The rules are
those of ../shared/reference/semantics.md §4.1 and §5 (measured on hardware unless a comment says
"policy", which marks a behaviour nobody has measured and this simulator had to choose).
"""

from __future__ import annotations

from .jit import bit_length, bits_from_double, double_from_float_bits, jit

SIGN = 0x80000000
MAGNITUDE = 0x7FFFFFFF
POS_INF = 0x7F800000
EXP_SPECIAL = 255
MANTISSA_BITS = 23
HIDDEN = 1 << MANTISSA_BITS
MANTISSA_MASK = HIDDEN - 1
EXTRA = 32           # guard bits kept below the 24-bit significand while adding
# Fast paths through host doubles, used only where the double result is exact, so that
# truncating it gives the same bits as the integer path: a product of two 24-bit significands
# (48 bits) always fits a double's 53; a sum does when the exponents differ by at most 28.
DOUBLE_BIAS_SHIFT = 1023 - 127
EXACT_SUM_EXPONENT_GAP = 53 - 25


@jit(inline=True)
def exponent(x: int) -> int:
    return (x >> MANTISSA_BITS) & 0xFF


@jit(inline=True)
def flush(x: int) -> int:
    """§4.1: an input with exponent 0 (zero or denormal) reads as +0."""
    return 0 if exponent(x) == 0 else x


@jit(inline=True)
def _flushed_double(x: int, exp: int) -> float:
    """A finite pattern as a double, exactly; exponent 0 (zero or denormal) reads as 0.0 (§4.1)."""
    return double_from_float_bits(x & -int(exp != 0))


@jit
def _pack(sign: int, exp: int, significand: int) -> int:
    """Sign, biased exponent of the leading bit, and a 24-bit significand -> pattern.
    Overflow gives ±Inf; a result below the normal range gives +0 (§4.1)."""
    if exp >= EXP_SPECIAL:
        return sign | POS_INF
    if exp <= 0:
        return 0
    return sign | (exp << MANTISSA_BITS) | (significand & MANTISSA_MASK)


@jit(inline=True)
def _truncate_double(value: float) -> int:
    """An exact double result (normal, or zero) truncated toward zero to a float32 pattern with
    the rules of _pack (zero -> +0, overflow -> ±Inf, below the normal range -> +0). Selected by
    masks (all ones where a case applies), not branches, so that a loop over lanes vectorises."""
    bits = bits_from_double(value)
    exp = ((bits >> 52) & 0x7FF) - DOUBLE_BIAS_SHIFT          # zero has exp -DOUBLE_BIAS_SHIFT
    sign = (bits >> 32) & SIGN
    finite = sign | (exp << MANTISSA_BITS) | ((bits >> 29) & MANTISSA_MASK)
    overflow, normal = -int(exp >= EXP_SPECIAL), -int(exp > 0)
    return ((finite & ~overflow) | ((sign | POS_INF) & overflow)) & normal


@jit
def _normalise_truncate(sign: int, exp: int, value: int, point: int) -> int:
    """`value` is a magnitude whose binary point is `point` bits from the right, and `exp` the
    biased exponent of bit `point`. Truncate (round toward zero) to 24 significant bits."""
    if value == 0:
        return 0
    top = bit_length(value) - 1
    exp += top - point
    if top > MANTISSA_BITS:
        significand = value >> (top - MANTISSA_BITS)
    else:
        significand = value << (MANTISSA_BITS - top)
    return _pack(sign, exp, significand)


@jit(inline=True)
def fadd_common(a: int, b: int) -> tuple[int, bool]:
    """fadd's common case, with no branch (a loop over lanes vectorises): finite operands whose sum
    is exact in a double, truncated. A flushed operand (exponent 0) adds 0.0, so zeros (a ReLU's
    output) stay here. (result, whether the case applies: else the result means nothing.)"""
    ea, eb = exponent(a), exponent(b)
    applies = (ea < EXP_SPECIAL) & (eb < EXP_SPECIAL) & (
        (ea == 0) | (eb == 0) | (abs(ea - eb) <= EXACT_SUM_EXPONENT_GAP))
    return _truncate_double(_flushed_double(a, ea) + _flushed_double(b, eb)), applies


@jit(inline=True)
def fadd(a: int, b: int) -> int:
    """fadd: flush inputs, exponent-255 operands give ±Inf (b's sign wins), correctly rounded
    toward zero, zero results are +0 (§4.1, measured)."""
    result, common = fadd_common(a, b)
    return result if common else _fadd_other(a, b)


@jit
def _fadd_other(a: int, b: int) -> int:
    """fadd where an operand is Inf or NaN, or two normal operands' exponents are far apart."""
    if exponent(b) == EXP_SPECIAL:
        return (b & SIGN) | POS_INF
    if exponent(a) == EXP_SPECIAL:
        return (a & SIGN) | POS_INF
    if (a & MAGNITUDE) < (b & MAGNITUDE):
        a, b = b, a
    ea, eb = exponent(a), exponent(b)         # a gap beyond EXACT_SUM_EXPONENT_GAP here
    ma = ((a & MANTISSA_MASK) | HIDDEN) << EXTRA
    mb_full = ((b & MANTISSA_MASK) | HIDDEN) << EXTRA
    shift = ea - eb
    if shift > MANTISSA_BITS + EXTRA:
        mb, sticky = 0, 1
    else:
        mb = mb_full >> shift
        sticky = 1 if (mb << shift) != mb_full else 0
    if (a ^ b) & SIGN:
        # The bits of b shifted out make the exact difference slightly smaller: subtracting the
        # sticky bit gives the same truncation as the exact value.
        total = ma - mb - sticky
    else:
        total = ma + mb
    return _normalise_truncate(a & SIGN, ea, total, MANTISSA_BITS + EXTRA)


@jit(inline=True)
def fsub(a: int, b: int) -> int:
    """fsub = fadd with b's sign flipped; an exponent-255 b gives ±Inf of the opposite sign (§4.1)."""
    return fadd(a, b ^ SIGN)


@jit(inline=True)
def fmul_common(a: int, b: int) -> tuple[int, bool]:
    """fmul of finite operands, with no branch: the product's 48 significant bits are exact in a
    double; truncating them is the policy. A flushed operand multiplies as 0.0: the product
    truncates to +0, as §4.1 says. (result, whether the case applies.)"""
    ea, eb = exponent(a), exponent(b)
    applies = (ea < EXP_SPECIAL) & (eb < EXP_SPECIAL)
    return _truncate_double(_flushed_double(a, ea) * _flushed_double(b, eb)), applies


@jit(inline=True)
def fmul(a: int, b: int) -> int:
    """fmul: a flushed-zero operand gives +0 even against Inf/NaN; exponent-255 operands give ±Inf
    with the XOR of the signs (§4.1, measured). Rounding of inexact products is not covered by any
    measurement; policy: correctly rounded toward zero, like fadd (semantics.md §4.1)."""
    result, common = fmul_common(a, b)
    return result if common else _fmul_other(a, b)


@jit
def _fmul_other(a: int, b: int) -> int:
    """fmul where an operand is Inf or NaN (a flushed operand still gives +0)."""
    a = flush(a)
    b = flush(b)
    if a == 0 or b == 0:
        return 0
    return ((a ^ b) & SIGN) | POS_INF           # one operand has exponent 255, neither is zero


@jit
def _key(x: int) -> int:
    """Sign-magnitude order of raw patterns (§4.1: fmin/fmax compare without flushing)."""
    return -(x & MAGNITUDE) if x & SIGN else x


@jit
def fmin(a: int, b: int) -> tuple[int, int]:
    carry = 1 if _key(a) > _key(b) else 0
    return (b if carry else a), carry


@jit
def fmax(a: int, b: int) -> tuple[int, int]:
    carry = 1 if _key(a) > _key(b) else 0
    return (a if carry else b), carry


@jit
def fminabs(a: int, b: int) -> tuple[int, int]:
    return fmin(a & MAGNITUDE, b & MAGNITUDE)


@jit
def fmaxabs(a: int, b: int) -> tuple[int, int]:
    return fmax(a & MAGNITUDE, b & MAGNITUDE)


@jit
def ftoi(a: int) -> int:
    """Truncation toward zero of the flushed float; exponent 255 gives 0 (measured). Policy for
    |x| >= 2^31 (only ±2^97 measured, giving 0): 0, except +2^31 -> 0x80000000 as VC4C reports
    (semantics.md §4.1)."""
    a = flush(a)
    exp = exponent(a)
    if a == 0 or exp == EXP_SPECIAL:
        return 0
    if exp >= 127 + 31:
        return 0x80000000 if (a & MAGNITUDE) == (127 + 31) << MANTISSA_BITS else 0
    significand = (a & MANTISSA_MASK) | HIDDEN
    shift = exp - 127 - MANTISSA_BITS
    if shift <= -(MANTISSA_BITS + 1):
        return 0                       # |x| < 1 (and no shift of 64 bits or more, undefined when compiled)
    magnitude = significand << shift if shift >= 0 else significand >> -shift
    return (-magnitude if a & SIGN else magnitude) & 0xFFFFFFFF


@jit
def itof(a: int) -> int:
    """Signed int32 -> float, rounded toward zero (itof(0x7fffffff) = 0x4effffff, measured)."""
    value = a - (1 << 32) if a & SIGN else a
    if value == 0:
        return 0
    sign = SIGN if value < 0 else 0
    return _normalise_truncate(sign, 127, abs(value), 0)


@jit(inline=True)
def half_to_float(h: int) -> int:
    """float16 -> float32 as the unpack hardware does it (§5.1, measured): the exponent is rebiased
    and the mantissa shifted, except that a half denormal keeps exponent 0 (becomes a float
    denormal) and exponent 31 becomes 255."""
    sign = (h & 0x8000) << 16
    exp = (h >> 10) & 0x1F
    mantissa = (h & 0x3FF) << 13
    # Masks, not branches (a loop over lanes vectorises): exponent 0 keeps 0, 31 ORs up to 255.
    rebiased = ((exp + 112) << MANTISSA_BITS) & -int(exp != 0) | (POS_INF & -int(exp == 31))
    return sign | rebiased | mantissa


@jit
def float_to_half(f: int) -> int:
    """float32 -> float16 for the 16a/16b packs of a float result (§5.3): exponent 0 -> +0,
    exponent 255 and overflow -> ±Inf, below the half normal range -> +0. Rounding: the measured
    cases are ties-free and fit round-to-nearest; policy: nearest, ties away from zero."""
    sign = (f >> 16) & 0x8000
    exp = exponent(f)
    if exp == 0:
        return 0
    if exp == EXP_SPECIAL:
        return sign | 0x7C00
    half_exp = exp - 112
    significand = (f & MANTISSA_MASK) | HIDDEN
    rounded = (significand + (1 << 12)) >> 13        # 11-bit significand, nearest, ties away
    if rounded >> 11:                                  # rounding carried into a new bit
        rounded >>= 1
        half_exp += 1
    if half_exp >= 31:
        return sign | 0x7C00
    if half_exp <= 0:
        return 0
    return sign | (half_exp << 10) | (rounded & 0x3FF)


@jit
def byte_to_float(byte: int) -> int:
    """byte / 255 rounded toward zero (§5.1, measured: 0x80 -> 0x3f008080, 0xff -> 1.0)."""
    if byte == 0:
        return 0
    if byte == 255:
        return 127 << MANTISSA_BITS
    # byte/255 = byte * 2^k / 255 / 2^k: keep 40 bits of quotient, then truncate to 24.
    return _normalise_truncate(0, 127, (byte << 40) // 255, 40)


@jit
def float_to_colour(f: int) -> int:
    """MUL colour pack: sat[0,255](round(f * 255)) (§5.4). Policy: round to nearest, ties away;
    exponent 255 saturates by sign; negative values give 0 (only ±1 was ever checked, by py-videocore)."""
    if f & SIGN:
        return 0
    if exponent(f) == EXP_SPECIAL:
        return 255
    f = flush(f)
    if f == 0:
        return 0
    exp = exponent(f)
    significand = (f & MANTISSA_MASK) | HIDDEN
    # value * 255 = significand * 255 * 2^(exp - 127 - 23)
    scaled = significand * 255
    shift = exp - 127 - MANTISSA_BITS
    if shift >= 0:
        return 255                     # at least 255 * 2^23: saturated (and no 64-bit overflow)
    if shift < -60:
        value = 0
    else:
        value = (scaled + (1 << (-shift - 1))) >> -shift
    return 255 if value > 255 else value
