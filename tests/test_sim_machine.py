"""Control flow, load immediates, r5, uniforms and synchronisation on the simulator, as programs."""

from __future__ import annotations

import pytest

import qpuasm
from qpuasm import isa
from simulator.machine import SimulationError, SimulationWarning, run_program

from .test_sim_alu import LOAD, run, store

END = "    nop; nop; thrend\n    nop\n    nop\n"


def lanes_of(source: str, rows: int = 1) -> list[list[int]]:
    return run(LOAD + source, [0] * 16, [0] * 16, rows)


# Flags per lane after `sub.setf -, elem_num, 8`: Z only in lane 8, N in lanes 0..7, C (borrow) in 0..7.
BRANCH_CASES = {
    "allz": False, "allnz": False, "anyz": True, "anynz": True, "alln": False, "allnn": False,
    "anyn": True, "anynn": True, "allc": False, "allcc": False, "anyc": True, "anycc": True, "": True,
}


@pytest.mark.parametrize("cond, taken", BRANCH_CASES.items())
def test_branch_conditions_delay_slots_and_link(cond, taken):
    suffix = "." + cond if cond else ""
    source = f"""
    mov r3, 0
    mov ra1, 0
    sub.setf -, elem_num, 8
    brr{suffix} ra1, r:target
    add r3, r3, 1
    add r3, r3, 2
    add r3, r3, 4
    add r3, r3, 8           # skipped when taken
:target
    add r3, r3, 1
    mov r2, ra1
""" + store(["r3", "r2"])
    marks, link = lanes_of(source, 2)
    assert marks == [8 if taken else 16] * 16     # 3 delay slots always run
    # The link (branch address + 32) is written only when the branch is taken (qpu-isa.md §14).
    branch_at = 0x1000 + 8 * (LOAD.count("\n") - 1 + 3)
    assert link == ([branch_at + 32] * 16 if taken else [0] * 16)


def test_register_branch_takes_lane_15_and_program_end_has_two_slots():
    source = """
    mov r3, 0
    shl r0, elem_num, 3          # lane i holds 8*i: lane 15 gives 120 = 15 instructions
    mov ra2, r0
    nop
    bra -, ra2, 0x1050           # code starts at 0x1000: lane 15 lands on instruction 10 + 15 = 25
    nop
    nop
    nop
""" + "    add r3, r3, 1\n" * 40
    (marks,) = lanes_of(source + store(["r3"]))
    first_add = LOAD.count("\n") - 1 + 8           # LOAD, 4 setup instructions, branch + 3 slots
    assert marks == [40 - (25 - first_add)] * 16      # lane 0 (offset 0) would loop back instead
    # thrend: the two following instructions run, then the QPU stops
    (marks,) = lanes_of("    mov r3, 1\n" + store(["r3"]).replace("    nop; nop; thrend\n    nop\n    nop\n",
                                                                       "    nop; nop; thrend\n    nop\n    nop\n"))
    assert marks == [1] * 16


