"""Bad input never crashes: mutated sources give a Program or an AssembleError with a position;
random words always disassemble."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qpuasm
from qpuasm.decode import decode_line

from .conftest import DATA

CORPUS = [line.split("\t")[0].replace("\\n", "\n") for line in (DATA / "golden_asm.tsv").read_text().splitlines()
          if line and not line.startswith("#")]
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 ,;.:-+*/%<>=!&|^~()[]#\"'\n\t_"


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        action = rng.randrange(4)
        position = rng.randrange(len(chars) + 1)
        if action == 0 and chars:
            del chars[min(position, len(chars) - 1)]
        elif action == 1:
            chars.insert(position, rng.choice(ALPHABET))
        elif action == 2 and chars:
            chars[min(position, len(chars) - 1)] = rng.choice(ALPHABET)
        else:
            other = rng.choice(CORPUS)
            start = rng.randrange(len(other))
            chars[position:position] = other[start:start + rng.randint(1, 8)]
    return "".join(chars)


def _assemble_or_error(source: str) -> None:
    try:
        qpuasm.assemble(source, filename="f.qasm")
    except qpuasm.AssembleError as err:
        assert err.filename == "f.qasm" and err.line >= 1 and err.column >= 1 and err.message, repr(source)


def test_100k_mutated_sources():
    rng = random.Random(2024)
    for _ in range(100_000):
        _assemble_or_error(_mutate(rng, rng.choice(CORPUS)))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=80))
def test_arbitrary_text(source):
    _assemble_or_error(source)


@pytest.mark.parametrize("chunk", [pytest.param(c, marks=[pytest.mark.slow] if c else []) for c in range(10)])
def test_1m_random_words_decode_and_disassemble(chunk):
    """Decoding and disassembling never fails: every word gets a text or a raw directive (100,000 words
    by default, the whole million with `-m slow`)."""
    rng = random.Random(99 + chunk)
    for _ in range(100_000):
        word = rng.getrandbits(64)
        decode_line(word)
    words = [rng.getrandbits(64) for _ in range(20_000)]
    assert len(qpuasm.disassemble(words).splitlines()) >= 20_000
