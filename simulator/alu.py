"""The ADD and MUL ALU operations on one lane: (a, b) -> (result, carry flag).

Keyed by the mnemonics of `qpuasm.isa` (opcode numbers come from there). Results and the ADD-ALU
carry rules are those of ../shared/reference/semantics.md §4 and reproduce every row of
testvectors/vc4c_hw/alu_ops.csv. MUL-ALU carry flags were never measured: policy (vc4asm's table,
semantics.md §4.4): mul24 sets C when the product exceeds 24 bits, every other MUL op clears C.
"""

from __future__ import annotations

from collections.abc import Callable

from qpuasm import isa

from . import fparith as fp

MASK = 0xFFFFFFFF


def _signed(x: int) -> int:
    return x - (1 << 32) if x & 0x80000000 else x


def _positive(result: int) -> int:
    """C for fadd/fsub/itof: the result is positive and non-zero (+Inf counts)."""
    return 1 if result != 0 and not result & fp.SIGN else 0


def _bytes(a: int, b: int, op: Callable[[int, int], int]) -> int:
    out = 0
    for shift in (0, 8, 16, 24):
        out |= (op((a >> shift) & 0xFF, (b >> shift) & 0xFF) & 0xFF) << shift
    return out


def _shr(a: int, b: int) -> tuple[int, int]:
    n = b & 31
    return a >> n, (a >> (n - 1)) & 1 if n else 0


def _asr(a: int, b: int) -> tuple[int, int]:
    n = b & 31
    return (_signed(a) >> n) & MASK, (a >> (n - 1)) & 1 if n else 0


def _ror(a: int, b: int) -> tuple[int, int]:
    n = b & 31
    return ((a >> n) | (a << (32 - n))) & MASK, 0


def _shl(a: int, b: int) -> tuple[int, int]:
    n = b & 31
    return (a << n) & MASK, (a >> (32 - n)) & 1 if n else 0


def _clz(a: int, _: int) -> tuple[int, int]:
    return 32 - a.bit_length(), 0


def _fadd(a: int, b: int) -> tuple[int, int]:
    r = fp.fadd(a, b)
    return r, _positive(r)


def _fsub(a: int, b: int) -> tuple[int, int]:
    r = fp.fsub(a, b)
    return r, _positive(r)


def _itof(a: int, _: int) -> tuple[int, int]:
    # semantics.md §4.1: C set iff the input is > 0 (equivalently the result is positive).
    return fp.itof(a), 1 if 0 < a < 0x80000000 else 0


ADD: dict[str, Callable[[int, int], tuple[int, int]]] = {
    "nop": lambda a, b: (0, 0),
    "fadd": _fadd,
    "fsub": _fsub,
    "fmin": fp.fmin,
    "fmax": fp.fmax,
    "fminabs": fp.fminabs,
    "fmaxabs": fp.fmaxabs,
    "ftoi": lambda a, b: (fp.ftoi(a), 0),
    "itof": _itof,
    "add": lambda a, b: ((a + b) & MASK, (a + b) >> 32),
    "sub": lambda a, b: ((a - b) & MASK, 1 if a < b else 0),
    "shr": _shr,
    "asr": _asr,
    "ror": _ror,
    "shl": _shl,
    "min": lambda a, b: (b, 1) if _signed(a) > _signed(b) else (a, 0),
    "max": lambda a, b: (a, 1) if _signed(a) > _signed(b) else (b, 0),
    "and": lambda a, b: (a & b, 0),
    "or": lambda a, b: (a | b, 0),
    "xor": lambda a, b: (a ^ b, 0),
    "not": lambda a, b: (~a & MASK, 0),
    "clz": _clz,
    "v8adds": lambda a, b: (_bytes(a, b, lambda x, y: min(x + y, 255)), 0),
    "v8subs": lambda a, b: (_bytes(a, b, lambda x, y: max(x - y, 0)), 0),
}


def _mul24(a: int, b: int) -> tuple[int, int]:
    product = (a & 0xFFFFFF) * (b & 0xFFFFFF)
    return product & MASK, 1 if product > 0xFFFFFF else 0


MUL: dict[str, Callable[[int, int], tuple[int, int]]] = {
    "nop": lambda a, b: (0, 0),
    "fmul": lambda a, b: (fp.fmul(a, b), 0),
    "mul24": _mul24,
    "v8muld": lambda a, b: (_bytes(a, b, lambda x, y: (x * y + 127) // 255), 0),
    "v8min": lambda a, b: (_bytes(a, b, min), 0),
    "v8max": lambda a, b: (_bytes(a, b, max), 0),
    "v8adds": ADD["v8adds"],
    "v8subs": ADD["v8subs"],
}

# One function per opcode number, derived from the isa tables (reserved ADD codes have none).
ADD_BY_CODE: tuple[Callable[[int, int], tuple[int, int]] | None, ...] = tuple(
    ADD[name] if name else None for name in isa.ADD_OPS)
MUL_BY_CODE: tuple[Callable[[int, int], tuple[int, int]], ...] = tuple(MUL[name] for name in isa.MUL_OPS)

assert set(ADD) == {n for n in isa.ADD_OPS if n} and set(MUL) == set(isa.MUL_OPS)
