"""The timing model (modeled, not measured): instruction issue, TMU latency by cache level, DMA
bandwidth shared by all QPUs, semaphore waits, and the report. Expected figures come from the
parameter table in vc4common/timing.py."""

from __future__ import annotations

import pytest

import qpuasm
from simulator.machine import run_program
from vc4common.timing import PARAMETERS, override, param

END = "nop; nop; thrend\nnop\nnop\n"
CPI = int(param("cycles_per_instruction"))


def run(source: str, qpus: int = 1, **kw):
    v3d, states = run_program(qpuasm.assemble(source).words, qpus=qpus, **kw)
    return v3d.report, states


def test_every_parameter_has_a_source():
    for name, parameter in PARAMETERS.items():
        assert parameter.value > 0 and parameter.unit and len(parameter.source) > 20, name


def test_a_benchmark_override_sets_one_parameter_and_refuses_unknown_names(monkeypatch):
    monkeypatch.setattr("vc4common.timing.PARAMETERS", dict(PARAMETERS))
    override("l2_hit=48")
    assert param("l2_hit") == 48.0 and param("tmu_hit") == PARAMETERS["tmu_hit"].value
    with pytest.raises(SystemExit, match="l2_hits=48: unknown timing parameter"):
        override("l2_hits=48")
    with pytest.raises(SystemExit, match="l2_hit=fast: the value must be a number"):
        override("l2_hit=fast")
    assert param("l2_hit") == 48.0


def test_one_instruction_per_four_clocks():
    report, _ = run("mov r0, 1\n" * 10 + END)
    stalls = report.per_qpu[0].stall_cycles
    # Cold code: the first line comes from memory; the prefetch hides the second (see below).
    assert stalls["icache"] == param("memory") and sum(stalls.values()) == stalls["icache"]
    assert report.per_qpu[0].busy_cycles == 13 * CPI
    assert report.cycles == 13 * CPI + stalls["icache"]
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
    # One line of data, plus the code's line and the lines prefetched after it (the instruction
    # cache fills through the L2 too); the icache counts one miss: the first instruction's.
    code_lines = 1 + int(param("icache_prefetch_lines"))
    assert report.counters["L2C_TOTAL_L2_CACHE_MISSES"] == 1 + code_lines
    assert report.counters["QPU_TOTAL_INSTRUCTION_CACHE_MISSES"] == 1


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
    # QPU 1 waits while QPU 0 runs its 40 instructions (fetching their code, cold lines, as QPU 1
    # fetches its own), so it ends just after QPU 0's release: 6 instructions after the srel where
    # QPU 0 has 9 more (a blocked QPU retries once per instruction time: within one CPI).
    first, second = report.per_qpu
    assert waited > 10 * CPI
    assert abs(second.end_cycle - (first.end_cycle - 3 * CPI)) <= CPI
    assert report.cycles == max(q.end_cycle for q in report.per_qpu)


def test_instruction_and_uniforms_caches_cold_then_warm():
    """Code and uniforms come through per-slice caches filled from the L2 (semantics.md §8.6, §10):
    a cold run waits for memory, a second run of the same program (caches kept) does not."""
    from simulator.machine import V3D
    source = "mov r0, unif\n" * 20 + "mov r1, 1\n" * 20 + END
    v3d = V3D(1 << 20, qpus=1)
    for i, word in enumerate(qpuasm.assemble(source).words):
        v3d.memory.write32(0x1000 + 8 * i, int(word) & 0xFFFFFFFF)
        v3d.memory.write32(0x1004 + 8 * i, int(word) >> 32)
    v3d.execute([(0x1000, 0x800)])
    cold = v3d.report
    stalls = cold.per_qpu[0].stall_cycles
    # The first line waits for memory; straight-line code outruns a 4-line prefetch (4 x 8
    # instructions take 128 clocks, a fill 400), so later lines wait too, less.
    assert param("memory") < stalls["icache"] < 6 * param("memory")
    # The first uniform waits for its line (the port is free by then); the second line's fill
    # started with the first's, 14 clocks behind it on the port, and 16 reads take 64 clocks.
    assert stalls["uniforms"] == param("memory")
    # Counters count reads (the guide's meaning): 20 uniforms read, the first a miss, the second
    # line prefetched (a prefetch counts neither); every instruction executed is an icache hit or miss.
    assert cold.counters["QPU_TOTAL_UNIFORMS_CACHE_MISSES"] == 1
    assert cold.counters["QPU_TOTAL_UNIFORMS_CACHE_HITS"] == 19
    executed = cold.per_qpu[0].instructions
    assert cold.counters["QPU_TOTAL_INSTRUCTION_CACHE_HITS"] + cold.counters[
        "QPU_TOTAL_INSTRUCTION_CACHE_MISSES"] == executed
    v3d.execute([(0x1000, 0x800)])
    warm = v3d.report
    assert warm.per_qpu[0].stall_cycles["icache"] == warm.per_qpu[0].stall_cycles["uniforms"] == 0
    assert warm.counters["QPU_TOTAL_INSTRUCTION_CACHE_MISSES"] == 0
    assert warm.cycles == warm.per_qpu[0].busy_cycles == 43 * CPI


