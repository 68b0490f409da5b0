"""The ISA table checked as data (riscv-opcodes style): fields cover bits 0..63 without overlap,
values fit their fields, names are unique per space."""

from __future__ import annotations

import pytest

from qpuasm import isa
from qpuasm.operands import REGISTERS


@pytest.mark.parametrize("fmt", sorted(isa.FORMATS))
def test_fields_cover_every_bit_once(fmt):
    owner: dict[int, str] = {}
    for field in isa.FORMATS[fmt]:
        assert field.hi >= field.lo, field
        for bit in range(field.lo, field.hi + 1):
            assert bit not in owner, f"{fmt}: bit {bit} in both {owner[bit]} and {field.name}"
            owner[bit] = field.name
    assert sorted(owner) == list(range(64)), f"{fmt}: bits not covered: {set(range(64)) - set(owner)}"


@pytest.mark.parametrize("fmt", sorted(isa.FORMATS))
def test_field_names_unique(fmt):
    names = [f.name for f in isa.FORMATS[fmt]]
    assert len(names) == len(set(names))


def _field(fmt: str, name: str) -> isa.Field:
    return next(f for f in isa.FORMATS[fmt] if f.name == name)


@pytest.mark.parametrize("table, fmt, field", [
    (isa.SIGNALS, "alu", "sig"), (isa.ADD_OPS, "alu", "op_add"), (isa.MUL_OPS, "alu", "op_mul"),
    (isa.CONDITIONS, "alu", "cond_add"), (isa.CONDITIONS, "alu", "cond_mul"), (isa.PACK_A, "alu", "pack"),
    (isa.PACK_MUL, "alu", "pack"), (isa.UNPACK, "alu", "unpack"), (isa.BRANCH_CONDITIONS, "branch", "cond_br"),
    (isa.SMALL_IMM_BITS, "alu", "raddr_b"),
])
def test_every_code_fits_its_field(table, fmt, field):
    assert len(table) <= _field(fmt, field).mask + 1


def test_op_rows_are_consistent():
    """One row per mnemonic; each property makes sense for the ALUs the row names."""
    assert len(isa.OP_BY_NAME) == len(isa.OPS)
    for op in isa.OPS:
        assert op.add is not None or op.mul is not None, op
        assert op.add is None or 0 <= op.add <= _field("alu", "op_add").mask, op
        assert op.mul is None or 0 <= op.mul <= _field("alu", "op_mul").mask, op
        assert not op.unary or op.add is not None and op.mul is None, f"{op.name}: unary ops are ADD ops"
        assert not op.mul_first or op.add is not None and op.mul is not None, f"{op.name}: mul_first needs both ALUs"
        assert op.overflow in ("", "add", "sub") and (not op.overflow or op.add is not None), op
    # The canonical moves are ops of their ALU.
    assert isa.OP_BY_NAME[isa.MOV_ADD_OP].add is not None and isa.OP_BY_NAME[isa.MOV_MUL_OP].mul is not None


def test_codes_fit_and_names_unique_per_space():
    spaces = {
        "signal": isa.SIGNAL_CODES, "add": isa.ADD_OP_CODES, "mul": isa.MUL_OP_CODES,
        "cond": isa.CONDITION_CODES, "branch cond": isa.BRANCH_CONDITION_CODES, "pack A": isa.PACK_A_CODES,
        "pack MUL": isa.PACK_MUL_CODES, "unpack": isa.UNPACK_CODES, "ldi": isa.LDI_MODE_CODES,
    }
    for space, table in spaces.items():
        assert len(set(table.values())) == len(table), space
    assert not set(isa.PACK_A_CODES) & set(isa.PACK_MUL_CODES), "a pack name would be ambiguous"
    for code in list(isa.LDI_MODES) + [isa.LDI_MODE_SEMAPHORE]:
        assert code <= isa.LDI_MODE.mask
    for row in isa.IO_REGISTERS:
        assert 0 <= row.addr < 64 and row.spaces <= {isa.RA, isa.RB, isa.WA, isa.WB}, row


def test_register_names_unique_per_space_and_address():
    seen: dict[tuple[str, str], int] = {}
    for row in isa.IO_REGISTERS:
        for space in row.spaces:
            key = (space, row.name)
            assert seen.setdefault(key, row.addr) == row.addr, f"{row.name} names two addresses in {space}"
    # Every register name resolves to one operand.
    assert REGISTERS["vr_setup"].write_map == {"a": 49} and REGISTERS["vw_setup"].write_map == {"b": 49}
    assert REGISTERS["unif"].read_map == {"a": 32, "b": 32}


def test_small_immediate_table():
    """§8: codes 0..15 = 0..15, 16..31 = -16..-1, 32..39 = 1.0..128.0, 40..47 = 1/256..1/2, 48..63 = -16..-1."""
    import struct
    for code in range(16):
        assert isa.SMALL_IMM_BITS[code] == code
    for code in range(16, 32):
        assert isa.SMALL_IMM_BITS[code] == (code - 32) & 0xFFFFFFFF
    floats = [2.0 ** n for n in range(8)] + [2.0 ** n for n in range(-8, 0)]
    for code, value in zip(range(32, 48), floats, strict=True):
        assert isa.SMALL_IMM_BITS[code] == struct.unpack("<I", struct.pack("<f", value))[0]
    for code in range(48, 64):
        assert isa.SMALL_IMM_BITS[code] == (code - 64) & 0xFFFFFFFF


def test_condition_columns_agree_with_the_names():
    """The condition tables' columns (what the simulator and the checker read) say what each name says:
    a suffix z, n or c passes where that flag is set; nz, nn, cc where it is clear; all* needs every lane."""
    def reads(suffix: str) -> tuple[str, int]:
        return (suffix, 1) if len(suffix) == 1 else (suffix[-1], 0)

    for name, test in zip(isa.CONDITIONS, isa.CONDITION_TESTS, strict=True):
        assert test == ((None, int(name == "")) if name in ("never", "") else reads(name[2:])), name
    for name, test in zip(isa.BRANCH_CONDITIONS, isa.BRANCH_TESTS, strict=True):
        if name is None:
            assert test is None
        else:
            assert test == ((None, 1, True) if name == "" else (*reads(name[3:]), name.startswith("all"))), name
