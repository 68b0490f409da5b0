"""Every row of the hardware-measured ALU tables, reproduced by running assembled QPU programs on
the simulator: 16 operand pairs per run (one per lane), loaded with the TMU, results and flags
stored with the VPM and a VDW DMA store. Tables are read in place from ../shared/testvectors/vc4c_hw."""

from __future__ import annotations

import csv
from collections import defaultdict

import pytest

import qpuasm
from qpuasm import isa
from simulator.machine import run_program

from .conftest import shared_vector

A_AT, B_AT, OUT_AT = 0x10000, 0x10100, 0x20000
LOAD = """
    mov r0, unif
    mov r1, unif
    shl r2, elem_num, 2
    add t0s, r0, r2
    add t1s, r1, r2
    nop; ldtmu0
    mov r0, r4; ldtmu1
    mov r1, r4
"""


def store(rows: list[str]) -> str:
    """VPM rows 0.. <- the given registers, then one DMA store of them to the third uniform."""
    lines = [f"    mov vw_setup, vpm_setup({len(rows)}, 1, h32(0))"]
    lines += [f"    mov vpm, {r}" for r in rows]
    lines += [f"    mov vw_setup, vdw_setup_0({len(rows)}, 16, dma_h32(0, 0))",
              "    mov vw_addr, unif", "    mov -, vw_wait", "    nop; nop; thrend", "    nop", "    nop"]
    return "\n".join(lines) + "\n"


def run(source: str, a: list[int], b: list[int], rows: int, strict: bool = True) -> list[list[int]]:
    words = qpuasm.assemble(source).words
    memory = {A_AT + 4 * i: v for i, v in enumerate(a)} | {B_AT + 4 * i: v for i, v in enumerate(b)}
    v3d, _ = run_program(words, uniforms=[A_AT, B_AT, OUT_AT], memory=memory, strict=strict)
    return [[v3d.memory.read32(OUT_AT + 64 * r + 4 * i) for i in range(16)] for r in range(rows)]


def batches(rows: list[dict]):
    """Rows grouped by op, 16 at a time (padded by repeating the last row)."""
    by_op = defaultdict(list)
    for row in rows:
        by_op[row["op"]].append(row)
    for op, op_rows in by_op.items():
        for start in range(0, len(op_rows), 16):
            chunk = op_rows[start:start + 16]
            yield op, chunk + [chunk[-1]] * (16 - len(chunk))


def _table(name: str) -> list[dict]:
    with shared_vector("vc4c_hw", name).open() as f:
        return list(csv.DictReader(f))


FLAGS = "    mov r3, 0\n    add.ifz r3, r3, 1\n    add.ifn r3, r3, 2\n    add.ifc r3, r3, 4\n"


def _op_line(op: str, pack: str = "", dst: str = "r2") -> tuple[str, bool]:
    """The instruction computing `op r2, r0, r1` (ADD ALU with .setf if it exists there)."""
    unary = isa.OP_BY_NAME[op].unary
    operands = "r0" if unary else "r0, r1"
    if op in isa.ADD_OP_CODES:
        # `; nop` keeps ops that exist on both ALUs (v8adds, v8subs) on the ADD ALU
        return f"    {op}.setf {dst}{pack}, {operands}; nop\n", True
    return f"    nop; {op} {dst}{pack}, {operands}\n", False


def test_alu_ops_every_row():
    rows = _table("alu_ops.csv")
    assert len(rows) == 5460
    checked = 0
    for op, chunk in batches(rows):
        line, on_add = _op_line(op)
        # Flags only where the op sets them: reading flags nothing set is an undefined value (strict mode).
        result, flags = run(LOAD + line + (FLAGS if on_add else "    mov r3, 0\n") + store(["r2", "r3"]),
                            [int(r["in_a"], 16) for r in chunk], [int(r["in_b"], 16) for r in chunk], 2)
        for lane, row in enumerate(chunk):
            assert result[lane] == int(row["result"], 16), (op, row)
            if on_add:   # the table's flags are valid for ADD-ALU ops only
                want = row["flags_add_alu"]
                got = "".join(f for f, bit in (("z", 1), ("n", 2), ("c", 4)) if flags[lane] & bit)
                assert set(got) == set(want), (op, row, got)
        checked += 16
    assert checked >= 5460


