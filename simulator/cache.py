"""TMU caches and the L2, for coherence and timing (semantics.md §8.2, §10).

Each TMU has a 4 KB direct-mapped cache of 64-byte lines; the slices share an L2 of 64-byte lines,
4-way (size not published: policy 32 KB, least recently used replacement). Lines hold copies of
memory taken when they were filled. Neither level sees VDW DMA stores or host writes, so a read can
return data older than memory, as on the hardware: `tmu_read` says when that happened.
The state is one flat array (`new_caches`) and the read path is in the compilable subset (jit.py).
"""

from __future__ import annotations

import numpy as np

from .jit import jit
from .memory import OUTSIDE, read32

LINE_BYTES = 64
WORDS_PER_LINE = LINE_BYTES // 4
TMU_CACHE_BYTES = 4096                 # per TMU, direct-mapped (semantics.md §10)
TMU_LINES = TMU_CACHE_BYTES // LINE_BYTES
L2_WAYS = 4
L2_BYTES = 32 * 1024                   # policy: "≈32 KB?" in semantics.md §10
L2_SETS = L2_BYTES // LINE_BYTES // L2_WAYS
EMPTY = -1
# Which level served a read (and indexes the latency parameters, see core.py).
TMU_HIT, L2_HIT, FROM_MEMORY = 0, 1, 2
HITS, MISSES = 0, 1                    # columns of the statistics


MAX_TMUS = 8                           # two per slice, up to four slices
# One flat int64 array holds every cache (flat so that the compiled core passes one argument):
L2_TAGS = 0                                            # [set * L2_WAYS + way] line address or EMPTY
L2_USED = L2_TAGS + L2_SETS * L2_WAYS                  # last use of each way, for LRU
L2_DATA = L2_USED + L2_SETS * L2_WAYS                  # [(set * L2_WAYS + way) * WORDS_PER_LINE + k]
L2_STATS = L2_DATA + L2_SETS * L2_WAYS * WORDS_PER_LINE    # hits, misses, use clock
TMU_STATS = L2_STATS + 3                               # [tmu * 2 + HITS/MISSES]
TMU_TAGS = TMU_STATS + 2 * MAX_TMUS                    # [tmu * TMU_LINES + index]
TMU_DATA = TMU_TAGS + MAX_TMUS * TMU_LINES             # [(tmu * TMU_LINES + index) * WORDS_PER_LINE + k]
CACHE_SIZE = TMU_DATA + MAX_TMUS * TMU_LINES * WORDS_PER_LINE


def new_caches() -> np.ndarray:
    cache = np.zeros(CACHE_SIZE, dtype=np.int64)
    clear(cache)
    return cache


def clear(cache: np.ndarray) -> None:
    """What the host does before a run (V3D_L2CACTL and V3D_SLCACTL clears, semantics.md §8.2)."""
    clear_l2(cache)
    for tmu in range(MAX_TMUS):
        clear_tmu(cache, tmu)


def clear_l2(cache: np.ndarray) -> None:
    cache[L2_TAGS:L2_USED] = EMPTY


def clear_tmu(cache: np.ndarray, tmu: int) -> None:
    cache[TMU_TAGS + tmu * TMU_LINES:TMU_TAGS + (tmu + 1) * TMU_LINES] = EMPTY


def statistics(cache: np.ndarray, tmus: int) -> dict[str, int]:
    """Hit and miss counts of the TMU caches (summed) and the L2."""
    tmu = cache[TMU_STATS:TMU_STATS + 2 * tmus].reshape(tmus, 2)
    return {"tmu_hits": int(tmu[:, HITS].sum()), "tmu_misses": int(tmu[:, MISSES].sum()),
            "l2_hits": int(cache[L2_STATS + HITS]), "l2_misses": int(cache[L2_STATS + MISSES])}


@jit
def _l2_line(cache, data, line: int) -> tuple[int, int]:
    """(offset of a line's words in `cache`, level): an L2 hit, or filled from memory on a miss;
    offset OUTSIDE if the line is outside the SDRAM."""
    s = (line // LINE_BYTES) % L2_SETS
    cache[L2_STATS + 2] += 1
    for way in range(L2_WAYS):
        slot = s * L2_WAYS + way
        if cache[L2_TAGS + slot] == line:
            cache[L2_STATS + HITS] += 1
            cache[L2_USED + slot] = cache[L2_STATS + 2]
            return L2_DATA + slot * WORDS_PER_LINE, L2_HIT
    cache[L2_STATS + MISSES] += 1
    victim = s * L2_WAYS
    for way in range(L2_WAYS):                 # an empty way, else the least recently used
        slot = s * L2_WAYS + way
        if cache[L2_TAGS + slot] == EMPTY:
            victim = slot
            break
        if cache[L2_USED + slot] < cache[L2_USED + victim]:
            victim = slot
    start = L2_DATA + victim * WORDS_PER_LINE
    for k in range(WORDS_PER_LINE):
        value = read32(data, line + 4 * k)
        if value == OUTSIDE:
            return OUTSIDE, FROM_MEMORY
        cache[start + k] = value
    cache[L2_TAGS + victim] = line
    cache[L2_USED + victim] = cache[L2_STATS + 2]
    return start, FROM_MEMORY


@jit
def tmu_read(cache, data, tmu: int, address: int) -> tuple[int, bool, int]:
    """The word a TMU returns for a byte address (low 2 bits ignored), whether it is older than
    memory (stale), and the level that served it; (OUTSIDE, False, level) outside the SDRAM."""
    address &= ~3
    line = address - address % LINE_BYTES
    index = tmu * TMU_LINES + (line // LINE_BYTES) % TMU_LINES
    word = (address % LINE_BYTES) // 4
    level = TMU_HIT
    if cache[TMU_TAGS + index] == line:
        cache[TMU_STATS + 2 * tmu + HITS] += 1
    else:
        cache[TMU_STATS + 2 * tmu + MISSES] += 1
        start, level = _l2_line(cache, data, line)
        if start == OUTSIDE:
            return OUTSIDE, False, level
        for k in range(WORDS_PER_LINE):
            cache[TMU_DATA + index * WORDS_PER_LINE + k] = cache[start + k]
        cache[TMU_TAGS + index] = line
    value = cache[TMU_DATA + index * WORDS_PER_LINE + word]
    return value, value != read32(data, address), level
