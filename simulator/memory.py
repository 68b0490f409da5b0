"""SDRAM as the V3D sees it: one byte array reached at bus addresses through the four cache-alias
windows (ecosystem.md / semantics.md §1: bits 31..30 of a bus address pick the alias, the rest the
byte)."""

from __future__ import annotations

import numpy as np

ALIAS_SHIFT = 30                     # bus address bits 31..30 select the cache alias
OFFSET_MASK = (1 << ALIAS_SHIFT) - 1


class MemoryError_(ValueError):
    """An access outside the simulated SDRAM."""


class Memory:
    def __init__(self, size: int):
        self.data = np.zeros(size, dtype=np.uint8)
        self.words = self.data.view("<u4")

    @property
    def size(self) -> int:
        return len(self.data)

    def offset(self, bus_address: int, length: int = 4) -> int:
        offset = bus_address & OFFSET_MASK
        if offset + length > self.size:
            raise MemoryError_(f"bus address {bus_address:#010x} (+{length}) is outside the {self.size}-byte SDRAM")
        return offset

    def read32(self, bus_address: int) -> int:
        offset = self.offset(bus_address & ~3)
        return int(self.words[offset >> 2])

    def write32(self, bus_address: int, value: int) -> None:
        offset = self.offset(bus_address & ~3)
        self.words[offset >> 2] = value & 0xFFFFFFFF

    def read_bytes(self, bus_address: int, size: int) -> int:
        """A little-endian value of 1, 2 or 4 bytes."""
        offset = self.offset(bus_address, size)
        return int.from_bytes(self.data[offset:offset + size].tobytes(), "little")

    def write_bytes(self, bus_address: int, value: int, size: int) -> None:
        offset = self.offset(bus_address, size)
        self.data[offset:offset + size] = list(value.to_bytes(size, "little"))
