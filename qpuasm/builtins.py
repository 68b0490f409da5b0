"""Built-in functions of Broadcom's qasm (as used by GPU_FFT) and vc4asm's VDR helpers: they compose
VPM/DMA setup words (qpu-isa.md §18) from the field table in `isa.py`, and make semaphore tokens."""

from __future__ import annotations

from collections.abc import Callable

from . import isa
from .operands import Semaphore


class BuiltinError(ValueError):
    pass


def _in(name: str, value: int, low: int, high: int) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise BuiltinError(f"{name} must be an integer in {low}..{high}, not {value!r}")
    return value


def vpm_setup(num: int, stride: int, addr_word: int) -> int:
    """Generic VPM read/write setup: `num` vectors (16 = 0), `stride` (64 = 0, may be negative)."""
    _in("num", num, 0, 16)
    _in("stride", stride, -64, 64)
    _in("VPM address word", addr_word, 0, isa.VPM_ADDR_WORD.mask)
    return (isa.VPM_NUM.put_count(num) | isa.VPM_STRIDE.put(stride & isa.VPM_STRIDE.mask)   # two's complement
            | isa.VPM_ADDR_WORD.put(addr_word))


def _vpm_addr(horiz: int, laned: int, size: int, addr: int) -> int:
    return isa.VPM_HORIZ.put(horiz) | isa.VPM_LANED.put(laned) | isa.VPM_SIZE.put(size) | isa.VPM_ADDR.put(addr)


def h32(y: int) -> int:
    """Horizontal 32-bit VPM access at row y."""
    return _vpm_addr(1, 0, isa.VPM_SIZE_32, _in("y", y, 0, 63))


def v32(y: int, x: int) -> int:
    """Vertical 32-bit VPM access: y a multiple of 16 (Y[5:4]), x the column 0..15."""
    if y & ~0x30:
        raise BuiltinError(f"y of a vertical access must be 0, 16, 32 or 48, not {y!r}")
    return _vpm_addr(0, 0, isa.VPM_SIZE_32, y | _in("x", x, 0, 15))


def h16p(y: int, half: int) -> int:
    return _vpm_addr(1, 0, isa.VPM_SIZE_16, _in("y", y, 0, 63) << 1 | _in("half", half, 0, 1))


def h16l(y: int, half: int) -> int:
    return _vpm_addr(1, 1, isa.VPM_SIZE_16, _in("y", y, 0, 63) << 1 | _in("half", half, 0, 1))


def h8p(y: int, byte: int) -> int:
    return _vpm_addr(1, 0, isa.VPM_SIZE_8, _in("y", y, 0, 63) << 2 | _in("byte", byte, 0, 3))


def h8l(y: int, byte: int) -> int:
    return _vpm_addr(1, 1, isa.VPM_SIZE_8, _in("y", y, 0, 63) << 2 | _in("byte", byte, 0, 3))


def vdw_setup_0(units: int, depth: int, dma_word: int) -> int:
    """VDW basic setup: `units` rows of `depth` words (128 = 0) from the VPM position in dma_word."""
    _in("units", units, 0, 128)
    _in("depth", depth, 0, 128)
    _in("VDW DMA word", dma_word, 0, isa.VDW_DMA_WORD.mask)
    return (isa.VPM_SETUP_ID.put(isa.VDW_ID_BASIC) | isa.VDW_UNITS.put_count(units)
            | isa.VDW_DEPTH.put_count(depth) | isa.VDW_DMA_WORD.put(dma_word))


def vdw_setup_1(stride: int) -> int:
    """VDW stride setup: bytes from the end of one row to the start of the next."""
    return isa.VPM_SETUP_ID.put(isa.VDW_ID_STRIDE) | isa.VDW_STRIDE.put(_in("stride", stride, 0, isa.VDW_STRIDE.mask))


def _dma(horiz: int, y: int, x: int, modew: int) -> int:
    return (isa.VDW_HORIZ.put(horiz) | isa.VDW_VPMBASE.put(_in("y", y, 0, 127) << 4 | _in("x", x, 0, 15))
            | isa.VDW_MODEW.put(modew))


def dma_h32(y: int, x: int) -> int:
    return _dma(1, y, x, isa.DMA_MODEW_32)


def dma_v32(y: int, x: int) -> int:
    return _dma(0, y, x, isa.DMA_MODEW_32)


def dma_h16p(y: int, x: int, half: int) -> int:
    return _dma(1, y, x, isa.DMA_MODEW_16 | _in("half", half, 0, 1))


def dma_v16p(y: int, x: int, half: int) -> int:
    return _dma(0, y, x, isa.DMA_MODEW_16 | _in("half", half, 0, 1))


def dma_h8p(y: int, x: int, byte: int) -> int:
    return _dma(1, y, x, isa.DMA_MODEW_8 | _in("byte", byte, 0, 3))


def dma_v8p(y: int, x: int, byte: int) -> int:
    return _dma(0, y, x, isa.DMA_MODEW_8 | _in("byte", byte, 0, 3))


def vdr_setup_0(mpitch: int, rowlen: int, nrows: int, dma_word: int) -> int:
    """VDR load setup: memory pitch 8 * 2^mpitch bytes, `nrows` rows of `rowlen` words (16 = 0)."""
    _in("mpitch", mpitch, 0, isa.VDR_MPITCH.mask)
    _in("rowlen", rowlen, 0, 16)
    _in("nrows", nrows, 0, 16)
    _in("VDR DMA word", dma_word, 0, 0x7FFFFFFF)
    return (isa.VDR_ID.put(1) | isa.VDR_MPITCH.put(mpitch) | isa.VDR_ROWLEN.put_count(rowlen)
            | isa.VDR_NROWS.put_count(nrows) | dma_word)


def vdr_setup_1(stride: int) -> int:
    """VDR extended pitch setup (used when mpitch = 0)."""
    pitch = _in("stride", stride, 0, isa.VDR_MPITCHB.mask)
    return isa.VDR_EXT_ID.put(isa.VDR_EXT_ID_VALUE) | isa.VDR_MPITCHB.put(pitch)


def _vdr(vert: int, vpitch: int, y: int, x: int) -> int:
    _in("vpitch", vpitch, 0, 16)
    return (isa.VDR_VPITCH.put_count(vpitch) | isa.VDR_VERT.put(vert)
            | isa.VDR_ADDRXY.put(_in("y", y, 0, 63) << 4 | _in("x", x, 0, 15)))


def vdr_h32(vpitch: int, y: int, x: int) -> int:
    return _vdr(0, vpitch, y, x)


def vdr_v32(vpitch: int, y: int, x: int) -> int:
    return _vdr(1, vpitch, y, x)


def sacq(number: int) -> Semaphore:
    return Semaphore(True, _in("semaphore", number, 0, isa.SEMAPHORE_COUNT - 1))


def srel(number: int) -> Semaphore:
    return Semaphore(False, _in("semaphore", number, 0, isa.SEMAPHORE_COUNT - 1))


BUILTINS: dict[str, Callable[..., object]] = {
    f.__name__: f for f in (
        vpm_setup, h32, v32, h16p, h16l, h8p, h8l, vdw_setup_0, vdw_setup_1, dma_h32, dma_v32, dma_h16p,
        dma_v16p, dma_h8p, dma_v8p, vdr_setup_0, vdr_setup_1, vdr_h32, vdr_v32, sacq, srel)
}
