"""The timing parameters as the compiled core receives them (the parameters themselves and the run
report live in vc4common.timing, which the driver and nnlib read too)."""

from __future__ import annotations

import numpy as np

from vc4common.timing import param

# The order in which the core receives the parameters (`parameter_array`); the TMU latencies are
# in the order of cache.TMU_HIT, L2_HIT, FROM_MEMORY.
CORE_PARAMETERS = ("cycles_per_instruction", "tmu_hit", "l2_hit", "memory", "vdr_bytes_per_clock",
                   "vdw_bytes_per_clock", "dma_latency", "sfu_busy", "vpm_read_latency", "memory_bytes_per_clock",
                   "icache_prefetch_lines", "uniforms_prefetch_lines", "dma_row_clocks", "system_l2_hit",
                   "bus_bytes_per_clock")


def parameter_array() -> np.ndarray:
    return np.array([param(name) for name in CORE_PARAMETERS], dtype=np.float64)


__all__ = ["CORE_PARAMETERS", "parameter_array"]
