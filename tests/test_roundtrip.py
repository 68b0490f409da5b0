"""disassemble -> assemble gives the identical words: every GPU_FFT word, and 1,000,000 random words."""

from __future__ import annotations

import random

import numpy as np
import pytest

import qpuasm
from qpuasm import formats
from qpuasm.decode import decode_line

from .conftest import gpu_fft_hex_files


def _reassemble(text: str) -> list[int]:
    return [int(w) for w in qpuasm.assemble(text, check=False).words]


def test_every_gpu_fft_word_round_trips():
    files = gpu_fft_hex_files()
    if not files:
        pytest.skip("GPU_FFT hex files not present under ../shared/testvectors")
    total = 0
    for path in files:
        words = [int(w) for w in formats.read_hex(path.read_text())]
        text = qpuasm.disassemble(words)
        assert ".long" not in text, f"{path.name}: a GPU_FFT word has no text form"
        assert _reassemble(text) == words, path.name
        total += len(words)
    assert total == 20851


RANDOM_WORDS = 1_000_000
CHUNK = 50_000
DEFAULT_CHUNKS = 1          # 50,000 words in the default run; the whole million with `-m slow`


@pytest.mark.parametrize("chunk", [pytest.param(c, marks=[pytest.mark.slow] if c >= DEFAULT_CHUNKS else [])
                                   for c in range(RANDOM_WORDS // CHUNK)])
def test_random_words_round_trip(chunk):
    """Each word re-assembles from its text; words without a text form print as `.long low, high`."""
    rng = np.random.default_rng(1000 + chunk)
    words = [int(w) for w in rng.integers(0, 2**64, size=CHUNK, dtype=np.uint64)]
    text = qpuasm.disassemble(words, labels=False)
    lines = text.splitlines()
    assert len(lines) == CHUNK
    assert _reassemble(text) == words
    for word, line in zip(words, lines, strict=True):
        if line.startswith(".long"):
            assert decode_line(word) is None    # raw only when no text form exists


def test_raw_words_are_reserved_encodings():
    """Sample: a word prints raw only for a reserved field value or an unstatable bit combination."""
    from qpuasm import isa
    from qpuasm.instr import format_of
    rng = random.Random(7)
    reasons = {"reserved": 0, "other": 0}
    for _ in range(20000):
        word = rng.getrandbits(64)
        if decode_line(word) is not None:
            continue
        fmt = format_of(word)
        f = qpuasm.decode(word).fields if fmt else {}
        reserved = (
            fmt is None
            or (fmt == "alu" and (isa.ADD_OPS[f["op_add"]] is None or (f["pm"] and isa.PACK_MUL[f["pack"]] is None)))
            or (fmt == "branch" and (f["br_unused"] or isa.BRANCH_CONDITIONS[f["cond_br"]] is None))
            or (fmt == "semaphore" and f["sem_unused"])
            or (fmt == "ldi" and f["pm"] and isa.PACK_MUL[f["pack"]] is None)
        )
        reasons["reserved" if reserved else "other"] += 1
    assert reasons["other"] <= reasons["reserved"] // 20, reasons
