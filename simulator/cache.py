"""The V3D's caches, for coherence and timing (semantics.md §8.2, §8.6, §10).

Each TMU has a 4 KB direct-mapped cache of 64-byte lines; the slices share an L2 of 64-byte lines,
4-way (size not published: policy 32 KB, least recently used replacement). Each slice also has a
uniforms cache (VC4C's emulator models 4 KB; its organisation is not published: policy, direct-mapped
like the TMU caches) and a 4 KB 4-way instruction cache (semantics.md §10), both filled through the
L2. Lines hold copies of memory taken when they were filled. No level sees VDW DMA stores or host
writes, so a read can return data older than memory, as on the hardware: `line_read` says when
that happened. The instruction cache keeps tags only: nothing here writes code during a run.
The state is one flat array (`new_caches`) and the read path is in the compilable subset (jit.py).
"""

from __future__ import annotations

import numpy as np

from .jit import jit
from .memory import OUTSIDE, read32

LINE_BYTES = 64
WORDS_PER_LINE = LINE_BYTES // 4
UNIT_BYTES = 4096                      # a TMU cache (semantics.md §10) or a uniforms cache (policy)
UNIT_LINES = UNIT_BYTES // LINE_BYTES
ICACHE_BYTES, ICACHE_WAYS = 4096, 4    # per slice (semantics.md §10)
ICACHE_SETS = ICACHE_BYTES // LINE_BYTES // ICACHE_WAYS
L2_WAYS = 4
L2_BYTES = 32 * 1024                   # policy: "≈32 KB?" in semantics.md §10
L2_SETS = L2_BYTES // LINE_BYTES // L2_WAYS
EMPTY = -1
# Which level served a read (and indexes the latency parameters, see core.py).
TMU_HIT, L2_HIT, FROM_MEMORY = 0, 1, 2
HITS, MISSES = 0, 1                    # columns of the statistics


MAX_SLICES = 4
MAX_TMUS = 2 * MAX_SLICES              # two per slice
# The direct-mapped caches are "units": TMU t is unit t, the uniforms cache of slice s is unit
# UNIFORMS_UNIT + s.
UNIFORMS_UNIT = MAX_TMUS
UNITS = MAX_TMUS + MAX_SLICES
# One flat int64 array holds every cache (flat so that the compiled core passes one argument):
L2_TAGS = 0                                            # [set * L2_WAYS + way] line address or EMPTY
L2_USED = L2_TAGS + L2_SETS * L2_WAYS                  # last use of each way, for LRU
L2_DATA = L2_USED + L2_SETS * L2_WAYS                  # [(set * L2_WAYS + way) * WORDS_PER_LINE + k]
L2_STATS = L2_DATA + L2_SETS * L2_WAYS * WORDS_PER_LINE    # hits, misses, use clock
UNIT_STATS = L2_STATS + 3                              # [unit * 2 + HITS/MISSES]
UNIT_TAGS = UNIT_STATS + 2 * UNITS                     # [unit * UNIT_LINES + index]
UNIT_READY = UNIT_TAGS + UNITS * UNIT_LINES            # the clock at which a line's fill arrives
UNIT_DATA = UNIT_READY + UNITS * UNIT_LINES            # [(unit * UNIT_LINES + index) * WORDS_PER_LINE + k]
ICACHE_SLOTS = ICACHE_SETS * ICACHE_WAYS               # per slice
ICACHE_TAGS = UNIT_DATA + UNITS * UNIT_LINES * WORDS_PER_LINE  # [slice * ICACHE_SLOTS + set * WAYS + way]
ICACHE_USED = ICACHE_TAGS + MAX_SLICES * ICACHE_SLOTS
ICACHE_READY = ICACHE_USED + MAX_SLICES * ICACHE_SLOTS
ICACHE_STATS = ICACHE_READY + MAX_SLICES * ICACHE_SLOTS    # [slice * 2 + HITS/MISSES], then a use clock
CACHE_SIZE = ICACHE_STATS + 2 * MAX_SLICES + 1


def new_caches() -> np.ndarray:
    cache = np.zeros(CACHE_SIZE, dtype=np.int64)
    clear(cache)
    return cache


def clear(cache: np.ndarray) -> None:
    """What the host does before a run (V3D_L2CACTL and V3D_SLCACTL clears, semantics.md §8.2)."""
    clear_l2(cache)
    for unit in range(UNITS):
        clear_unit(cache, unit)
    for s in range(MAX_SLICES):
        clear_icache(cache, s)


def clear_l2(cache: np.ndarray) -> None:
    cache[L2_TAGS:L2_USED] = EMPTY


def clear_unit(cache: np.ndarray, unit: int) -> None:
    """Empty a TMU cache (unit = TMU number) or a uniforms cache (UNIFORMS_UNIT + slice)."""
    cache[UNIT_TAGS + unit * UNIT_LINES:UNIT_TAGS + (unit + 1) * UNIT_LINES] = EMPTY


