"""The VPM's user window and its DMA engines (semantics.md §8.3, §8.5; qpu-isa.md §18).

The window is 64 rows x 16 words of 32 bits. Generic QPU accesses move one 16-lane vector in one
of the layouts chosen by SIZE (8/16/32-bit), HORIZ and LANED; the VDW stores a 2-D block to memory
and the VDR loads one. Setup words are decoded with the field table of `qpuasm.isa`.
"""

from __future__ import annotations

from dataclasses import dataclass

from qpuasm import isa

ROWS = 64
COLUMNS = 16
WORDS = ROWS * COLUMNS
LANES = 16
SUBWORDS = {0: 4, 1: 2, 2: 1}          # SIZE 8-bit, 16-bit, 32-bit -> values per 32-bit word


@dataclass(frozen=True)
class Generic:
    """A generic read or write setup: where the next vector goes and how the address advances."""

    addr: int
    stride: int
    size: int
    horizontal: bool
    laned: bool

    @classmethod
    def decode(cls, value: int) -> Generic:
        return cls(isa.VPM_ADDR.get(value), isa.VPM_STRIDE.get(value) or 64, isa.VPM_SIZE.get(value),
                   bool(isa.VPM_HORIZ.get(value)), bool(isa.VPM_LANED.get(value)))

    def advanced(self) -> Generic:
        # Each access adds STRIDE to ADDR; addresses wrap past row 63 (§8.3).
        return Generic((self.addr + self.stride) & isa.VPM_ADDR.mask, self.stride, self.size,
                       self.horizontal, self.laned)


def positions(setup: Generic) -> list[tuple[int, int, int]]:
    """(word index, bit shift, bit width) for each lane of one generic access (§8.3 access patterns)."""
    per_word = SUBWORDS.get(setup.size)
    if per_word is None:
        raise ValueError(f"VPM access SIZE {setup.size} is reserved")
    width = 32 // per_word
    addr = setup.addr
    sub_bits = per_word.bit_length() - 1                # 0, 1 or 2 bits of sub-word select
    sub = addr & (per_word - 1)
    out = []
    for lane in range(LANES):
        if setup.horizontal:
            row = (addr >> sub_bits) & (ROWS - 1)
            if per_word == 1 or setup.laned:
                column, part = lane, sub                # laned: sub-word `sub` of word `lane`
            else:                                       # packed: consecutive sub-words of few words
                column, part = sub * (COLUMNS // per_word) + lane // per_word, lane % per_word
        else:
            column = (addr >> sub_bits) & (COLUMNS - 1)
            block = ((addr >> (sub_bits + 4)) & 3) << 4  # Y[5:4]: a block of 16 rows
            if per_word == 1 or setup.laned:
                row, part = block + lane, sub
            else:
                row, part = block + sub * (LANES // per_word) + lane // per_word, lane % per_word
        out.append((((row & (ROWS - 1)) * COLUMNS + column), part * width, width))
    return out


class Vpm:
    def __init__(self) -> None:
        self.words = [0] * WORDS

    def read(self, setup: Generic) -> list[int]:
        """One vector; 8/16-bit values come back zero-extended in the low bits (§8.3)."""
        return [(self.words[w] >> shift) & ((1 << width) - 1) for w, shift, width in positions(setup)]

    def write(self, setup: Generic, values: list[int]) -> None:
        """One vector; 8/16-bit accesses store the low bits of each lane (§8.3)."""
        for (w, shift, width), value in zip(positions(setup), values, strict=True):
            mask = ((1 << width) - 1) << shift
            self.words[w] = (self.words[w] & ~mask) | ((value << shift) & mask)

    # ---- DMA --------------------------------------------------------------------------------------

    @staticmethod
    def _element(modew: int) -> tuple[int, int]:
        """(bytes per element, sub-word offset) from a MODEW field: 0 = 32-bit, 2-3 = 16-bit with
        the half in bit 0, 4-7 = 8-bit with the byte in bits 1..0 (§8.5)."""
        if modew == 0:
            return 4, 0
        if modew in (2, 3):
            return 2, modew & 1
        if modew >= 4:
            return 1, modew & 3
        raise ValueError(f"DMA MODEW {modew} is reserved")

    def store(self, memory, address: int, setup: int, stride: int) -> int:
        """VDW: UNITS memory rows of DEPTH elements; row r at address + r*(DEPTH*size + stride).
        Horizontal: row r comes from VPM row Y+r starting at column X (continuing along the row);
        vertical: from VPM column X+r starting at row Y. 8/16-bit elements walk through sub-words
        starting at the MODEW offset. Vertical 8/16-bit stores are policy (semantics.md §8.5 [UNKNOWN])."""
        units = isa.VDW_UNITS.get(setup) or 128
        depth = isa.VDW_DEPTH.get(setup) or 128
        horizontal = isa.VDW_HORIZ.get(setup)
        base = isa.VDW_VPMBASE.get(setup)
        y, x = base >> 4, base & 15
        size, offset = self._element(isa.VDW_MODEW.get(setup))
        per_word = 4 // size
        for unit in range(units):
            row_address = address + unit * (depth * size + stride)
            for k in range(depth):
                if horizontal:
                    position = ((y + unit) * COLUMNS + x) * per_word + offset + k
                    word, part = position // per_word, position % per_word
                else:
                    word, part = (y + k) * COLUMNS + (x + unit) % COLUMNS, offset
                value = (self.words[word % WORDS] >> (part * size * 8)) & ((1 << (size * 8)) - 1)
                memory.write_bytes(row_address + k * size, value, size)
        return units * depth * size                    # bytes moved, for the timing model

    def load(self, memory, address: int, setup: int, extended_pitch: int) -> int:
        """VDR: NROWS memory rows of ROWLEN elements, row r at address + r*pitch. Horizontal: row r
        goes to VPM row Y + r*VPITCH from column X; vertical (VERT=1): to VPM column X + r*VPITCH from
        row Y, as VC4C's emulator does (the guide is ambiguous: policy, semantics.md §8.5)."""
        size, offset = self._element(isa.VDR_MODEW.get(setup))
        mpitch = isa.VDR_MPITCH.get(setup)
        pitch = 8 << mpitch if mpitch else extended_pitch
        rowlen = isa.VDR_ROWLEN.get(setup) or 16
        nrows = isa.VDR_NROWS.get(setup) or 16
        vpitch = isa.VDR_VPITCH.get(setup) or 16
        vertical = isa.VDR_VERT.get(setup)
        addrxy = isa.VDR_ADDRXY.get(setup)
        y, x = addrxy >> 4, addrxy & 15
        per_word = 4 // size
        mask = (1 << (size * 8)) - 1
        for r in range(nrows):
            for k in range(rowlen):
                value = memory.read_bytes(address + r * pitch + k * size, size)
                if vertical:
                    word, part = (y + k) * COLUMNS + (x + r * vpitch) % COLUMNS, offset
                else:
                    position = ((y + r * vpitch) * COLUMNS + x) * per_word + offset + k
                    word, part = position // per_word, position % per_word
                word %= WORDS
                shift = part * size * 8
                self.words[word] = (self.words[word] & ~(mask << shift)) | (value << shift)
        return nrows * rowlen * size                   # bytes moved, for the timing model
