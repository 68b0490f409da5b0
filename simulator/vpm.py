"""The VPM's user window and its DMA engines (semantics.md §8.3, §8.5; qpu-isa.md §18).

The window is 64 rows x 16 words of 32 bits (`new_vpm()`). Generic QPU accesses move one 16-lane
vector in one of the layouts chosen by SIZE (8/16/32-bit), HORIZ and LANED; the VDW stores a 2-D
block to memory and the VDR loads one. Setup words are decoded with the field table of
`qpuasm.isa`. The functions are in the compilable subset (jit.py).
"""

from __future__ import annotations

import numpy as np

from qpuasm import isa

from .cache import LINE_BYTES, system_l2_misses
from .jit import jit
from .memory import OUTSIDE, read_bytes, write_bytes

ROWS = 64
COLUMNS = 16
WORDS = ROWS * COLUMNS
LANES = isa.LANES
RESERVED = -1                 # what isa's decoders answer for a reserved code


def field_of(f: isa.Field) -> tuple[int, int, int]:
    """(lo, mask, what 0 means) of a field of isa's table: the form the compiled code reads."""
    return f.lo, f.mask, f.zero_means


# (lo, mask, what 0 means) of the setup fields, read off the isa table once.
VPM_ADDR, VPM_STRIDE, VPM_SIZE = field_of(isa.VPM_ADDR), field_of(isa.VPM_STRIDE), field_of(isa.VPM_SIZE)
VPM_HORIZ, VPM_LANED, VPM_NUM = field_of(isa.VPM_HORIZ), field_of(isa.VPM_LANED), field_of(isa.VPM_NUM)
VDW_UNITS, VDW_DEPTH, VDW_HORIZ = field_of(isa.VDW_UNITS), field_of(isa.VDW_DEPTH), field_of(isa.VDW_HORIZ)
VDW_VPMBASE, VDW_MODEW = field_of(isa.VDW_VPMBASE), field_of(isa.VDW_MODEW)
VDR_MODEW, VDR_MPITCH, VDR_ROWLEN = field_of(isa.VDR_MODEW), field_of(isa.VDR_MPITCH), field_of(isa.VDR_ROWLEN)
VDR_NROWS, VDR_VPITCH, VDR_VERT = field_of(isa.VDR_NROWS), field_of(isa.VDR_VPITCH), field_of(isa.VDR_VERT)
VDR_ADDRXY = field_of(isa.VDR_ADDRXY)


def new_vpm() -> np.ndarray:
    return np.zeros(WORDS, dtype=np.int64)


@jit(inline=True)
def get(value: int, field: tuple[int, int, int]) -> int:
    return (value >> field[0]) & field[1]


@jit
def count(value: int, field: tuple[int, int, int]) -> int:
    """A count field (isa.Field.count): its value, or what 0 stands for."""
    return get(value, field) or field[2]


@jit
def generic_advanced(setup: int) -> int:
    """The setup after one access: ADDR += STRIDE, wrapping past row 63 (§8.3)."""
    stride = count(setup, VPM_STRIDE)
    addr = (get(setup, VPM_ADDR) + stride) & VPM_ADDR[1]
    return (setup & ~(VPM_ADDR[1] << VPM_ADDR[0])) | (addr << VPM_ADDR[0])


# The SIZE and MODEW codes are decoded by isa's functions, compiled here (one copy of each code).
_subwords = jit(isa.vpm_values_per_word)


