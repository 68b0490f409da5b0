"""What foreign programs that passed on a Pi showed about the hardware (py-videocore's suite, asurati/x03's
measurements), each as a program of our own that would have caught the simulator's old behaviour."""

from __future__ import annotations

import numpy as np
import pytest

import qpuasm
from simulator.machine import V3D, SimulationError, SimulationWarning, run_program

END = "nop; nop; thrend\nnop\nnop\n"
PY_VIDEOCORE_NOP = 0x10020827_009E7000      # op nop on both ALUs, ADD waddr r0, cond always


def _words(source: str) -> list[int]:
    return [int(w) for w in qpuasm.assemble(source, check=False).words]


def test_add_nop_naming_a_destination_writes_nothing():
    """semantics.md §4.3: py-videocore's nop() names r0 and its tests keep r0 live across it."""
    words = _words("mov r0, 5\n") + [PY_VIDEOCORE_NOP] + _words("mov ra1, r0\nnop\n" + END)
    _, states = run_program(words)
    assert states[0].ra[1] == [5] * 16


def test_mul_nop_naming_a_destination_is_unmeasured():
    # nop; nop ra2 (MUL op nop, waddr_mul 2, cond always)
    source = "mov ra2, 7\nnop\nnop; nop.always ra2, r0, r0\nnop\nmov r1, ra2\n" + END
    with pytest.raises(SimulationError, match=r"MUL nop names the destination .*semantics.md §4.3"):
        run_program(_words(source))
    with pytest.warns(SimulationWarning):
        _, states = run_program(_words(source), strict=False)
    assert states[0].acc[1] == [7] * 16                   # policy: it writes nothing


def _run_dma(source: str, memory: dict[int, int], strict: bool = True) -> V3D:
    v3d, _ = run_program(_words(source + END), memory_size=1 << 21, memory=memory, strict=strict)
    return v3d


def _read(v3d: V3D, address: int, count: int) -> np.ndarray:
    return np.array([v3d.memory.read32(address + 4 * i) for i in range(count)])


SOURCE, TARGET = 0x10000, 0x40000
STORE_64_ROWS = ("mov vw_setup, vdw_setup_0(64, 16, dma_h32(0, 0))\nldi vw_addr, 0x40000\nmov -, vw_wait\n")


def test_vertical_vdr_load_keeps_the_column_and_steps_down_it():
    """semantics.md §8.5, measured (asurati/x03 demo/d2.c): setup 0x8304080f loads 4 memory rows of
    16 words into VPM column X = 15, row r at VPM rows 16r..16r+15 (VPITCH 16 adds to Y)."""
    memory = {SOURCE + 4 * i: 1000 + i for i in range(64)}
    v3d = _run_dma("ldi vr_setup, 0x8304080f\nldi vr_addr, 0x10000\nmov -, vr_wait\n" + STORE_64_ROWS, memory)
    vpm = _read(v3d, TARGET, 64 * 16).reshape(64, 16)
    assert list(vpm[:, 15]) == [1000 + i for i in range(64)]
    assert not vpm[:, :15].any()


def test_vertical_vdw_store_moves_along_x_and_wraps_into_y():
    """semantics.md §8.5: VDW vertical memory row r comes from VPM column X + r; past column 15 the
    column wraps to 0 and Y advances by 16."""
    memory = {SOURCE + 4 * i: i for i in range(64 * 16)}
    load = "ldi vr_setup, 0x80000000 | 3 << 24 | 0 << 20 | 0 << 16 | 1 << 12\nldi vr_addr, 0x10000\nmov -, vr_wait\n"
    load += "ldi vr_setup, 0x80000000 | 3 << 24 | 0 << 20 | 0 << 16 | 1 << 12 | 16 << 4\n"
    load += "ldi vr_addr, 0x10000 + 16 * 64\nmov -, vr_wait\n"          # VPM rows 0..31 = words 0..511
    # vertical store: 4 memory rows of 8 words from X = 14, Y = 0
    store = "ldi vw_setup, 0x80000000 | 4 << 23 | 8 << 16 | 0 << 14 | 0 << 7 | 14 << 3\n"
    store += "ldi vw_addr, 0x40000\nmov -, vw_wait\n"
    v3d = _run_dma(load + store, memory)
    rows = _read(v3d, TARGET, 32).reshape(4, 8)
    vpm = np.arange(32 * 16).reshape(32, 16)
    assert list(rows[0]) == list(vpm[0:8, 14]) and list(rows[1]) == list(vpm[0:8, 15])
    assert list(rows[2]) == list(vpm[16:24, 0]) and list(rows[3]) == list(vpm[16:24, 1])


