"""The operation-level view of one instruction, shared by the assembler, the builder and the
disassembler.

A source line such as `fadd.ifz r0, ra1, 2; fmul rb3, r0, r1 >> 1; ldtmu0` is a `Line` of slots:
ALU operations (`AluOp`), a signal, `read` pseudo-operands, or one branch. encode.py turns a Line
into its 64-bit word; decode.py finds the least explicit Line of a word.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import isa
from .operands import Label, PerElement, Reg, Semaphore, float_bits


class EncodeError(ValueError):
    """An instruction the hardware cannot encode; `slot` is the index of the slot at fault."""

    def __init__(self, message: str, slot: int | None = None):
        super().__init__(message)
        self.slot = slot


Value = Reg | int | float | Label | Semaphore | PerElement

LDI_OPS = frozenset(isa.LDI_MODE_CODES)
IMMEDIATE_OPS = LDI_OPS | frozenset(isa.SEMAPHORE_OPS)
UNIT_PREFIXES = {"a": "add", "m": "mul"}     # amov / mmov / anop / mnop force the ALU


@dataclass
class AluOp:
    """One ALU operation: `op[.cond][.setf] dst, src, src`.

    `op` is an ADD or MUL mnemonic, `mov`, `nop`, or one of the immediate forms (`ldi`, `ldipes`,
    `ldipeu`, `sacq`, `srel`). `cond` None means the default; `unit` forces "add" or "mul".
    """

    op: str
    dst: Reg | None = None
    srcs: tuple[Value, ...] = ()
    cond: str | None = None
    setf: bool = False
    unit: str | None = None


@dataclass
class Branch:
    """`bra`/`brr[.cond] [link[, link]], [reg,] target`."""

    relative: bool
    target: int | Label = 0
    reg: Reg | None = None
    links: tuple[Reg, ...] = ()
    cond: str = ""


@dataclass
class Line:
    """The slots of one instruction. `raw` is a literal word (`.long low, high`)."""

    ops: list[AluOp] = field(default_factory=list)
    signal: str | None = None
    reads: list[Value] = field(default_factory=list)
    branch: Branch | None = None
    raw: int | None = None


# ==== helpers =====================================================================================


def value_bits(value: Value, what: str = "value") -> int:
    """The 32-bit pattern of a numeric operand."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        if not -(1 << 31) <= value < 1 << 32:
            raise EncodeError(f"{what} {value:#x} does not fit in 32 bits")
        return value & 0xFFFFFFFF
    if isinstance(value, float):
        return float_bits(value)
    if isinstance(value, Label):
        return value.address & 0xFFFFFFFF
    raise EncodeError(f"{what} must be a number, not {describe(value)}")


def describe(value: Value) -> str:
    if isinstance(value, Reg):
        return f"register {value.name}"
    if isinstance(value, Label):
        return f"label {value.name}"
    if isinstance(value, Semaphore):
        return "a semaphore (sacq/srel)"
    if isinstance(value, PerElement):
        return "a per-element vector"
    return repr(value)



def mul_first(name: str) -> bool:
    """Whether an op on both ALUs goes to the MUL ALU when alone on a line (isa.Op.mul_first)."""
    op = isa.OP_BY_NAME.get(name)
    return op is not None and op.mul_first
