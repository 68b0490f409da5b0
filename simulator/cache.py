"""The V3D's caches, for coherence and timing (semantics.md §8.2, §8.6, §10).

Each TMU has a 4 KB direct-mapped cache of 64-byte lines; the slices share an L2 of 64-byte lines,
4-way (size not published: policy 32 KB, least recently used replacement). Each slice also has a
4 KB 4-way instruction cache (semantics.md §10) and a uniforms cache (VC4C's emulator models 4 KB;
its organisation is not published: policy, organised like the instruction cache, the other slice
cache that serves four QPUs' sequential streams; a direct-mapped one would thrash whenever two of
them ran 4 KB apart), both filled through the L2 and least recently used. Lines hold copies of
memory taken when they were filled. No level sees VDW DMA stores or host writes, so a read can
return data older than memory, as on the hardware: `tmu_read` and `slice_read` say when.
Behind the V3D's L2 sits the VideoCore's own system L2 (128 KB, 4-way: the hermanhermitage wiki's
BCM2835 overview; performance.md §4), through which the Pi 1/Zero's GPU sees SDRAM at the cached
0x4 bus alias that GPU_FFT and vc4kit use. It is modeled for timing only (tags, no data: the V3D
levels above hold the copies that coherence needs): a line found there comes without crossing the
SDRAM port. Its tags start empty at each run (the ARM wrote the inputs to SDRAM behind it).
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
SLICE_CACHE_BYTES, SLICE_CACHE_WAYS = 4096, 4   # instruction cache (semantics.md §10); uniforms: policy
SLICE_CACHE_SETS = SLICE_CACHE_BYTES // LINE_BYTES // SLICE_CACHE_WAYS
L2_WAYS = 4
L2_BYTES = 32 * 1024                   # policy: "≈32 KB?" in semantics.md §10
L2_SETS = L2_BYTES // LINE_BYTES // L2_WAYS
EMPTY = -1
SYSTEM_L2_BYTES, SYSTEM_L2_WAYS = 128 * 1024, 4   # the VideoCore system L2 (see above)
SYSTEM_L2_SETS = SYSTEM_L2_BYTES // LINE_BYTES // SYSTEM_L2_WAYS
# Which level served a read (TMU_HIT and L2_HIT index the latency parameters, see core.py).
TMU_HIT, L2_HIT, FROM_MEMORY, FROM_SYSTEM_L2 = 0, 1, 2, 3
HITS, MISSES = 0, 1                    # columns of the statistics


MAX_SLICES = 4
MAX_TMUS = 2 * MAX_SLICES              # two per slice
# The set-associative slice caches: the instruction cache of slice s is number s, its uniforms
# cache UNIFORMS + s.
ICACHE, UNIFORMS = 0, MAX_SLICES
SLICE_CACHES = 2 * MAX_SLICES
SLICE_CACHE_SLOTS = SLICE_CACHE_SETS * SLICE_CACHE_WAYS
# One flat int64 array holds every cache (flat so that the compiled core passes one argument):
L2_TAGS = 0                                            # [set * L2_WAYS + way] line address or EMPTY
L2_USED = L2_TAGS + L2_SETS * L2_WAYS                  # last use of each way, for LRU
L2_DATA = L2_USED + L2_SETS * L2_WAYS                  # [(set * L2_WAYS + way) * WORDS_PER_LINE + k]
L2_STATS = L2_DATA + L2_SETS * L2_WAYS * WORDS_PER_LINE    # hits, misses, use clock
TMU_STATS = L2_STATS + 3                               # [tmu * 2 + HITS/MISSES]
TMU_TAGS = TMU_STATS + 2 * MAX_TMUS                    # [tmu * TMU_LINES + index]
TMU_DATA = TMU_TAGS + MAX_TMUS * TMU_LINES             # [(tmu * TMU_LINES + index) * WORDS_PER_LINE + k]
SC_TAGS = TMU_DATA + MAX_TMUS * TMU_LINES * WORDS_PER_LINE   # [cache * SLOTS + set * WAYS + way]
SC_USED = SC_TAGS + SLICE_CACHES * SLICE_CACHE_SLOTS
SC_READY = SC_USED + SLICE_CACHES * SLICE_CACHE_SLOTS  # the clock at which a line's fill arrives
SC_DATA = SC_READY + SLICE_CACHES * SLICE_CACHE_SLOTS  # [(cache * SLOTS + slot) * WORDS_PER_LINE + k]
SC_STATS = SC_DATA + SLICE_CACHES * SLICE_CACHE_SLOTS * WORDS_PER_LINE   # [cache * 2 + HITS/MISSES], clock
SYS_TAGS = SC_STATS + 2 * SLICE_CACHES + 1             # [set * WAYS + way] line address or EMPTY
SYS_USED = SYS_TAGS + SYSTEM_L2_SETS * SYSTEM_L2_WAYS
SYS_STATS = SYS_USED + SYSTEM_L2_SETS * SYSTEM_L2_WAYS   # hits, misses, use clock
CACHE_SIZE = SYS_STATS + 3


def new_caches() -> np.ndarray:
    cache = np.zeros(CACHE_SIZE, dtype=np.int64)
    clear(cache)
    return cache


def clear(cache: np.ndarray) -> None:
    """What the host does before a run (V3D_L2CACTL and V3D_SLCACTL clears, semantics.md §8.2)."""
    clear_l2(cache)
    for tmu in range(MAX_TMUS):
        clear_tmu(cache, tmu)
    for number in range(SLICE_CACHES):
        clear_slice_cache(cache, number)


def clear_l2(cache: np.ndarray) -> None:
    cache[L2_TAGS:L2_USED] = EMPTY


def clear_tmu(cache: np.ndarray, tmu: int) -> None:
    cache[TMU_TAGS + tmu * TMU_LINES:TMU_TAGS + (tmu + 1) * TMU_LINES] = EMPTY


def clear_slice_cache(cache: np.ndarray, number: int) -> None:
    """Empty slice cache `number`: ICACHE + slice or UNIFORMS + slice."""
    cache[SC_TAGS + number * SLICE_CACHE_SLOTS:SC_TAGS + (number + 1) * SLICE_CACHE_SLOTS] = EMPTY


def restart_clocks(cache: np.ndarray) -> None:
    """A run's clocks start at 0: fills of lines kept from an earlier run have long arrived. The
    system L2's tags start empty (see the module's docstring)."""
    cache[SC_READY:SC_READY + SLICE_CACHES * SLICE_CACHE_SLOTS] = 0
    cache[SYS_TAGS:SYS_USED] = EMPTY


def statistics(cache: np.ndarray, tmus: int) -> dict[str, int]:
    """Hit and miss counts of the TMU caches, the instruction and uniforms caches (each summed over
    the slices) and the L2."""
    tmu = cache[TMU_STATS:TMU_STATS + 2 * tmus].reshape(tmus, 2)
    slices = cache[SC_STATS:SC_STATS + 2 * SLICE_CACHES].reshape(SLICE_CACHES, 2)
    icache, uniforms = slices[ICACHE:ICACHE + MAX_SLICES], slices[UNIFORMS:UNIFORMS + MAX_SLICES]
    return {"tmu_hits": int(tmu[:, HITS].sum()), "tmu_misses": int(tmu[:, MISSES].sum()),
            "uniforms_hits": int(uniforms[:, HITS].sum()), "uniforms_misses": int(uniforms[:, MISSES].sum()),
            "icache_hits": int(icache[:, HITS].sum()), "icache_misses": int(icache[:, MISSES].sum()),
            "l2_hits": int(cache[L2_STATS + HITS]), "l2_misses": int(cache[L2_STATS + MISSES]),
            "system_l2_hits": int(cache[SYS_STATS + HITS]), "system_l2_misses": int(cache[SYS_STATS + MISSES])}


@jit(inline=True)
def _find(cache, tags: int, base: int, ways: int, line: int) -> int:
    """The way (slot base + w) holding `line` in one set, or -1."""
    for slot in range(base, base + ways):
        if cache[tags + slot] == line:
            return slot
    return -1


@jit(inline=True)
def _victim(cache, tags: int, used: int, base: int, ways: int) -> int:
    """An empty way of one set, else the least recently used."""
    victim = base
    for slot in range(base, base + ways):
        if cache[tags + slot] == EMPTY:
            return slot
        if cache[used + slot] < cache[used + victim]:
            victim = slot
    return victim


@jit
def system_l2(cache, line: int) -> bool:
    """Whether the system L2 holds a line (it does afterwards: a miss allocates it, LRU)."""
    base = ((line // LINE_BYTES) % SYSTEM_L2_SETS) * SYSTEM_L2_WAYS
    cache[SYS_STATS + 2] += 1
    slot = _find(cache, SYS_TAGS, base, SYSTEM_L2_WAYS, line)
    hit = slot >= 0
    if not hit:
        slot = _victim(cache, SYS_TAGS, SYS_USED, base, SYSTEM_L2_WAYS)
        cache[SYS_TAGS + slot] = line
    cache[SYS_STATS + (HITS if hit else MISSES)] += 1
    cache[SYS_USED + slot] = cache[SYS_STATS + 2]
    return hit


@jit
def system_l2_misses(cache, address: int, nbytes: int) -> int:
    """Lines of [address, address + nbytes) the system L2 did not hold (each is allocated)."""
    missed = 0
    line = address - address % LINE_BYTES
    while line < address + nbytes:
        if not system_l2(cache, line):
            missed += 1
        line += LINE_BYTES
    return missed


@jit
def _l2_line(cache, data, line: int) -> tuple[int, int]:
    """(offset of a line's words in `cache`, level): an L2 hit, or filled from memory on a miss;
    offset OUTSIDE if the line is outside the SDRAM."""
    base = ((line // LINE_BYTES) % L2_SETS) * L2_WAYS
    cache[L2_STATS + 2] += 1
    slot = _find(cache, L2_TAGS, base, L2_WAYS, line)
    if slot >= 0:
        cache[L2_STATS + HITS] += 1
        cache[L2_USED + slot] = cache[L2_STATS + 2]
        return L2_DATA + slot * WORDS_PER_LINE, L2_HIT
    cache[L2_STATS + MISSES] += 1
    victim = _victim(cache, L2_TAGS, L2_USED, base, L2_WAYS)
    start = L2_DATA + victim * WORDS_PER_LINE
    for k in range(WORDS_PER_LINE):
        value = read32(data, line + 4 * k)
        if value == OUTSIDE:
            return OUTSIDE, FROM_MEMORY
        cache[start + k] = value
    cache[L2_TAGS + victim] = line
    cache[L2_USED + victim] = cache[L2_STATS + 2]
    return start, FROM_SYSTEM_L2 if system_l2(cache, line) else FROM_MEMORY


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


@jit(inline=True)
def _slice_set(number: int, line: int) -> int:
    return number * SLICE_CACHE_SLOTS + ((line // LINE_BYTES) % SLICE_CACHE_SETS) * SLICE_CACHE_WAYS


@jit(inline=True)
def slice_present(cache, number: int, address: int) -> bool:
    line = address - address % LINE_BYTES
    return _find(cache, SC_TAGS, _slice_set(number, line), SLICE_CACHE_WAYS, line) >= 0


@jit
def slice_read(cache, data, number: int, address: int, demand: bool = True) -> tuple[int, bool, int, int]:
    """The word slice cache `number` returns for a byte address, whether it is older than memory,
    the level that served it (TMU_HIT for a hit in this cache), and where its line's ready clock
    lives (the caller sets it for a line filled now); OUTSIDE outside the SDRAM. Only `demand`
    reads count as hits and misses (a prefetch counts neither)."""
    address &= ~3
    line = address - address % LINE_BYTES
    base = _slice_set(number, line)
    clock = SC_STATS + 2 * SLICE_CACHES
    cache[clock] += 1
    slot = _find(cache, SC_TAGS, base, SLICE_CACHE_WAYS, line)
    level = TMU_HIT
    if slot >= 0:
        cache[SC_STATS + 2 * number + HITS] += 1 if demand else 0
    else:
        cache[SC_STATS + 2 * number + MISSES] += 1 if demand else 0
        start, level = _l2_line(cache, data, line)
        if start == OUTSIDE:
            return OUTSIDE, False, level, 0
        slot = _victim(cache, SC_TAGS, SC_USED, base, SLICE_CACHE_WAYS)
        for k in range(WORDS_PER_LINE):
            cache[SC_DATA + slot * WORDS_PER_LINE + k] = cache[start + k]
        cache[SC_TAGS + slot] = line
    cache[SC_USED + slot] = cache[clock]
    value = cache[SC_DATA + slot * WORDS_PER_LINE + (address % LINE_BYTES) // 4]
    return value, value != read32(data, address), level, SC_READY + slot