def test_vdr_extended_pitch_beyond_the_guides_13_bits():
    """semantics.md §8.5: py-videocore's SGEMM loads C with a 12,288-byte pitch and is right on a Pi:
    the simulator takes bits 15:0 and strict mode reports the undocumented width."""
    pitch = 12288
    memory = {SOURCE + r * pitch + 4 * k: 100 * r + k for r in range(2) for k in range(16)}
    source = (f"ldi vr_setup, 0x90000000 | {pitch}\nldi vr_setup, 0x80000000 | 2 << 16 | 1 << 12\n"
              "ldi vr_addr, 0x10000\nmov -, vr_wait\n"
              "mov vw_setup, vdw_setup_0(2, 16, dma_h32(0, 0))\nldi vw_addr, 0x40000\nmov -, vw_wait\n")
    with pytest.raises(SimulationError, match="extended pitch of 12288 bytes"):
        _run_dma(source, memory)
    with pytest.warns(SimulationWarning):
        v3d = _run_dma(source, memory, strict=False)
    assert list(_read(v3d, TARGET, 32)) == [100 * r + k for r in range(2) for k in range(16)]


def test_vertical_16_bit_dma_is_a_strict_mode_unknown():
    source = "ldi vr_setup, 0x80000000 | 2 << 28 | 4 << 24 | 1 << 16 | 1 << 11\nldi vr_addr, 0x10000\nmov -, vr_wait\n"
    with pytest.raises(SimulationError, match="vertical 8- or 16-bit VDR load"):
        _run_dma(source, {})


# ---- undefined values: reported where they matter, not where they are read ---------------------------

@pytest.mark.parametrize("body", [
    "mov r0, r0\nmov r0, r0\n",                             # py-videocore's exit(): the value is discarded
    "mov r1, r0\nadd r2, r1, 1\nmov r3, r2\n",              # flows through registers, never used
    "mov.setf r1, r0\nmov.ifz r2, 1\n",                     # undefined flags choose lanes of a register
    "mov r0, 1\nmov r1, r0\nmov t0s, r1\nnop; ldtmu0\n",     # defined before it is used
    "mov ra1, 3\nnop\nmov.setf -, ra1\nbrr.anyz -, r:next\nnop\nnop\nnop\n:next\n",
])
def test_undefined_values_that_never_matter_pass(body):
    run_program(_words(body + END), memory_size=1 << 20)


@pytest.mark.parametrize("body, where", [
    ("mov r1, r0\nmov t0s, r1\nnop; ldtmu0\n", "writes to t0s"),
    ("add r1, r0, 1\nmov vw_setup, vpm_setup(1, 1, h32(0))\nmov vpm, r1\n", "writes to vpm"),
    ("mov r2, 1\nfadd r1, r2, rb5\nmov recip, r1\nnop\nnop\n", "writes to recip"),
    ("mov.setf -, r3\nbrr.anyz -, r:next\nnop\nnop\nnop\n:next\n", "branches on flags"),
    ("mov r1, 2\nmov.setf -, r1\nmov.ifz ra2, r0\nnop\nmov unif_addr, ra2\n", None),   # Z clear: ra2 unwritten
    ("mov r0, 8\nmov.setf -, r5\nmov.ifnz r0, 0\nmov t0s, r0\nnop; ldtmu0\n", "writes to t0s"),
    ("mov r1, 1\nnop; mov r2, r3 >> 1\nmov vw_setup, vpm_setup(1, 1, h32(0))\nmov vpm, r2\n", "writes to vpm"),
])
def test_undefined_values_are_reported_where_they_matter(body, where):
    words = _words(body + END)
    with pytest.raises(SimulationError, match="nothing wrote") as caught:
        run_program(words, memory_size=1 << 20)
    if where:
        assert where in str(caught.value)
    with pytest.warns(SimulationWarning):
        run_program(words, memory_size=1 << 20, strict=False)


def test_instruction_cache_hits_count_one_per_instruction_executed():
    """The guide's QPU_TOTAL_INSTRUCTION_CACHE_HITS counts instructions whose line was there (imrc QI3),
    not lines: hits + misses = instructions executed."""
    source = "mov r1, 20\n:loop\nsub.setf r1, r1, 1\nbrr.anynz -, r:loop\nnop\nnop\nnop\n" + END
    v3d, states = run_program(_words(source))
    counters = v3d.report.counters
    executed = states[0].instructions
    assert executed == 1 + 20 * 5 + 3
    hits, misses = counters["QPU_TOTAL_INSTRUCTION_CACHE_HITS"], counters["QPU_TOTAL_INSTRUCTION_CACHE_MISSES"]
    assert hits + misses == executed and 1 <= misses <= 2
