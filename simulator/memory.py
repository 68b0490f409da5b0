"""SDRAM as the V3D sees it: one byte array reached at bus addresses through the four cache-alias
windows (ecosystem.md / semantics.md §1: bits 31..30 of a bus address pick the alias, the rest the
byte). The `Memory` class is the host's view; the jit functions are the core's, and return -1
for an access outside the SDRAM so that the core can stop with a clear error."""

from __future__ import annotations

import numpy as np

from .jit import jit

ALIAS_SHIFT = 30                     # bus address bits 31..30 select the cache alias
OFFSET_MASK = (1 << ALIAS_SHIFT) - 1
OUTSIDE = -1


class MemoryError_(ValueError):
    """An access outside the simulated SDRAM."""


def outside_message(bus_address: int, length: int, size: int) -> str:
    return f"bus address {bus_address:#010x} (+{length}) is outside the {size}-byte SDRAM"


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
            raise MemoryError_(outside_message(bus_address, length, self.size))
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


@jit
def read32(data, bus_address: int) -> int:
    """The aligned word at a bus address (low 2 bits ignored), or OUTSIDE."""
    offset = bus_address & OFFSET_MASK & ~3
    if offset + 4 > len(data):
        return OUTSIDE
    return int(data[offset]) | int(data[offset + 1]) << 8 | int(data[offset + 2]) << 16 | int(data[offset + 3]) << 24


@jit
def read_bytes(data, bus_address: int, size: int) -> int:
    """A little-endian value of `size` bytes, or OUTSIDE."""
    offset = bus_address & OFFSET_MASK
    if offset + size > len(data):
        return OUTSIDE
    value = 0
    for k in range(size):
        value |= int(data[offset + k]) << (8 * k)
    return value


@jit
def write_bytes(data, bus_address: int, value: int, size: int) -> bool:
    """Store the low `size` bytes of value, little-endian; False if outside the SDRAM."""
    offset = bus_address & OFFSET_MASK
    if offset + size > len(data):
        return False
    for k in range(size):
        data[offset + k] = (value >> (8 * k)) & 0xFF
    return True
