"""TMU caches and the L2, for coherence and (later) timing (semantics.md §8.2, §10).

Each TMU has a 4 KB direct-mapped cache of 64-byte lines; the slices share an L2 of 64-byte lines,
4-way (size not published: policy 32 KB, least recently used replacement). Lines hold copies of
memory taken when they were filled. Neither level sees VDW DMA stores or host writes, so a read can
return data older than memory, as on the hardware: `TmuPath.read` says when that happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LINE_BYTES = 64
WORDS_PER_LINE = LINE_BYTES // 4
TMU_CACHE_BYTES = 4096                 # per TMU, direct-mapped (semantics.md §10)
L2_WAYS = 4
L2_BYTES = 32 * 1024                   # policy: "≈32 KB?" in semantics.md §10


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0


@dataclass
class DirectMapped:
    lines: int = TMU_CACHE_BYTES // LINE_BYTES
    tags: dict[int, int] = field(default_factory=dict)          # set -> line address
    data: dict[int, list[int]] = field(default_factory=dict)    # set -> words
    stats: Stats = field(default_factory=Stats)

    def lookup(self, line: int) -> list[int] | None:
        index = (line // LINE_BYTES) % self.lines
        if self.tags.get(index) == line:
            self.stats.hits += 1
            return self.data[index]
        self.stats.misses += 1
        return None

    def fill(self, line: int, words: list[int]) -> None:
        index = (line // LINE_BYTES) % self.lines
        self.tags[index] = line
        self.data[index] = words

    def clear(self) -> None:
        self.tags.clear()
        self.data.clear()


@dataclass
class SetAssociative:
    sets: int = L2_BYTES // LINE_BYTES // L2_WAYS
    ways: int = L2_WAYS
    content: dict[int, dict[int, list[int]]] = field(default_factory=dict)   # set -> {line: words}, LRU order
    stats: Stats = field(default_factory=Stats)

    def lookup(self, line: int) -> list[int] | None:
        ways = self.content.setdefault((line // LINE_BYTES) % self.sets, {})
        if line in ways:
            ways[line] = ways.pop(line)           # most recently used last
            self.stats.hits += 1
            return ways[line]
        self.stats.misses += 1
        return None

    def fill(self, line: int, words: list[int]) -> None:
        ways = self.content.setdefault((line // LINE_BYTES) % self.sets, {})
        if len(ways) >= self.ways:
            ways.pop(next(iter(ways)))             # evict the least recently used
        ways[line] = words

    def clear(self) -> None:
        self.content.clear()


class TmuPath:
    """The read path of every TMU: its cache, then the shared L2, then memory."""

    def __init__(self, memory, tmus: int):
        self.memory = memory
        self.tmu = [DirectMapped() for _ in range(tmus)]
        self.l2 = SetAssociative()

    def clear(self) -> None:
        """What the host does before a run (V3D_L2CACTL and V3D_SLCACTL clears, semantics.md §8.2)."""
        self.l2.clear()
        for cache in self.tmu:
            cache.clear()

    def read(self, tmu: int, address: int) -> tuple[int, bool, str]:
        """The word a TMU returns for a byte address (low 2 bits ignored), whether it is older than
        memory (stale), and which level served it: "tmu_hit", "l2_hit" or "memory"."""
        address &= ~3
        line = address - address % LINE_BYTES
        level = "tmu_hit"
        words = self.tmu[tmu].lookup(line)
        if words is None:
            level = "l2_hit"
            words = self.l2.lookup(line)
            if words is None:
                level = "memory"
                words = [self.memory.read32(line + 4 * k) for k in range(WORDS_PER_LINE)]
                self.l2.fill(line, words)
            self.tmu[tmu].fill(line, words)
        value = words[(address % LINE_BYTES) // 4]
        return value, value != self.memory.read32(address), level