def test_stale_uniform_is_reported():
    """A uniforms-cache line filled before memory changed returns the old word, as a TMU line does."""
    import pytest

    from simulator.machine import V3D, SimulationError
    v3d = V3D(1 << 20, qpus=1)
    for i, word in enumerate(qpuasm.assemble("mov r0, unif\n" + END).words):
        v3d.memory.write32(0x1000 + 8 * i, int(word) & 0xFFFFFFFF)
        v3d.memory.write32(0x1004 + 8 * i, int(word) >> 32)
    v3d.execute([(0x1000, 0x800)])
    v3d.memory.write32(0x800, 7)                            # the host changes the uniform, no cache clear
    with pytest.raises(SimulationError, match="uniforms-cache line filled before memory changed"):
        v3d.execute([(0x1000, 0x800)])


# The ports' bookings (qpu_io.transfer for a line fill, qpu_io.stream for a DMA transfer), as data:
# [(call, now, start, bytes, rate, returned)], then the bookings left, as [start, end) intervals.
PORT_CASES = [
    ("a fill on an idle port begins at once",
     [("transfer", 100, 100, 64, 8.0, 100)], [(100, 108)]),
    ("a DMA transfer queued to start later leaves the port free before it",
     [("stream", 100, 1000, 800, 8.0, 1100), ("transfer", 120, 120, 64, 8.0, 120)], [(120, 128), (1000, 1100)]),
    ("a fill that does not fit the gap before a booking goes after it",
     [("stream", 100, 120, 80, 8.0, 130), ("transfer", 115, 115, 64, 8.0, 130)], [(120, 138)]),
    ("a DMA transfer takes the gaps it finds, and merges with what it touches",
     [("transfer", 100, 100, 80, 8.0, 100), ("transfer", 100, 120, 80, 8.0, 120),
      ("stream", 100, 100, 240, 8.0, 150)], [(100, 150)]),
    ("bookings long over are forgotten",
     [("transfer", 100, 100, 64, 8.0, 100), ("transfer", 5000, 5000, 64, 8.0, 5000)], [(5000, 5008)]),
]


@pytest.mark.parametrize("calls, left", [case[1:] for case in PORT_CASES], ids=[case[0] for case in PORT_CASES])
def test_port_bookings(calls, left):
    import numpy as np

    from simulator import qpu_io, state

    m = np.zeros(state.MACHINE_SIZE, dtype=np.int64)
    for name, now, start, nbytes, rate, returned in calls:
        assert getattr(qpu_io, name)(m, state.BUS_PORT, now, start, nbytes, rate) == returned, name
    base = state.PORT_BOOKINGS + state.BUS_PORT * state.PORT_SLOTS * 2
    count = int(m[state.G_PORT_COUNT + state.BUS_PORT])
    assert [(int(m[base + 2 * i]), int(m[base + 2 * i + 1])) for i in range(count)] == left
    assert m[state.G_PORT_COUNT + state.MEMORY_PORT] == 0


def test_a_fill_does_not_wait_for_a_store_the_dma_queue_starts_later():
    # QPU 0 stores 16 one-word rows: the one VDW engine takes 16 x dma_row_clocks for them, while
    # their 64 bytes cross the bus and the SDRAM port in a few clocks. QPU 2 then queues a store of
    # its own, which starts when the engine is free, and QPU 1 reads a line from memory in between:
    # it finishes when it would with no stores at all, not after the second store's turn on the bus.
    engine = param("dma_latency") + 16 * param("dma_row_clocks")
    assert 64 / min(param("bus_bytes_per_clock"), param("memory_bytes_per_clock")) + 16 * CPI < engine

    def source(store: bool) -> str:
        start = "mov vw_addr, r1" if store else "mov r1, r1"
        return f"""
    mov r0, qpu_num
    mov vw_setup, vpm_setup(1, 1, h32(0))
    mov vw_setup, vdw_setup_0(16, 1, dma_h32(0, 0))
    sub.setf -, r0, 1
    brr.allz -, r:reader
    sub.setf -, r0, 2
    nop
    nop
    brr.allz -, r:second
    mov r1, 0x4000
    nop
    nop
    {start}
    mov -, srel(0)
    mov -, vw_wait
    brr -, r:end
    nop
    nop
    nop
:second
    mov -, sacq(0)
    mov r1, 0x5000
    {start}
    mov -, srel(1)
    mov -, vw_wait
    brr -, r:end
    nop
    nop
    nop
:reader
    mov -, sacq(1)
    mov r1, 0x8000
    mov t0s, r1
    nop; ldtmu0
:end
""" + END

    stores, _ = run(source(True), qpus=3)
    alone, _ = run(source(False), qpus=3)
    assert stores.per_qpu[2].stall_cycles["dma"] > engine / 2           # the second store waited its turn
    # (The semaphore's retries align the QPUs to within an instruction; a fill held up until the
    # second store had crossed the bus would end about `engine` clocks later.)
    assert abs(stores.per_qpu[1].end_cycle - alone.per_qpu[1].end_cycle) <= 2 * CPI
    assert stores.per_qpu[1].stall_cycles["tmu"] >= param("memory") - 8 * CPI    # the line came from memory
