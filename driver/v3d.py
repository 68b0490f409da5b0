"""Direct access to the V3D registers: identity, cache clears, the user program queue and the
performance counters (BRCM Table 48; offsets and fields in host.V3D_REGISTERS and below it).

`submit_direct` is GPU_FFT 2.0+'s short-job path (semantics.md §9.1): clear the caches, reset the
queue's counts, write SRQUA then SRQPC for each program, and poll SRQCS until all completed. It saves
the mailbox's ~100 us per call but needs /dev/mem (root) and busy-waits, so it suits short jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from vc4common import host

from .backend import Backend

R = host.V3D_REGISTERS


class V3DError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ident:
    technology_version: int
    id_string: str
    revision: int
    slices: int
    qpus_per_slice: int
    tmus_per_slice: int
    semaphores: int
    vpm_kb: int

    @property
    def qpus(self) -> int:
        return self.slices * self.qpus_per_slice


class V3D:
    """The V3D register window of one backend."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def read(self, name: str) -> int:
        return self.backend.read_register(R[name])

    def write(self, name: str, value: int) -> None:
        self.backend.write_register(R[name], value & 0xFFFFFFFF)

    def ident(self) -> Ident:
        ident0, ident1 = self.read("IDENT0"), self.read("IDENT1")
        name = bytes([ident0 & 0xFF, ident0 >> 8 & 0xFF, ident0 >> 16 & 0xFF]).decode("ascii", "replace")
        return Ident(ident0 >> 24, name, host.IDENT1_REV.get(ident1), host.IDENT1_NSLC.get(ident1),
                     host.IDENT1_QUPS.get(ident1), host.IDENT1_TUPS.get(ident1), host.IDENT1_NSEM.get(ident1),
                     host.IDENT1_VPMSZ.get(ident1) or 16)

    def clear_caches(self) -> None:
        """Clear the L2 and every slice's TMU and uniform caches (what a host does before a run)."""
        self.write("L2CACTL", host.L2CACTL_CLEAR)
        self.write("SLCACTL", 0xFFFFFFFF)

    def submit_direct(self, jobs: list[tuple[int, int]], timeout: float = 1.0) -> float:
        """Run one program per (uniforms address, code address) pair through the user program queue;
        returns the seconds spent polling. Raises V3DError on a queue error or a timeout."""
        if not 1 <= len(jobs) <= host.SRQ_QUEUE_DEPTH:
            raise V3DError(f"{len(jobs)} programs: the queue takes 1 to {host.SRQ_QUEUE_DEPTH}")
        self.write("DBCFG", 0)                      # no interrupts to the host: it polls
        self.write("DBQITE", 0)
        self.write("DBQITC", 0xFFFFFFFF)
        self.clear_caches()
        self.write("SRQCS", 1 << host.SRQCS_ERROR.lo | 1 << host.SRQCS_REQUESTED.lo | 1 << host.SRQCS_COMPLETED.lo)
        for uniforms, code in jobs:
            self.write("SRQUA", uniforms)
            self.write("SRQPC", code)
        start = time.monotonic()
        while True:
            status = self.read("SRQCS")
            if host.SRQCS_ERROR.get(status):
                raise V3DError("the user program queue overflowed (QPURQERR)")
            if host.SRQCS_COMPLETED.get(status) == len(jobs) % 256:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise V3DError(f"{len(jobs) - host.SRQCS_COMPLETED.get(status)} of {len(jobs)} programs still "
                               f"running after {timeout} s")


class PerformanceCounters:
    """Counters mapped to count sources (host.PERFORMANCE_COUNT_SOURCES), read around a run:

        with PerformanceCounters(v3d, ["QPU_TOTAL_CLK_CYCLES_EXECUTING_VALID_INSTRUCTIONS"]) as pc:
            ...run...
        pc.values  # {name: count}
    """

    def __init__(self, v3d: V3D, sources: list[str] | None = None):
        ids = {name: source for source, name in host.PERFORMANCE_COUNT_SOURCES.items()}
        names = sources if sources is not None else list(ids)
        unknown = [n for n in names if n not in ids]
        if unknown or len(names) > host.PERFORMANCE_COUNTERS:
            raise V3DError(f"counters: unknown sources {unknown}" if unknown else
                           f"{len(names)} sources: the V3D has {host.PERFORMANCE_COUNTERS} counters")
        self.v3d = v3d
        self.names = names
        self.ids = [ids[n] for n in names]
        self.values: dict[str, int] = {}

    def __enter__(self) -> PerformanceCounters:
        mask = (1 << len(self.ids)) - 1
        for n, source in enumerate(self.ids):
            self.v3d.write(f"PCTRS{n}", source)
        self.v3d.write("PCTRC", mask)
        self.v3d.write("PCTRE", host.PCTRE_ENABLE_ALL | mask)
        return self

    def __exit__(self, *exc) -> None:
        self.values = {name: self.v3d.read(f"PCTR{n}") for n, name in enumerate(self.names)}
        self.v3d.write("PCTRE", 0)


__all__ = ["Ident", "PerformanceCounters", "V3D", "V3DError"]
