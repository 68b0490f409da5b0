"""Kernels chained in one submission: one program on all 12 QPUs runs kernel after kernel, with an all-
QPU barrier between them and no host work in between.

Each kernel of nnlib is a segment: its code reads its constants and task table from the uniform
stream (tasks.py), so in a chain a two-instruction header points the stream at the segment's own
parameter block ([constants..., table, -1]: tasks found by qpu_num) and the code follows, generated
with its labels in a scope of its own (tasks.Scope) and, but for the last, without the program's
end. The barrier: every QPU waits for its own VDW stores (vw_wait), then QPU 0 collects the other 11
on semaphore 0 and releases them on semaphore 1 (semantics.md §8.7). A segment may read what an
earlier one wrote only through lines no cache holds from before (the simulator's strict mode checks
it): VDW stores bypass the TMU and L2 caches (performance.md §4 "Cache coherency"), so each layer
writes a buffer nothing has read yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import qpuasm
from vc4common import host

from .tasks import USE_QPU_NUMBER, Scope, deal, free_all, keep

QPUS = host.QPUS
ARRIVE, LEAVE = 0, 1                     # the barrier's semaphores


@dataclass
class Segment:
    """One kernel of a chain: the kernel (anything with `source(scope)`: its code, labels in that
    scope), its constant uniforms, its tasks and their size in words, and the cost of a task for
    dealing them over the QPUs (tasks.deal; None: round-robin). With `dealt`, items are already the
    task lists of QPU 0, 1, ... (a kernel that wants particular QPUs on particular work)."""

    kernel: object
    constants: list[int]
    items: list
    words: int
    cost: Callable[[list[int]], float] | None = None
    dealt: bool = False
    qpus: int = QPUS                     # the QPUs the tasks are dealt over (the rest idle to the barrier)

    def task_lists(self) -> list[list[list[int]]]:
        lists = list(self.items) if self.dealt else deal(self.items, self.qpus, self.cost)
        if len(lists) > QPUS:
            raise ValueError(f"a chain runs on {QPUS} QPUs, not {len(lists)}")
        return lists + [[] for _ in range(QPUS - len(lists))]


def barrier(prefix: str) -> str:
    others = QPUS - 1
    return (f"""        mov -, vw_wait
        mov.setf -, qpu_num
        brr.allz -, r:{prefix}master
        nop
        nop
        nop
        mov -, srel({ARRIVE})
        mov -, sacq({LEAVE})
        brr -, r:{prefix}after
        nop
        nop
        nop
:{prefix}master
""" + f"        mov -, sacq({ARRIVE})\n" * others + f"        mov -, srel({LEAVE})\n" * others + f":{prefix}after\n")


def chain_source(segments: list[Segment], parameter_blocks: list[int]) -> str:
    """The program: per segment a header pointing the uniform stream at its parameter block, its
    code with its labels in a scope of its own, then a barrier (or, after the last, the end)."""
    parts = []
    for i, (segment, block) in enumerate(zip(segments, parameter_blocks, strict=True)):
        last = i + 1 == len(segments)
        parts.append(f"""        mov r0, {block}
        mov unif_addr, r0
        nop
        nop
""")
        parts.append(segment.kernel.source(Scope(f"s{i}_", last=last)))
        if not last:
            parts.append(barrier(f"b{i}_"))
    return "".join(parts)


def place_chain(drv, segments: list[Segment], blocks: list):
    """Write every segment's task lists, table and parameter block to GPU memory and place the
    chained program: what a compiled network does once, before any run. Returns the placed
    program; the buffers (and the program) go into `blocks` for the caller to free."""
    parameter_blocks = []
    for segment in segments:
        lists = segment.task_lists()
        tasks = keep(blocks, drv.alloc((max(1, sum(map(len, lists))), segment.words), np.uint32))
        table = keep(blocks, drv.alloc((QPUS, 2), np.uint32))
        row = 0
        for q, items in enumerate(lists):
            table[q] = [tasks.address + 4 * segment.words * row, len(items)]
            for item in items:
                tasks[row] = item
                row += 1
        params = keep(blocks, drv.copy(np.array(list(segment.constants) + [table.address, USE_QPU_NUMBER], np.uint32)))
        parameter_blocks.append(params.address)
    program = qpuasm.assemble(chain_source(segments, parameter_blocks), filename="<chain>")
    return keep(blocks, drv.program(program))


def run_chain(drv, segments: list[Segment], timeout: float = 10.0):
    """Run the segments in order in one submission on all 12 QPUs; returns the report."""
    blocks: list = []
    try:
        return drv.execute(place_chain(drv, segments, blocks), None, n_qpus=QPUS, timeout=timeout)
    finally:
        free_all(drv, blocks)


__all__ = ["Segment", "barrier", "chain_source", "place_chain", "run_chain"]
