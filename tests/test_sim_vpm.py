"""VPM generic reads and writes in every layout, and VDR/VDW DMA, as QPU programs. Expected values are
computed here from the access patterns of semantics.md §8.3 and §8.5."""

from __future__ import annotations

import pytest

import qpuasm
from qpuasm import builtins as b
from simulator.machine import run_program

SOURCE_AT, OUT_AT = 0x10000, 0x20000
END = "    nop; nop; thrend\n    nop\n    nop\n"


def word(row: int, column: int) -> int:
    """The test pattern loaded into VPM row `row`, column `column` (distinct bytes everywhere)."""
    return (row << 24 | column << 16 | (row * 16 + column)) ^ 0x80402010


def memory_block() -> dict[int, int]:
    return {SOURCE_AT + 4 * (16 * r + k): word(r, k) for r in range(64) for k in range(16)}


LOAD_VPM = "".join(
    f"    mov vr_setup, vdr_setup_0(0, 16, 16, vdr_h32(1, {16 * block}, 0))\n"
    f"    mov vr_setup, vdr_setup_1(64)\n"
    f"    mov vr_addr, {SOURCE_AT + 1024 * block:#x}\n"
    "    mov -, vr_wait\n" for block in range(4))


def run_reads(setups: list[int]) -> list[list[int]]:
    """Fill the VPM (all 64 rows), read one vector per setup, store them as rows 0.. at OUT_AT."""
    body = LOAD_VPM
    for index, setup in enumerate(setups):
        body += f"    mov vr_setup, {setup:#x}\n    nop\n    nop\n    mov ra{index}, vpm\n"
    body += "    mov vw_setup, vpm_setup(1, 1, h32(0))\n"
    for index in range(len(setups)):
        body += f"    mov vpm, ra{index}\n"
    body += f"    mov vw_setup, vdw_setup_0({len(setups)}, 16, dma_h32(0, 0))\n"
    body += f"    mov vw_addr, {OUT_AT:#x}\n    mov -, vw_wait\n" + END
    v3d, _ = run_program(qpuasm.assemble(body).words, memory=memory_block())
    return [[v3d.memory.read32(OUT_AT + 64 * r + 4 * i) for i in range(16)] for r in range(len(setups))]


def half(value: int, h: int) -> int:
    return (value >> (16 * h)) & 0xFFFF


def byte(value: int, n: int) -> int:
    return (value >> (8 * n)) & 0xFF