def clear_icache(cache: np.ndarray, s: int) -> None:
    cache[ICACHE_TAGS + s * ICACHE_SLOTS:ICACHE_TAGS + (s + 1) * ICACHE_SLOTS] = EMPTY


def restart_clocks(cache: np.ndarray) -> None:
    """A run's clocks start at 0: fills of lines kept from an earlier run have long arrived."""
    cache[UNIT_READY:UNIT_READY + UNITS * UNIT_LINES] = 0
    cache[ICACHE_READY:ICACHE_READY + MAX_SLICES * ICACHE_SLOTS] = 0


def statistics(cache: np.ndarray, tmus: int) -> dict[str, int]:
    """Hit and miss counts of the TMU caches, the uniforms caches, the instruction caches (each
    summed over the slices) and the L2."""
    units = cache[UNIT_STATS:UNIT_STATS + 2 * UNITS].reshape(UNITS, 2)
    tmu, uniforms = units[:tmus], units[UNIFORMS_UNIT:]
    icache = cache[ICACHE_STATS:ICACHE_STATS + 2 * MAX_SLICES].reshape(MAX_SLICES, 2)
    return {"tmu_hits": int(tmu[:, HITS].sum()), "tmu_misses": int(tmu[:, MISSES].sum()),
            "uniforms_hits": int(uniforms[:, HITS].sum()), "uniforms_misses": int(uniforms[:, MISSES].sum()),
            "icache_hits": int(icache[:, HITS].sum()), "icache_misses": int(icache[:, MISSES].sum()),
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
def line_read(cache, data, unit: int, address: int) -> tuple[int, bool, int]:
    """The word a TMU or uniforms cache (`unit`) returns for a byte address (low 2 bits ignored),
    whether it is older than memory (stale), and the level that served it; (OUTSIDE, False,
    level) outside the SDRAM. A line filled now has its ready clock to be set by the caller."""
    address &= ~3
    line = address - address % LINE_BYTES
    index = unit * UNIT_LINES + (line // LINE_BYTES) % UNIT_LINES
    word = (address % LINE_BYTES) // 4
    level = TMU_HIT
    if cache[UNIT_TAGS + index] == line:
        cache[UNIT_STATS + 2 * unit + HITS] += 1
    else:
        cache[UNIT_STATS + 2 * unit + MISSES] += 1
        start, level = _l2_line(cache, data, line)
        if start == OUTSIDE:
            return OUTSIDE, False, level
        for k in range(WORDS_PER_LINE):
            cache[UNIT_DATA + index * WORDS_PER_LINE + k] = cache[start + k]
        cache[UNIT_TAGS + index] = line
    value = cache[UNIT_DATA + index * WORDS_PER_LINE + word]
    return value, value != read32(data, address), level


@jit(inline=True)
def line_present(cache, unit: int, address: int) -> bool:
    line = address - address % LINE_BYTES
    return cache[UNIT_TAGS + unit * UNIT_LINES + (line // LINE_BYTES) % UNIT_LINES] == line


@jit(inline=True)
def ready_slot(unit: int, address: int) -> int:
    """Where the ready clock of the line holding `address` in `unit` lives."""
    return UNIT_READY + unit * UNIT_LINES + (address // LINE_BYTES) % UNIT_LINES


@jit(inline=True)
def icache_find(cache, s: int, line: int) -> int:
    """The slot of a code line in slice s's instruction cache, or -1."""
    base = s * ICACHE_SLOTS + ((line // LINE_BYTES) % ICACHE_SETS) * ICACHE_WAYS
    for slot in range(base, base + ICACHE_WAYS):
        if cache[ICACHE_TAGS + slot] == line:
            return slot
    return -1


@jit
def icache_fetch(cache, data, s: int, line: int) -> tuple[int, int]:
    """Look up a code line in slice s's instruction cache: (where its ready clock lives, level:
    TMU_HIT for a hit, else where the fill came from). Replacement is least recently used."""
    clock = ICACHE_STATS + 2 * MAX_SLICES
    cache[clock] += 1
    slot = icache_find(cache, s, line)
    if slot >= 0:
        cache[ICACHE_STATS + 2 * s + HITS] += 1
        cache[ICACHE_USED + slot] = cache[clock]
        return ICACHE_READY + slot, TMU_HIT
    base = s * ICACHE_SLOTS + ((line // LINE_BYTES) % ICACHE_SETS) * ICACHE_WAYS
    victim = base
    for slot in range(base, base + ICACHE_WAYS):     # an empty way, else the least recently used
        if cache[ICACHE_TAGS + victim] != EMPTY and (cache[ICACHE_TAGS + slot] == EMPTY
                                                     or cache[ICACHE_USED + slot] < cache[ICACHE_USED + victim]):
            victim = slot
    cache[ICACHE_STATS + 2 * s + MISSES] += 1
    _, level = _l2_line(cache, data, line)
    cache[ICACHE_TAGS + victim] = line
    cache[ICACHE_USED + victim] = cache[clock]
    return ICACHE_READY + victim, level
