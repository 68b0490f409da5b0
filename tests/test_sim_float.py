"""fadd, fsub, fmul, itof and ftoi on random operands against an exact rational reference
(semantics.md §4.1: inputs with exponent 0 read as +0, results rounded toward zero, tiny results
+0, overflow and exponent-255 inputs ±Inf, never NaN). The operations run as QPU programs."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.machine import SimulationWarning

from .test_sim_alu import LOAD, run, store

SIGN = 0x80000000


def to_fraction(bits: int) -> Fraction | None:
    """The value of a pattern after the input flush; None for exponent 255."""
    exponent = (bits >> 23) & 0xFF
    if exponent == 255:
        return None
    if exponent == 0:
        return Fraction(0)
    value = Fraction((bits & 0x7FFFFF) | 0x800000) * Fraction(2) ** (exponent - 150)
    return -value if bits & SIGN else value


def round_toward_zero(x: Fraction) -> int:
    """The float32 pattern of x truncated toward zero; +0 below the normal range, ±Inf above."""
    if x == 0:
        return 0
    sign = SIGN if x < 0 else 0
    x = abs(x)
    exponent = math.floor(math.log2(x.numerator) - math.log2(x.denominator))
    while Fraction(2) ** exponent > x:
        exponent -= 1
    while Fraction(2) ** (exponent + 1) <= x:
        exponent += 1
    if exponent + 127 >= 255:
        return sign | 0x7F800000
    if exponent + 127 <= 0:
        return 0
    mantissa = math.floor(x / Fraction(2) ** (exponent - 23))
    return sign | ((exponent + 127) << 23) | (mantissa & 0x7FFFFF)


def reference(op: str, a: int, b: int) -> int:
    fa, fb = to_fraction(a), to_fraction(b)
    if op == "fmul":
        if fa == 0 or fb == 0:
            return 0
        if fa is None or fb is None:
            return ((a ^ b) & SIGN) | 0x7F800000
        return round_toward_zero(fa * fb)
    if op == "fsub":
        b ^= SIGN
        fb = None if fb is None else -fb
    if fb is None:
        return (b & SIGN) | 0x7F800000
    if fa is None:
        return (a & SIGN) | 0x7F800000
    return round_toward_zero(fa + fb)


# Patterns drawn so that exponents collide often (cancellation, carries) and specials appear.
PATTERNS = st.one_of(
    st.integers(0, 0xFFFFFFFF),
    st.builds(lambda s, e, m: s << 31 | e << 23 | m,
              st.integers(0, 1), st.integers(120, 134), st.integers(0, 0x7FFFFF)),
    st.sampled_from([0, SIGN, 0x7F800000, 0xFF800000, 0x7FC00000, 0x00000001, 0x00800000, 0x7F7FFFFF, 0x3F800000]),
)
VECTORS = st.lists(PATTERNS, min_size=16, max_size=16)


def _binary(op: str, a: list[int], b: list[int]) -> list[int]:
    line = f"    {op} r2, r0, r1\n" if op != "fmul" else "    nop; fmul r2, r0, r1\n"
    (result,) = run(LOAD + line + store(["r2"]), a, b, 1)
    return result


@settings(max_examples=40, deadline=None)
@given(VECTORS, VECTORS)
def test_fadd_fsub_fmul_against_exact_reference(a, b):
    for op in ("fadd", "fsub", "fmul"):
        assert _binary(op, a, b) == [reference(op, x, y) for x, y in zip(a, b, strict=True)], op


def test_vectors_mixing_common_and_special_lanes():
    # The core computes fadd and fmul's common case on all 16 lanes, then redoes a vector that has
    # a lane outside it (Inf, NaN, exponents 29 or more apart): every lane must come out right.
    common = [0x3F800000 + 0x1234 * i for i in range(16)]
    for lane, special in ((0, 0x7F800000), (7, 0xFFC00000), (15, 0x0A000000)):
        a = common.copy()
        a[lane] = special
        b = [0x40400000 ^ (SIGN * (i % 2)) for i in range(16)]
        for op in ("fadd", "fsub", "fmul"):
            assert _binary(op, a, b) == [reference(op, x, y) for x, y in zip(a, b, strict=True)], (op, lane)
    for op in ("fadd", "fmul"):
        assert _binary(op, common, common) == [reference(op, x, x) for x in common], op


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 0xFFFFFFFF), min_size=16, max_size=16), VECTORS)
def test_itof_and_ftoi(ints, floats):
    # Out-of-range ftoi follows a policy: strict mode would stop, so this runs non-strict.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        itof, ftoi = run(LOAD + "    itof r2, r0\n    ftoi r3, r1\n" + store(["r2", "r3"]), ints, floats, 2,
                         strict=False)
    assert itof == [round_toward_zero(Fraction(v - (1 << 32) if v & SIGN else v)) for v in ints]
    expected = []
    for bits in floats:
        value = to_fraction(bits)
        if value is None or abs(value) >= 2 ** 31:
            # policy (semantics.md §4.1): out of range gives 0, except +2^31 as VC4C reports
            expected.append(0x80000000 if bits == 0x4F000000 else 0)
        else:
            expected.append(int(value) & 0xFFFFFFFF)      # int() truncates toward zero
    assert ftoi == expected
