"""The compiled core's switch: every function of the simulator's core is written once, in a subset
of Python that numba compiles, and decorated with `jit`. Where numba is installed (the project's
own dependency on x86_64 and aarch64) it compiles them; elsewhere, or with VC4KIT_JIT=0 in the
environment, they run as plain Python and give the same bits, only slower."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Sources whose code or constants the compiled functions contain (isa's tables become constants).
_SOURCES = sorted(_HERE.glob("*.py")) + [_HERE.parent / "qpuasm" / "isa.py"]


def _drop_stale_cache() -> None:
    """numba keys a cached function on its own file only, not on the files of the functions and
    constants it uses: drop every cached function when any of these sources changed."""
    cache = _HERE / "__pycache__"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in _SOURCES if p.exists())).hexdigest()
    stamp = cache / "vc4kit-jit.stamp"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        cache.mkdir(exist_ok=True)
        for path in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            path.unlink()
        stamp.write_text(digest)
    except OSError:
        pass                       # a read-only install: its sources do not change either


try:
    if os.environ.get("VC4KIT_JIT", "1") == "0":
        raise ImportError("disabled by VC4KIT_JIT=0")
    from numba import njit
    _drop_stale_cache()
except ImportError:
    njit = None

COMPILED = njit is not None


def jit(function=None, *, inline: bool = False):
    """Compile `function` with numba (cached on disk) when available; else return it unchanged.
    `inline`: numba inlines it into its callers (for the core's per-instruction helpers)."""
    if function is None:
        return lambda f: jit(f, inline=inline)
    if njit is None:
        return function
    # _nrt=False: the core allocates nothing, and without the runtime numba does not count
    # references to every array argument at every call (atomic operations that cost more than
    # the whole instruction otherwise).
    return njit(cache=True, nogil=True, _nrt=False, inline="always" if inline else "never")(function)


def bit_length(x: int) -> int:
    """int.bit_length of 0 <= x < 2^63; compiled, LLVM's count-leading-zeros instruction."""
    return int(x).bit_length()


def double_from_float_bits(bits: int) -> float:
    """The float32 whose pattern is the low 32 bits of `bits`, as a double (exactly)."""
    return struct.unpack("<f", struct.pack("<I", int(bits) & 0xFFFFFFFF))[0]


def bits_from_double(value: float) -> int:
    """The 64-bit pattern of a double, as a signed int64."""
    return struct.unpack("<q", struct.pack("<d", value))[0]


if njit is not None:
    import numpy as np
    from numba import types
    from numba.cpython.unsafe.numbers import leading_zeros, viewer
    from numba.extending import overload

    @overload(bit_length, jit_options={"cache": True})
    def _bit_length_compiled(x):
        return lambda x: 64 - leading_zeros(x)

    @overload(double_from_float_bits, jit_options={"cache": True})
    def _double_from_float_bits_compiled(bits):
        return lambda bits: np.float64(viewer(np.uint32(bits & 0xFFFFFFFF), types.float32))

    @overload(bits_from_double, jit_options={"cache": True})
    def _bits_from_double_compiled(value):
        return lambda value: viewer(value, types.int64)