def test_v8_ops_on_both_alus_agree():
    """v8adds/v8subs exist on both ALUs: the MUL versions give the same results as the table."""
    rows = [r for r in _table("alu_ops.csv") if r["op"] in ("v8adds", "v8subs")]
    for op, chunk in batches(rows):
        (result,) = run(LOAD + f"    nop; {op} r2, r0, r1\n" + store(["r2"]),
                        [int(r["in_a"], 16) for r in chunk], [int(r["in_b"], 16) for r in chunk], 1)
        assert result == [int(r["result"], 16) for r in chunk], op


def test_regfile_a_pack_every_column():
    rows = _table("alu_pack_regfileA.csv")
    columns = [c for c in rows[0] if c.startswith("pack")]
    for op, chunk in batches(rows):
        body = ""
        targets = []
        for index, column in enumerate(columns):
            code = int(column[4:].split("_")[0])
            register = f"ra{index + 1}"
            body += f"    mov {register}, 0\n"
            line, _ = _op_line(op, "." + isa.PACK_A[code], register)
            body += line.replace(".setf", "")
            targets.append(register)
        result = run(LOAD + body + "    nop\n" + store(targets),
                     [int(r["in_a"], 16) for r in chunk], [int(r["in_b"], 16) for r in chunk], len(targets))
        for index, column in enumerate(columns):
            assert result[index] == [int(r[column], 16) for r in chunk], (op, column)


def test_regfile_a_unpack_every_column():
    rows = _table("unpack_regfileA.csv")
    assert len(rows) == 15
    inputs = [int(r["input"], 16) for r in rows] + [int(rows[-1]["input"], 16)]
    columns = [c for c in rows[0] if c.startswith("unpack")]
    body = "    mov ra1, r0\n    nop\n"
    targets = []
    for index, column in enumerate(columns):
        code = int(column[len("unpack")])
        name = isa.UNPACK[code]
        # An integer consumer (or) and a float consumer that neither flushes nor rounds (fmax).
        op = "fmax" if "float" in column else "or"
        register = f"rb{index + 1}"
        body += f"    {op} {register}, ra1.{name}, ra1.{name}\n"
        targets.append(register)
    body += "    nop\n"
    result = run(LOAD + body + store(targets), inputs, inputs, len(targets))
    for index, column in enumerate(columns):
        assert result[index][:15] == [int(r[column], 16) for r in rows], column


@pytest.mark.parametrize("source, lanes", [
    ("mov r2, elem_num\n    nop\n    mov r0, r2 >> 1", [(i - 1) % 16 for i in range(16)]),
    ("mov r2, elem_num\n    nop\n    mov r0, r2 << 3", [(i + 3) % 16 for i in range(16)]),
    # A regfile-A operand rotates only within quads (qpu-isa.md §9).
    ("mov ra2, elem_num\n    nop\n    mov r0, ra2 >> 1", [(i & ~3) | ((i - 1) & 3) for i in range(16)]),
    ("mov r5rep, 5\n    mov r2, elem_num\n    nop\n    mov r0, r2 >> r5", [(i - 5) % 16 for i in range(16)]),
])
def test_rotation(source, lanes):
    (result,) = run(LOAD + f"    {source}\n" + store(["r0"]), [0] * 16, [0] * 16, 1)
    assert result == lanes


@pytest.mark.parametrize("table, unit", [(isa.ADD_OPS, "add"), (isa.MUL_OPS, "mul")])
def test_every_op_in_the_table_has_semantics(table, unit):
    """Issue 13: an op named in isa.py whose semantics alu.py lacks raises instead of acting as a nop.
    Run through the plain-Python path (the same source numba compiles)."""
    from simulator import alu

    function = getattr(alu, f"{unit}_op")
    plain = getattr(function, "py_func", function)
    for code, name in enumerate(table):
        if name is not None:
            result, carry = plain(code, 0x3F800000, 0x40000000)
            assert 0 <= result <= 0xFFFFFFFF and carry in (0, 1), name
    with pytest.raises(NotImplementedError, match=f"{unit.upper()} op of qpuasm.isa has no semantics"):
        plain(len(table), 1, 2)         # a code past the table's names: what a new row without semantics is
