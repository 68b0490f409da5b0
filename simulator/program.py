"""QPU code decoded once into an array the core executes: one row per 64-bit word, one column per
field name of `qpuasm.isa.FORMATS` (each word's fields are read with its own format's positions),
plus the format and the low 32 bits. Nothing here knows a bit position: it comes from isa and
instr.format_of."""

from __future__ import annotations

import numpy as np

from qpuasm import isa
from qpuasm.instr import format_of

FORMAT_CODES = {name: code for code, name in enumerate(isa.FORMATS)}
FMT_ALU, FMT_LDI, FMT_SEMAPHORE, FMT_BRANCH = (FORMAT_CODES[n] for n in ("alu", "ldi", "semaphore", "branch"))
FMT_UNDEFINED = len(FORMAT_CODES)            # a load-immediate mode with no meaning (§12)

C_FORMAT, C_LOW = 0, 1
COLUMN: dict[str, int] = {}
for _fields in isa.FORMATS.values():
    for _f in _fields:
        COLUMN.setdefault(_f.name, C_LOW + 1 + len(COLUMN))
COLUMNS = C_LOW + 1 + len(COLUMN)
# The class of a word depends on its top 7 bits (sig and the load-immediate mode, §1).
_CLASS_SHIFT = min(isa.SIG.lo, isa.LDI_MODE.lo)
assert isa.SIG.hi == 63 and isa.LDI_MODE.hi == isa.SIG.lo - 1


def _format_table() -> np.ndarray:
    table = np.empty(1 << (64 - _CLASS_SHIFT), dtype=np.int64)
    for top in range(len(table)):
        name = format_of(top << _CLASS_SHIFT)
        table[top] = FORMAT_CODES[name] if name else FMT_UNDEFINED
    return table


_FORMAT_OF_TOP = _format_table()


def decode_words(words: np.ndarray) -> np.ndarray:
    """int64 array (len(words), COLUMNS) of the fields of each uint64 word."""
    words = np.asarray(words, dtype=np.uint64)
    out = np.zeros((len(words), COLUMNS), dtype=np.int64)
    formats = _FORMAT_OF_TOP[(words >> np.uint64(_CLASS_SHIFT)).astype(np.int64)]
    out[:, C_FORMAT] = formats
    out[:, C_LOW] = (words & np.uint64(0xFFFFFFFF)).astype(np.int64)
    for name, fields in isa.FORMATS.items():
        chosen = formats == FORMAT_CODES[name]
        if not chosen.any():
            continue
        selected = words[chosen]
        for f in fields:
            out[chosen, COLUMN[f.name]] = ((selected >> np.uint64(f.lo)) & np.uint64(f.mask)).astype(np.int64)
    return out
