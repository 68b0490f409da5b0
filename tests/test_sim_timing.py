"""The timing model (modeled, not measured): instruction issue, TMU latency by cache level, DMA
bandwidth shared by all QPUs, semaphore waits, and the report. Expected figures come from the
parameter table in simulator/timing.py."""

from __future__ import annotations

import qpuasm
from simulator.machine import run_program
from simulator.timing import PARAMETERS, param

END = "nop; nop; thrend\nnop\nnop\n"
CPI = int(param("cycles_per_instruction"))


def run(source: str, qpus: int = 1, **kw):
    v3d, states = run_program(qpuasm.assemble(source).words, qpus=qpus, **kw)
    return v3d.report, states


def test_every_parameter_has_a_source():
    for name, parameter in PARAMETERS.items():
        assert parameter.value > 0 and parameter.unit and len(parameter.source) > 20, name


def test_one_instruction_per_four_clocks():
    report, _ = run("mov r0, 1\n" * 10 + END)
    assert report.cycles == 13 * CPI
    assert report.per_qpu[0].busy_cycles == 13 * CPI and sum(report.per_qpu[0].stall_cycles.values()) == 0
    assert report.seconds() == report.cycles / 250e6
    assert report.seconds(clock_hz=400e6) == report.cycles / 400e6


def test_tmu_latency_by_cache_level():
    source = "mov r1, 0x3000\nmov t0s, r1\nnop; ldtmu0\nmov t0s, r1\nnop; ldtmu0\n" + END
    report, _ = run(source)
    # First lookup: all 16 lanes read one line from memory; the second hits the TMU cache.
    # Each ldtmu comes one instruction after its request, so it waits for latency - 4 clocks.
    expected = (param("memory") - CPI) + (param("tmu_hit") - CPI)
    assert report.per_qpu[0].stall_cycles["tmu"] == expected
    assert report.counters["TMU_TOTAL_TEXTURE_CACHE_MISSES"] == 1
    assert report.counters["TMU_TOTAL_TEXTURE_CACHE_HITS"] == 31
    assert report.counters["L2C_TOTAL_L2_CACHE_MISSES"] == 1


STORE = """
mov vw_setup, vpm_setup(1, 1, h32(0))
mov vw_setup, vdw_setup_0(16, 16, dma_h32(0, 0))
mov r1, 0x4000
mov vw_addr, r1
mov -, vw_wait
""" + END


def test_dma_time_and_the_shared_engine():
    report, _ = run(STORE)
    transfer = param("dma_latency") + 1024 / param("vdw_bytes_per_clock")
    assert report.per_qpu[0].stall_cycles["dma"] == int(3 * CPI + transfer) - 4 * CPI
    # Two QPUs storing at the same time: the second transfer starts when the first ends.
    report2, _ = run(STORE, qpus=2)
    assert report2.per_qpu[1].stall_cycles["dma"] >= report.per_qpu[0].stall_cycles["dma"] + 1024 / param(
        "vdw_bytes_per_clock") - CPI


def test_semaphore_wait_is_a_stall():
    source = """
    mov r0, qpu_num
    sub.setf -, r0, 0
    brr.anynz -, r:1f
    nop
    nop
    nop
""" + "    mov r1, 1\n" * 40 + """
    mov -, srel(3)
    brr -, r:2f
    nop
    nop
    nop
:1
    mov -, sacq(3)
:2
""" + END
    report, _ = run(source, qpus=2)
    waited = report.per_qpu[1].stall_cycles["semaphore"]
    assert 30 * CPI <= waited <= 45 * CPI          # QPU 1 waits while QPU 0 runs its 40 instructions
    assert report.cycles == max(q.end_cycle for q in report.per_qpu)
