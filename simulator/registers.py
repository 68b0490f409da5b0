"""The V3D's memory-mapped registers as the ARM sees them, over the simulated V3D.

What a host program does through /dev/mem on a Pi (GPU_FFT's direct path: cache clears, the user
program request queue, the interrupt latches, the performance counters) does the same here through
`read` and `write` at the same offsets (host.V3D_REGISTERS, BRCM Table 48).

Queued programs start when the host next looks at the V3D: a read of V3D_SRQCS, of an interrupt
latch or of a counter runs every queued program to its end (in batches of as many as there are
QPUs). On the hardware they start at once and the host polls, so a host that polls sees the same.
"""

from __future__ import annotations

from qpuasm import isa
from vc4common import host

from .cache import ICACHE, UNIFORMS, clear_l2, clear_slice_cache, clear_tmu
from .machine import V3D

R = host.V3D_REGISTERS


class V3DRegisters:
    """Register file of one simulated V3D."""

    def __init__(self, v3d: V3D):
        self.v3d = v3d
        self.values: dict[int, int] = dict.fromkeys(host.V3D_REGISTER_NAMES, 0)
        self.queue: list[tuple[int, int, int]] = []     # (code address, uniforms address, uniforms end)
        self.next_uniforms = 0
        # What the driver told the simulator about the uniforms it wrote (uniforms address -> end), so
        # that strict mode can report a program reading past them: the hardware has no such record
        # (SRQUL, the queue's uniforms length, is not what a mailbox run sets: semantics.md §9).
        self.uniforms_ends: dict[int, int] = {}
        self.completed = self.requested = 0
        self.error = False
        self.interrupt_latches = 0                       # bit q: QPU q raised host_int (DBQITC)
        self.counts = [0] * host.PERFORMANCE_COUNTERS
        self.runs = 0                                    # batches run through the queue
        self.max_instructions = 200_000_000              # per batch; past it the run stops with an error

    # ---- the ARM's accesses ----------------------------------------------------------------------

    def read(self, offset: int) -> int:
        self._check(offset)
        if offset in (R["SRQCS"], R["DBQITC"]) or R["PCTR0"] <= offset <= R["PCTRS15"]:
            self.run_queue()
        if offset == R["IDENT0"]:
            return host.IDENT0_VALUE
        if offset == R["IDENT1"]:
            return self._ident1()
        if offset == R["SRQCS"]:
            return (host.SRQCS_COMPLETED.put(self.completed % 256) | host.SRQCS_REQUESTED.put(self.requested % 256)
                    | host.SRQCS_ERROR.put(int(self.error)) | host.SRQCS_LENGTH.put(len(self.queue)))
        if offset == R["DBQITC"]:
            return self.interrupt_latches
        if offset == R["L2CACTL"]:
            return self.values[offset] & host.L2CACTL_ENABLE
        counter = self._counter_index(offset, "PCTR")
        if counter is not None:
            return self.counts[counter] & 0xFFFFFFFF
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        self._check(offset)
        value &= 0xFFFFFFFF
        if offset == R["L2CACTL"]:
            if value & host.L2CACTL_CLEAR:
                clear_l2(self.v3d.caches)
            enabled = (self.values[offset] | (value & host.L2CACTL_ENABLE)) & ~(
                host.L2CACTL_ENABLE if value & host.L2CACTL_DISABLE else 0)
            self.values[offset] = enabled
            return
        if offset == R["SLCACTL"]:
            self._clear_slice_caches(value)
            return
        if offset == R["SRQUA"]:
            self.next_uniforms = value
        elif offset == R["SRQPC"]:
            self.requested += 1
            if len(self.queue) >= host.SRQ_QUEUE_DEPTH:
                self.error = True                        # the request is dropped (semantics.md §9.1)
            else:
                end = self.uniforms_ends.get(self.next_uniforms, 0)
                self.queue.append((value, self.next_uniforms, end))
            return
        elif offset == R["SRQCS"]:
            if value & 1 << host.SRQCS_COMPLETED.lo:
                self.completed = 0
            if value & 1 << host.SRQCS_REQUESTED.lo:
                self.requested = 0
            if value & 1 << host.SRQCS_ERROR.lo:
                self.error = False
            if value & 1 << host.SRQCS_LENGTH.lo:
                self.queue.clear()
            return
        elif offset == R["DBQITC"]:
            self.interrupt_latches &= ~value
            return
        elif offset == R["PCTRC"]:
            for n in range(host.PERFORMANCE_COUNTERS):
                if value >> n & 1:
                    self.counts[n] = 0
            return
        elif self._counter_index(offset, "PCTR") is not None:
            self.counts[self._counter_index(offset, "PCTR")] = value
            return
        self.values[offset] = value

    # ---- running the queue -----------------------------------------------------------------------

    def run_queue(self) -> None:
        """Run every queued program to its end, as many at a time as there are QPUs."""
        while self.queue:
            batch, self.queue = self.queue[:self.v3d.qpus], self.queue[self.v3d.qpus:]
            try:
                self.v3d.execute(batch, self.max_instructions)
            except Exception:
                self.error = True                        # not a hardware bit: the run failed in the model
                raise
            self.runs += 1
            self.completed += len(batch)
            report = self.v3d.report
            for q in report.per_qpu:
                if q.host_interrupts:
                    self.interrupt_latches |= 1 << q.qpu
            self._count(report.counters)

    def _count(self, counters: dict[str, int]) -> None:
        enables = self.values[R["PCTRE"]]
        if not enables & host.PCTRE_ENABLE_ALL:
            return
        for n in range(host.PERFORMANCE_COUNTERS):
            if enables >> n & 1:
                name = host.PERFORMANCE_COUNT_SOURCES.get(self.values[R[f"PCTRS{n}"]] & 0x1F)
                self.counts[n] += counters.get(name, 0) if name else 0

    # ---- helpers ---------------------------------------------------------------------------------

    def _ident1(self) -> int:
        v3d = self.v3d
        slices = v3d.tmus // 2
        return (host.IDENT1_VPMSZ.put(12) | host.IDENT1_NSEM.put(isa.SEMAPHORE_COUNT) | host.IDENT1_TUPS.put(2)
                | host.IDENT1_QUPS.put(min(v3d.qpus, 4)) | host.IDENT1_NSLC.put(slices) | host.IDENT1_REV.put(1))

    def _clear_slice_caches(self, value: int) -> None:
        for s in range(self.v3d.tmus // 2):
            if host.SLCACTL_TMU0_CLEAR.get(value) >> s & 1:
                clear_tmu(self.v3d.caches, 2 * s)
            if host.SLCACTL_TMU1_CLEAR.get(value) >> s & 1:
                clear_tmu(self.v3d.caches, 2 * s + 1)
            if host.SLCACTL_UNIFORMS_CLEAR.get(value) >> s & 1:
                clear_slice_cache(self.v3d.caches, UNIFORMS + s)
            if host.SLCACTL_ICACHE_CLEAR.get(value) >> s & 1:
                clear_slice_cache(self.v3d.caches, ICACHE + s)

    @staticmethod
    def _counter_index(offset: int, prefix: str) -> int | None:
        name = host.V3D_REGISTER_NAMES.get(offset, "")
        suffix = name[len(prefix):]
        return int(suffix) if name.startswith(prefix) and suffix.isdigit() else None

    @staticmethod
    def _check(offset: int) -> None:
        if offset not in host.V3D_REGISTER_NAMES:
            raise ValueError(f"V3D register offset {offset:#x} is not one the model has (host.V3D_REGISTERS)")


__all__ = ["V3DRegisters"]