@jit
def position(setup: int, lane: int) -> tuple[int, int, int]:
    """(word index, bit shift, bit width) of one lane of a generic access (§8.3 access patterns);
    the caller has refused a reserved SIZE."""
    per_word = _subwords(get(setup, VPM_SIZE))
    width = 32 // per_word
    addr = get(setup, VPM_ADDR)
    sub_bits = 0 if per_word == 1 else 1 if per_word == 2 else 2    # bits of sub-word select
    sub = addr & (per_word - 1)
    laned = get(setup, VPM_LANED) == 1
    if get(setup, VPM_HORIZ):
        row = (addr >> sub_bits) & (ROWS - 1)
        if per_word == 1 or laned:
            column, part = lane, sub                    # laned: sub-word `sub` of word `lane`
        else:                                           # packed: consecutive sub-words of few words
            column, part = sub * (COLUMNS // per_word) + lane // per_word, lane % per_word
    else:
        column = (addr >> sub_bits) & (COLUMNS - 1)
        block = ((addr >> (sub_bits + 4)) & 3) << 4     # Y[5:4]: a block of 16 rows
        if per_word == 1 or laned:
            row, part = block + lane, sub
        else:
            row, part = block + sub * (LANES // per_word) + lane // per_word, lane % per_word
    return (row & (ROWS - 1)) * COLUMNS + column, part * width, width


@jit
def size_reserved(setup: int) -> bool:
    return _subwords(get(setup, VPM_SIZE)) == RESERVED


@jit
def read_vector(vpm, setup: int, out, start: int) -> None:
    """One vector into out[start:start + 16]; 8/16-bit values come back zero-extended in the low
    bits (§8.3)."""
    for lane in range(LANES):
        word, shift, width = position(setup, lane)
        out[start + lane] = (vpm[word] >> shift) & ((1 << width) - 1)


@jit
def write_vector(vpm, setup: int, values, start: int) -> None:
    """One vector from values[start:start + 16]; 8/16-bit accesses store the low bits of each
    lane (§8.3)."""
    for lane in range(LANES):
        word, shift, width = position(setup, lane)
        mask = ((1 << width) - 1) << shift
        vpm[word] = (vpm[word] & ~mask) | ((values[start + lane] << shift) & mask)


# ---- DMA ------------------------------------------------------------------------------------------

element = jit(isa.dma_element)         # (bytes per element, sub-word offset), (RESERVED, 0) for 1


@jit
def memory_rows(setup: int, store: bool, stride: int) -> tuple[int, int, int]:
    """The memory side of a DMA transfer: (rows, bytes per row, bytes from one row's start to the
    next's), or (0, 0, 0) for a reserved MODEW. VDW: UNITS rows of DEPTH elements, each row `stride`
    bytes after the previous one's end; VDR: NROWS rows of ROWLEN elements, MPITCH (or the extended
    `stride`) apart (§8.5)."""
    size, _ = element(get(setup, VDW_MODEW) if store else get(setup, VDR_MODEW))
    if size == RESERVED:
        return 0, 0, 0
    if store:
        units = count(setup, VDW_UNITS)
        depth = count(setup, VDW_DEPTH)
        return units, depth * size, depth * size + stride
    mpitch = get(setup, VDR_MPITCH)
    rowlen = count(setup, VDR_ROWLEN)
    nrows = count(setup, VDR_NROWS)
    return nrows, rowlen * size, (8 << mpitch) if mpitch else stride


@jit
def store(vpm, data, cache, address: int, setup: int, stride: int) -> tuple[int, int, int, int]:
    """VDW: UNITS memory rows of DEPTH elements; row r at address + r*(DEPTH*size + stride).
    Horizontal: row r comes from VPM row Y+r starting at column X (continuing along the row);
    vertical: from VPM column X+r starting at row Y. 8/16-bit elements walk through sub-words
    starting at the MODEW offset. Vertical 8/16-bit stores are policy (semantics.md §8.5 [UNKNOWN]).
    Returns (bytes moved, OUTSIDE, bytes through the SDRAM port, memory rows) or (RESERVED, 0, 0, 0)
    / (0, the bus address outside the SDRAM, 0, 0). Stores write through the system L2 (allocating
    its lines), so every byte crosses the SDRAM port."""
    units, row_bytes, step = memory_rows(setup, True, stride)
    if units == 0:
        return RESERVED, 0, 0, 0
    horizontal = get(setup, VDW_HORIZ)
    base = get(setup, VDW_VPMBASE)
    y, x = base >> 4, base & 15
    size, offset = element(get(setup, VDW_MODEW))
    depth = row_bytes // size
    per_word = 4 // size
    for unit in range(units):
        row_address = address + unit * step
        system_l2_misses(cache, row_address, depth * size)
        for k in range(depth):
            if horizontal:
                position_ = ((y + unit) * COLUMNS + x) * per_word + offset + k
                word, part = position_ // per_word, position_ % per_word
            else:
                # semantics.md §8.5 (measured): memory row r from VPM column X + r; past column 15
                # the column wraps to 0 and Y advances by 16.
                column = x + unit
                word, part = (y + k + 16 * (column // COLUMNS)) * COLUMNS + column % COLUMNS, offset
            value = (vpm[word % WORDS] >> (part * size * 8)) & ((1 << (size * 8)) - 1)
            if not write_bytes(data, row_address + k * size, value, size):
                return 0, row_address + k * size, 0, 0
    return units * depth * size, OUTSIDE, units * depth * size, units


@jit
def load(vpm, data, cache, address: int, setup: int, extended_pitch: int) -> tuple[int, int, int, int]:
    """VDR: NROWS memory rows of ROWLEN elements, row r at address + r*pitch. Horizontal: row r
    goes to VPM row Y + r*VPITCH from column X; vertical (VERT=1): down VPM column X from row
    Y + r*VPITCH (measured on a Pi, semantics.md §8.5; VC4C's emulator's column X + r is wrong).
    Returns like `store`; only the lines the system L2 did not hold cross the SDRAM port."""
    nrows, row_bytes, pitch = memory_rows(setup, False, extended_pitch)
    if nrows == 0:
        return RESERVED, 0, 0, 0
    size, offset = element(get(setup, VDR_MODEW))
    rowlen = row_bytes // size
    vpitch = count(setup, VDR_VPITCH)
    vertical = get(setup, VDR_VERT)
    addrxy = get(setup, VDR_ADDRXY)
    y, x = addrxy >> 4, addrxy & 15
    per_word = 4 // size
    mask = (1 << (size * 8)) - 1
    missed = 0
    for r in range(nrows):
        missed += system_l2_misses(cache, address + r * pitch, rowlen * size)
        for k in range(rowlen):
            value = read_bytes(data, address + r * pitch + k * size, size)
            if value == OUTSIDE:
                return 0, address + r * pitch + k * size, 0, 0
            if vertical:
                word, part = (y + r * vpitch + k) * COLUMNS + x, offset
            else:
                position_ = ((y + r * vpitch) * COLUMNS + x) * per_word + offset + k
                word, part = position_ // per_word, position_ % per_word
            word %= WORDS
            shift = part * size * 8
            vpm[word] = (vpm[word] & ~(mask << shift)) | (value << shift)
    return nrows * rowlen * size, OUTSIDE, missed * LINE_BYTES, nrows
