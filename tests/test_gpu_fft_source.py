"""Broadcom's GPU_FFT sources, unmodified, assemble to Broadcom's own words.

The sources are someone else's program and are not part of this project: the test reads them from
the folder in VC4KIT_GPU_FFT_SRC (or where Raspberry Pi OS installed hello_fft), holding
`gpu_fft_*.qasm`, `gpu_fft.qinc` and `shader_*.hex` directly or in `qasm/` and `hex/` subfolders.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import qpuasm
from qpuasm import formats

CANDIDATES = [os.environ.get("VC4KIT_GPU_FFT_SRC", ""), "/opt/vc/src/hello_pi/hello_fft"]
BROADCOM_NAME = re.compile(r"gpu_fft_(\d+k?|trans)\.qasm")   # not variants such as vc4asm's gpu_fft_256_new


def _pairs() -> list[tuple[Path, Path]]:
    for folder in filter(None, CANDIDATES):
        root = Path(folder)
        sources = [p for p in sorted(root.glob("gpu_fft_*.qasm")) + sorted(root.glob("qasm/gpu_fft_*.qasm"))
                   if BROADCOM_NAME.fullmatch(p.name)]
        pairs = []
        for source in sources:
            name = source.stem.replace("gpu_fft_", "shader_") + ".hex"
            for hex_file in (source.parent / name, root / "hex" / name):
                if hex_file.is_file():
                    pairs.append((source, hex_file))
                    break
        if pairs:
            return pairs
    return []


PAIRS = _pairs()


@pytest.mark.skipif(not PAIRS, reason="GPU_FFT .qasm sources not found: set VC4KIT_GPU_FFT_SRC to a hello_fft folder")
@pytest.mark.parametrize("source, hex_file", PAIRS, ids=[p[0].name for p in PAIRS])
def test_gpu_fft_source_assembles_to_broadcom_words(source, hex_file):
    program = qpuasm.assemble(source.read_text(), filename=str(source), include_path=[str(source.parent)])
    assert program.words.tolist() == formats.read_hex(hex_file.read_text()).tolist()
    assert program.diagnostics == []
