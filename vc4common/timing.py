"""The timing model's parameters and the report of a run: what the simulator models with, what a
planner (nnlib) may read to choose a tiling, and what every backend's run returns.

Every number the model uses is in PARAMETERS with its source (../shared/reference/performance.md
§4, semantics.md §10). Values marked "policy" are not published: they are this model's starting
guesses, to be calibrated against GPU_FFT's published times (issue 4). All times are modeled, not
measured, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Parameter:
    value: float
    unit: str
    source: str


PARAMETERS: dict[str, Parameter] = {
    "clock_hz": Parameter(250e6, "Hz", "V3D clock of the Pi Zero/1 in the older docs; the project's default "
                                       "(performance.md §4 'V3D clock defaults')"),
    "cycles_per_instruction": Parameter(4, "clocks", "one instruction per QPU per 4 clocks (performance.md §4, "
                                                     "'Instruction cost')"),
    "tmu_hit": Parameter(36, "clocks", "policy: VC4C's emulator, 9 emulation cycles after a TMU-cache hit "
                                       "(semantics.md §10)"),
    "l2_hit": Parameter(96, "clocks", "policy, conservative: no published measurement and no foreign program "
                                      "constrains it (GPU_FFT, py-videocore's SGEMM and QPULib's HeatMap move "
                                      "by at most 0.07 between 48 and 96); twice VC4C's emulator's 36 + 12, "
                                      "so that nnlib's L2-hit path is not modeled optimistically (BENCHMARKS.md)"),
    "memory": Parameter(400, "clocks", "policy: Mesa's scheduler assumes about 100 instruction slots from a TMU "
                                       "request to ldtmu for a miss (performance.md §4 'TMU latency')"),
    "system_l2_hit": Parameter(320, "clocks", "policy, calibrated: a line the V3D's L2 missed but the VideoCore's "
                                             "128 KB system L2 holds (cache.py), between the V3D L2's 48 and "
                                             "SDRAM's `memory`. With the port and bus rates it puts GPU_FFT "
                                             "2^10..2^17, py-videocore's SGEMM and QPULib's HeatMap within "
                                             "±20 % of their Pi times; the SGEMM alone swings 1.0-1.4x over "
                                             "250..340 (threads sharing B lines fall in and out of step; "
                                             "BENCHMARKS.md)"),
    "bus_bytes_per_clock": Parameter(6.0, "bytes/clock", "policy, calibrated: the V3D's one bus to the system, "
                                                         "which every line fill (from the system L2 or SDRAM) and "
                                                         "every VPM DMA byte crosses"),
    "memory_bytes_per_clock": Parameter(4.6, "bytes/clock", "policy, calibrated: what misses the system L2 "
                                                           "(line fills and VPM DMA bytes) shares one SDRAM port; "
                                                           "4.6 B/clock (1.15 GB/s at 250 MHz, a third of the "
                                                           "3.6 GB/s peak of performance.md §4) fits GPU_FFT "
                                                           "2^15..2^17 (BENCHMARKS.md)"),
    "vdr_bytes_per_clock": Parameter(690e6 / 250e6, "bytes/clock", "VPM DMA load 690 MB/s at 250 MHz, whole GPU "
                                                                   "(performance.md §4, imrc QV52)"),
    "vdw_bytes_per_clock": Parameter(1120e6 / 250e6, "bytes/clock", "VPM DMA store 1120 MB/s at 250 MHz, "
                                                                    "second-hand (performance.md §4)"),
    "dma_latency": Parameter(32, "clocks", "at least 6-10 instructions between a DMA start and its wait "
                                           "(performance.md §4); policy: 8 instructions"),
    "dma_row_clocks": Parameter(8, "clocks", "policy, calibrated: each memory row of a VPM DMA is a transfer "
                                             "of its own, at least this long whatever its bytes. QPULib's HeatMap "
                                             "stores 16 one-word rows per vector; on 4 QPUs its published time "
                                             "(20.36 s, 2000 steps) gives ~160 clocks per store on the one VDW "
                                             "engine: 32 of latency + 16 rows x 8 (BENCHMARKS.md)"),
    "sfu_busy": Parameter(16, "clocks", "one SFU per slice, ~4 instruction slots, not pipelined "
                                        "(performance.md §4 'SFU')"),
    "vpm_read_latency": Parameter(12, "clocks", "data ready 3 instructions after a VPM read setup "
                                                "(semantics.md §8.3)"),
    "icache_prefetch_lines": Parameter(4, "lines", "policy, calibrated: how far ahead of the PC the instruction "
                                                   "cache fetches sequential lines (not published). GPU_FFT clears "
                                                   "the caches before each run, so its code comes cold: with 1 line "
                                                   "single 2^8..2^10 transforms model 1.23-1.53x the Pi 1 times, "
                                                   "with 2 1.12-1.32x, with 4 1.01-1.17x (BENCHMARKS.md)"),
    "uniforms_prefetch_lines": Parameter(2, "lines", "policy, calibrated: how far ahead of the stream the "
                                                     "uniforms cache fetches sequential lines (semantics.md "
                                                     "§8.6: a small FIFO, prefetch >= 2). py-videocore's SGEMM "
                                                     "streams B through it: with 1 line it models 1.40-1.44x "
                                                     "its published time at every system_l2_hit from 240 to "
                                                     "380, with 2 lines 1.07 at 320 (BENCHMARKS.md)"),
    # The host's side of a submission (not the QPUs'): added by tools that model a whole call.
    "mailbox_call_seconds": Parameter(100e-6, "s", "execute_qpu through the mailbox costs about 100 us per call "
                                                   "(gpu_fft.txt 1.0; performance.md §4)"),
    "direct_call_seconds": Parameter(15e-6, "s", "policy, calibrated: GPU_FFT 2^8 takes 33 us for one transform but "
                                                 "17 us each in a batch of 10 (gpu_fft.txt), so about 15 us of a "
                                                 "direct call is the host's"),
}


def param(name: str) -> float:
    return PARAMETERS[name].value


def override(setting: str) -> None:
    """Apply one `NAME=VALUE` (a benchmark's --set) to try a parameter before changing it; an unknown
    name is an error naming the known ones."""
    name, _, value = setting.partition("=")
    if name not in PARAMETERS:
        raise SystemExit(f"--set {setting}: unknown timing parameter (known: {', '.join(PARAMETERS)})")
    try:
        number = float(value)
    except ValueError:
        raise SystemExit(f"--set {setting}: the value must be a number") from None
    old = PARAMETERS[name]
    PARAMETERS[name] = Parameter(number, old.unit, "override")


STALL_REASONS = ("tmu", "dma", "sfu", "vpm", "semaphore", "mutex", "icache", "uniforms")


@dataclass
class QpuReport:
    qpu: int
    instructions: int = 0
    busy_cycles: int = 0
    stall_cycles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STALL_REASONS, 0))
    end_cycle: int = 0
    host_interrupts: int = 0


@dataclass
class Report:
    """What one run took: in the timing model (modeled), or on a Pi (measured: the wall time of the
    submission times the V3D clock, with whatever counters the driver read)."""

    cycles: int
    per_qpu: list[QpuReport]
    counters: dict[str, int]
    modeled: bool = True

    def seconds(self, clock_hz: float | None = None) -> float:
        """Wall time of the run at a V3D clock (250 MHz by default, the Pi Zero's); modeled unless
        `modeled` is False."""
        return self.cycles / (clock_hz or param("clock_hz"))

    @property
    def instructions(self) -> int:
        return sum(q.instructions for q in self.per_qpu)