def test_load_immediates_and_r5():
    source = """
    mov r0, 0x12345678
    ldi r1, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]
    ldi r2, [0, 1, -2, -1, 0, 1, -2, -1, 0, 1, -2, -1, 0, 1, -2, -1]
    mov r5quad, elem_num
    mov r3, r5
    mov r5rep, elem_num
    mov ra1, r5
    nop
""" + store(["r0", "r1", "r2", "r3", "ra1"])
    r0, r1, r2, quad, rep = lanes_of(source, 5)
    assert r0 == [0x12345678] * 16
    assert r1 == [0, 1, 2, 3] * 4
    assert r2 == [0, 1, 0xFFFFFFFE, 0xFFFFFFFF] * 4
    assert quad == [4 * (i // 4) for i in range(16)]    # A-space r5 write: lane 4q per quad (§11)
    assert rep == [0] * 16                              # B-space: lane 0 everywhere


def test_conditional_flag_update_and_flags_from_mul_when_add_is_nop():
    source = """
    and.setf -, elem_num, 1          # Z in even lanes
    mov.ifz.setf -, 0x80000000       # ldi: only even lanes update their flags: N there
    mov r3, 0
    add.ifn r3, r3, 1
    nop; v8min.setf -, elem_num, elem_num   # ADD op is nop: flags from the MUL result
    add.ifz r3, r3, 2
""" + store(["r3"])
    (marks,) = lanes_of(source)
    assert marks == [1 + 2 if i == 0 else (1 if i % 2 == 0 else 0) for i in range(16)]


def _multi(source: str, qpus: int, uniforms=()):
    program = qpuasm.assemble(source)
    return run_program(program.words, uniforms=uniforms, qpus=qpus)


def test_semaphores_order_qpus_and_host_interrupts_count():
    # QPU 0 waits for the other three to release semaphore 0, then raises one interrupt per QPU.
    source = """
    mov r0, qpu_num
    sub.setf -, r0, 0
    brr.allnz -, r:worker
    nop
    nop
    nop
    mov -, sacq(0)
    mov -, sacq(0)
    mov -, sacq(0)
    mov r1, unif
    mov t0s, r1
    nop; ldtmu0
    mov irq, r4
    brr -, r:done
    nop
    nop
    nop
:worker
    mov -, srel(0)
    mov r1, unif
    mov irq, 1
:done
    nop; nop; thrend
    nop
    nop
"""
    v3d, states = _multi(source, 4, uniforms=[0x3000])
    v3d.memory.write32(0x3000, 1)
    assert all(not s.running for s in states)
    assert v3d.host_interrupts == 3      # workers raise one each; QPU 0 wrote memory's 0: nothing
    assert v3d.semaphores[0] == 0


def test_deadlock_is_reported_with_each_qpu_position():
    with pytest.raises(SimulationError, match=r"deadlock: every running QPU is blocked: QPU0 at 0x1000 \(semaphore\), "
                                              r"QPU1 at 0x1000 \(semaphore\)"):
        _multi("    mov -, sacq(5)\n" + END, 2)


def test_mutex_serialises_qpus():
    # Read-modify-write of a counter under the mutex. The read is a VDR DMA load: a TMU read could
    # hit a cache line another QPU filled before its VDW store (strict mode reports that).
    source = """
    mov -, mutex
    mov r0, unif
    mov vr_setup, vdr_setup_0(0, 1, 1, vdr_h32(1, 0, 0))
    mov vr_addr, r0
    mov -, vr_wait
    mov vr_setup, vpm_setup(1, 1, h32(0))
    nop
    nop
    mov r1, vpm
    add r1, r1, 1
    mov vw_setup, vpm_setup(1, 1, h32(0))
    mov vpm, r1
    mov vw_setup, vdw_setup_0(1, 1, dma_h32(0, 0))
    mov vw_addr, r0
    mov -, vw_wait
    mov mutex, 0
""" + END
    program = qpuasm.assemble(source)
    v3d, _ = run_program(program.words, uniforms=[0x3000], qpus=12)
    assert v3d.memory.read32(0x3000) == 12       # each QPU read-modify-wrote the counter in turn


def test_uniforms_address_write_restarts_the_stream():
    source = """
    mov r1, unif              # 0x3000
    mov r2, unif              # 7
    mov unif_addr, r1
    nop
    nop
    mov r3, unif              # reads 0x3000's word again... from memory at 0x3000
""" + END
    program = qpuasm.assemble(source)
    v3d, states = run_program(program.words, uniforms=[0x3000, 7], memory={0x3000: 99})
    assert states[0].acc[3] == [99] * 16


def test_unsupported_or_reserved_is_loud():
    with pytest.raises(SimulationError, match="reserved ADD opcode"):
        run_program([0x10020827_09000000 | isa.ADD_OP_CODES["nop"]])


STALE = """
    mov r0, unif
    mov t0s, r0
    nop; ldtmu0
    mov r1, 7
    mov vw_setup, vpm_setup(1, 1, h32(0))
    mov vpm, r1
    mov vw_setup, vdw_setup_0(1, 1, dma_h32(0, 0))
    mov vw_addr, r0                 # memory now holds 7, the TMU cache line still holds 5
    mov -, vw_wait
    mov t0s, r0
    nop; ldtmu0
    mov r2, r4
""" + END


def test_stale_tmu_read_after_vdw_store_is_reported():
    program = qpuasm.assemble(STALE)
    with pytest.raises(SimulationError, match=r"QPU0 at 0x1048 \[mov t0s, r0\]: lane 0 reads 0x00003000 through a "
                                              r"TMU/L2 cache line filled before memory changed"):
        run_program(program.words, uniforms=[0x3000], memory={0x3000: 5})
    with pytest.warns(SimulationWarning, match="stale cache"):
        v3d, states = run_program(program.words, uniforms=[0x3000], memory={0x3000: 5}, strict=False)
    assert states[0].acc[2][0] == 5 and v3d.memory.read32(0x3000) == 7   # the hardware's stale answer


def test_a_line_not_cached_reads_fresh_data():
    program = qpuasm.assemble(STALE.replace("    mov t0s, r0\n    nop; ldtmu0\n    mov r2, r4",
                                            "    mov r3, 64\n    add t0s, r0, r3\n    nop; ldtmu0\n    mov r2, r4"))
    v3d, states = run_program(program.words, uniforms=[0x3000], memory={0x3000: 5, 0x3040: 9})
    assert states[0].acc[2][0] == 9


RACY = """
    mov r0, unif
    mov vr_setup, vdr_setup_0(0, 1, 1, vdr_h32(1, 0, 0))
    mov vr_addr, r0
    mov -, vr_wait
    mov vr_setup, vpm_setup(1, 1, h32(0))
    nop
    nop
    mov r1, vpm
    add r1, r1, 1
    mov vw_setup, vpm_setup(1, 1, h32(0))
    mov vpm, r1
    mov vw_setup, vdw_setup_0(1, 1, dma_h32(0, 0))
    mov vw_addr, r0
    mov -, vw_wait
""" + END


def test_runs_are_deterministic_and_seeds_expose_races():
    """The counter update above has no mutex: the VPM is shared, so concurrent QPUs lose updates."""
    words = qpuasm.assemble(RACY).words

    def count(seed=None):
        v3d, _ = run_program(words, uniforms=[0x3000], qpus=6, seed=seed)
        return v3d.memory.read32(0x3000)

    assert count() == count()
    assert len({count(seed) for seed in range(12)}) >= 2


@pytest.mark.parametrize("mode, values", [
    ("ldipeu", [0, 1, 2, 3] * 4), ("ldipes", [0, 1, -2, -1, 1, 1, -2, 0, -1, -1, 0, 1, -2, 0, 1, -2])])
def test_a_per_element_load_immediate_gives_each_lane_its_value(mode, values):
    """The §12 layout (isa.per_element_value, shared by encoder, disassembler and core) end to end."""
    program = qpuasm.assemble(f"{mode} r1, [{', '.join(map(str, values))}]\nnop; thrend\nnop\nnop\n")
    _, states = run_program(program.words)
    assert states[0].acc[1] == [v & 0xFFFFFFFF for v in values]