# (setup address word, expected lane values) per layout of §8.3.
READ_CASES = [
    ("h32 row 5", b.h32(5), [word(5, i) for i in range(16)]),
    ("v32 rows 16.. column 3", b.v32(16, 3), [word(16 + i, 3) for i in range(16)]),
    ("h16 laned row 7 half 1", b.h16l(7, 1), [half(word(7, i), 1) for i in range(16)]),
    ("h16 packed row 7 half 1", b.h16p(7, 1), [half(word(7, 8 + i // 2), i % 2) for i in range(16)]),
    ("h8 laned row 9 byte 2", b.h8l(9, 2), [byte(word(9, i), 2) for i in range(16)]),
    ("h8 packed row 9 byte 3", b.h8p(9, 3), [byte(word(9, 12 + i // 4), i % 4) for i in range(16)]),
    ("v16 laned rows 32.. column 4 half 1", 0x500 | (32 | 4) << 1 | 1, [half(word(32 + i, 4), 1) for i in range(16)]),
    ("v16 packed rows 48.. column 2 half 0", 0x100 | (48 | 2) << 1, [half(word(48 + i // 2, 2), i % 2)
                                                                      for i in range(16)]),
    ("v8 laned rows 0.. column 6 byte 1", 0x400 | (0 | 6) << 2 | 1, [byte(word(i, 6), 1) for i in range(16)]),
    ("v8 packed rows 16.. column 1 byte 2", (16 | 1) << 2 | 2, [byte(word(16 + 8 + i // 4, 1), i % 4)
                                                                for i in range(16)]),
]


@pytest.mark.parametrize("name, address, expected", READ_CASES, ids=[c[0] for c in READ_CASES])
def test_generic_read_layouts(name, address, expected):
    (got,) = run_reads([b.vpm_setup(1, 1, address)])
    assert got == expected


def test_read_stride_and_wrap_past_row_63():
    setup = b.vpm_setup(3, 2, b.h32(62))        # rows 62, 0 (wrapped), 2
    body = LOAD_VPM + f"    mov vr_setup, {setup:#x}\n    nop\n    nop\n"
    body += "    mov ra0, vpm\n    mov ra1, vpm\n    mov ra2, vpm\n"
    body += "    mov vw_setup, vpm_setup(1, 1, h32(10))\n    mov vpm, ra0\n    mov vpm, ra1\n    mov vpm, ra2\n"
    body += f"    mov vw_setup, vdw_setup_0(3, 16, dma_h32(10, 0))\n    mov vw_addr, {OUT_AT:#x}\n"
    body += "    mov -, vw_wait\n" + END
    v3d, _ = run_program(qpuasm.assemble(body).words, memory=memory_block())
    for r, row in enumerate((62, 0, 2)):
        assert [v3d.memory.read32(OUT_AT + 64 * r + 4 * i) for i in range(16)] == [word(row, i) for i in range(16)]


def test_generic_writes_in_8_and_16_bit_layouts():
    body = "    mov r1, elem_num\n    add r1, r1, 15\n"       # lanes hold 15 + lane (fits a byte)
    body += "    mov vw_setup, vpm_setup(1, 1, h32(0))\n    mov vpm, 0\n    mov vpm, 0\n"
    body += f"    mov vw_setup, vpm_setup(1, 1, {b.h16l(0, 1):#x})\n    mov vpm, r1\n"      # row 0, high halves
    body += f"    mov vw_setup, vpm_setup(1, 1, {b.h8p(1, 2):#x})\n    mov vpm, r1\n"      # row 1, words 8..11
    body += f"    mov vw_setup, vdw_setup_0(2, 16, dma_h32(0, 0))\n    mov vw_addr, {OUT_AT:#x}\n"
    body += "    mov -, vw_wait\n" + END
    v3d, _ = run_program(qpuasm.assemble(body).words)
    row0 = [v3d.memory.read32(OUT_AT + 4 * i) for i in range(16)]
    row1 = [v3d.memory.read32(OUT_AT + 64 + 4 * i) for i in range(16)]
    assert row0 == [(15 + i) << 16 for i in range(16)]
    expected = [0] * 16
    for lane in range(16):
        expected[8 + lane // 4] |= (15 + lane) << (8 * (lane % 4))
    assert row1 == expected


def test_vdw_units_depth_stride_offset_and_16_bit_mode():
    body = LOAD_VPM
    # 3 memory rows of 5 words from VPM rows 4.. column 2, with 8 bytes between rows.
    body += "    mov vw_setup, vdw_setup_0(3, 5, dma_h32(4, 2))\n    mov vw_setup, vdw_setup_1(8)\n"
    body += f"    mov vw_addr, {OUT_AT:#x}\n    mov -, vw_wait\n"
    # 4 half-words from VPM row 6, starting at half 1 of column 3: MODEW 3 = 16-bit, half 1.
    body += "    mov vw_setup, vdw_setup_0(1, 4, dma_h16p(6, 3, 1))\n    mov vw_setup, vdw_setup_1(0)\n"
    body += f"    mov vw_addr, {OUT_AT + 0x400:#x}\n    mov -, vw_wait\n"
    # Vertical: 2 memory rows of 4 words from VPM columns 5 and 6, rows 20..23.
    body += "    mov vw_setup, vdw_setup_0(2, 4, dma_v32(20, 5))\n"
    body += f"    mov vw_addr, {OUT_AT + 0x800:#x}\n    mov -, vw_wait\n" + END
    v3d, _ = run_program(qpuasm.assemble(body).words, memory=memory_block())
    read = v3d.memory.read32
    for r in range(3):
        assert [read(OUT_AT + r * 28 + 4 * k) for k in range(5)] == [word(4 + r, 2 + k) for k in range(5)]
    halves = [v3d.memory.read_bytes(OUT_AT + 0x400 + 2 * k, 2) for k in range(4)]
    assert halves == [half(word(6, 3 + (1 + k) // 2), (1 + k) % 2) for k in range(4)]
    for r in range(2):
        assert [read(OUT_AT + 0x800 + 16 * r + 4 * k) for k in range(4)] == [word(20 + k, 5 + r) for k in range(4)]


def test_vdr_pitch_vpitch_and_rowlen():
    # 4 memory rows of 3 words, 32 bytes apart (MPITCH 2), into every second VPM row from row 8, column 5.
    body = f"    mov vr_setup, vdr_setup_0(2, 3, 4, vdr_h32(2, 8, 5))\n    mov vr_addr, {SOURCE_AT:#x}\n"
    body += "    mov -, vr_wait\n"
    body += "    mov vr_setup, vpm_setup(7, 1, h32(8))\n    nop\n    nop\n"
    body += "".join(f"    mov ra{r}, vpm\n" for r in range(7))
    body += "    mov vw_setup, vpm_setup(1, 1, h32(40))\n" + "".join(f"    mov vpm, ra{r}\n" for r in range(7))
    body += f"    mov vw_setup, vdw_setup_0(7, 16, dma_h32(40, 0))\n    mov vw_addr, {OUT_AT:#x}\n"
    body += "    mov -, vw_wait\n" + END
    v3d, _ = run_program(qpuasm.assemble(body).words, memory=memory_block())
    rows = [[v3d.memory.read32(OUT_AT + 64 * r + 4 * i) for i in range(16)] for r in range(7)]
    flat = [word(r, k) for r in range(64) for k in range(16)]
    for r in range(4):
        # memory row r starts 32 bytes (8 words) after the previous one
        assert rows[2 * r][5:8] == flat[8 * r: 8 * r + 3]
    assert rows[1] == [0] * 16      # rows between were not written (the VPM starts zeroed)
