"""The scheduler: which QPU runs next, and the loop that runs them until the caller must act.

QPUs run in order of their modeled clocks (ties: lowest number), so that waits on other QPUs,
semaphores, the mutex and the shared DMA engines happen in a consistent order; with a seed, one
drawn at random among those close in time, to expose races (semantics.md §12 item 7).
"""

from __future__ import annotations

from qpuasm import isa

from .core import step
from .jit import jit
from .qpu_io import fetch
from .state import (
    BUDGET,
    CYCLE,
    DEADLOCK,
    DONE,
    DRAIN,
    E_UNALIGNED_PC,
    ERROR,
    EVENT_DRAIN,
    EXECUTED,
    FAILED,
    G_EVENTS,
    G_EXECUTED,
    G_NEED_PC,
    G_RNG,
    G_SEEDED,
    G_STRICT,
    MAX_QPUS,
    NEED_DECODE,
    NOT_WAITING,
    P_CPI,
    PC,
    REPORTED,
    RUNNING,
    WAITING,
    WAITING_SINCE,
    fail,
    stall,
)

INTERLEAVE_WINDOW = 64        # clocks: how far out of time order a seeded run may pick the next QPU
NEVER = (1 << 63) - 1         # the time-order key of a QPU that is not running
QPU_KEY = MAX_QPUS            # time order: clock * QPU_KEY + QPU number (ties: the lowest number)


@jit(inline=True)
def _next_qpu(qpu, m) -> int:
    """The running QPU that is earliest in modeled time (ties: lowest number), so that waits on
    other QPUs, semaphores, the mutex and the shared DMA engines happen in a consistent order.
    With a seed, one drawn at random among those within INTERLEAVE_WINDOW clocks of it."""
    # The least key clock * QPU_KEY + number: a min reduction, with no branch (which QPU is earliest
    # changes from one instruction to the next; the mispredicted branches of a plain scan were 7 %
    # of the simulator's time).
    least = NEVER
    for i in range(qpu.shape[0]):
        least = min(least, qpu[i, CYCLE] * QPU_KEY + i if qpu[i, RUNNING] else NEVER)
    best = -1 if least == NEVER else least % QPU_KEY
    if best < 0 or not m[G_SEEDED]:
        return best
    limit = qpu[best, CYCLE] + INTERLEAVE_WINDOW
    candidates = 0
    for i in range(qpu.shape[0]):
        if qpu[i, RUNNING] and qpu[i, CYCLE] <= limit:
            candidates += 1
    m[G_RNG] = (m[G_RNG] * 1103515245 + 12345) & 0x7FFFFFFF
    pick = (m[G_RNG] >> 8) % candidates
    for i in range(qpu.shape[0]):
        if qpu[i, RUNNING] and qpu[i, CYCLE] <= limit:
            if pick == 0:
                return i
            pick -= 1
    return best


@jit
def run(prog, base: int, qpu, m, vpm, cache, data, params, max_instructions: int) -> int:
    """Run every QPU until all have ended, or until the caller must act: DONE, NEED_DECODE (the
    next PC, m[G_NEED_PC], is outside `prog`), DRAIN (events to collect), REPORTED (strict mode),
    FAILED (m[G_ERROR...]), DEADLOCK or BUDGET. Calling again resumes where it stopped."""
    cpi = int(params[P_CPI])
    while True:
        if m[G_EVENTS] >= EVENT_DRAIN:
            return DRAIN
        q = _next_qpu(qpu, m)
        if q < 0:
            return DONE
        pc = qpu[q, PC]
        offset = pc - base
        if offset % isa.INSTRUCTION_BYTES:
            fail(m, q, pc, E_UNALIGNED_PC, pc, 0)
            return FAILED
        row = offset // isa.INSTRUCTION_BYTES
        if offset < 0 or row >= prog.shape[0]:
            m[G_NEED_PC] = pc
            return NEED_DECODE
        fetch(qpu, m, cache, data, params, q, pc)
        status = step(qpu, m, vpm, cache, data, params, q, prog, row)
        if status == ERROR:
            return FAILED
        if status == EXECUTED:
            qpu[q, WAITING] = NOT_WAITING
            m[G_EXECUTED] += 1
            if m[G_STRICT] and m[G_EVENTS]:
                return REPORTED
            if m[G_EXECUTED] > max_instructions:
                return BUDGET
            continue
        # Blocked: wait until another QPU has moved on (or report a deadlock).
        executed = m[G_EXECUTED]
        qpu[q, WAITING_SINCE] = executed
        others = -1
        everyone_blocked = True
        for i in range(qpu.shape[0]):
            if not qpu[i, RUNNING]:
                continue
            if not (qpu[i, WAITING] != NOT_WAITING and qpu[i, WAITING_SINCE] == executed):
                everyone_blocked = False
                if i != q and (others < 0 or qpu[i, CYCLE] < others):
                    others = qpu[i, CYCLE]
        if everyone_blocked:
            return DEADLOCK
        wake = max(others if others >= 0 else qpu[q, CYCLE], qpu[q, CYCLE]) + cpi
        stall(qpu, q, qpu[q, WAITING], wake)
