"""The simulated V3D registers as a host sees them (BRCM Table 48, semantics.md §9.1): the user program
queue and SRQCS, cache clears, interrupt latches and counters, written and read at their offsets."""

from __future__ import annotations

import numpy as np
import pytest

import qpuasm
from simulator.machine import V3D
from simulator.registers import V3DRegisters
from vc4common import host

R = host.V3D_REGISTERS
PROGRAM = "mov r0, unif\nmov irq, 1\nnop; nop; thrend\nnop\nnop\n"


@pytest.fixture
def regs():
    v3d = V3D(1 << 20)
    words = qpuasm.assemble(PROGRAM).words
    v3d.memory.data[0x1000:0x1000 + 8 * len(words)] = words.astype("<u8").view(np.uint8)
    return V3DRegisters(v3d)


def queue(regs: V3DRegisters, count: int) -> None:
    for q in range(count):
        regs.write(R["SRQUA"], 0x800 + 4 * q)
        regs.write(R["SRQPC"], 0x1000)


def test_programs_run_when_the_host_polls_srqcs(regs):
    queue(regs, 3)
    assert regs.values[R["SRQCS"]] == 0 and len(regs.queue) == 3      # nothing ran yet
    status = regs.read(R["SRQCS"])
    assert host.SRQCS_COMPLETED.get(status) == 3 and host.SRQCS_REQUESTED.get(status) == 3
    assert host.SRQCS_LENGTH.get(status) == 0 and not host.SRQCS_ERROR.get(status)
    assert regs.read(R["DBQITC"]) == 0b111                              # each wrote host_int
    regs.write(R["SRQCS"], 1 << 16 | 1 << 8)                            # reset both counts
    assert regs.read(R["SRQCS"]) == 0


def test_a_full_queue_sets_the_error_bit_and_drops_the_request(regs):
    queue(regs, host.SRQ_QUEUE_DEPTH + 1)
    assert len(regs.queue) == host.SRQ_QUEUE_DEPTH
    regs.write(R["SRQCS"], 1)                                           # bit 0 empties the queue
    status = regs.read(R["SRQCS"])
    assert host.SRQCS_ERROR.get(status) and host.SRQCS_REQUESTED.get(status) == 17
    assert host.SRQCS_COMPLETED.get(status) == 0
    regs.write(R["SRQCS"], 1 << 7)
    assert not host.SRQCS_ERROR.get(regs.read(R["SRQCS"]))


def test_more_programs_than_qpus_run_in_batches(regs):
    queue(regs, 14)
    assert host.SRQCS_COMPLETED.get(regs.read(R["SRQCS"])) == 14 and regs.runs == 2


def test_cache_clears(regs):
    from simulator.cache import (
        EMPTY,
        L2_TAGS,
        L2_USED,
        SC_TAGS,
        SLICE_CACHE_SLOTS,
        SLICE_CACHES,
        TMU_LINES,
        TMU_TAGS,
        UNIFORMS,
    )
    caches = regs.v3d.caches
    caches[L2_TAGS:L2_USED] = 5
    caches[TMU_TAGS:TMU_TAGS + 6 * TMU_LINES] = 5
    caches[SC_TAGS:SC_TAGS + SLICE_CACHES * SLICE_CACHE_SLOTS] = 5
    regs.write(R["SLCACTL"], host.SLCACTL_TMU1_CLEAR.put(0b010))         # TMU1 of slice 1 only
    tags = caches[TMU_TAGS:TMU_TAGS + 6 * TMU_LINES].reshape(6, TMU_LINES)
    assert (tags[3] == EMPTY).all() and (tags[[0, 1, 2, 4, 5]] == 5).all()
    assert (caches[L2_TAGS:L2_USED] == 5).all()
    regs.write(R["SLCACTL"], host.SLCACTL_UNIFORMS_CLEAR.put(0b100) | host.SLCACTL_ICACHE_CLEAR.put(0b001))
    slices = caches[SC_TAGS:SC_TAGS + SLICE_CACHES * SLICE_CACHE_SLOTS].reshape(SLICE_CACHES, SLICE_CACHE_SLOTS)
    cleared = {0, UNIFORMS + 2}                                         # icache of slice 0, uniforms of slice 2
    for number in range(SLICE_CACHES):
        assert (slices[number] == (EMPTY if number in cleared else 5)).all(), number
    regs.write(R["L2CACTL"], host.L2CACTL_CLEAR | host.L2CACTL_ENABLE)
    assert (caches[L2_TAGS:L2_USED] == EMPTY).all() and regs.read(R["L2CACTL"]) == 1


def test_counters_count_only_when_enabled_with_bit_31(regs):
    regs.write(R["PCTRS0"], 16)                     # QPU cycles executing valid instructions
    regs.write(R["PCTRE"], 1)                       # without bit 31 nothing counts (semantics.md §11)
    queue(regs, 1)
    assert regs.read(R["PCTR0"]) == 0
    regs.write(R["PCTRE"], 1 << 31 | 1)
    queue(regs, 2)
    assert regs.read(R["PCTR0"]) == regs.v3d.report.counters["QPU_TOTAL_CLK_CYCLES_EXECUTING_VALID_INSTRUCTIONS"] > 0
    regs.write(R["PCTRC"], 1)
    assert regs.read(R["PCTR0"]) == 0


def test_ident_and_unknown_offsets(regs):
    assert regs.read(R["IDENT0"]) == 0x02443356
    ident1 = regs.read(R["IDENT1"])
    assert (host.IDENT1_NSLC.get(ident1), host.IDENT1_QUPS.get(ident1), host.IDENT1_NSEM.get(ident1)) == (3, 4, 16)
    with pytest.raises(ValueError, match="0x444 is not one the model has"):
        regs.read(0x444)
